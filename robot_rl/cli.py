"""The `robot-rl` command line.

    robot-rl train [--config FILE|NAME] [--task T | --env MOD:FACTORY|GYM_ID] [--obs state|pixels]
                   [--steps N] [--seed S] [--run-dir DIR] [--set key=value ...] [--distributed]
    robot-rl eval RUN_DIR [--episodes N]
    robot-rl demos --task T --episodes N --out DIR
    robot-rl bench learner|impedance|twin [OPTIONS]   benchmarks (e.g. learner --quick --threads 1)
    robot-rl up twin|franka|widowx [--processes]   start the ROS 2 graph of a profile
    robot-rl config [--config FILE|NAME] [--set key=value ...] [--list]   print the resolved config

More commands live next to the code they drive (see COMMAND_MODULES): each of those modules
has `register(subparsers)`, which adds its sub-command and keeps heavy imports inside the
handler so `robot-rl --help` stays fast.

Every run is described by one typed config (robot_rl.train.TrainConfig): defaults, then the
YAML file, then the shortcut flags, then `--set` overrides, in that order; every field is
range-checked (robot_rl/config_ranges.py) before anything runs.

Errors in what a user gave (arguments, config files and values, run directories, corrupt or
mismatched files on disk) end with one line `robot-rl: error: ...` on stderr and exit code 2,
never a traceback (USER_ERRORS; `-v` adds the traceback for a bug report).
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path


class CommandError(Exception):
    """A command cannot run with what it was given; the message is the whole explanation."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input or a bad file, not a bug: one error line, exit code 2."""
    from robot_rl.buffers.storage import ReplayFormatError
    from robot_rl.checkpoint import CheckpointError
    from robot_rl.config import ConfigError
    from robot_rl.datasets.store import DatasetFormatError
    return (CommandError, ConfigError, CheckpointError, ReplayFormatError, DatasetFormatError,
            FileExistsError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
            PermissionError, ValueError)


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in the one format every robot-rl error has."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        _fail(message)


def _fail(message: str):
    print(f"robot-rl: error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(2)


def _train_config(args: argparse.Namespace):
    from robot_rl import config as config_lib
    from robot_rl.config_ranges import validate_train_config
    from robot_rl.train import TrainConfig

    overrides = []
    for flag in ("task", "env", "obs", "steps", "seed", "run_dir"):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{flag}={value}")
    overrides += args.set or []
    from robot_rl.configs import resolve
    path = resolve(args.config) if args.config else None   # a file, or a shipped config's name
    return validate_train_config(config_lib.load(TrainConfig, path, overrides))


def _add_config_args(p: argparse.ArgumentParser) -> None:
    """A TrainConfig from a YAML file, the common fields as flags, and any field with --set."""
    p.add_argument("--config", help="YAML file with TrainConfig fields, or a shipped config's name "
                                    "(train_default, plain_rlpd, ...: `robot-rl config --list`)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any config field by its dotted path, e.g. agent.discount=0.99")
    p.add_argument("--task")
    p.add_argument("--env", help="any gymnasium env instead of a task: package.module:factory or a "
                                 "registered id (docs/your_env.md)")
    p.add_argument("--obs", choices=["state", "pixels"])
    p.add_argument("--steps", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--run-dir")


def cmd_train(args: argparse.Namespace) -> int:
    cfg = _train_config(args)
    if args.distributed and cfg.env:
        from robot_rl.config import ConfigError
        raise ConfigError("--distributed runs the built-in tasks; a --env run trains in one process")
    if args.distributed:
        # Actor and learner as two processes over ROS 2 (tasks/ holds the rclpy side).
        from robot_rl.tasks.ros.distributed import run_distributed
        final = run_distributed(cfg)
    else:
        from robot_rl.stop_signals import stop_on_signals
        from robot_rl.train import train
        with stop_on_signals() as stop:
            final = train(cfg, stop=stop)
        if final.get("stopped"):
            print(json.dumps(final))
            print(f"stopped at env step {final['env_steps']}; checkpoint saved in {cfg.run_dir}: "
                  "the same command resumes the run")
            return 130
    print(json.dumps(final))
    print(f"success rate {final['success_rate']:.2f} over {final['episodes']} episodes; "
          f"results in {cfg.run_dir} (eval.json, learning_curve.png, checkpoint/, tb/)")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    import yaml

    from robot_rl import config as config_lib
    if args.list:
        from robot_rl.configs import shipped
        for name, path in sorted(shipped().items()):
            print(f"{name}\t{path}")
        return 0
    print(yaml.safe_dump(config_lib.to_dict(_train_config(args)), sort_keys=False))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from robot_rl import checkpoint as ckpt
    from robot_rl import config as config_lib
    from robot_rl.agents.sac import SACAgent
    from robot_rl.run_env import make_run_env
    from robot_rl.run_files import device_for
    from robot_rl.train import TrainConfig, checkpoint_exists, evaluate

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise CommandError(f"{run_dir}: no such run directory")
    if not (run_dir / "config.yaml").is_file():
        raise CommandError(f"{run_dir}: not a run directory (config.yaml is missing)")
    if args.episodes < 0:
        raise CommandError(f"--episodes {args.episodes}: must be >= 0")
    cfg = config_lib.load(TrainConfig, run_dir / "config.yaml")
    if not checkpoint_exists(run_dir / "checkpoint"):
        raise CommandError(f"no checkpoint in {run_dir} (checkpoint.safetensors)")
    handle = make_run_env(cfg)
    agent = SACAgent(cfg.agent, handle.env.observation_space, handle.env.action_space,
                     device=device_for(cfg.device), seed=cfg.seed)
    counters = ckpt.load_agent(agent, run_dir / "checkpoint").get("counters", {})
    result = evaluate(handle, agent, args.episodes, seed=40_000_000 + args.seed)
    result.update({"task": cfg.env or cfg.task, "obs": cfg.obs, "env_steps": counters.get("env_steps")})
    handle.close()
    out = Path(args.out) if args.out else run_dir / f"eval_{args.episodes}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return 0


def cmd_demos(args: argparse.Namespace) -> int:
    from robot_rl.buffers import ReplayBuffer
    from robot_rl.run_env import make_env_and_expert
    from robot_rl.train import collect_demos

    if args.episodes < 1:
        raise CommandError(f"--episodes {args.episodes}: must be >= 1")
    if not 0.0 <= args.noise <= 10.0:
        raise CommandError(f"--noise {args.noise}: must be in [0, 10]")
    handle = make_env_and_expert(args.task, args.obs, seed=args.seed, expert_noise=args.noise)
    env = handle.env
    capacity = args.episodes * int(getattr(env.spec, "max_episode_steps", None) or 200) * 2
    buf = ReplayBuffer.create(Path(args.out), env.observation_space, env.action_space.shape[0],
                              capacity=max(capacity, 1000))
    stats = collect_demos(handle, buf, args.episodes, seed=args.seed)
    stats["transitions"] = len(buf)
    buf.close()
    handle.close()
    print(json.dumps(stats))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "learner":
        from robot_rl.bench.learner import main as bench_main
    elif args.what == "impedance":
        from robot_rl.bench.impedance import main as bench_main
    else:
        from robot_rl.bench.twin import main as bench_main
    return bench_main(args.options) or 0


def cmd_up(args: argparse.Namespace) -> int:
    # The ROS 2 bring-up lives in tasks/ros/ (it imports rclpy); the learning core stays ROS-free.
    from robot_rl.tasks.ros.bringup import main as bringup_main
    return bringup_main(args.rest)


# Modules that add their own sub-commands: human-in-the-loop tools, datasets, deployment.
COMMAND_MODULES = (
    "robot_rl.tasks.apps.record_demos",    # record-demos: SpaceMouse/keyboard/expert demos into a dataset
    "robot_rl.datasets.cli",      # export / import: LeRobotDataset v3
    "robot_rl.tasks.apps.record_labels",   # record-labels: success frames for the reward classifier
    "robot_rl.reward.cli",        # train-classifier
    "robot_rl.tasks.apps.deploy",          # deploy: run a policy without learning, success and cycle time
    "robot_rl.export",            # export-policy: TorchScript
    "robot_rl.tasks.apps.setup_tools",     # pose, cameras, check, gains, move: set-up tools on the live graph
    "robot_rl.tasks.task_file",            # tasks: the built-in tasks and your task files, validated
)


def _register_command_modules(sub) -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="robot-rl", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="scripted demos, online RLPD training, evaluation")
    _add_config_args(p)
    p.add_argument("--distributed", action="store_true",
                   help="run actor and learner as separate processes over ROS 2")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("config", help="print the resolved training config")
    _add_config_args(p)
    p.add_argument("--list", action="store_true", help="list the shipped configs instead")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("eval", help="evaluate a run's checkpoint")
    p.add_argument("run_dir")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="where to write the JSON (default RUN_DIR/eval_N.json)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("demos", help="record scripted-expert demos into a replay buffer")
    p.add_argument("--task", required=True)
    p.add_argument("--obs", choices=["state", "pixels"], default="state")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", type=float, default=0.1)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_demos)

    p = sub.add_parser("up", help="start a profile's ROS 2 graph (twin, franka, widowx); "
                                  "`robot-rl up --help` for its options", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("bench", help="benchmarks that print figures (see docs/benchmarks.md)")
    p.add_argument("what", choices=["learner", "impedance", "twin"])
    p.add_argument("options", nargs=argparse.REMAINDER,
                   help="the benchmark's own options (`robot-rl bench learner --help`), e.g. --quick")
    p.set_defaults(func=cmd_bench)

    _register_command_modules(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["up"]:  # bring-up parses its own options (argparse cannot pass "--x" through)
        return cmd_up(argparse.Namespace(rest=argv[1:]))
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return _exit_code(e)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except _user_errors() as e:
        if args.verbose:
            logging.getLogger("robot_rl.cli").exception("the error's traceback (-v)")
        # The typed errors are about input; a plain ValueError (e.g. an unknown task, a task
        # override the task refuses) usually is too, but may be a bug: say how to see more.
        hint = "" if args.verbose or type(e) is not ValueError else " (-v shows the traceback)"
        print(f"robot-rl: error: {' '.join(str(e).split())}{hint}", file=sys.stderr)
        return 2
    except SystemExit as e:
        if isinstance(e.code, str):      # a command that exits with a message
            print(f"robot-rl: error: {' '.join(e.code.split())}", file=sys.stderr)
            return 2
        return _exit_code(e)


def _exit_code(e: SystemExit) -> int:
    return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)


if __name__ == "__main__":
    sys.exit(main())
