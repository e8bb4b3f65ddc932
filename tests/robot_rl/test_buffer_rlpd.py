"""RLPD sampling: exact online/demo split, fallbacks, and the one-block transfer to torch."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from robot_rl.buffers import ReplayBuffer
from robot_rl.buffers.rlpd import PackedBatch, RLPDSampler, pack, to_torch, unpack

STATE_DIM, ACTION_DIM = 4, 7


def make_space():
    return gym.spaces.Dict({
        "state": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32),
        "wrist": gym.spaces.Box(0, 255, (12, 12, 3), np.uint8),
        "front": gym.spaces.Box(0, 255, (12, 12, 3), np.uint8)})


def fill(buf, source: float, episodes: int, length: int = 5):
    """Episodes whose state[0] marks the source (1 online, 2 demo); demo steps are interventions."""
    for e in range(episodes):
        for t in range(length):
            obs = {"state": np.array([source, e, t, 0], np.float32),
                   "wrist": np.full((12, 12, 3), t, np.uint8), "front": np.full((12, 12, 3), e, np.uint8)}
            nxt = {"state": np.array([source, e, t + 1, 0], np.float32),
                   "wrist": np.full((12, 12, 3), t + 1, np.uint8), "front": np.full((12, 12, 3), e, np.uint8)}
            buf.add(obs, np.full(ACTION_DIM, source / 4, np.float32), source, nxt,
                    terminated=t == length - 1, truncated=False, intervention=source == 2.0)
    buf.commit()


@pytest.fixture
def buffers(tmp_path):
    online = ReplayBuffer.create(tmp_path / "online", make_space(), ACTION_DIM, capacity=200)
    demo = ReplayBuffer.create(tmp_path / "demo", make_space(), ACTION_DIM, capacity=200)
    yield online, demo
    online.close()
    demo.close()


def test_half_online_half_demo_exactly(buffers):
    online, demo = buffers
    fill(online, 1.0, episodes=10)
    fill(demo, 2.0, episodes=4)
    sampler = RLPDSampler(online, demo, batch_size=256)
    rng = np.random.default_rng(0)
    for _ in range(5):
        batch = sampler.sample(rng)
        source = batch["obs"]["state"][:, 0]
        np.testing.assert_array_equal(source[:128], 1.0)          # rows [0, 128) online
        np.testing.assert_array_equal(source[128:], 2.0)          # rows [128, 256) demo
        np.testing.assert_array_equal(batch["intervention"], np.r_[np.zeros(128), np.ones(128)])
        np.testing.assert_array_equal(batch["next_obs"]["state"][:, 0], source)
        np.testing.assert_array_equal(batch["next_obs"]["state"][:, 2], batch["obs"]["state"][:, 2] + 1)
        np.testing.assert_array_equal(batch["obs"]["wrist"][:, 0, 0, 0], batch["obs"]["state"][:, 2])
        np.testing.assert_array_equal(batch["next_obs"]["wrist"][:, 0, 0, 0], batch["obs"]["state"][:, 2] + 1)
        np.testing.assert_array_equal(batch["reward"], source)
        np.testing.assert_array_equal(batch["action"], np.repeat(source[:, None] / 4, ACTION_DIM, 1))
        # Both halves really are random draws over their buffer, not a fixed slice.
        assert len(np.unique(batch["obs"]["state"][:128, 1:3], axis=0)) > 20


def test_ratio_is_configurable(buffers):
    online, demo = buffers
    fill(online, 1.0, episodes=3)
    fill(demo, 2.0, episodes=3)
    batch = RLPDSampler(online, demo, batch_size=64, demo_ratio=0.25).sample(np.random.default_rng(1))
    assert (batch["obs"]["state"][:, 0] == 2.0).sum() == 16
    assert (batch["obs"]["state"][:, 0] == 1.0).sum() == 48


def test_empty_buffer_falls_back_to_the_other(buffers):
    online, demo = buffers
    sampler = RLPDSampler(online, demo, batch_size=32)
    with pytest.raises(ValueError, match="both replay buffers are empty"):
        sampler.sample(np.random.default_rng(0))
    fill(demo, 2.0, episodes=1)
    assert sampler.split() == (0, 32)
    np.testing.assert_array_equal(sampler.sample(np.random.default_rng(0))["obs"]["state"][:, 0], 2.0)
    online_only = RLPDSampler(demo, ReplayBuffer.create(None, make_space(), ACTION_DIM, 10), 32)
    assert online_only.split() == (32, 0)


def test_mismatched_buffers_are_refused(buffers):
    online, _ = buffers
    other = ReplayBuffer.create(None, make_space(), ACTION_DIM + 1, capacity=10)
    with pytest.raises(ValueError, match="different data"):
        RLPDSampler(online, other)
    with pytest.raises(ValueError, match="demo_ratio"):
        RLPDSampler(online, online, demo_ratio=1.5)


def test_to_torch_cpu_is_zero_copy_and_keeps_the_layout(buffers):
    online, demo = buffers
    fill(online, 1.0, episodes=3)
    fill(demo, 2.0, episodes=3)
    batch = RLPDSampler(online, demo, batch_size=16).sample(np.random.default_rng(2))
    assert isinstance(batch, PackedBatch)
    tensors = to_torch(batch, "cpu")
    assert tensors["obs"]["wrist"].dtype == torch.uint8 and tensors["obs"]["wrist"].shape == (16, 12, 12, 3)
    assert tensors["action"].dtype == torch.float32 and tensors["action"].shape == (16, ACTION_DIM)
    for name in ("reward", "terminated", "truncated", "grasp_penalty", "intervention"):
        assert tensors[name].dtype == torch.float32 and tensors[name].shape == (16,)
    np.testing.assert_array_equal(tensors["next_obs"]["state"].numpy(), batch["next_obs"]["state"])
    # Zero-copy: the tensors are the batch's host memory, and all of it lies in one block.
    assert tensors["obs"]["state"].data_ptr() == batch["obs"]["state"].__array_interface__["data"][0]
    start, size = batch.block.data_ptr(), batch.block.numel()
    for path, *_ in batch.layout:
        ptr = (batch[path[0]][path[1]] if len(path) == 2 else batch[path[0]]).__array_interface__["data"][0]
        assert start <= ptr < start + size


def test_pack_reproduces_a_plain_batch(buffers):
    online, _ = buffers
    fill(online, 1.0, episodes=2)
    plain = online.sample(8, np.random.default_rng(3))
    packed = pack(plain, pin_memory=False)
    for key in plain["obs"]:
        np.testing.assert_array_equal(packed["obs"][key], plain["obs"][key])
        np.testing.assert_array_equal(packed["next_obs"][key], plain["next_obs"][key])
    np.testing.assert_array_equal(packed["terminated"], plain["terminated"])


def test_unpack_of_a_copied_block_rebuilds_the_batch(buffers):
    """What to_torch does on a GPU after its one copy: typed views into the copied block.
    Checked here on a CPU copy of the block, so machines without CUDA test the layout too."""
    online, demo = buffers
    fill(online, 1.0, episodes=3)
    fill(demo, 2.0, episodes=3)
    batch = RLPDSampler(online, demo, batch_size=16).sample(np.random.default_rng(5))
    copy = batch.block.clone()
    tensors = unpack(copy, batch.layout)
    for part in ("obs", "next_obs"):
        for key, value in batch[part].items():
            np.testing.assert_array_equal(tensors[part][key].numpy(), value)
            assert tensors[part][key].dtype == torch.from_numpy(value).dtype
            assert copy.data_ptr() <= tensors[part][key].data_ptr() < copy.data_ptr() + copy.numel()
    for name in ("action", "reward", "terminated", "truncated", "grasp_penalty", "intervention"):
        np.testing.assert_array_equal(tensors[name].numpy(), batch[name])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (runs on GPU machines)")
def test_to_torch_cuda_is_one_transfer_of_pinned_memory(buffers):
    online, demo = buffers
    fill(online, 1.0, episodes=3)
    fill(demo, 2.0, episodes=3)
    batch = RLPDSampler(online, demo, batch_size=16).sample(np.random.default_rng(4))
    assert batch.block.is_pinned()
    tensors = to_torch(batch, "cuda")
    torch.cuda.synchronize()
    for part in ("obs", "next_obs"):
        for key, value in batch[part].items():
            assert tensors[part][key].is_cuda
            np.testing.assert_array_equal(tensors[part][key].cpu().numpy(), value)
    np.testing.assert_array_equal(tensors["action"].cpu().numpy(), batch["action"])
