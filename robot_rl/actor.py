"""The actor loop: env + policy + human takeover, transitions out, acks and weights in.

The actor runs episodes. In every control step it asks the `Takeover` for a human command
first: a SpaceMouse motion above the deadband (or a held gripper / takeover button) REPLACES
the policy's action in that same step and is recorded as the executed action with
intervention=True. Every transition gets a sequence number and is sent at once (one message
per step), and kept in memory until the learner acknowledges it; the learner acks only what it
has committed to disk, whole episodes at a time.

Restarts: acks carry the learner's session id. A new session (the learner restarted) or a
learner that stopped accepting our sequence (a gap, a lost message) makes the actor resend
every unacknowledged transition, oldest first; the learner drops what it already has by
(actor id, session, seq). Unacked transitions are bounded (`max_unacked`): past it the actor
waits between episodes for acks rather than drop data.

With `spool_dir` set, every transition is also appended to a disk spool before it is sent
(robot_rl/spool.py) and deleted when acked; a restarted actor first re-sends its killed
sessions' spool under their old session and seq numbers (`recover_spooled`).

New weights are applied between episodes only, never mid-episode.

Authentication (robot_rl/auth.py): every message out is signed with the run's key, and every
message in is verified before it is parsed; one without a valid tag is dropped and counted
(`stats["unauthenticated"]`) and changes nothing. Acks carry the learner's start epoch and a
per-session ack counter, both under the tag: an ack from an older learner or an older ack of
the current one (a replay) is ignored (`stats["replayed"]`). The actor binds to the newest
learner session it has an ack from and loads weights only from that session, only newer
versions than it has (`stats["stale_weights"]`, `stats["replayed"]`). An ack that would release
transitions the actor never sent (`acked >= next_seq`) is refused (`stats["refused_acks"]`).

Operator keys (`OperatorKeys`, fed by the node from /spacemouse/joy): success ends the episode
as a success (reward 1.0, terminated), failure ends it as a failure (terminated), re-record
ends it as truncated (the data is kept, the episode is marked); the human wins over the reward
classifier in the same step. Keys pressed while the robot resets are ignored and logged. With
`scene_reset_timeout_s` > 0 the actor pauses before each reset (the arm holds where the
episode ended) until the operator presses a key or the timeout passes.

An env error that carries `aborts_episode = True` (tasks.ros.backend.StaleDataError: a camera
or a state topic went stale) aborts the episode: nothing is recorded for that step, the arm
holds its last target (the controller's watchdog), the episode's last sent transition is
closed as truncated (re-sent, and re-spooled), and the episode is logged with "aborted".

No ROS here: the node (tasks/ros/actor_node.py) passes received bytes to receive_ack /
receive_weights / Takeover from its callbacks and gives a `send(bytes)` callable. Those entry
points are thread-safe; everything else runs on the caller's thread.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from robot_rl.controllers.rotations import quat_to_matrix
from robot_rl import transport
from robot_rl.auth import AuthError, MessageAuth
from robot_rl.episode import EpisodeResult, Transition, from_chunk, to_chunk
from robot_rl.spool import Spool, SpooledSession
from robot_rl.transport import TransitionSchema

log = logging.getLogger("robot_rl.actor")


@dataclass
class TakeoverConfig:
    deadband: float = 0.05          # a twist component above this (in twist units) is a human motion
    linear_scale: float = 1.0       # twist units that map to action 1.0 (1.0: the teleop contract's
    angular_scale: float = 1.0      # normalised twist; set the task's action scale for m/step input)
    timeout_s: float = 0.5          # teleop input older than this is ignored (device gone quiet)


@dataclass
class ActorConfig:
    actor_id: str = "actor0"
    max_unacked: int = 20_000       # transitions kept for resending; past it, wait for acks
    resend_after_s: float = 2.0     # no progress at the learner for this long -> resend unacked
    resend_chunk: int = 32          # transitions per resent message
    random_steps: int = 0           # uniform-random actions before the policy acts
    pace_hz: float = 0.0            # >0: hold this step rate (an env that does not pace itself)
    # Keep the policy close to the learner (as the in-process loop): before an episode, wait
    # until the newest weights have >= sync_updates_per_step * (steps - max_policy_lag) updates.
    sync_updates_per_step: float = 0.0   # 0: never wait for weights
    sync_after_steps: int = 0            # the learner's learning_starts: no updates before it
    max_policy_lag: int = 200
    sync_timeout_s: float = 60.0
    # Disk spool (robot_rl/spool.py): "" keeps unacked transitions in memory only; a directory
    # keeps them on disk too, so a killed actor re-sends them when it starts again.
    spool_dir: str = ""
    spool_fsync: str = "episode"         # never | episode | step (see robot_rl/spool.py)
    recover_timeout_s: float = 60.0      # wait this long for the learner to ack a killed session's spool
    takeover: TakeoverConfig = field(default_factory=TakeoverConfig)
    scene_reset_timeout_s: float = 0.0   # >0: before each reset, wait this long (or for a key)
                                         # while the operator puts the scene back
    stale_reset_timeout_s: float = 30.0  # retry a reset that meets stale data this long, then fail


OPERATOR_KEYS = ("success", "failure", "rerecord")


class OperatorKeys:
    """The operator's episode keys (OPERATOR_KEYS), from any thread. A key counts once per
    press (its rising edge). While `resetting`, presses are ignored and logged (`ignored`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._cond = threading.Condition()
        self._held: set[str] = set()
        self._pending: list[str] = []
        self._resetting = False
        self.ignored: list[dict[str, Any]] = []     # {"key", "t"} of presses during resets

    def on_keys(self, held: set[str]) -> None:
        """The keys held now (a subset of OPERATOR_KEYS)."""
        unknown = set(held) - set(OPERATOR_KEYS)
        if unknown:
            raise ValueError(f"unknown operator keys {sorted(unknown)}; known: {OPERATOR_KEYS}")
        with self._cond:
            rising, self._held = set(held) - self._held, set(held)
            for key in (k for k in OPERATOR_KEYS if k in rising):
                if self._resetting:
                    self.ignored.append({"key": key, "t": self._clock()})
                    log.warning("operator key %r during a reset: ignored", key)
                else:
                    self._pending.append(key)
            self._cond.notify_all()

    def take(self) -> str | None:
        """The first key pressed since the last call (later ones in the same step are dropped)."""
        with self._cond:
            pending, self._pending = self._pending, []
        return pending[0] if pending else None

    def wait(self, timeout_s: float, stop: threading.Event) -> str | None:
        """The next key within timeout_s, or None."""
        deadline = self._clock() + timeout_s
        with self._cond:
            self._pending.clear()
            while not self._pending and not stop.is_set() and self._clock() < deadline:
                self._cond.wait(0.05)
            pending, self._pending = self._pending, []
        return pending[0] if pending else None

    def set_resetting(self, on: bool) -> None:
        with self._cond:
            self._resetting = on
            self._pending.clear()


def tcp_rotation(env: Any) -> np.ndarray | None:
    """The TCP rotation (base <- EE) of a tasks.RobotEnv, or None for envs without one."""
    state = getattr(getattr(env, "unwrapped", env), "last_state", None)
    quat = getattr(state, "tcp_quat", None)
    # Normalised here: the pose arrives from a message (the rotation helper expects a unit quaternion).
    return None if quat is None else quat_to_matrix(np.asarray(quat, np.float64) / np.linalg.norm(quat))


class Takeover:
    """The latest human command. on_twist/on_joy are called from ROS callbacks (any thread);
    action() is read by the actor once per control step, so a command takes over in the step
    right after it arrives."""

    def __init__(self, cfg: TakeoverConfig | None = None, clock: Callable[[], float] = time.monotonic):
        self.cfg = cfg or TakeoverConfig()
        if self.cfg.linear_scale <= 0 or self.cfg.angular_scale <= 0 or self.cfg.deadband < 0:
            raise ValueError(f"takeover scales must be > 0 and the deadband >= 0: {self.cfg}")
        self._clock = clock
        self._lock = threading.Lock()
        self._twist = np.zeros(6)
        self._twist_time = -np.inf
        self._gripper: float | None = None     # 1 close, 0 open, None: no gripper button held
        self._button = False                   # an explicit takeover button (e.g. keyboard toggle)
        self._joy_time = -np.inf

    def on_twist(self, twist: Any) -> None:
        """twist: [vx, vy, vz, wx, wy, wz] in the robot base frame."""
        v = np.asarray(twist, dtype=np.float64)
        if v.shape != (6,) or not np.all(np.isfinite(v)):
            raise ValueError(f"teleop twist must be 6 finite numbers, got {twist!r}")
        with self._lock:
            self._twist, self._twist_time = v, self._clock()

    def on_joy(self, gripper: float | None, takeover_button: bool = False) -> None:
        """gripper: 1.0 while close is held, 0.0 while open is held, None otherwise."""
        with self._lock:
            self._gripper, self._button, self._joy_time = gripper, bool(takeover_button), self._clock()

    def action(self, rotation: np.ndarray | None = None) -> np.ndarray | None:
        """The human's action (7,) in [-1, 1] in the EE frame, or None when the human is idle.

        rotation: the TCP rotation (base <- EE); the twist is in the base frame and the action
        in the EE frame, so the twist is rotated by its transpose. None: frames coincide."""
        now = self._clock()
        with self._lock:
            twist = self._twist if now - self._twist_time <= self.cfg.timeout_s else np.zeros(6)
            joy_fresh = now - self._joy_time <= self.cfg.timeout_s
            gripper = self._gripper if joy_fresh else None
            button = self._button and joy_fresh
        moving = bool(np.max(np.abs(twist)) > self.cfg.deadband)
        if not (moving or gripper is not None or button):
            return None
        lin, ang = (twist[:3], twist[3:]) if moving else (np.zeros(3), np.zeros(3))
        if rotation is not None:
            lin, ang = rotation.T @ lin, rotation.T @ ang
        action = np.zeros(7)
        action[:3] = lin / self.cfg.linear_scale
        action[3:6] = ang / self.cfg.angular_scale
        action[6] = 0.0 if gripper is None else (1.0 if gripper >= 0.5 else -1.0)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


class Actor:
    """See the module docstring. `handle` is a robot_rl.run_env.EnvHandle (env + control rate)."""

    def __init__(self, cfg: ActorConfig, handle: Any, agent: Any, send: Callable[[bytes], None],
                 takeover: Takeover | None = None, session: str | None = None, writer: Any = None,
                 seed: int = 0, clock: Callable[[], float] = time.monotonic,
                 rotation: Callable[[], np.ndarray | None] | None = None,
                 keys: OperatorKeys | None = None, *, key: bytes, assist: Any = None,
                 video: Any = None):
        """key: the run's auth key (robot_rl.auth.load_key(RUN_DIR/auth.key)).
        assist: a scripted human in the twin (robot_rl.scripted_human.ScriptedHuman: reset(),
        step(obs, policy_action) -> (action, intervened)), consulted when no real human acts.
        video: a robot_rl.video.EpisodeVideo: every N-th episode as GIFs of the cameras."""
        self.auth = MessageAuth(key)
        self.cfg, self.handle, self.env, self.agent = cfg, handle, handle.env, agent
        self.send = send
        self.assist = assist
        self.video = video
        self.takeover = takeover or Takeover(cfg.takeover, clock)
        self.keys = keys or OperatorKeys(clock)
        self.session = session or uuid.uuid4().hex[:12]
        self.key = transport.session_key(cfg.actor_id, self.session)
        self.writer = writer
        self.clock = clock
        self.rotation = rotation or (lambda: tcp_rotation(self.env))
        self.rng = np.random.default_rng(seed)
        self.weights_schema = transport.weights_schema(agent.policy_state_dict())
        self.schema = TransitionSchema.from_spaces(self.env.observation_space, self.env.action_space)
        self._max_weights_bytes = self.weights_schema.max_message_bytes()
        if not 1 <= cfg.resend_chunk <= transport.MAX_TRANSITIONS_PER_MESSAGE:
            raise ValueError(f"resend_chunk must be in [1, {transport.MAX_TRANSITIONS_PER_MESSAGE}], "
                             f"got {cfg.resend_chunk}")
        self.stop_event = threading.Event()
        # Earlier sessions' spooled transitions (a killed actor), re-sent by recover_spooled().
        self.spooled: list[SpooledSession] = (Spool.recover(cfg.spool_dir, exclude=self.session)
                                              if cfg.spool_dir else [])
        self.spool = Spool(cfg.spool_dir, self.session, cfg.spool_fsync) if cfg.spool_dir else None
        self.recovered_episodes: list[dict[str, Any]] = []
        self._latest_acks: tuple[str, dict[str, Any]] | None = None

        self._lock = threading.Lock()
        self._ack_inbox: tuple[str, dict[str, int] | None] | None = None
        self._weights_inbox: tuple[dict[str, Any], dict[str, Any]] | None = None
        # The newest learner seen in an authenticated ack (written by receive_ack, under _lock):
        # older epochs and older ack_seqs of it are replays.
        self._bound: tuple[int, str | None, int] = (-1, None, -1)    # (epoch, session, ack_seq)

        self.next_seq = 0
        self.episode = 0
        self.env_steps = 0
        # What earlier sessions of this actor did (a restart continues, never repeats): their
        # episodes shift this session's episode seeds, their steps count for random_steps and
        # the weights lockstep. Set from the actor's episode log (tasks/ros/actor_node.py).
        self.episodes_before = 0
        self.steps_before = 0
        self.unacked: OrderedDict[int, Transition] = OrderedDict()  # seq -> transition
        self.last_sent: dict[int, float] = {}
        self.acked = -1
        self.learner_session: str | None = None
        self.learner_expected: int | None = None
        self.last_resend = -np.inf
        self.weights_version = -1
        self.weights_header: dict[str, Any] = {}
        self.stats = {"sent": 0, "resent": 0, "acked": 0, "weights_loaded": 0, "rejected": 0,
                      "recovered": 0, "spool_errors": 0, "unauthenticated": 0, "replayed": 0,
                      "refused_acks": 0, "stale_weights": 0}

    # ------------------------------------------------------------------ inbound (any thread)

    def _verified(self, data: bytes, max_payload: int) -> memoryview:
        try:
            return self.auth.verify(data, max_payload)
        except AuthError:
            with self._lock:
                self.stats["unauthenticated"] += 1
            raise

    def receive_ack(self, data: bytes) -> None:
        """Raises TransportError (AuthError: no valid tag) for a message it drops (the node logs
        it and goes on); a replayed or older learner's ack is ignored and counted."""
        ack = transport.decode_ack_message(self._verified(data, transport.ACK_MAX_MESSAGE_BYTES))
        with self._lock:
            epoch, session, ack_seq = self._bound
            if ack.epoch < epoch or (ack.epoch == epoch and (ack.learner_session != session
                                                               or ack.ack_seq <= ack_seq)):
                self.stats["replayed"] += 1
                return
            self._bound = (ack.epoch, ack.learner_session, ack.ack_seq)
            self._ack_inbox = (ack.learner_session, ack.sessions.get(self.key))
            self._latest_acks = (ack.learner_session, ack.sessions)

    def receive_weights(self, data: bytes) -> None:
        """Checks the weights against this policy's schema now; they are applied between episodes,
        if they come from the learner session this actor is bound to (apply_weights)."""
        header, state = transport.decode_weights(self._verified(data, self._max_weights_bytes), self.weights_schema)
        with self._lock:
            loaded = self.weights_header
            waiting = self._weights_inbox[0] if self._weights_inbox is not None else {}
            if header["epoch"] < max(self._bound[0], waiting.get("epoch", -1)):
                self.stats["stale_weights"] += 1          # an older learner's (a replay)
                return
            for have in (loaded, waiting):
                if have.get("learner_session") == header["learner_session"] \
                        and header["weights_version"] <= have["weights_version"]:
                    self.stats["replayed"] += 1           # not newer than what we hold
                    return
            self._weights_inbox = (header, state)     # latest only: the newest message wins

    # ------------------------------------------------------------------ acks and resending

    def pump(self) -> None:
        """Applies the newest ack, prunes acknowledged transitions, resends when the learner lost some."""
        with self._lock:
            inbox, self._ack_inbox = self._ack_inbox, None
        now = self.clock()
        resend_all = False
        if inbox is not None:
            learner_session, entry = inbox
            if learner_session != self.learner_session:
                if self.learner_session is not None:
                    log.info("learner session %s -> %s: resending %d unacked transitions",
                             self.learner_session, learner_session, len(self.unacked))
                self.learner_session = learner_session
                resend_all = bool(self.unacked)
            if entry is not None and (entry["acked"] >= self.next_seq or entry["expected"] > self.next_seq):
                # Would release transitions we never sent: refused, nothing pruned.
                self.stats["refused_acks"] += 1
                log.error("refused an ack of %s up to seq %d: only seqs < %d were sent",
                          self.key, entry["acked"], self.next_seq)
            elif entry is None:
                self.learner_expected = None
            else:
                self.learner_expected = entry["expected"]
                if entry["acked"] > self.acked:
                    self.acked = entry["acked"]
                    while self.unacked and next(iter(self.unacked)) <= self.acked:
                        seq, _ = self.unacked.popitem(last=False)
                        self.last_sent.pop(seq, None)
                        self.stats["acked"] += 1
                    if self.spool is not None:
                        self.spool.acked(self.acked)
        if not resend_all and self.unacked and now - self.last_resend > self.cfg.resend_after_s:
            # Stalled: the learner does not expect what we sent (or does not know us) for too long.
            waiting_for = self.learner_expected if self.learner_expected is not None else next(iter(self.unacked))
            if waiting_for < self.next_seq and waiting_for in self.last_sent \
                    and now - self.last_sent[waiting_for] > self.cfg.resend_after_s:
                resend_all = True
            elif waiting_for < next(iter(self.unacked)):
                resend_all = True    # it expects older data than we hold: cannot happen unless reset
        if resend_all:
            self.resend()

    def resend(self) -> None:
        """Sends every unacked transition again, oldest first, in per-episode chunks."""
        now = self.clock()
        self.last_resend = now
        run: list[tuple[int, Transition]] = []
        for seq, t in self.unacked.items():
            if run and (t.episode != run[-1][1].episode or len(run) >= self.cfg.resend_chunk):
                self._send_run(run, now)
                run = []
            run.append((seq, t))
        if run:
            self._send_run(run, now)

    def _encode_run(self, run: list[tuple[int, Transition]], session: str, unacked_from: int) -> bytes:
        chunk = to_chunk([t for _, t in run], self.cfg.actor_id, session, run[0][0], unacked_from)
        return transport.encode_transitions(chunk)

    def _send_run(self, run: list[tuple[int, Transition]], now: float, first_time: bool = False,
                  data: bytes | None = None) -> None:
        if data is None:
            data = self._encode_run(run, self.session, next(iter(self.unacked)))
        self._send(data)
        for seq, _ in run:
            self.last_sent[seq] = now
        self.stats["sent" if first_time else "resent"] += len(run)

    def _send(self, payload: bytes) -> None:
        """Every message leaves signed (the spool keeps the unsigned payload: it never travels)."""
        self.send(self.auth.sign(payload))

    def flush(self, timeout_s: float) -> bool:
        """Waits until every transition is acknowledged; False on timeout."""
        deadline = self.clock() + timeout_s
        while self.unacked and self.clock() < deadline and not self.stop_event.is_set():
            self.pump()
            time.sleep(0.02)
        self.pump()
        return not self.unacked

    # ------------------------------------------------------------------ weights

    def apply_weights(self) -> bool:
        """Loads the newest received weights (call between episodes); True if new ones were loaded."""
        with self._lock:
            inbox, self._weights_inbox = self._weights_inbox, None
            bound_epoch, bound_session, _ = self._bound
            if inbox is not None and inbox[0]["learner_session"] != bound_session:
                if inbox[0]["epoch"] > bound_epoch:
                    self._weights_inbox = inbox       # a newer learner whose first ack is on its way
                else:
                    self.stats["stale_weights"] += 1  # not the learner we are bound to
                inbox = None
        if inbox is None:
            return False
        header, state = inbox
        self.agent.load_policy_state_dict(state)
        self.weights_version, self.weights_header = header["weights_version"], header
        self.stats["weights_loaded"] += 1
        return True

    def _wait_for_policy(self) -> None:
        """Optional lockstep: wait until the learner's weights are not too far behind our steps."""
        ratio = self.cfg.sync_updates_per_step
        if ratio <= 0:
            return
        need = ratio * (self.steps_before + self.env_steps - self.cfg.max_policy_lag - self.cfg.sync_after_steps)
        if need <= 0:
            return
        deadline = self.clock() + self.cfg.sync_timeout_s
        while self.weights_header.get("weights_version", -1) < need and not self.stop_event.is_set():
            self.pump()
            self.apply_weights()
            if self.clock() > deadline:
                log.warning("weights lag: have %s updates, want %.0f; going on with older weights",
                            self.weights_header.get("weights_version"), need)
                return
            time.sleep(0.02)

    # ------------------------------------------------------------------ episodes

    def _wait_for_room(self) -> None:
        warned = self.clock()
        while len(self.unacked) >= self.cfg.max_unacked and not self.stop_event.is_set():
            self.pump()
            time.sleep(0.02)
            if self.clock() - warned > 5.0:
                log.warning("%d unacknowledged transitions (max %d): waiting for the learner",
                            len(self.unacked), self.cfg.max_unacked)
                warned = self.clock()

    def policy_action(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.steps_before + self.env_steps < self.cfg.random_steps:
            return self.rng.uniform(-1.0, 1.0, size=self.env.action_space.shape).astype(np.float32)
        return self.agent.act(obs, deterministic=False)

    def _reset(self, seed: int | None) -> tuple[Any, dict]:
        """The scene pause (optional), then env.reset with operator keys ignored; a reset that
        meets stale data is retried for stale_reset_timeout_s (the arm holds meanwhile)."""
        if self.cfg.scene_reset_timeout_s > 0:
            log.info("reset the scene, then press a key (or wait %.0f s)", self.cfg.scene_reset_timeout_s)
            key = self.keys.wait(self.cfg.scene_reset_timeout_s, self.stop_event)
            log.info("scene reset %s", f"ended by the {key!r} key" if key else "timed out")
        deadline = self.clock() + self.cfg.stale_reset_timeout_s
        self.keys.set_resetting(True)
        try:
            while True:
                try:
                    return self.env.reset(seed=seed)
                except Exception as e:  # noqa: BLE001 - only data faults are retried
                    if not getattr(e, "aborts_episode", False) or self.clock() > deadline:
                        raise
                    log.error("reset met stale data, retrying: %s", e)
                    time.sleep(0.5)
        finally:
            self.keys.set_resetting(False)

    def run_episode(self, seed: int | None = None) -> EpisodeResult:
        """One episode: weights first (never mid-episode), then act / take over / send each step."""
        self._wait_for_room()
        self.apply_weights()
        self._wait_for_policy()
        obs, info = self._reset(seed)
        if self.assist is not None:
            self.assist.reset()
        episode, started = self.episode, self.clock()
        if self.video is not None:
            self.video.begin(self.episodes_before + episode)
            self.video.grab(self.env)
        first_seq = self.next_seq
        ret, length, interventions, success = 0.0, 0, 0, False
        source = key = aborted = None
        classifier_success, classifier_prob, truth = False, None, None
        tick = self.clock()
        while True:
            if self.cfg.pace_hz > 0:
                tick += 1.0 / self.cfg.pace_hz
                time.sleep(max(0.0, tick - self.clock()))
            human = self.takeover.action(self.rotation())
            action = human if human is not None else self.policy_action(obs)
            intervened = human is not None
            if not intervened and self.assist is not None:
                action, intervened = self.assist.step(obs, action)
            try:
                next_obs, reward, terminated, truncated, info = self.env.step(action)
            except Exception as e:  # noqa: BLE001 - only data faults abort; the rest propagate
                if not getattr(e, "aborts_episode", False):
                    raise
                aborted = str(e)
                log.error("episode %d aborted after %d steps (the arm holds): %s", episode, length, e)
                self._close_aborted(first_seq)
                break
            step_success = bool(info.get("success", False))
            if "classifier_prob" in info:       # tasks.classifier_reward said
                classifier_prob = max(classifier_prob or 0.0, float(info["classifier_prob"]))
                classifier_success = classifier_success or step_success
            if "ground_truth_success" in info:  # the twin's truth beside the classifier
                truth = bool(truth) or bool(info["ground_truth_success"])
            pressed = self.keys.take()
            if pressed is not None:              # the operator wins over the classifier
                key = pressed
                if key == "success":
                    reward, terminated, step_success = 1.0, True, True
                elif key == "failure":
                    reward, terminated, step_success = 0.0, True, False
                else:                            # re-record: keep the data, end and mark it
                    truncated, step_success = True, False
            if step_success and source is None:
                source = "operator" if key == "success" else "classifier" if "classifier_prob" in info else "env"
            self._record(episode, length, obs, action, reward, next_obs, terminated, truncated,
                         info.get("grasp_penalty", 0.0), intervened, success=step_success)
            ret += float(reward)
            length += 1
            interventions += int(intervened)
            success = success or step_success
            obs = next_obs
            if self.video is not None:
                self.video.grab(self.env)
            self.pump()
            if terminated or truncated or self.stop_event.is_set():
                break
        if self.video is not None:
            self.video.end(self.episodes_before + episode)
        self.episode += 1
        result = EpisodeResult(
            return_=ret, length=length, success=success, interventions=interventions,
            cycle_time_s=length / self.handle.control_hz if success else None,
            wall_s=self.clock() - started, session=self.session, episode=episode,
            success_source=source, weights_version=self.weights_version, env_steps=self.env_steps,
            operator_key=key, classifier_success=classifier_success, classifier_prob_max=classifier_prob,
            aborted=aborted, ground_truth_success=truth)
        self._log(result)
        return result

    def _close_aborted(self, first_seq: int) -> None:
        """Closes an aborted episode's last sent transition as truncated (it bootstraps): in
        memory, in the spool (a later record of the same seq wins on recovery), and at the
        learner (the episode is re-sent from its start, which the learner takes again)."""
        if self.next_seq == first_seq:
            return                               # nothing of this episode was sent
        seq = self.next_seq - 1
        t = self.unacked.get(seq)
        if t is None:
            return
        t.truncated = True
        data = self._encode_run([(seq, t)], self.session, next(iter(self.unacked)))
        if self.spool is not None:
            try:
                self.spool.append(t.episode, seq, data, False, episode_ends=True)
            except OSError as e:
                self.stats["spool_errors"] += 1
                log.error("spool write failed (%s); the aborted episode's end is in memory only", e)
        run = [(s_, x) for s_, x in self.unacked.items() if s_ >= first_seq]
        for i in range(0, len(run), self.cfg.resend_chunk):
            self._send_run(run[i:i + self.cfg.resend_chunk], self.clock())

    def _record(self, episode: int, step: int, obs, action, reward, next_obs, terminated, truncated,
                grasp_penalty, intervention: bool, success: bool = False) -> None:
        seq = self.next_seq
        self.next_seq += 1
        self.env_steps += 1
        t = Transition.copy_of(obs, action, reward, next_obs, terminated, truncated, grasp_penalty,
                               intervention, episode=episode, step=step)
        self.unacked[seq] = t
        data = self._encode_run([(seq, t)], self.session, next(iter(self.unacked)))
        if self.spool is not None:
            try:     # on disk before it is sent
                self.spool.append(episode, seq, data, success, episode_ends=bool(terminated or truncated))
            except OSError as e:
                # Still in memory (unacked) and sent: lost only if the actor is killed too.
                self.stats["spool_errors"] += 1
                if self.stats["spool_errors"] == 1 or self.stats["spool_errors"] % 1000 == 0:
                    log.error("spool write failed (%s); transition %d kept in memory only", e, seq)
        self._send_run([(seq, t)], self.clock(), first_time=True, data=data)

    # ------------------------------------------------------------------ a killed session's spool

    def recover_spooled(self, timeout_s: float | None = None) -> list[EpisodeResult]:
        """Re-sends the spooled transitions of this actor's earlier (killed) sessions under their
        own session and seq numbers, until the learner acknowledges them all or `timeout_s`
        passes (then they stay spooled for the next start). A session's unfinished last episode
        is closed as truncated (it bootstraps, as a reopened buffer closes an open episode).
        Returns one result per recovered episode (marked "recovered")."""
        timeout_s = self.cfg.recover_timeout_s if timeout_s is None else timeout_s
        results = []
        for old in list(self.spooled):
            key = transport.session_key(self.cfg.actor_id, old.session)
            pending: OrderedDict[int, Transition] = OrderedDict()
            successes: dict[int, bool] = {}
            for rec in old.records:
                chunk = transport.decode_transitions(rec.message, self.schema)
                pending[chunk.seq] = from_chunk(chunk, 0)
                successes[chunk.episode] = successes.get(chunk.episode, False) or rec.success
            last_seq = next(reversed(pending))
            pending[last_seq] = pending[last_seq].closed()
            episodes: dict[int, list[Transition]] = {}
            for t in pending.values():
                episodes.setdefault(t.episode, []).append(t)
            log.info("re-sending %d spooled transitions (%d episodes) of killed session %s",
                     len(pending), len(episodes), key)
            deadline, last_send = self.clock() + timeout_s, -np.inf
            while pending and not self.stop_event.is_set():
                with self._lock:
                    acks = self._latest_acks
                entry = acks[1].get(key) if acks else None
                if entry is not None:
                    while pending and next(iter(pending)) <= entry["acked"]:
                        pending.popitem(last=False)
                if not pending:
                    break
                now = self.clock()
                if now > deadline:
                    break
                if now - last_send > self.cfg.resend_after_s:
                    last_send = now
                    run: list[tuple[int, Transition]] = []
                    for seq, t in list(pending.items()) + [(None, None)]:
                        if run and (t is None or t.episode != run[-1][1].episode
                                    or len(run) >= self.cfg.resend_chunk):
                            self._send(self._encode_run(run, old.session, next(iter(pending))))
                            self.stats["recovered"] += len(run)
                            run = []
                        if t is not None:
                            run.append((seq, t))
                time.sleep(0.02)
            if pending:
                log.warning("%d spooled transitions of %s not acknowledged in %.0f s; they stay "
                            "spooled for the next start", len(pending), key, timeout_s)
                continue
            Spool.forget(self.cfg.spool_dir, old.session)
            self.spooled.remove(old)
            for episode, ts in episodes.items():
                results.append(EpisodeResult(
                    return_=float(sum(t.reward for t in ts)), length=len(ts), success=successes[episode],
                    interventions=int(sum(t.intervention for t in ts)),
                    cycle_time_s=len(ts) / self.handle.control_hz if successes[episode] else None,
                    session=old.session, episode=episode, recovered=True))
        self.recovered_episodes += results
        return results

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()

    def _log(self, r: EpisodeResult) -> None:
        if self.writer is None:
            return
        step = self.env_steps
        w = self.writer
        w.add_scalar("actor/return", r.return_, step)
        w.add_scalar("actor/success", float(r.success), step)
        w.add_scalar("actor/length", r.length, step)
        w.add_scalar("actor/interventions", r.interventions, step)
        w.add_scalar("actor/intervention_rate", r.intervention_rate, step)
        if r.cycle_time_s is not None:
            w.add_scalar("actor/cycle_time_s", r.cycle_time_s, step)
        w.add_scalar("actor/weights_version", r.weights_version, step)
        w.add_scalar("actor/classifier_success", float(r.classifier_success), step)
        if r.classifier_prob_max is not None:
            w.add_scalar("actor/classifier_prob_max", r.classifier_prob_max, step)
        for key in OPERATOR_KEYS:
            w.add_scalar(f"actor/operator_{key}", float(r.operator_key == key), step)
        w.add_scalar("actor/aborted", float(bool(r.aborted)), step)
        if r.ground_truth_success is not None:
            w.add_scalar("actor/ground_truth_success", float(r.ground_truth_success), step)
        w.add_scalar("actor/unacked", len(self.unacked), step)

    def run(self, steps: int, seed: int = 0, flush_timeout_s: float = 60.0,
            on_episode: Callable[[EpisodeResult], None] | None = None) -> list[EpisodeResult]:
        """Episodes until `steps` env steps (or stop_event), then waits for the last acks."""
        results = []
        if self.spooled:
            for r in self.recover_spooled():
                if on_episode is not None:
                    on_episode(r)
        while self.env_steps < steps and not self.stop_event.is_set():
            r = self.run_episode(seed=seed * 1_000_003 + self.episodes_before + self.episode)
            results.append(r)
            if on_episode is not None:
                on_episode(r)
        if not self.flush(flush_timeout_s):
            log.warning("%d transitions still unacknowledged after %.0f s", len(self.unacked), flush_timeout_s)
        return results
