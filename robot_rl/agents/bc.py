"""Behaviour cloning baseline: the SAC agent's encoder and tanh-Gaussian actor, trained to
reproduce the demonstrated actions. Same act()/update()/state_dict() API as SACAgent.

loss "mse" (default): squared error of the deterministic action tanh(mean) to the demo action;
robust to demo actions sitting exactly at +-1 (the gripper commands).
loss "nll" (SERL's BC): negative log-likelihood of the demo action under the tanh-Gaussian,
with the action clipped to +-(1 - 1e-4) so atanh stays finite.
Here the encoder is trained by the BC loss (there is no critic), with the same DrQ augmentation.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch

from robot_rl.agents.common import (Batch, ObservationSpec, augment_obs, check_action_space,
                                    check_batch, metrics_to_floats)
from robot_rl.networks.encoder import EncoderConfig, ObservationEncoder
from robot_rl.networks.policy import TanhGaussianPolicy, tanh_gaussian_log_prob


@dataclass
class BCConfig:
    lr: float = 3e-4
    hidden_dims: tuple[int, ...] = (256, 256)
    loss: Literal["mse", "nll"] = "mse"
    std_min: float = 1e-5
    std_max: float = 5.0
    encoder: EncoderConfig = field(default_factory=EncoderConfig)


class BCAgent:
    def __init__(self, cfg: BCConfig, observation_space: gym.spaces.Dict, action_space: gym.spaces.Box,
                 device: str | torch.device = "cpu", seed: int = 0):
        if cfg.loss not in ("mse", "nll"):
            raise ValueError(f"BCConfig.loss must be 'mse' or 'nll', got {cfg.loss!r}")
        self.cfg = cfg
        self.device = torch.device(device)
        self.spec = ObservationSpec.from_space(observation_space)
        self.action_dim = check_action_space(action_space)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.encoder = ObservationEncoder(self.spec.state_dim, self.spec.camera_names,
                                              self.spec.image_shape or (128, 128, 3), cfg.encoder)
            self.actor = TanhGaussianPolicy(self.encoder.out_dim, cfg.hidden_dims, self.action_dim,
                                            cfg.std_min, cfg.std_max)
        self.encoder.to(self.device)
        self.actor.to(self.device)
        params = [p for m in (self.encoder, self.actor) for p in m.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr, fused=True)
        self.update_generator = torch.Generator(self.device).manual_seed(seed + 1)
        self.act_generator = torch.Generator(self.device).manual_seed(seed + 2)
        self.steps = 0

    def act(self, obs: Mapping[str, np.ndarray], deterministic: bool = False) -> np.ndarray:
        x = self.spec.single_to_tensors(obs, self.device)
        with torch.inference_mode():
            features = self.encoder(x, train=False)
            action = self.actor.act(features, deterministic, self.act_generator)
        return action[0].cpu().numpy().astype(np.float32)

    def update(self, batch: Batch | Sequence[Batch]) -> dict[str, float]:
        """One gradient step per batch (a list gives several); needs only "obs" and "action"."""
        batches = list(batch) if isinstance(batch, (list, tuple)) else [batch]
        metrics: dict[str, torch.Tensor] = {}
        for b in batches:
            check_batch(b, self.spec, self.action_dim, needs=())
            metrics = self._gradient_step(b)
        return metrics_to_floats(metrics)

    def _gradient_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        g = self.update_generator
        obs = augment_obs(batch["obs"], self.spec.camera_names, self.cfg.encoder.augment_pad, g)
        features = self.encoder(obs, train=True, generator=g)
        mean, log_std = self.actor(features)
        target = batch["action"]
        mse = (torch.tanh(mean) - target).square().sum(-1).mean()
        if self.cfg.loss == "mse":
            loss = mse
        else:
            limit = 1.0 - 1e-4
            pre_tanh = torch.atanh(target.clamp(-limit, limit))
            loss = -tanh_gaussian_log_prob(pre_tanh, mean, log_std).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        return {"bc_loss": loss.detach(), "action_mse": mse.detach()}

    def policy_state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"encoder": self.encoder.state_dict(), "actor": self.actor.state_dict()}

    def load_policy_state_dict(self, state: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.actor.load_state_dict(state["actor"])

    def state_dict(self) -> dict[str, Any]:
        return {"modules": {"encoder": self.encoder.state_dict(), "actor": self.actor.state_dict()},
                "optimizer": self.optimizer.state_dict(),
                "counters": {"steps": self.steps},
                "rng": {"update": self.update_generator.get_state(), "act": self.act_generator.get_state()},
                "config": dataclasses.asdict(self.cfg)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.encoder.load_state_dict(state["modules"]["encoder"])
        self.actor.load_state_dict(state["modules"]["actor"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = int(state["counters"]["steps"])
        self.update_generator.set_state(state["rng"]["update"])
        self.act_generator.set_state(state["rng"]["act"])
