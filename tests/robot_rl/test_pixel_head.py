"""The per-camera encoder head's fast paths against plain reference math: float32 equals it,
bfloat16 operands stay within bfloat16's rounding, the dropout masks are what they claim."""
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robot_rl.agents.sac import SACAgent, SACConfig
from robot_rl.config import ConfigError
from robot_rl.networks.encoder import EncoderConfig, ObservationEncoder, native_bfloat16, resolve_head_dtype

CAMS = ["wrist", "front"]


def encoder(weights_file, head_dtype, **kw):
    torch.manual_seed(0)
    enc = ObservationEncoder(5, CAMS, (128, 128, 3),
                             EncoderConfig(pretrained_backbone=weights_file, head_dtype=head_dtype, **kw))
    with torch.no_grad():  # non-trivial LayerNorm and bias parameters, so their grads are checked too
        for p in (enc.bottleneck_b, enc.ln_w, enc.ln_b):
            p.add_(0.1 * torch.randn_like(p))
    return enc


def reference_head(enc, maps, state, keep):
    """SERL's encoder head written plainly, camera by camera: maps (n, C, B, P) float32."""
    outs = []
    for i in range(len(CAMS)):
        x = torch.einsum("cbp,cpf->bcf", maps[i], enc.spatial_kernel[i]).flatten(1)  # (B, C*F), (c, f) order
        if keep is not None:
            x = x * keep[i].float() / (1.0 - enc.cfg.dropout)
        x = F.linear(x, enc.bottleneck_w[i].T, enc.bottleneck_b[i, 0])
        outs.append(torch.tanh(F.layer_norm(x, (x.shape[-1],), enc.ln_w[i, 0], enc.ln_b[i, 0])))
    return torch.cat([*outs, enc.proprio(state)], dim=-1)


def inputs(b=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 512, b, 16, generator=g).relu(), torch.randn(b, 5, generator=g)


def relative_error(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def grads(enc, out, upstream):
    enc.zero_grad(set_to_none=True)
    out.backward(upstream)
    return {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}


def test_float32_head_equals_the_reference_forward_and_gradients(weights_file):
    enc = encoder(weights_file, "float32")
    maps, state = inputs()
    keep = enc.dropout_keep(6, torch.device("cpu"), torch.Generator().manual_seed(3))
    upstream = torch.randn(6, enc.out_dim)
    fast = enc.head(maps, state, train=True, keep=keep)
    fast_grads = grads(enc, fast, upstream)
    ref = reference_head(enc, maps, state, keep)
    ref_grads = grads(enc, ref, upstream)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    assert fast_grads.keys() == ref_grads.keys() and "spatial_kernel" in fast_grads
    for name in ref_grads:  # float32 sums in another order: ~1e-6 relative
        assert relative_error(fast_grads[name], ref_grads[name]) < 1e-5, name
    with torch.no_grad():  # eval: no dropout at all
        torch.testing.assert_close(enc.head(maps, state, train=False), reference_head(enc, maps, state, None),
                                   rtol=1e-5, atol=1e-5)


def test_bfloat16_head_stays_within_bfloat16_rounding_of_float32(weights_file):
    fp32, bf16 = encoder(weights_file, "float32"), encoder(weights_file, "bfloat16")
    bf16.load_state_dict(fp32.state_dict())
    maps, state = inputs(b=32)
    keep = fp32.dropout_keep(32, torch.device("cpu"), torch.Generator().manual_seed(3))
    upstream = torch.randn(32, fp32.out_dim)
    out32, out16 = fp32.head(maps, state, True, keep=keep), bf16.head(maps, state, True, keep=keep.bfloat16())
    assert out16.dtype == torch.float32  # LayerNorm, tanh and everything downstream stay float32
    # bfloat16 keeps 8 bits of mantissa (relative rounding 2^-9 ~ 0.2 %) on the products' inputs.
    assert relative_error(out16, out32) < 1e-2
    g32, g16 = grads(fp32, out32, upstream), grads(bf16, out16, upstream)
    assert g32.keys() == g16.keys()
    for name in g32:
        assert g16[name].dtype == torch.float32, name  # float32 master weights get float32 grads
        assert relative_error(g16[name], g32[name]) < 3e-2, name
    # not trivially equal: the bfloat16 path really rounds
    assert not torch.equal(out16, out32)


def test_bfloat16_update_tracks_the_float32_update(weights_file):
    """Two agents, identical but for head_dtype, take the same gradient step on the same batch
    (their random draws are identical): every parameter's gradient agrees to bfloat16 rounding."""
    obs_space = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (5,), np.float32),
                                 **{c: gym.spaces.Box(0, 255, (128, 128, 3), np.uint8) for c in CAMS}})
    act_space = gym.spaces.Box(-1, 1, (4,), np.float32)
    agents = {dt: SACAgent(SACConfig(hidden_dims=(64, 64), critic_ensemble_size=2, critic_subsample_size=None,
                                     bc_weight=0.0, encoder=EncoderConfig(pretrained_backbone=weights_file,
                                                                          head_dtype=dt)),
                           obs_space, act_space, seed=3) for dt in ("float32", "bfloat16")}
    g = torch.Generator().manual_seed(0)
    b = 16

    def obs():
        return {"state": torch.randn(b, 5, generator=g),
                **{"feat/" + c: torch.randn(b, 3, 512, 4, 4, generator=g).relu().half() for c in CAMS}}
    batch = {"obs": obs(), "next_obs": obs(), "action": torch.rand(b, 4, generator=g) * 2 - 1,
             "reward": torch.rand(b, generator=g), "terminated": torch.zeros(b)}
    result = {}
    for dt, agent in agents.items():
        agent.state_norm.fit(torch.cat([batch["obs"]["state"], batch["next_obs"]["state"]]))
        loss, metrics = agent._compute_losses(batch, update_actor=True)
        agent.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        result[dt] = (metrics, {n: p.grad for n, p in [*agent.encoder.named_parameters(),
                                                       *(("critic." + k, v) for k, v in agent.critic.named_parameters()),
                                                       *(("actor." + k, v) for k, v in agent.actor.named_parameters())]
                                if p.grad is not None})
    (m32, g32), (m16, g16) = result["float32"], result["bfloat16"]
    for k in ("critic_loss", "actor_loss", "q_mean", "target_q_mean"):
        assert m16[k].item() == pytest.approx(m32[k].item(), rel=2e-2, abs=1e-3), k
    assert g32.keys() == g16.keys() and any(k.startswith("bottleneck") for k in g32)
    for name in g32:
        assert relative_error(g16[name], g32[name]) < 2e-2, name  # measured 0.1-0.7 %


def test_dropout_masks_keep_the_configured_fraction_and_are_reproducible(weights_file):
    enc = encoder(weights_file, "float32", dropout=0.1)
    cpu = torch.device("cpu")
    keep = enc.dropout_keep(256, cpu, torch.Generator().manual_seed(5))
    assert keep.shape == (2, 256, 512 * 8) and set(keep.unique().tolist()) == {0.0, 1.0}
    # 2M Bernoulli draws: the standard error of the mean is 2e-4
    assert keep.mean().item() == pytest.approx(1 - round(0.1 * 65536) / 65536, abs=1.5e-3)
    assert torch.equal(keep, enc.dropout_keep(256, cpu, torch.Generator().manual_seed(5)))
    assert not torch.equal(keep, enc.dropout_keep(256, cpu, torch.Generator().manual_seed(6)))
    # per-sample masks are independent: rows differ, columns differ
    assert not torch.equal(keep[0, 0], keep[0, 1]) and not torch.equal(keep[0], keep[1])
    assert encoder(weights_file, "float32", dropout=0.0).dropout_keep(4, cpu, None) is None
    assert encoder(weights_file, "bfloat16").dropout_keep(4, cpu, None).dtype == torch.bfloat16


def test_head_dtype_resolves_and_bad_names_fail_with_the_field(weights_file):
    cpu = torch.device("cpu")
    assert resolve_head_dtype("float32", cpu) == torch.float32
    assert resolve_head_dtype("bfloat16", cpu) == torch.bfloat16
    assert resolve_head_dtype("auto", cpu) == (torch.bfloat16 if native_bfloat16(cpu) else torch.float32)
    with pytest.raises(ValueError, match="encoder.head_dtype must be one of"):
        encoder(weights_file, "float16")
    from robot_rl.config_ranges import validate_train_config
    from robot_rl.train import TrainConfig
    cfg = TrainConfig()
    cfg.agent.encoder.head_dtype = "fp8"
    with pytest.raises(ConfigError, match=r"^agent[.]encoder[.]head_dtype = 'fp8'.*auto"):
        validate_train_config(cfg)


def test_cached_maps_convert_once_into_the_head_dtype(weights_file):
    enc = encoder(weights_file, "bfloat16")
    feats = torch.randn(3, 2, 512, 4, 4).half()
    obs = {"feat/wrist": feats, "feat/front": feats.flip(0)}
    m32 = enc.image_maps(obs, train=False)
    m16 = enc.image_maps(obs, train=False, dtype=torch.bfloat16)
    assert m32.dtype == torch.float32 and m16.dtype == torch.bfloat16 and m16.shape == m32.shape == (2, 512, 3, 16)
    torch.testing.assert_close(m32[0], feats[:, 0].float().flatten(2).transpose(0, 1))
    assert torch.equal(m16, m32.bfloat16())
    assert math.isclose(enc.head(m16, torch.zeros(3, 5), False).abs().max().item(), 1.0, abs_tol=1.0)


@pytest.mark.parametrize("head_dtype", ["float32", "bfloat16"])
def test_raw_images_and_cached_features_agree_in_either_dtype(weights_file, head_dtype):
    """The raw-image path (acting, a trained backbone) and the cached path give the same features."""
    from robot_rl.networks import precompute_features
    enc = encoder(weights_file, head_dtype)
    g = torch.Generator().manual_seed(2)
    obs = {"state": torch.randn(3, 5, generator=g),
           **{c: torch.randint(0, 256, (3, 128, 128, 3), generator=g, dtype=torch.uint8) for c in CAMS}}
    cached = {"state": obs["state"], **{"feat/" + c: precompute_features(enc, obs[c], 1) for c in CAMS}}
    with torch.no_grad():
        raw, feat = enc(obs), enc(cached)
    assert raw.shape == (3, enc.out_dim) and raw.dtype == torch.float32
    torch.testing.assert_close(raw, feat, atol=2e-2, rtol=0)  # float16 storage of the cached maps
