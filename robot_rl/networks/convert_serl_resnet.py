"""Convert SERL's published ResNet-10 weights to the safetensors file robot_rl loads.

SERL ships its ImageNet-pretrained `resnetv1-10` as `resnet10_params.pkl`: a pickled Flax
parameter tree. robot_rl never unpickles at run time, so this is an offline, user-run tool:

    python -m robot_rl.networks.convert_serl_resnet resnet10_params.pkl resnet10_serl.safetensors

then set `encoder.pretrained_backbone=resnet10_serl.safetensors` in the agent config.

SECURITY: unpickling can run arbitrary code. This tool unpickles with an allow-list that admits
only plain containers and numpy arrays, so a tampered file fails instead of running code. If your
copy holds JAX/Flax objects (jax arrays, FrozenDict), re-save it as numpy on a machine with JAX
(`jax.tree_util.tree_map(np.asarray, params)`), or pass `--trust-file` to unpickle without the
allow-list (needs jax/flax installed) - only for a file you downloaded yourself from SERL.

Name mapping (Flax, kernels HWIO -> PyTorch, weights OIHW):
    conv_init/kernel                          -> conv_init.weight
    norm_init/{scale,bias}                    -> norm_init.{weight,bias}
    ResNetBlock_i/Conv_0/kernel               -> blocks.i.conv1.weight
    ResNetBlock_i/MyGroupNorm_0/{scale,bias}  -> blocks.i.norm1.{weight,bias}
    ResNetBlock_i/Conv_1/kernel               -> blocks.i.conv2.weight
    ResNetBlock_i/MyGroupNorm_1/{scale,bias}  -> blocks.i.norm2.{weight,bias}
    ResNetBlock_i/conv_proj/kernel            -> blocks.i.proj_conv.weight
    ResNetBlock_i/norm_proj/{scale,bias}      -> blocks.i.proj_norm.{weight,bias}
"""
from __future__ import annotations

import argparse
import io
import pickle
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from safetensors.torch import save_file

from robot_rl.networks.resnet import ResNet10

_MODULES = {"Conv_0": "conv1", "MyGroupNorm_0": "norm1", "Conv_1": "conv2", "MyGroupNorm_1": "norm2",
            "conv_proj": "proj_conv", "norm_proj": "proj_norm"}
_LEAVES = {"kernel": "weight", "scale": "weight", "bias": "bias"}

# What a numpy-only parameter pickle needs, and nothing that can run code.
_ALLOWED = {("collections", "OrderedDict"), ("builtins", "dict"), ("builtins", "list"),
            ("builtins", "tuple"), ("numpy", "ndarray"), ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name} from the pickle (only containers and numpy arrays are "
            "allowed); see this module's docstring for --trust-file")


def read_flax_pickle(path: str | Path, trust_file: bool = False) -> Any:
    data = Path(path).read_bytes()
    if trust_file:
        return pickle.loads(data)  # noqa: S301 - explicit user opt-in for a local file they trust
    return _AllowListUnpickler(io.BytesIO(data)).load()


def _find_resnet_tree(tree: Any) -> Mapping[str, Any]:
    """The sub-dict holding conv_init (the file may wrap it in 'params' or an encoder name)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            if "conv_init" in node:
                return node
            stack.extend(node.values())
    raise ValueError("no 'conv_init' found: this is not a SERL ResNet parameter tree")


def flax_to_torch(tree: Any) -> dict[str, torch.Tensor]:
    """Flax ResNet-10 params -> ResNet10 state_dict; checks every name and shape."""
    root = _find_resnet_tree(tree)
    out: dict[str, torch.Tensor] = {}

    def put(name: str, leaf: str, value: Any) -> None:
        if leaf not in _LEAVES:
            raise ValueError(f"unexpected parameter {name}/{leaf}")
        t = torch.from_numpy(np.array(value, dtype=np.float32))
        if leaf == "kernel":
            t = t.permute(3, 2, 0, 1)  # HWIO -> OIHW
        out[f"{name}.{_LEAVES[leaf]}"] = t.contiguous()

    for key, node in root.items():
        if key in ("conv_init", "norm_init"):
            for leaf, v in node.items():
                put(key, leaf, v)
        elif key.startswith("ResNetBlock_"):
            i = int(key.split("_")[1])
            for sub, params in node.items():
                if sub not in _MODULES:
                    raise ValueError(f"unexpected module {key}/{sub}")
                for leaf, v in params.items():
                    put(f"blocks.{i}.{_MODULES[sub]}", leaf, v)
        else:
            raise ValueError(f"unexpected top-level entry {key!r} in the ResNet tree")

    expected = ResNet10().state_dict()
    missing, extra = sorted(set(expected) - set(out)), sorted(set(out) - set(expected))
    if missing or extra:
        raise ValueError(f"parameter names do not match ResNet-10: missing {missing}, extra {extra}")
    for k, v in out.items():
        if v.shape != expected[k].shape:
            raise ValueError(f"{k}: shape {tuple(v.shape)}, ResNet-10 expects {tuple(expected[k].shape)}")
    return out


def convert(src: str | Path, dst: str | Path, trust_file: bool = False) -> dict[str, torch.Tensor]:
    tensors = flax_to_torch(read_flax_pickle(src, trust_file))
    save_file(tensors, str(dst), metadata={"source": Path(src).name, "architecture": "serl-resnetv1-10"})
    return tensors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="SERL resnet10_params.pkl (a local file you trust)")
    parser.add_argument("dst", help="output .safetensors")
    parser.add_argument("--trust-file", action="store_true",
                        help="unpickle without the numpy-only allow-list (runs any code in the file)")
    args = parser.parse_args(argv)
    tensors = convert(args.src, args.dst, args.trust_file)
    print(f"wrote {len(tensors)} tensors ({sum(t.numel() for t in tensors.values())} parameters) to {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
