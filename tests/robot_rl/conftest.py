"""Fixtures shared by the learning-core tests: one torch thread, a backbone weights file, and
the small run config the resume and actor/learner tests train with."""
from pathlib import Path

import pytest
import torch
import yaml

from robot_rl.networks.resnet import ResNet10, save_backbone_weights


@pytest.fixture
def one_thread():
    """Small-network learning loops run many tiny ops; on a shared 2-core box a second OpenMP
    thread mostly waits for a busy core (measured 5-10x slower), so these tests use one thread
    and give the setting back afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory):
    """A 'pretrained' backbone file: seeded random ResNet-10 weights in the expected safetensors
    layout (made once; the global RNG is left as it was)."""
    path = tmp_path_factory.mktemp("weights") / "resnet10.safetensors"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        save_backbone_weights(ResNet10(), path)
    return str(path)


def write_small_run_config(run_dir: Path, **changes) -> Path:
    """RUN_DIR.yaml beside the run dir: point_reach with plain RLPD (2 critics, no BC), the small
    learner the run tests were written for, on one CPU thread; `changes` override any key."""
    cfg = {"task": "point_reach", "demos": 3, "batch_size": 32, "run_dir": str(run_dir),
           "progress": False, "threads": 1, "device": "cpu",
           "agent": {"hidden_dims": [32, 32], "critic_ensemble_size": 2, "critic_subsample_size": None,
                     "bc_weight": 0.0},
           "buffer": {"capacity": 5000, "demo_capacity": 5000}}
    cfg.update(changes)
    path = run_dir.parent / f"{run_dir.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
