"""Twin speed: env steps/s (10 Hz control, 100 physics steps of 1 ms each with the impedance law
at every one), state-only and with two 128x128 cameras; and the cost of one physics step.

    MUJOCO_GL=egl .venv/bin/python -m robot_rl.bench.twin [--steps 300] [--task pick_cube]

Prints a table, then one JSON line with every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
    except OSError:
        pass
    import mujoco

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "mujoco": mujoco.__version__, "mujoco_gl": os.environ.get("MUJOCO_GL", "")}


def env_steps_per_s(task: str, obs: str, steps: int) -> float:
    from robot_rl import tasks

    env = tasks.make_env(task, obs=obs, seed=0)
    rng = np.random.default_rng(0)
    env.reset()
    for _ in range(5):  # warm-up (renderer, caches)
        env.step(rng.uniform(-1, 1, 7).astype(np.float32))
    done = 0
    start = time.perf_counter()
    while done < steps:
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 7).astype(np.float32))
        done += 1
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return done / elapsed


def physics_step_us(task: str, n: int = 3000) -> dict:
    """Microseconds per 1 ms physics step: with the law (the twin's loop) and bare mj_step."""
    import mujoco

    from robot_rl import tasks

    env = tasks.make_env(task, obs="state", seed=0)
    env.reset()
    twin = env.robot
    start = time.perf_counter()
    twin._run_physics(n)
    with_law = (time.perf_counter() - start) / n * 1e6
    m, d = twin.model, twin.data
    start = time.perf_counter()
    for _ in range(n):
        mujoco.mj_step(m, d)
    bare = (time.perf_counter() - start) / n * 1e6
    env.close()
    return {"physics_step_with_law_us": round(with_law, 1), "bare_mj_step_us": round(bare, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", default="pick_cube")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    info = machine()
    result = {"bench": "twin", "task": args.task, **info}
    result.update(physics_step_us(args.task))
    result["env_steps_per_s_state"] = round(env_steps_per_s(args.task, "state", args.steps), 1)
    result["env_steps_per_s_pixels_2x128"] = round(env_steps_per_s(args.task, "pixels", args.steps), 1)
    print(f"machine: {info['cpu']} ({info['cores']} cores), mujoco {info['mujoco']}, MUJOCO_GL={info['mujoco_gl']}")
    print(f"physics step with the impedance law: {result['physics_step_with_law_us']} us "
          f"(bare mj_step {result['bare_mj_step_us']} us)")
    print(f"env steps/s, state only:          {result['env_steps_per_s_state']}  (goal >= 50)")
    print(f"env steps/s, 2 cameras 128x128:   {result['env_steps_per_s_pixels_2x128']}  (goal >= 20)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
