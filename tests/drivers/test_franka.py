"""The Franka driver against franky-sim, which speaks libfranka's network protocol on loopback.

Each simulator runs in its own process on a loopback address of its own (127.x.y.z), started
and stopped (by pid) here. The loop process, the shared memory and pylibfranka are the real
ones; only the robot is simulated. Assertions are on tracking and safety, not on timing: the
simulator and the loop share 2 busy cores (timing is measured by bench/franka_loop.py).

What franky-sim cannot do, and how these tests cope:
- it does not estimate external wrenches (O_F_ext_hat_K is always 0), so the contact test
  measures the force on the box inside the simulator (drivers.franka_sim's probe);
- it does not simulate reflexes (set_collision_behavior is acknowledged and ignored), so
  drivers.franka_sim --reflex teaches it the FR3's Cartesian reflex for contacts with a box
  (the motion ends with kReflexAborted, the state carries cartesian_reflex, automatic error
  recovery clears it): libfranka and the driver see the same messages as on the robot;
- a communication fault is real: the simulator is frozen (SIGSTOP) for 1.5 s, libfranka
  raises "UDP receive: Timeout", and `recover` reconnects.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

pytest.importorskip("pylibfranka")
pytest.importorskip("franky_sim")

from robot_rl.controllers.impedance import ImpedanceConfig  # noqa: E402
from robot_rl.drivers.franka import FrankaArm, LoopSettings  # noqa: E402
from robot_rl.drivers.franka_hand import FrankaHand, HandSettings  # noqa: E402
from robot_rl.drivers.franka_ipc import SharedStruct  # noqa: E402
from robot_rl.drivers.franka_sim import PROBE_SPEC, FrankySim  # noqa: E402


def angle_between(q1, q2) -> float:
    d = abs(float(np.dot(q1, q2)))
    return 2.0 * math.acos(min(1.0, d))


def drive(arm: FrankaArm, pos, quat, seconds: float, until=None, period: float = 0.05):
    """Streams one equilibrium pose (as the env does) for up to `seconds`; stops early when
    until(state) holds. Returns the last state."""
    deadline = time.monotonic() + seconds
    while True:
        arm.set_target(pos, quat)
        s = arm.state()
        if (until is not None and until(s)) or time.monotonic() > deadline:
            return s
        time.sleep(period)


def settled(target_pos, target_quat, tol_pos=0.005, tol_rot=0.05):
    return lambda s: (np.linalg.norm(s.pos - target_pos) < tol_pos
                      and angle_between(s.quat, target_quat) < tol_rot
                      and np.linalg.norm(s.twist[:3]) < 0.01)


# franky-sim compensates gravity with its own pinocchio model, which is lighter than the MuJoCo
# arm it simulates: away from the start pose ~10 N remain, ~5 mm at K = 2000 N/m (measured).
# The law's integral term takes such a model error out, as it would an unmodelled payload on
# the FR3; the contact test runs without it, so its force bound is K * clip alone.
TRACKING_GAINS = ImpedanceConfig.compliant().replace(translational_ki=2000.0, integral_limit=15.0)


@pytest.fixture(scope="module")
def sim_arm():
    sim = FrankySim()
    arm = None
    try:
        arm = FrankaArm(LoopSettings(robot_ip=sim.hostname, realtime=False, impedance=TRACKING_GAINS))
        arm.wait_ready(timeout=30.0)
        yield sim, arm
    finally:
        if arm is not None:
            arm.close()
        sim.stop()


@pytest.mark.slow
def test_tracking_5cm_step_in_each_axis_settles(sim_arm):
    _, arm = sim_arm
    s0 = arm.state()
    assert s0.mode in ("holding", "impedance") and np.all(np.isfinite(s0.q))
    target = s0.pos.copy()
    for axis in range(3):
        target[axis] += 0.05 if axis != 2 else -0.05
        s = drive(arm, target, s0.quat, seconds=20.0, until=settled(target, s0.quat))
        err = np.linalg.norm(s.pos - target)
        assert err < 0.005, f"axis {axis}: TCP {s.pos} still {err * 1000:.1f} mm from {target}"
        assert angle_between(s.quat, s0.quat) < 0.05
        assert s.mode == "impedance"
        # The spring is clipped: the commanded torque stays modest throughout.
        assert np.all(np.abs(s.tau) < 40.0)


def test_watchdog_holds_when_commands_stop(sim_arm):
    _, arm = sim_arm
    s0 = arm.state()
    far = s0.pos + np.array([0.0, 0.2, 0.0])
    drive(arm, far, s0.quat, seconds=0.2)         # a target far away, then silence
    time.sleep(arm.settings.watchdog_s + 0.5)
    s1 = arm.state()
    assert s1.mode == "holding"
    hold = s1.target_pos.copy()
    # The watchdog holds where the arm was when it fired: short of the stale target (the arm
    # covers ~15 cm of the 20 in the 0.7 s when franky-sim runs near real time). The arm may
    # still be coasting now (2.2 cm past the hold seen); it must come to rest at the hold.
    assert np.linalg.norm(hold - far) > 0.02, "the watchdog should replace the stale target"
    time.sleep(2.0)
    s2 = arm.state()
    assert s2.mode == "holding"
    assert np.linalg.norm(s2.pos - hold) < 0.005, f"arm drifted from the hold pose: {s2.pos} vs {hold}"
    assert np.linalg.norm(s2.pos - far) > 0.015      # it never went on to the stale target


def test_nan_target_is_rejected_and_the_arm_holds(sim_arm):
    _, arm = sim_arm
    s0 = arm.state()
    here = s0.pos.copy()
    drive(arm, here, s0.quat, seconds=0.5)
    with pytest.raises(ValueError, match="not finite"):
        arm.set_target([math.nan, 0.0, 0.3], s0.quat)
    with pytest.raises(ValueError, match="zero norm"):
        arm.set_target(here, [0.0, 0.0, 0.0, 0.0])
    # A writer that skips validation (a bug elsewhere) still cannot reach the motors: the loop's
    # own check rejects it. The test writes the raw shared struct for that reason.
    rejected = arm.state().rejected
    for _ in range(10):
        arm._target.write(pos=[math.nan, here[1], here[2]], quat=s0.quat, stamp=time.monotonic())
        time.sleep(0.05)
    s1 = arm.state()
    assert s1.rejected > rejected
    assert np.all(np.isfinite(s1.tau)) and np.all(np.isfinite(s1.target_pos))
    assert np.linalg.norm(s1.pos - here) < 0.005
    assert s1.mode in ("impedance", "holding")


def test_target_outside_the_safety_box_is_clipped(sim_arm):
    _, arm = sim_arm
    s0 = arm.state()
    lo, hi = s0.pos - 0.03, s0.pos + 0.03
    ok, message = arm.update_settings(box_lo=tuple(lo), box_hi=tuple(hi))
    assert ok, message
    try:
        wild = s0.pos + np.array([0.25, 0.0, 0.0])
        sent, clipped = arm.set_target(wild, s0.quat)
        assert clipped and sent[0] == pytest.approx(hi[0])
        edge = np.clip(wild, lo, hi)
        s = drive(arm, wild, s0.quat, seconds=15.0, until=settled(edge, s0.quat))
        assert np.allclose(s.target_pos, edge, atol=1e-9)
        assert np.linalg.norm(s.pos - edge) < 0.005, f"TCP {s.pos} should stop at the box edge {edge}"
    finally:
        defaults = LoopSettings()
        arm.update_settings(box_lo=defaults.box_lo, box_hi=defaults.box_hi)


def test_bad_settings_are_rejected(sim_arm):
    _, arm = sim_arm
    with pytest.raises(ValueError):
        arm.update_settings(watchdog_s=math.nan)
    with pytest.raises(ValueError):
        arm.update_settings(box_lo=(1.0, 1.0, 1.0), box_hi=(0.0, 0.0, 0.0))
    ok, message = arm.update_settings(lower_force_thresholds=(30.0,) * 6, upper_force_thresholds=(30.0,) * 6)
    assert ok, message
    assert arm.state().mode in ("impedance", "holding")


@pytest.mark.slow
def test_reset_moves_to_home_then_back_to_impedance(sim_arm):
    _, arm = sim_arm
    ok, message = arm.reset(timeout=90.0)
    assert ok, message
    s = arm.state()
    assert np.max(np.abs(s.q - np.array(arm.settings.q_home))) < 0.02
    assert s.mode in ("holding", "impedance")
    # Impedance again: a small step is tracked.
    target = s.pos + np.array([0.0, 0.0, 0.02])
    s = drive(arm, target, s.quat, seconds=15.0, until=settled(target, s.quat))
    assert np.linalg.norm(s.pos - target) < 0.005


@pytest.mark.slow
def test_communication_fault_is_reported_and_recover_restores_impedance(sim_arm):
    sim, arm = sim_arm
    arm.take_events()
    sim.pause()  # as if the cable were pulled: no state packets
    try:
        time.sleep(1.5)  # libfranka gives up after 1 s
    finally:
        sim.resume()
    deadline = time.monotonic() + 10.0
    faults = []
    while not faults and time.monotonic() < deadline:
        faults = [e for e in arm.take_events() if e[0] == "fault"]
        time.sleep(0.05)
    assert faults, "the loop did not report the communication fault"
    info = faults[0][1]
    assert info["kind"] == "communication" and "communication" in info["errors"]
    assert "Timeout" in info["message"]
    assert arm.state().mode == "fault"
    ok, message = arm.recover(timeout=30.0)
    assert ok, message
    s = arm.state()
    assert s.mode in ("holding", "impedance")
    target = s.pos + np.array([0.02, 0.0, 0.0])
    s = drive(arm, target, s.quat, seconds=15.0, until=settled(target, s.quat))
    assert np.linalg.norm(s.pos - target) < 0.005


@pytest.mark.slow
def test_contact_force_is_bounded_by_stiffness_times_clip():
    """Pushing 5 cm into a rigid box: the force on the box stays within K * clip + margin.

    K_z = 2000 N/m, clip = 1 cm -> 20 N spring force. Margin 5 N: damping and the filtered
    target's motion while the arm settles, and the nullspace torque's small Cartesian share.
    """
    probe = SharedStruct(PROBE_SPEC, create=True)
    sim = arm = None
    try:
        # Box top 2 cm under the start TCP (0.554, 0, 0.521).
        sim = FrankySim(box="0.554 0.0 0.45 0.06 0.06 0.05", probe_name=probe.name)
        arm = FrankaArm(LoopSettings(robot_ip=sim.hostname, realtime=False))
        s0 = arm.wait_ready(timeout=30.0)
        cfg = arm.settings.impedance
        bound = cfg.translational_stiffness * cfg.translational_clip_pos[2]
        margin = 5.0
        target = s0.pos + np.array([0.0, 0.0, -0.07])  # 5 cm below the box top
        peak, forces = 0.0, []
        t_end = time.monotonic() + 8.0
        while time.monotonic() < t_end:
            arm.set_target(target, s0.quat)
            p = probe.read()
            if p["contacts"][0] > 0:
                peak = max(peak, float(p["norm"][0]))
                forces.append(p["force"].copy())
            time.sleep(0.02)
        assert len(forces) > 50, "the hand never touched the box"
        steady = np.mean(forces[-50:], axis=0)
        s = arm.state()
        assert s.pos[2] > 0.49, "the hand went through the box"
        assert steady[2] < -0.5 * bound, f"it should press down on the box, got {steady}"
        assert np.linalg.norm(steady) <= bound + margin, f"steady force {steady} exceeds {bound} + {margin} N"
        print(f"contact: steady {np.linalg.norm(steady):.1f} N, peak {peak:.1f} N, bound {bound:.0f} N")
    finally:
        if arm is not None:
            arm.close()
        if sim is not None:
            sim.stop()
        probe.close()


@pytest.mark.slow
def test_gripper_opens_closes_and_grasps():
    # A fixed 3 cm cube between the fingers of the start pose (TCP 0.554, 0, 0.521).
    sim = FrankySim(grasp_object="0.554 0.0 0.521 0.015 0.015 0.015")
    hand = None
    try:
        hand = FrankaHand(HandSettings(robot_ip=sim.hostname, force=30.0))
        assert hand.max_width == pytest.approx(0.08, abs=0.005)

        def wait(pred, timeout=15.0):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                st = hand.state()
                if st["busy"] == 0.0 and pred(st):
                    return st
                time.sleep(0.05)
            raise AssertionError(f"hand state {hand.state()}")

        n = hand.state()["commands"]
        assert hand.command(0.0)
        st = wait(lambda st: st["commands"] > n and st["width"] > 0.075)
        assert st["ok"] == 1.0
        assert not hand.command(0.0), "a repeated command is skipped"
        n = st["commands"]
        assert hand.command(1.0)
        st = wait(lambda st: st["commands"] > n)
        assert st["ok"] == 1.0 and st["grasped"] == 1.0
        assert 0.025 < st["width"] < 0.035, f"fingers should stop on the 3 cm cube, width {st['width']}"
        n = st["commands"]
        assert hand.command(0.5 - 1e-9)  # below the close threshold: move to half open
        st = wait(lambda st: st["commands"] > n)
        assert st["width"] == pytest.approx(0.04, abs=0.004)
        with pytest.raises(ValueError):
            hand.command(math.nan)
        assert not [e for e in hand.take_events() if e[0] == "fault"]
    finally:
        if hand is not None:
            hand.close()
        sim.stop()


@pytest.mark.slow
def test_reflex_is_reported_with_its_error_flags_and_recover_restores_impedance():
    """Very low collision thresholds, then a push into a box -> a Cartesian reflex."""
    sim = arm = None
    try:
        sim = FrankySim(box="0.554 0.0 0.45 0.06 0.06 0.05", reflex=True)
        arm = FrankaArm(LoopSettings(robot_ip=sim.hostname, realtime=False,
                                     lower_force_thresholds=(5.0,) * 6, upper_force_thresholds=(8.0,) * 6))
        s0 = arm.wait_ready(timeout=30.0)
        faults: list = []
        deadline = time.monotonic() + 15.0
        while not faults and time.monotonic() < deadline:
            arm.set_target(s0.pos + np.array([0.0, 0.0, -0.07]), s0.quat)
            faults = [e for e in arm.take_events() if e[0] == "fault"]
            time.sleep(0.02)
        assert faults, "pushing into the box with an 8 N threshold should trip the reflex"
        info = faults[0][1]
        assert info["kind"] == "reflex" and "cartesian_reflex" in info["errors"], info
        assert "reflex" in info["message"]
        s = arm.state()
        assert s.mode == "fault"
        # The loop stopped commanding: targets are ignored until recover.
        arm.set_target(s0.pos + np.array([0.0, 0.0, 0.05]), s0.quat)
        time.sleep(0.5)  # let the impact ring down, as an operator would
        assert arm.state().mode == "fault"
        ok, message = arm.update_settings(lower_force_thresholds=(20.0,) * 6, upper_force_thresholds=(20.0,) * 6)
        assert ok, message
        ok, message = arm.recover(timeout=30.0)
        assert ok, message
        assert arm.state().mode in ("holding", "impedance")
        up = arm.state().pos + np.array([0.0, 0.0, 0.03])  # back off the box
        s = drive(arm, up, s0.quat, seconds=15.0, until=settled(up, s0.quat, tol_pos=0.006))
        assert s.mode == "impedance" and np.linalg.norm(s.pos - up) < 0.006
        assert not [e for e in arm.take_events() if e[0] == "fault"]
    finally:
        if arm is not None:
            arm.close()
        if sim is not None:
            sim.stop()


def test_node_entry_point_fails_clearly_without_a_robot():
    """No robot at the address: the node says so and exits with status 2 (as the other drivers)."""
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "robot_rl.drivers.franka_node", "--ros-args",
                           "-p", "robot_ip:=127.0.0.251", "-p", "realtime_config:=ignore"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 2, proc.stderr
    assert "Franka at 127.0.0.251" in proc.stderr and "NetworkException" in proc.stderr, proc.stderr


def test_arm_refuses_bad_settings_before_starting():
    with pytest.raises(ValueError, match="box_lo"):
        FrankaArm(LoopSettings(robot_ip="127.0.0.251", box_lo=(0.0, 0.0, 0.0), box_hi=(0.0, 1.0, 1.0)))
    with pytest.raises(ValueError, match="q_home needs 7"):
        FrankaArm(LoopSettings(robot_ip="127.0.0.251", q_home=(0.0,) * 6))
