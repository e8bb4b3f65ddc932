"""Checkpoints: safetensors + JSON round trip, bit-for-bit resume, and corrupt-file errors."""
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from robot_rl.agents import BCAgent, BCConfig, SACAgent, SACConfig
from robot_rl.checkpoint import CheckpointError, load_agent, load_state, save_agent, save_state
from robot_rl.networks import EncoderConfig, ResNet10
from robot_rl.networks.resnet import save_backbone_weights


def spaces(cameras=()):
    obs = {"state": gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)}
    for c in cameras:
        obs[c] = gym.spaces.Box(0, 255, (128, 128, 3), np.uint8)
    return gym.spaces.Dict(obs), gym.spaces.Box(-1, 1, (7,), np.float32)


def batches(n, b=16, cameras=(), seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        def obs():
            o = {"state": torch.randn(b, 5, generator=g)}
            for c in cameras:
                o[c] = torch.randint(0, 256, (b, 128, 128, 3), generator=g, dtype=torch.uint8)
            return o
        out.append({"obs": obs(), "next_obs": obs(), "action": torch.rand(b, 7, generator=g) * 2 - 1,
                    "reward": torch.randn(b, generator=g), "terminated": torch.zeros(b),
                    "grasp_penalty": torch.full((b,), -0.02)})
    return out


def all_tensors(state, prefix=""):
    if isinstance(state, torch.Tensor):
        return {prefix: state}
    if isinstance(state, dict):
        items = state.items()
    elif isinstance(state, (list, tuple)):
        items = enumerate(state)
    else:
        return {}
    out = {}
    for k, v in items:
        out.update(all_tensors(v, f"{prefix}/{k}"))
    return out


def test_generic_state_round_trip_keeps_structure_types_and_values(tmp_path):
    state = {"a": torch.arange(6.0).view(2, 3), "n": {0: torch.tensor(1.5), 7: [1, 2.5, "x", None, True]},
             "g": torch.Generator().manual_seed(3).get_state(), "t": (torch.ones(2, dtype=torch.int64),)}
    save_state(state, tmp_path / "s.safetensors", metadata={"env_steps": 12})
    loaded, meta = load_state(tmp_path / "s.safetensors")
    assert meta == {"env_steps": 12}
    assert set(loaded["n"]) == {0, 7} and loaded["n"][7] == [1, 2.5, "x", None, True]
    assert torch.equal(loaded["a"], state["a"]) and torch.equal(loaded["g"], state["g"])
    assert loaded["t"][0].dtype == torch.int64
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["format_version"] == 2 and doc["format"] == "robot_rl.checkpoint"


# Plain 2-critic SAC without BC unless a case says otherwise: the batches carry no `intervention`.
PLAIN = dict(critic_ensemble_size=2, critic_subsample_size=None, bc_weight=0.0)


@pytest.mark.parametrize("cfg_kw", [dict(), dict(grasp_critic=True, critic_ensemble_size=4, critic_subsample_size=2)])
def test_sac_resume_is_bit_for_bit(tmp_path, cfg_kw):
    cfg = SACConfig(hidden_dims=(32, 32), critic_actor_ratio=2, **{**PLAIN, **cfg_kw})
    data = batches(10)
    pairs = [data[i:i + 2] for i in range(0, 10, 2)]
    straight = SACAgent(cfg, *spaces(), seed=1)
    for p in pairs[:3]:
        straight.update(p)
    save_agent(straight, tmp_path / "ckpt", metadata={"step": 3})
    for p in pairs[3:]:
        straight.update(p)

    resumed = SACAgent(cfg, *spaces(), seed=99)  # different seed: everything must come from the file
    assert load_agent(resumed, tmp_path / "ckpt") == {"step": 3}
    for p in pairs[3:]:
        resumed.update(p)
    a, b = all_tensors(straight.state_dict()), all_tensors(resumed.state_dict())
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert (resumed.critic_steps, resumed.actor_steps) == (10, 5)
    obs = {"state": np.ones(5, np.float32)}
    np.testing.assert_array_equal(resumed.act(obs), straight.act(obs))


def test_pixel_agent_with_frozen_backbone_round_trips(tmp_path):
    weights = tmp_path / "bb.safetensors"
    save_backbone_weights(ResNet10(), weights)
    cfg = SACConfig(hidden_dims=(16, 16), critic_actor_ratio=1, **PLAIN,
                    encoder=EncoderConfig(pretrained_backbone=str(weights)))
    agent = SACAgent(cfg, *spaces(["wrist"]), seed=0)
    data = batches(2, b=4, cameras=["wrist"])
    agent.update(data[0])
    save_agent(agent, tmp_path / "pix")
    agent.update(data[1])
    other = SACAgent(cfg, *spaces(["wrist"]), seed=5)
    load_agent(other, tmp_path / "pix")
    other.update(data[1])
    for p, q in zip(agent.critic.parameters(), other.critic.parameters()):
        assert torch.equal(p, q)
    assert other.target_encoder.backbone is other.encoder.backbone


def test_bc_resume_is_bit_for_bit(tmp_path):
    cfg = BCConfig(hidden_dims=(32, 32))
    data = batches(6)
    a = BCAgent(cfg, *spaces(), seed=0)
    for b in data[:3]:
        a.update(b)
    save_agent(a, tmp_path / "bc")
    for b in data[3:]:
        a.update(b)
    r = BCAgent(cfg, *spaces(), seed=7)
    load_agent(r, tmp_path / "bc")
    for b in data[3:]:
        r.update(b)
    for p, q in zip(a.actor.parameters(), r.actor.parameters()):
        assert torch.equal(p, q)


def test_corrupt_missing_and_foreign_checkpoints_raise(tmp_path):
    agent = SACAgent(SACConfig(hidden_dims=(8, 8)), *spaces())
    path = save_agent(agent, tmp_path / "c")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_agent(agent, tmp_path / "missing")
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum"):
        load_agent(agent, path)
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        load_agent(agent, path)
    save_agent(agent, tmp_path / "v")
    doc = json.loads((tmp_path / "v.json").read_text())
    doc["format_version"] = 99
    (tmp_path / "v.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="format version 99"):
        load_agent(agent, tmp_path / "v")
    (tmp_path / "v.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_agent(agent, tmp_path / "v")


def test_checkpoint_of_another_architecture_is_rejected(tmp_path):
    small = SACAgent(SACConfig(hidden_dims=(8, 8)), *spaces())
    save_agent(small, tmp_path / "small")
    big = SACAgent(SACConfig(hidden_dims=(16, 16)), *spaces())
    with pytest.raises(CheckpointError, match="does not fit"):
        load_agent(big, tmp_path / "small")
    grasp = SACAgent(SACConfig(hidden_dims=(8, 8), grasp_critic=True), *spaces())
    with pytest.raises(ValueError, match="modules"):
        load_agent(grasp, tmp_path / "small")
