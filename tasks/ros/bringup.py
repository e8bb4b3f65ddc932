"""`robot-rl up RIG`: start a rig's ROS 2 graph without ros2 launch (a pip-only install).

    robot-rl up twin                  # a shipped profile: launch/twin.yaml; all nodes in this process
    robot-rl up my_rig.yaml           # your rig file (tasks/ros/rig.py, docs/rigs.md)
    robot-rl up twin --processes      # one child process per node
    robot-rl up --list                # the shipped profiles and their nodes
    robot-rl up --kinds               # the node kinds a rig file may name

A rig file lists the nodes and their parameters (tasks/ros/rig.py); launch/rig_launch.py starts
the same nodes under a system ROS 2 (`ros2 launch robot_rl rig_launch.py rig:=FILE`), and the
profiles' launch files are that one with their file. Every node gets its parameters from one
standard ROS 2 params file made from the rig (`--params-file`, as the launch files do).

Shipped profiles (launch/<profile>.yaml):
- twin:   the MuJoCo twin behind the driver topics (/franka) and, optional, the SpaceMouse
          teleop node: with no device attached it is skipped with a log line.
- franka: the Franka driver (/franka), the controller node (/franka), the RealSense node and
          the SpaceMouse node (required on hardware: a human takeover must always be possible).
- widowx: the WidowX driver (/widowx), controller (/widowx), RealSense, SpaceMouse.
- widowx_twin: the WidowX twin (/widowx) and, optional, the SpaceMouse.
A rig whose node modules are missing fails at once, naming them, and starts nothing.

Stopping: Ctrl-C (SIGINT) or SIGTERM. Composed: the main thread waits for the signal, then
shuts the executor down and destroys every node (the twin joins its physics thread).
--processes: each child runs in its own session with PR_SET_PDEATHSIG (it dies if this
process is killed outright); the signal is forwarded as SIGINT, then SIGTERM after
`--grace` s, then SIGKILL; every child is reaped before this returns. A required child that
exits on its own stops the whole graph (exit status 1).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from robot_rl.tasks.ros.rig import NODE_KINDS, NodeSpec, Rig, RigError, load_rig


PROFILES = ("twin", "franka", "widowx", "widowx_twin")   # shipped rigs: launch/<profile>.yaml


EXIT_MISSING = 2   # nodes or device missing: nothing (more) started


def params_file(profile: str) -> Path:
    """The rig file of a shipped profile: launch/<profile>.yaml of the source tree, else of the
    installed share/robot_rl/launch."""
    for folder in (Path(__file__).resolve().parents[2] / "launch",
                   Path(sys.prefix) / "share" / "robot_rl" / "launch"):
        path = folder / f"{profile}.yaml"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no parameter file {profile}.yaml in launch/ or {sys.prefix}/share/robot_rl/launch")


def resolve_rig(name_or_path: str) -> Rig:
    """A shipped profile's rig (`twin`) or a rig file (`my_rig.yaml`)."""
    if name_or_path in PROFILES:
        return load_rig(params_file(name_or_path))
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        raise RigError(f"{name_or_path!r} is neither a profile ({', '.join(PROFILES)}) nor a rig file (.yaml)")
    return load_rig(path)


def profile_nodes(profile: str) -> tuple[NodeSpec, ...]:
    return load_rig(params_file(profile)).nodes


def missing_nodes(rig: Rig) -> list[NodeSpec]:
    return [spec for spec in rig.nodes if importlib.util.find_spec(spec.module) is None]


def _say(text: str) -> None:
    print(f"[robot-rl up] {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- composed: one process
def run_composed(rig: Rig, params: Path) -> int:
    """All nodes of the profile in this process, one SingleThreadedExecutor spun on a thread;
    the main thread waits for SIGINT/SIGTERM (Python handlers: they run while it waits, which a
    thread blocked in rcl's wait could not promise), then shuts the executor down and destroys
    every node."""
    import threading

    import rclpy
    from rclpy.context import Context
    from rclpy.signals import SignalHandlerOptions

    from robot_rl.drivers.errors import DeviceNotFoundError
    from robot_rl.drivers.ros_common import Spinner

    stop = threading.Event()
    old = {s: signal.signal(s, lambda signum, frame: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    context = Context()
    rclpy.init(context=context, args=["--ros-args", "--params-file", str(params)],
               signal_handler_options=SignalHandlerOptions.NO)
    nodes = []
    # Single-threaded: every callback here is short and none waits on another, and Jazzy's
    # MultiThreadedExecutor busy-loops holding the GIL while a callback waits in its pool
    # (ros2/rclpy#1452, fixed upstream by #1547): in one process with the twin's physics
    # thread it slowed the WidowX twin to ~0.05x real time (tests/sim/test_widowx_twin.py).
    # The executor ending on its own (a node raised) stops the graph too.
    spinner = Spinner(context=context, name="up-executor", start=False, on_exit=stop.set, daemon=False)
    status = 0
    try:
        for spec in rig.nodes:
            cls = getattr(importlib.import_module(spec.module), spec.node_class)
            try:
                # The node's own name remapped (two cameras of one kind), and its topic remaps.
                node = cls(context=context, namespace=spec.namespace,
                           cli_args=["--ros-args", "-r", f"__node:={spec.name}", *spec.ros_args()])
            except DeviceNotFoundError as err:
                if spec.optional:
                    _say(f"{spec.name}: skipped, no device ({err}); the rest of the graph runs")
                    continue
                _say(f"{spec.name}: {err}; stopping")
                return EXIT_MISSING
            except Exception as err:  # a node that cannot start stops the graph, saying why
                _say(f"{spec.name} ({spec.module}.{spec.node_class}) failed to start: "
                     f"{type(err).__name__}: {err}; stopping")
                return 1
            nodes.append(node)
            spinner.add(node)
            _say(f"started {node.get_fully_qualified_name()} ({spec.what})")
            if stop.is_set():
                return status
        spinner.start()
        _say(f"rig {rig.path.stem} up, composed in one process (pid {os.getpid()}); Ctrl-C stops it")
        while not stop.wait(0.5):
            pass
    finally:
        spinner.close()
        for node in reversed(nodes):
            node.destroy_node()   # the twin's destroy_node joins its physics thread
        if context.ok():
            rclpy.shutdown(context=context)
        for s, handler in old.items():
            signal.signal(s, handler)
        _say(f"rig {rig.path.stem} stopped")
    return status


# ---------------------------------------------------------------- --processes: one child each
def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies, even by SIGKILL (Linux)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def child_command(spec: NodeSpec, params: Path) -> list[str]:
    return [sys.executable, "-m", spec.module, "--ros-args", "--params-file", str(params),
            "-r", f"__ns:={spec.namespace}", "-r", f"__node:={spec.name}", *spec.ros_args()]


def run_processes(rig: Rig, params: Path, grace: float = 5.0) -> int:
    stop = {"signal": None}

    def on_signal(signum, frame):
        stop["signal"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    children: dict[str, tuple[NodeSpec, subprocess.Popen]] = {}
    status = 0
    try:
        for spec in rig.nodes:
            proc = subprocess.Popen(child_command(spec, params), start_new_session=True,
                                    preexec_fn=_die_with_parent)
            children[spec.name] = (spec, proc)
            _say(f"started {spec.executable} as pid {proc.pid}: {spec.namespace.rstrip('/')}/{spec.name} ({spec.what})")
        _say(f"rig {rig.path.stem} up as {len(children)} processes; Ctrl-C stops them")
        while stop["signal"] is None:
            for name, (spec, proc) in list(children.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                del children[name]
                if spec.optional and rc == EXIT_MISSING:
                    _say(f"{name}: skipped, no device (exit {rc}); the rest of the graph runs")
                    continue
                _say(f"{name} (pid {proc.pid}) exited with status {rc}; stopping the graph")
                status = 1 if rc != EXIT_MISSING else EXIT_MISSING
                stop["signal"] = "child"
                break
            time.sleep(0.1)
    finally:
        _stop_children([proc for _, proc in children.values()], grace)
        for s, handler in old.items():
            signal.signal(s, handler)
        _say(f"rig {rig.path.stem} stopped; every child reaped")
    return status


def _stop_children(procs: list[subprocess.Popen], grace: float) -> None:
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
        alive = [p for p in procs if p.poll() is None]
        if not alive:
            return
        for p in alive:
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        for p in alive:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass


# ---------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="robot-rl up", description=__doc__.split("\n\n")[0])
    parser.add_argument("rig", nargs="?", help=f"a profile ({', '.join(PROFILES)}) or a rig file (.yaml)")
    parser.add_argument("--processes", action="store_true", help="one process per node")
    parser.add_argument("--grace", type=float, default=5.0, help="s children get to stop on SIGINT")
    parser.add_argument("--list", action="store_true", help="print the profiles and their nodes")
    parser.add_argument("--kinds", action="store_true", help="print the node kinds a rig file may use")
    args = parser.parse_args(argv)
    if args.kinds:
        for kind, k in NODE_KINDS.items():
            print(f"{kind:<11} {k.executable:<22} default {k.namespace.rstrip('/')}/{k.name:<18} {k.what}")
        return 0
    if args.list or args.rig is None:
        for name in PROFILES:
            print(f"{name}: launch/{name}.yaml")
            for s in profile_nodes(name):
                print(f"  {s.fqn:<28} {s.executable:<22} {s.module}"
                      f"{'  (optional)' if s.optional else ''}  {s.what}")
        return 0 if args.list else 2
    try:
        rig = resolve_rig(args.rig)
    except RigError as e:
        print(f"robot-rl: error: {e}", file=sys.stderr)
        return EXIT_MISSING
    missing = missing_nodes(rig)
    if missing:
        names = ", ".join(f"{s.executable} ({s.module}: {s.what})" for s in missing)
        _say(f"rig {rig.path} cannot start: missing {names}. Nothing was started. "
             f"Nodes of the rig: {', '.join(s.executable for s in rig.nodes)}")
        return EXIT_MISSING
    import tempfile
    with tempfile.TemporaryDirectory(prefix="robot_rl_up_") as tmp:
        # Every node reads its parameters from one standard ROS 2 params file made from the rig.
        params = rig.to_params_file(Path(tmp) / "params.yaml")
        if args.processes:
            return run_processes(rig, params, args.grace)
        return run_composed(rig, params)


if __name__ == "__main__":
    raise SystemExit(main())
