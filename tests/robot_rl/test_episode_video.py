"""Every N-th training episode is saved as GIFs of the cameras (issue 17: monitoring)."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from robot_rl.train import TrainConfig, train
from robot_rl.video import EpisodeVideo


class _Robot:
    """A stand-in camera whose pixel value is the step count, so frame order is checkable
    (the real twin renders in test_training_run_writes_the_twin_cameras below)."""
    def __init__(self):
        self.t = 0

    def render(self, cam):
        return np.full((8, 8, 3), self.t * 10, dtype=np.uint8)


class _Env:
    def __init__(self):
        self.robot, self.last_state = _Robot(), None
        self.task = type("T", (), {"cameras": ("front",)})()

    @property
    def unwrapped(self):
        return self


def test_every_nth_episode_becomes_one_gif_per_camera(tmp_path):
    env, video = _Env(), EpisodeVideo(tmp_path, every=2, fps=10.0)
    for episode in range(4):
        video.begin(episode)
        for env.robot.t in range(3):
            video.grab(env)
        video.end(episode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep00000_front.gif", "ep00002_front.gif"]
    gif = Image.open(tmp_path / "ep00002_front.gif")
    assert gif.n_frames == 3
    gif.seek(2)
    assert np.asarray(gif.convert("RGB"))[0, 0, 0] == 20


def test_bad_video_every_is_refused(tmp_path):
    with pytest.raises(ValueError, match="video_every"):
        EpisodeVideo(tmp_path, every=-1, fps=10.0)


def test_training_run_writes_the_twin_cameras(tmp_path):
    """A short pick_cube run (state obs): the twin renders its cameras for the saved episodes."""
    cfg = TrainConfig(task="pick_cube", steps=60, demos=0, learning_starts=1000, eval_every=0,
                      final_eval_episodes=1, progress=False, video_every=1, run_dir=str(tmp_path / "run"),
                      task_overrides={"max_steps": 20})
    train(cfg)
    gifs = sorted(p.name for p in (Path(cfg.run_dir) / "videos").iterdir())
    assert "ep00000_front.gif" in gifs and "ep00000_wrist.gif" in gifs
    assert Image.open(Path(cfg.run_dir) / "videos" / "ep00000_front.gif").n_frames == 21   # reset + 20 steps
