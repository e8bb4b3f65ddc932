"""SAC / RLPD with a batched critic ensemble, DrQ augmentation and HIL-SERL's grasp critic.

The whole algorithm is in this file, CleanRL-style. Defaults follow SERL / HIL-SERL, with
RLPD's ensemble and BC on expert rows, the settings that learned pick_cube (docs/benchmarks.md):

  critic   E=10 MLPs [256, 256] (LayerNorm, tanh) on [features, action]; target = min over a
           random subset of `critic_subsample_size`=2 members (REDQ), or over the whole ensemble
           y = r + discount * (1 - terminated) * min_k Q'_k(s', a'),  a' ~ pi(s')
               [ - discount * (1 - terminated) * alpha * log pi(a'|s')   if backup_entropy ]
           loss = mean over members and batch of (Q_k(s, a) - y)^2.
           Truncation (a timeout) is NOT termination: it still bootstraps.
  actor    tanh-Gaussian, maximises the MEAN Q over the ensemble: loss = E[alpha log pi - mean_k Q_k]
  alpha    learned log alpha, init 0.01, loss = alpha * (entropy - target_entropy),
           target_entropy = -|A|/2 where |A| counts the dims the actor drives
  targets  Polyak, tau 0.005, after every critic step
  UTD      `critic_actor_ratio` (HIL-SERL cta_ratio=2) gradient steps per update(): the first
           ratio-1 train the critic (and grasp critic) only, the last one trains critic, actor and
           temperature together, from the same parameters (as SERL's joint loss).
  grasp    (HIL-SERL) with `grasp_critic=True` the actor drives only the arm dims (all but the
           last), and the gripper comes from a 3-way Q head {open, stay, close} (index k <-> gripper
           action k-1), trained by Double DQN: y = r + grasp_penalty + discount * (1 - terminated)
           * Q'_g(s', argmax_k Q_g(s', k)), its own Polyak target. Acting takes the argmax;
           `grasp_epsilon` (default 0, as HIL-SERL) adds epsilon-greedy exploration when acting
           stochastically, never at deterministic (eval) acting.
  bc       `bc_weight` (default 1) * squared distance of the policy's mode to the expert's action
           on the batch rows marked `intervention` (demos, corrections), added to the actor loss.
  state    with `normalize_state` (default) obs["state"] is standardised by statistics fitted on
           the first update's batches and then frozen (robot_rl/agents/state_norm.py); they are
           part of the policy weights, so an actor process normalises the same way.
  encoder  shared by actor and critics (robot_rl/networks/encoder.py). The critic losses (Q and
           grasp) train it; the actor sees detached features. Targets use a Polyak copy of the
           encoder (a frozen backbone is shared, not copied).

API (the training loop relies on it):
    agent = SACAgent(cfg, observation_space, action_space, device="cpu", seed=0)
    action = agent.act(obs, deterministic=False)   # one obs dict, no batch dim -> float32 (A,)
    metrics = agent.update(batch)                  # -> dict[str, float]
    agent.state_dict() / agent.load_state_dict()   # full training state (robot_rl/checkpoint.py)
    agent.policy_state_dict() / load_policy_state_dict()  # what an actor process needs
The batch layout is documented in robot_rl/agents/common.py.

update(batch): `batch` is either a list of `critic_actor_ratio` minibatches (one sampled per
gradient step, as HIL-SERL does), or ONE dict of ratio * B transitions that is split into
`critic_actor_ratio` equal minibatches along dim 0. Metrics come from the last (joint) step.

Speed (CPU): the ensemble is one batched matmul per layer; critic, grasp, actor and temperature
losses share one backward pass and one fused Adam step (param groups keep the learning rates
apart); Polyak is one foreach lerp; metrics are synced to the host once per update().
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from robot_rl.agents.common import (Batch, ObservationSpec, augment_obs, check_action_space,
                                    check_batch, gripper_index, metrics_to_floats, split_batches)
from robot_rl.agents.state_norm import StateNormalizer
from robot_rl.networks.encoder import EncoderConfig, ObservationEncoder
from robot_rl.networks.mlp import MLP, EnsembleMLP
from robot_rl.networks.policy import TanhGaussianPolicy

NUM_GRASP_ACTIONS = 3  # open, stay, close


@dataclass
class SACConfig:
    discount: float = 0.97
    tau: float = 0.005
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temperature_lr: float = 3e-4
    init_temperature: float = 0.01
    target_entropy: Optional[float] = None  # None: -|A|/2 over the dims the actor drives
    backup_entropy: bool = False
    # RLPD's ensemble: 10 critics, each target the min over a random 2 (REDQ). It curbs the value
    # over-estimation that stalled 2 critics on pick_cube (docs/benchmarks.md); plain RLPD (2
    # critics, no subset, no BC) is the shipped config `plain_rlpd` (docs/configs.md).
    critic_ensemble_size: int = 10
    critic_subsample_size: Optional[int] = 2  # None: the min over the whole ensemble
    critic_actor_ratio: int = 2
    hidden_dims: tuple[int, ...] = (256, 256)
    std_min: float = 1e-5
    std_max: float = 5.0
    grasp_critic: bool = False
    grasp_hidden_dims: tuple[int, ...] = (128, 128)
    grasp_lr: float = 3e-4
    grasp_epsilon: float = 0.0
    # Behaviour cloning on expert rows: the actor loss adds bc_weight * the squared distance
    # (summed over the actor's dims) between the policy's mode and the action an expert took,
    # averaged over the batch rows marked `intervention` (scripted demos and human corrections).
    # It holds the policy near what the expert does where it acts, against the oscillation the
    # critic's gradient alone caused on pick_cube (docs/benchmarks.md). 0: plain RLPD.
    bc_weight: float = 1.0
    # The BC term also trains the image encoder (the actor's other losses still see detached
    # features): with an encoder learned from scratch, the demos' actions are a far denser signal
    # about where things are than the sparse reward the critic learns from (docs/benchmarks.md, "Pixels").
    # None (auto): on when the encoder is the small conv net learned from scratch (what `auto`
    # picks without a pretrained file), off for a pretrained or frozen backbone, as in SERL.
    bc_trains_encoder: Optional[bool] = None
    # backbone "auto": the pretrained frozen ResNet-10 when its file is set, else the CPU-viable
    # small conv net (robot_rl/networks/encoder_choice.py); the agent logs which and why.
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(backbone="auto"))
    # Standardise obs["state"] with statistics fitted on the first update's batches, then frozen
    # (robot_rl/agents/state_norm.py: why, and the trade-off).
    normalize_state: bool = True
    compile: bool = False  # torch.compile the loss computation (see the report; off by default)

    def validate(self) -> None:
        if self.critic_ensemble_size < 1:
            raise ValueError("critic_ensemble_size must be >= 1")
        if self.critic_subsample_size is not None and not 1 <= self.critic_subsample_size <= self.critic_ensemble_size:
            raise ValueError("critic_subsample_size must be in [1, critic_ensemble_size]")
        if self.critic_actor_ratio < 1:
            raise ValueError("critic_actor_ratio must be >= 1")
        if not 0.0 < self.tau <= 1.0 or not 0.0 <= self.discount <= 1.0:
            raise ValueError("tau must be in (0, 1] and discount in [0, 1]")
        if self.init_temperature <= 0:
            raise ValueError("init_temperature must be > 0")
        if not 0.0 <= self.grasp_epsilon <= 1.0:
            raise ValueError("grasp_epsilon must be in [0, 1]")
        if not (math.isfinite(self.bc_weight) and self.bc_weight >= 0.0):
            raise ValueError("bc_weight must be a finite number >= 0")


# ----------------------------------------------------------------------------- the losses
# Pure functions of tensors, so each can be checked by hand.

def critic_target(reward: torch.Tensor, terminated: torch.Tensor, discount: float,
                  next_q: torch.Tensor, next_log_prob: torch.Tensor | None = None,
                  alpha: torch.Tensor | float = 0.0) -> torch.Tensor:
    """next_q (E', B) from the target ensemble (already subsampled) -> TD target (B,)."""
    bootstrap = discount * (1.0 - terminated)
    target = reward + bootstrap * next_q.min(dim=0).values
    if next_log_prob is not None:
        target = target - bootstrap * alpha * next_log_prob
    return target


def critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """q (E, B) vs target (B,): mean squared error over members and batch."""
    return (q - target).square().mean()


def actor_loss(q_pi: torch.Tensor, log_prob: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """q_pi (E, B) of the policy's action: maximise the ensemble MEAN, minus alpha * entropy."""
    return (alpha * log_prob - q_pi.mean(dim=0)).mean()


def bc_loss(action: torch.Tensor, expert_action: torch.Tensor, expert: torch.Tensor) -> torch.Tensor:
    """action, expert_action (B, A), expert (B,) in {0, 1}: the mean over expert rows of the squared
    distance between the policy's action and the expert's (0 when no row is an expert's)."""
    per_row = (action - expert_action).square().sum(-1)
    return (per_row * expert).sum() / expert.sum().clamp(min=1.0)


def temperature_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    entropy = -log_prob.detach().mean()
    return log_alpha.exp() * (entropy - target_entropy)


def grasp_critic_target(reward: torch.Tensor, grasp_penalty: torch.Tensor, terminated: torch.Tensor,
                        discount: float, next_q_online: torch.Tensor, next_q_target: torch.Tensor
                        ) -> torch.Tensor:
    """Double DQN: the online head picks argmax_k Q(s', k), the target head values it."""
    best = next_q_online.argmax(dim=-1, keepdim=True)
    next_value = next_q_target.gather(-1, best).squeeze(-1)
    return reward + grasp_penalty + discount * (1.0 - terminated) * next_value


def grasp_critic_loss(q: torch.Tensor, action_index: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """q (B, 3), action_index (B,) in {0, 1, 2}."""
    return (q.gather(-1, action_index.unsqueeze(-1)).squeeze(-1) - target).square().mean()


# ----------------------------------------------------------------------------- the agent

class SACAgent:
    def __init__(self, cfg: SACConfig, observation_space: gym.spaces.Dict, action_space: gym.spaces.Box,
                 device: str | torch.device = "cpu", seed: int = 0):
        cfg.validate()
        self.cfg = cfg
        self.device = torch.device(device)
        self.spec = ObservationSpec.from_space(observation_space)
        self.action_dim = check_action_space(action_space)
        if cfg.grasp_critic and self.action_dim < 2:
            raise ValueError("grasp_critic needs an action with arm dims plus a last gripper dim")
        self.arm_dim = self.action_dim - 1 if cfg.grasp_critic else self.action_dim
        self.target_entropy = (cfg.target_entropy if cfg.target_entropy is not None
                               else -self.arm_dim / 2.0)

        with torch.random.fork_rng(devices=[]):  # seeded init without touching global RNG state
            torch.manual_seed(seed)
            self.encoder = ObservationEncoder(self.spec.state_dim, self.spec.camera_names,
                                              self.spec.image_shape or (128, 128, 3), cfg.encoder)
            feat = self.encoder.out_dim
            self.actor = TanhGaussianPolicy(feat, cfg.hidden_dims, self.arm_dim, cfg.std_min, cfg.std_max)
            self.critic = EnsembleMLP(cfg.critic_ensemble_size, feat + self.arm_dim, cfg.hidden_dims, 1)
            self.grasp_critic = (MLP(feat, cfg.grasp_hidden_dims, NUM_GRASP_ACTIONS)
                                 if cfg.grasp_critic else None)
        self.bc_trains_encoder = (cfg.bc_trains_encoder if cfg.bc_trains_encoder is not None else
                                  bool(self.spec.camera_names) and not self.encoder.frozen
                                  and getattr(self.encoder, "backbone_name", "") == "small_conv")
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_temperature)))
        self.state_norm = StateNormalizer(self.spec.state_dim) if cfg.normalize_state else None

        self.target_encoder = self._target_copy_of_encoder()
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.target_grasp_critic = (copy.deepcopy(self.grasp_critic).requires_grad_(False)
                                    if self.grasp_critic is not None else None)
        for m in self._networks().values():
            m.to(self.device)
        self.log_alpha.data = self.log_alpha.data.to(self.device)

        critic_params = self._trainable(self.critic, self.encoder)
        groups = [{"params": critic_params, "lr": cfg.critic_lr, "name": "critic"},
                  {"params": list(self.actor.parameters()), "lr": cfg.actor_lr, "name": "actor"},
                  {"params": [self.log_alpha], "lr": cfg.temperature_lr, "name": "temperature"}]
        if self.grasp_critic is not None:
            groups.append({"params": list(self.grasp_critic.parameters()), "lr": cfg.grasp_lr,
                           "name": "grasp_critic"})
        # One optimizer: params without a gradient in a step (the actor in critic-only steps) are skipped.
        self.optimizer = torch.optim.Adam(groups, fused=True)

        online, target = [], []
        for src, dst in ((self.critic, self.target_critic), (self.encoder, self.target_encoder),
                         (self.grasp_critic, self.target_grasp_critic)):
            if src is None:
                continue
            for (name, p), (name_t, p_t) in zip(src.named_parameters(), dst.named_parameters(remove_duplicate=False)):
                assert name == name_t
                if p.requires_grad:
                    online.append(p)
                    target.append(p_t)
        self._polyak_online, self._polyak_target = online, target

        self.update_generator = torch.Generator(self.device).manual_seed(seed + 1)
        self.act_generator = torch.Generator(self.device).manual_seed(seed + 2)
        self.critic_steps = 0
        self.actor_steps = 0
        if cfg.compile:
            self._head_losses = torch.compile(self._head_losses, dynamic=False)

    # -- construction helpers
    def _target_copy_of_encoder(self) -> ObservationEncoder:
        backbone = self.encoder.backbone
        if self.encoder.frozen:  # share the frozen backbone instead of copying (and Polyak-ing) it
            self.encoder.backbone = None
        target = copy.deepcopy(self.encoder)
        self.encoder.backbone = backbone
        if self.encoder.frozen:
            target.backbone = backbone
        return target.requires_grad_(False)

    @staticmethod
    def _trainable(*modules: nn.Module) -> list[nn.Parameter]:
        return [p for m in modules for p in m.parameters() if p.requires_grad]

    def _networks(self) -> dict[str, nn.Module]:
        mods = {"encoder": self.encoder, "actor": self.actor, "critic": self.critic,
                "target_encoder": self.target_encoder, "target_critic": self.target_critic}
        if self.grasp_critic is not None:
            mods["grasp_critic"] = self.grasp_critic
            mods["target_grasp_critic"] = self.target_grasp_critic
        if self.state_norm is not None:
            mods["state_norm"] = self.state_norm
        return mods

    def _normalized(self, obs: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        return obs if self.state_norm is None else self.state_norm(obs)

    # -- acting
    def act(self, obs: Mapping[str, np.ndarray], deterministic: bool = False) -> np.ndarray:
        """One observation (no batch dim) -> float32 action (action_dim,) in [-1, 1]."""
        x = self._normalized(self.spec.single_to_tensors(obs, self.device))
        with torch.inference_mode():
            features = self.encoder(x, train=False)
            action = self.actor.act(features, deterministic, self.act_generator)
            if self.grasp_critic is not None:
                k = self.grasp_critic(features).argmax(dim=-1)
                if not deterministic and self.cfg.grasp_epsilon > 0:
                    explore = torch.rand(k.shape, generator=self.act_generator, device=self.device) < self.cfg.grasp_epsilon
                    random_k = torch.randint(NUM_GRASP_ACTIONS, k.shape, generator=self.act_generator, device=self.device)
                    k = torch.where(explore, random_k, k)
                action = torch.cat([action, (k - 1).to(action.dtype).unsqueeze(-1)], dim=-1)
        return action[0].cpu().numpy().astype(np.float32)

    # -- learning
    def update(self, batch: Batch | Sequence[Batch]) -> dict[str, float]:
        """One UTD cycle: critic_actor_ratio - 1 critic-only steps, then one joint step."""
        batches = split_batches(batch, self.cfg.critic_actor_ratio)
        needs = (["next_obs", "reward", "terminated"] + (["grasp_penalty"] if self.grasp_critic is not None else [])
                 + (["intervention"] if self.cfg.bc_weight > 0 else []))
        for b in batches:
            check_batch(b, self.spec, self.action_dim, needs)
        if self.state_norm is not None and not self.state_norm.is_fitted and self.spec.state_dim:
            self.state_norm.fit(torch.cat([b[k]["state"] for b in batches for k in ("obs", "next_obs")]))
        metrics: dict[str, torch.Tensor] = {}
        for i, b in enumerate(batches):
            metrics = self._gradient_step(b, update_actor=i == len(batches) - 1)
        return metrics_to_floats(metrics)

    def _gradient_step(self, batch: Batch, update_actor: bool) -> dict[str, torch.Tensor]:
        loss, metrics = self._compute_losses(batch, update_actor)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            torch._foreach_lerp_(self._polyak_target, self._polyak_online, self.cfg.tau)
        self.critic_steps += 1
        self.actor_steps += int(update_actor)
        return metrics

    def _encode(self, obs: Mapping[str, torch.Tensor], next_obs: Mapping[str, torch.Tensor],
                g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training features of obs (online, with autograd), and of next_obs (online and target,
        without). A frozen backbone's maps of next_obs are made once for both heads.

        Dropout: one mask for obs (online) and next_obs (target), as SERL's critic loss passes the
        same dropout key to both, and a second for next_obs (online), which samples the next
        action. It saves a third mask; masks are a visible share of a CPU update."""
        enc, tgt = self.encoder, self.target_encoder
        if not enc.has_cameras:  # the identity on "state"
            return enc(obs), enc(next_obs), tgt(next_obs)
        dtype = enc.head_dtype(self.device)
        b = next(iter(obs.values())).shape[0]
        shared_keep = enc.dropout_keep(b, self.device, g)
        features = enc.head(enc.image_maps(obs, True, g, dtype), obs.get("state"), True, g, shared_keep)
        with torch.no_grad():
            state = next_obs.get("state")
            maps = enc.image_maps(next_obs, True, g, dtype)
            target_maps = maps if enc.frozen else tgt.image_maps(next_obs, True, g, dtype)
            next_features = enc.head(maps, state, True, g, enc.dropout_keep(b, self.device, g))
            next_target_features = tgt.head(target_maps, state, True, g, shared_keep)
        return features, next_features, next_target_features

    def _compute_losses(self, batch: Batch, update_actor: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eager part: augmentation, encoders and every random draw; then the pure loss math."""
        cfg, g = self.cfg, self.update_generator
        cams, pad = self.spec.camera_names, cfg.encoder.augment_pad
        obs = augment_obs(self._normalized(batch["obs"]), cams, pad, g)
        next_obs = augment_obs(self._normalized(batch["next_obs"]), cams, pad, g)
        features, next_features, next_target_features = self._encode(obs, next_obs, g)
        b = features.shape[0]
        next_noise = torch.randn((b, self.arm_dim), generator=g, device=self.device)
        subset = None
        if cfg.critic_subsample_size is not None and cfg.critic_subsample_size < cfg.critic_ensemble_size:
            subset = torch.randperm(cfg.critic_ensemble_size, generator=g, device=self.device)[:cfg.critic_subsample_size]
        actor_noise = torch.randn((b, self.arm_dim), generator=g, device=self.device) if update_actor else None
        return self._head_losses(features, next_features, next_target_features, batch["action"],
                                 batch["reward"], batch["terminated"], batch.get("grasp_penalty"),
                                 next_noise, subset, actor_noise, batch.get("intervention"))

    def _head_losses(self, features: torch.Tensor, next_features: torch.Tensor,
                     next_target_features: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
                     terminated: torch.Tensor, grasp_penalty: torch.Tensor | None,
                     next_noise: torch.Tensor, subset: torch.Tensor | None, actor_noise: torch.Tensor | None,
                     intervention: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Critic (+ grasp critic) loss, and with `actor_noise` also actor and temperature losses
        (and the BC loss on the `intervention` rows when bc_weight > 0).
        No RNG inside: this is the part `compile=True` hands to torch.compile."""
        cfg = self.cfg
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            next_action, next_log_prob = self.actor.sample(next_features, noise=next_noise)
            # Only the REDQ subset of target members is evaluated (all of them without a subset).
            next_q = self.target_critic(torch.cat([next_target_features, next_action], -1),
                                        members=subset).squeeze(-1)
            target = critic_target(reward, terminated, cfg.discount, next_q,
                                   next_log_prob if cfg.backup_entropy else None, alpha)

        q = self.critic(torch.cat([features, action[:, :self.arm_dim]], -1)).squeeze(-1)
        loss = critic_loss(q, target)
        metrics = {"critic_loss": loss.detach(), "q_mean": q.detach().mean(), "target_q_mean": target.mean()}

        if self.grasp_critic is not None:
            with torch.no_grad():
                grasp_target = grasp_critic_target(
                    reward, grasp_penalty, terminated, cfg.discount,
                    self.grasp_critic(next_features), self.target_grasp_critic(next_target_features))
            g_loss = grasp_critic_loss(self.grasp_critic(features), gripper_index(action[:, -1]), grasp_target)
            loss = loss + g_loss
            metrics["grasp_critic_loss"] = g_loss.detach()

        if actor_noise is not None:
            actor_features = features.detach()  # the actor loss never trains the encoder
            pi_action, log_prob = self.actor.sample(actor_features, noise=actor_noise)
            q_pi = self.critic(torch.cat([actor_features, pi_action], -1), detach_params=True).squeeze(-1)
            a_loss = actor_loss(q_pi, log_prob, alpha)
            t_loss = temperature_loss(self.log_alpha, log_prob, self.target_entropy)
            loss = loss + a_loss + t_loss
            metrics.update(actor_loss=a_loss.detach(), temperature_loss=t_loss.detach(),
                           entropy=-log_prob.detach().mean(), temperature=alpha)
            if cfg.bc_weight > 0:
                # On the mode (the deployed action), not a sample: cloning the sampled action also
                # shrinks the spread, and on pick_cube it learned slower (docs/benchmarks.md).
                bc_features = features if self.bc_trains_encoder else actor_features
                b_loss = bc_loss(self.actor.mode(bc_features), action[:, :self.arm_dim], intervention)
                loss = loss + cfg.bc_weight * b_loss
                metrics["bc_loss"] = b_loss.detach()
        return loss, metrics

    # -- weights
    def policy_state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """What an actor process needs to act: encoder, actor, grasp critic (for weight sync)."""
        out = {"encoder": self.encoder.state_dict(), "actor": self.actor.state_dict()}
        if self.grasp_critic is not None:
            out["grasp_critic"] = self.grasp_critic.state_dict()
        if self.state_norm is not None:
            out["state_norm"] = self.state_norm.state_dict()
        return out

    def load_policy_state_dict(self, state: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.actor.load_state_dict(state["actor"])
        if self.grasp_critic is not None:
            self.grasp_critic.load_state_dict(state["grasp_critic"])
        if self.state_norm is not None:
            self.state_norm.load_state_dict(state["state_norm"])

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume training exactly: nets, targets, temperature, optimizer,
        counters and RNG states. Nested dicts of tensors and JSON-able scalars."""
        modules = {}
        for name, m in self._networks().items():
            sd = m.state_dict()
            if name == "target_encoder" and self.encoder.frozen:  # shared with the online encoder
                sd = {k: v for k, v in sd.items() if not k.startswith("backbone.")}
            modules[name] = sd
        return {
            "modules": modules,
            "log_alpha": self.log_alpha.detach().clone(),
            "optimizer": self.optimizer.state_dict(),
            "counters": {"critic_steps": self.critic_steps, "actor_steps": self.actor_steps},
            "rng": {"update": self.update_generator.get_state(), "act": self.act_generator.get_state()},
            "config": dataclasses.asdict(self.cfg),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        modules = state["modules"]
        expected = set(self._networks())
        if set(modules) != expected:
            raise ValueError(f"state has modules {sorted(modules)}, this agent has {sorted(expected)}")
        for name, m in self._networks().items():
            strict = not (name == "target_encoder" and self.encoder.frozen)
            missing, unexpected = m.load_state_dict(modules[name], strict=strict)
            if unexpected or any(not k.startswith("backbone.") for k in missing):
                raise ValueError(f"{name}: missing {missing}, unexpected {unexpected}")
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.critic_steps = int(state["counters"]["critic_steps"])
        self.actor_steps = int(state["counters"]["actor_steps"])
        self.update_generator.set_state(state["rng"]["update"])
        self.act_generator.set_state(state["rng"]["act"])
