"""Hostile configs and command lines get one `robot-rl: error:` line and exit code 2, never a
traceback and never a silent run; a resume that cannot apply leaves the run directory
byte-identical (issue #19, part B).

The CLI cases run through robot_rl.cli.main in this process (each fails before any training),
and a few through the real `robot-rl` entry point as a subprocess, to hold the exit code and
stderr of the installed command. The resume cases use a real, tiny point_reach run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from robot_rl import cli
from robot_rl import config as config_lib
from robot_rl.buffers import ReplayFormatError
from robot_rl.checkpoint import CheckpointError
from robot_rl.config import ConfigError, Range, Text
from robot_rl.config_ranges import TRAIN_RANGES, validate_train_config
from robot_rl.resume import ResumeError
from robot_rl.train import TrainConfig, train

ROBOT_RL = Path(sys.executable).with_name("robot-rl")


def _run_main(argv, capsys) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().err


def _assert_one_error_line(code: int, err: str, says: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("robot-rl: error: "), err
    assert sum(line.startswith("robot-rl: error:") for line in lines) == 1, err
    assert says in lines[-1], lines[-1]


@pytest.fixture
def bad_files(tmp_path):
    (tmp_path / "bad.yaml").write_text("steps: [1, 2\nseed: 3\n")
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "unknown.yaml").write_text("stepz: 10\n")
    (tmp_path / "negative.yaml").write_text("agent:\n  actor_lr: -1\n")
    (tmp_path / "adir").mkdir()
    return tmp_path


CLI_CASES = [
    (["train", "--config", "{d}/missing.yaml"], "no such config file"),
    (["train", "--config", "{d}/adir"], "is a directory"),
    (["train", "--config", "{d}/bad.yaml"], "not valid YAML at line"),
    (["train", "--config", "{d}/binary.yaml"], "not a text"),
    (["train", "--config", "{d}/list.yaml"], "top level must be a mapping"),
    (["train", "--config", "{d}/unknown.yaml"], "unknown keys ['stepz']"),
    (["train", "--config", "{d}/negative.yaml"], "agent.actor_lr = -1.0"),
    (["train", "--steps", "-5"], "steps = -5"),
    (["train", "--seed", "-1"], "seed = -1"),
    (["train", "--steps", "ten"], "invalid int value"),
    (["train", "--set", "demos=-1"], "demos = -1"),
    (["train", "--set", "updates_per_step=-1"], "updates_per_step = -1.0"),
    (["train", "--set", "agent.actor_lr=-1"], "agent.actor_lr = -1.0"),
    (["train", "--set", "agent.actor_lr=nan"], "agent.actor_lr = nan"),
    (["train", "--set", "agent.discount=1.5"], "agent.discount = 1.5"),
    (["train", "--set", "agent.hidden_dims=[]"], "agent.hidden_dims = (): must not be empty"),
    (["train", "--set", "agent.critic_ensemble_size=2", "--set", "agent.critic_subsample_size=5"],
     "critic_subsample_size"),
    (["train", "--set", "agent.std_min=9"], "agent.std_min = 9.0: must be below"),
    (["train", "--set", "buffer.capacity=1"], "buffer.capacity = 1"),
    (["train", "--set", "buffer.demo_ratio=-0.1"], "buffer.demo_ratio = -0.1"),
    (["train", "--set", "intervention.noise=-1"], "intervention.noise = -1.0"),
    (["train", "--set", "device=gpu0"], "device = 'gpu0'"),
    (["train", "--set", "batch_size=0"], "batch_size = 0"),
    (["train", "--set", "nosuchfield=1"], "unknown config key 'nosuchfield'"),
    (["train", "--set", "steps"], "must look like key=value"),
    (["train", "--set", "steps=[1"], "not valid YAML"),
    (["config", "--set", "agent.tau=0"], "agent.tau = 0.0"),
    (["eval", "{d}/no_such_run"], "no such run directory"),
    (["eval", "{d}/adir"], "config.yaml is missing"),
    (["demos", "--task", "point_reach", "--episodes", "0", "--out", "{d}/demos"], "--episodes 0"),
    (["train", "--task", "nosuch", "--run-dir", "{d}/never"], "unknown task 'nosuch'"),
    (["train", "--task", "point_reach", "--set", "task_overrides={{max_steps: 5}}",
      "--run-dir", "{d}/never"], "takes no task_overrides"),
    (["nosuchcommand"], "invalid choice"),
    ([], "the following arguments are required"),
]


@pytest.mark.parametrize("argv,says", CLI_CASES, ids=[" ".join(c[0])[:60] for c in CLI_CASES])
def test_bad_input_is_one_error_line_and_exit_code_2(bad_files, capsys, argv, says):
    code, err = _run_main([a.format(d=bad_files) for a in argv], capsys)
    _assert_one_error_line(code, err, says)
    assert not (bad_files / "never").exists()       # a refused run creates no run directory


def test_the_installed_command_exits_2_with_one_line(bad_files):
    # One case only: each start of the command imports torch (seconds); main() holds the rest.
    argv, says = ["train", "--steps", "-5"], "steps = -5"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run([str(ROBOT_RL), *[a.format(d=bad_files) for a in argv]], cwd=bad_files,
                          capture_output=True, text=True, timeout=120, env=env)
    _assert_one_error_line(proc.returncode, proc.stderr, says)
    assert proc.stdout == ""


# ----------------------------------------------------------------------------- every field

def _leaf_fields():
    return config_lib.fields_of(TrainConfig)


def test_every_train_config_field_has_a_range():
    assert set(_leaf_fields()) == set(TRAIN_RANGES), \
        "a TrainConfig field was added or removed: give it an entry in robot_rl/config_ranges.py"


def _outside(rule, current):
    """Values just outside a rule, of the field's own type (so the parser accepts them)."""
    if isinstance(rule, Range):
        is_int = isinstance(current, int) or (isinstance(current, tuple) and current
                                              and isinstance(current[0], int))
        out = []
        if rule.low is not None:
            out.append(rule.low if rule.low_open else (rule.low - 1 if is_int else rule.low - 1e-3))
        if rule.high is not None and rule.high < 2 ** 30:
            out.append(rule.high if rule.high_open else (rule.high + 1 if is_int else rule.high * 1.5 + 1))
        if not is_int:
            out.append(math.nan)
        return [(type(current[0])(v),) if isinstance(current, tuple) else v for v in out]
    if isinstance(rule, Text):
        return ["nonsense"] if rule.choices else [] if rule.allow_empty else [""]
    return []


def _cases():
    cfg = TrainConfig()
    cases = []
    for path, rule in TRAIN_RANGES.items():
        node = cfg
        for part in path.split("."):
            node = getattr(node, part)
        for value in _outside(rule, node):
            cases.append(pytest.param(path, value, id=f"{path}={value!r}"))
    return cases


def _with(cfg, path, value):
    head, _, rest = path.partition(".")
    if not rest:
        return dataclasses.replace(cfg, **{head: value})
    return dataclasses.replace(cfg, **{head: _with(getattr(cfg, head), rest, value)})


@pytest.mark.parametrize("path,value", _cases())
def test_a_value_outside_a_field_s_range_is_refused_naming_the_field(path, value):
    cfg = _with(TrainConfig(), path, value)
    with pytest.raises(ConfigError, match=rf"^{path.replace('.', '[.]')} = "):
        validate_train_config(cfg)


def test_the_defaults_and_each_range_s_edges_are_accepted():
    validate_train_config(TrainConfig())
    validate_train_config(_with(_with(TrainConfig(), "updates_per_step", 0.0), "steps", 0))
    validate_train_config(_with(TrainConfig(), "demos", 0))    # the RLPD batch is then all online


def test_zero_demos_collects_nothing_instead_of_dividing_by_zero():
    from robot_rl.buffers import ReplayBuffer
    from robot_rl.run_env import make_env_and_expert
    from robot_rl.train import collect_demos

    handle = make_env_and_expert("point_reach")
    with ReplayBuffer.create(None, handle.env.observation_space, 7, capacity=16) as buf:
        stats = collect_demos(handle, buf, 0, seed=0)
        assert stats == {"demos": 0, "attempts": 0, "expert_success_rate": None} and len(buf) == 0
    handle.close()


# ----------------------------------------------------------------------------- resume

def _tiny(run_dir: Path, **kw) -> TrainConfig:
    base = dict(task="point_reach", run_dir=str(run_dir), demos=2, steps=60, eval_every=0,
                final_eval_episodes=1, progress=False, learning_starts=16, batch_size=16,
                checkpoint_every=0, threads=1, **{"buffer.capacity": 400, "buffer.demo_capacity": 200,
                                                  "agent.hidden_dims": "[16, 16]",
                                                  # a small learner, stated: the defaults are make train's
                                                  "agent.critic_ensemble_size": 2,
                                                  "agent.critic_subsample_size": "null"})
    base.update(kw)
    return config_lib.load(TrainConfig, None, [f"{k}={v}" for k, v in base.items()])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("resume") / "run"
    train(_tiny(run))
    return run


@pytest.fixture
def run_copy(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    return run


def _snapshot(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(run.rglob("*"))}


REFUSED = [
    ("buffer.capacity", 800),
    ("buffer.demo_capacity", 300),
    ("agent.critic_ensemble_size", 4),
    ("agent.hidden_dims", "[32, 32]"),
    ("agent.actor_lr", 0.001),
    ("seed", 5),
    ("demos", 3),
    ("task_overrides", "{max_steps: 10}"),
]


@pytest.mark.parametrize("field,value", REFUSED, ids=[c[0] for c in REFUSED])
def test_a_resume_that_changes_a_fixed_setting_is_refused_and_changes_nothing(run_copy, field, value):
    before = _snapshot(run_copy)
    with pytest.raises(ResumeError, match=rf"changed {field.replace('.', '[.]')} "):
        train(_tiny(run_copy, steps=120, **{field: value}))
    assert _snapshot(run_copy) == before


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x20
    path.write_bytes(bytes(data))


def test_a_resume_from_a_corrupt_buffer_fails_on_open_and_changes_nothing(run_copy):
    # A flipped byte in a live row of the online state frames (past the 128-byte .npy header).
    state_file = next((run_copy / "buffers" / "online").glob("frame.state.*.npy"))
    _flip_byte(state_file, 128 + 3)
    before = _snapshot(run_copy)
    with pytest.raises(ReplayFormatError, match="frame.state.*checksum"):
        train(_tiny(run_copy, steps=120))
    assert _snapshot(run_copy) == before


def test_a_resume_from_a_tampered_checkpoint_fails_and_changes_nothing(run_copy):
    path = run_copy / "checkpoint.json"
    path.write_text(path.read_text().replace('"updates": ', '"updates": -', 1))
    before = _snapshot(run_copy)
    with pytest.raises(CheckpointError, match="json_sha256"):
        train(_tiny(run_copy, steps=120))
    assert _snapshot(run_copy) == before


def test_a_failed_resume_through_the_cli_is_one_line_and_eval_still_works(run_copy, capsys):
    before = _snapshot(run_copy)
    code, err = _run_main(["train", "--config", str(run_copy / "config.yaml"),
                           "--set", "agent.critic_ensemble_size=4", "--steps", "120"], capsys)
    _assert_one_error_line(code, err, "changed agent.critic_ensemble_size (2 -> 4)")
    assert _snapshot(run_copy) == before
    code = cli.main(["eval", str(run_copy), "--episodes", "1", "--out", str(run_copy.parent / "e.json")])
    assert code == 0 and (run_copy.parent / "e.json").is_file()


def test_a_resume_with_settings_that_apply_logs_them_and_keeps_a_history(run_copy, caplog):
    with caplog.at_level(logging.WARNING, logger="robot_rl.resume"):
        final = train(_tiny(run_copy, steps=80, **{"agent.discount": 0.9, "batch_size": 32}))
    assert final["env_steps"] >= 80
    assert "agent.discount 0.97 -> 0.9" in caplog.text and "batch_size 16 -> 32" in caplog.text
    saved = config_lib.load(TrainConfig, run_copy / "config.yaml")
    assert saved.agent.discount == 0.9 and saved.batch_size == 32
    history = config_lib.read_history(run_copy / "config.yaml")
    assert history[-1]["changed"]["agent.discount"] == {"was": 0.97, "now": 0.9}
    # The file is still a plain config: loaded again it resumes with no change to list.
    assert yaml.safe_load((run_copy / "config.yaml").read_text())["agent"]["discount"] == 0.9


def test_the_learner_refuses_a_fixed_change_before_writing_and_records_one_that_applies(tmp_path):
    """The distributed learner's resume (robot_rl/learner.py) follows the same rules."""
    from robot_rl.learner import Learner, LearnerConfig

    def learner(**kw):
        return Learner(_tiny(tmp_path / "run", demos=0, **kw), LearnerConfig(),
                       publish_weights=lambda b: None, publish_ack=lambda b: None)

    learner().close()                          # a fresh run: config.yaml, buffers, learner state
    run = tmp_path / "run"
    before = _snapshot(run)
    with pytest.raises(ResumeError, match=r"changed buffer[.]capacity \(400 -> 500\)"):
        learner(**{"buffer.capacity": 500})
    assert _snapshot(run) == before
    learner(**{"agent.tau": 0.01}).close()
    assert config_lib.read_history(run / "config.yaml")[-1]["changed"] == {
        "agent.tau": {"was": 0.005, "now": 0.01}}
