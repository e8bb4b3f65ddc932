"""What every agent shares: reading the observation space, checking inputs, shaping batches.

Batch contract (tensors on the agent's device, batch dim B):
    {"obs": {key: tensor}, "next_obs": {key: tensor}, "action": float32 (B, A),
     "reward": float32 (B,), "terminated": float32 (B,), "grasp_penalty": float32 (B,)}
obs keys: "state" float32 (B, D); each camera uint8 (B, H, W, 3), or "feat/<camera>" cached
backbone features (B, K, C, h, w) / (B, C, h, w) in its place.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch

from robot_rl.networks.encoder import FEATURE_PREFIX

Batch = dict[str, Any]


@dataclass(frozen=True)
class ObservationSpec:
    state_dim: int | None
    camera_names: tuple[str, ...]
    image_shape: tuple[int, int, int] | None

    @staticmethod
    def from_space(space: gym.spaces.Dict) -> "ObservationSpec":
        if not isinstance(space, gym.spaces.Dict):
            raise ValueError(f"observation_space must be gymnasium.spaces.Dict, got {type(space).__name__}")
        state_dim, cams, image_shape = None, [], None
        for key, sub in space.spaces.items():
            if not isinstance(sub, gym.spaces.Box):
                raise ValueError(f"observation key {key!r}: expected a Box, got {type(sub).__name__}")
            if key == "state":
                if len(sub.shape) != 1:
                    raise ValueError(f"observation 'state' must be 1-D, got shape {sub.shape}")
                state_dim = int(sub.shape[0])
            elif sub.dtype == np.uint8 and len(sub.shape) == 3 and sub.shape[-1] == 3:
                if image_shape is not None and tuple(sub.shape) != image_shape:
                    raise ValueError(f"camera {key!r} has shape {sub.shape}, others {image_shape}")
                image_shape = tuple(int(s) for s in sub.shape)
                cams.append(key)
            else:
                raise ValueError(f"observation key {key!r}: neither 'state' nor a uint8 (H, W, 3) camera "
                                 f"(shape {sub.shape}, dtype {sub.dtype})")
        if state_dim is None and not cams:
            raise ValueError("observation_space has neither 'state' nor a camera")
        return ObservationSpec(state_dim, tuple(cams), image_shape)

    def single_to_tensors(self, obs: Mapping[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
        """One observation (no batch dim) -> batched tensors, checking every key. ValueError names the key."""
        if not isinstance(obs, Mapping):
            raise ValueError(f"observation must be a dict, got {type(obs).__name__}")
        out: dict[str, torch.Tensor] = {}
        if self.state_dim is not None:
            out["state"] = torch.as_tensor(self._checked(obs, "state", (self.state_dim,), float_ok=True),
                                           dtype=torch.float32, device=device).unsqueeze(0)
        for cam in self.camera_names:
            img = self._checked(obs, cam, self.image_shape, float_ok=False)
            # ascontiguousarray: camera frames are often flipped/sliced views torch cannot wrap.
            out[cam] = torch.as_tensor(np.ascontiguousarray(img), device=device).unsqueeze(0)
        return out

    @staticmethod
    def _checked(obs: Mapping[str, Any], key: str, shape: tuple[int, ...], float_ok: bool) -> np.ndarray:
        if key not in obs:
            raise ValueError(f"observation lacks key {key!r} (has {sorted(obs)})")
        value = np.asarray(obs[key])
        if value.shape != tuple(shape):
            raise ValueError(f"observation {key!r} has shape {value.shape}, expected {tuple(shape)}")
        if float_ok:
            if not np.issubdtype(value.dtype, np.number):
                raise ValueError(f"observation {key!r} has non-numeric dtype {value.dtype}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"observation {key!r} holds non-finite values (NaN or inf)")
        elif value.dtype != np.uint8:
            raise ValueError(f"camera observation {key!r} must be uint8, got {value.dtype}")
        return value

    def check_obs_batch(self, obs: Mapping[str, torch.Tensor], where: str, batch_size: int) -> None:
        """Cheap shape checks on a training batch's obs (no host sync, so no finiteness check)."""
        if self.state_dim is not None:
            s = obs.get("state")
            if s is None or tuple(s.shape) != (batch_size, self.state_dim):
                raise ValueError(f"batch[{where!r}]['state'] must be ({batch_size}, {self.state_dim}), "
                                 f"got {None if s is None else tuple(s.shape)}")
        for cam in self.camera_names:
            if FEATURE_PREFIX + cam in obs:
                f = obs[FEATURE_PREFIX + cam]
                if f.shape[0] != batch_size:
                    raise ValueError(f"batch[{where!r}][{FEATURE_PREFIX + cam!r}] has batch {f.shape[0]}, "
                                     f"expected {batch_size}")
            elif cam in obs:
                img = obs[cam]
                if tuple(img.shape) != (batch_size, *self.image_shape) or img.dtype != torch.uint8:
                    raise ValueError(f"batch[{where!r}][{cam!r}] must be uint8 ({batch_size}, "
                                     f"{', '.join(map(str, self.image_shape))}), got {img.dtype} {tuple(img.shape)}")
            else:
                raise ValueError(f"batch[{where!r}] lacks camera {cam!r} (or {FEATURE_PREFIX + cam!r})")


def check_action_space(space: gym.spaces.Box) -> int:
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"action_space must be a 1-D Box, got {space}")
    if not (np.allclose(space.low, -1.0) and np.allclose(space.high, 1.0)):
        raise ValueError(f"action_space must span [-1, 1] in every dim, got low={space.low} high={space.high}")
    return int(space.shape[0])


def split_batches(batch: Batch | Sequence[Batch], n: int) -> list[Batch]:
    """A list of n batches is used as given; one dict is split into n equal minibatches along dim 0."""
    if isinstance(batch, (list, tuple)):
        if len(batch) != n:
            raise ValueError(f"update() got {len(batch)} batches, expected critic_actor_ratio={n}")
        return list(batch)
    if not isinstance(batch, Mapping):
        raise ValueError(f"update() expects a batch dict or a list of them, got {type(batch).__name__}")
    if n == 1:
        return [batch]
    total = batch["action"].shape[0]
    if total % n:
        raise ValueError(f"batch size {total} is not divisible by critic_actor_ratio={n}; sample "
                         f"critic_actor_ratio * batch_size transitions or pass a list of {n} batches")

    def chunk(x: Any) -> list[Any]:
        if isinstance(x, Mapping):
            parts = {k: chunk(v) for k, v in x.items()}
            return [{k: parts[k][i] for k in parts} for i in range(n)]
        return list(x.chunk(n))

    return chunk(batch)


def check_batch(batch: Batch, spec: ObservationSpec, action_dim: int, needs: Sequence[str]) -> int:
    """Shape checks on one minibatch; returns its batch size."""
    for key in ("obs", "action", *needs):
        if key not in batch:
            raise ValueError(f"batch lacks key {key!r} (has {sorted(batch)})")
    action = batch["action"]
    if action.dim() != 2 or action.shape[1] != action_dim:
        raise ValueError(f"batch['action'] must be (B, {action_dim}), got {tuple(action.shape)}")
    b = action.shape[0]
    for key in needs:
        if key in ("obs", "next_obs"):
            continue
        if tuple(batch[key].shape) != (b,):
            raise ValueError(f"batch[{key!r}] must be ({b},), got {tuple(batch[key].shape)}")
    spec.check_obs_batch(batch["obs"], "obs", b)
    if "next_obs" in needs:
        spec.check_obs_batch(batch["next_obs"], "next_obs", b)
    return b


def augment_obs(obs: Mapping[str, torch.Tensor], camera_names: Sequence[str], pad: int,
                generator: torch.Generator) -> dict[str, torch.Tensor]:
    """DrQ random shift on every raw camera image in `obs` (cached features pick variants instead)."""
    from robot_rl.augment import random_shift

    out = dict(obs)
    if pad > 0:
        for cam in camera_names:
            if cam in obs and FEATURE_PREFIX + cam not in obs:
                out[cam] = random_shift(obs[cam], pad, generator)
    return out


def gripper_index(gripper_action: torch.Tensor) -> torch.Tensor:
    """Continuous gripper action -> grasp-critic index: <= -0.5 open (0), >= 0.5 close (2), else stay (1)."""
    return (gripper_action > -0.5).long() + (gripper_action >= 0.5).long()


def metrics_to_floats(metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    """One host sync for all metrics."""
    values = torch.stack([v.detach().float().reshape(()) for v in metrics.values()]).tolist()
    return dict(zip(metrics.keys(), values))
