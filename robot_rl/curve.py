"""The learning curve of a run: per-episode figures and evaluations, kept as numbers (a JSON
file in the run dir, progress.json for a run, learner_progress.json for a learner's view of its
actors) and drawn as learning_curve.png and episodes.png. One implementation for the in-process
run, the learner and the distributed run's summary."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from robot_rl.atomic_io import is_disk_full, write_json_atomic
from robot_rl.episode import EpisodeResult

log = logging.getLogger("robot_rl.curve")


class LearningCurve:
    """The learning curve, kept as numbers (progress.json) and drawn as a PNG."""

    def __init__(self, run_dir: Path, name: str = "progress.json"):
        self.path = run_dir / name
        self.data: dict[str, list] = {"eval_step": [], "eval_success": [],
                                      "episode_step": [], "episode_success": [], "episode_return": [],
                                      # per episode too; cycle time is None for a failed episode
                                      "episode_length": [], "episode_interventions": [],
                                      "episode_intervention_rate": [], "episode_cycle_time_s": []}
        if self.path.exists():
            self.data.update(json.loads(self.path.read_text()))

    def save(self) -> None:
        """Atomic (a kill never leaves a half-written curve); a full disk keeps it in memory."""
        try:
            write_json_atomic(self.path, self.data, fsync=False)
        except OSError as e:
            if not is_disk_full(e):
                raise
            log.error("disk full: %s not updated (kept in memory, written at the next save): %s", self.path, e)

    def trim(self, env_steps: int) -> None:
        """Drops entries past `env_steps` (resume: the buffers are the truth for the step count)."""
        n_episodes = sum(1 for s in self.data["episode_step"] if s <= env_steps)
        n_evals = sum(1 for s in self.data["eval_step"] if s <= env_steps)
        for k, values in self.data.items():
            if isinstance(values, list):
                del values[n_episodes if k.startswith("episode_") else n_evals:]

    def add_episode(self, step: int, result: EpisodeResult) -> None:
        for key, value in (("step", step), ("success", bool(result.success)),
                           ("return", result.return_), ("length", result.length),
                           ("interventions", result.interventions),
                           ("intervention_rate", result.intervention_rate),
                           ("cycle_time_s", result.cycle_time_s)):
            self.data[f"episode_{key}"].append(value)

    def add_eval(self, step: int, success_rate: float) -> None:
        self.data["eval_step"].append(step)
        self.data["eval_success"].append(success_rate)

    @property
    def last_eval(self) -> float | None:
        return self.data["eval_success"][-1] if self.data["eval_success"] else None

    def draw(self, run_dir: Path, title: str) -> None:
        """learning_curve.png and episodes.png; a full disk or other OS error is logged."""
        try:
            self.plot(run_dir / "learning_curve.png", title)
            self.plot_episodes(run_dir / "episodes.png", title + ": training episodes")
        except OSError as e:
            log.error("learning curves not drawn: %s", e)

    def plot_episodes(self, png: Path, title: str) -> None:
        """Per-episode figures vs env steps: success (rolling), intervention rate, return, cycle time."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        d = self.data
        steps = np.asarray(d["episode_step"], dtype=float)

        def series(key: str) -> tuple[np.ndarray, np.ndarray]:
            # A run resumed from an older progress.json lacks the first episodes of newer keys.
            values = d[key][-len(steps):] if len(steps) else []
            xs = steps[len(steps) - len(values):]
            return xs, np.asarray([np.nan if v is None else v for v in values], dtype=float)

        fig, axes = plt.subplots(4, 1, figsize=(7, 9), sharex=True)
        xs, succ = series("episode_success")
        if len(xs):
            window = max(1, min(20, len(succ)))
            axes[0].plot(xs[window - 1:], np.convolve(succ, np.ones(window) / window, mode="valid"),
                         color="tab:blue")
            axes[0].set_ylabel(f"success\n(rolling {window})")
        axes[0].set_ylim(-0.05, 1.05)
        xs, rate = series("episode_intervention_rate")
        axes[1].plot(xs, rate, ".", color="tab:orange", alpha=0.5)
        axes[1].set_ylabel("intervention\nrate")
        axes[1].set_ylim(-0.05, 1.05)
        xs, ret = series("episode_return")
        axes[2].plot(xs, ret, ".", color="tab:green", alpha=0.5)
        axes[2].set_ylabel("return")
        xs, cycle = series("episode_cycle_time_s")
        axes[3].plot(xs, cycle, ".", color="tab:red", alpha=0.5)
        axes[3].set_ylabel("cycle time (s)\nsuccesses")
        axes[3].set_xlabel("online env steps")
        for ax in axes:
            ax.grid(alpha=0.3)
        axes[0].set_title(title)
        fig.tight_layout()
        fig.savefig(png, dpi=100)
        plt.close(fig)

    def plot(self, png: Path, title: str) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        steps = np.asarray(self.data["episode_step"])
        succ = np.asarray(self.data["episode_success"], dtype=float)
        if len(steps):
            window = max(1, min(20, len(succ)))
            rolling = np.convolve(succ, np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1:], rolling, color="tab:blue", alpha=0.6,
                    label=f"training episodes (rolling {window})")
        if self.data["eval_step"]:
            ax.plot(self.data["eval_step"], self.data["eval_success"], "o-", color="tab:red",
                    label="evaluation (deterministic)")
        ax.set_xlabel("online env steps")
        ax.set_ylabel("success rate")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(png, dpi=100)
        plt.close(fig)
