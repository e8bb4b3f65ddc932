"""Typed configs: defaults, YAML, CLI overrides, and clear errors for anything that does not fit."""
from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from robot_rl import config as config_lib
from robot_rl.config import ConfigError


@dataclass
class Inner:
    lr: float = 3e-4
    sizes: tuple[int, ...] = (256, 256)
    clip: tuple[float, float, float] = (0.01, 0.01, 0.01)


@dataclass
class Outer:
    name: str = "run"
    steps: int = 100
    obs: Literal["state", "pixels"] = "state"
    flag: bool = False
    path: Optional[str] = None
    inner: Inner = field(default_factory=Inner)


def test_defaults_yaml_then_overrides_in_order(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("steps: 5\ninner:\n  lr: 0.001\n")
    cfg = config_lib.load(Outer, f, ["inner.sizes=[64, 64, 64]", "flag=true", "steps=7"])
    assert cfg.steps == 7                      # the override wins over the file
    assert cfg.inner.lr == 0.001               # the file wins over the default
    assert cfg.inner.clip == (0.01, 0.01, 0.01)  # untouched sibling keeps its default
    assert cfg.inner.sizes == (64, 64, 64) and isinstance(cfg.inner.sizes, tuple)
    assert cfg.flag is True and cfg.name == "run"


def test_save_then_load_round_trips(tmp_path):
    cfg = config_lib.load(Outer, None, ["obs=pixels", "path=/tmp/x", "inner.lr=1e-3"])
    config_lib.save(cfg, tmp_path / "c.yaml")
    assert config_lib.load(Outer, tmp_path / "c.yaml") == cfg


def test_string_fields_keep_what_was_typed():
    assert config_lib.load(Outer, None, ["name=007"]).name == "007"


@pytest.mark.parametrize("override, message", [
    ("stepz=3", "unknown config key"),
    ("inner.nope=1", "unknown config key"),
    ("steps=abc", "expected int"),
    ("steps=1.5", "expected an integer"),
    ("obs=video", "not one of"),
    ("flag=maybe", "true/false"),
    ("inner.clip=[1, 2]", "expected 3 items"),
    ("steps", "key=value"),
    ("name.sub=1", "not a section"),
])
def test_bad_overrides_raise_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        config_lib.load(Outer, None, [override])


def test_unknown_yaml_key_is_an_error(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("inner:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        config_lib.load(Outer, f)
