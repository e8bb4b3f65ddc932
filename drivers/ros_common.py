"""Small rclpy helpers shared by the driver nodes: parameters, stamps, spinning with a stop path."""
from __future__ import annotations

import dataclasses
import math
import sys
import threading
import typing
from typing import Any, Callable, Sequence, TypeVar

import rclpy
from builtin_interfaces.msg import Time
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.context import Context
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from robot_rl.drivers.errors import DeviceNotFoundError
from robot_rl.config import Range, Text, describe_rule, help_of, rule_of, rule_problem

T = TypeVar("T")


_INT64 = 2 ** 63 - 1
_FLOAT_MAX = sys.float_info.max


def _descriptor(description: str, rule: Any, value: Any, read_only: bool, dynamic: bool) -> ParameterDescriptor:
    """A parameter's descriptor: its description, read-only flag and, for a numeric field with
    a Range, the IntegerRange / FloatingPointRange that rclpy enforces on every set. What a
    ROS range cannot say (an open end, a range per array item, choices) goes in
    additional_constraints, and is checked by declare_config."""
    desc = ParameterDescriptor(description=description, read_only=read_only, dynamic_typing=dynamic,
                               additional_constraints=describe_rule(rule))
    typ = type(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if dynamic:
        return desc                     # a range would tie the parameter to one type
    if isinstance(rule, Range) and typ is int:
        desc.integer_range = [IntegerRange(
            from_value=-_INT64 if rule.low is None else int(math.ceil(rule.low)),
            to_value=_INT64 if rule.high is None else int(math.floor(rule.high)), step=0)]
    elif isinstance(rule, Range) and typ is float:
        desc.floating_point_range = [FloatingPointRange(
            from_value=-_FLOAT_MAX if rule.low is None else float(rule.low),
            to_value=_FLOAT_MAX if rule.high is None else float(rule.high), step=0.0)]
    return desc


def _plain(value: Any) -> Any:
    """A parameter value as plain Python (rclpy hands double arrays as array.array)."""
    return list(value) if hasattr(value, "tolist") or isinstance(value, (list, tuple)) else value


def _declare_value(node: Node, name: str, default: Any, description: str, dynamic: bool) -> Any:
    """declare_parameter with the description only; a wrongly typed override is a ValueError
    naming the parameter. The range and read-only flag come after the value is checked
    (_finish), so a bad value is refused in our words, not rclpy's."""
    try:
        node.declare_parameter(name, default, ParameterDescriptor(description=description,
                                                                  dynamic_typing=dynamic))
    except ParameterException as err:
        raise ValueError(f"{name}: {str(err).removesuffix(f': {name}')}") from None
    return _plain(node.get_parameter(name).value)


def _finish(node: Node, name: str, description: str, rule: Any, read_only: bool, dynamic: bool) -> None:
    current = node.get_parameter(name)
    desc = _descriptor(description, rule, current.value, read_only, dynamic)
    desc.type = current.type_.value
    node.set_descriptor(name, desc)


def range_problem(descriptor: ParameterDescriptor, value: Any) -> str | None:
    """Why rclpy refuses `value` for a parameter with this descriptor's numeric range (the
    refusal happens before any on-set callback; this lets a node log it), or None."""
    ranges = list(descriptor.floating_point_range) + list(descriptor.integer_range)
    if not ranges or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    low, high = ranges[0].from_value, ranges[0].to_value
    if (low <= value <= high) or math.isclose(value, low) or math.isclose(value, high):
        return None
    return f"must be in [{low:g}, {high:g}], got {value!r}"


def declare(node: Node, name: str, default: Any, description: str, rule: Any = None, *,
            read_only: bool = False, dynamic: bool = False) -> Any:
    """Declares one ROS 2 parameter (description, range, read-only) and returns its value.
    A wrongly typed or out-of-range override is a ValueError naming the parameter, for the
    node's one-line start-up error. dynamic: accept any type (e.g. a serial number typed on
    the command line parses as int)."""
    value = _declare_value(node, name, default, description, dynamic)
    problem = rule_problem(rule if isinstance(rule, (Range, Text)) else None, value)  # callables: declare_config
    if problem:
        raise ValueError(f"{name} {problem}, got {value!r}")
    _finish(node, name, description, rule, read_only, dynamic)
    return value


def declare_config(node: Node, cfg: T, prefix: str = "", make: Callable[..., T] | None = None) -> T:
    """Declares one ROS 2 parameter per field of the config dataclass `cfg` (its values are the
    defaults; help, range and read-only from the field, robot_rl.config.param) and returns the
    config the parameters hold, built by `make(**values)` (default: a copy of `cfg`; a config
    whose constructor validates gives its own errors). Tuples are declared as arrays; a float
    field always as a double. ValueError naming the first bad parameter; the ranges are then
    in the descriptors, so rclpy refuses a run-time change outside them too."""
    hints = typing.get_type_hints(type(cfg))
    values = {}
    for f in dataclasses.fields(cfg):
        default = getattr(cfg, f.name)
        if default is None:
            raise TypeError(f"{type(cfg).__name__}.{f.name}: a ROS parameter cannot default to None")
        typ = hints[f.name]
        if typ is float:
            default = float(default)
        elif isinstance(default, tuple):
            floats = float in typing.get_args(typ)
            default = [float(v) if floats else v for v in default]
        value = _declare_value(node, prefix + f.name, default, help_of(f), f.metadata.get("dynamic", False))
        if f.metadata.get("dynamic", False) and typ is str:
            value = str(value)          # e.g. a serial number typed as digits arrives as an int
        values[f.name] = tuple(value) if isinstance(getattr(cfg, f.name), tuple) else value
    out = (make or (lambda **v: dataclasses.replace(cfg, **v)))(**values)
    for f in dataclasses.fields(out):
        value = getattr(out, f.name)
        problem = rule_problem(rule_of(f), value, out)     # callable rules see the whole config
        if problem:
            raise ValueError(f"{prefix}{f.name} {problem}, got {_plain(value)!r}")
    for f in dataclasses.fields(cfg):
        _finish(node, prefix + f.name, help_of(f), rule_of(f), f.metadata.get("read_only", False),
                f.metadata.get("dynamic", False))
    return out


def stamp(seconds: float) -> Time:
    """A builtin_interfaces/Time from seconds (any clock: ROS time or a device clock)."""
    sec = int(seconds // 1)
    return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def stamp_seconds(t: Time) -> float:
    return t.sec + t.nanosec * 1e-9


class Spinner:
    """Spins nodes in a SingleThreadedExecutor on a thread, with an explicit stop path: the one
    background spin of the project (tools, tests, the actor/learner mains, NodeThread).

    A SingleThreadedExecutor: Jazzy's MultiThreadedExecutor busy-loops holding the GIL
    (ros2/rclpy#1452). The nodes stay the caller's: close() stops spinning, never destroys.
    """

    def __init__(self, nodes: Sequence[Node] = (), context: Context | None = None,
                 name: str = "ros-spinner", start: bool = True, on_exit: Callable[[], None] | None = None,
                 daemon: bool = True):
        """start=False: add nodes and create their entities first, then start(). on_exit runs
        when the spin ends, by close() or on its own (a callback raised): a graph stops then.
        daemon=False: an interpreter exit waits for a callback in progress (a process whose
        whole job is the graph) instead of cutting it off."""
        self._on_exit = on_exit
        self.executor = SingleThreadedExecutor(context=context)
        for n in nodes:
            self.executor.add_node(n)
        self._thread = threading.Thread(target=self._spin, name=name, daemon=daemon)
        self._closed = False
        if start:
            self.start()

    def start(self) -> None:
        if not self._closed:          # a closed executor is shut down: nothing to spin
            self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except (ExternalShutdownException, KeyboardInterrupt):
            pass
        finally:
            if self._on_exit is not None:
                self._on_exit()

    def add(self, node: Node) -> None:
        self.executor.add_node(node)

    def remove(self, node: Node) -> None:
        self.executor.remove_node(node)

    def close(self) -> None:
        """Stops the executor and joins its thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.executor.shutdown(timeout_sec=2.0)
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)


def run_node(make_node: Callable[[], Node], args: list[str] | None = None) -> int:
    """Entry-point body: init, build the node, spin until Ctrl-C, always clean up. A node that
    refuses its parameters (ValueError, naming them) or finds no device ends with one error
    line and status 2."""
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = make_node()
        except ValueError as e:  # bad parameters: the message names them
            print(f"error: {e}", file=sys.stderr)
            return 2
        rclpy.spin(node)
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except DeviceNotFoundError as e:  # no device: say so plainly, never pretend
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def log(node: Node, level: str, text: str) -> None:
    """Logs at 'info' / 'warn' / 'error' (rclpy wants one severity per call site)."""
    if level == "info":
        node.get_logger().info(text)
    elif level == "warn":
        node.get_logger().warn(text)
    else:
        node.get_logger().error(text)
