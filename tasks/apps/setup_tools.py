"""Set-up tools on the live graph, pip-only: what `ros2 topic echo/pub` and `ros2 param` did.

    robot-rl pose    [--namespace /franka] [--track S] [--margin M]   live TCP and joints, as task-file lines
    robot-rl cameras [--cameras wrist,front] [--crop wrist=x0,y0,x1,y1] [--task TASK] [--out DIR]   a PNG each, rates
    robot-rl check   TASK [--rig RIG] [--namespace /franka] [--obs state|pixels]   every topic a task needs
    robot-rl gains   NODE [NAME=VALUE ...]       list a node's parameters, or set some (refusals say why)
    robot-rl move    [--dx DX --dy DY --dz DZ] [--seconds S]   hold a target offset from the current TCP

Each joins the graph as its own node (same ROS_DOMAIN_ID and discovery settings as the robot),
reads or sends for a few seconds and leaves. They are for the first hour with a new rig: the
box and reset pose of a task file come from `pose --track` while the operator moves the arm
around the workspace; `check` runs before every session. `gains` and `move` replace the
`ros2 param set` and `ros2 topic pub` steps of docs/franka.md's safe first test. A driver or
controller validates every parameter change itself and may only tighten its safety limits at
run time (docs/franka.md), so `gains` can report a refusal, never force a value.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.closing import Closing

STATE_TOPICS = ("joint_states", "ee_pose", "ee_twist", "wrench", "gripper/state")


class SetupError(RuntimeError):
    """What a set-up tool could not do, in one line (the CLI prints it as `robot-rl: error:`)."""


@dataclass
class TopicMeter:
    """Arrival times and the newest message of one topic."""
    topic: str
    times: list[float] = field(default_factory=list)
    last: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, msg: Any) -> None:
        with self.lock:
            self.times.append(time.monotonic())
            self.last = msg

    def rate(self) -> float:
        """Messages per second over what arrived (0 with fewer than two)."""
        with self.lock:
            if len(self.times) < 2:
                return 0.0
            return (len(self.times) - 1) / max(self.times[-1] - self.times[0], 1e-9)

    def count(self) -> int:
        with self.lock:
            return len(self.times)


class LiveGraph(Closing):
    """A set-up tool's node on the graph (tasks/ros/node_thread.py), with topic meters."""

    def __init__(self, name: str, namespace: str = "/"):
        from robot_rl.tasks.ros.node_thread import NodeThread
        self._spinner = NodeThread(name, namespace)
        self.context, self.node = self._spinner.context, self._spinner.node

    def meter(self, msg_type: Any, topic: str, sensor_qos: bool = False) -> TopicMeter:
        from rclpy.qos import qos_profile_sensor_data
        meter = TopicMeter(topic)
        self.node.create_subscription(msg_type, topic, meter, qos_profile_sensor_data if sensor_qos else 10)
        return meter

    def wait_for(self, meters: list[TopicMeter], seconds: float, count: int = 1) -> None:
        """Until every meter has `count` messages, or `seconds` pass."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and any(m.count() < count for m in meters):
            time.sleep(0.02)

    def measure(self, meters: list[TopicMeter], seconds: float, discovery_s: float = 5.0) -> None:
        """Rates over `seconds` once discovery is done: waits up to discovery_s for a first
        message on each topic (DDS discovery takes a second or two), then starts the count."""
        self.wait_for(meters, discovery_s)
        for m in meters:
            with m.lock:
                m.times.clear()
        time.sleep(seconds)

    def close(self) -> None:
        self._spinner.close()


def _topic(namespace: str, name: str) -> str:
    return name if name.startswith("/") else f"{namespace.rstrip('/')}/{name}"


def _first_pose(graph: LiveGraph, namespace: str, timeout: float) -> tuple[np.ndarray, np.ndarray, str]:
    from geometry_msgs.msg import PoseStamped

    from robot_rl.controllers.node import pose_from_msg
    meter = graph.meter(PoseStamped, _topic(namespace, "ee_pose"))
    graph.wait_for([meter], timeout)
    if meter.last is None:
        raise SetupError(f"no {_topic(namespace, 'ee_pose')} within {timeout:g} s: is the driver or twin "
                         f"running in {namespace} (same ROS_DOMAIN_ID)?")
    pos, quat = pose_from_msg(meter.last)
    return pos, quat, meter.last.header.frame_id


def _fmt(values: Any) -> str:
    return "[" + ", ".join(f"{float(v):.4f}" for v in np.ravel(values)) + "]"


# ------------------------------------------------------------------------------------ pose

def read_pose(namespace: str = "/franka", track_s: float = 0.0, margin: float = 0.02,
              nominal_quat: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0), timeout: float = 10.0) -> dict[str, Any]:
    """The live TCP pose; with track_s > 0, also the box the TCP swept in that time, plus margin
    (the operator moves the arm through the workspace meanwhile) and the pose it ended at."""
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import JointState

    from robot_rl.controllers.node import pose_from_msg
    from robot_rl.controllers.rotations import matrix_to_rpy
    from robot_rl.controllers.rotations import quat_to_matrix as quat_to_rot

    with LiveGraph("robot_rl_pose") as graph:
        joints = graph.meter(JointState, _topic(namespace, "joint_states"))
        gripper = graph.meter(JointState, _topic(namespace, "gripper/state"))
        pos, quat, frame = _first_pose(graph, namespace, timeout)
        graph.wait_for([joints, gripper], 2.0)
        low, high = pos.copy(), pos.copy()
        if track_s > 0:
            swept: list[tuple[np.ndarray, np.ndarray]] = []
            graph.node.create_subscription(PoseStamped, _topic(namespace, "ee_pose"),
                                           lambda m: swept.append(pose_from_msg(m)), 50)
            time.sleep(track_s)
            if swept:
                positions = np.array([p for p, _ in swept])
                low, high = positions.min(axis=0), positions.max(axis=0)
                pos, quat = swept[-1]
    rel = quat_to_rot(nominal_quat).T @ quat_to_rot(quat)
    out: dict[str, Any] = {"frame": frame, "tcp_pos": pos, "tcp_quat": quat,
                           "rpy_from_nominal": matrix_to_rpy(rel),
                           "joints": None if joints.last is None else np.array(joints.last.position),
                           "gripper": None if gripper.last is None or not len(gripper.last.position)
                           else float(gripper.last.position[0])}
    if track_s > 0:
        out["box_low"], out["box_high"] = low - margin, high + margin
    return out


def cmd_pose(args: argparse.Namespace) -> int:
    got = read_pose(args.namespace, args.track, args.margin, timeout=args.timeout)
    print(f"# live TCP of {args.namespace} in {got['frame']!r}; paste into a task file")
    print(f"tcp_start: {_fmt(got['tcp_pos'])}")
    print(f"# or, as the task file's reset section: reset: {{pose: {_fmt(got['tcp_pos'])}, "
          f"rpy: {_fmt(got['rpy_from_nominal'])}}}")
    print(f"# TCP orientation: quat (x, y, z, w) {_fmt(got['tcp_quat'])}; "
          f"roll/pitch/yaw from the nominal (TCP down) {_fmt(got['rpy_from_nominal'])} rad")
    if got["joints"] is not None:
        print(f"# joints (rad): {_fmt(got['joints'])}")
    if got["gripper"] is not None:
        print(f"# gripper: {got['gripper']:.3f} (0 open .. 1 closed)")
    if "box_low" in got:
        print(f"# the box the TCP swept in {args.track:g} s, +- {args.margin:g} m")
        print(f"box_low: {_fmt(got['box_low'])}")
        print(f"box_high: {_fmt(got['box_high'])}")
    return 0


# ------------------------------------------------------------------------------------ cameras

def _image_array(msg: Any) -> np.ndarray:
    """An rgb8/bgr8/mono8 Image message as an RGB uint8 array (step padding removed)."""
    channels = {"rgb8": 3, "bgr8": 3, "mono8": 1}.get(msg.encoding)
    if channels is None:
        raise SetupError(f"image encoding {msg.encoding!r} is not rgb8, bgr8 or mono8")
    rows = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)
    img = rows[:, :msg.width * channels].reshape(msg.height, msg.width, channels)
    if msg.encoding == "bgr8":
        img = img[..., ::-1]
    return np.repeat(img, 3, axis=2) if channels == 1 else img


def parse_crops(items: list[str]) -> dict[str, tuple[int, int, int, int]]:
    """['wrist=10,20,110,120'] -> {'wrist': (x0, y0, x1, y1)} in pixels of the raw image."""
    crops = {}
    for item in items or []:
        name, _, box = item.partition("=")
        try:
            x0, y0, x1, y1 = (int(v) for v in box.split(","))
        except ValueError:
            raise SetupError(f"--crop {item!r}: expected NAME=x0,y0,x1,y1 (pixels)") from None
        if not (0 <= x0 < x1 and 0 <= y0 < y1):
            raise SetupError(f"--crop {item!r}: need 0 <= x0 < x1 and 0 <= y0 < y1")
        crops[name] = (x0, y0, x1, y1)
    return crops


def snapshot_cameras(cameras: list[str], out_dir: str | Path, seconds: float = 2.0,
                     crops: dict[str, tuple[int, int, int, int]] | None = None,
                     topics: dict[str, str] | None = None,
                     policy_size: int = 0) -> dict[str, dict[str, Any]]:
    """Listens to each camera for `seconds`; writes OUT/<name>.png (crop drawn in red) and
    returns {name: {rate_hz, width, height, encoding, png}} (png None if nothing arrived).
    topics: a camera's Image topic (default /cameras/<name>/image_raw); policy_size > 0: also
    OUT/<name>_policy.png, the crop resized as the policy gets it (tasks/camera_view.py)."""
    from PIL import Image as PILImage
    from PIL import ImageDraw
    from sensor_msgs.msg import Image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    crops = crops or {}
    unknown = set(crops) - set(cameras)
    if unknown:
        raise SetupError(f"--crop names {sorted(unknown)} are not among the cameras {cameras}")
    with LiveGraph("robot_rl_cameras") as graph:
        topics = topics or {}
        meters = {c: graph.meter(Image, topics.get(c) or f"/cameras/{c}/image_raw", sensor_qos=True)
                  for c in cameras}
        graph.measure(list(meters.values()), seconds)
    report: dict[str, dict[str, Any]] = {}
    for cam, meter in meters.items():
        msg = meter.last
        entry: dict[str, Any] = {"rate_hz": round(meter.rate(), 1), "png": None}
        if msg is not None:
            frame = _image_array(msg)
            img = PILImage.fromarray(frame)
            if cam in crops and policy_size:
                from robot_rl.tasks.camera_view import crop_and_resize
                try:
                    view = crop_and_resize(frame, crops[cam], policy_size)
                except ValueError as e:
                    raise SetupError(f"camera {cam}: {e}") from None
                entry["policy_png"] = str(out_dir / f"{cam}_policy.png")
                PILImage.fromarray(view).save(entry["policy_png"])
            if cam in crops:
                x0, y0, x1, y1 = crops[cam]
                if x1 > msg.width or y1 > msg.height:
                    raise SetupError(f"--crop {cam}: {crops[cam]} is outside the {msg.width}x{msg.height} image")
                ImageDraw.Draw(img).rectangle((x0, y0, x1 - 1, y1 - 1), outline=(255, 0, 0), width=2)
            png = out_dir / f"{cam}.png"
            img.save(png)
            entry.update(width=msg.width, height=msg.height, encoding=msg.encoding, png=str(png))
        report[cam] = entry
    return report


def cmd_cameras(args: argparse.Namespace) -> int:
    cameras = [c for c in args.cameras.split(",") if c]
    crops, topics, size, frames = parse_crops(args.crop), {}, 0, {}
    if args.task:                # the task's cameras, topics and crops: what its policy will see
        from robot_rl.tasks import TaskFileError, make_spec
        try:
            spec = make_spec(args.task)
        except TaskFileError as e:
            raise SetupError(str(e)) from None
        cameras = list(spec.cameras)
        topics = {c: spec.camera_topic(c) for c in cameras}
        crops = {**spec.camera_crops, **crops}
        size, frames = spec.image_size, spec.camera_frames
    report = snapshot_cameras(cameras, args.out, args.seconds, crops, topics, size)
    missing = []
    for cam, r in report.items():
        topic = topics.get(cam) or f"/cameras/{cam}/image_raw"
        if r["png"] is None:
            missing.append(cam)
            print(f"{cam}: no image on {topic} in {args.seconds:g} s")
            continue
        print(f"{cam}: {r['width']}x{r['height']} {r['encoding']} at {r['rate_hz']:g} Hz -> {r['png']}"
              + (f", the policy's view -> {r['policy_png']}" if r.get("policy_png") else ""))
        if cam in frames and tuple(frames[cam]) != (r["width"], r["height"]):
            raise SetupError(f"camera {cam}: the task's frame {list(frames[cam])} is not what {topic} "
                             f"publishes ({r['width']}x{r['height']}): set cameras.{cam}.frame to it")
    if missing:
        raise SetupError(f"no images from {missing}: is the camera node running (robot-rl up RIG)?")
    return 0


# ------------------------------------------------------------------------------------ check

@dataclass
class Check:
    what: str
    ok: bool
    detail: str
    required: bool = True


def check_task(task: str, namespace: str | None = None, obs: str = "state", seconds: float = 3.0,
               task_overrides: dict[str, Any] | None = None, discovery_s: float = 5.0) -> list[Check]:
    """Every topic and service a run of `task` needs: present, at rate, of the right size.

    State topics must come at >= 2x the control rate (the env matches their stamps to
    ee_pose's), cameras at >= the control rate and the task's image size, rgb8; reset and
    recover must answer, and something must listen on equilibrium_pose (the controller or the
    driver). Teleop topics are reported, not required (a session can run without a human).
    namespace None: the task's (robot.namespace in its file). A camera with a crop must publish
    its declared frame size (the crop is taken from it); one without, the task's image size."""
    from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
    from sensor_msgs.msg import Image, JointState, Joy
    from std_srvs.srv import Trigger

    from robot_rl import tasks
    spec = tasks.make_spec(task, **(task_overrides or {}))
    namespace = namespace or spec.namespace
    types = {"joint_states": JointState, "ee_pose": PoseStamped, "ee_twist": TwistStamped,
             "wrench": WrenchStamped, "gripper/state": JointState}
    results: list[Check] = []
    with LiveGraph("robot_rl_check") as graph:
        meters = {t: graph.meter(types[t], _topic(namespace, t)) for t in STATE_TOPICS}
        cams = ({c: graph.meter(Image, spec.camera_topic(c), sensor_qos=True) for c in spec.cameras}
                if obs == "pixels" else {})
        teleop = {"/spacemouse/twist": graph.meter(TwistStamped, "/spacemouse/twist"),
                  "/spacemouse/joy": graph.meter(Joy, "/spacemouse/joy")}
        clients = {name: graph.node.create_client(Trigger, _topic(namespace, name)) for name in ("reset", "recover")}
        graph.measure([*meters.values(), *cams.values()], seconds, discovery_s)
        services = {name: c.wait_for_service(timeout_sec=1.0) for name, c in clients.items()}
        listeners = graph.node.count_subscribers(_topic(namespace, "equilibrium_pose"))
        teleop_publishers = {t: graph.node.count_publishers(t) for t in teleop}
    need_state = 2.0 * spec.control_hz
    for topic, m in meters.items():
        rate = m.rate()
        results.append(Check(_topic(namespace, topic), rate >= need_state,
                             f"{rate:.1f} Hz (need >= {need_state:g})" if m.count() else "nothing received"))
    for cam, m in cams.items():
        rate, msg, topic = m.rate(), m.last, spec.camera_topic(cam)
        if msg is None:
            results.append(Check(topic, False, "nothing received"))
            continue
        w, h = spec.camera_frames[cam] if cam in spec.camera_crops else (spec.image_size, spec.image_size)
        size_ok = msg.encoding == "rgb8" and (msg.width, msg.height) == (w, h)
        crop = f", crop {list(spec.camera_crops[cam])} -> {spec.image_size} px" if cam in spec.camera_crops else ""
        results.append(Check(topic, rate >= spec.control_hz and size_ok,
                             f"{rate:.1f} Hz (need >= {spec.control_hz:g}), {msg.width}x{msg.height} "
                             f"{msg.encoding} (need {w}x{h} rgb8{crop})"))
    for name, ok in services.items():
        results.append(Check(f"{_topic(namespace, name)} service", ok, "answers" if ok else "not offered"))
    results.append(Check(f"{_topic(namespace, 'equilibrium_pose')} listener", listeners > 0,
                         f"{listeners} subscriber(s)" if listeners else "nobody listens: no controller/driver"))
    for topic, m in teleop.items():
        results.append(Check(topic, m.count() > 0 or teleop_publishers[topic] > 0,
                             f"{teleop_publishers[topic]} publisher(s), {m.rate():.1f} Hz", required=False))
    return results


def cmd_check(args: argparse.Namespace) -> int:
    from robot_rl.tasks import TaskFileError, make_spec
    from robot_rl.tasks.task_file import check_reward_file
    try:
        spec = make_spec(args.task)
        check_reward_file(spec)
        namespace = args.namespace or spec.namespace
    except TaskFileError as e:
        raise SetupError(str(e)) from None
    if args.rig:                 # the rig file first: a camera it cannot publish fails before any wait
        from robot_rl.tasks.ros.bringup import resolve_rig
        from robot_rl.tasks.ros.rig import RigError
        from robot_rl.tasks.task_file import check_cameras, check_operator_keys, check_reset_gains
        try:
            rig = resolve_rig(args.rig)
            if args.obs == "pixels":
                check_cameras(spec, rig)
            keyboard = check_operator_keys(spec, rig)
            gains = check_reset_gains(spec, rig)
        except (RigError, TaskFileError) as e:
            raise SetupError(str(e)) from None
        print(f"ok    {args.task}'s cameras {list(spec.cameras)} are in the rig {rig.path}")
        if keyboard:
            print(f"ok    the rig's keyboard binds the task's operator keys {spec.operator_keys}")
        if gains:
            print(f"ok    the rig's gains node accepts the task's reset gains {spec.reset_gains}")
    results = check_task(args.task, namespace, args.obs, args.seconds, discovery_s=args.discovery)
    width = max(len(r.what) for r in results)
    for r in results:
        mark = "ok  " if r.ok else ("FAIL" if r.required else "warn")
        print(f"{mark}  {r.what:<{width}}  {r.detail}")
    failed = [r.what for r in results if r.required and not r.ok]
    if failed:
        raise SetupError(f"{args.task} cannot run on {namespace}: {len(failed)} check(s) failed: "
                         + ", ".join(failed))
    print(f"{args.task} ({args.obs}) can run on {namespace}")
    return 0


# ------------------------------------------------------------------------------------ gains

def node_parameters(node_name: str, sets: dict[str, Any] | None = None,
                    timeout: float = 10.0) -> tuple[dict[str, Any], dict[str, str]]:
    """A node's parameters after applying `sets` through its own validation: returns
    (name -> value, name -> refusal reason for each set the node refused)."""
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient

    with LiveGraph("robot_rl_gains") as graph:
        client = AsyncParameterClient(graph.node, node_name)
        if not client.wait_for_services(timeout_sec=timeout):
            raise SetupError(f"node {node_name} offers no parameter services within {timeout:g} s: "
                             "check its full name (namespace/name, e.g. /franka/twin)")

        def wait(future: Any, what: str) -> Any:
            deadline = time.monotonic() + timeout
            while not future.done():
                if time.monotonic() > deadline:
                    raise SetupError(f"{node_name}: no answer to {what} within {timeout:g} s")
                time.sleep(0.01)
            return future.result()

        refused: dict[str, str] = {}
        if sets:
            params = [Parameter(k, value=v) for k, v in sets.items()]
            results = wait(client.set_parameters(params), "set_parameters").results
            refused = {p.name: r.reason for p, r in zip(params, results) if not r.successful}
        names = list(wait(client.list_parameters([], 0), "list_parameters").result.names)
        values = wait(client.get_parameters(names), "get_parameters").values
    return {n: Parameter.from_parameter_msg(_named(n, v)).value for n, v in zip(names, values)}, refused


def _named(name: str, value: Any) -> Any:
    from rcl_interfaces.msg import Parameter as ParameterMsg
    return ParameterMsg(name=name, value=value)


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """['translational_stiffness=300', 'box_high=[0.6,0.2,0.3]'] -> typed values (YAML)."""
    import yaml
    out: dict[str, Any] = {}
    for item in items or []:
        name, eq, raw = item.partition("=")
        if not eq or not name:
            raise SetupError(f"{item!r}: expected NAME=VALUE")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise SetupError(f"{item!r}: the value is not YAML: {e}") from None
        if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
            value = [float(v) for v in value]      # ROS double arrays: mixed int/float refused
        out[name] = value
    return out


def cmd_gains(args: argparse.Namespace) -> int:
    sets = parse_assignments(args.assign)
    values, refused = node_parameters(args.node, sets, args.timeout)
    shown = sets.keys() if sets else sorted(values)
    for name in shown:
        mark = f"  REFUSED: {refused[name]}" if name in refused else ""
        print(f"{name} = {values.get(name)!r}{mark}")
    if refused:
        raise SetupError(f"{args.node} refused {len(refused)} of {len(sets)} change(s): {', '.join(refused)}")
    return 0


# ------------------------------------------------------------------------------------ move

def move_offset(namespace: str, offset: np.ndarray, seconds: float, rate_hz: float = 10.0,
                max_offset: float = 0.05, timeout: float = 10.0) -> dict[str, Any]:
    """Publishes equilibrium_pose = the TCP pose at start + offset (base frame, m) at rate_hz for
    `seconds`, then stops (the driver's watchdog holds the pose it reached)."""
    from geometry_msgs.msg import PoseStamped

    from robot_rl.controllers.node import COMMAND_QOS, pose_from_msg, pose_msg

    offset = np.asarray(offset, dtype=float)
    if offset.shape != (3,) or not np.all(np.isfinite(offset)):
        raise SetupError(f"offset must be 3 finite numbers, got {offset}")
    if np.linalg.norm(offset) > max_offset:
        raise SetupError(f"offset {np.linalg.norm(offset):.3f} m is over --max-offset {max_offset:g} m")
    if not 0 < rate_hz <= 100 or not 0 < seconds <= 60:
        raise SetupError("--rate must be in (0, 100] Hz and --seconds in (0, 60]")
    with LiveGraph("robot_rl_move") as graph:
        start, quat, frame = _first_pose(graph, namespace, timeout)
        pose = graph.meter(PoseStamped, _topic(namespace, "ee_pose"))
        pub = graph.node.create_publisher(PoseStamped, _topic(namespace, "equilibrium_pose"), COMMAND_QOS)
        target = start + offset
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pub.publish(pose_msg(target, quat, frame, graph.node.get_clock().now().to_msg()))
            time.sleep(1.0 / rate_hz)
        graph.wait_for([pose], 1.0)
        end = pose_from_msg(pose.last)[0] if pose.last is not None else start
    return {"start": start, "target": target, "end": end, "error_m": float(np.linalg.norm(end - target))}


def cmd_move(args: argparse.Namespace) -> int:
    r = move_offset(args.namespace, np.array([args.dx, args.dy, args.dz]), args.seconds, args.rate,
                    args.max_offset, args.timeout)
    print(f"start {_fmt(r['start'])} -> target {_fmt(r['target'])}: reached {_fmt(r['end'])} "
          f"({r['error_m'] * 1000:.1f} mm from the target); commands stopped, the driver holds")
    return 0


# ------------------------------------------------------------------------------------ CLI

def _guard(fn):
    """SetupError and a graph that cannot start end in one line and exit code 2."""
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except SetupError as e:
            print(f"robot-rl: error: {e}", file=sys.stderr)
            return 2
    return run


def register(subparsers) -> None:
    p = subparsers.add_parser("pose", help="the live TCP pose and joints, as task-file lines")
    p.add_argument("--namespace", default="/franka")
    p.add_argument("--track", type=float, default=0.0, metavar="S",
                   help="also record the box the TCP sweeps in S seconds (move the arm around)")
    p.add_argument("--margin", type=float, default=0.02, help="added to each side of the swept box (m)")
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(func=_guard(cmd_pose))

    p = subparsers.add_parser("cameras", help="a PNG of each camera (crop drawn) and its rate")
    p.add_argument("--cameras", default="wrist,front")
    p.add_argument("--crop", action="append", metavar="NAME=x0,y0,x1,y1", help="draw this crop (pixels)")
    p.add_argument("--task", help="a task (file): its cameras, topics and crops; also writes "
                   "NAME_policy.png, the image its policy gets")
    p.add_argument("--out", default="camera_check")
    p.add_argument("--seconds", type=float, default=2.0)
    p.set_defaults(func=_guard(cmd_cameras))

    p = subparsers.add_parser("check", help="every topic a task needs: present, at rate and size")
    p.add_argument("task")
    p.add_argument("--namespace", default=None, help="the robot's namespace (default: the task's)")
    p.add_argument("--obs", choices=["state", "pixels"], default="pixels")
    p.add_argument("--seconds", type=float, default=3.0, help="measure rates over this long")
    p.add_argument("--discovery", type=float, default=5.0, help="wait this long for topics to appear")
    p.add_argument("--rig", help="a rig file (or profile) the task's cameras must be in")
    p.set_defaults(func=_guard(cmd_check))

    p = subparsers.add_parser("gains", help="list a node's parameters, or set NAME=VALUE (validated there)")
    p.add_argument("node", help="full node name, e.g. /franka/twin or /franka/franka")
    p.add_argument("assign", nargs="*", metavar="NAME=VALUE")
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(func=_guard(cmd_gains))

    p = subparsers.add_parser("move", help="hold a target offset from the current TCP for a while")
    p.add_argument("--namespace", default="/franka")
    p.add_argument("--dx", type=float, default=0.0)
    p.add_argument("--dy", type=float, default=0.0)
    p.add_argument("--dz", type=float, default=0.0)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--max-offset", type=float, default=0.05, help="refuse offsets longer than this (m)")
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(func=_guard(cmd_move))
