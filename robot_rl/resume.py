"""Resuming a run with a config that may differ from the one it ran with.

A run directory keeps the config it ran with (RUN_DIR/config.yaml). A resume compares the new
config against it before anything in the directory changes:

- a changed setting that cannot apply to the run as it stands is refused (ResumeError naming
  every such field): the buffers' shapes and sizes, the networks' architecture, the optimiser's
  learning rates (its state comes from the checkpoint), the task, the seed, the demos;
- a changed setting that does apply (the schedule, the device, the update rule's constants, the
  batch, the scripted human) is logged and recorded in config.yaml's history.

Nothing is written here; the caller writes config.yaml (with the history) only once the
buffers and checkpoint have opened, so a resume that fails leaves the run directory as it was.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from robot_rl import config as config_lib

log = logging.getLogger("robot_rl.resume")

CONFIG_FILE = "config.yaml"

# Settings a resumed run takes as given: read afresh by the loop, the sampler, the buffers'
# open() or the agent's update step. Everything else is fixed for the life of a run.
APPLIES_ON_RESUME = frozenset({
    "steps", "eval_every", "eval_episodes", "final_eval_episodes", "stop_at_success",
    "checkpoint_every", "device", "threads", "progress", "updates_per_step", "batch_size",
    "learning_starts", "random_steps", "video_every",
    "buffer.fsync", "buffer.demo_ratio", "buffer.check_continuity", "buffer.pin_memory",
    "agent.discount", "agent.tau", "agent.bc_weight", "agent.grasp_epsilon",
    "agent.critic_actor_ratio", "agent.critic_subsample_size", "agent.backup_entropy",
    "agent.target_entropy", "agent.compile",
})
APPLIES_PREFIXES = ("intervention.",)      # the scripted human is rebuilt on every start
IGNORED = frozenset({"run_dir", "resume"})  # where the run is now, and the resume switch itself


class ResumeError(config_lib.ConfigError):
    """A resume whose config changes a setting that cannot apply to the run in the directory."""


@dataclasses.dataclass
class ResumePlan:
    changed: dict[str, tuple[Any, Any]]    # field -> (as the run had it, as now)
    history: list[dict[str, Any]]          # config.yaml's history, this resume appended


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key != "task_overrides":
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changed_fields(old: Any, new: Any) -> dict[str, tuple[Any, Any]]:
    """{dotted field: (old, new)} for every leaf field that differs between two configs."""
    a, b = _flat(config_lib.to_dict(old)), _flat(config_lib.to_dict(new))
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and k not in IGNORED}


def applies(field: str) -> bool:
    return field in APPLIES_ON_RESUME or field.startswith(APPLIES_PREFIXES)


def has_run_state(run_dir: Path) -> bool:
    """True once a run has something a resume continues: finished demos (train), a learner
    state, or a checkpoint. Before that a restart is a new start and may change anything."""
    run_dir = Path(run_dir)
    return any((run_dir / name).exists()
               for name in ("demos.json", "learner_state.json", "checkpoint.json"))


def plan_resume(cfg: Any, run_dir: Path) -> ResumePlan | None:
    """Compares `cfg` with RUN_DIR/config.yaml; None when there is none (a new run). Raises
    ResumeError (nothing written) when a changed field cannot apply or the file is unreadable."""
    path = Path(run_dir) / CONFIG_FILE
    if not getattr(cfg, "resume", True) or not path.exists() or not has_run_state(run_dir):
        return None
    try:
        old = config_lib.load(type(cfg), path)
    except config_lib.ConfigError as e:
        raise ResumeError(f"cannot resume {run_dir}: its {CONFIG_FILE} does not load ({e}); "
                          f"use a fresh --run-dir") from None
    changed = changed_fields(old, cfg)
    refused = {k: v for k, v in changed.items() if not applies(k)}
    if refused:
        listed = ", ".join(f"{k} ({v[0]!r} -> {v[1]!r})" for k, v in refused.items())
        raise ResumeError(f"cannot resume {run_dir} with a changed {listed}: "
                          f"{'it is' if len(refused) == 1 else 'they are'} fixed for the life of a run; "
                          f"resume with the run's own settings (--config {path}) or use a fresh --run-dir")
    history = config_lib.read_history(path)
    history.append({"resumed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "changed": {k: {"was": v[0], "now": v[1]} for k, v in changed.items()}})
    return ResumePlan(changed=changed, history=history)


def log_changes(plan: ResumePlan | None, run_dir: Path) -> None:
    if plan is None:
        return
    if plan.changed:
        log.warning("resuming %s with changed settings: %s", run_dir,
                    ", ".join(f"{k} {v[0]!r} -> {v[1]!r}" for k, v in plan.changed.items()))
    else:
        log.info("resuming %s with its own settings", run_dir)


def save_config(cfg: Any, run_dir: Path, plan: ResumePlan | None) -> None:
    """Writes RUN_DIR/config.yaml (atomically) with the resume history, if any."""
    config_lib.save(cfg, Path(run_dir) / CONFIG_FILE, history=plan.history if plan else None)
