"""Observation encoder shared by actor and critic (SERL/HIL-SERL's EncodingWrapper).

    camera images (uint8, B x 128 x 128 x 3 each)
      -> ONE ResNet-10 pass over all cameras stacked on the batch dim (the backbone is shared)
      -> per camera: learned spatial embeddings (8 features over the 4x4x512 map), dropout 0.1,
         Linear 256, LayerNorm, tanh
    proprio "state" -> Linear 64, LayerNorm, tanh
    -> concatenated (cameras in the order given, then state)

The per-camera layers keep their weights stacked over cameras and run as batched matmuls,
so two or five cameras cost the same number of kernel launches. With no cameras at all the
encoder is the identity on "state" (SERL's state-based SAC feeds the raw state to the MLPs).

Frozen-backbone fast path and its trade-off
-------------------------------------------
A frozen backbone computes the same features for the same pixels every time, so redoing it
for every sampled batch wastes almost all of an update's time on CPU. Instead the buffer can
store backbone features: `precompute_features` runs the backbone once per stored image, on
K variants of it (variant 0 unshifted, variants 1..K-1 DrQ random shifts), stored as
`"feat/<camera>"` (K, C, h, w) per frame (float16 halves the memory: 512*4*4*2 bytes = 16 KiB
per variant per camera). In training each sample uses one variant drawn at random
(independently for obs and next_obs): the replay sampler draws it and copies only that variant
(`training_batch_keys`), so the batch carries (B, C, h, w); given (B, K, C, h, w), the encoder
draws it itself. At eval (`train=False`) it takes variant 0.
The trade-off: augmentation is drawn from K fixed shifts per image instead of a fresh one of the
81 possible shifts each time it is sampled, and memory grows K-fold. K=4..8 keeps most of
DrQ's regularisation at a fraction of the cost. A (B, C, h, w) feature tensor (no variant
axis) is also accepted and used as is. Cached features are only valid with a frozen backbone.
Features stay float16 in the buffer (numpy, and so the replay files, have no bfloat16): its
10-bit mantissa holds them more exactly than bfloat16 would, and the head converts once per batch.

Head precision (`head_dtype`)
-----------------------------
The per-camera head is most of a frozen-backbone update's arithmetic: the Linear 4096->256 per
camera runs five times per gradient step (forward on obs, next_obs online and target; two
backward products). With `head_dtype="bfloat16"` the spatial embedding and that Linear multiply
bfloat16 operands with float32 accumulation (oneDNN on AVX512-BF16/AMX CPUs, tensor cores on
GPUs); weights, biases, LayerNorm, tanh, the optimizer and everything downstream stay float32.
On this project's Zen 5 CPU the products run ~4.5x faster than float32 (docs/benchmarks.md);
the price is bfloat16's 8-bit mantissa on the head's inputs and outputs (relative rounding
2^-9), the precision mixed-precision training uses on TPUs and GPUs. "auto" picks bfloat16
where the device multiplies it natively and float32 elsewhere (a CPU without AVX512-BF16/AMX
would only emulate it, slower than float32).

Dropout masks are drawn as 16-bit random integers, four from each 64-bit draw of the agent's
generator (mt19937 costs ~2 ns per 32 bits here, and torch.rand spends one draw per element): the
keep probability is round((1 - p) * 65536) / 65536, i.e. p=0.1 drops with probability
0.100006. `dropout_keep` makes one mask that several head passes may share (see SACAgent).
"""
from __future__ import annotations

import copy
import functools
import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robot_rl.augment import random_shift
from robot_rl.networks.encoder_choice import choose_backbone
from robot_rl.networks.resnet import ResNet10, load_backbone_weights
from robot_rl.networks.small_conv import SmallConv

log = logging.getLogger(__name__)

FEATURE_PREFIX = "feat/"


@dataclass
class EncoderConfig:
    # "resnet10", "small_conv" or "auto" (robot_rl/networks/encoder_choice.py says which is built when)
    backbone: str = "resnet10"
    pretrained_backbone: Optional[str] = None  # local safetensors file; None = train from scratch
    freeze_backbone: bool = True        # only honoured with pretrained weights (SERL: frozen)
    freeze_random_backbone: bool = False  # resnet10 without a file: keep the random weights fixed
    small_conv_resolution: int = 64     # small_conv: images are averaged down to this size first
    # The "blind" baseline: every image is replaced by zeros, so the policy sees proprio only.
    blank_images: bool = False
    num_spatial_features: int = 8       # SpatialLearnedEmbeddings num_features
    image_latent_dim: int = 256         # per-camera bottleneck
    proprio_latent_dim: int = 64
    dropout: float = 0.1
    augment_pad: int = 4                # DrQ random-shift pad; 0 turns augmentation off
    feature_variants: int = 4           # K shift variants per image when caching backbone features
    # Acting with a frozen backbone runs a TorchScript-frozen copy of it (~20% faster on CPU).
    trace_frozen_backbone: bool = True
    # Operand precision of the per-camera head's matmuls: auto | float32 | bfloat16 (see above).
    head_dtype: str = "auto"


HEAD_DTYPES = ("auto", "float32", "bfloat16")


@functools.lru_cache(maxsize=None)
def native_bfloat16(device: torch.device) -> bool:
    """Whether `device` multiplies bfloat16 in hardware (so bfloat16 matmuls beat float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probes = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return any(p is not None and p() for p in probes)
    return False


def resolve_head_dtype(name: str, device: torch.device) -> torch.dtype:
    if name not in HEAD_DTYPES:
        raise ValueError(f"encoder.head_dtype must be one of {list(HEAD_DTYPES)}, got {name!r}")
    if name == "auto":
        return torch.bfloat16 if native_bfloat16(device) else torch.float32
    return getattr(torch, name)


class ObservationEncoder(nn.Module):
    def __init__(self, state_dim: int | None, camera_names: Sequence[str],
                 image_shape: tuple[int, int, int], cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.camera_names = list(camera_names)
        self.state_dim = state_dim
        n_cam = len(self.camera_names)
        self.backbone: ResNet10 | SmallConv | None = None
        self.frozen = False
        self._frozen_graphs: dict[tuple, torch.jit.ScriptModule] = {}
        resolve_head_dtype(cfg.head_dtype, torch.device("cpu"))  # a bad name fails here, not mid-run
        if n_cam == 0:
            if state_dim is None:
                raise ValueError("an observation needs a 'state' vector or at least one camera")
            self.out_dim = state_dim
            return
        choice = choose_backbone(cfg.backbone, cfg.pretrained_backbone, cfg.freeze_backbone,
                                 cfg.freeze_random_backbone)
        self.backbone_name = choice.name
        if cfg.backbone == "auto":
            log.info("image encoder: %s (%s)", choice.name, choice.reason)
        if choice.name == "small_conv":
            self.backbone = SmallConv(cfg.small_conv_resolution)
            c, h, w = self.backbone.output_shape(image_shape[0], image_shape[1])
        else:
            self.backbone = ResNet10()
            if cfg.pretrained_backbone:
                load_backbone_weights(self.backbone, cfg.pretrained_backbone)
            elif not choice.frozen:
                log.warning("no pretrained backbone weights (encoder.pretrained_backbone is unset): the "
                            "ResNet-10 backbone starts from random weights and TRAINS FROM SCRATCH "
                            "through the critic loss%s", "; freeze_backbone is ignored"
                            if cfg.freeze_backbone else "")
            c, h, w = ResNet10.output_shape(image_shape[0], image_shape[1])
        self.frozen = choice.frozen
        if self.frozen:
            self.backbone.requires_grad_(False)
        self.map_shape = (c, h, w)
        f, d = cfg.num_spatial_features, cfg.image_latent_dim
        # Flax lecun_normal-like init: std 1/sqrt(fan_in).
        self.spatial_kernel = nn.Parameter(torch.randn(n_cam, c, h * w, f) / math.sqrt(h * w * c))
        self.bottleneck_w = nn.Parameter(torch.randn(n_cam, c * f, d) / math.sqrt(c * f))
        self.bottleneck_b = nn.Parameter(torch.zeros(n_cam, 1, d))
        self.ln_w = nn.Parameter(torch.ones(n_cam, 1, d))
        self.ln_b = nn.Parameter(torch.zeros(n_cam, 1, d))
        self.proprio: nn.Sequential | None = None
        out = n_cam * d
        if state_dim is not None:
            lin = nn.Linear(state_dim, cfg.proprio_latent_dim)
            nn.init.normal_(lin.weight, std=1.0 / math.sqrt(state_dim))
            nn.init.zeros_(lin.bias)
            self.proprio = nn.Sequential(lin, nn.LayerNorm(cfg.proprio_latent_dim), nn.Tanh())
            out += cfg.proprio_latent_dim
        self.out_dim = out

    @property
    def has_cameras(self) -> bool:
        return bool(self.camera_names)

    def backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> float (B, C, h, w); no autograd graph when the backbone is frozen."""
        if self.backbone is None:
            raise ValueError("this encoder has no cameras, so no backbone")
        if self.frozen:
            if self.cfg.trace_frozen_backbone and torch.is_inference_mode_enabled():
                return self._frozen_graph(images)(images)
            with torch.no_grad():
                return self.backbone(images)
        return self.backbone(images)

    def _frozen_graph(self, images: torch.Tensor) -> torch.jit.ScriptModule:
        """The frozen backbone traced and frozen by TorchScript (weights folded in, conv+ReLU fused),
        one per input shape. Dropped whenever a state dict is loaded into this encoder."""
        key = (tuple(images.shape), images.device.type)
        graph = self._frozen_graphs.get(key)
        if graph is None:
            # torch.jit is deprecated upstream (torch.compile with freezing is ~as fast here but
            # compiles for ~30 s); should tracing ever fail or vanish, act with the eager backbone.
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", torch.jit.TracerWarning)
                    warnings.simplefilter("ignore", DeprecationWarning)
                    graph = torch.jit.freeze(torch.jit.trace(self.backbone.eval(), images))
            except Exception as e:  # noqa: BLE001 - any failure only costs speed
                log.warning("could not trace the frozen backbone (%s); acting with the eager one", e)
                graph = self.backbone
            self._frozen_graphs[key] = graph
        return graph

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._frozen_graphs.clear()
        super()._load_from_state_dict(*args, **kwargs)

    def __deepcopy__(self, memo: dict) -> "ObservationEncoder":
        graphs, self._frozen_graphs = self._frozen_graphs, {}
        try:
            cls = self.__class__
            clone = cls.__new__(cls)
            memo[id(self)] = clone
            for k, v in self.__dict__.items():
                setattr(clone, k, copy.deepcopy(v, memo))
        finally:
            self._frozen_graphs = graphs
        return clone

    def head_dtype(self, device: torch.device) -> torch.dtype:
        """The operand dtype of the head's matmuls on `device` (cfg.head_dtype resolved)."""
        return resolve_head_dtype(self.cfg.head_dtype, device)

    def image_maps(self, obs: Mapping[str, torch.Tensor], train: bool,
                   generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
                   ) -> torch.Tensor:
        """Backbone maps of every camera as `dtype` (n_cam, C, B, h*w), from raw images or cached
        "feat/<cam>" keys. This layout makes the spatial embedding one plain bmm. Pass the
        head's dtype (`head_dtype`) to convert once, on the copy into this layout."""
        raw_names = [c for c in self.camera_names if FEATURE_PREFIX + c not in obs]
        parts: dict[str, torch.Tensor] = {}
        if raw_names:
            for c in raw_names:
                if c not in obs:
                    raise ValueError(f"observation lacks camera {c!r} (or cached {FEATURE_PREFIX + c!r})")
            imgs = torch.cat([obs[c] for c in raw_names]) if len(raw_names) > 1 else obs[raw_names[0]]
            if self.cfg.blank_images:
                imgs = torch.zeros_like(imgs)
            feats = self.backbone_features(imgs)  # ONE pass for all cameras: (R*B, C, h, w)
            r, b = len(raw_names), imgs.shape[0] // len(raw_names)
            raw = feats.reshape(r, b, feats.shape[1], -1).permute(0, 2, 1, 3)  # (R, C, B, P)
            if r == len(self.camera_names):
                return raw.to(dtype).contiguous()  # (.to() alone returns the permuted view when no cast is needed)
            parts.update(zip(raw_names, raw.unbind(0)))
        for c in self.camera_names:
            if c in parts:
                continue
            if not self.frozen:
                raise ValueError(f"cached features {FEATURE_PREFIX + c!r} need a frozen pretrained backbone")
            f = obs[FEATURE_PREFIX + c]
            if f.dim() == 5:  # (B, K, C, h, w): one shift variant per sample
                if train and f.shape[1] > 1:
                    bsz, k = f.shape[:2]
                    pick = torch.randint(k, (bsz,), generator=generator, device=f.device)
                    # Row b*K + pick[b] of the (B*K, ...) view: one index_select copies just the
                    # picked variants (a (B, K) fancy index copies them through a slower path).
                    rows = torch.arange(bsz, device=f.device).mul_(k).add_(pick)
                    f = f.reshape(bsz * k, *f.shape[2:]).index_select(0, rows)
                else:
                    f = f[:, 0]
            if f.dim() != 4 or tuple(f.shape[1:]) != self.map_shape:
                raise ValueError(f"{FEATURE_PREFIX + c!r} must be (B, {self.map_shape}) or (B, K, ...), "
                                 f"got {tuple(obs[FEATURE_PREFIX + c].shape)}")
            # Convert while contiguous (vectorised), then transpose in the target dtype: a
            # converting copy of a transposed view takes a scalar path (~10x slower on CPU), and
            # half -> bfloat16 is fastest through float32.
            if f.dtype != dtype:
                f = f.contiguous().float().to(dtype)
            parts[c] = f.flatten(2).transpose(0, 1)  # (C, B, P) view
        if not raw_names:  # all cached: one copy per camera into the final layout
            first = parts[self.camera_names[0]]
            maps = torch.empty((len(self.camera_names), *first.shape), dtype=dtype, device=first.device)
            for i, c in enumerate(self.camera_names):
                maps[i].copy_(parts[c])
            return maps
        return torch.stack([parts[c].to(dtype) for c in self.camera_names])

    def dropout_keep(self, batch_size: int, device: torch.device, generator: torch.Generator | None
                     ) -> torch.Tensor | None:
        """A 0/1 keep mask (n_cam, B, C*F) in the head's dtype for training, or None without
        dropout. Drawn from 16-bit random integers (module docstring)."""
        if self.cfg.dropout <= 0 or not self.has_cameras:
            return None
        n, width = len(self.camera_names), self.map_shape[0] * self.cfg.num_spatial_features
        count = n * batch_size * width
        # torch.randint's high bound is exclusive: [-2^63, 2^63 - 1) misses one value in 2^64.
        bits = torch.randint(-2 ** 63, 2 ** 63 - 1, (-(-count // 4),), generator=generator,
                             device=device, dtype=torch.int64)
        lanes = bits.view(torch.int16)[:count].view(n, batch_size, width)  # uniform in [-2^15, 2^15)
        threshold = round(self.cfg.dropout * 65536) - 32768
        # bool -> bfloat16 converts through a slow path; the same bytes read as uint8 do not (~2x).
        return lanes.ge(threshold).view(torch.uint8).to(self.head_dtype(device))

    def head(self, maps: torch.Tensor | None, state: torch.Tensor | None, train: bool,
             generator: torch.Generator | None = None, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Pools the maps (n_cam, C, B, P) and embeds the state into one feature vector (B, out_dim).

        In training, dropout uses `keep` (from `dropout_keep`) when given, else a fresh mask."""
        if not self.has_cameras:
            return state
        n, c, b, p = maps.shape
        f = self.cfg.num_spatial_features
        dtype = self.head_dtype(maps.device)
        # Spatial learned embeddings: out[n, b, c, f] = sum_p maps[n, c, b, p] * kernel[n, c, p, f]
        x = torch.bmm(maps.to(dtype).view(n * c, b, p), self.spatial_kernel.to(dtype).view(n * c, p, f))
        x = x.view(n, c, b, f).transpose(1, 2).reshape(n, b, c * f)  # SERL's (c, f) flattening
        scale = 1.0
        if train and self.cfg.dropout > 0:
            if keep is None:
                keep = self.dropout_keep(b, maps.device, generator)
            x = x * keep
            scale = 1.0 / (1.0 - self.cfg.dropout)  # inverted dropout's rescale, applied in float32
        # The bias add promotes the product back to float32 for LayerNorm and tanh.
        x = torch.add(self.bottleneck_b, torch.bmm(x, self.bottleneck_w.to(dtype)), alpha=scale)
        x = torch.tanh(torch.addcmul(self.ln_b, F.layer_norm(x, (x.shape[-1],)), self.ln_w))
        x = x.transpose(0, 1).reshape(b, -1)
        if self.proprio is not None:
            x = torch.cat([x, self.proprio(state)], dim=-1)
        return x

    def forward(self, obs: Mapping[str, torch.Tensor], train: bool = False,
                generator: torch.Generator | None = None) -> torch.Tensor:
        state = obs.get("state") if self.state_dim is not None else None
        if not self.has_cameras:
            return state
        maps = self.image_maps(obs, train, generator, self.head_dtype(self._device()))
        return self.head(maps, state, train, generator)

    def _device(self) -> torch.device:
        return self.spatial_kernel.device


def training_batch_keys(frame_specs: Mapping[str, tuple[tuple[int, ...], Any]]) -> tuple[list[str], list[str]]:
    """(keys, variant_keys): what a training batch needs from replay buffers holding these frame
    keys ({key: (shape, dtype)}), for robot_rl.buffers.rlpd.RLPDSampler. A camera whose backbone
    features are cached ("feat/<camera>") is sampled as its features only (the encoder then never
    reads its pixels); cached features with a variant axis (K, C, h, w) are sampled as one variant
    per row, drawn by the sampler: the training augmentation `image_maps` would otherwise draw
    after copying all K. Eval (`train=False`) on a (B, K, ...) batch still takes variant 0."""
    keys = [k for k in frame_specs if FEATURE_PREFIX + k not in frame_specs]
    variant_keys = [k for k in keys if k.startswith(FEATURE_PREFIX) and len(frame_specs[k][0]) == 4]
    return keys, variant_keys


@torch.no_grad()
def precompute_features(encoder: ObservationEncoder, images: np.ndarray | torch.Tensor, n_variants: int,
                        generator: torch.Generator | None = None, batch_size: int = 256) -> torch.Tensor:
    """Backbone features of K shift variants per image: uint8 (N, H, W, 3) -> float16 (N, K, C, h, w).

    Variant 0 is the unshifted image; variants 1..K-1 are DrQ random shifts (pad
    `encoder.cfg.augment_pad`), each drawn independently per image.
    """
    if n_variants < 1:
        raise ValueError(f"n_variants must be >= 1, got {n_variants}")
    imgs = torch.as_tensor(images)
    if imgs.dim() != 4 or imgs.shape[-1] != 3 or imgs.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {imgs.dtype} {tuple(imgs.shape)}")
    device = next(encoder.backbone.parameters()).device
    out = torch.empty((imgs.shape[0], n_variants, *encoder.map_shape), dtype=torch.float16)
    for start in range(0, imgs.shape[0], batch_size):
        chunk = imgs[start:start + batch_size].to(device)
        for k in range(n_variants):
            x = chunk if k == 0 else random_shift(chunk, encoder.cfg.augment_pad, generator)
            out[start:start + chunk.shape[0], k] = encoder.backbone(x).to(torch.float16).cpu()
    return out
