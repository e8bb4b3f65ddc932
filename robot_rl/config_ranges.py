"""The allowed range of every TrainConfig field (its nested agent, buffer and intervention
sections included), and the one check that applies them before a run touches anything.

A type that fits is not enough: `steps=-5`, `updates_per_step=-1`, `agent.actor_lr=nan` or
`demos=-1` all parse, and each used to run silently wrong or crash mid-run. Every leaf field
has an entry here; tests/security/test_configs.py fails when a new field is added without one.
Cross-field rules (std_min below std_max, the sections' own validate()) come after.
"""
from __future__ import annotations

import re
from typing import Any

from robot_rl.config import ConfigError, Range, Text, check_ranges
from robot_rl.networks.encoder_choice import BACKBONES

_BIG = 2 ** 31 - 1
COUNT = Range(0, _BIG)                  # a count that may be zero
POSITIVE = Range(1, _BIG)               # a count of at least one
FRACTION = Range(0.0, 1.0)
LEARNING_RATE = Range(0.0, 1.0, low_open=True)
NON_NEGATIVE = Range(0.0, 1e9)
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _device(value: Any, cfg: Any) -> str | None:
    if isinstance(value, str) and _DEVICE.match(value):
        return None
    return "must be auto, cpu, mps, cuda or cuda:N"


def _optional_path(value: Any, cfg: Any) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return None
    return "must be null or a path to a safetensors file"


def _mapping(value: Any, cfg: Any) -> str | None:
    return None if isinstance(value, dict) else "must be a mapping"


def _names(value: Any, cfg: Any) -> str | None:
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value):
        return None
    return "must be a list of non-empty names (empty: all that fit)"


TRAIN_RANGES: dict[str, Any] = {
    "task": Text(),
    "obs": Text(choices=("state", "pixels")),
    "task_overrides": _mapping,          # its keys and values are checked by the task spec
    "steps": COUNT,
    "seed": Range(0, 2 ** 32 - 1),
    "run_dir": Text(),
    "demos": Range(0, 1_000_000),
    "demo_dataset": Text(allow_empty=True),
    "reward_classifier": Text(allow_empty=True),
    "demo_noise": Range(0.0, 10.0),
    "random_steps": COUNT,
    "video_every": COUNT,
    "learning_starts": COUNT,
    "updates_per_step": Range(0.0, 1000.0),
    "batch_size": Range(1, 1 << 20),
    "eval_every": COUNT,
    "eval_episodes": COUNT,
    "final_eval_episodes": COUNT,
    "stop_at_success": FRACTION,
    "checkpoint_every": COUNT,
    "resume": None,                      # bools: their type is their range
    "device": _device,
    "threads": Range(0, 4096),
    "progress": None,
    # agent (robot_rl.agents.sac.SACConfig; its own validate() runs too)
    "agent.discount": FRACTION,
    "agent.tau": Range(0.0, 1.0, low_open=True),
    "agent.actor_lr": LEARNING_RATE,
    "agent.critic_lr": LEARNING_RATE,
    "agent.temperature_lr": LEARNING_RATE,
    "agent.init_temperature": Range(0.0, 1e6, low_open=True),
    "agent.target_entropy": Range(-1e6, 1e6, optional=True),
    "agent.backup_entropy": None,
    "agent.critic_ensemble_size": Range(1, 1024),
    "agent.critic_subsample_size": Range(1, 1024, optional=True),
    "agent.critic_actor_ratio": Range(1, 1000),
    "agent.hidden_dims": Range(1, 1 << 16),
    "agent.std_min": Range(0.0, 1e3, low_open=True),
    "agent.std_max": Range(0.0, 1e3, low_open=True),
    "agent.grasp_critic": None,
    "agent.grasp_hidden_dims": Range(1, 1 << 16),
    "agent.grasp_lr": LEARNING_RATE,
    "agent.grasp_epsilon": FRACTION,
    "agent.bc_weight": Range(0.0, 1e6),
    "agent.bc_trains_encoder": None,
    "agent.encoder.backbone": Text(choices=BACKBONES),
    "agent.encoder.pretrained_backbone": _optional_path,
    "agent.encoder.freeze_backbone": None,
    "agent.encoder.freeze_random_backbone": None,
    "agent.encoder.small_conv_resolution": lambda v, _cfg: (
        None if isinstance(v, int) and 8 <= v <= 512 and v % 4 == 0
        else "must be a multiple of 4 in [8, 512]"),
    "agent.encoder.blank_images": None,
    "agent.encoder.num_spatial_features": Range(1, 1024),
    "agent.encoder.image_latent_dim": Range(1, 1 << 16),
    "agent.encoder.proprio_latent_dim": Range(1, 1 << 16),
    "agent.encoder.dropout": Range(0.0, 1.0, high_open=True),
    "agent.encoder.augment_pad": Range(0, 64),
    "agent.encoder.feature_variants": Range(1, 64),
    "agent.encoder.trace_frozen_backbone": None,
    "agent.encoder.head_dtype": Text(choices=("auto", "float32", "bfloat16")),
    "agent.normalize_state": None,
    "agent.compile": None,
    # buffer (robot_rl.buffers.BufferConfig)
    "buffer.capacity": Range(2, 1 << 40),
    "buffer.demo_capacity": Range(2, 1 << 40),
    "buffer.fsync": None,
    "buffer.demo_ratio": FRACTION,
    "buffer.check_continuity": None,
    "buffer.pin_memory": None,
    # intervention (robot_rl.scripted_human.InterventionConfig; its own validate() runs too)
    "intervention.enabled": None,
    "intervention.trigger": Text(),
    "intervention.stall_steps": POSITIVE,
    "intervention.stall_progress": NON_NEGATIVE,
    "intervention.regress_margin": Range(0.0, 1e9, low_open=True),
    "intervention.drift_window": POSITIVE,
    "intervention.takeover_threshold": NON_NEGATIVE,
    "intervention.release_threshold": NON_NEGATIVE,
    "intervention.min_takeover_steps": POSITIVE,
    "intervention.max_takeover_steps": POSITIVE,
    "intervention.budget_steps": COUNT,
    "intervention.compare_gripper": None,
    "intervention.noise": NON_NEGATIVE,
    # a gymnasium env instead of a built-in task (robot_rl.envs.gym_adapter.GymEnvConfig)
    "env": Text(allow_empty=True),
    "gym.kwargs": _mapping,
    "gym.expert": Text(allow_empty=True),
    "gym.state_keys": _names,
    "gym.image_keys": _names,
    "gym.image_layout": Text(choices=("hwc", "chw")),
    "gym.success_key": Text(),
    "gym.max_episode_steps": COUNT,
    "gym.control_hz": Range(0.0, 1e4, low_open=True),
}


def validate_train_config(cfg: Any) -> Any:
    """Raises ConfigError naming the first field out of range (or a broken cross-field rule);
    returns cfg. Runs before a run creates or changes anything on disk."""
    check_ranges(cfg, {k: v for k, v in TRAIN_RANGES.items() if v is not None})
    # The sections' own rules (relations between their fields), as config errors.
    for section in ("agent", "intervention"):
        validate = getattr(getattr(cfg, section), "validate", None)
        if validate is not None:
            try:
                validate()
            except ValueError as e:
                raise ConfigError(f"{section}: {e}") from None
    if cfg.agent.std_min >= cfg.agent.std_max:
        raise ConfigError(f"agent.std_min = {cfg.agent.std_min!r}: must be below agent.std_max "
                          f"({cfg.agent.std_max!r})")
    return cfg
