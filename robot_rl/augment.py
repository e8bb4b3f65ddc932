"""DrQ random shift: pad each image by `pad` pixels with replicate borders, crop back at a
random offset. One offset per sample, drawn independently.

Replicate padding followed by a crop equals gathering with clamped indices:
    out[b, i, j] = img[b, clamp(i + dy_b, 0, H-1), clamp(j + dx_b, 0, W-1)],  dy_b, dx_b in [-pad, pad]
so the whole batch is one advanced-indexing gather, on uint8 directly, with no padded copy
and no Python loop over the batch.
"""
from __future__ import annotations

import torch


def random_shift(images: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None,
                 shifts: torch.Tensor | None = None) -> torch.Tensor:
    """images (B, H, W, C) any dtype -> same shape, each sample shifted by its own (dy, dx).

    `shifts` (B, 2) integer (dy, dx) in [-pad, pad] may be given (tests, reproducibility);
    otherwise they are drawn uniformly with `generator`.
    """
    if images.dim() != 4:
        raise ValueError(f"random_shift expects (B, H, W, C), got {tuple(images.shape)}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    b, h, w, _ = images.shape
    device = images.device
    if shifts is None:
        shifts = torch.randint(-pad, pad + 1, (b, 2), generator=generator, device=device)
    elif shifts.shape != (b, 2):
        raise ValueError(f"shifts must be ({b}, 2), got {tuple(shifts.shape)}")
    rows = (torch.arange(h, device=device) + shifts[:, :1]).clamp_(0, h - 1)  # (B, H)
    cols = (torch.arange(w, device=device) + shifts[:, 1:]).clamp_(0, w - 1)  # (B, W)
    batch = torch.arange(b, device=device).view(b, 1, 1)
    return images[batch, rows.unsqueeze(2), cols.unsqueeze(1)]
