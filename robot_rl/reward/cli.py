"""`robot-rl train-classifier`: train the reward classifier on recorded labels.

    robot-rl train-classifier --labels DIR --cameras wrist,front --out DIR
                              [--target-precision 0.95] [--epochs 40] [--backbone FILE]

Writes OUT/classifier.safetensors (weights + JSON header), OUT/report.json (held-out accuracy,
precision, recall, the chosen threshold) and OUT/pr_curve.png.
"""
from __future__ import annotations

import argparse
import json


def cmd_train_classifier(args: argparse.Namespace) -> int:
    import torch

    from robot_rl.reward.train_classifier import (TrainClassifierConfig, parse_cameras, summary,
                                                  train_classifier)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = TrainClassifierConfig(cameras=parse_cameras(args.cameras), target_precision=args.target_precision,
                                epochs=args.epochs, shift_variants=args.shift_variants, seed=args.seed,
                                test_fraction=args.test_fraction, pretrained_backbone=args.backbone)
    report = train_classifier(args.labels, args.out, cfg)
    print(summary(report))
    print(json.dumps({k: report[k] for k in ("accuracy", "precision", "recall", "threshold",
                                              "target_precision_met", "classifier")}))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("train-classifier", help="train the reward classifier on labelled frames")
    p.add_argument("--labels", required=True, help="directory written by `robot-rl record-labels`")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--cameras", default="", help="comma-separated cameras (default: all in the labels)")
    p.add_argument("--target-precision", type=float, default=0.95)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--shift-variants", type=int, default=4,
                   help="cached random-shift variants per training frame (1 = no augmentation)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="fraction of episodes held out")
    p.add_argument("--backbone", default=None, help="pretrained ResNet-10 safetensors (default: frozen random)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=cmd_train_classifier)
