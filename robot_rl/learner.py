"""The learner loop: transitions in (from any number of actors), SAC/RLPD updates, weights out.

Ingest. Each actor session (actor id + a random session id per actor process) numbers its
transitions 0, 1, 2, ... The learner accepts them strictly in order per session, stages each
episode in memory, and commits it to the buffers only when the episode ends: the whole episode
in the online buffer, its intervention segments in the demo buffer too (HIL-SERL), both
buffers commit(), the session's ack table is written to disk, and only then is the new highest
contiguous seq acknowledged. Concurrent actors' episodes are written whole at their end, so they
never interleave (a buffer holds one open episode at a time). A lone actor's running episode is
written through (`write_through`): each transition goes into the buffers as it arrives,
uncommitted, so the updates train on it at once, as a one-process loop does; it is committed
at the episode's end like any other. A second actor appearing rolls the running episode back to
the last commit (it stays staged and is written whole); so does a dropped episode. A crash
loses only uncommitted, unacknowledged data, which the actor resends.
Duplicates (seq below what the session's table says) are dropped; a gap (a lost message, or
the learner restarted mid-episode) drops what follows until the actor resends from its oldest
unacked transition - which always starts an episode, because acks cover whole episodes. Every
message says where the actor's unacked data starts (`unacked_from`), so a session the learner
has no record of is picked up there and never later: nothing is acked that was not stored.

A full disk: an episode that cannot be written is rolled back, kept in memory, not acked,
and retried every `disk_retry_s` (logged, `status`); meanwhile nothing new is taken in.

Delivery is at least once: a crash between the buffers' commit and the ack table's write can
store the last episode twice (microseconds wide); an acknowledged transition is never lost.

Training runs continuously in the same loop, with the run's update budget and minibatching
(robot_rl/updates.py: `updates_per_step` updates per env step from `learning_starts` on, the
steps of episodes still staged included; one full RLPD batch per gradient step) unless
`free_running`. The in-process run (robot_rl/train.py) is this class too, fed by an in-memory
link. Weights are published at most every
`weights_every_s` (latest-only: the node publishes them TRANSIENT_LOCAL, depth 1). Acks go out
on every commit and as a heartbeat every `heartbeat_every_s`, so a restarted actor or learner
learns where the other stands.

Restart: everything lives in the run directory, opened as every run opens it
(robot_rl/run_files.py): buffers/{online,demo}, demos.json (the demos are complete),
checkpoint.{safetensors,json} (agent + update counter), and learner_state.json (per-session ack
table; replaced atomically). A killed learner reopens the buffers at their last commit (they
are the truth for env steps and episodes) and the checkpoint, and answers actors from the table
it wrote with that commit.

Authentication (robot_rl/auth.py): the run's key lives in RUN_DIR/auth.key (created here if
the run has none). Every transition is verified before it is parsed; one without a valid tag
is dropped and counted (`stats["unauthenticated"]`). Weights and acks leave signed and carry
this process's `epoch` (it only grows across restarts: max(last epoch + 1, time.time_ns()),
kept in learner_state.json) and acks a per-session `ack_seq`, so an actor recognises a
replayed or older learner's message. A replayed transition is a duplicate (dropped by seq; a
replay of an episode start the learner has staged matches what is staged and changes nothing).

Demos: the demo buffer is filled once, at the first start: from a recorded episode dataset
(TrainConfig.demo_dataset, e.g. `robot-rl record-demos --ros` on the robot; its successful
episodes, checked against the env's observations and actions) or else with cfg.demos scripted
demos in the twin (robot_rl/demos.py, as every run). A run whose actors drive a real robot (`robot_backend="ros"`) refuses
scripted twin demos: its demo buffer would fill with simulated data.

Monitoring: every committed episode's return, length, intervention rate, success and cycle
time go to TensorBoard (learner/episode_*) and to RUN_DIR/learner_progress.json (saved with
each checkpoint); the node draws learning_curve.png and episodes.png from it at close. Success is read from what the actors send: an
episode whose last transition is terminal with reward >= 1 (the sparse success reward of the
tasks, the classifier's final stage and the operator's success key).

No ROS here: the node (tasks/ros/learner_node.py) feeds receive() from its subscription callback
(any thread) and gives publish_weights / publish_ack callables.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from robot_rl import auth, transport
from robot_rl.agents.sac import SACAgent
from robot_rl.atomic_io import is_disk_full, write_json_atomic
from robot_rl.buffers import ReplayBuffer
from robot_rl.curve import LearningCurve
from robot_rl.episode import EpisodeResult, Transition, from_chunk
from robot_rl.interventions import InterventionRouter, intervention_segments
from robot_rl.run_files import device_for, open_run_buffers, save_checkpoint
from robot_rl.transport import TransitionChunk, TransitionSchema
from robot_rl.updates import make_sampler, update_once, updates_owed

log = logging.getLogger("robot_rl.learner")


@dataclass
class LearnerConfig:
    weights_every_s: float = 1.0       # publish weights at most this often (when they changed)
    heartbeat_every_s: float = 0.5     # ack table broadcast period
    checkpoint_every_s: float = 60.0   # agent checkpoint period (buffers commit per episode)
    free_running: bool = False         # True: update as fast as possible, no updates/step cap
    max_staged_steps: int = 100_000    # an episode longer than this is refused (memory bound)
    stale_session_s: float = 600.0     # drop the staged, unfinished episode of a silent session
    inbox_size: int = 10_000           # decoded messages waiting for the loop
    disk_retry_s: float = 1.0          # a full disk: retry writing the held-back episodes this often
    stop_after_steps: int = 0          # >0: run() returns once this many transitions are in and
                                       # the update cap for them is reached
    robot_backend: str = "twin"        # the actors' robot: twin | ros (a real robot, or the twin
                                       # node standing in for one: no scripted twin demos)
    write_through: bool = True         # a lone actor's running episode is sampled as it arrives
    lone_actor_s: float = 30.0         # ... when no other session was heard for this long


class Learner:
    """See the module docstring. cfg: robot_rl.train.TrainConfig (task, agent, buffer, ...)."""

    def __init__(self, cfg: Any, opts: LearnerConfig, publish_weights: Callable[[bytes], None],
                 publish_ack: Callable[[bytes], None], writer: Any = None,
                 clock: Callable[[], float] = time.monotonic, key: bytes | None = None,
                 handle: Any = None, curve_file: str | None = "learner_progress.json"):
        """key: the run's auth key; None: RUN_DIR/auth.key, created if the run has none.
        handle: the run's env (robot_rl.run_env.EnvHandle) when the caller has one (the
        in-process run shares its env: the learner steps it only for the scripted demos, before
        any actor runs); None builds it. curve_file: where the actors' episodes are kept (None:
        the caller keeps the curve, as the in-process run does in progress.json)."""
        from robot_rl.run_env import make_run_env

        if opts.robot_backend not in ("twin", "ros"):
            raise ValueError(f"robot_backend must be 'twin' or 'ros', got {opts.robot_backend!r}")
        if opts.robot_backend == "ros" and not cfg.demo_dataset and cfg.demos > 0:
            raise ValueError(f"robot_backend=ros with demos={cfg.demos} scripted twin demos: a real robot's "
                             "demo buffer would fill with simulated data; record demos on the robot "
                             "(robot-rl record-demos --ros) and set demo_dataset=DIR, or set demos=0")
        self.cfg, self.opts = cfg, opts
        self.publish_weights, self.publish_ack = publish_weights, publish_ack
        self.writer, self.clock = writer, clock
        self.session = uuid.uuid4().hex[:12]
        self.run_dir = Path(cfg.run_dir)
        # A resume checks its settings against the run's config.yaml before anything is written;
        # the file is rewritten (with the change history) once buffers and checkpoint opened.
        from robot_rl import resume as resume_lib
        from robot_rl.config_ranges import validate_train_config
        validate_train_config(cfg)
        resume_plan = resume_lib.plan_resume(cfg, self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.key_path = self.run_dir / auth.KEY_FILE
        if key is None:
            key = auth.load_key(auth.ensure_key(self.run_dir))
        self.auth = auth.MessageAuth(key)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = device_for(cfg.device)

        # The env gives the spaces (and the scripted demos in the twin); it is never stepped online here.
        self.handle = handle if handle is not None else make_run_env(cfg)
        env = self.handle.env
        self.schema = TransitionSchema.from_spaces(env.observation_space, env.action_space)
        self._max_transition_bytes = self.schema.max_message_bytes()
        self.agent = SACAgent(cfg.agent, env.observation_space, env.action_space, device=self.device,
                              seed=cfg.seed)

        self.ckpt_path = self.run_dir / "checkpoint"
        self.state_path = self.run_dir / "learner_state.json"
        self.online_dir, self.demo_dir = self.run_dir / "buffers" / "online", self.run_dir / "buffers" / "demo"
        state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        # session key -> {"acked": int, "expected": int}; staged episodes live in self.staged
        self.sessions: dict[str, dict[str, int]] = {k: {"acked": v, "expected": v + 1}
                                                    for k, v in state.get("acked", {}).items()}
        self.staged: dict[str, list[Transition]] = {}
        self.last_seen: dict[str, float] = {}
        # Orders this learner process after every earlier one of the run (acks and weights carry it).
        self.epoch = max(int(state.get("epoch", 0)) + 1, time.time_ns())
        self._ack_seq = 0

        if state.get("demos_done") and not (self.run_dir / "demos.json").exists():
            # A run dir of an older learner that marked its (zero) demos done only here.
            write_json_atomic(self.run_dir / "demos.json", {"demos": 0, "from": "learner_state.json"})

        def save_config() -> None:
            resume_lib.log_changes(resume_plan, self.run_dir)
            resume_lib.save_config(cfg, self.run_dir, resume_plan)
        # The buffers, the demos and the checkpoint, as the in-process run opens them: the
        # buffers are the truth for env steps and episodes, the checkpoint for updates.
        self.online, self.demo, counters = open_run_buffers(cfg, self.run_dir, self.handle, self.agent,
                                                            save_config)
        self.counters = {"interventions": int(state.get("counters", {}).get("interventions", 0)), **counters}
        self.demos_done = True
        log.info("buffers: %d online, %d demo transitions; %d updates", len(self.online), len(self.demo),
                 self.counters["updates"])

        self.sampler = make_sampler(self.online, self.demo, batch_size=cfg.batch_size,
                                    demo_ratio=cfg.buffer.demo_ratio, pin_memory=cfg.buffer.pin_memory)
        self.rng = np.random.default_rng(cfg.seed + self.counters["updates"])
        self.weights_schema = transport.weights_schema(self.agent.policy_state_dict())
        self.inbox: queue.Queue[TransitionChunk] = queue.Queue(maxsize=opts.inbox_size)
        self.stop_event = threading.Event()
        self.stats = {"received": 0, "duplicates": 0, "gaps": 0, "rejected": 0, "weights_sent": 0,
                      "disk_full_retries": 0, "dropped_disk_full": 0, "unauthenticated": 0}
        # Episodes complete in memory that a full disk kept out of the buffers (oldest first):
        # not acked, retried every disk_retry_s; ingest pauses meanwhile (acks stay in order).
        self.blocked: list[tuple[str, list[Transition]]] = []
        self.status: dict[str, Any] = {"disk_full": False, "error": ""}
        self._demo_written: set[int] = set()     # ids of held-back episodes whose demo part is on disk
        # The session whose running episode is written through, and its router (module docstring).
        self._through: str | None = None
        self._router: InterventionRouter | None = None
        self._state_dirty = False
        self._save_state()                     # the epoch, before anything is published
        self._last_disk_retry = -np.inf
        self._last = {"weights": -np.inf, "heartbeat": -np.inf, "checkpoint": clock(), "weights_updates": -1}
        self._metrics: dict[str, float] = {}
        # The actors' episodes, for the PNGs (resumed: trimmed to what the buffers hold).
        self.curve = LearningCurve(self.run_dir, curve_file) if curve_file else None
        if self.curve is not None:
            self.curve.trim(self.counters["env_steps"])

    # ------------------------------------------------------------------ inbound (any thread)

    def receive(self, data: bytes) -> None:
        """Verifies, decodes and queues one transition message; raises TransportError (AuthError:
        no valid tag, counted) if it does not fit."""
        try:
            payload = self.auth.verify(data, self._max_transition_bytes)
        except auth.AuthError:
            self.stats["unauthenticated"] += 1
            raise
        chunk = transport.decode_transitions(payload, self.schema)
        if self.blocked:
            # A full disk holds episodes back: nothing new is taken in (the actors keep it
            # unacked and resend it), so memory does not grow while the disk stays full.
            self.stats["dropped_disk_full"] += 1
            return
        self.inbox.put(chunk, timeout=10.0)

    # ------------------------------------------------------------------ ingest (loop thread)

    def ingest(self, chunk: TransitionChunk) -> None:
        key = transport.session_key(chunk.actor_id, chunk.session)
        self.stats["received"] += chunk.count
        self.last_seen[key] = self.clock()
        s = self.sessions.get(key)
        if s is None:
            # A session we have no record of: everything below the actor's oldest unacked seq
            # was acknowledged before (by us, with a lost record) - start there, never later.
            for other in list(self.staged):
                if other.split("/")[0] == chunk.actor_id and self.staged[other]:
                    log.info("actor %s restarted (new session %s): dropping the unfinished episode of %s",
                             chunk.actor_id, chunk.session, other)
                    self._drop_staged(other)
                    del self.staged[other]
                    self.sessions[other]["expected"] = self.sessions[other]["acked"] + 1
            s = self.sessions[key] = {"acked": chunk.unacked_from - 1, "expected": chunk.unacked_from}
        elif chunk.unacked_from > s["expected"] and not self.staged.get(key):
            s["acked"], s["expected"] = chunk.unacked_from - 1, chunk.unacked_from
        elif chunk.step == 0 and chunk.seq == s["acked"] + 1 and self.staged.get(key) \
                and not _matches_staged(chunk, self.staged[key]):
            # A resend from the oldest unacked transition (an episode start): take the episode
            # again from there. Needed when a restarted actor re-sends a killed session's spool
            # with its unfinished last episode closed (the closing flag differs from what we staged).
            self._drop_staged(key)
            s["expected"] = chunk.seq
        staged = self.staged.setdefault(key, [])
        for i in range(chunk.count):
            seq, step = chunk.seq + i, chunk.step + i
            if seq < s["expected"]:
                self.stats["duplicates"] += 1
                continue
            if seq > s["expected"]:
                self.stats["gaps"] += chunk.count - i
                return
            t = from_chunk(chunk, i)
            if staged:
                prev = staged[-1]
                consistent = (t.episode == prev.episode and step == prev.step + 1
                              and all(np.array_equal(t.obs[k], prev.next_obs[k]) for k in t.obs))
            else:
                consistent = step == 0
            if not consistent or len(staged) >= self.opts.max_staged_steps:
                log.error("session %s: seq %d does not continue its episode (episode %d step %d); "
                          "dropping the staged episode", key, seq, chunk.episode, step)
                self.stats["rejected"] += 1
                self._drop_staged(key)
                s["expected"] = s["acked"] + 1
                return
            staged.append(t)
            s["expected"] = seq + 1
            if self.opts.write_through:
                self._write_through(key, t, len(staged) == 1)
            if t.ends_episode:
                episode = list(staged)
                staged.clear()
                if not self._commit_episode(key, episode):
                    return

    def _write_through(self, key: str, t: Transition, starts_episode: bool) -> None:
        """Puts a lone actor's transition into the buffers now (uncommitted); see the module docstring."""
        if self._through is None:
            now = self.clock()
            lone = all(other == key or now - seen > self.opts.lone_actor_s
                       for other, seen in self.last_seen.items())
            if not (starts_episode and lone and not self.blocked):
                return                 # only whole episodes are written through
            self._through, self._router = key, InterventionRouter(self.online, self.demo)
        elif self._through != key:
            log.info("a second actor (%s): the running episode of %s is written whole at its end",
                     key, self._through)
            self._stop_write_through()
            return
        try:
            self._router.add(t)
        except Exception as e:  # noqa: BLE001 - the staged copy is written at the episode's end
            log.warning("writing the running episode through failed (%s); it is written whole at its end", e)
            self._stop_write_through()

    def _stop_write_through(self) -> None:
        """Back to the last commit: the running episode stays staged (written whole, if kept)."""
        self._through = self._router = None
        self._reopen_buffers(verify=False)     # committed rows are as opened and verified

    def _drop_staged(self, key: str) -> None:
        """Forgets a session's unfinished episode, in memory and (written through) in the buffers."""
        self.staged.get(key, []).clear()
        if self._through == key:
            self._stop_write_through()

    def _commit_episode(self, key: str, episode: list[Transition]) -> bool:
        """Online buffer: the whole episode; demo buffer: each intervention segment. Then ack.
        False if it could not be written (a full disk keeps it in self.blocked for a retry)."""
        through = self._through == key          # already in the buffers, uncommitted
        if through:
            self._through = self._router = None
        try:
            # Demo segments first, committed on their own: an episode a full disk held back
            # after this point is retried without writing its segments twice.
            if id(episode) not in self._demo_written:
                if not through:
                    for segment in intervention_segments(episode):
                        for t in segment:
                            t.add_to(self.demo)
                self.demo.commit()
                self._demo_written.add(id(episode))
            if not through:
                for t in episode:
                    t.add_to(self.online)
            self.online.commit()
            self._demo_written.discard(id(episode))
        except Exception as e:
            if not is_disk_full(e):
                self._demo_written.discard(id(episode))
                log.exception("session %s: writing an episode failed; rolling the buffers back to "
                              "their last commit", key)
                self._reopen_buffers()
                self.sessions[key]["expected"] = self.sessions[key]["acked"] + 1
                self.stats["rejected"] += 1
                return False
            self._reopen_buffers()           # back to the last commit; the episode stays in memory
            if not self.status["disk_full"]:
                log.error("disk full: session %s's episode (%d transitions) not written and not "
                          "acknowledged; kept in memory and retried every %.0f s until there is room "
                          "(free disk space) or the learner is stopped: %s",
                          key, len(episode), self.opts.disk_retry_s, e)
            self.status.update(disk_full=True, error=str(e))
            self.blocked.append((key, episode))
            self._last_disk_retry = self.clock()
            return False
        if self.status["disk_full"]:
            log.warning("disk writable again: episode of %s written", key)
            self.status.update(disk_full=False, error="")
        n = len(episode)
        s = self.sessions[key]
        s["acked"] = s["expected"] - 1
        interventions = sum(t.intervention for t in episode)
        self.counters["env_steps"] += n
        self.counters["episodes"] += 1
        self.counters["interventions"] += interventions
        self._save_state()
        self._publish_acks()
        self._episode_stats(episode, interventions)
        return True

    def _episode_stats(self, episode: list[Transition], interventions: int) -> None:
        """An actor's episode as the learner sees it, in TensorBoard and the learning curve."""
        n, step, last = len(episode), self.counters["env_steps"], episode[-1]
        success = last.terminated and last.reward >= 1.0 - 1e-6
        result = EpisodeResult(return_=float(sum(t.reward for t in episode)), length=n, success=success,
                               interventions=int(interventions),
                               cycle_time_s=n / self.handle.control_hz if success else None)
        if self.curve is not None:
            self.curve.add_episode(step, result)
        if self.writer is not None:
            self.writer.add_scalar("learner/episode_return", result.return_, step)
            self.writer.add_scalar("learner/episode_length", n, step)
            self.writer.add_scalar("learner/episode_intervention_rate", result.intervention_rate, step)
            self.writer.add_scalar("learner/episode_success", float(success), step)
            if success:
                self.writer.add_scalar("learner/episode_cycle_time_s", result.cycle_time_s, step)

    def write_curves(self) -> None:
        """learner_progress.json, learning_curve.png and episodes.png from the episodes so far."""
        if self.curve is None:
            return
        self.curve.save()
        self.curve.draw(self.run_dir, f"{self.cfg.task} ({self.cfg.obs}), seed {self.cfg.seed}, actors over ROS")

    def _retry_blocked(self) -> None:
        """Writes the episodes a full disk held back, oldest first, while there is room."""
        self._last_disk_retry = self.clock()
        while self.blocked:
            key, episode = self.blocked.pop(0)
            self.stats["disk_full_retries"] += 1
            if not self._commit_episode(key, episode):
                self.blocked.insert(0, self.blocked.pop())     # back in front, in order
                return

    def _reopen_buffers(self, verify: bool = True) -> None:
        """Both buffers back to their last commit."""
        self.online.close()
        self.demo.close()
        opts = dict(fsync=self.cfg.buffer.fsync, check_continuity=self.cfg.buffer.check_continuity, verify=verify)
        self.online = ReplayBuffer.open(self.online_dir, **opts)
        self.demo = ReplayBuffer.open(self.demo_dir, **opts)
        self.sampler.online, self.sampler.demo = self.online, self.demo

    def _save_state(self) -> None:
        """The ack table and counters, replaced atomically, after the buffers committed.

        A full disk leaves the previous table (the episode is in the buffers; a learner killed
        now would take it twice at most, never lose it) and the write is retried in step()."""
        # No "demos_done" here: demos.json is the one mark that the demos are complete (an older
        # learner wrote it here; __init__ still reads that).
        doc = {"counters": self.counters, "epoch": self.epoch,
               "acked": {k: v["acked"] for k, v in self.sessions.items() if v["acked"] >= 0}}
        try:
            write_json_atomic(self.state_path, doc)
            self._state_dirty = False
        except OSError as e:
            if not is_disk_full(e):
                raise
            if not self._state_dirty:
                log.error("disk full: %s not updated (retrying): %s", self.state_path, e)
            self._state_dirty = True

    # ------------------------------------------------------------------ outbound

    def _publish_acks(self) -> None:
        table = {k: dict(v) for k, v in self.sessions.items()}
        self._ack_seq += 1
        self.publish_ack(self.auth.sign(transport.encode_ack(self.session, table, self.epoch, self._ack_seq)))
        self._last["heartbeat"] = self.clock()

    def publish_weights_now(self) -> None:
        data = self.auth.sign(transport.encode_weights(self.agent.policy_state_dict(), self.counters["updates"],
                                                       self.session, self.epoch))
        self.publish_weights(data)
        self.stats["weights_sent"] += 1
        self._last["weights"] = self.clock()
        self._last["weights_updates"] = self.counters["updates"]

    def checkpoint(self, wait: bool = False) -> bool:
        """Saves the agent; a full disk is logged and leaves the previous checkpoint intact, and
        is waited out with wait=True (a run's last checkpoint)."""
        self._last["checkpoint"] = self.clock()
        counters = {"updates": self.counters["updates"], "env_steps": self.counters["env_steps"]}
        if not save_checkpoint(self.agent, self.ckpt_path, counters, wait=wait):
            self.status.update(disk_full=True, error="checkpoint not saved: disk full")
            return False
        if self.curve is not None:
            self.curve.save()
        return True

    # ------------------------------------------------------------------ training

    def steps_seen(self) -> int:
        """Env steps taken by the actors so far: committed, and staged in unfinished episodes
        (the learner trains on older data while an episode runs, as the in-process loop did)."""
        return self.counters["env_steps"] + sum(len(v) for v in self.staged.values())

    def update_budget(self) -> int:
        """Updates allowed now (robot_rl/updates.py: the same ratio for every run)."""
        if len(self.online) == 0 and len(self.demo) == 0:
            return 0
        if self.opts.free_running:
            return 1 << 30 if len(self.online) >= self.cfg.learning_starts else 0
        return updates_owed(self.cfg.updates_per_step, self.cfg.learning_starts, self.steps_seen(),
                            self.counters["updates"])

    def train_some(self, max_seconds: float | None = 0.05) -> int:
        """Updates while the budget allows, for at most max_seconds (None: all that are owed)."""
        done, until = 0, (np.inf if max_seconds is None else self.clock() + max_seconds)
        while self.update_budget() > 0 and self.clock() < until:
            self._metrics = update_once(self.agent, self.sampler, self.rng, self.device)
            self.counters["updates"] += 1
            done += 1
            if self.writer is not None and self.counters["updates"] % 100 == 0:
                for k, v in self._metrics.items():
                    self.writer.add_scalar(f"learner/{k}", v, self.counters["env_steps"])
        return done

    def done(self) -> bool:
        n = self.opts.stop_after_steps
        return (n > 0 and self.counters["env_steps"] >= n and self.update_budget() <= 0
                and not any(self.staged.values()) and not self.blocked)

    @property
    def state_dirty(self) -> bool:
        """learner_state.json is behind (a full disk kept it from being written)."""
        return self._state_dirty

    def retry_disk(self) -> None:
        """Writes what a full disk held back: the episodes, then the ack table."""
        self._retry_blocked()
        if self._state_dirty:
            self._save_state()

    def ingest_queued(self) -> None:
        """Takes in every queued message now, without waiting (the in-process link)."""
        while not self.blocked:
            try:
                chunk = self.inbox.get_nowait()
            except queue.Empty:
                return
            self.ingest(chunk)

    def step(self) -> None:
        """One loop iteration: ingest what arrived, train a little, publish and checkpoint when due."""
        now = self.clock()
        if self.blocked or self._state_dirty:
            if now - self._last_disk_retry >= self.opts.disk_retry_s:
                self.retry_disk()
        try:
            while not self.blocked:          # a full disk pauses ingest: acks stay in order
                chunk = self.inbox.get(timeout=0.0 if self.update_budget() > 0 else 0.02)
                self.ingest(chunk)
                if self.inbox.empty():
                    break
        except queue.Empty:
            pass
        if self.blocked:
            time.sleep(0.02)
        self.train_some()
        now = self.clock()
        if now - self._last["weights"] >= self.opts.weights_every_s and self._last["weights_updates"] != self.counters["updates"]:
            self.publish_weights_now()
        if now - self._last["heartbeat"] >= self.opts.heartbeat_every_s:
            self._publish_acks()
        if now - self._last["checkpoint"] >= self.opts.checkpoint_every_s:
            self.checkpoint()
        for key, seen in list(self.last_seen.items()):
            if now - seen > self.opts.stale_session_s and self.staged.get(key):
                log.info("session %s silent for %.0f s: dropping its unfinished episode", key, now - seen)
                self._drop_staged(key)
                self.sessions[key]["expected"] = self.sessions[key]["acked"] + 1

    def run(self) -> dict[str, Any]:
        """Until stop_event (or stop_after_steps is reached); checkpoints on the way out."""
        self.publish_weights_now()
        self._publish_acks()
        while not self.stop_event.is_set() and not self.done():
            self.step()
        self.checkpoint()
        self.publish_weights_now()
        return dict(self.counters)

    def close(self) -> None:
        if self.curve is not None:
            self.curve.save()
        self.online.close()
        self.demo.close()
        self.handle.close()


def _matches_staged(chunk: TransitionChunk, staged: list[Transition]) -> bool:
    """Whether a chunk from an episode start repeats what is staged (a resend or a replay of the
    same transitions: nothing to redo), rather than differing (a killed session's spool with its
    last episode closed: take the episode again from its start)."""
    return all(staged[i].same_as(from_chunk(chunk, i)) for i in range(min(chunk.count, len(staged))))
