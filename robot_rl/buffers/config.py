"""Replay buffer settings, as one typed dataclass the run config nests."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BufferConfig:
    capacity: int = 200_000          # storage slots per buffer; an episode of T steps uses T + 1
    demo_capacity: int = 200_000     # slots of the demo/intervention buffer
    fsync: bool = False              # True: msync+fsync on commit (survives power loss, slower);
                                     # False: survives a killed process (the page cache persists)
    demo_ratio: float = 0.5          # RLPD: fraction of each batch drawn from the demo buffer
    check_continuity: bool = True    # add() checks obs == the previous step's next_obs
    pin_memory: bool = True          # host batches in pinned memory when CUDA is available
