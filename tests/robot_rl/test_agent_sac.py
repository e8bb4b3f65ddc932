"""SACAgent behaviour: acting, input checks, the UTD cycle, targets, grasp critic, pixels."""
import logging

import gymnasium as gym
import numpy as np
import pytest
import torch

from robot_rl.agents.sac import SACAgent, SACConfig
from robot_rl.networks import EncoderConfig

STATE_DIM = 6


def spaces(cameras=(), action_dim=7, state_dim=STATE_DIM):
    obs = {"state": gym.spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)}
    for c in cameras:
        obs[c] = gym.spaces.Box(0, 255, (128, 128, 3), np.uint8)
    return gym.spaces.Dict(obs), gym.spaces.Box(-1, 1, (action_dim,), np.float32)


def small_cfg(**kw):
    # Plain 2-critic SAC without BC unless a test says otherwise: these tests check the update's
    # mechanics (the defaults are held in tests/test_configs_shipped.py), and their hand-made
    # batches carry no `intervention` flag, which BC needs.
    kw.setdefault("hidden_dims", (32, 32))
    kw.setdefault("critic_ensemble_size", 2)
    kw.setdefault("critic_subsample_size", None)
    kw.setdefault("bc_weight", 0.0)
    return SACConfig(**kw)


def make_batch(b, cameras=(), seed=0, action_dim=7, state_dim=STATE_DIM):
    g = torch.Generator().manual_seed(seed)

    def obs():
        o = {"state": torch.randn(b, state_dim, generator=g)}
        for c in cameras:
            o[c] = torch.randint(0, 256, (b, 128, 128, 3), generator=g, dtype=torch.uint8)
        return o

    return {"obs": obs(), "next_obs": obs(), "action": torch.rand(b, action_dim, generator=g) * 2 - 1,
            "reward": torch.randn(b, generator=g), "terminated": (torch.rand(b, generator=g) < 0.2).float(),
            "grasp_penalty": torch.zeros(b)}


def params(module):
    return [p.detach().clone() for p in module.parameters()]


# The learning tests' 2-D task on a 3-D state: the right action is tanh(W s).
TARGET_W = torch.tensor([[0.8, -0.5, 0.3], [-0.4, 0.2, 0.9]])


def target_action(s):
    return torch.tanh(s @ TARGET_W.T)


def policy_error(agent, g):
    """Mean squared distance of the policy's mode from the target action over 64 random states."""
    s = torch.randn(64, 3, generator=g)
    with torch.no_grad():
        return (agent.actor.mode(s) - target_action(s)).square().sum(-1).mean().item()


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


# ---------------------------------------------------------------- acting and input checks

def test_act_returns_a_bounded_float32_action_and_deterministic_is_repeatable():
    agent = SACAgent(small_cfg(), *spaces())
    obs = {"state": np.ones(STATE_DIM, np.float32)}
    a = agent.act(obs)
    assert a.shape == (7,) and a.dtype == np.float32 and np.all(np.abs(a) <= 1)
    np.testing.assert_array_equal(agent.act(obs, deterministic=True), agent.act(obs, deterministic=True))
    assert not np.array_equal(agent.act(obs), agent.act(obs))


@pytest.mark.parametrize("obs, word", [
    ({"state": np.full(STATE_DIM, np.nan, np.float32)}, "'state'"),
    ({"state": np.array([0, 0, np.inf, 0, 0, 0], np.float32)}, "non-finite"),
    ({"state": np.zeros(STATE_DIM + 1, np.float32)}, "shape"),
    ({}, "lacks key 'state'"),
])
def test_act_rejects_bad_observations_naming_the_key(obs, word):
    agent = SACAgent(small_cfg(), *spaces())
    with pytest.raises(ValueError, match=word):
        agent.act(obs)


def test_act_rejects_bad_camera_images(weights_file):
    agent = SACAgent(small_cfg(encoder=EncoderConfig(pretrained_backbone=weights_file)), *spaces(["wrist"]))
    good = {"state": np.zeros(STATE_DIM, np.float32), "wrist": np.zeros((128, 128, 3), np.uint8)}
    assert agent.act(good).shape == (7,)
    flipped = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)[::-1, :, ::-1]
    assert agent.act({**good, "wrist": flipped}).shape == (7,)  # negative-stride views are fine
    with pytest.raises(ValueError, match="'wrist'.*shape"):
        agent.act({**good, "wrist": np.zeros((64, 64, 3), np.uint8)})
    with pytest.raises(ValueError, match="'wrist' must be uint8"):
        agent.act({**good, "wrist": np.zeros((128, 128, 3), np.float32)})


def test_update_rejects_bad_batches():
    agent = SACAgent(small_cfg(critic_actor_ratio=2), *spaces())
    batch = make_batch(8)
    with pytest.raises(ValueError, match=r"batch\['action'\] must be \(B, 7\)"):
        agent.update({**batch, "action": batch["action"][:, :6]})
    with pytest.raises(ValueError, match="not divisible by critic_actor_ratio"):
        agent.update(make_batch(7))
    with pytest.raises(ValueError, match="expected critic_actor_ratio=2"):
        agent.update([make_batch(4)])
    with pytest.raises(ValueError, match="'state'"):
        agent.update({**batch, "obs": {"state": batch["obs"]["state"][:, :3]}})
    with pytest.raises(ValueError, match="lacks key 'terminated'"):
        agent.update({k: v for k, v in batch.items() if k != "terminated"})


def test_bad_spaces_and_configs_raise():
    obs, act = spaces()
    with pytest.raises(ValueError, match="span"):
        SACAgent(small_cfg(), obs, gym.spaces.Box(-2, 2, (7,), np.float32))
    with pytest.raises(ValueError, match="critic_subsample_size"):
        SACAgent(small_cfg(critic_ensemble_size=2, critic_subsample_size=3), obs, act)
    with pytest.raises(ValueError, match="'depth'"):
        SACAgent(small_cfg(), gym.spaces.Dict({"depth": gym.spaces.Box(0, 1, (4, 4), np.float32)}), act)
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="bc_weight"):
            SACAgent(small_cfg(bc_weight=bad), obs, act)


# ---------------------------------------------------------------- the UTD cycle

def test_critic_only_steps_come_first_and_leave_actor_and_temperature_alone():
    agent = SACAgent(small_cfg(critic_actor_ratio=3), *spaces())
    actor0, critic0, alpha0 = params(agent.actor), params(agent.critic), agent.log_alpha.item()
    agent._gradient_step(make_batch(16, seed=1), update_actor=False)
    assert same(params(agent.actor), actor0) and agent.log_alpha.item() == alpha0
    assert not same(params(agent.critic), critic0)
    agent._gradient_step(make_batch(16, seed=2), update_actor=True)
    assert not same(params(agent.actor), actor0) and agent.log_alpha.item() != alpha0

    agent = SACAgent(small_cfg(critic_actor_ratio=3), *spaces())
    metrics = agent.update(make_batch(48))
    assert (agent.critic_steps, agent.actor_steps) == (3, 1)
    assert {"critic_loss", "actor_loss", "temperature_loss", "entropy", "temperature"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())


def test_one_big_batch_is_split_into_ratio_minibatches_in_order():
    a1 = SACAgent(small_cfg(critic_actor_ratio=2), *spaces(), seed=5)
    a2 = SACAgent(small_cfg(critic_actor_ratio=2), *spaces(), seed=5)
    big = make_batch(32)
    halves = [{k: ({kk: vv[i * 16:(i + 1) * 16] for kk, vv in v.items()} if isinstance(v, dict)
                   else v[i * 16:(i + 1) * 16]) for k, v in big.items()} for i in range(2)]
    m1, m2 = a1.update(big), a2.update(halves)
    assert m1 == m2
    assert same(params(a1.critic), params(a2.critic)) and same(params(a1.actor), params(a2.actor))


def test_target_networks_follow_by_polyak_after_every_critic_step():
    agent = SACAgent(small_cfg(tau=0.25, critic_actor_ratio=1), *spaces())
    target0 = params(agent.target_critic)
    agent.update(make_batch(16))
    for t0, t1, online in zip(target0, agent.target_critic.parameters(), agent.critic.parameters()):
        torch.testing.assert_close(t1, 0.75 * t0 + 0.25 * online.detach())


def test_ensemble_of_ten_with_subset_runs_and_target_entropy_default():
    agent = SACAgent(small_cfg(critic_ensemble_size=10, critic_subsample_size=2), *spaces())
    assert agent.critic.weights[0].shape[0] == 10
    assert agent.target_entropy == -3.5  # -|A|/2 with 7 continuous dims
    assert np.isfinite(agent.update(make_batch(8))["critic_loss"])


# ---------------------------------------------------------------- behaviour cloning on expert rows

def test_bc_weight_needs_the_intervention_flag_in_the_batch():
    agent = SACAgent(small_cfg(bc_weight=1.0), *spaces())
    with pytest.raises(ValueError, match="lacks key 'intervention'"):
        agent.update(make_batch(8))
    metrics = agent.update({**make_batch(8), "intervention": torch.ones(8)})
    assert np.isfinite(metrics["bc_loss"]) and metrics["bc_loss"] > 0


@pytest.mark.parametrize("bc_weight", [0.0, 2.0])
def test_bc_pulls_the_policy_to_the_expert_rows_and_ignores_the_others(one_thread, bc_weight):
    """No reward at all, so only the BC term can teach anything: half of each batch is an
    expert's action tanh(W s) (intervention 1), half the policy's own random ones (0). With BC the
    policy's mode ends near the expert's action; without it, it does not."""
    obs_space, act_space = spaces(action_dim=2, state_dim=3)
    agent = SACAgent(small_cfg(hidden_dims=(64, 64), critic_actor_ratio=1, actor_lr=1e-3, bc_weight=bc_weight),
                     obs_space, act_space, seed=0)
    g = torch.Generator().manual_seed(0)
    before = policy_error(agent, g)
    for _ in range(300):
        s = torch.randn(128, 3, generator=g)
        expert = (torch.arange(128) < 64).float()
        a = torch.where(expert[:, None] > 0, target_action(s), torch.rand(128, 2, generator=g) * 2 - 1)
        agent.update({"obs": {"state": s}, "next_obs": {"state": s}, "action": a, "reward": torch.zeros(128),
                      "terminated": torch.ones(128), "intervention": expert})
    after = policy_error(agent, g)
    if bc_weight > 0:
        assert after < 0.05 < before, (before, after)
    else:
        assert after > 0.2, (before, after)


# ---------------------------------------------------------------- grasp critic

def test_grasp_critic_drives_the_gripper_and_the_actor_only_the_arm():
    agent = SACAgent(small_cfg(grasp_critic=True), *spaces())
    assert agent.actor.action_dim == 6 and agent.target_entropy == -3.0
    obs = {"state": np.zeros(STATE_DIM, np.float32)}
    a = agent.act(obs, deterministic=True)
    assert a.shape == (7,) and a[-1] in (-1.0, 0.0, 1.0)
    with torch.no_grad():
        k = agent.grasp_critic(torch.zeros(1, STATE_DIM)).argmax().item()
    assert a[-1] == k - 1
    metrics = agent.update(make_batch(16))
    assert np.isfinite(metrics["grasp_critic_loss"])
    with pytest.raises(ValueError, match="grasp_penalty"):
        agent.update({k: v for k, v in make_batch(16).items() if k != "grasp_penalty"})


def test_grasp_epsilon_explores_only_when_acting_stochastically():
    agent = SACAgent(small_cfg(grasp_critic=True, grasp_epsilon=1.0), *spaces())
    obs = {"state": np.zeros(STATE_DIM, np.float32)}
    assert len({agent.act(obs)[-1] for _ in range(60)}) == 3
    assert len({agent.act(obs, deterministic=True)[-1] for _ in range(20)}) == 1


def test_grasp_critic_learns_the_penalty_and_reward(one_thread):
    """One-step problem: closing is rewarded, and any gripper change costs the penalty.
    Q(close) -> 1 - 0.02, Q(open) -> -0.02, Q(stay) -> 0, so the argmax becomes 'close'."""
    agent = SACAgent(small_cfg(grasp_critic=True, critic_actor_ratio=1, grasp_lr=3e-3), *spaces(), seed=1)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        b = make_batch(64, seed=int(torch.randint(10**6, (1,), generator=g)))
        grip = torch.randint(0, 3, (64,), generator=g).float() - 1
        b["action"][:, -1] = grip
        b["reward"] = (grip == 1).float()
        b["grasp_penalty"] = torch.where(grip != 0, -0.02, 0.0)
        b["terminated"] = torch.ones(64)
        agent.update(b)
    with torch.no_grad():
        q = agent.grasp_critic(torch.randn(32, STATE_DIM)).mean(0)
    torch.testing.assert_close(q, torch.tensor([-0.02, 0.0, 0.98]), atol=0.06, rtol=0)


# ---------------------------------------------------------------- learning sanity

def test_sac_learns_a_one_step_contextual_bandit(one_thread):
    """reward = -|a - target(s)|^2 with target(s) = tanh(W s); every step terminates."""
    obs_space, act_space = spaces(action_dim=2, state_dim=3)
    agent = SACAgent(small_cfg(hidden_dims=(64, 64), critic_actor_ratio=1, actor_lr=1e-3, critic_lr=1e-3),
                     obs_space, act_space, seed=0)
    g = torch.Generator().manual_seed(0)
    before = policy_error(agent, g)
    for _ in range(400):
        s = torch.randn(128, 3, generator=g)
        a = torch.rand(128, 2, generator=g) * 2 - 1
        r = -(a - target_action(s)).square().sum(-1)
        agent.update({"obs": {"state": s}, "next_obs": {"state": s}, "action": a, "reward": r,
                      "terminated": torch.ones(128)})
    after = policy_error(agent, g)
    assert after < 0.1 < before, (before, after)


# ---------------------------------------------------------------- pixels and the encoder

def test_actor_loss_does_not_reach_the_encoder_but_critic_loss_does(weights_file):
    cfg = small_cfg(grasp_critic=True, encoder=EncoderConfig(pretrained_backbone=weights_file))
    agent = SACAgent(cfg, *spaces(["wrist", "front"]))
    b = make_batch(4, ["wrist", "front"])
    noise = torch.randn(4, 6)

    def encoder_grads(with_actor):
        agent.optimizer.zero_grad(set_to_none=True)
        f = agent.encoder(b["obs"], train=False)
        nf = agent.encoder(b["next_obs"], train=False).detach()
        loss, _ = agent._head_losses(f, nf, nf, b["action"], b["reward"], b["terminated"], b["grasp_penalty"],
                                     noise, None, noise if with_actor else None)
        loss.backward()
        return {n: p.grad.clone() for n, p in agent.encoder.named_parameters() if p.grad is not None}, \
            [p.grad for p in agent.actor.parameters()]

    critic_only, actor_grads0 = encoder_grads(False)
    joint, actor_grads1 = encoder_grads(True)
    assert critic_only and critic_only.keys() == joint.keys()
    assert any(g.abs().sum() > 0 for g in critic_only.values())  # the critic trains the encoder
    for n in critic_only:  # ... and the actor adds nothing to it
        torch.testing.assert_close(joint[n], critic_only[n])
    assert all(g is None for g in actor_grads0) and all(g is not None for g in actor_grads1)
    assert all(p.grad is None for p in agent.encoder.backbone.parameters())  # frozen backbone


def test_frozen_backbone_gets_no_update_and_trained_one_does(weights_file, caplog):
    frozen = SACAgent(small_cfg(critic_actor_ratio=1, encoder=EncoderConfig(pretrained_backbone=weights_file)),
                      *spaces(["wrist"]))
    bb0 = params(frozen.encoder.backbone)
    frozen.update(make_batch(4, ["wrist"]))
    assert same(params(frozen.encoder.backbone), bb0)
    assert frozen.target_encoder.backbone is frozen.encoder.backbone  # shared, not copied

    with caplog.at_level(logging.WARNING):
        # EncoderConfig() is the ResNet-10 (SACConfig's default, backbone auto, is small_conv without a file).
        scratch = SACAgent(small_cfg(critic_actor_ratio=1, encoder=EncoderConfig()), *spaces(["wrist"]))
    assert "TRAINS FROM SCRATCH" in caplog.text
    bb0 = params(scratch.encoder.backbone)
    metrics = scratch.update(make_batch(4, ["wrist"]))
    assert np.isfinite(metrics["critic_loss"])
    assert not same(params(scratch.encoder.backbone), bb0)
    assert scratch.target_encoder.backbone is not scratch.encoder.backbone


def test_cached_feature_batches_train_like_raw_images(weights_file):
    from robot_rl.networks import precompute_features
    cfg = small_cfg(grasp_critic=True, encoder=EncoderConfig(pretrained_backbone=weights_file))
    agent = SACAgent(cfg, *spaces(["wrist", "front"]))
    b = make_batch(4, ["wrist", "front"])
    gen = torch.Generator().manual_seed(0)
    cached = {k: dict(v) for k, v in b.items() if k in ("obs", "next_obs")}
    for part in ("obs", "next_obs"):
        for cam in ("wrist", "front"):
            cached[part]["feat/" + cam] = precompute_features(agent.encoder, cached[part].pop(cam), 3, gen)
    batch = {**b, **cached}
    with torch.no_grad():  # at eval the cached path (variant 0) matches the raw path
        torch.testing.assert_close(agent.encoder(cached["obs"]), agent.encoder(b["obs"]), atol=2e-2, rtol=0)
    metrics = agent.update(batch)
    assert np.isfinite(metrics["critic_loss"]) and np.isfinite(metrics["grasp_critic_loss"])


@pytest.mark.slow
def test_compiled_losses_match_eager():
    """compile=True hands the loss math to torch.compile (~20-40 s to compile on 2 cores)."""
    eager = SACAgent(small_cfg(critic_actor_ratio=1), *spaces(), seed=4)
    compiled = SACAgent(small_cfg(critic_actor_ratio=1, compile=True), *spaces(), seed=4)
    for seed in range(3):
        m1, m2 = eager.update(make_batch(32, seed=seed)), compiled.update(make_batch(32, seed=seed))
        for k in m1:
            assert m2[k] == pytest.approx(m1[k], rel=1e-3, abs=1e-5), k
    for p, q in zip(eager.critic.parameters(), compiled.critic.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-5)
