"""`robot-rl train --distributed`: the actor and the learner as two processes on one machine,
talking over the ROS 2 graph (tasks/ros/actor_node.py, tasks/ros/learner_node.py).

    final = run_distributed(cfg)     # cfg: robot_rl.train.TrainConfig

The run directory is the in-process run's (robot_rl/train.py), plus actor.log / learner.log,
actor_<id>.json and learner_stats.json. The learner collects the scripted demos, ingests the
actor's transitions and trains with the same update ratio as the in-process loop; the actor
waits between episodes when the learner's weights fall more than one episode behind that
ratio (so the policy it acts with is about as fresh as in-process). Both stop by themselves
after cfg.steps env steps. Then this process loads the final checkpoint and evaluates it on
the same seeds as the in-process run, and writes eval.json.

Children are started with the venv's python, in their own session, and stopped by pid
(SIGINT, then SIGKILL) if anything fails or on Ctrl-C; if this process is SIGKILLed they get
SIGKILL too (PR_SET_PDEATHSIG). Run it again with the same run dir and it resumes: the learner
from its buffers, checkpoint and ack table, a new actor first re-sends the killed actor's spool,
and only the remaining steps are run. Uses the caller's ROS_DOMAIN_ID.

It creates the run's auth key (RUN_DIR/auth.key, mode 0600; robot_rl/auth.py) if the run has
none, and prints how to copy it to an actor machine (docs/security.md).
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from robot_rl import checkout_root, config as config_lib


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when this process dies (even by SIGKILL), so a killed
    `robot-rl train --distributed` leaves no orphan holding the buffers' locks. Both nodes are
    built to survive a SIGKILL (buffers commit per episode, the actor spools to disk)."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _start(module: str, params: dict[str, Any], log_path: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", module, "--ros-args"]
    for k, v in params.items():
        args += ["-p", f"{k}:={v}"]
    with open(log_path, "a") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=checkout_root(),   # a checkout's root; an install: as we run
                                preexec_fn=_die_with_parent if sys.platform == "linux" else None)


def _stop(proc: subprocess.Popen, grace_s: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)          # the nodes checkpoint and exit on SIGINT
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _unacked_in_spool(spool_dir: Path, acked: dict[str, int], actor_id: str = "actor0") -> int:
    """Transitions a killed actor spooled that the learner has not stored (they will be re-sent)."""
    from robot_rl.spool import Spool
    from robot_rl.transport import peek_header

    n = 0
    for s in Spool.recover(spool_dir):
        last_acked = acked.get(f"{actor_id}/{s.session}", -1)
        n += sum(peek_header(r.message)["seq"] > last_acked for r in s.records)
    return n


def _tail(path: Path, n: int = 3000) -> str:
    return path.read_text()[-n:] if path.exists() else ""


def run_distributed(cfg: Any, max_policy_lag: int | None = None, poll_s: float = 0.5) -> dict[str, Any]:
    """Trains cfg (a TrainConfig) with actor and learner as separate processes; returns the final eval."""
    from robot_rl import checkpoint as ckpt
    from robot_rl.agents.sac import SACAgent
    from robot_rl.run_env import make_run_env
    from robot_rl.curve import LearningCurve
    from robot_rl.episode import EpisodeResult
    from robot_rl.run_files import device_for
    from robot_rl.evaluation import evaluate
    from robot_rl.auth import copy_hint, ensure_key
    from robot_rl.tasks.ros.actor_node import read_episode_log

    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # The run's auth key (RUN_DIR/auth.key, 0600): both children read it; a remote actor needs a copy.
    key_path = ensure_key(run_dir)
    print(f"robot-rl: actor/learner messages are signed with {key_path}; for an actor on another "
          f"machine, {copy_hint(key_path.resolve())}", file=sys.stderr, flush=True)
    cfg_path = run_dir / "distributed.yaml"
    config_lib.save(cfg, cfg_path)
    state_path = run_dir / "learner_state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    done_steps = state.get("counters", {}).get("env_steps", 0)
    spooled = _unacked_in_spool(run_dir / "spool" / "actor_actor0", state.get("acked", {}))
    actor_steps = max(cfg.steps - done_steps - spooled, 0)    # a killed actor's spool counts too
    started = time.perf_counter()

    learner = _start("robot_rl.tasks.ros.learner_node", {"config_file": cfg_path, "stop_after_steps": cfg.steps},
                     run_dir / "learner.log")
    actor = None
    try:
        if actor_steps > 0 or spooled:
            lag = max_policy_lag if max_policy_lag is not None else 100
            actor = _start("robot_rl.tasks.ros.actor_node", {"config_file": cfg_path, "steps": actor_steps,
                                                "sync_updates_per_step": float(cfg.updates_per_step),
                                                "max_policy_lag": lag}, run_dir / "actor.log")
        while True:
            codes = {"learner": learner.poll(), "actor": actor.poll() if actor else 0}
            failed = {k: c for k, c in codes.items() if c not in (None, 0)}
            if failed:
                raise RuntimeError(f"distributed run failed: {failed}\n--- actor.log\n{_tail(run_dir / 'actor.log')}"
                                   f"\n--- learner.log\n{_tail(run_dir / 'learner.log')}")
            if codes["learner"] == 0 and codes["actor"] == 0:
                break
            time.sleep(poll_s)
    finally:
        for proc in (actor, learner):
            if proc is not None:
                _stop(proc)
    train_wall = time.perf_counter() - started

    handle = make_run_env(cfg)
    agent = SACAgent(cfg.agent, handle.env.observation_space, handle.env.action_space,
                     device=device_for(cfg.device), seed=cfg.seed)
    counters = ckpt.load_agent(agent, run_dir / "checkpoint").get("counters", {})
    final = evaluate(handle, agent, cfg.final_eval_episodes, seed=30_000_000 + cfg.seed)
    handle.close()

    # The curve from the actor's episode log: every episode of every actor session (a killed
    # one's recovered episodes too) in the order they ended, at the cumulative step count.
    episodes = read_episode_log(run_dir / "actor_actor0_episodes.jsonl") if (
        run_dir / "actor_actor0_episodes.jsonl").exists() else []
    curve = LearningCurve(run_dir)
    evals = list(zip(curve.data["eval_step"], curve.data["eval_success"]))
    curve.data = {k: [] for k in curve.data}
    step = 0
    for e in episodes:
        step += e["length"]
        curve.add_episode(step, EpisodeResult.from_dict({"interventions": 0, "cycle_time_s": None, **e}))
    for s_, v in evals + [(int(counters.get("env_steps", cfg.steps)), final["success_rate"])]:
        curve.data["eval_step"].append(s_)
        curve.data["eval_success"].append(v)
    curve.save()
    curve.plot(run_dir / "learning_curve.png", f"{cfg.task} ({cfg.obs}), seed {cfg.seed}, distributed")
    curve.plot_episodes(run_dir / "episodes.png", f"{cfg.task} ({cfg.obs}), seed {cfg.seed}, distributed: "
                        "training episodes")
    final.update({
        "task": cfg.task, "obs": cfg.obs, "seed": cfg.seed, "distributed": True,
        "env_steps": int(counters.get("env_steps", 0)), "updates": int(counters.get("updates", 0)),
        "updates_per_env_step": counters.get("updates", 0) / max(counters.get("env_steps", 0), 1),
        "train_wall_s": train_wall,
        "env_steps_per_s": actor_steps / max(train_wall, 1e-9),
        "train_episodes": len(episodes),
        "interventions": sum(e["interventions"] for e in episodes),
        "train_success_rate": (sum(e["success"] for e in episodes) / len(episodes)) if episodes else None,
    })
    (run_dir / "eval.json").write_text(json.dumps(final, indent=2))
    return final
