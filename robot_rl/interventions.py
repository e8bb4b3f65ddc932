"""Where intervention transitions go (HIL-SERL): every transition to the online buffer, and
each intervention segment (a run of consecutive human steps) to the demo buffer too.

A segment that stops before its episode ends is closed in the demo buffer as a truncation, so
its last step bootstraps from the value of where the human handed back; one that reaches the
episode's end keeps its terminated/truncated flags.

The learner (robot_rl/learner.py) routes every run, in-process or distributed: an episode staged
whole goes through `intervention_segments`; the running episode of a lone actor goes through
`InterventionRouter` one step at a time (written through, so updates train on it at once).
"""
from __future__ import annotations

from typing import Any, Iterable

from robot_rl.episode import Transition


def demo_segment(transitions: Iterable[Transition]) -> list[Transition]:
    """One intervention segment as it goes to the demo buffer (its last step closed)."""
    out = list(transitions)
    if out:
        out[-1] = out[-1].closed()
    return out


def intervention_segments(episode: Iterable[Transition]) -> list[list[Transition]]:
    """The demo-buffer segments of an episode: its runs of intervention=True transitions."""
    segments: list[list[Transition]] = [[]]
    for t in episode:
        if t.intervention:
            segments[-1].append(t)
        elif segments[-1]:
            segments.append([])
    return [demo_segment(s) for s in segments if s]


class InterventionRouter:
    """The routing one step at a time: each transition to the online buffer at once, and each
    intervention segment to the demo buffer as a whole when it ends (the next step is the
    policy's, or the episode ends). The caller commits (the learner: when the episode ends)."""

    def __init__(self, online: Any, demo: Any):
        self.online, self.demo = online, demo
        self.segment: list[Transition] = []

    def add(self, t: Transition) -> None:
        if self.segment and not t.intervention:
            self.flush()
        t.add_to(self.online)
        if t.intervention:
            self.segment.append(t)
        if t.ends_episode:
            self.flush()

    def flush(self) -> None:
        """Writes the open intervention segment to the demo buffer (a no-op when there is none)."""
        if not self.segment:
            return
        for t in demo_segment(self.segment):
            t.add_to(self.demo)
        self.segment = []
