"""Per-dimension normalisation of obs["state"], fitted once from the first training batch.

Why: in state mode the raw state goes straight into the MLPs, and its parts have very
different units and scales: the cube's offset from the TCP that a grasp depends on varies by
a few centimetres (std ~0.01-0.05 in metres), while contact forces swing by newtons (std
~0.4). With PyTorch's default init the first layer (before its LayerNorm) is then dominated
by the large dims, and the few-millimetre precision a grasp needs must first be learned as a
~50x larger weight. Standardising the state puts every dim on one scale from the start.

Fitted once, then frozen: the first update's batches are half demos, which cover the whole
task (approach, grasp, lift), so their statistics are representative; a normaliser that kept
moving would make the critic's inputs drift under it. The statistics are buffers, so they
travel with the checkpoint and with the policy weights an actor process receives.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn


class StateNormalizer(nn.Module):
    """(state - mean) / max(std, min_std), clipped to +-clip; the identity until fitted."""

    def __init__(self, state_dim: int | None, min_std: float = 1e-2, clip: float = 10.0):
        super().__init__()
        if min_std <= 0 or clip <= 0:
            raise ValueError(f"min_std and clip must be > 0, got {min_std}, {clip}")
        self.state_dim, self.min_std, self.clip = state_dim, float(min_std), float(clip)
        d = state_dim or 0
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("std", torch.ones(d))
        # (1,), not a 0-d tensor: the weights transport carries arrays with at least one dim.
        self.register_buffer("fitted", torch.zeros(1, dtype=torch.bool))
        self.is_fitted = False  # host copy of `fitted`: forward() must not sync with a GPU

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self.is_fitted = bool(self.fitted)

    @torch.no_grad()
    def fit(self, states: torch.Tensor) -> None:
        """Sets the statistics from (N, D) states, once; later calls do nothing."""
        if self.state_dim is None or self.is_fitted:
            return
        states = states.reshape(-1, self.state_dim).float()
        if states.shape[0] < 2:
            raise ValueError(f"fitting the state normaliser needs >= 2 states, got {states.shape[0]}")
        if not torch.isfinite(states).all():
            raise ValueError("fitting the state normaliser: the states hold non-finite values")
        self.mean.copy_(states.mean(0))
        self.std.copy_(states.std(0).clamp_min(self.min_std))
        self.fitted.fill_(True)
        self.is_fitted = True

    def forward(self, obs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = dict(obs)
        if self.is_fitted and "state" in obs:
            out["state"] = ((obs["state"] - self.mean) / self.std).clamp(-self.clip, self.clip)
        return out
