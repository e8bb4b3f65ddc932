"""Measures replay throughput: add+commit rate and RLPD sampling rate, two 128x128 cameras.

    python -m robot_rl.buffers.speed [--transitions 20000] [--batch 256] [--batches 100] [--dir DIR]

Buffers are memory-mapped files (in a temp dir unless --dir); sampling is timed after one pass
over the data, i.e. with a warm page cache. The row checksums (buffers/integrity.py) are timed
on their own too, since the add+commit rate is too noisy on a shared machine to show a few
percent: `checksum_us_per_transition` is verify()'s time per row, the same CRC work commit()
does per acknowledged transition, and `verify_gb_per_s` is open()'s check rate (warm cache).
Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transitions", type=int, default=20_000, help="per buffer")
    parser.add_argument("--episode-length", type=int, default=100)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--state-dim", type=int, default=19)
    parser.add_argument("--fsync", action="store_true", help="commit with msync+fsync")
    parser.add_argument("--dir", help="where the buffers go (default: a temp dir, removed after)")
    args = parser.parse_args(argv)

    import gymnasium as gym
    import torch

    from robot_rl.buffers import ReplayBuffer
    from robot_rl.buffers.rlpd import RLPDSampler, to_torch

    space = gym.spaces.Dict({
        "state": gym.spaces.Box(-np.inf, np.inf, (args.state_dim,), np.float32),
        "wrist": gym.spaces.Box(0, 255, (128, 128, 3), np.uint8),
        "front": gym.spaces.Box(0, 255, (128, 128, 3), np.uint8)})
    rng = np.random.default_rng(0)
    # A pool of random frames, so generating data does not dominate the add timing.
    pool = [{k: (rng.integers(0, 256, s.shape, dtype=np.uint8) if s.dtype == np.uint8
                 else rng.standard_normal(s.shape).astype(np.float32)) for k, s in space.spaces.items()}
            for _ in range(64)]
    capacity = args.transitions + args.transitions // args.episode_length + 2

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.dir) if args.dir else Path(tmp)
        buffers = []
        add_s = 0.0
        for name in ("online", "demo"):
            buf = ReplayBuffer.create(root / name, space, 7, capacity=capacity, fsync=args.fsync)
            started = time.perf_counter()
            for i in range(args.transitions):
                t = i % args.episode_length
                last = t == args.episode_length - 1
                buf.add(pool[(i + (i // args.episode_length)) % 64], np.zeros(7, np.float32), 0.0,
                        pool[(i + 1 + (i // args.episode_length)) % 64], last, False)
                buf.commit()
            add_s += time.perf_counter() - started
            buffers.append(buf)
        online, demo = buffers
        sampler = RLPDSampler(online, demo, batch_size=args.batch)
        for _ in range(max(1, 2 * capacity // args.batch)):       # warm the page cache
            sampler.sample(rng)

        def rate(fn) -> float:
            fn()
            started = time.perf_counter()
            for _ in range(args.batches):
                fn()
            return args.batches * args.batch / (time.perf_counter() - started)

        started = time.perf_counter()
        frames = online.verify()
        verify_s = time.perf_counter() - started
        slot_bytes = online.bytes_per_transition(include_extras=True)

        result = {
            "transitions_per_buffer": len(online),
            "bytes_per_transition": online.bytes_per_transition(),
            "add_commit_per_s": round(2 * args.transitions / add_s, 1),
            "fsync": args.fsync,
            "batch": args.batch,
            "single_buffer_samples_per_s": round(rate(lambda: online.sample(args.batch, rng)), 1),
            "rlpd_samples_per_s": round(rate(lambda: sampler.sample(rng)), 1),
            "rlpd_to_torch_cpu_samples_per_s": round(rate(lambda: to_torch(sampler.sample(rng), "cpu")), 1),
            "torch_threads": torch.get_num_threads(),
            "checksum_us_per_transition": round(verify_s / frames * 1e6, 1),
            "verify_gb_per_s": round(frames * slot_bytes / verify_s / 1e9, 2),
        }
        if torch.cuda.is_available():
            def to_gpu():
                to_torch(sampler.sample(rng), "cuda")
                torch.cuda.synchronize()
            result["rlpd_to_torch_cuda_samples_per_s"] = round(rate(to_gpu), 1)
        for buf in buffers:
            buf.close()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
