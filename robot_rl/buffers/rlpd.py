"""RLPD batches: half online, half demo/intervention, one host block, one transfer to the device.

RLPD (Ball et al. 2023) and HIL-SERL sample every batch symmetrically: `demo_ratio` of it from
the demo/intervention buffer, the rest from the online buffer, concatenated. If one buffer is
empty the whole batch comes from the other (early in a run the online buffer is empty; a run
without demos has an empty demo buffer). Both empty: ValueError.

The batch is gathered straight into one contiguous host block (pinned when CUDA is available),
so `to_torch` moves it with a single non-blocking copy and slices typed views on the device.

A batch carries only what the learner reads (`keys`, default every frame key), and for a key
stored as K variants per frame (`variant_keys`: cached backbone features of K image shifts,
robot_rl/networks/encoder.py) one variant per row, drawn uniformly in [0, K) for each row's obs
and, independently, its next_obs: the training augmentation, chosen before the copy, so a batch
holds and copies 1/K of those bytes.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from robot_rl.buffers.replay import ReplayBuffer, batch_layout, layout_nbytes, views_of


class PackedBatch(dict):
    """A batch dict whose arrays are all views of one uint8 block (`block`, a torch tensor)."""

    def __init__(self, block: torch.Tensor, layout: list, arrays: dict[str, Any]):
        super().__init__(arrays)
        self.block = block
        self.layout = layout


def allocate_batch(frame_specs: dict[str, tuple[tuple[int, ...], np.dtype]], action_dim: int,
                   batch_size: int, pin_memory: bool) -> PackedBatch:
    """An uninitialised batch in one block; pinned only if asked and CUDA is there."""
    layout = batch_layout(frame_specs, action_dim, batch_size)
    block = _host_block(layout_nbytes(layout), pin_memory)
    return PackedBatch(block, layout, views_of(block.numpy(), layout))


def _host_block(nbytes: int, pin_memory: bool) -> torch.Tensor:
    """A uint8 host tensor: pinned (torch's caching host allocator) when asked and CUDA is there,
    else numpy-allocated (a fresh torch CPU allocation of tens of MB measured ~10x slower here)."""
    if pin_memory and torch.cuda.is_available():
        return torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
    return torch.from_numpy(np.empty(nbytes, dtype=np.uint8))


class RLPDSampler:
    """Symmetric sampling from an online and a demo buffer (see the module docstring)."""

    def __init__(self, online: ReplayBuffer, demo: ReplayBuffer, batch_size: int = 256,
                 demo_ratio: float = 0.5, pin_memory: bool = True, keys: Sequence[str] | None = None,
                 variant_keys: Sequence[str] = ()):
        if not 0.0 <= demo_ratio <= 1.0:
            raise ValueError(f"demo_ratio must be in [0, 1], got {demo_ratio}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if online.frame_specs != demo.frame_specs or online.action_dim != demo.action_dim:
            raise ValueError(f"online and demo buffers store different data: {online.frame_specs}, "
                             f"action_dim {online.action_dim} vs {demo.frame_specs}, "
                             f"action_dim {demo.action_dim}")
        stored = online.frame_specs
        keys = list(stored) if keys is None else list(keys)
        if not keys or not set(keys) <= set(stored) or not set(variant_keys) <= set(keys):
            raise ValueError(f"batch keys {keys} (variant keys {list(variant_keys)}) must be a non-empty "
                             f"subset of the buffers' frame keys {list(stored)}")
        for key in variant_keys:
            if len(stored[key][0]) < 2:
                raise ValueError(f"variant key {key!r} has frames of shape {stored[key][0]}, not (K, ...)")
        self.online, self.demo = online, demo
        self.batch_size, self.demo_ratio, self.pin_memory = batch_size, demo_ratio, pin_memory
        self.variant_keys = list(variant_keys)
        # What one row of a batch holds: a variant key loses its K axis.
        self.batch_specs = {k: ((stored[k][0][1:], stored[k][1]) if k in self.variant_keys else stored[k])
                            for k in keys}
        self._variants = {k: stored[k][0][0] for k in self.variant_keys}

    def split(self) -> tuple[int, int]:
        """(from online, from demo) for the next batch, given which buffers hold data."""
        n_online, n_demo = len(self.online), len(self.demo)
        if n_online == 0 and n_demo == 0:
            raise ValueError("both replay buffers are empty; nothing to sample")
        if n_demo == 0:
            return self.batch_size, 0
        if n_online == 0:
            return 0, self.batch_size
        from_demo = int(round(self.batch_size * self.demo_ratio))
        return self.batch_size - from_demo, from_demo

    def sample(self, rng: np.random.Generator) -> PackedBatch:
        """One batch: rows [0, n_online) from online, the rest from demo."""
        from_online, from_demo = self.split()
        batch = allocate_batch(self.batch_specs, self.online.action_dim, self.batch_size, self.pin_memory)
        for buffer, start, stop in ((self.online, 0, from_online),
                                    (self.demo, from_online, self.batch_size)):
            if stop > start:
                indices = buffer.sample_indices(stop - start, rng)
                # Variants of the obs rows, then of the next_obs rows (gather's order).
                variants = {k: rng.integers(0, n, size=2 * (stop - start)) for k, n in self._variants.items()}
                buffer.gather(indices, out=_rows(batch, start, stop), variants=variants)
        return batch


def _rows(batch: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
    """Row-slice views of a batch (writes land in the batch). obs[k][start:stop] and
    next_obs[k][start:stop] are no longer adjacent, so gather() fills them separately."""
    return {k: (_rows(v, start, stop) if isinstance(v, dict) else v[start:stop]) for k, v in batch.items()}


def pack(batch: dict[str, Any], pin_memory: bool) -> PackedBatch:
    """Copies a plain batch dict into one block (the layout of the batch's own arrays)."""
    entries = []
    for k, v in batch.items():
        if isinstance(v, dict):
            entries += [((k, kk), np.ascontiguousarray(vv)) for kk, vv in v.items()]
        else:
            entries.append(((k,), np.ascontiguousarray(v)))
    layout, offset = [], 0
    for path, arr in entries:
        layout.append((path, arr.shape, arr.dtype, offset))
        offset = -(-(offset + arr.nbytes) // 64) * 64
    block = _host_block(max(offset, 64), pin_memory)
    packed = PackedBatch(block, layout, views_of(block.numpy(), layout))
    for path, arr in entries:
        target = packed[path[0]][path[1]] if len(path) == 2 else packed[path[0]]
        target[...] = arr
    return packed


def to_torch(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """The batch as torch tensors on `device`, in the same nested layout.

    CPU: zero-copy views of the host arrays. CUDA: ONE non-blocking host-to-device copy of the
    packed block (packed here first if the batch is a plain dict), then typed views on the device.
    """
    device = torch.device(device)
    if device.type == "cpu":
        return {k: ({kk: torch.from_numpy(vv) for kk, vv in v.items()} if isinstance(v, dict)
                    else torch.from_numpy(v)) for k, v in batch.items()}
    if not isinstance(batch, PackedBatch):
        batch = pack(batch, pin_memory=device.type == "cuda")
    return unpack(batch.block.to(device, non_blocking=True), batch.layout)


def unpack(block: torch.Tensor, layout: list) -> dict[str, Any]:
    """Typed, shaped views of a uint8 tensor laid out by `layout` (no copy)."""
    out: dict[str, Any] = {"obs": {}, "next_obs": {}}
    for path, shape, dtype, offset in layout:
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        tensor = block[offset:offset + nbytes].view(_TORCH_DTYPES[np.dtype(dtype)]).view(shape)
        if len(path) == 2:
            out[path[0]][path[1]] = tensor
        else:
            out[path[0]] = tensor
    return out


_TORCH_DTYPES = {np.dtype(n): getattr(torch, t) for n, t in [
    ("uint8", "uint8"), ("int8", "int8"), ("int16", "int16"), ("int32", "int32"), ("int64", "int64"),
    ("float16", "float16"), ("float32", "float32"), ("float64", "float64"), ("bool", "bool"),
    ("uint16", "uint16"), ("uint32", "uint32"), ("uint64", "uint64")]}
