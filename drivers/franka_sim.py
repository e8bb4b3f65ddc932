"""franky-sim (a libfranka-protocol simulator on MuJoCo) with scene extras, as a process.

`franky-sim` on its own serves a bare FR3 with its hand. The driver's tests and bench need a
little more, added to franky-sim's MJCF scene before it starts (its documented extension
point): a fixed rigid box to push into, an object between the fingers to grasp, and a
contact probe that writes the box's contact force into shared memory every physics step
(franky-sim reports O_F_ext_hat_K = 0: it does not estimate external wrenches, so a test
measures contact on the simulator side), and, with --reflex, the FR3's Cartesian collision
reflex for contacts with the box (franky-sim acknowledges set_collision_behavior but does not
act on it; see _install_reflex_emulation).

    python -m robot_rl.drivers.franka_sim --hostname 127.0.0.42 [--box "x y z hx hy hz"] \
        [--grasp-object "x y z hx hy hz"] [--probe SHM_NAME] [--reflex]

prints `READY <hostname>` when libfranka can connect (robot on port 1337, hand on 1338).
`FrankySim` starts and stops it from Python (tests, bench), by pid.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

from robot_rl import checkout_root

PROBE_SPEC = {"step": 1, "force": 3, "norm": 1, "contacts": 1}


def _add_fixed_box(sim, name: str, spec: str, rgba: str) -> None:
    x, y, z, hx, hy, hz = (float(v) for v in spec.split())
    body = ET.SubElement(sim.worldbody, "body", name=name, pos=f"{x} {y} {z}")
    ET.SubElement(body, "geom", name=f"{name}_geom", type="box", size=f"{hx} {hy} {hz}", rgba=rgba,
                  friction="0.8 0.005 0.0001")


CARTESIAN_REFLEX = 7  # index of cartesian_reflex in libfranka's error array (franka::Error)


def _install_reflex_emulation():
    """franky-sim acknowledges set_collision_behavior and ignores it. This teaches it the
    FR3's Cartesian reflex, for contacts with the box: when the box pushes back harder than
    the upper force threshold on an axis, the running motion ends with kReflexAborted, the
    state says robot_mode Reflex with cartesian_reflex set (current and last-motion errors),
    and automatic_error_recovery clears it. Returns the server class to use."""
    from franky_sim import franka_robot_protocol as proto
    from franky_sim.franka_robot_server import FrankaRobotServer

    class ReflexRobotServer(FrankaRobotServer):
        upper_force = None   # set by SetCollisionBehavior (nominal, N / Nm)
        in_reflex = False

        def trigger_reflex(self) -> None:
            if self.current_motion_id:
                proto.BaseCommand.send_response(self._tcp_socket, proto.RobotCommand.kMove,
                                                self.current_motion_id, proto.MoveStatus.kReflexAborted)
                self.reset_current_motion_id()
            self.stop_motion(send_preemption_signal=False)
            self.in_reflex = True

        @property
        def robot_state(self):
            st = super().robot_state
            if not self.in_reflex:
                return st
            flags = tuple(i == CARTESIAN_REFLEX for i in range(41))
            return st.replace(robot_mode=proto.RobotMode.kReflex, errors=flags, reflex_reason=flags)

    def on_collision_behavior(self, server) -> None:
        server.upper_force = tuple(self.upper_force_thresholds_nominal)
        self.reply(0)

    def on_recovery(self, server) -> None:
        server.in_reflex = False
        self.reply(proto.AutomaticErrorRecoveryStatus.kSuccess)

    proto.SetCollisionBehaviorCommand.handle = on_collision_behavior
    proto.AutomaticErrorRecoveryCommand.handle = on_recovery
    return ReflexRobotServer


def _contact_callback(probe, box_geom: int, robot_server=None):
    import mujoco
    import numpy as np

    wrench = np.zeros(6)

    def on_step(sim) -> None:
        m, d = sim.model, sim.data
        total = np.zeros(3)
        n = 0
        for i in range(d.ncon):
            c = d.contact[i]
            if box_geom not in (c.geom1, c.geom2):
                continue
            mujoco.mj_contactForce(m, d, i, wrench)
            f = c.frame.reshape(3, 3).T @ wrench[:3]  # contact frame -> world
            # mj_contactForce is the force geom1 applies on geom2 (along the frame normal).
            total += f if c.geom2 == box_geom else -f
            n += 1
        if probe is not None:
            fields = probe.begin_write()
            fields["step"][0] += 1
            fields["force"][:] = total     # force the robot applies to the box, world frame (N)
            fields["norm"][0] = float(np.linalg.norm(total))
            fields["contacts"][0] = n
            probe.end_write()
        rs = robot_server
        if (rs is not None and rs.upper_force is not None and not rs.in_reflex and rs.current_motion_id
                and any(abs(f) > lim for f, lim in zip(total, rs.upper_force[:3]))):
            rs.trigger_reflex()

    return on_step


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hostname", default="127.0.0.42", help="loopback address to serve on")
    ap.add_argument("--box", default=None, help="fixed box 'x y z hx hy hz' (m, base frame, half sizes)")
    ap.add_argument("--grasp-object", default=None, help="fixed box between the fingers 'x y z hx hy hz'")
    ap.add_argument("--probe", default=None, help="shared-memory name for the box contact force")
    ap.add_argument("--reflex", action="store_true",
                    help="emulate the Cartesian reflex on box contacts (upper force thresholds)")
    args = ap.parse_args(argv)

    import logging

    import franky_sim
    from franky_sim.mujoco_simulator import MujocoSimulator

    logging.basicConfig(level=logging.WARNING)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    probe = None
    with MujocoSimulator() as sim:
        sim.add_robot()
        if args.box:
            _add_fixed_box(sim, "obstacle", args.box, "0.8 0.3 0.2 1")
        if args.grasp_object:
            _add_fixed_box(sim, "grasp_object", args.grasp_object, "0.2 0.8 0.2 1")
        if args.reflex:
            import franky_sim.simulation_server

            franky_sim.simulation_server.FrankaRobotServer = _install_reflex_emulation()
        with franky_sim.SimulationServer(sim, hostname_candidates=[args.hostname]) as server:
            if args.box and (args.probe or args.reflex):
                import mujoco

                from robot_rl.drivers.franka_ipc import SharedStruct

                if args.probe:
                    probe = SharedStruct(PROBE_SPEC, name=args.probe, untrack=True)
                geom = mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_GEOM, "obstacle_geom")
                robot_server = server.robot_servers[0] if args.reflex else None
                sim.register_post_step_callback(_contact_callback(probe, geom, robot_server))
            print(f"READY {args.hostname}", flush=True)
            try:
                server.run_forever()
            except (KeyboardInterrupt, SystemExit):
                pass
    if probe is not None:
        probe.close()


class FrankySim:
    """Starts drivers.franka_sim in a subprocess on a loopback address of its own; stops it by pid."""

    def __init__(self, box: str | None = None, grasp_object: str | None = None, probe_name: str | None = None,
                 reflex: bool = False, hostname: str | None = None, startup_timeout: float = 60.0):
        self.hostname = hostname or f"127.{random.randint(64, 250)}.{os.getpid() % 250 + 1}.{random.randint(1, 250)}"
        cmd = [sys.executable, "-m", "robot_rl.drivers.franka_sim", "--hostname", self.hostname]
        if box:
            cmd += ["--box", box]
        if grasp_object:
            cmd += ["--grasp-object", grasp_object]
        if probe_name:
            cmd += ["--probe", probe_name]
        if reflex:
            cmd += ["--reflex"]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # Output to a file, not a pipe: an undrained pipe would stall the simulator when full.
        self._log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, cwd=checkout_root(), stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + startup_timeout
        try:
            while "READY" not in self.output():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("franky-sim did not start:\n" + self.output()[-3000:])
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read()

    def pause(self) -> None:
        """Freezes the simulator (SIGSTOP): the robot stops answering, as with a cut cable."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
                os.kill(self.proc.pid, signal.SIGTERM)
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5.0)
            except ProcessLookupError:
                pass
        self._log.close()

    def __enter__(self) -> "FrankySim":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    main()
