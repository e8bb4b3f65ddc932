"""One recorded episode as plain arrays, the builder that records it step by step, and the
dataset spec that every episode of a dataset must match.

An episode of T steps holds T + 1 observation frames o_0 .. o_T and, per step t, the action a_t
taken at o_t with what the env answered: reward, terminated, truncated, grasp penalty, and
whether a human chose the action (intervention). Only the last step may end the episode.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np

from robot_rl.buffers.replay import space_specs

# Per-step arrays besides the action: name -> dtype.
STEP_FIELDS: dict[str, np.dtype] = {
    "rewards": np.dtype("float32"),
    "terminated": np.dtype("bool"),
    "truncated": np.dtype("bool"),
    "grasp_penalty": np.dtype("float32"),
    "intervention": np.dtype("bool"),
}
# Where an episode came from; other non-empty strings are allowed (e.g. an imported dataset).
KNOWN_SOURCES = ("spacemouse", "keyboard", "expert", "lerobot")
REQUIRED_METADATA = ("task", "success", "source")


def spec_from_space(observation_space: Any, action_dim: int) -> dict[str, Any]:
    """The dataset spec {"observations": {key: {shape, dtype}}, "action_dim"} of an env."""
    obs = {}
    for key, (shape, dtype) in space_specs(observation_space).items():
        if dtype.kind not in "biuf":
            raise ValueError(f"observation {key!r}: dtype {dtype} cannot be stored")
        obs[key] = {"shape": list(shape), "dtype": dtype.str}
    if int(action_dim) != action_dim or action_dim < 1:
        raise ValueError(f"action_dim must be a positive int, got {action_dim!r}")
    return {"observations": obs, "action_dim": int(action_dim)}


def check_spec(spec: Any, where: str) -> dict[str, Any]:
    """Validates a spec read from disk or given by a caller; returns it."""
    try:
        obs, action_dim = spec["observations"], spec["action_dim"]
        ok = (isinstance(obs, dict) and obs and isinstance(action_dim, int) and action_dim >= 1
              and all(isinstance(k, str) and isinstance(v["shape"], list)
                      and all(isinstance(s, int) and s >= 0 for s in v["shape"])
                      and np.dtype(v["dtype"]).kind in "biuf" for k, v in obs.items()))
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise ValueError(f"{where}: not a valid dataset spec: {spec!r}")
    return spec


@dataclass
class Episode:
    observations: dict[str, np.ndarray]   # key -> (T + 1, *shape)
    actions: np.ndarray                   # (T, action_dim) float32
    rewards: np.ndarray                   # (T,) float32
    terminated: np.ndarray                # (T,) bool: a true end (no bootstrap); last step only
    truncated: np.ndarray                 # (T,) bool: a time limit; last step only
    grasp_penalty: np.ndarray             # (T,) float32
    intervention: np.ndarray              # (T,) bool: 1 = a human chose this action
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @property
    def success(self) -> bool:
        return bool(self.metadata.get("success", False))

    def validate(self, spec: Mapping[str, Any] | None = None) -> None:
        """Raises ValueError naming the problem: shapes, dtypes, non-finite values, end flags,
        metadata. With `spec`, the observation keys/shapes/dtypes and action width must match."""
        T = len(self)
        if self.actions.ndim != 2 or T < 1:
            raise ValueError(f"episode actions must be (T >= 1, action_dim), got {self.actions.shape}")
        if self.actions.dtype != np.float32 or not np.all(np.isfinite(self.actions)):
            raise ValueError(f"episode actions must be finite float32, got {self.actions.dtype}")
        for name, dtype in STEP_FIELDS.items():
            a = getattr(self, name)
            if not isinstance(a, np.ndarray) or a.shape != (T,) or a.dtype != dtype:
                raise ValueError(f"episode {name} must be {dtype} ({T},), got "
                                 f"{getattr(a, 'dtype', type(a))}{getattr(a, 'shape', '')}")
            if dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise ValueError(f"episode {name} has non-finite values")
        ends = self.terminated | self.truncated
        if np.any(ends[:-1]):
            raise ValueError(f"episode ends (terminated/truncated) at step {int(np.argmax(ends))} "
                             f"before its last step {T - 1}")
        if not self.observations:
            raise ValueError("episode has no observations")
        for key, a in self.observations.items():
            if not isinstance(a, np.ndarray) or a.ndim < 1 or a.shape[0] != T + 1:
                raise ValueError(f"observation {key!r} must hold T + 1 = {T + 1} frames, got "
                                 f"{getattr(a, 'shape', type(a))}")
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise ValueError(f"observation {key!r} has non-finite values")
        if spec is not None:
            want = {k: (tuple(v["shape"]), np.dtype(v["dtype"])) for k, v in spec["observations"].items()}
            have = {k: (a.shape[1:], a.dtype) for k, a in self.observations.items()}
            if want != have:
                raise ValueError(f"episode observations {_fmt(have)} do not match the dataset's "
                                 f"{_fmt(want)}")
            if self.actions.shape[1] != spec["action_dim"]:
                raise ValueError(f"episode actions have width {self.actions.shape[1]}, the dataset "
                                 f"{spec['action_dim']}")
        missing = [k for k in REQUIRED_METADATA if k not in self.metadata]
        if missing:
            raise ValueError(f"episode metadata lacks {missing} (needs {list(REQUIRED_METADATA)})")
        if not isinstance(self.metadata["source"], str) or not self.metadata["source"]:
            raise ValueError(f"episode source must be a non-empty string, got {self.metadata['source']!r}")
        if not isinstance(self.metadata["success"], bool):
            raise ValueError(f"episode success must be a bool, got {self.metadata['success']!r}")
        try:
            json.dumps(self.metadata, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"episode metadata must be plain JSON: {e}") from None

    def transitions(self) -> Iterator[tuple]:
        """(obs, action, reward, next_obs, terminated, truncated, grasp_penalty, intervention)."""
        for t in range(len(self)):
            yield ({k: a[t] for k, a in self.observations.items()}, self.actions[t],
                   float(self.rewards[t]), {k: a[t + 1] for k, a in self.observations.items()},
                   bool(self.terminated[t]), bool(self.truncated[t]),
                   float(self.grasp_penalty[t]), bool(self.intervention[t]))

    def equal_arrays(self, other: "Episode") -> bool:
        """True when every array (not the metadata) is identical, dtype included."""
        if set(self.observations) != set(other.observations):
            return False
        pairs = [(self.observations[k], other.observations[k]) for k in self.observations]
        pairs += [(getattr(self, n), getattr(other, n)) for n in ("actions", *STEP_FIELDS)]
        return all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in pairs)


def _fmt(specs: Mapping[str, tuple]) -> str:
    return "{" + ", ".join(f"{k}: {np.dtype(d).name}{tuple(s)}" for k, (s, d) in sorted(specs.items())) + "}"


class EpisodeBuilder:
    """Records an episode as the env runs: start(obs) after reset, add(...) after each step."""

    def __init__(self, first_obs: Mapping[str, np.ndarray]):
        # Copies: an env may hand out views of buffers it reuses.
        self._frames = {k: [np.array(v, copy=True)] for k, v in first_obs.items()}
        self._steps: dict[str, list] = {"actions": [], **{name: [] for name in STEP_FIELDS}}

    def __len__(self) -> int:
        return len(self._steps["actions"])

    def add(self, action: Any, reward: float, next_obs: Mapping[str, np.ndarray], terminated: bool,
            truncated: bool, grasp_penalty: float = 0.0, intervention: bool = False) -> None:
        if set(next_obs) != set(self._frames):
            raise ValueError(f"next_obs keys {sorted(next_obs)} differ from the episode's "
                             f"{sorted(self._frames)}")
        for k, v in next_obs.items():
            self._frames[k].append(np.array(v, copy=True))
        self._steps["actions"].append(np.asarray(action, dtype=np.float32).copy())
        self._steps["rewards"].append(reward)
        self._steps["terminated"].append(bool(terminated))
        self._steps["truncated"].append(bool(truncated))
        self._steps["grasp_penalty"].append(grasp_penalty)
        self._steps["intervention"].append(bool(intervention))

    def build(self, **metadata: Any) -> Episode:
        """The episode so far, validated (shapes and values; the spec is checked on save)."""
        if not len(self):
            raise ValueError("an episode needs at least one step")
        ep = Episode(observations={k: np.stack(v) for k, v in self._frames.items()},
                     actions=np.stack(self._steps["actions"]),
                     **{n: np.asarray(self._steps[n], dtype=d) for n, d in STEP_FIELDS.items()},
                     metadata={"length": len(self), **metadata})
        ep.validate()
        return ep
