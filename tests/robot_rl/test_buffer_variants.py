"""Training batches of cached backbone features: the sampler copies one shift variant per row
(uniform in [0, K), independently for obs and next_obs) and leaves out the pixels the encoder
never reads; a state-only run samples exactly as before."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from robot_rl.buffers import ReplayBuffer
from robot_rl.buffers.integrity import all_finite
from robot_rl.buffers.rlpd import RLPDSampler, to_torch
from robot_rl.buffers.storage import ReplayFormatError
from robot_rl.updates import make_sampler, update_once

ACTION_DIM, K, FEAT = 7, 4, (3, 1, 2)


def make_space(image=(8, 8, 3)):
    return gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
                            "wrist": gym.spaces.Box(0, 255, image, np.uint8)})


def feat_code(source, e, t, v):
    """The value every element of variant v of frame t of episode e holds (exact in float16)."""
    return source * 512 + e * 64 + t * 4 + v


def fill(buf, source, episodes, length=6):
    """Episodes whose state is (source, e, t) and whose feature variant v holds feat_code(...)."""
    def frame(e, t):
        obs = {"state": np.array([source, e, t], np.float32), "wrist": np.full((8, 8, 3), t, np.uint8)}
        feats = np.stack([np.full(FEAT, feat_code(source, e, t, v), np.float16) for v in range(K)])
        return obs, {"feat/wrist": feats}
    for e in range(episodes):
        for t in range(length):
            (obs, ext), (nxt, next_ext) = frame(e, t), frame(e, t + 1)
            buf.add(obs, np.full(ACTION_DIM, source / 4, np.float32), source, nxt, terminated=t == length - 1,
                    truncated=False, extras=ext if t == 0 else None, next_extras=next_ext)
    buf.commit()


def drawn_variant(batch, part):
    """Which stored variant each row of batch[part] holds, read back from its values."""
    source, e, t = batch["obs"]["state"].T.astype(np.int64)
    frame = t if part == "obs" else t + 1
    return batch[part]["feat/wrist"][:, 0, 0, 0].astype(np.int64) - feat_code(source, e, frame, 0)


@pytest.fixture
def buffers():
    extra = {"feat/wrist": ((K, *FEAT), np.float16)}
    online = ReplayBuffer.create(None, make_space(), ACTION_DIM, capacity=200, extra_specs=extra)
    demo = ReplayBuffer.create(None, make_space(), ACTION_DIM, capacity=200, extra_specs=extra)
    fill(online, 1.0, episodes=8)
    fill(demo, 2.0, episodes=3)
    yield online, demo
    online.close()
    demo.close()


def test_each_row_holds_the_variant_the_rng_drew_and_no_pixels(buffers):
    online, demo = buffers
    sampler = make_sampler(online, demo, batch_size=64, demo_ratio=0.5, pin_memory=False)
    assert list(sampler.batch_specs) == ["state", "feat/wrist"] and sampler.variant_keys == ["feat/wrist"]
    batch = sampler.sample(np.random.default_rng(7))
    assert "wrist" not in batch["obs"] and batch["obs"]["feat/wrist"].shape == (64, *FEAT)
    # The same draws, replayed: rows of each buffer, then variants of their obs, then of their next_obs.
    rng = np.random.default_rng(7)
    for buf, rows in ((online, slice(0, 32)), (demo, slice(32, 64))):
        index = buf.sample_indices(32, rng)
        picks = rng.integers(0, K, size=64)
        every_variant = buf.gather(index)           # all keys, all K variants
        np.testing.assert_array_equal(batch["obs"]["state"][rows], every_variant["obs"]["state"])
        np.testing.assert_array_equal(batch["obs"]["feat/wrist"][rows],
                                      every_variant["obs"]["feat/wrist"][np.arange(32), picks[:32]])
        np.testing.assert_array_equal(batch["next_obs"]["feat/wrist"][rows],
                                      every_variant["next_obs"]["feat/wrist"][np.arange(32), picks[32:]])
        np.testing.assert_array_equal(batch["reward"][rows], every_variant["reward"])
    # And the values say so by themselves: the row's own frame (obs t, next_obs t + 1), some variant.
    source, e, t = batch["obs"]["state"].T.astype(np.int64)
    for part, frame in (("obs", t), ("next_obs", t + 1)):
        v = drawn_variant(batch, part)
        assert ((v >= 0) & (v < K)).all()
        np.testing.assert_array_equal(batch[part]["feat/wrist"], np.broadcast_to(
            feat_code(source, e, frame, v)[:, None, None, None], batch[part]["feat/wrist"].shape))
    tensors = to_torch(batch, "cpu")                 # zero-copy views, as the learner gets them
    assert tensors["obs"]["feat/wrist"].dtype == torch.float16
    assert tensors["obs"]["feat/wrist"].data_ptr() == batch["obs"]["feat/wrist"].__array_interface__["data"][0]


def test_variants_are_uniform_and_independent_for_obs_and_next_obs(buffers):
    online, demo = buffers
    sampler = make_sampler(online, demo, batch_size=256, demo_ratio=0.5, pin_memory=False)
    rng = np.random.default_rng(0)
    pairs = np.zeros((K, K), np.int64)
    for _ in range(40):
        batch = sampler.sample(rng)
        np.add.at(pairs, (drawn_variant(batch, "obs"), drawn_variant(batch, "next_obs")), 1)
    # 10240 rows over 16 (obs, next_obs) variant pairs: 640 each; +-20 % is > 5 standard deviations.
    assert pairs.sum() == 40 * 256
    assert np.all(np.abs(pairs - 640) < 128), pairs


def test_state_only_buffers_sample_exactly_as_before(tmp_path):
    """No cached features: make_sampler is the plain RLPD sampler (every key, the same draws)."""
    space = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)})
    online = ReplayBuffer.create(None, space, ACTION_DIM, capacity=100)
    demo = ReplayBuffer.create(None, space, ACTION_DIM, capacity=100)
    for buf, source in ((online, 1.0), (demo, 2.0)):
        for t in range(20):
            buf.add({"state": np.array([source, 0, t], np.float32)}, np.zeros(ACTION_DIM, np.float32), t,
                    {"state": np.array([source, 0, t + 1], np.float32)}, terminated=t == 19, truncated=False)
    sampler = make_sampler(online, demo, batch_size=32, demo_ratio=0.5, pin_memory=False)
    assert sampler.variant_keys == [] and list(sampler.batch_specs) == ["state"]
    ours, plain = sampler.sample(np.random.default_rng(3)), RLPDSampler(online, demo, 32).sample(np.random.default_rng(3))
    for key in ("action", "reward", "terminated", "truncated", "grasp_penalty", "intervention"):
        np.testing.assert_array_equal(ours[key], plain[key])
    np.testing.assert_array_equal(ours["obs"]["state"], plain["obs"]["state"])
    np.testing.assert_array_equal(ours["next_obs"]["state"], plain["next_obs"]["state"])


def test_bad_keys_and_variants_are_refused(buffers):
    online, demo = buffers
    with pytest.raises(ValueError, match="subset of the buffers' frame keys"):
        RLPDSampler(online, demo, keys=["state", "front"])
    with pytest.raises(ValueError, match="'state' has frames of shape"):
        RLPDSampler(online, demo, variant_keys=["state"])
    index = online.sample_indices(4, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"variants\['feat/wrist'\] must be 8 ints in \[0, 4\)"):
        online.gather(index, variants={"feat/wrist": np.array([0, 1, 2, 3, 4, 0, 0, 0])})
    with pytest.raises(ValueError, match="no variant axis"):
        online.gather(index, variants={"state": np.zeros(8, np.int64)})


def test_a_non_finite_feature_never_enters_a_batch(buffers):
    online, demo = buffers
    online._arrays["feat/wrist"][:] = np.inf          # RAM corrupted after the checks at add()
    sampler = make_sampler(online, demo, batch_size=16, demo_ratio=0.5, pin_memory=False)
    with pytest.raises(ReplayFormatError, match="non-finite obs\\['feat/wrist'\\]"):
        sampler.sample(np.random.default_rng(0))


def test_all_finite_on_float16_matches_numpy():
    rng = np.random.default_rng(0)
    values = rng.standard_normal(300_000).astype(np.float16)   # more than one chunk
    values[::7] = np.float16(65504)                             # largest finite, both signs, subnormals
    values[1::7] = np.float16(-65504)
    values[2::7] = np.float16(6e-8)
    assert all_finite(values) and all_finite(values[:0])
    for bad in (np.inf, -np.inf, np.nan, -np.nan):
        for where in (0, 131_071, 131_072, values.size - 1):   # chunk edges
            broken = values.copy()
            broken[where] = bad
            assert not all_finite(broken) and not np.isfinite(broken).all()
    assert all_finite(np.ones(5, np.float32)) and not all_finite(np.array([1.0, np.nan]))


def test_a_frozen_backbone_agent_trains_on_sampled_features(tmp_path):
    """The learner's one path (update_once over make_sampler) with cached ResNet-10 features."""
    from robot_rl.agents.sac import SACAgent, SACConfig
    from robot_rl.networks.encoder import EncoderConfig
    from robot_rl.networks.resnet import ResNet10, save_backbone_weights

    weights = tmp_path / "resnet10.safetensors"
    save_backbone_weights(ResNet10(), weights)
    space = make_space(image=(128, 128, 3))
    cfg = SACConfig(hidden_dims=(32, 32), critic_ensemble_size=2, critic_subsample_size=None, bc_weight=0.0,
                    encoder=EncoderConfig(pretrained_backbone=str(weights)))
    agent = SACAgent(cfg, space, gym.spaces.Box(-1, 1, (ACTION_DIM,), np.float32), seed=0)
    rng = np.random.default_rng(0)
    extra = {"feat/wrist": ((K, 512, 4, 4), np.float16)}
    bufs = [ReplayBuffer.create(None, space, ACTION_DIM, capacity=20, extra_specs=extra) for _ in range(2)]
    for buf in bufs:
        image = np.zeros((128, 128, 3), np.uint8)
        feats = [{"feat/wrist": rng.standard_normal((K, 512, 4, 4)).astype(np.float16)} for _ in range(9)]
        for t in range(8):
            buf.add({"state": np.full(3, t, np.float32), "wrist": image}, rng.uniform(-1, 1, ACTION_DIM), 0.0,
                    {"state": np.full(3, t + 1, np.float32), "wrist": image}, terminated=t == 7,
                    truncated=False, extras=feats[t] if t == 0 else None, next_extras=feats[t + 1])
    before = agent.encoder.bottleneck_w.detach().clone()
    metrics = update_once(agent, make_sampler(*bufs, batch_size=8, demo_ratio=0.5, pin_memory=False),
                          rng, torch.device("cpu"))
    assert np.isfinite(metrics["critic_loss"]) and np.isfinite(metrics["actor_loss"])
    assert not torch.equal(agent.encoder.bottleneck_w, before)   # the head learned from the features
