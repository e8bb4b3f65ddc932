"""`robot-rl deploy`'s flags are derived from DeployConfig (robot_rl/config_cli.py): one flag per
field with the field's help text, the flag names of before, and a value out of range refused
in one line naming the flag, the value and the range. No policy runs here: every check stops
before a run directory is read."""
from __future__ import annotations

import dataclasses

import pytest

from robot_rl.cli import build_parser, main
from robot_rl.config import ConfigError, Range, help_of, rule_of
from robot_rl.config_cli import flag_of, from_args
from robot_rl.tasks.apps.deploy import DeployConfig

# The flags deploy had when its parser was written by hand: scripts and docs use these names.
FLAGS = {"--profile", "--episodes", "--video", "--backend", "--out", "--seed", "--max-steps", "--namespace",
         "--connect-timeout", "--device", "--reset-mode", "--gains-node", "--reward-classifier",
         "--scene-reset-timeout"}


def _deploy_parser():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices["deploy"]


def test_every_field_is_a_flag_with_its_help_and_no_flag_is_extra(capsys):
    parser = _deploy_parser()
    flags = {s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"}
    fields = dataclasses.fields(DeployConfig)
    assert flags == FLAGS == {flag_of(f.name) for f in fields if f.name != "run_dir"}
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    shown = " ".join(capsys.readouterr().out.split())          # argparse wraps the lines
    for f in fields:
        assert help_of(f) and " ".join(help_of(f).split()) in shown, f.name
        if isinstance(rule_of(f), Range):                         # the range is in the help too
            assert rule_of(f).describe().split(" or")[0] in shown, f.name


def test_the_parsed_defaults_are_the_dataclass_defaults_and_flags_set_fields():
    parser = build_parser()
    args = parser.parse_args(["deploy", "runs/x"])
    assert from_args(DeployConfig, args, positional=("run_dir",)) == DeployConfig(run_dir="runs/x")
    args = parser.parse_args(["deploy", "runs/x", "--episodes", "3", "--video", "--max-steps", "7",
                              "--reset-mode", "service", "--scene-reset-timeout", "2.5"])
    cfg = from_args(DeployConfig, args, positional=("run_dir",))
    assert (cfg.episodes, cfg.video, cfg.max_steps, cfg.reset_mode, cfg.scene_reset_timeout) == (3, True, 7, "service", 2.5)


@pytest.mark.parametrize("argv, line", [
    (["--episodes", "0"], "robot-rl: error: --episodes 0: must be in [1, 1000000]"),
    (["--max-steps", "-3"], "robot-rl: error: --max-steps -3: must be in [1, 10000000]"),
    (["--scene-reset-timeout", "nan"], "robot-rl: error: --scene-reset-timeout nan: must be in [0, 3600]"),
    (["--connect-timeout", "-1"], "robot-rl: error: --connect-timeout -1.0: must be in [0, 3600]"),
])
def test_a_value_out_of_range_is_one_line_naming_flag_value_and_range(tmp_path, capsys, argv, line):
    assert main(["deploy", str(tmp_path), *argv]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [line]


def test_the_config_checks_its_ranges_when_built_in_code_too():
    with pytest.raises(ConfigError, match=r"episodes = 0: must be in \[1, 1000000\]"):
        DeployConfig(run_dir="x", episodes=0).validate()
    with pytest.raises(ValueError, match="real robot"):
        DeployConfig(run_dir="x", profile="franka", backend="inprocess").validate()
