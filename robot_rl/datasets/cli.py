"""`robot-rl export` and `robot-rl import`: LeRobotDataset v3 interchange of episode datasets.

    robot-rl export DATASET --lerobot OUT [--repo-id NAME] [--successful-only] [--fps HZ]
    robot-rl import --lerobot SRC OUT_DATASET
"""
from __future__ import annotations

import argparse
import json
import sys


def cmd_export(args: argparse.Namespace) -> int:
    from robot_rl.datasets.lerobot import export_lerobot
    from robot_rl.datasets.store import DatasetFormatError

    try:
        result = export_lerobot(args.dataset, args.lerobot, repo_id=args.repo_id, fps=args.fps,
                                successful_only=args.successful_only)
    except (DatasetFormatError, FileExistsError, ValueError) as e:
        print(f"robot-rl export: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from robot_rl.datasets.lerobot import import_lerobot

    try:
        result = import_lerobot(args.lerobot, args.out_dataset)
    except (ValueError, FileExistsError) as e:   # LeRobotFormatError and DatasetFormatError too
        print(f"robot-rl import: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export an episode dataset as a LeRobotDataset v3")
    p.add_argument("dataset", help="episode dataset directory (robot-rl record-demos --out)")
    p.add_argument("--lerobot", required=True, metavar="OUT", help="new LeRobotDataset directory")
    p.add_argument("--repo-id", default="robot_rl/dataset", help="dataset name for the card")
    p.add_argument("--fps", type=float, default=None,
                   help="frames per second (default: the episodes' control rate)")
    p.add_argument("--successful-only", action="store_true", help="leave out failed episodes")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser("import", help="import a LeRobotDataset v3 into an episode dataset")
    p.add_argument("--lerobot", required=True, metavar="SRC", help="LeRobotDataset v3 directory")
    p.add_argument("out_dataset", help="episode dataset directory (created, or appended to)")
    p.set_defaults(func=cmd_import)
