"""`robot-rl export-policy`: a run's deterministic policy as one TorchScript file.

    robot-rl export-policy runs/pick --format torchscript [--out runs/pick/policy.pt]

    policy = load_exported("runs/pick/policy.pt")   # needs torch only, not robot_rl's agent code
    action = policy(obs)                             # obs dict (no batch dim) -> float32 (A,)

What is exported is exactly what `SACAgent.act(obs, deterministic=True)` computes: the state
normaliser where the agent has one (its fitted mean and std), the encoder (ResNet-10 + spatial
embeddings per camera, proprio embedding; the identity on "state" for a state agent), tanh of
the actor's mean, and, for an agent with HIL-SERL's grasp critic, the critic's argmax k mapped
to the gripper action k - 1 in {-1 open, 0 stay, +1 close} as the last action dim. Nothing
random, no dropout, no augmentation.

The file is `torch.jit.trace` of that computation. Its input signature is positional:

    module(*tensors) -> float32 (B, A)
    tensors in metadata["inputs"] order, each with a leading batch dim B:
      "state"  float32 (B, D)          proprio (+ object features in state mode)
      <camera> uint8   (B, H, W, 3)    one per camera, RGB, HWC

The metadata travels inside the file (TorchScript extra file `robot_rl_policy.json`): format
version, task, observation mode, the inputs (key, shape without batch, dtype), the action
layout and range, and the checkpoint's env steps. `load_exported` reads it and checks every
observation against it (missing or unexpected keys, shapes, dtypes, non-finite state) before
the module runs; the raw module does no checking. From C++ (libtorch) load the same file with
`torch::jit::load(path, device, extra_files)` and follow the metadata.

ONNX is not offered: torch 2.13's `torch.onnx.export` needs the `onnx` package (and
`onnxscript` for its default exporter), which robot_rl does not depend on.
"""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

METADATA_FILE = "robot_rl_policy.json"
FORMAT = "robot_rl.policy"
FORMAT_VERSION = 1
ACTION_LAYOUT_7 = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")


class ExportError(ValueError):
    """A run that cannot be exported, or a file that is not an exported robot_rl policy."""


# ----------------------------------------------------------------------------- loading a run
def load_run_config(run_dir: str | Path):
    """The TrainConfig a run was trained with (RUN_DIR/config.yaml), checking the checkpoint exists."""
    from robot_rl import config as config_lib
    from robot_rl.train import TrainConfig, checkpoint_exists

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ExportError(f"{run_dir} is not a run directory (no config.yaml)")
    if not checkpoint_exists(run_dir / "checkpoint"):
        raise ExportError(f"no checkpoint in {run_dir} (checkpoint.safetensors)")
    return config_lib.load(TrainConfig, run_dir / "config.yaml")


def load_run_agent(run_dir: str | Path, observation_space, action_space, device: str = "cpu"):
    """(agent, cfg, env_steps): the run's SACAgent with its checkpoint loaded, for acting only."""
    from robot_rl import checkpoint as ckpt
    from robot_rl.agents.sac import SACAgent

    cfg = load_run_config(run_dir)
    agent = SACAgent(cfg.agent, observation_space, action_space, device=device, seed=cfg.seed)
    meta = ckpt.load_agent(agent, Path(run_dir) / "checkpoint")
    return agent, cfg, meta.get("counters", {}).get("env_steps")


def run_spaces(cfg) -> tuple[Any, Any]:
    """Observation and action spaces of a run's task, from a short-lived in-process env."""
    from robot_rl.run_env import make_run_env

    handle = make_run_env(cfg)
    try:
        return handle.env.observation_space, handle.env.action_space
    finally:
        handle.close()


# ----------------------------------------------------------------------------- the module
def _policy_module(agent):
    import copy

    import torch
    from torch import nn

    class DeterministicPolicy(nn.Module):
        """Positional tensors (in `keys` order, batched) -> deterministic action (B, A)."""

        def __init__(self, state_norm: nn.Module | None, encoder: nn.Module, actor: nn.Module,
                     grasp_critic: nn.Module | None, keys: list[str]):
            super().__init__()
            self.state_norm, self.encoder = state_norm, encoder
            self.actor, self.grasp_critic = actor, grasp_critic
            self.keys = keys

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            obs = dict(zip(self.keys, inputs))
            if self.state_norm is not None:
                obs = self.state_norm(obs)
            features = self.encoder(obs, train=False)
            action = self.actor.mode(features)
            if self.grasp_critic is not None:
                k = self.grasp_critic(features).argmax(dim=-1)
                action = torch.cat([action, (k - 1).to(action.dtype).unsqueeze(-1)], dim=-1)
            return action

    spec = agent.spec
    keys = (["state"] if spec.state_dim is not None else []) + list(spec.camera_names)
    # Copies on the CPU: the agent itself (maybe on a GPU, maybe still training) is left as it is.
    parts = [copy.deepcopy(m).cpu() if m is not None else None
             for m in (getattr(agent, "state_norm", None), agent.encoder, agent.actor, agent.grasp_critic)]
    return DeterministicPolicy(*parts, keys).eval()


def _inputs(spec) -> list[dict[str, Any]]:
    out = []
    if spec.state_dim is not None:
        out.append({"key": "state", "shape": [spec.state_dim], "dtype": "float32"})
    for cam in spec.camera_names:
        out.append({"key": cam, "shape": list(spec.image_shape), "dtype": "uint8"})
    return out


def export_torchscript(agent, path: str | Path, info: Mapping[str, Any] | None = None) -> Path:
    """Traces `agent`'s deterministic policy into `path` with its metadata; returns the path."""
    import torch

    module = _policy_module(agent)
    inputs = _inputs(agent.spec)
    # A batch of two distinct examples, so nothing batch-size specific is baked into the trace.
    g = torch.Generator().manual_seed(0)
    example = tuple(torch.randn((2, *i["shape"]), generator=g) if i["dtype"] == "float32"
                    else torch.randint(0, 256, (2, *i["shape"]), generator=g, dtype=torch.uint8)
                    for i in inputs)
    with torch.no_grad(), warnings.catch_warnings():
        # torch.jit is deprecated upstream but still the one self-contained format torch can
        # both write and read without extra packages.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(module, example, check_trace=False)
        # The trace must reproduce the eager module, on a batch size it was not traced with.
        probe = tuple(x[:1] for x in example)
        if not torch.allclose(traced(*probe), module(*probe), atol=1e-6, rtol=0):
            raise ExportError("the traced policy does not reproduce the eager one")
    action_dim = agent.action_dim
    metadata = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "inputs": inputs,
        "call": "module(*[obs[i['key']] with a leading batch dim for i in inputs]) -> float32 (B, A)",
        "action": {
            "dim": action_dim, "dtype": "float32", "low": -1.0, "high": 1.0,
            "layout": list(ACTION_LAYOUT_7) if action_dim == 7 else [f"a{i}" for i in range(action_dim)],
            "gripper": ("grasp critic argmax k -> k - 1 in {-1 open, 0 stay, +1 close}"
                        if agent.grasp_critic is not None else "tanh of the actor mean"),
        },
        "deterministic": True,
        **dict(info or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(traced, str(tmp), _extra_files={METADATA_FILE: json.dumps(metadata, indent=2)})
    tmp.replace(path)
    return path


# ----------------------------------------------------------------------------- loading an export
class ExportedPolicy:
    """A loaded export: `policy(obs)` -> float32 (A,), checking obs against the metadata."""

    def __init__(self, module, metadata: dict[str, Any]):
        self.module = module
        self.metadata = metadata
        self.inputs = metadata["inputs"]
        self.action_dim = int(metadata["action"]["dim"])

    def tensors(self, obs: Mapping[str, Any]) -> list:
        import torch

        if not isinstance(obs, Mapping):
            raise ValueError(f"observation must be a dict, got {type(obs).__name__}")
        wanted = [i["key"] for i in self.inputs]
        missing, unexpected = sorted(set(wanted) - set(obs)), sorted(set(obs) - set(wanted))
        if missing or unexpected:
            raise ValueError(f"observation keys {sorted(obs)} do not fit this policy's {wanted}"
                             f" (missing {missing}, unexpected {unexpected})")
        out = []
        for spec in self.inputs:
            key, shape = spec["key"], tuple(spec["shape"])
            value = np.asarray(obs[key])
            if value.shape != shape:
                raise ValueError(f"observation {key!r} has shape {value.shape}, expected {shape}")
            if spec["dtype"] == "uint8":
                if value.dtype != np.uint8:
                    raise ValueError(f"observation {key!r} must be uint8, got {value.dtype}")
            else:
                if not np.issubdtype(value.dtype, np.number):
                    raise ValueError(f"observation {key!r} has non-numeric dtype {value.dtype}")
                if not np.all(np.isfinite(value)):
                    raise ValueError(f"observation {key!r} holds non-finite values (NaN or inf)")
                value = value.astype(np.float32)
            out.append(torch.from_numpy(np.ascontiguousarray(value)).unsqueeze(0))
        return out

    def __call__(self, obs: Mapping[str, Any]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            action = self.module(*self.tensors(obs))
        return action[0].numpy().astype(np.float32)


def load_exported(path: str | Path) -> ExportedPolicy:
    """Loads a file written by export-policy; raises ExportError for anything else."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"exported policy {str(path)!r} does not exist")
    extra = {METADATA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except RuntimeError as e:
        raise ExportError(f"{path}: not a TorchScript file ({str(e).splitlines()[0]})") from None
    try:
        metadata = json.loads(extra[METADATA_FILE] or "null")
    except json.JSONDecodeError as e:
        raise ExportError(f"{path}: unreadable policy metadata ({e})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ExportError(f"{path}: a TorchScript file without robot_rl policy metadata")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ExportError(f"{path}: policy format version {metadata.get('format_version')!r}, "
                          f"this code reads version {FORMAT_VERSION}")
    return ExportedPolicy(module.eval(), metadata)


# ----------------------------------------------------------------------------- the command
def export_run(run_dir: str | Path, out: str | Path | None = None, fmt: str = "torchscript") -> Path:
    """Exports RUN_DIR's checkpointed policy; returns the written file (default RUN_DIR/policy.pt)."""
    if fmt != "torchscript":
        raise ExportError(f"format {fmt!r} is not supported (torchscript only; ONNX needs the onnx "
                          "package, see robot_rl/export.py)")
    cfg = load_run_config(run_dir)
    observation_space, action_space = run_spaces(cfg)
    agent, cfg, env_steps = load_run_agent(run_dir, observation_space, action_space)
    info = {"task": cfg.env or cfg.task, "obs_mode": cfg.obs, "env_steps": env_steps,
            "run_dir": str(Path(run_dir).resolve())}
    if cfg.env:
        # The policy acts in [-1, 1]; a --env env's adapter rescaled that to the env's own bounds.
        from robot_rl.run_env import make_run_env
        handle = make_run_env(cfg)
        try:
            info["env_action"] = {"low": handle.env.low.tolist(), "high": handle.env.high.tolist()}
        finally:
            handle.close()
    return export_torchscript(agent, Path(out) if out else Path(run_dir) / "policy.pt", info)


def cmd_export_policy(args: argparse.Namespace) -> int:
    import sys

    try:
        path = export_run(args.run_dir, args.out, args.format)
    except ExportError as e:
        print(f"robot-rl export-policy: {e}", file=sys.stderr)
        return 2
    meta = load_exported(path).metadata
    print(json.dumps({"out": str(path), "inputs": meta["inputs"], "action": meta["action"]}))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("export-policy", help="export a run's deterministic policy (TorchScript)")
    p.add_argument("run_dir")
    p.add_argument("--format", choices=["torchscript"], default="torchscript")
    p.add_argument("--out", help="output file (default RUN_DIR/policy.pt)")
    p.set_defaults(func=cmd_export_policy)
