"""Typed run configs: dataclasses with defaults, loaded from YAML, overridden from the CLI.

One config object describes one run. Nested dataclasses map to nested YAML mappings, and a
CLI override names a field by its dotted path: `--set agent.discount=0.99`.
Unknown keys are errors, never silently ignored, so a typo cannot change a run unnoticed.
Values are range-checked against a table of `Range`s (check_ranges): a type that fits is not
enough, a negative step count or a NaN learning rate is refused with the field named.

A field may also carry its help text and allowed values itself (`param`): then the one
declaration is what the CLI flags (robot_rl/config_cli.py) and a node's ROS 2 parameters
(drivers/ros_common.py declare_config) are derived from, so they cannot drift apart.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not fit the config's fields and types."""


@dataclasses.dataclass(frozen=True)
class Range:
    """The allowed values of one numeric field: [low, high] (either end open, or None = no bound).
    Floats must also be finite. `optional`: None is allowed too."""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False

    def describe(self) -> str:
        def num(x: float) -> str:
            return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"
        lo = "-inf" if self.low is None else num(self.low)
        hi = "inf" if self.high is None else num(self.high)
        text = f"{'(' if self.low is None or self.low_open else '['}{lo}, {hi}{')' if self.high is None or self.high_open else ']'}"
        return text + (" or null" if self.optional else "")

    def contains(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return False
        return True


@dataclasses.dataclass(frozen=True)
class Text:
    """A string field: non-empty unless allow_empty; optionally one of `choices`.
    `optional`: None is allowed too."""
    allow_empty: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False

    def describe(self) -> str:
        text = (f"one of {list(self.choices)}" if self.choices
                else "any string" if self.allow_empty else "a non-empty string")
        return text + (" or null" if self.optional else "")

    def contains(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if not isinstance(value, str) or (not value and not self.allow_empty):
            return False
        return not self.choices or value in self.choices


def param(default: Any = dataclasses.MISSING, help: str = "", rule: Any = None, *,
          read_only: bool = False, dynamic: bool = False) -> Any:
    """A config field that carries its own help text and allowed values (`rule`: a Range, a
    Text or a callable(value, cfg) -> error text | None), the one place both live. `read_only`:
    a ROS parameter that is set at start-up only; `dynamic`: a ROS parameter of any type (a
    serial number typed on the command line parses as an int). A list default is copied per
    instance."""
    metadata = {"help": help, "rule": rule, "read_only": read_only, "dynamic": dynamic}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def help_of(f: dataclasses.Field) -> str:
    return f.metadata.get("help", "")


def rule_of(f: dataclasses.Field) -> Any:
    return f.metadata.get("rule")


def describe_rule(rule: Any) -> str:
    """The allowed values in words: "in [0, 1]", "one of ['a', 'b']" ('' for a callable)."""
    if isinstance(rule, Range):
        return f"in {rule.describe()}"
    if isinstance(rule, Text):
        return rule.describe()
    return ""


def rule_problem(rule: Any, value: Any, cfg: Any = None) -> str | None:
    """Why `value` breaks `rule` ("must be in [1, 10]"), or None when it fits. A sequence is
    checked item by item; a float without a rule must still be finite."""
    if rule is None:
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        return None
    if callable(rule) and not isinstance(rule, (Range, Text)):
        return rule(value, cfg) or None
    if isinstance(value, (list, tuple)) and not value:
        return "must not be empty"
    items = value if isinstance(value, (list, tuple)) else [value]
    if all(rule.contains(item) for item in items):
        return None
    return f"must be {describe_rule(rule)}"


def check_ranges(cfg: Any, table: dict[str, Any] | None = None, prefix: str = "") -> None:
    """Raises ConfigError naming the first field of `cfg` (a dataclass, nested ones walked)
    whose value is outside its entry in `table` ({dotted path: Range | Text | callable}), or
    else the field's own rule (`param`). A sequence field is checked item by item; a callable
    rule returns an error text or None. Floats without a rule must still be finite."""
    table = table or {}
    for f in dataclasses.fields(cfg):
        name = f"{prefix}{f.name}"
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            check_ranges(value, table, f"{name}.")
            continue
        problem = rule_problem(table.get(name, rule_of(f)), value, cfg)
        if problem:
            raise ConfigError(f"{name} = {value!r}: {problem}")


def fields_of(cls: type, prefix: str = "") -> list[str]:
    """Every leaf field of a (nested) config dataclass by dotted path: what a range table covers."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        typ = hints[f.name]
        if dataclasses.is_dataclass(typ):
            out += fields_of(typ, f"{prefix}{f.name}.")
        else:
            out.append(f"{prefix}{f.name}")
    return out


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """Turns a YAML/CLI value into `typ`, or raises ConfigError naming the field."""
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if typ is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} fits none of {typ}: {errors}")
    if dataclasses.is_dataclass(typ):
        if isinstance(value, typ):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {typ.__name__}, got {value!r}")
        return from_dict(typ, value, where)
    if origin in (list, tuple):
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {args}")
        return value
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if typ in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected {typ.__name__}, got a bool")
        try:
            out = typ(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {typ.__name__}, got {value!r}") from None
        if typ is int and isinstance(value, float) and value != out:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return out
    if typ is str:
        if not isinstance(value, (str, int, float)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    if isinstance(typ, type) and not isinstance(value, typ):
        raise ConfigError(f"{where}: expected {typ.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Builds `cls` from a nested mapping; unknown keys raise ConfigError."""
    fields = _field_types(cls)
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown keys {sorted(unknown)}; "
                          f"known: {sorted(fields)}")
    kwargs = {k: _coerce(v, fields[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain YAML-ready data (tuples become lists)."""
    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(cfg))


def apply_override(cfg: T, dotted: str, raw: str) -> T:
    """Returns a copy of `cfg` with the field at `dotted` set from the string `raw` (YAML-parsed)."""
    head, _, rest = dotted.partition(".")
    fields = _field_types(type(cfg))
    if head not in fields:
        raise ConfigError(f"unknown config key {dotted!r}; known at this level: {sorted(fields)}")
    if rest:
        sub = getattr(cfg, head)
        if not dataclasses.is_dataclass(sub):
            raise ConfigError(f"{head!r} is not a section, so {dotted!r} cannot be set")
        return dataclasses.replace(cfg, **{head: apply_override(sub, rest, raw)})
    try:
        value = yaml.safe_load(raw) if isinstance(raw, str) else raw
    except yaml.YAMLError:
        raise ConfigError(f"{dotted}: the value {raw!r} is not valid YAML") from None
    if fields[head] is str and not isinstance(value, str):
        value = raw  # keep "007" or "1e3" as the user typed them for string fields
    return dataclasses.replace(cfg, **{head: _coerce(value, fields[head], dotted)})


def load(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Defaults, then the YAML file at `path`, then `key=value` overrides, in that order."""
    cfg = cls()
    if path is not None:
        data = read_yaml(path)
        cfg = _merge(cfg, data, str(path))
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        cfg = apply_override(cfg, key.strip(), raw)
    return cfg


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from `path`; ConfigError naming the file for anything else (missing, a
    directory, unreadable, binary, bad YAML, not a mapping)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (UTF-8 YAML) file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it ({e.strerror or e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{at} ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of config fields, got "
                          f"{type(data).__name__}")
    return data


def _merge(base: T, data: dict[str, Any], where: str) -> T:
    """Sets only the keys present in `data` on top of `base` (nested sections merge, not replace)."""
    fields = _field_types(type(base))
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(fields)}")
    changes = {}
    for key, value in data.items():
        current = getattr(base, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            changes[key] = _merge(current, value, f"{where}:{key}")
        else:
            changes[key] = _coerce(value, fields[key], f"{where}:{key}")
    return dataclasses.replace(base, **changes)


def save(cfg: Any, path: str | Path, history: list[dict[str, Any]] | None = None) -> None:
    """Writes the config as YAML, atomically (a reader sees the old file or the new one).
    `history` (resumes and the settings they changed) goes in a trailing `_history` comment
    block, so the file still loads as the config alone."""
    from robot_rl.atomic_io import write_bytes_atomic

    text = yaml.safe_dump(to_dict(cfg), sort_keys=False)
    if history:
        lines = yaml.safe_dump({"history": history}, sort_keys=False).splitlines()
        text += "# Resumes of this run and the settings each changed (robot_rl.config.read_history):\n"
        text += "".join(f"#| {line}\n" for line in lines)
    write_bytes_atomic(path, text.encode(), fsync=False)


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The resume history that save() appended to a config file ([] if none or unreadable)."""
    try:
        lines = [line[3:] for line in Path(path).read_text().splitlines() if line.startswith("#| ")]
        data = yaml.safe_load("\n".join(lines)) if lines else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    history = data.get("history") if isinstance(data, dict) else None
    return history if isinstance(history, list) else []
