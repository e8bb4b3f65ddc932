"""Trains the reward classifier on labelled frames (robot_rl.reward.labels) and reports it.

    labels -> held-out split BY EPISODE (no episode's frames on both sides)
           -> frozen backbone features of every frame, once: K shift variants per training frame
              (variant 0 unshifted, 1..K-1 DrQ random shifts, robot_rl.augment.random_shift via
              robot_rl.networks.precompute_features), 1 unshifted variant per held-out frame
           -> the small head trains on class-balanced batches (each class equally often, drawn
              with replacement), one cached variant picked at random per sample
           -> held-out accuracy, precision and recall of the success class, the threshold that
              reaches the target precision, report.json and pr_curve.png

Why cached features: the backbone is frozen, so its features of a given image never change;
computing them once (N*K backbone passes) instead of for every sampled batch makes training
the head take seconds on 2 CPU cores. The price: augmentation draws from K fixed shifts per
frame instead of a fresh one each time (K=4 by default: most of DrQ's effect, 4x the memory,
16 KiB per variant per camera in float16).

The threshold is the middle of the grid thresholds (0.01..0.99) that reach the target precision
with the best recall, measured on the held-out frames. It is chosen on the same frames the
report measures, so the precision there is optimistic; accuracy is also reported at 0.5.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from robot_rl.networks.encoder import FEATURE_PREFIX, EncoderConfig, precompute_features
from robot_rl.reward.classifier import ClassifierConfig, RewardClassifier
from robot_rl.reward.labels import LabelSet, load_labels, read_index

log = logging.getLogger(__name__)


@dataclass
class TrainClassifierConfig:
    cameras: tuple[str, ...] = ()        # () = every camera in the labels
    target_precision: float = 0.95
    epochs: int = 40                     # one epoch = ceil(train frames / batch_size) steps
    batch_size: int = 128
    lr: float = 3e-4
    weight_decay: float = 1e-4
    test_fraction: float = 0.2           # of the episodes
    shift_variants: int = 4              # K cached variants per training frame (1 = no augmentation)
    augment_pad: int = 4
    seed: int = 0
    pretrained_backbone: Optional[str] = None   # local safetensors file; None: frozen random backbone
    threads: int = 0                     # torch threads (0: leave as is)

    def __post_init__(self) -> None:
        self.cameras = tuple(self.cameras)
        if not 0.0 < self.target_precision <= 1.0:
            raise ValueError(f"target_precision must be in (0, 1], got {self.target_precision}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.epochs < 1 or self.batch_size < 2 or self.shift_variants < 1:
            raise ValueError("epochs, batch_size (>= 2) and shift_variants must be positive")


def split_by_episode(labels: LabelSet, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Boolean train/test masks. Whole episodes go to one side; the test side gets at least one
    episode with a success frame and one without... where the data allows. Falls back to a split
    in contiguous blocks of frames when there are fewer than 2 episodes."""
    rng = np.random.default_rng(seed)
    episodes = np.unique(labels.episodes)
    if len(episodes) < 2:
        log.warning("labels hold a single episode id: splitting by contiguous frame blocks instead")
        n = len(labels)
        blocks = np.array_split(np.arange(n), 10)
        test_blocks = rng.choice(10, size=max(1, round(10 * test_fraction)), replace=False)
        test = np.zeros(n, dtype=bool)
        for b in test_blocks:
            test[blocks[b]] = True
        return ~test, test, "frame_blocks"
    last = labels.num_classes - 1
    has_pos = {e for e in episodes if np.any(labels.labels[labels.episodes == e] == last)}
    pos_eps = rng.permutation([e for e in episodes if e in has_pos])
    neg_eps = rng.permutation([e for e in episodes if e not in has_pos])
    # Stratified: the same fraction of success and of no-success episodes in the test set,
    # at least one of each kind where there are two or more.
    n_pos = min(len(pos_eps) - 1, max(1, round(test_fraction * len(pos_eps)))) if len(pos_eps) > 1 else 0
    n_neg = min(len(neg_eps) - 1, max(1, round(test_fraction * len(neg_eps)))) if len(neg_eps) > 1 else 0
    if n_pos + n_neg == 0:
        n_pos = 1 if len(pos_eps) else 0
        n_neg = 0 if n_pos else 1
    test_eps = set(pos_eps[:n_pos].tolist()) | set(neg_eps[:n_neg].tolist())
    test = np.isin(labels.episodes, list(test_eps))
    return ~test, test, "episode"


def precision_recall(scores: np.ndarray, positive: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = scores[None, :] >= thresholds[:, None]
    tp = (pred & positive[None, :]).sum(1)
    fp = (pred & ~positive[None, :]).sum(1)
    fn = (~pred & positive[None, :]).sum(1)
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
    recall = tp / np.maximum(tp + fn, 1)
    return precision, recall


def choose_threshold(scores: np.ndarray, positive: np.ndarray, target_precision: float) -> tuple[float, bool]:
    """(threshold, target met): the middle of the grid thresholds with precision >= target and
    the best recall among those; if none reaches the target, the most precise one."""
    grid = np.round(np.arange(0.01, 1.0, 0.01), 2)
    precision, recall = precision_recall(scores, positive, grid)
    predicted_any = (scores[None, :] >= grid[:, None]).any(1)
    ok = (precision >= target_precision) & predicted_any
    if ok.any():
        best = recall[ok].max()
        cands = grid[ok & (recall == best)]
        return float(cands[len(cands) // 2]), True
    best_p = precision[predicted_any].max() if predicted_any.any() else 0.0
    cands = grid[predicted_any & (precision == best_p)]
    return (float(cands[len(cands) // 2]) if len(cands) else 0.5), False


def _features(model: RewardClassifier, images: dict[str, np.ndarray], idx: np.ndarray, k: int,
              generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {FEATURE_PREFIX + cam: precompute_features(model.encoder, images[cam][idx], k, generator=generator)
            for cam in model.cameras}


@torch.no_grad()
def _predict(model: RewardClassifier, feats: dict[str, torch.Tensor], batch: int = 1024) -> np.ndarray:
    model.eval()
    n = next(iter(feats.values())).shape[0]
    out = [torch.softmax(model({k: v[i:i + batch] for k, v in feats.items()}), -1)
           for i in range(0, n, batch)]
    return torch.cat(out).numpy()


def train_on_labels(labels: LabelSet, cfg: TrainClassifierConfig, image_size: int) -> tuple[RewardClassifier, dict]:
    """Trains a classifier on in-memory labels; returns it (threshold set) and the report."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    cameras = cfg.cameras or tuple(labels.images)
    counts = labels.counts()
    if min(counts) == 0:
        raise ValueError(f"every class needs frames; per-class counts are {counts}")
    train_mask, test_mask, split = split_by_episode(labels, cfg.test_fraction, cfg.seed)
    train_idx, test_idx = np.flatnonzero(train_mask), np.flatnonzero(test_mask)
    y_train, y_test = labels.labels[train_idx], labels.labels[test_idx]
    train_counts = np.bincount(y_train, minlength=labels.num_classes)
    if train_counts.min() == 0:
        raise ValueError(f"the training split lacks a class (per-class counts {train_counts.tolist()}); "
                         "record more episodes")

    model = RewardClassifier(ClassifierConfig(
        cameras=cameras, image_size=image_size, num_classes=labels.num_classes,
        encoder=EncoderConfig(pretrained_backbone=cfg.pretrained_backbone, freeze_backbone=True,
                              augment_pad=cfg.augment_pad, trace_frozen_backbone=False)))
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    train_feats = _features(model, labels.images, train_idx, cfg.shift_variants, gen)
    test_feats = _features(model, labels.images, test_idx, 1, gen)
    encode_s = time.perf_counter() - t0

    # Class-balanced batches: every class equally often, frames drawn with replacement.
    by_class = [np.flatnonzero(y_train == c) for c in range(labels.num_classes)]
    per_class = max(1, cfg.batch_size // labels.num_classes)
    steps = cfg.epochs * max(1, math.ceil(len(train_idx) / cfg.batch_size))
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    y_train_t = torch.as_tensor(y_train)
    model.train()
    losses = []
    t0 = time.perf_counter()
    for _ in range(steps):
        pick = torch.as_tensor(np.concatenate([rng.choice(ix, per_class) for ix in by_class]))
        logits = model({k: v[pick] for k, v in train_feats.items()}, generator=gen)
        loss = F.cross_entropy(logits, y_train_t[pick])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    train_s = time.perf_counter() - t0

    probs = _predict(model, test_feats)
    last = labels.num_classes - 1
    scores, positive = probs[:, -1], y_test == last
    threshold, met = choose_threshold(scores, positive, cfg.target_precision)
    model.cfg.threshold = threshold
    grid = np.round(np.arange(0.01, 1.0, 0.01), 2)
    prec_curve, rec_curve = precision_recall(scores, positive, grid)
    p_t, r_t = precision_recall(scores, positive, np.array([threshold]))
    pred_success = scores >= threshold
    report = {
        "cameras": list(cameras), "num_classes": labels.num_classes, "image_size": image_size,
        "backbone": (f"pretrained ({cfg.pretrained_backbone})" if cfg.pretrained_backbone
                     else f"frozen random ResNet-10 (seed {model.cfg.backbone_seed})"),
        "split": split,
        "train": {"frames": int(len(train_idx)), "episodes": int(len(np.unique(labels.episodes[train_idx]))),
                  "per_class": train_counts.tolist()},
        "test": {"frames": int(len(test_idx)), "episodes": int(len(np.unique(labels.episodes[test_idx]))),
                 "per_class": np.bincount(y_test, minlength=labels.num_classes).tolist()},
        "target_precision": cfg.target_precision,
        "threshold": threshold,
        "target_precision_met": met,
        "precision": float(p_t[0]), "recall": float(r_t[0]),
        # success vs not, at the chosen threshold (the decision the env wrapper makes)
        "accuracy": float(np.mean(pred_success == positive)) if len(test_idx) else float("nan"),
        "accuracy_at_0.5": float(np.mean((scores >= 0.5) == positive)) if len(test_idx) else float("nan"),
        "class_accuracy": float(np.mean(probs.argmax(1) == y_test)) if len(test_idx) else float("nan"),
        "confusion": [[int(np.sum((y_test == a) & (probs.argmax(1) == b))) for b in range(labels.num_classes)]
                      for a in range(labels.num_classes)],
        "pr_curve": {"threshold": grid.tolist(), "precision": prec_curve.tolist(), "recall": rec_curve.tolist()},
        "steps": steps, "shift_variants": cfg.shift_variants,
        "final_loss": float(np.mean(losses[-20:])),
        "encode_s": encode_s, "train_s": train_s, "wall_s": time.perf_counter() - started,
        "config": asdict(cfg),
    }
    if not met:
        log.warning("no threshold reaches precision %.3f on the held-out frames; using %.2f "
                    "(precision %.3f)", cfg.target_precision, threshold, report["precision"])
    return model.eval(), report


def plot_pr_curve(report: dict, png: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = report["pr_curve"]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(c["recall"], c["precision"], ".-", color="tab:blue", label="held-out frames")
    ax.plot([report["recall"]], [report["precision"]], "o", color="tab:red",
            label=f"threshold {report['threshold']:.2f}")
    ax.axhline(report["target_precision"], color="gray", ls="--", lw=1, label="target precision")
    ax.set_xlabel("recall (success class)")
    ax.set_ylabel("precision")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title(f"reward classifier ({', '.join(report['cameras'])})")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def train_classifier(labels_dir: str | Path, out_dir: str | Path, cfg: TrainClassifierConfig) -> dict:
    """Reads LABELS_DIR, trains, writes OUT_DIR/{classifier.safetensors, report.json, pr_curve.png}."""
    index = read_index(labels_dir)
    labels = load_labels(labels_dir, cfg.cameras or None)
    model, report = train_on_labels(labels, cfg, int(index["image_size"]))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report["labels"] = str(labels_dir)
    report["task"] = index.get("task", "")
    path = model.save(out / "classifier.safetensors",
                      extra={"task": report["task"], "accuracy": report["accuracy"],
                             "precision": report["precision"], "recall": report["recall"]})
    report["classifier"] = str(path)
    tmp = out / "report.json.tmp"
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(out / "report.json")
    plot_pr_curve(report, out / "pr_curve.png")
    return report


def summary(report: dict) -> str:
    return (f"held-out {report['test']['frames']} frames / {report['test']['episodes']} episodes: "
            f"accuracy {report['accuracy']:.3f} (at 0.5: {report['accuracy_at_0.5']:.3f}), "
            f"precision {report['precision']:.3f}, recall {report['recall']:.3f} at threshold "
            f"{report['threshold']:.2f} (target precision {report['target_precision']:.2f}"
            f"{'' if report['target_precision_met'] else ', NOT met'})")


def parse_cameras(text: str | Sequence[str] | None) -> tuple[str, ...]:
    if not text:
        return ()
    if isinstance(text, str):
        text = text.split(",")
    return tuple(c.strip() for c in text if c.strip())
