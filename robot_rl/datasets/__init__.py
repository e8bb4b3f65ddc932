"""Episode datasets: recorded demos on disk, loading them into a replay buffer, and LeRobotDataset
v3 interchange (robot_rl.datasets.lerobot). Format: docs/datasets.md. No ROS here."""
from robot_rl.datasets.episode import Episode, EpisodeBuilder, spec_from_space
from robot_rl.datasets.loading import load_into_buffer
from robot_rl.datasets.store import (FORMAT, VERSION, DatasetFormatError, DatasetWriteError,
                                     EpisodeDataset)

__all__ = ["Episode", "EpisodeBuilder", "EpisodeDataset", "DatasetFormatError", "DatasetWriteError",
           "load_into_buffer", "spec_from_space", "FORMAT", "VERSION"]
