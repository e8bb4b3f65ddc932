"""A scripted human for the twin: takes over from the policy when it goes astray.

HIL-SERL's operator watches the robot and grabs the SpaceMouse when the policy goes astray,
steers it back, and lets go. In the twin the scripted expert plays that operator. What counts
as "astray" is `trigger`:

- "stall" (default): what an operator sees, the outcome. The expert's distance to go (peg tip
  to the hole's bottom, hand to cube plus the lift left, ...) has not fallen by
  `stall_progress` over the last `stall_steps` steps (stuck at the rim, dithering), or it has
  risen `regress_margin` above the best of the episode (wandering off). A policy that solves
  the task its own way is left alone however different its actions are.
- "action": the policy's proposed action is compared with the expert's every step (RMS
  distance over the motion components, averaged over the last `drift_window` steps: a single
  sample of a stochastic policy says little) and judged drifting above `takeover_threshold`.
  Measured on peg_insert it flags working policies too (a 50%-success policy sat at 0.49 from
  the expert), so the human held ~80% of the steps and training got slower (docs/benchmarks.md).

Then, with either trigger:
- takeover: the expert's action is executed instead (and recorded with intervention=True),
  for at least `min_takeover_steps`;
- hand back (hysteresis): after that, once the task has moved on by `stall_progress` since the
  takeover ("stall") or the policy's action agrees again, drift <= `release_threshold`
  ("action"); in any case after `max_takeover_steps`;
- budget: at most `budget_steps` human steps per episode; past it the policy keeps control.

The policy's action is computed and measured while the human holds control too, so the human
hands back as soon as the policy would do the right thing.

    human = ScriptedHuman(cfg.intervention, expert)
    human.reset()                                  # at every episode start
    action, intervened = human.step(obs, policy_action)

Where its steps go (online and demo buffers) is robot_rl.interventions.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np


TRIGGERS = ("stall", "action")


@dataclass
class InterventionConfig:
    enabled: bool = False
    trigger: str = "stall"            # "stall": no progress / moving away; "action": action distance
    stall_steps: int = 10             # the distance to go must fall within this many steps ...
    stall_progress: float = 0.005     # ... by this much (m), else the human takes over
    regress_margin: float = 0.03      # or when it rises this far (m) above the episode's best
    drift_window: int = 5             # steps the action distance is averaged over
    takeover_threshold: float = 0.5   # mean RMS action distance above which the human takes over
    release_threshold: float = 0.25   # ... at or below which (after min_takeover_steps) it hands back
    min_takeover_steps: int = 10      # a takeover lasts at least this long
    max_takeover_steps: int = 30      # ... and at most this long
    budget_steps: int = 50            # human steps per episode at most
    compare_gripper: bool = False     # include the gripper component in the drift (pick tasks)
    noise: float = 0.0                # N(0, noise) on the human's motion components (a shaky hand)

    def validate(self) -> None:
        if self.trigger not in TRIGGERS:
            raise ValueError(f"intervention.trigger must be one of {TRIGGERS}, got {self.trigger!r}")
        if self.stall_steps < 1 or not (np.isfinite(self.stall_progress) and self.stall_progress >= 0
                                         and np.isfinite(self.regress_margin) and self.regress_margin > 0):
            raise ValueError("intervention.stall_steps must be >= 1, stall_progress >= 0 and "
                             f"regress_margin > 0, got {self.stall_steps}, {self.stall_progress}, "
                             f"{self.regress_margin}")
        if self.drift_window < 1:
            raise ValueError(f"intervention.drift_window must be >= 1, got {self.drift_window}")
        if not (np.isfinite(self.takeover_threshold) and np.isfinite(self.release_threshold)):
            raise ValueError("intervention thresholds must be finite")
        if not 0.0 <= self.release_threshold <= self.takeover_threshold:
            raise ValueError("intervention thresholds must satisfy 0 <= release_threshold <= "
                             f"takeover_threshold, got {self.release_threshold}, {self.takeover_threshold}")
        if not 1 <= self.min_takeover_steps <= self.max_takeover_steps:
            raise ValueError("intervention takeover lengths must satisfy 1 <= min_takeover_steps <= "
                             f"max_takeover_steps, got {self.min_takeover_steps}, {self.max_takeover_steps}")
        if self.budget_steps < 0 or not (np.isfinite(self.noise) and self.noise >= 0):
            raise ValueError(f"intervention.budget_steps and noise must be >= 0: {self}")


def make_expert(task: str, env: Any, noise: float = 0.0, seed: int = 0) -> Any:
    """A fresh expert for `task` acting in `env` (the human's own, apart from the demo expert)."""
    if task == "point_reach":
        from robot_rl.toy_env import PointReachExpert
        return PointReachExpert(env.unwrapped, noise=noise, seed=seed)
    from robot_rl.run_env import task_provider
    return task_provider().make_expert(task, env, noise=noise, seed=seed)


def action_distance(a: np.ndarray, b: np.ndarray, compare_gripper: bool = False) -> float:
    """RMS difference over the motion components (and the gripper if asked); 0 .. 2."""
    n = len(a) if compare_gripper else 6
    d = np.asarray(a, np.float64)[:n] - np.asarray(b, np.float64)[:n]
    return float(np.sqrt(np.mean(d * d)))


class ScriptedHuman:
    """See the module docstring. `expert` has .act(obs) -> action; call it once per env step
    (the twin experts keep a phase machine), which step() does; and, for the stall trigger,
    .distance_to_go(obs) -> metres."""

    def __init__(self, cfg: InterventionConfig, expert: Any, seed: int = 0):
        cfg.validate()
        self.cfg, self.expert = cfg, expert
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        """A new episode: the human starts idle with a full budget."""
        self.drift: deque[float] = deque(maxlen=self.cfg.drift_window)
        self.progress: deque[float] = deque(maxlen=self.cfg.stall_steps + 1)  # distance to go
        self.best = np.inf          # the least distance to go since the policy last took over
        self.takeover_from = np.inf # the distance to go when the human took over
        self.active = False
        self.segment_steps = 0      # steps into the current takeover
        self.steps = 0              # human steps this episode
        self.takeovers = 0          # takeovers this episode

    @property
    def mean_drift(self) -> float:
        return float(np.mean(self.drift)) if self.drift else 0.0

    def astray(self) -> bool:
        """Whether the policy, in control now, has gone astray by the configured trigger."""
        if self.cfg.trigger == "action":
            return len(self.drift) == self.drift.maxlen and self.mean_drift > self.cfg.takeover_threshold
        if self.progress[-1] > self.best + self.cfg.regress_margin:
            return True
        return (len(self.progress) == self.progress.maxlen
                and self.progress[0] - self.progress[-1] < self.cfg.stall_progress)

    def back_on_track(self) -> bool:
        """Whether the human, in control now, may hand back: the policy agrees with the expert
        again ("action"), or the human has moved the task on since taking over ("stall")."""
        if self.cfg.trigger == "action":
            return self.mean_drift <= self.cfg.release_threshold
        return self.progress[-1] < self.takeover_from - self.cfg.stall_progress

    def step(self, obs: Mapping[str, np.ndarray], policy_action: np.ndarray) -> tuple[np.ndarray, bool]:
        """The action to execute and whether the human gave it."""
        policy_action = np.asarray(policy_action, np.float32)
        if not np.all(np.isfinite(policy_action)):
            raise ValueError(f"policy action is not finite: {policy_action}")
        expert_action = np.asarray(self.expert.act(obs), np.float32)
        if self.cfg.trigger == "action":
            self.drift.append(action_distance(policy_action, expert_action, self.cfg.compare_gripper))
        else:
            self.progress.append(float(self.expert.distance_to_go(obs)))
            self.best = min(self.best, self.progress[-1])
        budget_left = self.steps < self.cfg.budget_steps
        if self.active:
            settled = self.segment_steps >= self.cfg.min_takeover_steps and self.back_on_track()
            if settled or self.segment_steps >= self.cfg.max_takeover_steps or not budget_left:
                self.active = False
                # Judge the policy afresh after handing back, from where the human left it.
                self.drift.clear()
                if self.progress:   # the stall trigger's history
                    self.progress = deque([self.progress[-1]], self.progress.maxlen)
                    self.best = self.progress[-1]
        elif budget_left and self.astray():
            self.active, self.segment_steps = True, 0
            self.takeover_from = self.progress[-1] if self.progress else np.inf
            self.takeovers += 1
        if not self.active:
            return policy_action, False
        self.segment_steps += 1
        self.steps += 1
        action = expert_action.copy()
        if self.cfg.noise > 0:
            action[:6] += self.rng.normal(0.0, self.cfg.noise, 6).astype(np.float32)
        return np.clip(action, -1.0, 1.0).astype(np.float32), True

