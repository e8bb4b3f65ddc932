"""ResNet-10 with GroupNorm: SERL's `resnetv1-10` backbone, in PyTorch.

Layout (input 128x128 RGB uint8, HWC):
  ImageNet normalisation -> conv 7x7/2 (64) -> GroupNorm -> ReLU -> maxpool 3x3/2
  -> 4 stages of one basic block each, 64, 128, 256, 512 channels (stride 2 from stage 2 on)
  -> feature map (512, 4, 4).  No pooling here: the encoder pools with learned spatial embeddings.

Details that match SERL/Flax exactly, so that its published `resnet10_params.pkl` loads and
gives the same features (see robot_rl/networks/convert_serl_resnet.py):
- GroupNorm with 4 groups, eps 1e-5 (SERL `MyGroupNorm(num_groups=4, epsilon=1e-5)`), every conv bias-free;
- Flax's "SAME" padding: a stride-2 3x3 conv or 3x3 max pool on an even size pads 0 before and 1
  after (PyTorch's symmetric padding=1 would shift the sampling grid by one pixel);
- a block's shortcut is conv 1x1/stride + GroupNorm when its shape changes.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GROUPS = 4


def _same_pad_stride2(x: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    # Flax "SAME" for a 3-wide window with stride 2 on an even size: 0 before, 1 after.
    return F.pad(x, (0, 1, 0, 1), value=value)


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, padding=1 if stride == 1 else 0, bias=False)
        self.norm1 = nn.GroupNorm(GROUPS, out_ch, eps=1e-5)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(GROUPS, out_ch, eps=1e-5)
        self.proj_conv: nn.Conv2d | None = None
        self.proj_norm: nn.GroupNorm | None = None
        if stride != 1 or in_ch != out_ch:
            self.proj_conv = nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)
            self.proj_norm = nn.GroupNorm(GROUPS, out_ch, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(_same_pad_stride2(x) if self.stride == 2 else x)
        y = F.relu(self.norm1(y))
        y = self.norm2(self.conv2(y))
        shortcut = x if self.proj_conv is None else self.proj_norm(self.proj_conv(x))
        return F.relu(shortcut + y)


class ResNet10(nn.Module):
    """uint8 images (B, H, W, 3) -> float feature maps (B, 512, H/32, W/32)."""

    out_channels = 512

    def __init__(self):
        super().__init__()
        self.conv_init = nn.Conv2d(3, 64, 7, 2, padding=3, bias=False)
        self.norm_init = nn.GroupNorm(GROUPS, 64, eps=1e-5)
        widths = (64, 128, 256, 512)
        blocks, in_ch = [], 64
        for i, w in enumerate(widths):
            blocks.append(BasicBlock(in_ch, w, stride=1 if i == 0 else 2))
            in_ch = w
        self.blocks = nn.ModuleList(blocks)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # SERL: kaiming_normal (fan_in, gain sqrt(2))
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        std = torch.tensor(IMAGENET_STD)
        # x/255 normalised as (x/255 - mean)/std = x * scale + shift, one fused op.
        self.register_buffer("scale", (1.0 / (255.0 * std)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", (-torch.tensor(IMAGENET_MEAN) / std).view(1, 3, 1, 1),
                             persistent=False)
        self.to(memory_format=torch.channels_last)

    @staticmethod
    def output_shape(height: int, width: int) -> tuple[int, int, int]:
        for _ in range(5):  # conv_init, maxpool, three stride-2 stages: each halves (rounding up)
            height, width = (height + 1) // 2, (width + 1) // 2
        return ResNet10.out_channels, height, width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[-1] != 3:
            raise ValueError(f"ResNet10 expects images (B, H, W, 3), got {tuple(images.shape)}")
        # HWC -> NCHW view is already channels_last in memory: no copy.
        x = images.permute(0, 3, 1, 2).to(self.scale.dtype)
        x = torch.addcmul(self.shift, x, self.scale)
        x = F.relu(self.norm_init(self.conv_init(x)))
        x = F.max_pool2d(_same_pad_stride2(x, float("-inf")), 3, 2)
        for block in self.blocks:
            x = block(x)
        return x


def save_backbone_weights(backbone: ResNet10, path: str | Path) -> None:
    """Writes the backbone's parameters as the safetensors file load_backbone_weights reads
    (safetensors refuses non-contiguous tensors, e.g. a conv weight after a layout change)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}, str(path))


def load_backbone_weights(backbone: ResNet10, path: str | Path) -> None:
    """Loads a safetensors file with exactly ResNet10's parameter names and shapes.

    Reads only the local file (no download). A missing file, a missing/extra key, a wrong shape
    or a non-finite value raises ValueError naming it.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"pretrained backbone file {str(path)!r} does not exist")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"cannot read pretrained backbone {str(path)!r}: {e}") from None
    own = backbone.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing or extra:
        raise ValueError(f"{path}: missing keys {missing}, unexpected keys {extra}")
    for k, v in tensors.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"{path}: {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
        if not torch.isfinite(v).all():
            raise ValueError(f"{path}: {k} holds non-finite values")
    backbone.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()})
    backbone.to(memory_format=torch.channels_last)
    log.info("loaded pretrained ResNet-10 backbone from %s", path)
