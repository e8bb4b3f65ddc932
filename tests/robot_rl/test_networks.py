"""Networks: batched ensemble vs looped, tanh-Gaussian log-prob, ResNet-10 (Flax SAME padding),
the encoder, cached features, backbone weight loading and the SERL weight converter."""
import logging
import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from robot_rl.networks import (EncoderConfig, EnsembleMLP, ObservationEncoder, ResNet10, TanhGaussianPolicy,
                               load_backbone_weights, precompute_features)
from robot_rl.networks.convert_serl_resnet import convert, main as convert_main
from robot_rl.networks.resnet import _same_pad_stride2, save_backbone_weights


# ---------------------------------------------------------------- ensemble

def test_batched_ensemble_equals_looped_members_and_subsets():
    torch.manual_seed(0)
    ens = EnsembleMLP(5, 9, (16, 16), 1)
    with torch.no_grad():  # non-trivial LayerNorm affines, so a mix-up between members would show
        for p in (*ens.ln_weights, *ens.ln_biases, *ens.biases):
            p.normal_()
    x = torch.randn(7, 9)
    out = ens(x)
    assert out.shape == (5, 7, 1)
    looped = torch.stack([ens.member_forward(x, k) for k in range(5)])
    torch.testing.assert_close(out, looped)
    members = torch.tensor([4, 1])
    torch.testing.assert_close(ens(x, members=members), looped[members])
    xs = torch.randn(5, 7, 9)  # per-member inputs
    torch.testing.assert_close(ens(xs), torch.stack([ens.member_forward(xs[k], k) for k in range(5)]))


def test_detached_ensemble_passes_gradient_to_inputs_only():
    ens = EnsembleMLP(3, 4, (8,), 1)
    x = torch.randn(6, 4, requires_grad=True)
    ens(x, detach_params=True).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in ens.parameters())


# ---------------------------------------------------------------- policy

def test_tanh_gaussian_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    pi = TanhGaussianPolicy(5, (16,), 3)
    f = torch.randn(64, 5)
    noise = torch.randn(64, 3)
    action, logp = pi.sample(f, noise=noise)
    mean, log_std = pi(f)
    mean, log_std = mean.double(), log_std.double()
    tanh = torch.distributions.TanhTransform(cache_size=1)
    dist = torch.distributions.TransformedDistribution(torch.distributions.Normal(mean, log_std.exp()), [tanh])
    u = mean + log_std.exp() * noise.double()
    ref = dist.log_prob(tanh(u)).sum(-1).float()  # the cached transform avoids atanh(+-1)
    torch.testing.assert_close(action, torch.tanh(u).float())
    torch.testing.assert_close(logp, ref, rtol=1e-4, atol=1e-4)
    assert torch.all(pi.mode(f).abs() < 1)


def test_log_std_is_clipped_to_std_range():
    pi = TanhGaussianPolicy(2, (4,), 1, std_min=0.1, std_max=2.0)
    with torch.no_grad():
        pi.head.bias.copy_(torch.tensor([0.0, 50.0]))
    _, log_std = pi(torch.zeros(1, 2))
    assert log_std.item() == pytest.approx(np.log(2.0))


# ---------------------------------------------------------------- ResNet-10

def test_stride2_conv_uses_flax_same_padding():
    """Flax SAME on an even size with a 3-wide window and stride 2 pads 0 before and 1 after."""
    torch.manual_seed(0)
    x = torch.randn(1, 1, 6, 6)
    w = torch.randn(1, 1, 3, 3)
    out = F.conv2d(_same_pad_stride2(x), w, stride=2)
    xp = np.zeros((7, 7))
    xp[:6, :6] = x[0, 0].numpy()
    ref = np.array([[np.sum(xp[2 * i:2 * i + 3, 2 * j:2 * j + 3] * w[0, 0].numpy()) for j in range(3)]
                    for i in range(3)])
    np.testing.assert_allclose(out[0, 0].numpy(), ref, rtol=1e-5, atol=1e-5)


def test_resnet10_shapes_groupnorm_and_channels_last():
    net = ResNet10()
    assert ResNet10.output_shape(128, 128) == (512, 4, 4)
    assert all(m.num_groups == 4 for m in net.modules() if isinstance(m, torch.nn.GroupNorm))
    x = torch.randint(0, 256, (2, 128, 128, 3), dtype=torch.uint8)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, 512, 4, 4) and torch.isfinite(y).all()
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\)"):
        net(x.permute(0, 3, 1, 2))


def test_load_backbone_weights_checks_everything(tmp_path):
    src = ResNet10()
    good = tmp_path / "good.safetensors"
    save_backbone_weights(src, good)
    dst = ResNet10()
    load_backbone_weights(dst, good)
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="does not exist"):
        load_backbone_weights(dst, tmp_path / "nope.safetensors")
    sd = {k: v.contiguous() for k, v in src.state_dict().items()}
    bad = dict(sd)
    bad["conv_init.weight"] = torch.zeros(64, 3, 5, 5)
    save_file(bad, str(tmp_path / "shape.safetensors"))
    with pytest.raises(ValueError, match="conv_init.weight has shape"):
        load_backbone_weights(dst, tmp_path / "shape.safetensors")
    bad = dict(sd)
    bad.pop("blocks.3.norm2.bias")
    save_file(bad, str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="blocks.3.norm2.bias"):
        load_backbone_weights(dst, tmp_path / "missing.safetensors")
    bad = dict(sd)
    bad["norm_init.weight"] = torch.full((64,), float("nan"))
    save_file(bad, str(tmp_path / "nan.safetensors"))
    with pytest.raises(ValueError, match="non-finite"):
        load_backbone_weights(dst, tmp_path / "nan.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match="cannot read"):
        load_backbone_weights(dst, tmp_path / "junk.safetensors")


# ---------------------------------------------------------------- encoder


def test_encoder_shapes_and_state_only_identity(weights_file):
    enc = ObservationEncoder(10, ["wrist", "front"], (128, 128, 3), EncoderConfig(pretrained_backbone=weights_file))
    assert enc.frozen and enc.out_dim == 2 * 256 + 64
    obs = {"state": torch.randn(3, 10),
           "wrist": torch.randint(0, 256, (3, 128, 128, 3), dtype=torch.uint8),
           "front": torch.randint(0, 256, (3, 128, 128, 3), dtype=torch.uint8)}
    with torch.no_grad():
        out = enc(obs)
    assert out.shape == (3, 576) and out[:, :512].abs().max() <= 1  # tanh-bounded image latents
    # cameras are independent inputs: changing one only changes its own 256-slice at eval
    with torch.no_grad():
        out2 = enc({**obs, "front": torch.zeros_like(obs["front"])})
    torch.testing.assert_close(out2[:, :256], out[:, :256])
    assert not torch.allclose(out2[:, 256:512], out[:, 256:512])
    ident = ObservationEncoder(10, [], (128, 128, 3), EncoderConfig())
    s = torch.randn(4, 10)
    assert ident.out_dim == 10 and ident({"state": s}) is s


def test_dropout_only_in_training_and_reproducible(weights_file):
    enc = ObservationEncoder(None, ["wrist"], (128, 128, 3), EncoderConfig(pretrained_backbone=weights_file))
    obs = {"wrist": torch.randint(0, 256, (2, 128, 128, 3), dtype=torch.uint8)}
    with torch.no_grad():
        assert torch.equal(enc(obs), enc(obs))
        a = enc(obs, train=True, generator=torch.Generator().manual_seed(0))
        b = enc(obs, train=True, generator=torch.Generator().manual_seed(0))
        c = enc(obs, train=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_precompute_features_variants_and_cached_path(weights_file):
    enc = ObservationEncoder(4, ["wrist"], (128, 128, 3), EncoderConfig(pretrained_backbone=weights_file))
    imgs = torch.randint(0, 256, (5, 128, 128, 3), dtype=torch.uint8)
    feats = precompute_features(enc, imgs.numpy(), n_variants=3, generator=torch.Generator().manual_seed(0),
                                batch_size=2)
    assert feats.shape == (5, 3, 512, 4, 4) and feats.dtype == torch.float16
    with torch.no_grad():
        direct = enc.backbone_features(imgs)
    torch.testing.assert_close(feats[:, 0].float(), direct, atol=1e-2, rtol=1e-2)
    assert not torch.allclose(feats[:, 1].float(), direct, atol=1e-2)  # shifted variants differ
    state = torch.randn(5, 4)
    with torch.no_grad():  # eval: variant 0 == raw images; train: one of the variants per sample
        torch.testing.assert_close(enc({"state": state, "feat/wrist": feats}),
                                   enc({"state": state, "wrist": imgs}), atol=2e-2, rtol=0)
        maps = enc.image_maps({"feat/wrist": feats}, train=True, generator=torch.Generator().manual_seed(1))
    assert maps.shape == (1, 512, 5, 16)  # (n_cam, C, B, h*w)
    for i in range(5):
        assert any(torch.equal(maps[0, :, i], feats[i, k].float().flatten(1)) for k in range(3))
    with pytest.raises(ValueError, match="uint8"):
        precompute_features(enc, imgs.float(), 2)


def test_trained_backbone_rejects_cached_features_and_warns(caplog):
    with caplog.at_level(logging.WARNING):
        enc = ObservationEncoder(None, ["wrist"], (128, 128, 3), EncoderConfig())
    assert not enc.frozen and "TRAINS FROM SCRATCH" in caplog.text
    assert all(p.requires_grad for p in enc.backbone.parameters())
    with pytest.raises(ValueError, match="frozen pretrained backbone"):
        enc.image_maps({"feat/wrist": torch.zeros(1, 512, 4, 4)}, train=False)


# ---------------------------------------------------------------- SERL weight conversion

def _flax_tree_from(net: ResNet10) -> dict:
    """A synthetic tree with SERL's Flax names, nesting and HWIO kernel layout."""
    sd = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    kernel = lambda w: np.ascontiguousarray(w.transpose(2, 3, 1, 0))  # OIHW -> HWIO
    tree = {"conv_init": {"kernel": kernel(sd["conv_init.weight"])},
            "norm_init": {"scale": sd["norm_init.weight"], "bias": sd["norm_init.bias"]}}
    names = {"conv1": "Conv_0", "norm1": "MyGroupNorm_0", "conv2": "Conv_1", "norm2": "MyGroupNorm_1",
             "proj_conv": "conv_proj", "proj_norm": "norm_proj"}
    for i in range(4):
        block = {}
        for ours, flax in names.items():
            if f"blocks.{i}.{ours}.weight" not in sd:
                continue
            if "conv" in ours:
                block[flax] = {"kernel": kernel(sd[f"blocks.{i}.{ours}.weight"])}
            else:
                block[flax] = {"scale": sd[f"blocks.{i}.{ours}.weight"], "bias": sd[f"blocks.{i}.{ours}.bias"]}
        tree[f"ResNetBlock_{i}"] = block
    return {"params": tree}


def test_convert_serl_resnet_maps_a_flax_tree_to_identical_weights(tmp_path):
    torch.manual_seed(7)
    src = ResNet10()
    pkl = tmp_path / "resnet10_params.pkl"
    pkl.write_bytes(pickle.dumps(_flax_tree_from(src)))
    out = tmp_path / "resnet10.safetensors"
    assert convert_main([str(pkl), str(out)]) == 0
    loaded = load_file(str(out))
    for k, v in src.state_dict().items():
        assert torch.equal(loaded[k], v), k
    dst = ResNet10()
    load_backbone_weights(dst, out)
    x = torch.randint(0, 256, (1, 128, 128, 3), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x))


def test_convert_refuses_code_in_pickles_and_wrong_trees(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"conv_init": Exploit()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        convert(evil, tmp_path / "x.safetensors")
    tree = _flax_tree_from(ResNet10())
    del tree["params"]["ResNetBlock_2"]["conv_proj"]
    partial = tmp_path / "partial.pkl"
    partial.write_bytes(pickle.dumps(tree))
    with pytest.raises(ValueError, match="blocks.2.proj_conv.weight"):
        convert(partial, tmp_path / "y.safetensors")
    (tmp_path / "other.pkl").write_bytes(pickle.dumps({"params": {"Dense_0": {"kernel": np.zeros(3)}}}))
    with pytest.raises(ValueError, match="conv_init"):
        convert(tmp_path / "other.pkl", tmp_path / "z.safetensors")


def test_traced_frozen_backbone_matches_eager_and_is_dropped_on_load(weights_file):
    enc = ObservationEncoder(None, ["wrist"], (128, 128, 3), EncoderConfig(pretrained_backbone=weights_file))
    x = torch.randint(0, 256, (1, 128, 128, 3), dtype=torch.uint8)
    with torch.no_grad():
        eager = enc.backbone_features(x)
    with torch.inference_mode():
        traced = enc.backbone_features(x)
    assert len(enc._frozen_graphs) == 1
    torch.testing.assert_close(traced, eager, atol=1e-4, rtol=1e-4)
    other = ResNet10().state_dict()  # new weights must not be shadowed by the cached graph
    enc.load_state_dict({**enc.state_dict(), **{"backbone." + k: v for k, v in other.items()}})
    assert not enc._frozen_graphs
    with torch.inference_mode():
        assert not torch.allclose(enc.backbone_features(x), eager)
