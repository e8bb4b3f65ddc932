"""export-policy: the TorchScript file acts exactly as the agent's deterministic act(), for a
state agent and a pixels agent with the grasp critic; bad observations and bad files raise."""
from __future__ import annotations

import json
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch

from robot_rl import checkpoint as ckpt
from robot_rl import config as config_lib
from robot_rl.agents.sac import SACAgent, SACConfig
from robot_rl.export import ExportError, export_torchscript, load_exported

torch.set_num_threads(1)


def _spaces(cameras: tuple[str, ...], image: int = 64, state_dim: int = 20):
    spaces = {"state": gym.spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)}
    for cam in cameras:
        spaces[cam] = gym.spaces.Box(0, 255, (image, image, 3), np.uint8)
    return gym.spaces.Dict(spaces), gym.spaces.Box(-1.0, 1.0, (7,), np.float32)


def _random_obs(space: gym.spaces.Dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {k: (rng.normal(size=s.shape).astype(np.float32) if k == "state"
                else rng.integers(0, 256, s.shape, dtype=np.uint8)) for k, s in space.spaces.items()}


@pytest.mark.parametrize("cameras, grasp", [((), False), ((), True), (("wrist", "front"), True)],
                         ids=["state", "state-grasp", "pixels-grasp"])
def test_export_acts_as_the_agent(tmp_path, cameras, grasp):
    obs_space, act_space = _spaces(cameras)
    agent = SACAgent(SACConfig(grasp_critic=grasp), obs_space, act_space, seed=3)
    if getattr(agent, "state_norm", None) is not None:  # fitted statistics travel with the export
        agent.state_norm.fit(torch.randn(64, 20, generator=torch.Generator().manual_seed(0)) * 3 + 1)
    path = export_torchscript(agent, tmp_path / "policy.pt", {"task": "unit"})
    policy = load_exported(path)
    rng = np.random.default_rng(0)
    grippers = set()
    for _ in range(6):
        obs = _random_obs(obs_space, rng)
        expected = agent.act(obs, deterministic=True)
        got = policy(obs)
        assert got.dtype == np.float32 and got.shape == (7,)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
        grippers.add(float(got[6]))
    if grasp:  # the grasp critic's argmax k as k - 1, never a tanh value
        assert grippers <= {-1.0, 0.0, 1.0}
    meta = policy.metadata
    # "state" first, then the cameras in the agent's order (gymnasium sorts a Dict's keys).
    assert [i["key"] for i in meta["inputs"]] == ["state", *sorted(cameras)]
    assert meta["inputs"][0] == {"key": "state", "shape": [20], "dtype": "float32"}
    for i in meta["inputs"][1:]:
        assert i["shape"] == [64, 64, 3] and i["dtype"] == "uint8"
    assert meta["action"]["layout"][-1] == "gripper" and meta["task"] == "unit"
    # The raw module takes a batch: row i acts as the agent on observation i.
    batch = [_random_obs(obs_space, rng) for _ in range(3)]
    tensors = [torch.from_numpy(np.stack([o[i["key"]] for o in batch])) for i in meta["inputs"]]
    with torch.no_grad():
        out = policy.module(*tensors).numpy()
    assert out.shape == (3, 7)
    for row, obs in zip(out, batch):
        np.testing.assert_allclose(row, agent.act(obs, deterministic=True), atol=1e-5, rtol=0)


def test_bad_observations_raise(tmp_path):
    obs_space, act_space = _spaces(("wrist",), image=32)
    agent = SACAgent(SACConfig(), obs_space, act_space, seed=0)
    policy = load_exported(export_torchscript(agent, tmp_path / "p.pt"))
    good = _random_obs(obs_space, np.random.default_rng(1))
    policy(good)  # fine
    cases = [
        ({"state": good["state"]}, "missing \\['wrist'\\]"),
        ({**good, "front": good["wrist"]}, "unexpected \\['front'\\]"),
        ({**good, "state": good["state"][:19]}, "'state' has shape \\(19,\\)"),
        ({**good, "wrist": good["wrist"][:16]}, "'wrist' has shape \\(16, 32, 3\\)"),
        ({**good, "wrist": good["wrist"].astype(np.float32)}, "'wrist' must be uint8"),
        ({**good, "state": np.full(20, np.nan, np.float32)}, "non-finite"),
        ([good["state"]], "must be a dict"),
    ]
    for obs, message in cases:
        with pytest.raises(ValueError, match=message):
            policy(obs)


def test_bad_files_raise(tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        load_exported(tmp_path / "nothing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(ExportError, match="not a TorchScript file"):
        load_exported(junk)
    # A valid TorchScript file that is not an exported policy (no metadata).
    plain = tmp_path / "plain.pt"
    with pytest.warns(DeprecationWarning):  # torch.jit is deprecated upstream; still reads and writes
        torch.jit.save(torch.jit.trace(torch.nn.Linear(2, 2), torch.zeros(1, 2)), str(plain))
    with pytest.raises(ExportError, match="without robot_rl policy metadata"):
        load_exported(plain)
    # An export from a future format version.
    obs_space, act_space = _spaces(())
    path = export_torchscript(SACAgent(SACConfig(), obs_space, act_space), tmp_path / "v.pt")
    future = tmp_path / "future.pt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(future, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("extra/robot_rl_policy.json"):
                meta = json.loads(data)
                meta["format_version"] = 99
                data = json.dumps(meta).encode()
            dst.writestr(item, data)
    with pytest.raises(ExportError, match="format version 99"):
        load_exported(future)


def _run_dir(tmp_path, obs: str = "state"):
    """A pick_cube run directory with a freshly initialised agent's checkpoint."""
    from robot_rl.export import run_spaces
    from robot_rl.train import TrainConfig

    run = tmp_path / "run"
    run.mkdir()
    cfg = TrainConfig(task="pick_cube", obs=obs, run_dir=str(run))
    config_lib.save(cfg, run / "config.yaml")
    agent = SACAgent(cfg.agent, *run_spaces(cfg), seed=0)
    ckpt.save_agent(agent, run / "checkpoint", {"counters": {"env_steps": 123}})
    return run, agent


def test_export_policy_command_on_a_run(tmp_path, capsys):
    from robot_rl.cli import main

    run, agent = _run_dir(tmp_path)
    assert main(["export-policy", str(run)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["out"] == str(run / "policy.pt")
    policy = load_exported(run / "policy.pt")
    assert policy.metadata["task"] == "pick_cube" and policy.metadata["obs_mode"] == "state"
    assert policy.metadata["env_steps"] == 123
    assert policy.metadata["inputs"] == [{"key": "state", "shape": [25], "dtype": "float32"}]
    obs = {"state": np.random.default_rng(2).normal(size=25).astype(np.float32)}
    np.testing.assert_allclose(policy(obs), agent.act(obs, deterministic=True), atol=1e-5, rtol=0)

    # No checkpoint: a clear error and exit status 2, nothing written.
    (run / "checkpoint.safetensors").unlink()
    assert main(["export-policy", str(run), "--out", str(tmp_path / "x.pt")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
