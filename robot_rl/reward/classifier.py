"""The reward classifier: is this a success (binary), or which stage is reached (N classes)?

    camera images (uint8 (B, H, W, 3), one per chosen camera)
      -> frozen ResNet-10 + per-camera spatial embedding, Linear 256, LayerNorm, tanh
         (robot_rl.networks.ObservationEncoder, the policy's own image encoder, without state)
      -> Dense 256 -> dropout -> LayerNorm -> ReLU -> Dense num_classes (logits)

This is SERL's `create_classifier` (EncodingWrapper + Dense/Dropout/LayerNorm/ReLU head), with a
softmax over `num_classes` for both cases: class 0 = nothing yet, class num_classes-1 = success,
the classes between are the stages of a multi-stage task. `success_prob` is the last class's
probability; a frame is a success when it reaches the classifier's `threshold`.

The backbone is always frozen. With pretrained weights (a local safetensors file, see
docs/pretrained_backbone.md) it is SERL's ImageNet ResNet-10; without, it is a *frozen random*
ResNet-10 (seeded), whose features are still good enough for a fixed scene (measured in the twin,
docs/reward_classifier.md). Freezing keeps training cheap: the features of every labelled frame
are computed once (robot_rl.reward.train_classifier) and only the small head trains.

File format: one safetensors file holding every weight (the backbone too, so the file alone
rebuilds the model whatever its backbone was) and, in its metadata under "robot_rl", a JSON
header: format, version, cameras, image_size, num_classes, class_names, threshold, head sizes.
Loading reads only that: no pickle, no torch.load.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Optional

import numpy as np
import torch
from torch import nn

from robot_rl.networks.encoder import FEATURE_PREFIX, EncoderConfig, ObservationEncoder

log = logging.getLogger(__name__)

FORMAT = "robot_rl.reward_classifier"
VERSION = 1
META_KEY = "robot_rl"


@dataclass
class ClassifierConfig:
    cameras: tuple[str, ...] = ("front",)
    image_size: int = 128
    num_classes: int = 2                 # 2: binary success; N > 2: stages 0..N-1
    class_names: tuple[str, ...] = ()    # optional, for reports; default "0".."N-1"
    threshold: float = 0.5               # success when P(last class) >= threshold
    hidden_dim: int = 256
    dropout: float = 0.1
    backbone_seed: int = 0               # seeds the random backbone when none is pretrained
    # No TorchScript copy of the backbone: tracing costs seconds per input shape, for ~20%.
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(
        freeze_backbone=True, trace_frozen_backbone=False))

    def __post_init__(self) -> None:
        self.cameras = tuple(self.cameras)
        self.class_names = tuple(self.class_names) or tuple(str(i) for i in range(self.num_classes))
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras must be distinct and non-empty, got {self.cameras}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        if not 0.0 < self.threshold <= 1.0 or not math.isfinite(self.threshold):
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32, got {self.image_size}")


@contextlib.contextmanager
def _quiet_encoder_warning():
    # ObservationEncoder warns that a random backbone "trains from scratch": here it is frozen on
    # purpose (and said so below), so that warning would mislead.
    logger = logging.getLogger("robot_rl.networks.encoder")
    quiet = logging.Filter()
    quiet.filter = lambda record: "TRAINS FROM SCRATCH" not in record.getMessage()  # type: ignore
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


class RewardClassifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        enc_cfg = EncoderConfig(**{**asdict(cfg.encoder), "freeze_backbone": True})
        with torch.random.fork_rng(), _quiet_encoder_warning():
            torch.manual_seed(cfg.backbone_seed)  # the random backbone is the same for a seed
            self.encoder = ObservationEncoder(None, cfg.cameras, (cfg.image_size, cfg.image_size, 3), enc_cfg)
        if not self.encoder.frozen:
            log.debug("reward classifier: no pretrained backbone; a FROZEN random ResNet-10 "
                      "(seed %d)", cfg.backbone_seed)
            self.encoder.frozen = True
            self.encoder.backbone.requires_grad_(False)
        self.head = nn.Sequential(
            nn.Linear(self.encoder.out_dim, cfg.hidden_dim), nn.Dropout(cfg.dropout),
            nn.LayerNorm(cfg.hidden_dim), nn.ReLU(), nn.Linear(cfg.hidden_dim, cfg.num_classes))

    @property
    def cameras(self) -> tuple[str, ...]:
        return self.cfg.cameras

    @property
    def threshold(self) -> float:
        return self.cfg.threshold

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def forward(self, obs: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        """Logits (B, num_classes) from images (obs[camera]) or cached backbone features
        (obs["feat/" + camera], (B, C, h, w) or (B, K, C, h, w)); dropout and the choice among K
        cached shift variants happen only in training mode."""
        for cam in self.cfg.cameras:
            if cam in obs:
                x = obs[cam]
                size = self.cfg.image_size
                if x.dim() != 4 or tuple(x.shape[1:]) != (size, size, 3) or x.dtype != torch.uint8:
                    raise ValueError(f"camera {cam!r}: expected uint8 (B, {size}, {size}, 3), "
                                     f"got {x.dtype} {tuple(x.shape)}")
            elif FEATURE_PREFIX + cam not in obs:
                raise ValueError(f"the classifier needs camera {cam!r} (has {sorted(obs)})")
        return self.head(self.encoder(obs, train=self.training, generator=generator))

    @torch.inference_mode()
    def probs(self, images: Mapping[str, np.ndarray | torch.Tensor]) -> np.ndarray:
        """Class probabilities (B, num_classes) for uint8 images, (H, W, 3) or (B, H, W, 3) each."""
        was_training = self.training
        self.eval()
        try:
            obs = {}
            for cam in self.cfg.cameras:
                if cam not in images:
                    raise ValueError(f"the classifier needs camera {cam!r} (has {sorted(images)})")
                x = torch.as_tensor(np.asarray(images[cam]))
                obs[cam] = x.unsqueeze(0) if x.dim() == 3 else x
            return torch.softmax(self(obs), dim=-1).float().numpy()
        finally:
            self.train(was_training)

    def success_prob(self, images: Mapping[str, np.ndarray | torch.Tensor]) -> np.ndarray:
        return self.probs(images)[:, -1]

    # ---- file -----------------------------------------------------------------------------
    def header(self) -> dict:
        cfg = asdict(self.cfg)
        cfg["cameras"], cfg["class_names"] = list(self.cfg.cameras), list(self.cfg.class_names)
        return {"format": FORMAT, "version": VERSION, **cfg}

    def save(self, path: str | Path, extra: Optional[dict] = None) -> Path:
        """Writes PATH (.safetensors) atomically; `extra` (JSON-able) goes into the header."""
        from safetensors.torch import save_file

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_name(path.name + ".safetensors")
        path.parent.mkdir(parents=True, exist_ok=True)
        header = self.header()
        if extra:
            header["extra"] = extra
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(header)})
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path, threshold: float | None = None) -> "RewardClassifier":
        """Rebuilds a saved classifier; any missing/extra tensor, wrong shape, non-finite value or
        bad header raises ValueError. `threshold` overrides the saved one."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"reward classifier file {str(path)!r} does not exist")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(f"cannot read reward classifier {str(path)!r}: {e}") from None
        try:
            header = json.loads(meta[META_KEY])
        except (KeyError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: no valid robot_rl classifier header ({e})") from None
        if header.get("format") != FORMAT or header.get("version") != VERSION:
            raise ValueError(f"{path}: not a robot_rl reward classifier v{VERSION} "
                             f"(format {header.get('format')!r}, version {header.get('version')!r})")
        try:
            enc = EncoderConfig(**header["encoder"])
            cfg = ClassifierConfig(
                cameras=tuple(header["cameras"]), image_size=int(header["image_size"]),
                num_classes=int(header["num_classes"]), class_names=tuple(header["class_names"]),
                threshold=float(header["threshold"] if threshold is None else threshold),
                hidden_dim=int(header["hidden_dim"]), dropout=float(header["dropout"]),
                backbone_seed=int(header["backbone_seed"]),
                # the weights come from this file: never read the backbone path it was trained with
                encoder=EncoderConfig(**{**asdict(enc), "pretrained_backbone": None}))
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path}: incomplete classifier header ({e})") from None
        model = cls(cfg)
        own = model.state_dict()
        missing, extra = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
        if missing or extra:
            raise ValueError(f"{path}: missing tensors {missing}, unexpected tensors {extra}")
        for k, v in tensors.items():
            if tuple(v.shape) != tuple(own[k].shape):
                raise ValueError(f"{path}: {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
            if v.is_floating_point() and not torch.isfinite(v).all():
                raise ValueError(f"{path}: {k} holds non-finite values")
        model.load_state_dict(tensors)
        model.encoder.backbone.to(memory_format=torch.channels_last)
        model.header_extra = header.get("extra", {})
        return model.eval()

