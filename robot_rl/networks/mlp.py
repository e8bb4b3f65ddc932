"""MLPs in SERL's style: Dense -> LayerNorm -> tanh per hidden layer.

Initialisation is PyTorch's Linear default (weights and biases uniform in ±1/sqrt(fan_in)),
not SERL's Xavier-uniform with zero biases. With Xavier the freshly initialised critics put
Q values of about ±1.4 on unseen actions; the actor chases them and the critics bootstrap
from them: on the point_reach task (returns in [0, 1]) Q rose to ~2.4 and 2 of 2 seeds failed
at 2k steps, against Q ~0.8 and 2 of 2 seeds at 80-90% success with this initialisation.

`EnsembleMLP` is E independent MLPs evaluated as ONE batched computation: each layer keeps
its weights stacked as (E, in, out) and runs a single `baddbmm`, so an ensemble of 10 costs
about the same Python/dispatch overhead as an ensemble of 2 (only the matrix work grows).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def default_init_(w: torch.Tensor, b: torch.Tensor | None, fan_in: int) -> None:
    """PyTorch's nn.Linear initialisation, for stacked (ensemble) weights too."""
    bound = fan_in ** -0.5
    with torch.no_grad():
        w.uniform_(-bound, bound)
        if b is not None:
            b.uniform_(-bound, bound)


class MLP(nn.Sequential):
    """[Linear -> LayerNorm -> tanh] per hidden dim, then a plain Linear to `out_dim`.

    out_dim=None leaves the last hidden activation as the output (SERL's activate_final=True).
    """

    def __init__(self, in_dim: int, hidden_dims: Sequence[int], out_dim: int | None,
                 layer_norm: bool = True):
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden_dims:
            layers.append(nn.Linear(d, h))
            if layer_norm:
                layers.append(nn.LayerNorm(h))
            layers.append(nn.Tanh())
            d = h
        if out_dim is not None:
            layers.append(nn.Linear(d, out_dim))
            d = out_dim
        super().__init__(*layers)
        self.out_dim = d
        for m in self.modules():
            if isinstance(m, nn.Linear):
                default_init_(m.weight, m.bias, m.in_features)


class EnsembleMLP(nn.Module):
    """E MLPs with identical shapes, computed together.

    forward(x) takes x of shape (B, in) (shared by all members) or (E, B, in), and returns
    (E, B, out). `detach_params=True` evaluates with the weights cut from autograd, so a loss
    through it trains only the *inputs* (the actor loss differentiates Q w.r.t. the action
    without touching the critic).
    """

    def __init__(self, ensemble_size: int, in_dim: int, hidden_dims: Sequence[int], out_dim: int,
                 layer_norm: bool = True):
        super().__init__()
        if ensemble_size < 1:
            raise ValueError(f"ensemble_size must be >= 1, got {ensemble_size}")
        self.ensemble_size = ensemble_size
        self.layer_norm = layer_norm
        self.dims = [in_dim, *hidden_dims, out_dim]
        e = ensemble_size
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.ln_weights = nn.ParameterList()
        self.ln_biases = nn.ParameterList()
        for i, (d_in, d_out) in enumerate(zip(self.dims[:-1], self.dims[1:])):
            w, b = torch.empty(e, d_in, d_out), torch.empty(e, 1, d_out)
            default_init_(w, b, d_in)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))
            hidden = i < len(self.dims) - 2
            if hidden and layer_norm:
                self.ln_weights.append(nn.Parameter(torch.ones(e, 1, d_out)))
                self.ln_biases.append(nn.Parameter(torch.zeros(e, 1, d_out)))

    def forward(self, x: torch.Tensor, detach_params: bool = False,
                members: torch.Tensor | None = None) -> torch.Tensor:
        """`members` (indices) evaluates only those members, e.g. REDQ's random target subset:
        their weights are gathered first, so unused members cost no matrix work."""
        e = self.ensemble_size if members is None else members.shape[0]
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(e, *x.shape)
        elif x.dim() != 3 or x.shape[0] != e:
            raise ValueError(f"EnsembleMLP expects (B, in) or ({e}, B, in), got {tuple(x.shape)}")
        n_layers = len(self.weights)
        for i in range(n_layers):
            w, b = self.weights[i], self.biases[i]
            if members is not None:
                w, b = w.index_select(0, members), b.index_select(0, members)
            if detach_params:
                w, b = w.detach(), b.detach()
            x = torch.baddbmm(b, x, w)
            if i < n_layers - 1:
                if self.layer_norm:
                    g, beta = self.ln_weights[i], self.ln_biases[i]
                    if members is not None:
                        g, beta = g.index_select(0, members), beta.index_select(0, members)
                    if detach_params:
                        g, beta = g.detach(), beta.detach()
                    x = torch.addcmul(beta, F.layer_norm(x, (x.shape[-1],)), g)
                x = torch.tanh(x)
        return x

    def member_forward(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Member k alone, layer by layer with F.linear: the looped reference for tests."""
        n_layers = len(self.weights)
        for i in range(n_layers):
            x = F.linear(x, self.weights[i][k].T, self.biases[i][k, 0])
            if i < n_layers - 1:
                if self.layer_norm:
                    x = F.layer_norm(x, (x.shape[-1],), self.ln_weights[i][k, 0], self.ln_biases[i][k, 0])
                x = torch.tanh(x)
        return x
