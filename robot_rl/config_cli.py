"""Command-line flags derived from a config dataclass: one flag per field, its help text and
range taken from the field (robot_rl.config.param), so a command and its config cannot drift.

    add_arguments(parser, DeployConfig, positional=("run_dir",))
    cfg = from_args(DeployConfig, parser.parse_args(argv))   # ConfigError naming the flag

A field `max_steps` is the flag `--max-steps`; a bool field is a switch (`--video`); an
Optional field left unset is None. Values are range-checked after parsing, so a value out of
range is one line naming the flag, the value and the allowed range.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

from robot_rl.config import ConfigError, Range, Text, describe_rule, help_of, rule_of, rule_problem

T = TypeVar("T")


def flag_of(name: str, positional: tuple[str, ...] = ()) -> str:
    """The command-line spelling of a field: `max_steps` -> `--max-steps` (positional: as is)."""
    return name if name in positional else "--" + name.replace("_", "-")


def _scalar_type(typ: Any) -> Any:
    """int, float, str or bool behind Optional[...] (the flag's value type)."""
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if len(args) == 1:
            return _scalar_type(args[0])
    if typ in (int, float, str, bool):
        return typ
    raise TypeError(f"a command-line flag needs an int, float, str or bool field, not {typ}")


def add_arguments(parser: argparse.ArgumentParser, cls: type, positional: tuple[str, ...] = ()) -> None:
    """One argument per field of `cls` (in field order), help and choices from the field."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        typ = _scalar_type(hints[f.name])
        rule = rule_of(f)
        kwargs: dict[str, Any] = {"dest": f.name} if f.name not in positional else {}
        allowed = describe_rule(rule).replace(" or null", "")    # null: the flag left out
        default = None if f.default is dataclasses.MISSING else f.default
        notes = []
        if default is not None and default != "" and typ is not bool:
            notes.append(f"default {default}")
        if isinstance(rule, Range):       # choices show themselves; "a string" says nothing
            notes.append(allowed)
        kwargs["help"] = help_of(f) + (f" ({'; '.join(notes)})" if notes else "")
        if typ is bool:
            kwargs["action"] = argparse.BooleanOptionalAction if default else "store_true"
        else:
            kwargs["type"] = typ
            if isinstance(rule, Text) and rule.choices:
                kwargs["choices"] = list(rule.choices)
        if f.name not in positional:
            kwargs["default"] = default
        parser.add_argument(flag_of(f.name, positional), **kwargs)


def from_args(cls: type[T], args: argparse.Namespace, positional: tuple[str, ...] = ()) -> T:
    """The config the parsed flags describe; ConfigError ("--episodes 0: must be in [1, ...]")
    for the first value outside its field's range."""
    cfg = cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
    for f in dataclasses.fields(cls):
        value = getattr(cfg, f.name)
        problem = rule_problem(rule_of(f), value, cfg)
        if problem:
            problem = problem.replace(" or null", "")
            raise ConfigError(f"{flag_of(f.name, positional)} {value!r}: {problem}")
    return cfg
