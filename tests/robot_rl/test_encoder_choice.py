"""Which image encoder a pixel run builds (robot_rl/networks/encoder_choice.py), and the
`robot-rl train --obs pixels` default: the pretrained frozen ResNet-10 when its file is
configured, otherwise the CPU-viable small conv net, with one log line saying which and why."""
import logging

import numpy as np
import pytest
import torch

from robot_rl import cli
from robot_rl.agents.sac import SACConfig
from robot_rl.networks import EncoderConfig, ObservationEncoder
from robot_rl.networks.encoder_choice import choose_backbone
from robot_rl.networks.small_conv import SmallConv
from robot_rl.train import TrainConfig


def test_auto_picks_the_pretrained_frozen_resnet_when_its_file_is_set_else_small_conv():
    with_file = choose_backbone("auto", "w.safetensors", freeze_backbone=True, freeze_random_backbone=False)
    assert (with_file.name, with_file.frozen) == ("resnet10", True)
    assert "pretrained file is configured" in with_file.reason
    without = choose_backbone("auto", None, freeze_backbone=True, freeze_random_backbone=False)
    assert (without.name, without.frozen) == ("small_conv", False)
    assert "no pretrained ResNet-10 file" in without.reason
    # Explicit choices keep their meaning: a random ResNet-10 trains unless asked to stay fixed.
    assert choose_backbone("resnet10", None, True, False).frozen is False
    assert choose_backbone("resnet10", None, True, True).frozen is True
    with pytest.raises(ValueError, match="small_conv"):
        choose_backbone("small_conv", "w.safetensors", True, False)
    with pytest.raises(ValueError, match="must be one of"):
        choose_backbone("resnet18", None, True, False)


def test_train_defaults_to_auto_and_a_plain_encoder_config_stays_resnet10():
    assert TrainConfig().agent.encoder.backbone == "auto" and SACConfig().encoder.backbone == "auto"
    assert EncoderConfig().backbone == "resnet10"


def test_small_conv_encoder_shapes_blanking_and_gradients():
    enc = ObservationEncoder(5, ["wrist", "front"], (64, 64, 3),
                             EncoderConfig(backbone="small_conv", small_conv_resolution=32))
    assert isinstance(enc.backbone, SmallConv) and not enc.frozen
    assert enc.map_shape == (32, 8, 8)
    rng = np.random.default_rng(0)
    obs = {"state": torch.randn(3, 5),
           "wrist": torch.as_tensor(rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)),
           "front": torch.as_tensor(rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8))}
    out = enc(obs)
    assert out.shape == (3, enc.out_dim)
    out.sum().backward()   # trained end to end: the convs get gradients
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.backbone.parameters())
    # The blind baseline: the same network, every image replaced by zeros.
    blind = ObservationEncoder(5, ["wrist", "front"], (64, 64, 3),
                               EncoderConfig(backbone="small_conv", small_conv_resolution=32, blank_images=True))
    blind.load_state_dict(enc.state_dict())
    other = {**obs, "wrist": 255 - obs["wrist"], "front": 255 - obs["front"]}
    with torch.no_grad():
        assert torch.equal(blind(obs), blind(other))
        assert not torch.equal(enc(obs), enc(other))


def test_bad_resolution_is_one_clear_error(tmp_path, capsys):
    code = cli.main(["train", "--task", "pick_cube", "--obs", "pixels", "--run-dir", str(tmp_path / "r"),
                     "--set", "agent.encoder.small_conv_resolution=30"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("robot-rl: error: agent.encoder.small_conv_resolution = 30: must be a multiple of 4")
    assert len(err.splitlines()) == 1


def _train_pixels(tmp_path, name, *extra):
    # The real CLI, a real twin with pixels; as short as a run can be (no demos, no steps,
    # one 2-step evaluation episode at 32x32), since only the choice and its log line matter here.
    return cli.main(["train", "--task", "pick_cube", "--obs", "pixels", "--steps", "0",
                     "--run-dir", str(tmp_path / name), "--set", "demos=0", "--set", "progress=false",
                     "--set", "final_eval_episodes=1", "--set", "checkpoint_every=0",
                     "--set", "task_overrides={max_steps: 2, image_size: 32}", *extra])


def test_robot_rl_train_obs_pixels_picks_the_encoder_and_says_why(tmp_path, caplog, weights_file):
    caplog.set_level(logging.INFO, logger="robot_rl")
    assert _train_pixels(tmp_path, "fresh") == 0
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("image encoder:")]
    assert len(lines) == 1 and lines[0].startswith("image encoder: small_conv (no pretrained ResNet-10 file")
    assert not any("a ResNet-10 encodes ~100 images/s" in r.getMessage() for r in caplog.records)

    caplog.clear()
    assert _train_pixels(tmp_path, "pretrained", "--set", f"agent.encoder.pretrained_backbone={weights_file}") == 0
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("image encoder:")]
    assert len(lines) == 1
    assert lines[0].startswith("image encoder: resnet10 (its pretrained file is configured")
    assert "frozen" in lines[0]


def test_bc_trains_the_encoder_by_default_only_when_it_learns_from_scratch(weights_file):
    """The pixel default learns: the small conv net gets the BC gradient (what made it learn the
    reduced task, docs/benchmarks.md "Pixels"); a pretrained frozen backbone and the state learner
    do not; an explicit setting wins."""
    import gymnasium as gym

    from robot_rl.agents.sac import SACAgent

    obs = gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (5,), np.float32),
                           "front": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)})
    state_only = gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (5,), np.float32)})
    act = gym.spaces.Box(-1, 1, (7,), np.float32)

    def agent(space, **kw):
        return SACAgent(SACConfig(hidden_dims=(8, 8), critic_ensemble_size=2, **kw), space, act, device="cpu")

    assert agent(obs).bc_trains_encoder is True                                   # auto -> small_conv
    assert agent(obs, bc_trains_encoder=False).bc_trains_encoder is False
    pretrained = EncoderConfig(backbone="auto", pretrained_backbone=weights_file)
    assert agent(obs, encoder=pretrained).bc_trains_encoder is False              # frozen ResNet-10
    assert agent(state_only).bc_trains_encoder is False
