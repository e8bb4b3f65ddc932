"""Behaviour cloning: same API as SAC, learns to reproduce demo actions."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from robot_rl.agents import BCAgent, BCConfig


def spaces(state_dim=4, action_dim=3, cameras=()):
    obs = {"state": gym.spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)}
    for c in cameras:
        obs[c] = gym.spaces.Box(0, 255, (128, 128, 3), np.uint8)
    return gym.spaces.Dict(obs), gym.spaces.Box(-1, 1, (action_dim,), np.float32)


W = torch.tensor([[0.9, -0.4, 0.2, 0.0], [0.1, 0.5, -0.7, 0.3], [-0.2, 0.0, 0.4, 0.8]])


def demo_batch(g, b=128):
    s = torch.randn(b, 4, generator=g)
    a = torch.tanh(s @ W.T)
    a[:, -1] = torch.where(s[:, 0] > 0, 1.0, -1.0)  # a gripper-like dim sitting exactly at +-1
    return {"obs": {"state": s}, "action": a}


@pytest.mark.parametrize("loss", ["mse", "nll"])
def test_bc_reproduces_demo_actions(loss, one_thread):
    agent = BCAgent(BCConfig(hidden_dims=(64, 64), lr=1e-3, loss=loss), *spaces(), seed=0)
    g = torch.Generator().manual_seed(0)
    first = agent.update(demo_batch(g))
    for _ in range(300):
        last = agent.update(demo_batch(g))
    assert last["action_mse"] < 0.25 * first["action_mse"]
    held_out = demo_batch(g, 256)
    with torch.no_grad():
        per_dim = (agent.actor.mode(held_out["obs"]["state"]) - held_out["action"]).square().mean(0)
    assert per_dim[:2].max() < 0.05, per_dim
    a = agent.act({"state": np.zeros(4, np.float32)}, deterministic=True)
    assert a.shape == (3,) and a.dtype == np.float32


def test_bc_input_checks():
    agent = BCAgent(BCConfig(hidden_dims=(8,)), *spaces())
    with pytest.raises(ValueError, match="'state'"):
        agent.act({"state": np.array([0, np.nan, 0, 0], np.float32)})
    with pytest.raises(ValueError, match=r"batch\['action'\]"):
        agent.update({"obs": {"state": torch.zeros(4, 4)}, "action": torch.zeros(4, 2)})
    with pytest.raises(ValueError, match="loss"):
        BCAgent(BCConfig(loss="l1"), *spaces())


def test_bc_with_a_camera_trains_the_encoder():
    agent = BCAgent(BCConfig(hidden_dims=(16,)), *spaces(cameras=["wrist"]))  # backbone from scratch
    b = {"obs": {"state": torch.randn(4, 4), "wrist": torch.randint(0, 256, (4, 128, 128, 3), dtype=torch.uint8)},
         "action": torch.rand(4, 3) * 2 - 1}
    before = [p.detach().clone() for p in agent.encoder.parameters()]
    assert np.isfinite(agent.update(b)["bc_loss"])
    assert any(not torch.equal(p0, p) for p0, p in zip(before, agent.encoder.parameters()))
