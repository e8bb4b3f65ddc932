"""Learner throughput: `robot-rl bench learner [--quick]`.

Prints what it measures as it goes and, as its last line, one JSON object with:
state_updates_per_s, state_updates_per_s_10_critics, state_joint_updates_per_s, pixel_updates_per_s_frozen,
pixel_head_dtype, pixel_updates_per_s_frozen_float32, pixel_updates_per_s_frozen_1_thread and
_2_threads (on the CPU, whatever --device and --threads say), pixel_updates_per_s_frozen_cuda (when
a GPU is present), pixel_updates_per_s_trained, actor_latency_ms_p50/p99,
replay_bytes_per_transition, torch, device, threads, machine. Figures are recorded in
docs/benchmarks.md.

The frozen-backbone pixel figures use the default encoder.head_dtype ("auto": bfloat16 operands
in the head's matmuls where the device multiplies bfloat16 natively, pixel_head_dtype says
which); pixel_updates_per_s_frozen_float32 is the same update with float32 operands.

Every update here is one gradient step's worth of the agent's UTD cycle as training runs it:
`agent.update` on `critic_actor_ratio` batches of 256 (128 online + 128 demo), i.e.
critic_actor_ratio - 1 critic-only steps and one joint critic/actor/temperature step. The
figures are full cycles per second; multiply by critic_actor_ratio for gradient steps/s.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

CAMERAS = ("wrist", "front")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}"


def bench_spaces(cameras: tuple[str, ...], state_dim: int = 19):
    spaces = {"state": gym.spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)}
    for cam in cameras:
        spaces[cam] = gym.spaces.Box(0, 255, (128, 128, 3), np.uint8)
    return gym.spaces.Dict(spaces), gym.spaces.Box(-1.0, 1.0, (7,), np.float32)


def random_batch(obs_space: gym.spaces.Dict, batch: int, device, rng: np.random.Generator,
                  feature_keys: dict[str, tuple] | None = None) -> dict:
    def obs():
        out = {}
        for key, space in obs_space.spaces.items():
            if feature_keys and key in feature_keys:
                continue
            if space.dtype == np.uint8:
                out[key] = torch.from_numpy(rng.integers(0, 256, (batch, *space.shape), dtype=np.uint8))
            else:
                out[key] = torch.from_numpy(rng.standard_normal((batch, *space.shape)).astype(np.float32))
        for key, shape in (feature_keys or {}).items():
            out[f"feat/{key}"] = torch.from_numpy(rng.standard_normal((batch, *shape)).astype(np.float16))
        return {k: v.to(device) for k, v in out.items()}
    return {
        "obs": obs(), "next_obs": obs(),
        "action": torch.from_numpy(rng.uniform(-1, 1, (batch, 7)).astype(np.float32)).to(device),
        "reward": torch.from_numpy((rng.random(batch) < 0.1).astype(np.float32)).to(device),
        "terminated": torch.from_numpy((rng.random(batch) < 0.05).astype(np.float32)).to(device),
        "truncated": torch.zeros(batch, device=device),
        "grasp_penalty": torch.zeros(batch, device=device),
        "intervention": torch.zeros(batch, device=device),
    }


def updates_per_s(agent, batch: list[dict], seconds: float, min_iters: int = 3) -> float:
    """Full UTD cycles per second (critic_actor_ratio gradient steps each)."""
    agent.update(batch)  # warm-up: allocations, lazy init, compilation
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    n, start = 0, time.perf_counter()
    while n < min_iters or time.perf_counter() - start < seconds:
        agent.update(batch)
        n += 1
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="robot-rl bench learner")
    parser.add_argument("--quick", action="store_true", help="shorter timings (under 60 s on 2 CPU cores)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)

    from robot_rl.agents.sac import SACAgent, SACConfig
    from robot_rl.buffers import ReplayBuffer
    from robot_rl.networks.encoder import EncoderConfig, precompute_features
    from robot_rl.networks.resnet import ResNet10, save_backbone_weights

    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    seconds = 3.0 if args.quick else 15.0
    rng = np.random.default_rng(0)
    result: dict = {"torch": torch.__version__, "device": str(device),
                    "threads": torch.get_num_threads(), "machine": machine(), "quick": args.quick}
    print(f"machine: {result['machine']}; torch {torch.__version__}, {result['threads']} threads, {device}")

    # Plain SAC (2 critics, no BC) unless a line says otherwise, as these figures were first
    # measured; the defaults (10 critics / 2, BC) are the "10 critics" line plus a cheap BC term.
    plain = replace(SACConfig(), critic_ensemble_size=2, critic_subsample_size=None, bc_weight=0.0)

    # State SAC, 2 critics and 10 critics (random subset of 2 for the target).
    obs_space, act_space = bench_spaces(())
    for n_critics, key in ((2, "state_updates_per_s"), (10, "state_updates_per_s_10_critics")):
        cfg = replace(plain, critic_ensemble_size=n_critics,
                      critic_subsample_size=2 if n_critics > 2 else None)
        agent = SACAgent(cfg, obs_space, act_space, device=device, seed=0)
        batches = [random_batch(obs_space, args.batch, device, rng) for _ in range(cfg.critic_actor_ratio)]
        result[key] = round(updates_per_s(agent, batches, seconds), 1)
        print(f"state SAC, {n_critics} critics, batch {args.batch}: {result[key]} updates/s")

    # One joint critic/actor/temperature step alone (critic_actor_ratio=1): what a "full SAC
    # update" means in most write-ups, as opposed to the UTD cycle above.
    agent = SACAgent(replace(plain, critic_actor_ratio=1), obs_space, act_space, device=device, seed=0)
    result["state_joint_updates_per_s"] = round(
        updates_per_s(agent, [random_batch(obs_space, args.batch, device, rng)], seconds), 1)
    print(f"state SAC, 2 critics, one joint step per update: {result['state_joint_updates_per_s']} updates/s")

    # Pixels, two 128x128 cameras: frozen backbone with cached features, then trained backbone.
    # A frozen backbone needs a weights file; random ResNet-10 weights cost the same to run.
    obs_space, act_space = bench_spaces(CAMERAS)
    weights_dir = tempfile.TemporaryDirectory()
    weights = Path(weights_dir.name) / "resnet10.safetensors"
    save_backbone_weights(ResNet10(), weights)

    def frozen_agent(on: torch.device, head_dtype: str = "auto") -> SACAgent:
        cfg = replace(plain, encoder=EncoderConfig(pretrained_backbone=str(weights), freeze_backbone=True,
                                                   head_dtype=head_dtype))
        return SACAgent(cfg, obs_space, act_space, device=on, seed=0)

    frozen = frozen_agent(device)
    images = torch.from_numpy(rng.integers(0, 256, (4, 128, 128, 3), dtype=np.uint8))
    feats = precompute_features(frozen.encoder, images, n_variants=frozen.cfg.encoder.feature_variants,
                                generator=torch.Generator().manual_seed(0))
    # The batch as the learner's sampler hands it over (robot_rl.updates.make_sampler): one of the
    # K stored variants per row, (B, C, h, w) float16, no pixels. Sampling is not timed here
    # (`python -m robot_rl.bench.pixel_profile` times it: a few ms per batch).
    feature_shape = tuple(feats.shape[2:])

    def pixel_batches(on: torch.device) -> list[dict]:
        return [random_batch(obs_space, args.batch, on, rng, {c: feature_shape for c in CAMERAS})
                for _ in range(frozen.cfg.critic_actor_ratio)]

    batches = pixel_batches(device)
    result["pixel_head_dtype"] = str(frozen.encoder.head_dtype(device)).removeprefix("torch.")
    result["pixel_updates_per_s_frozen"] = round(updates_per_s(frozen, batches, seconds), 2)
    print(f"pixels, frozen backbone (cached features, one of {feats.shape[1]} variants {feature_shape}), "
          f"head in {result['pixel_head_dtype']}: {result['pixel_updates_per_s_frozen']} updates/s")
    result["pixel_updates_per_s_frozen_float32"] = round(
        updates_per_s(frozen_agent(device, "float32"), batches, seconds), 2)
    print(f"pixels, frozen backbone, head in float32: {result['pixel_updates_per_s_frozen_float32']} updates/s")
    # The CPU figure at 1 and 2 threads whatever --threads says (the goal is >= 15 at 2),
    # and the GPU's when there is one, so one JSON line carries all of them.
    cpu = torch.device("cpu")
    threads_before = torch.get_num_threads()
    cpu_agent, cpu_batches = (frozen, batches) if device.type == "cpu" else (frozen_agent(cpu), pixel_batches(cpu))
    for n_threads, key in ((1, "pixel_updates_per_s_frozen_1_thread"), (2, "pixel_updates_per_s_frozen_2_threads")):
        torch.set_num_threads(n_threads)
        result[key] = round(updates_per_s(cpu_agent, cpu_batches, seconds), 2)
        print(f"pixels, frozen backbone, CPU, {n_threads} thread(s): {result[key]} updates/s")
    torch.set_num_threads(threads_before)
    if torch.cuda.is_available():
        cuda = torch.device("cuda")
        result["pixel_updates_per_s_frozen_cuda"] = (
            result["pixel_updates_per_s_frozen"] if device.type == "cuda"
            else round(updates_per_s(frozen_agent(cuda), pixel_batches(cuda), seconds), 2))
        print(f"pixels, frozen backbone, GPU: {result['pixel_updates_per_s_frozen_cuda']} updates/s")

    trained = SACAgent(replace(plain, encoder=EncoderConfig(freeze_backbone=False)),
                       obs_space, act_space, device=device, seed=0)
    batches = [random_batch(obs_space, args.batch, device, rng)
               for _ in range(trained.cfg.critic_actor_ratio)]
    result["pixel_updates_per_s_trained"] = round(
        updates_per_s(trained, batches, seconds if device.type == "cuda" else 0.0, min_iters=1), 3)
    print(f"pixels, trained backbone: {result['pixel_updates_per_s_trained']} updates/s")

    # Actor latency: one two-camera observation, the full act() path the actor runs.
    obs = {"state": rng.standard_normal(19).astype(np.float32),
           **{c: rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for c in CAMERAS}}
    for _ in range(5):
        frozen.act(obs, deterministic=True)
    times = []
    for _ in range(60 if args.quick else 300):
        t = time.perf_counter()
        frozen.act(obs, deterministic=False)
        times.append((time.perf_counter() - t) * 1e3)
    result["actor_latency_ms_p50"] = round(float(np.percentile(times, 50)), 2)
    result["actor_latency_ms_p99"] = round(float(np.percentile(times, 99)), 2)
    print(f"actor latency (2 cameras): p50 {result['actor_latency_ms_p50']} ms, "
          f"p99 {result['actor_latency_ms_p99']} ms")

    # Replay: bytes per two-camera transition, as stored on disk (images once, uint8).
    with tempfile.TemporaryDirectory() as tmp:
        buf = ReplayBuffer.create(Path(tmp) / "rb", obs_space, 7, capacity=1000)
        result["replay_bytes_per_transition"] = int(buf.bytes_per_transition())
        buf.close()
    print(f"replay: {result['replay_bytes_per_transition']} bytes per two-camera transition")

    weights_dir.cleanup()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
