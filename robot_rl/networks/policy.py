"""Tanh-squashed diagonal Gaussian policy (SERL: std_parameterization="exp", std in [1e-5, 5])."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from robot_rl.networks.mlp import MLP

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)


def tanh_gaussian_log_prob(pre_tanh: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log pi(tanh(u)) for u ~ N(mean, exp(log_std)), summed over the last dim.

    The tanh change of variables subtracts log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)),
    written this way because it stays finite for large |u|.
    """
    z = (pre_tanh - mean) * torch.exp(-log_std)
    normal = -0.5 * z.square() - log_std - _HALF_LOG_2PI
    correction = 2.0 * (_LOG_2 - pre_tanh - F.softplus(-2.0 * pre_tanh))
    return (normal - correction).sum(-1)


class TanhGaussianPolicy(nn.Module):
    def __init__(self, in_dim: int, hidden_dims: Sequence[int], action_dim: int,
                 std_min: float = 1e-5, std_max: float = 5.0):
        super().__init__()
        self.trunk = MLP(in_dim, hidden_dims, None)
        self.head = nn.Linear(self.trunk.out_dim, 2 * action_dim)
        self.action_dim = action_dim
        self.log_std_min = math.log(std_min)
        self.log_std_max = math.log(std_max)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the pre-tanh mean and the clipped log std."""
        mean, log_std = self.head(self.trunk(features)).chunk(2, dim=-1)
        return mean, log_std.clamp(self.log_std_min, self.log_std_max)

    def sample(self, features: torch.Tensor, generator: torch.Generator | None = None,
               noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action in (-1, 1) and its log-probability.

        `noise` (standard normal, shaped like the action) may be drawn by the caller, which keeps
        this function free of RNG state (so torch.compile can trace it); otherwise it is drawn
        from `generator`.
        """
        mean, log_std = self(features)
        if noise is None:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        pre_tanh = torch.addcmul(mean, noise, log_std.exp())
        # log N(u; mean, std) simplifies to -noise^2/2 - log_std - log(2pi)/2 with u = mean + std*noise.
        normal = -0.5 * noise.square() - log_std - _HALF_LOG_2PI
        correction = 2.0 * (_LOG_2 - pre_tanh - F.softplus(-2.0 * pre_tanh))
        return torch.tanh(pre_tanh), (normal - correction).sum(-1)

    def mode(self, features: torch.Tensor) -> torch.Tensor:
        mean, _ = self(features)
        return torch.tanh(mean)

    def act(self, features: torch.Tensor, deterministic: bool,
            generator: torch.Generator | None = None) -> torch.Tensor:
        """The action an agent takes: the mode when deterministic (evaluation), else a sample."""
        return self.mode(features) if deterministic else self.sample(features, generator)[0]
