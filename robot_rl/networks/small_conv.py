"""A small conv backbone trained end to end at low resolution: the CPU-viable image encoder.

SERL's `SmallEncoder` / DrQ's encoder, shrunk for a 2-core CPU: the image is first averaged
down to `resolution` x `resolution` (64 by default; area averaging, so no aliasing), then

    x/255 - 0.5 -> conv 3x3/2 (32) ReLU -> conv 3x3/2 (32) ReLU -> conv 3x3/1 (32) ReLU
    -> feature map (32, resolution/4, resolution/4)

The map goes to the same head as ResNet-10's (learned spatial embeddings, Linear 256, LayerNorm,
tanh; robot_rl/networks/encoder.py), which keeps where things are in the image: what a policy
that must find an object needs. ~11 MFLOP per 64x64 image, ~100x less than ResNet-10 at
128x128, so the critic loss can train it on a CPU (figures: docs/benchmarks.md, "Pixels").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SmallConv(nn.Module):
    """uint8 images (B, H, W, 3) -> float feature maps (B, 32, resolution/4, resolution/4)."""

    out_channels = 32

    def __init__(self, resolution: int = 64, channels: int = 32):
        super().__init__()
        if resolution < 8 or resolution % 4:
            raise ValueError(f"small_conv resolution must be a multiple of 4 and >= 8, got {resolution}")
        self.resolution = resolution
        self.out_channels = channels
        self.convs = nn.ModuleList([nn.Conv2d(3, channels, 3, 2, padding=1),
                                    nn.Conv2d(channels, channels, 3, 2, padding=1),
                                    nn.Conv2d(channels, channels, 3, 1, padding=1)])
        for conv in self.convs:  # DrQ / SERL: orthogonal-ish init with ReLU gain; Kaiming is close
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(conv.bias)

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        del height, width  # the input is always resized to resolution x resolution first
        side = self.resolution // 4
        return self.out_channels, side, side

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[-1] != 3:
            raise ValueError(f"SmallConv expects images (B, H, W, 3), got {tuple(images.shape)}")
        x = images.permute(0, 3, 1, 2).float()
        if x.shape[-2:] != (self.resolution, self.resolution):
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="area")
        x = x * (1.0 / 255.0) - 0.5
        for conv in self.convs:
            x = F.relu(conv(x))
        return x
