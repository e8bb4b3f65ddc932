"""Reads a user's YAML file (a rig, a task) with one-line errors naming the file."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read_yaml(path: str | Path, error: type[Exception], what: str) -> Any:
    """The file's YAML content; `error` with one line for an unreadable file or bad YAML."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except OSError as e:
        raise error(f"{path}: cannot read the {what}: {e.strerror or e}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise error(f"{path}: not a YAML file: {str(e).splitlines()[0]}") from None
