"""Replay buffers for the learner: episode-aware, memory-mapped, crash-safe (docs/replay_format.md)."""
from robot_rl.buffers.config import BufferConfig
from robot_rl.buffers.replay import ReplayBuffer
from robot_rl.buffers.storage import FORMAT_VERSION, ReplayFormatError

__all__ = ["BufferConfig", "ReplayBuffer", "ReplayFormatError", "FORMAT_VERSION"]
