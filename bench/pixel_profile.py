"""Where one pixel-learner gradient step spends its time: `python -m robot_rl.bench.pixel_profile [--threads 1 2]`.

The HIL-SERL pixel learner of `robot-rl bench learner`: 2 cameras 128x128, frozen ResNet-10 with
cached features (K=4 variants of (512, 4, 4), float16, in in-RAM replay buffers), batch 256
(128 online + 128 demo), 2 critics, no BC, sampled as the learner samples (robot_rl.updates.
make_sampler: the features without the pixels, one variant per row; the old sampling of every
key with all K variants is timed too, for comparison). Each stage of one gradient step is run on its own,
in the order the agent runs it, `--reps` times; the table gives the MINIMUM per stage (on a
shared CPU the minimum is the time the work takes when it has the core; a median would
measure the neighbours), in CPU time of the thread at 1 thread and wall time otherwise, and its
share of their sum, for each encoder.head_dtype. The whole
step and the whole UTD cycle (2 steps) are timed the same way, so the sum can be checked
against them. Matmul work is counted from the shapes and compared with the machine's own
matmul rate at the bottleneck's shape (measured here, float32 and bfloat16).

Prints the tables and, last, one JSON line.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from robot_rl.bench.learner import CAMERAS, bench_spaces, machine

FEATURE_SHAPE = (4, 512, 4, 4)


def best_ms(fn, reps: int) -> float:
    """Best of `reps` runs, in ms: CPU time of this thread when torch runs on one thread (its ops
    then run inline, and CPU time leaves out what the machine's other jobs take), else wall time."""
    clock = time.thread_time if torch.get_num_threads() == 1 else time.perf_counter
    fn()
    times = []
    for _ in range(reps):
        t = clock()
        fn()
        times.append(clock() - t)
    return min(times) * 1e3


def filled_buffers(obs_space, n: int, rng: np.random.Generator, buffer_class=None):
    """Online and demo in-RAM buffers of n random transitions each (pixels and K=4 features)."""
    from robot_rl.buffers import ReplayBuffer
    buffer_class = buffer_class or ReplayBuffer
    extra = {f"feat/{c}": (FEATURE_SHAPE, np.float16) for c in CAMERAS}
    buffers = []
    for _ in range(2):
        buf = buffer_class.create(None, obs_space, 7, capacity=n + 1, extra_specs=extra)

        def frame():
            obs = {"state": rng.standard_normal(19).astype(np.float32),
                   **{c: rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for c in CAMERAS}}
            return obs, {f"feat/{c}": rng.standard_normal(FEATURE_SHAPE).astype(np.float16) for c in CAMERAS}
        obs, feats = frame()
        for i in range(n):
            next_obs, next_feats = frame()
            end = (i + 1) % 100 == 0
            buf.add(obs, rng.uniform(-1, 1, 7).astype(np.float32), float(rng.random() < 0.1), next_obs,
                    terminated=False, truncated=end, extras=feats, next_extras=next_feats)
            obs, feats = (frame() if end else (next_obs, next_feats))
        buf.commit()
        buffers.append(buf)
    return buffers


def matmul_gflops(dtype: torch.dtype, reps: int) -> float:
    """The machine's rate on the head's bottleneck product: (2, 256, 4096) @ (2, 4096, 256)."""
    a, b = torch.randn(2, 256, 4096).to(dtype), torch.randn(2, 4096, 256).to(dtype)
    return 2 * 2 * 256 * 4096 * 256 / best_ms(lambda: torch.bmm(a, b), reps) / 1e6


def profile_step(agent, batch, reps: int) -> dict[str, float]:
    """Best ms of each stage of one joint gradient step (critic, actor, temperature)."""
    enc, tgt, dev, g = agent.encoder, agent.target_encoder, agent.device, agent.update_generator
    dtype = enc.head_dtype(dev)
    obs, next_obs = batch["obs"], batch["next_obs"]
    b = batch["action"].shape[0]
    state, next_state = obs["state"], next_obs["state"]
    maps = enc.image_maps(obs, True, g, dtype)
    next_maps = enc.image_maps(next_obs, True, g, dtype)
    keep, keep2 = enc.dropout_keep(b, dev, g), enc.dropout_keep(b, dev, g)
    out: dict[str, float] = {}
    out["features: convert, transpose (obs + next_obs)"] = best_ms(
        lambda: (enc.image_maps(obs, True, g, dtype), enc.image_maps(next_obs, True, g, dtype)), reps)
    out["dropout masks (2)"] = best_ms(lambda: (enc.dropout_keep(b, dev, g), enc.dropout_keep(b, dev, g)), reps)
    out["head forward, obs (spatial emb. + Linear 4096->256 x2 cams)"] = best_ms(
        lambda: enc.head(maps, state, True, g, keep), reps)

    def next_heads():
        with torch.no_grad():
            return enc.head(next_maps, next_state, True, g, keep2), tgt.head(next_maps, next_state, True, g, keep)
    out["heads forward, next_obs: online + target"] = best_ms(next_heads, reps)
    nf, ntf = next_heads()
    grad = torch.randn(b, enc.out_dim)

    def head_fwd_bwd():
        enc.head(maps, state, True, g, keep).backward(grad)
    out["head backward (spatial kernel + Linear grads)"] = max(
        best_ms(head_fwd_bwd, reps) - out["head forward, obs (spatial emb. + Linear 4096->256 x2 cams)"], 0.0)
    feats = enc.head(maps, state, True, g, keep).detach().requires_grad_(True)
    noise = torch.randn(b, agent.arm_dim, generator=g)

    def losses():
        return agent._head_losses(feats, nf, ntf, batch["action"], batch["reward"], batch["terminated"],
                                  None, noise, None, noise, None)[0]
    out["critics + actor + target critic, forward"] = best_ms(losses, reps)
    out["critics + actor, backward"] = max(best_ms(lambda: losses().backward(), reps)
                                           - out["critics + actor + target critic, forward"], 0.0)
    agent.optimizer.zero_grad(set_to_none=True)
    losses().backward()
    enc.head(maps, state, True, g, keep).backward(grad)

    def step():
        agent.optimizer.step()
        with torch.no_grad():
            torch._foreach_lerp_(agent._polyak_target, agent._polyak_online, agent.cfg.tau)
    out["Adam step + Polyak"] = best_ms(step, reps)
    out["zero_grad"] = best_ms(lambda: agent.optimizer.zero_grad(set_to_none=False), reps)
    return out


def matmul_flops(enc, cfg, b: int) -> dict[str, float]:
    """Multiply-add work (FLOP = 2 * MACs) per joint gradient step, from the shapes."""
    n, (c, h, w), f, d = len(CAMERAS), enc.map_shape, cfg.encoder.num_spatial_features, cfg.encoder.image_latent_dim
    bottleneck = 2 * n * b * c * f * d          # one pass, all cameras
    spatial = 2 * n * b * c * h * w * f
    feat = enc.out_dim
    dims = [feat + 7, *cfg.hidden_dims, 1]
    mlp = sum(2 * b * i * o for i, o in zip(dims[:-1], dims[1:]))  # one member, one pass
    actor = sum(2 * b * i * o for i, o in zip([feat, *cfg.hidden_dims], [*cfg.hidden_dims, 14]))
    e = cfg.critic_ensemble_size
    return {
        # forward obs + next online + next target; backward: grad W and grad input
        "head": 5 * bottleneck + 4 * spatial,
        # critic fwd+bwd (3x), target critic fwd, critic on pi's action fwd+bwd(input only, ~2x)
        "critics": e * mlp * (3 + 1 + 2),
        # actor on next obs fwd, on obs fwd + bwd (3x), BC off
        "actor": actor * (1 + 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robot_rl.bench.pixel_profile")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--rows", type=int, default=600, help="transitions per replay buffer")
    args = parser.parse_args(argv)

    from robot_rl.agents.sac import SACAgent, SACConfig
    from robot_rl.buffers.rlpd import RLPDSampler, to_torch
    from robot_rl.updates import make_sampler
    from robot_rl.networks.encoder import EncoderConfig
    from robot_rl.networks.resnet import ResNet10, save_backbone_weights

    rng = np.random.default_rng(0)
    obs_space, act_space = bench_spaces(CAMERAS)
    tmp = tempfile.TemporaryDirectory()
    weights = Path(tmp.name) / "resnet10.safetensors"
    save_backbone_weights(ResNet10(), weights)
    online, demo = filled_buffers(obs_space, args.rows, rng)
    sampler = make_sampler(online, demo, batch_size=256, demo_ratio=0.5, pin_memory=False)
    every_key = RLPDSampler(online, demo, batch_size=256, pin_memory=False)  # all K variants + pixels
    plain = replace(SACConfig(), critic_ensemble_size=2, critic_subsample_size=None, bc_weight=0.0)
    agents = {dt: SACAgent(replace(plain, encoder=EncoderConfig(pretrained_backbone=str(weights), head_dtype=dt)),
                           obs_space, act_space, seed=0) for dt in ("float32", "bfloat16")}
    batches = [to_torch(sampler.sample(rng), "cpu") for _ in range(2)]
    for agent in agents.values():
        agent.update(batches)  # fits the state normaliser, warms up
    print(f"machine: {machine()}; torch {torch.__version__}")
    result: dict = {"machine": machine(), "torch": torch.__version__}
    for threads in args.threads:
        torch.set_num_threads(threads)
        res: dict = {"matmul_gflops_float32": round(matmul_gflops(torch.float32, args.reps), 1),
                     "matmul_gflops_bfloat16": round(matmul_gflops(torch.bfloat16, args.reps), 1)}
        sample_ms = best_ms(lambda: to_torch(sampler.sample(rng), "cpu"), args.reps)
        res["sample_every_key_all_variants_ms"] = round(
            best_ms(lambda: to_torch(every_key.sample(rng), "cpu"), args.reps), 2)
        print(f"\n{threads} thread(s): sampling 256 rows of every key with all K variants (the path "
              f"before make_sampler): {res['sample_every_key_all_variants_ms']} ms")
        for dt, agent in agents.items():
            stages = {"sample 256 from two buffers (RLPD, one variant per row) + to_torch": sample_ms,
                      **profile_step(agent, batches[1], args.reps)}
            stage_sum = sum(stages.values())
            step_ms = best_ms(lambda: agent._gradient_step(batches[1], update_actor=True), args.reps)
            cycle_ms = best_ms(lambda: agent.update(batches), args.reps)
            flops = matmul_flops(agent.encoder, agent.cfg, 256)
            rate = res[f"matmul_gflops_{dt}"]
            print(f"\n{threads} thread(s), head_dtype={dt}: one joint gradient step, best of {args.reps}")
            print("| stage | ms | share |\n|---|---|---|")
            for k, v in stages.items():
                print(f"| {k} | {v:.2f} | {100 * v / stage_sum:.0f}% |")
            print(f"| sum of stages | {stage_sum:.1f} | |")
            print(f"| whole gradient step (agent, sampling excluded) | {step_ms:.1f} | |")
            print(f"| whole UTD cycle of 2 steps (agent.update) | {cycle_ms:.1f} | {1e3 / cycle_ms:.1f} cycles/s |")
            head_floor = flops["head"] / rate / 1e6
            print(f"matmul work per step: head {flops['head'] / 1e9:.2f} GFLOP, critics {flops['critics'] / 1e9:.2f}, "
                  f"actor {flops['actor'] / 1e9:.2f}; at this machine's {rate:.0f} GFLOP/s ({dt}, bottleneck shape) "
                  f"the head alone needs {head_floor:.1f} ms")
            res[dt] = {"stages_ms": {k: round(v, 2) for k, v in stages.items()}, "step_ms": round(step_ms, 1),
                       "cycle_ms": round(cycle_ms, 1), "cycles_per_s": round(1e3 / cycle_ms, 2),
                       "head_gflop_per_step": round(flops["head"] / 1e9, 2),
                       "head_floor_ms": round(head_floor, 1)}
        result[f"threads_{threads}"] = res
    for buf in (online, demo):
        buf.close()
    tmp.cleanup()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
