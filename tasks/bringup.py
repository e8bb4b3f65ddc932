"""`robot-rl up PROFILE`: start a profile's ROS 2 graph without ros2 launch (a pip-only install).

    robot-rl up twin                  # all nodes in this process, one SingleThreadedExecutor
    robot-rl up twin --processes      # one child process per node
    robot-rl up franka --params my.yaml
    robot-rl up --list                # the profiles and their nodes

The graph is PROFILES below, the same nodes (executable, name, namespace) as
launch/<profile>_launch.py - a test holds the two together - with the parameters of
launch/<profile>.yaml (standard ROS 2 params-file format, given to every node as
`--params-file`, exactly as the launch files do).

Profiles:
- twin:   sim.twin_node (the MuJoCo twin behind the driver topics, /franka) and, optional,
          the SpaceMouse teleop node: with no device attached it is skipped with a log line.
- franka: the Franka driver (drivers.franka_node, /franka), the controller node (/franka),
          the RealSense node and the SpaceMouse node (required on hardware: a human takeover
          must always be possible).
- widowx: the WidowX driver (drivers.widowx_node, /widowx), controller (/widowx), RealSense,
          SpaceMouse.
A profile whose node modules are missing (the arm drivers before their issue lands) fails at
once, naming them, and starts nothing.

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
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class NodeSpec:
    executable: str       # console entry point (setup.py) = the launch file's executable
    module: str           # module with main() and the node class
    node_class: str
    name: str             # the node's name (its class's default name)
    namespace: str
    optional: bool = False  # a missing device (exit status 2 / DeviceNotFoundError) is skipped
    what: str = ""
    remappings: tuple[tuple[str, str], ...] = ()   # (from, to) topic names, as in the launch file

    def ros_args(self) -> list[str]:
        """Node-specific remappings in ROS 2 command-line form."""
        return [a for src, dst in self.remappings for a in ("-r", f"{src}:={dst}")]


_SPACEMOUSE = dict(executable="robot-rl-spacemouse", module="drivers.spacemouse_node",
                   node_class="SpaceMouseNode", name="spacemouse", namespace="/",
                   what="SpaceMouse teleop: /spacemouse/twist, /spacemouse/joy")
_REALSENSE = NodeSpec("robot-rl-realsense", "drivers.realsense_node", "RealSenseNode",
                      "realsense_camera", "/", what="RealSense cameras: /cameras/<name>/...")

PROFILES: dict[str, tuple[NodeSpec, ...]] = {
    "twin": (
        NodeSpec("robot-rl-twin", "sim.twin_node", "TwinNode", "twin", "/franka",
                 what="MuJoCo twin: the Franka driver's and the cameras' topics"),
        NodeSpec(**_SPACEMOUSE, optional=True),
    ),
    "franka": (
        # The driver listens to the controller node's validated, box-clipped target.
        NodeSpec("robot-rl-franka", "drivers.franka_node", "FrankaNode", "franka", "/franka",
                 what="Franka driver: 1 kHz impedance law over pylibfranka, the hand",
                 remappings=(("equilibrium_pose", "controller/equilibrium_pose"),)),
        NodeSpec("robot-rl-controller", "controllers.node", "ControllerNode", "controller", "/franka",
                 what="safety box, watchdog, live gains for the driver"),
        _REALSENSE,
        NodeSpec(**_SPACEMOUSE),
    ),
    "widowx_twin": (
        NodeSpec("robot-rl-twin", "sim.twin_node", "TwinNode", "twin", "/widowx",
                 what="MuJoCo WidowX twin: the WidowX driver's and the cameras' topics"),
        NodeSpec(**_SPACEMOUSE, optional=True),
    ),
    "widowx": (
        NodeSpec("robot-rl-widowx", "drivers.widowx_node", "WidowXNode", "widowx", "/widowx",
                 what="WidowX driver over dynamixel-sdk",
                 remappings=(("equilibrium_pose", "controller/equilibrium_pose"),)),
        NodeSpec("robot-rl-controller", "controllers.node", "ControllerNode", "controller", "/widowx",
                 what="safety box, watchdog, live gains for the driver"),
        _REALSENSE,
        NodeSpec(**_SPACEMOUSE),
    ),
}

EXIT_MISSING = 2   # nodes or device missing: nothing (more) started


def params_file(profile: str) -> Path:
    """launch/<profile>.yaml of the source tree, else of the installed share/robot_rl/launch."""
    for folder in (Path(__file__).resolve().parents[1] / "launch",
                   Path(sys.prefix) / "share" / "robot_rl" / "launch"):
        path = folder / f"{profile}.yaml"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no parameter file {profile}.yaml in launch/ or {sys.prefix}/share/robot_rl/launch")


def missing_nodes(profile: str) -> list[NodeSpec]:
    return [spec for spec in PROFILES[profile] if importlib.util.find_spec(spec.module) is None]


def _say(text: str) -> None:
    print(f"[robot-rl up] {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- composed: one process
def run_composed(profile: str, params: Path) -> int:
    """All nodes of the profile in this process, one SingleThreadedExecutor spun on a thread;
    the main thread waits for SIGINT/SIGTERM (Python handlers: they run while it waits, which a
    thread blocked in rcl's wait could not promise), then shuts the executor down and destroys
    every node."""
    import threading

    import rclpy
    from rclpy.context import Context
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from drivers.errors import DeviceNotFoundError

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
    executor = SingleThreadedExecutor(context=context)

    def spin() -> None:
        try:
            executor.spin()
        except ExternalShutdownException:
            pass
        finally:
            stop.set()   # the executor ending on its own (a node raised) stops the graph too

    spinner = threading.Thread(target=spin, name="up-executor")
    status = 0
    try:
        for spec in PROFILES[profile]:
            cls = getattr(importlib.import_module(spec.module), spec.node_class)
            try:
                extra = {"cli_args": ["--ros-args", *spec.ros_args()]} if spec.remappings else {}
                node = cls(context=context, namespace=spec.namespace, **extra)
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
            executor.add_node(node)
            _say(f"started {node.get_fully_qualified_name()} ({spec.what})")
            if stop.is_set():
                return status
        spinner.start()
        _say(f"profile {profile} up, composed in one process (pid {os.getpid()}); Ctrl-C stops it")
        while not stop.wait(0.5):
            pass
    finally:
        executor.shutdown(timeout_sec=2.0)
        if spinner.is_alive():
            spinner.join(timeout=5.0)
        for node in reversed(nodes):
            node.destroy_node()   # the twin's destroy_node joins its physics thread
        if context.ok():
            rclpy.shutdown(context=context)
        for s, handler in old.items():
            signal.signal(s, handler)
        _say(f"profile {profile} stopped")
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


def run_processes(profile: str, params: Path, grace: float = 5.0) -> int:
    stop = {"signal": None}

    def on_signal(signum, frame):
        stop["signal"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    children: dict[str, tuple[NodeSpec, subprocess.Popen]] = {}
    status = 0
    try:
        for spec in PROFILES[profile]:
            proc = subprocess.Popen(child_command(spec, params), start_new_session=True,
                                    preexec_fn=_die_with_parent)
            children[spec.name] = (spec, proc)
            _say(f"started {spec.executable} as pid {proc.pid}: {spec.namespace.rstrip('/')}/{spec.name} ({spec.what})")
        _say(f"profile {profile} up as {len(children)} processes; Ctrl-C stops them")
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
        _say(f"profile {profile} stopped; every child reaped")
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
    parser.add_argument("profile", nargs="?", choices=sorted(PROFILES))
    parser.add_argument("--processes", action="store_true", help="one process per node")
    parser.add_argument("--params", help="parameter file (default launch/<profile>.yaml)")
    parser.add_argument("--grace", type=float, default=5.0, help="s children get to stop on SIGINT")
    parser.add_argument("--list", action="store_true", help="print the profiles and their nodes")
    args = parser.parse_args(argv)
    if args.list or args.profile is None:
        for name, specs in PROFILES.items():
            print(f"{name}:")
            for s in specs:
                print(f"  {s.namespace.rstrip('/')}/{s.name:<18} {s.executable:<22} {s.module}"
                      f"{'  (optional)' if s.optional else ''}  {s.what}")
        return 0 if args.list else 2
    missing = missing_nodes(args.profile)
    if missing:
        names = ", ".join(f"{s.executable} ({s.module}: {s.what})" for s in missing)
        _say(f"profile {args.profile} cannot start: missing {names}. Nothing was started. "
             f"Nodes of the profile: {', '.join(s.executable for s in PROFILES[args.profile])}")
        return EXIT_MISSING
    params = Path(args.params) if args.params else params_file(args.profile)
    if not params.is_file():
        _say(f"parameter file {params} does not exist")
        return EXIT_MISSING
    if args.processes:
        return run_processes(args.profile, params, args.grace)
    return run_composed(args.profile, params)


if __name__ == "__main__":
    raise SystemExit(main())
