"""The configs shipped with the package (robot_rl/configs/*.yaml), found by name.

`robot-rl train --config NAME` and the actor/learner nodes' `config_file` take a path or the
name of a shipped config (`train_default`, `plain_rlpd`, ...; `robot-rl config --list` lists
them). A path that exists wins over a shipped name. docs/configs.md describes each file.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from robot_rl.config import ConfigError


def shipped() -> dict[str, Path]:
    """{name: path} of every shipped config."""
    root = resources.files(__name__)
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def resolve(name_or_path: str | Path) -> Path:
    """The config file a --config value means: a bare shipped name (with or without .yaml) that
    is not a file here means the shipped config; anything else is a path, which the loader
    reads and names what is wrong with it (missing, a directory, not YAML)."""
    path = Path(name_or_path)
    configs = shipped()
    name = path.name[:-5] if path.name.endswith(".yaml") else path.name
    if not path.exists() and str(path.parent) == "." and name in configs:
        return configs[name]
    if not path.exists() and str(path.parent) == "." and not path.suffix:
        raise ConfigError(f"config {str(name_or_path)!r}: no such file, and not a shipped config "
                          f"(shipped: {', '.join(sorted(configs))})")
    return path
