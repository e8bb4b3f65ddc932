"""A transition and an episode's result, each defined once.

Every part of a run speaks these: the actor records `Transition`s and returns an
`EpisodeResult` per episode, the learner stages `Transition`s until their episode ends, the
intervention router writes them to the buffers, and the learning curve reads results. The wire
(robot_rl/transport.py) keeps its own format, a `TransitionChunk` of consecutive transitions
sharing their frames; `to_chunk` / `from_chunk` convert at that edge and nowhere else.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Iterator, Sequence

import numpy as np

from robot_rl.transport import TransitionChunk


@dataclass
class Transition:
    obs: dict[str, np.ndarray]
    action: np.ndarray
    reward: float
    next_obs: dict[str, np.ndarray]
    terminated: bool
    truncated: bool
    grasp_penalty: float = 0.0
    intervention: bool = False     # a human (or the scripted human) chose the action
    episode: int = 0               # the actor's episode number and step in it (the wire's order)
    step: int = 0

    @classmethod
    def copy_of(cls, obs: Mapping[str, Any], action: Any, reward: float, next_obs: Mapping[str, Any],
                terminated: bool, truncated: bool, grasp_penalty: float = 0.0, intervention: bool = False,
                episode: int = 0, step: int = 0) -> "Transition":
        """A transition that owns its arrays (an env may reuse its observation buffers)."""
        return cls({k: np.array(v, copy=True) for k, v in obs.items()},
                   np.asarray(action, np.float32).copy(), float(reward),
                   {k: np.array(v, copy=True) for k, v in next_obs.items()},
                   bool(terminated), bool(truncated), float(grasp_penalty), bool(intervention),
                   int(episode), int(step))

    @property
    def ends_episode(self) -> bool:
        return self.terminated or self.truncated

    def closed(self) -> "Transition":
        """This transition as the last of a cut-off run: truncated unless it is terminal, so it
        bootstraps from where the run stopped."""
        return self if self.terminated else replace(self, truncated=True)

    def add_to(self, buffer: Any) -> None:
        buffer.add(self.obs, self.action, self.reward, self.next_obs, self.terminated, self.truncated,
                   grasp_penalty=self.grasp_penalty, intervention=self.intervention)

    def same_as(self, other: "Transition") -> bool:
        """Field by field, arrays by value."""
        return (self.episode == other.episode and self.step == other.step
                and np.array_equal(self.action, other.action) and self.reward == other.reward
                and self.terminated == other.terminated and self.truncated == other.truncated
                and self.grasp_penalty == other.grasp_penalty and self.intervention == other.intervention
                and self.obs.keys() == other.obs.keys()
                and all(np.array_equal(self.obs[k], other.obs[k]) for k in self.obs)
                and all(np.array_equal(self.next_obs[k], other.next_obs[k]) for k in self.next_obs))


def to_chunk(transitions: Sequence[Transition], actor_id: str, session: str, seq: int,
             unacked_from: int | None = None) -> TransitionChunk:
    """Consecutive transitions of one episode as one wire chunk (their frames shared)."""
    first = transitions[0]
    frames = {k: np.stack([first.obs[k]] + [t.next_obs[k] for t in transitions]) for k in first.obs}
    return TransitionChunk(
        actor_id, session, first.episode, first.step, seq, frames,
        np.stack([t.action for t in transitions]).astype(np.float32),
        np.array([t.reward for t in transitions], np.float32),
        np.array([t.terminated for t in transitions], np.uint8),
        np.array([t.truncated for t in transitions], np.uint8),
        np.array([t.grasp_penalty for t in transitions], np.float32),
        np.array([t.intervention for t in transitions], np.uint8),
        unacked_from=unacked_from)


def from_chunk(chunk: TransitionChunk, i: int) -> Transition:
    """Transition i of a decoded chunk (views of the chunk's arrays)."""
    return Transition(chunk.obs(i), chunk.action[i], float(chunk.reward[i]), chunk.next_obs(i),
                      bool(chunk.terminated[i]), bool(chunk.truncated[i]), float(chunk.grasp_penalty[i]),
                      bool(chunk.intervention[i]), int(chunk.episode), int(chunk.step) + i)


@dataclass(eq=False)
class EpisodeResult(Mapping):
    """What one episode did. `success_source` says who declared success (env, classifier,
    operator); the actor-only fields stay at their defaults for an evaluation episode.

    It also reads as a read-only mapping of its JSON form (`as_dict`), the shape the episode
    logs, progress files and operator tools have always read: result["success"]."""
    return_: float
    length: int
    success: bool
    interventions: int = 0
    cycle_time_s: float | None = None   # env time (length / control rate) of a successful episode
    wall_s: float = 0.0
    session: str = ""
    episode: int = 0
    success_source: str | None = None
    weights_version: int | None = None
    env_steps: int | None = None        # the actor's env steps after this episode
    operator_key: str | None = None
    classifier_success: bool = False
    classifier_prob_max: float | None = None
    aborted: str | None = None
    ground_truth_success: bool | None = None   # the twin's truth beside a classifier's reward
    recovered: bool = False             # re-sent from a killed actor's spool
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def intervention_rate(self) -> float:
        return self.interventions / max(self.length, 1)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (episode logs, progress files): "return" for return_, None-valued
        optional truth left out."""
        d = {("return" if f.name == "return_" else f.name): getattr(self, f.name)
             for f in fields(self) if f.name != "extra"}
        d["intervention_rate"] = self.intervention_rate
        if self.ground_truth_success is None:
            del d["ground_truth_success"]
        d.update(self.extra)
        return d

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EpisodeResult":
        names = {f.name for f in fields(cls)} - {"extra", "return_"}
        known = {k: v for k, v in d.items() if k in names}
        extra = {k: v for k, v in d.items() if k not in names | {"return", "intervention_rate"}}
        return cls(return_=float(d["return"]), **known, extra=extra)
