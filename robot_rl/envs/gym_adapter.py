"""Any gymnasium env as a training env: `robot-rl train --env package.module:make_env`.

`TrainConfig.env` names the env: "package.module:factory" (a callable returning a gymnasium.Env,
called with `gym.kwargs`), or a registered gymnasium id ("CartPole-v1", or "package.module:Id-v0",
which gymnasium imports first). The adapter below turns that env into what the agent takes:

  observation  a dict {"state": float32 (D,), <camera>: uint8 (H, W, 3), ...}:
               - a 1-D (or any numeric) Box            -> "state" (flattened)
               - a uint8 image Box (H, W, 3)/(3, H, W) -> the camera "pixels"
               - a Dict: image keys become cameras under their own names, every other key is
                 flattened and concatenated (in `state_keys` order, or the space's) into "state".
               An image is a uint8 Box of 3 dims with 3 channels, last (image_layout "hwc") or
               first ("chw", transposed here). With obs "state" the images are left out; with
               obs "pixels" there must be at least one.
  action       a 1-D Box with finite bounds; the agent acts in [-1, 1], rescaled here to [low, high].
  success      info[`success_key`] (default "success"; gymnasium-robotics says "is_success"),
               as info["success"], which evaluation counts.
  episodes     must end: the env's own TimeLimit, or `max_episode_steps` here.
  demos        from the run's demo_dataset, or from `gym.expert` ("package.module:callable",
               called as callable(env) on the unwrapped user env; it returns a policy: a callable
               obs -> action or an object with act(obs), seeing the env's OWN observations and
               giving actions in the env's own units). With neither, training starts with no demos.

Anything that does not fit raises GymEnvError naming the key, the space and what is allowed.
Only gymnasium's API is used here: no ROS, no twin.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

import gymnasium as gym
import numpy as np

from robot_rl.config import ConfigError

CAMERA_FOR_BOX = "pixels"   # the camera name of a whole-Box image observation


class GymEnvError(ConfigError):
    """A gymnasium env (or its config) that the adapter cannot map; the message says what and why.
    A ConfigError, so the CLI prints it as one line."""


@dataclass
class GymEnvConfig:
    """How a `--env` gymnasium env maps onto the agent (TrainConfig.gym)."""
    kwargs: dict[str, Any] = field(default_factory=dict)  # to the factory / gymnasium.make
    expert: str = ""                    # "package.module:callable" giving demos; "": none
    state_keys: tuple[str, ...] = ()    # Dict keys concatenated into "state" (empty: all non-images)
    image_keys: tuple[str, ...] = ()    # Dict keys used as cameras (empty: every image-shaped key)
    image_layout: Literal["hwc", "chw"] = "hwc"   # channel position of the env's images
    success_key: str = "success"        # info key that says the episode succeeded
    max_episode_steps: int = 0          # >0: cut episodes here (needed when the env has no TimeLimit)
    control_hz: float = 10.0            # env steps per second (for cycle times only)


def _import_attr(target: str, what: str) -> Any:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise GymEnvError(f"{what} {target!r} must look like package.module:name")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise GymEnvError(f"{what} {target!r}: cannot import {module_name!r} ({e})") from None
    if not hasattr(module, attr):
        raise GymEnvError(f"{what} {target!r}: module {module_name!r} has no {attr!r}")
    return getattr(module, attr)


def make_user_env(name: str, kwargs: Mapping[str, Any]) -> gym.Env:
    """The env `name` names: a factory "package.module:callable", else a gymnasium id."""
    module_name, sep, attr = name.partition(":")
    factory = None
    if sep:
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise GymEnvError(f"env {name!r}: cannot import {module_name!r} ({e})") from None
        factory = getattr(module, attr, None)   # none: an id the module registered ("mod:Id-v0")
    try:
        env = factory(**kwargs) if callable(factory) else gym.make(name, **kwargs)
    except gym.error.Error as e:
        raise GymEnvError(f"env {name!r} is neither package.module:factory nor a registered "
                          f"gymnasium id ({e})") from None
    except TypeError as e:
        raise GymEnvError(f"env {name!r} does not take the kwargs {dict(kwargs)} ({e})") from None
    if not isinstance(env, gym.Env):
        raise GymEnvError(f"env {name!r} gave a {type(env).__name__}, not a gymnasium.Env")
    return env


# ----------------------------------------------------------------------------- observations
def _is_image(space: gym.Space, layout: str) -> bool:
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 3:
        return False
    return space.shape[-1 if layout == "hwc" else 0] == 3


def _image_space(key: str, space: gym.Space, layout: str) -> gym.spaces.Box:
    """The (H, W, 3) uint8 Box of an env image, or GymEnvError saying what does not fit."""
    if not isinstance(space, gym.spaces.Box):
        raise GymEnvError(f"observation {key!r}: an image must be a Box, got {space}")
    if space.dtype != np.uint8:
        raise GymEnvError(f"observation {key!r}: images must be uint8 (0..255), got dtype {space.dtype}")
    channels = 2 if layout == "hwc" else 0
    if len(space.shape) != 3 or space.shape[-1 if layout == "hwc" else 0] != 3:
        other = "chw" if layout == "hwc" else "hwc"
        hint = (f"; it looks {other}: set gym.image_layout={other}"
                if len(space.shape) == 3 and _is_image(space, other) else "")
        raise GymEnvError(f"observation {key!r}: wrong image layout {space.shape} for image_layout="
                          f"{layout!r} (needs 3 RGB channels, {'(H, W, 3)' if channels else '(3, H, W)'})"
                          f"{hint}")
    shape = space.shape if layout == "hwc" else (space.shape[1], space.shape[2], 3)
    _check_image_size(key, shape[0], shape[1])
    return gym.spaces.Box(0, 255, shape, np.uint8)


def _check_image_size(key: str, height: int, width: int) -> None:
    """The image encoder (ResNet-10, robot_rl/networks) takes only some sizes: a probe image
    finds out here, instead of a shape error deep in the first act()."""
    import torch

    from robot_rl.networks.resnet import ResNet10

    expected = ResNet10.output_shape(height, width)
    try:
        with torch.no_grad():
            got = tuple(ResNet10().eval()(torch.zeros(1, height, width, 3, dtype=torch.uint8)).shape[1:])
    except RuntimeError:
        got = None
    if got != tuple(expected):
        raise GymEnvError(f"observation {key!r}: images of {height}x{width} do not fit the ResNet-10 "
                          f"encoder; sizes that do include 32, 64, 96, 128 (resize in the env, e.g. "
                          f"gymnasium.wrappers.ResizeObservation)")


def _state_part(key: str, space: gym.Space) -> gym.spaces.Box:
    if not isinstance(space, gym.spaces.Box) or not np.issubdtype(space.dtype, np.number):
        raise GymEnvError(f"observation {key!r}: unsupported space {space}; state parts must be "
                          f"numeric Box spaces and images uint8 Box (H, W, 3)")
    return space


class ObservationAdapter:
    """Maps the env's observation space and observations onto {"state", cameras...}."""

    def __init__(self, space: gym.Space, cfg: GymEnvConfig, obs_mode: str):
        layout = cfg.image_layout
        if isinstance(space, gym.spaces.Box):
            # A uint8 Box of 3 dims is meant as an image (a wrong layout is reported as such).
            looks_like_image = space.dtype == np.uint8 and len(space.shape) == 3
            parts = {CAMERA_FOR_BOX if looks_like_image else "": space}
            if cfg.state_keys or cfg.image_keys:
                raise GymEnvError("gym.state_keys and gym.image_keys apply to Dict observations; "
                                  f"this env observes one {space}")
        elif isinstance(space, gym.spaces.Dict):
            parts = dict(space.spaces)
        else:
            raise GymEnvError(f"unsupported observation space {space}: use a Box or a Dict of Boxes")
        for key in (*cfg.state_keys, *cfg.image_keys):
            if key not in parts:
                raise GymEnvError(f"gym keys: {key!r} is not an observation key (has {sorted(parts)})")
        image_keys = list(cfg.image_keys) or [k for k, s in parts.items()
                                               if k != "" and isinstance(s, gym.spaces.Box)
                                               and s.dtype == np.uint8 and len(s.shape) == 3]
        state_keys = list(cfg.state_keys) or [k for k in parts if k not in image_keys]
        self.state_parts = {k: _state_part(k or "observation", parts[k]) for k in state_keys}
        # obs "state" leaves the images out, so their layout does not matter then.
        self.cameras = ({k: _image_space(k, parts[k], layout) for k in image_keys}
                        if obs_mode == "pixels" else {})
        if obs_mode == "pixels" and not self.cameras:
            raise GymEnvError(f"obs 'pixels' needs an image in the observation; {space} has none")
        if "state" in self.cameras:
            raise GymEnvError("observation key 'state' is an image; the agent keeps 'state' for "
                              "the vector: list it in gym.state_keys or rename it")
        if not self.cameras and not self.state_parts:
            raise GymEnvError(f"observation {space}: with obs 'state' nothing is left once the "
                              f"images are left out; use --obs pixels")
        shapes = {tuple(s.shape) for s in self.cameras.values()}
        if len(shapes) > 1:
            raise GymEnvError(f"all images must have one shape, got {sorted(shapes)}")
        self.layout = layout
        spaces: dict[str, gym.spaces.Box] = {}
        if self.state_parts:
            low = np.concatenate([np.broadcast_to(s.low, s.shape).ravel() for s in self.state_parts.values()])
            high = np.concatenate([np.broadcast_to(s.high, s.shape).ravel() for s in self.state_parts.values()])
            spaces["state"] = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        spaces.update(self.cameras)
        self.space = gym.spaces.Dict(spaces)

    def __call__(self, obs: Any) -> dict[str, np.ndarray]:
        def part(key: str) -> Any:
            if key in ("", CAMERA_FOR_BOX) and not isinstance(obs, Mapping):
                return obs
            return obs[key]

        out: dict[str, np.ndarray] = {}
        if self.state_parts:
            out["state"] = np.concatenate([np.asarray(part(k), dtype=np.float32).ravel()
                                           for k in self.state_parts])
        for cam in self.cameras:
            image = np.asarray(part(cam))
            out[cam] = np.ascontiguousarray(image.transpose(1, 2, 0) if self.layout == "chw" else image)
        return out


# ----------------------------------------------------------------------------- actions
def check_action_space(space: gym.Space) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of a 1-D Box with finite bounds; GymEnvError otherwise."""
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise GymEnvError(f"unsupported action space {space}: the agent needs a 1-D continuous Box")
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(high > low)):
        raise GymEnvError(f"action space {space}: every dim needs finite bounds low < high "
                          f"(got low={low.tolist()} high={high.tolist()})")
    return low, high


class GymAdapter(gym.Wrapper):
    """The user's env with the agent's observation dict, [-1, 1] actions and info["success"]."""

    def __init__(self, env: gym.Env, cfg: GymEnvConfig, obs_mode: str = "state"):
        super().__init__(env)
        self.cfg = cfg
        self.low, self.high = check_action_space(env.action_space)
        self.obs_adapter = ObservationAdapter(env.observation_space, cfg, obs_mode)
        self.observation_space = self.obs_adapter.space
        self.action_space = gym.spaces.Box(-1.0, 1.0, env.action_space.shape, np.float32)
        self.control_hz = cfg.control_hz
        self.last_raw_obs: Any = None     # the env's own observation, for a user expert
        self.max_episode_steps: int | None = None   # set by make_gym_env

    def to_env_action(self, action: np.ndarray) -> np.ndarray:
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        return (self.low + (a + 1.0) * 0.5 * (self.high - self.low)).astype(self.env.action_space.dtype)

    def to_agent_action(self, env_action: np.ndarray) -> np.ndarray:
        a = np.asarray(env_action, dtype=np.float64).reshape(self.low.shape)
        return np.clip(2.0 * (a - self.low) / (self.high - self.low) - 1.0, -1.0, 1.0).astype(np.float32)

    def _info(self, info: dict) -> dict:
        info = dict(info)
        info["success"] = bool(info.get(self.cfg.success_key, False))
        return info

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.last_raw_obs = obs
        return self.obs_adapter(obs), self._info(info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(self.to_env_action(action))
        self.last_raw_obs = obs
        return self.obs_adapter(obs), float(reward), bool(terminated), bool(truncated), self._info(info)


class UserExpert:
    """A user's expert policy (env units, env observations) as the demo collector's expert."""

    def __init__(self, adapter: GymAdapter, policy: Any):
        self.adapter = adapter
        self.policy = policy.act if hasattr(policy, "act") else policy
        if not callable(self.policy):
            raise GymEnvError(f"gym.expert gave a {type(policy).__name__}: it must be a callable "
                              "obs -> action or have act(obs)")

    def act(self, obs: Any, info: dict | None = None) -> np.ndarray:
        return self.adapter.to_agent_action(self.policy(self.adapter.last_raw_obs))


def episode_limit(env: gym.Env) -> int | None:
    """The outermost TimeLimit's steps (a factory's own wrapper, or the registered spec's)."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return int(env._max_episode_steps)
        env = env.env
    return None


def make_gym_env(name: str, cfg: GymEnvConfig, obs_mode: str = "state"
                 ) -> tuple[GymAdapter, Callable[..., Any] | None]:
    """(adapted env, expert or None) for TrainConfig.env / .gym."""
    if cfg.max_episode_steps < 0:
        raise GymEnvError(f"gym.max_episode_steps must be >= 0, got {cfg.max_episode_steps}")
    if not cfg.control_hz > 0:
        raise GymEnvError(f"gym.control_hz must be > 0, got {cfg.control_hz}")
    env = make_user_env(name, cfg.kwargs)
    if cfg.max_episode_steps:
        env = gym.wrappers.TimeLimit(env, cfg.max_episode_steps)
    limit = episode_limit(env)
    if limit is None:
        env.close()
        raise GymEnvError(f"env {name!r} has no episode limit (no TimeLimit): set gym.max_episode_steps")
    try:
        adapted = GymAdapter(env, cfg, obs_mode)
        adapted.max_episode_steps = limit
        expert = None
        if cfg.expert:
            factory = _import_attr(cfg.expert, "gym.expert")
            expert = UserExpert(adapted, factory(env.unwrapped))
    except BaseException:
        env.close()
        raise
    return adapted, expert
