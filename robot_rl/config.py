"""Typed run configs: dataclasses with defaults, loaded from YAML, overridden from the CLI.

One config object describes one run. Nested dataclasses map to nested YAML mappings, and a
CLI override names a field by its dotted path: `--set agent.discount=0.99`.
Unknown keys are errors, never silently ignored, so a typo cannot change a run unnoticed.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not fit the config's fields and types."""


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
    value = yaml.safe_load(raw) if isinstance(raw, str) else raw
    if fields[head] is str and not isinstance(value, str):
        value = raw  # keep "007" or "1e3" as the user typed them for string fields
    return dataclasses.replace(cfg, **{head: _coerce(value, fields[head], dotted)})


def load(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Defaults, then the YAML file at `path`, then `key=value` overrides, in that order."""
    cfg = cls()
    if path is not None:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        cfg = _merge(cfg, data, str(path))
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        cfg = apply_override(cfg, key.strip(), raw)
    return cfg


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


def save(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
