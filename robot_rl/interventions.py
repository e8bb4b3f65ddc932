"""Where intervention transitions go (HIL-SERL): every transition to the online buffer, and
each intervention segment (a run of consecutive human steps) to the demo buffer too.

A segment that stops before its episode ends is closed in the demo buffer as a truncation, so
its last step bootstraps from the value of where the human handed back; one that reaches the
episode's end keeps its terminated/truncated flags.

    router = InterventionRouter(online, demo)         # in-process loop, one step at a time
    router.add(obs, action, reward, next_obs, terminated, truncated, grasp_penalty, intervention)

    for segment in intervention_segments(episode):    # a whole episode (list of transition dicts)
        for t in segment: demo.add(...)
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np


def demo_segment(transitions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One intervention segment as it goes to the demo buffer (copies of the transition dicts)."""
    out = [dict(t) for t in transitions]
    if out and not out[-1]["terminated"]:
        out[-1]["truncated"] = True
    return out


def intervention_segments(episode: Iterable[Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
    """The demo-buffer segments of an episode: its runs of intervention=True transitions."""
    segments: list[list[Mapping[str, Any]]] = [[]]
    for t in episode:
        if t["intervention"]:
            segments[-1].append(t)
        elif segments[-1]:
            segments.append([])
    return [demo_segment(s) for s in segments if s]


def add_transition(buffer: Any, t: Mapping[str, Any]) -> None:
    buffer.add(t["obs"], t["action"], t["reward"], t["next_obs"], t["terminated"], t["truncated"],
               grasp_penalty=t["grasp_penalty"], intervention=t["intervention"])


class InterventionRouter:
    """The in-process loop's routing, one step at a time: each transition to the online buffer,
    committed at once (the next learner update may sample it), and each intervention segment to
    the demo buffer as a whole when it ends (the next step is the policy's, or the episode ends).
    The same routing as robot_rl.learner applies to whole episodes in the distributed path."""

    def __init__(self, online: Any, demo: Any):
        self.online, self.demo = online, demo
        self.segment: list[dict[str, Any]] = []

    def add(self, obs, action, reward, next_obs, terminated, truncated, grasp_penalty: float,
            intervention: bool) -> None:
        t = {"obs": obs, "action": action, "reward": float(reward), "next_obs": next_obs,
             "terminated": bool(terminated), "truncated": bool(truncated),
             "grasp_penalty": float(grasp_penalty), "intervention": bool(intervention)}
        if self.segment and not intervention:
            self.flush()
        add_transition(self.online, t)
        self.online.commit()
        if intervention:
            # Copies: an env may reuse its observation arrays.
            self.segment.append({**t, "obs": {k: np.array(v) for k, v in obs.items()},
                                 "next_obs": {k: np.array(v) for k, v in next_obs.items()},
                                 "action": np.array(action)})
        if terminated or truncated:
            self.flush()

    def flush(self) -> None:
        """Writes the open intervention segment to the demo buffer (a no-op when there is none)."""
        if not self.segment:
            return
        for t in demo_segment(self.segment):
            add_transition(self.demo, t)
        self.demo.commit()
        self.segment = []
