"""Episodes as animated GIFs (Pillow, no ffmpeg): what the cameras saw while the policy acted.

Used by the actor (every N-th training episode, in-process and on the arm), deploy (every
evaluated episode) and anything else that wants to show a person how a policy behaves.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def camera_frames(env: Any) -> dict[str, np.ndarray]:
    """Images of every camera now: those the robot observed (ROS backend, pixel runs), else
    rendered by the twin; {} for an env without cameras of ours (a --env gymnasium env)."""
    env = getattr(env, "unwrapped", env)
    if not hasattr(env, "robot"):
        return {}
    state = getattr(env, "last_state", None)
    if state is not None and getattr(state, "images", None):
        return dict(state.images)
    task = getattr(env, "task", None)
    if hasattr(env.robot, "render") and task is not None:
        return {cam: env.robot.render(cam) for cam in task.cameras}
    return {}


def write_gif(frames: list[np.ndarray], path: Path, fps: float) -> Path:
    """An animated GIF, one frame per control step, looping."""
    from PIL import Image

    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=max(20, round(1000 / fps)),
                   loop=0, optimize=False)
    return path


class EpisodeVideo:
    """Every `every`-th episode (0: none) as one GIF per camera, OUT_DIR/ep{N:05d}_{camera}.gif."""

    def __init__(self, out_dir: Path | str, every: int, fps: float):
        if every < 0:
            raise ValueError(f"video_every must be >= 0 (0: off), got {every}")
        self.out_dir, self.every, self.fps = Path(out_dir), int(every), float(fps)
        self._frames: dict[str, list[np.ndarray]] | None = None

    def begin(self, episode: int) -> None:
        self._frames = {} if self.every and episode % self.every == 0 else None

    def grab(self, env: Any) -> None:
        if self._frames is None:
            return
        for cam, image in camera_frames(env).items():
            self._frames.setdefault(cam, []).append(np.array(image, dtype=np.uint8))

    def end(self, episode: int) -> list[Path]:
        """Writes the episode's GIFs (if it was recorded) and returns their paths."""
        frames, self._frames = self._frames, None
        if not frames:
            return []
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return [write_gif(f, self.out_dir / f"ep{episode:05d}_{cam}.gif", self.fps) for cam, f in frames.items() if f]
