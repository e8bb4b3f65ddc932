"""The configs shipped in the package: each loads and validates with `robot-rl config`, the docs
name only shipped ones, the nodes find them by name, and the defaults are the learner that learns."""
import re
from pathlib import Path

import pytest

from robot_rl import config as config_lib
from robot_rl.agents.sac import SACConfig
from robot_rl.cli import main
from robot_rl.config import ConfigError
from robot_rl.configs import resolve, shipped
from robot_rl.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ("train_default", "plain_rlpd", "twin_pixels", "franka_pixels_hil", "widowx_pixels")


def test_the_examples_are_shipped_inside_the_package():
    configs = shipped()
    assert set(EXAMPLES) <= set(configs)
    for path in configs.values():
        assert path.parent == ROOT / "robot_rl" / "configs"
    assert '"robot_rl": ["configs/*.yaml"]' in (ROOT / "setup.py").read_text()


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_shipped_config_loads_and_validates(name, capsys):
    assert main(["config", "--config", name]) == 0
    printed = capsys.readouterr().out
    cfg = config_lib.from_dict(TrainConfig, __import__("yaml").safe_load(printed))
    assert cfg == config_lib.load(TrainConfig, resolve(name))
    from robot_rl import tasks
    assert cfg.task in tasks.TASKS or cfg.task == "point_reach"


def test_the_defaults_are_the_learner_that_learned_pick_cube():
    """10 critics with a random 2 per target, BC on the demo rows, state normalisation: the
    settings with which `make train` reached 0.95+ on pick_cube (docs/benchmarks.md)."""
    agent = SACConfig()
    assert (agent.critic_ensemble_size, agent.critic_subsample_size) == (10, 2)
    assert agent.bc_weight == 1.0 and agent.normalize_state
    assert TrainConfig().agent == agent
    # make train's file only sets the run around the defaults' learner...
    assert config_lib.load(TrainConfig, resolve("train_default")).agent == agent
    # ...and the Makefile's path is the shipped file.
    assert (ROOT / "configs" / "train_default.yaml").resolve() == shipped()["train_default"].resolve()
    assert "--config configs/train_default.yaml" in (ROOT / "Makefile").read_text()


def test_plain_rlpd_is_one_switch_away(capsys):
    assert main(["config", "--config", "plain_rlpd", "--task", "peg_insert"]) == 0
    plain = config_lib.load(TrainConfig, resolve("plain_rlpd"), ["task=peg_insert"])
    assert (plain.agent.critic_ensemble_size, plain.agent.critic_subsample_size) == (2, None)
    assert plain.agent.bc_weight == 0.0 and plain.task == "peg_insert"
    assert "critic_ensemble_size: 2" in capsys.readouterr().out


def test_a_path_wins_and_a_wrong_name_lists_the_shipped_ones(tmp_path, capsys):
    own = tmp_path / "plain_rlpd.yaml"
    own.write_text("steps: 7\n")
    assert resolve(own) == own
    with pytest.raises(ConfigError, match="not a shipped config .*plain_rlpd.*train_default"):
        resolve("no_such_config")
    assert main(["config", "--config", "no_such_config"]) == 2
    assert "no_such_config" in capsys.readouterr().err


def test_every_config_the_docs_name_is_shipped():
    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    named = set(re.findall(r"--config[ =]([a-z][a-z0-9_]*)\b(?![./])", text))
    named |= set(re.findall(r"config_file:=([a-z][a-z0-9_]*)\b(?![./])", text))
    assert named, "the docs name shipped configs (docs/configs.md)"
    assert named <= set(shipped()), sorted(named - set(shipped()))
    for path in re.findall(r"(?:robot_rl/)?configs/(\w+)\.yaml", text):
        assert path in shipped(), path


def test_the_nodes_find_a_shipped_config_by_name():
    """The actor and learner nodes' config_file takes a shipped name, as --config does."""
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from robot_rl.tasks.ros.rl_graph import train_config_from_params

    context = Context()
    rclpy.init(context=context)
    try:
        node = Node("config_probe", context=context,
                    parameter_overrides=[Parameter("config_file", value="plain_rlpd"),
                                         Parameter("task", value="point_reach")])
        try:
            cfg = train_config_from_params(node)
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    assert cfg.agent.critic_ensemble_size == 2 and cfg.task == "point_reach"
