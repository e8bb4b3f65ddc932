"""The reward classifier: shapes, the safetensors file (round trip, corrupt files), labels on
disk, balanced training on cached features, and the `train-classifier` command.

Images are real uint8 pictures made here (a textured background with a coloured square: red =
success, blue = not), so the frozen ResNet-10 sees real pixels; they are small (64 px) to keep
the backbone cheap on 2 cores."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from robot_rl.reward.classifier import ClassifierConfig, RewardClassifier
from robot_rl.reward.labels import LabelSet, LabelWriter, load_labels, read_index
from robot_rl.reward.train_classifier import (TrainClassifierConfig, choose_threshold, split_by_episode,
                                              train_classifier, train_on_labels)

SIZE = 64


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def square_images(labels: np.ndarray, seed: int) -> np.ndarray:
    """A noisy grey-brown 'table' with a square at a random place: red for 1, blue for 0."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    imgs = rng.integers(60, 120, (n, SIZE, SIZE, 3)).astype(np.uint8)
    imgs[..., 0] += 30
    for i, y in enumerate(labels):
        r, c = rng.integers(4, SIZE - 20, 2)
        imgs[i, r:r + 16, c:c + 16] = (220, 30, 30) if y else (30, 40, 220)
    return imgs


def synthetic_labels(episodes: int = 16, per_episode: int = 12, seed: int = 0) -> LabelSet:
    rng = np.random.default_rng(seed)
    labels = (rng.random(episodes * per_episode) < 0.35).astype(np.int64)
    return LabelSet(images={"front": square_images(labels, seed)}, labels=labels,
                    episodes=np.repeat(np.arange(episodes), per_episode),
                    steps=np.tile(np.arange(per_episode), episodes))


def small_classifier(num_classes: int = 2, cameras=("front",), threshold: float = 0.5) -> RewardClassifier:
    return RewardClassifier(ClassifierConfig(cameras=cameras, image_size=SIZE, num_classes=num_classes,
                                             threshold=threshold))


def test_shapes_from_images_and_cached_features():
    model = small_classifier(num_classes=3, cameras=("wrist", "front"))
    imgs = {c: torch.as_tensor(square_images(np.array([0, 1, 0, 1, 1]), i)) for i, c in enumerate(("wrist", "front"))}
    logits = model(imgs)
    assert logits.shape == (5, 3)
    probs = model.probs({c: v.numpy() for c, v in imgs.items()})
    assert probs.shape == (5, 3) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert model.probs({c: v[0].numpy() for c, v in imgs.items()}).shape == (1, 3)  # single frame
    # cached features, (B, K, C, h, w): the same logits as the images for variant 0 in eval mode
    from robot_rl.networks.encoder import precompute_features
    feats = {"feat/" + c: precompute_features(model.encoder, imgs[c], 2) for c in imgs}
    assert feats["feat/front"].shape == (5, 2, 512, 2, 2)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(feats), model(imgs), atol=2e-2, rtol=1e-2)  # float16 cache
    # only the head and the pooling train: the backbone is frozen
    assert all(not p.requires_grad for p in model.encoder.backbone.parameters())
    assert model.trainable_parameters()


def test_same_seed_same_random_backbone():
    a, b = small_classifier(), small_classifier()
    for (k, va), vb in zip(a.encoder.backbone.state_dict().items(), b.encoder.backbone.state_dict().values()):
        assert torch.equal(va, vb), k


def test_save_load_round_trip(tmp_path):
    model = small_classifier(num_classes=3, threshold=0.8)
    with torch.no_grad():
        model.head[-1].bias.copy_(torch.tensor([0.1, -0.3, 0.7]))
    path = model.save(tmp_path / "clf", extra={"note": "test"})
    assert path.name == "clf.safetensors" and not list(tmp_path.glob("*.tmp"))
    loaded = RewardClassifier.load(path)
    assert loaded.cfg.cameras == ("front",) and loaded.cfg.num_classes == 3
    assert loaded.threshold == 0.8 and loaded.header_extra == {"note": "test"}
    imgs = {"front": square_images(np.array([1, 0]), 3)}
    np.testing.assert_allclose(loaded.probs(imgs), model.probs(imgs), atol=1e-6)
    assert RewardClassifier.load(path, threshold=0.6).threshold == 0.6


def test_load_rejects_bad_files(tmp_path):
    model = small_classifier()
    good = model.save(tmp_path / "good.safetensors")
    with pytest.raises(ValueError, match="does not exist"):
        RewardClassifier.load(tmp_path / "missing.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(ValueError, match="cannot read"):
        RewardClassifier.load(corrupt)
    tensors = load_file(str(good))
    header = json.loads(__import__("safetensors").safe_open(str(good), "pt").metadata()["robot_rl"])

    def write(name, tensors, header):
        p = tmp_path / name
        save_file(tensors, str(p), metadata={"robot_rl": json.dumps(header)} if header is not None else None)
        return p

    with pytest.raises(ValueError, match="header"):
        RewardClassifier.load(write("nohdr.safetensors", tensors, None))
    with pytest.raises(ValueError, match="not a robot_rl reward classifier"):
        RewardClassifier.load(write("ver.safetensors", tensors, {**header, "version": 99}))
    missing = dict(tensors)
    missing.pop("head.4.bias")
    with pytest.raises(ValueError, match="missing tensors"):
        RewardClassifier.load(write("miss.safetensors", missing, header))
    nonfinite = dict(tensors)
    nonfinite["head.4.bias"] = torch.tensor([float("nan"), 0.0])
    with pytest.raises(ValueError, match="non-finite"):
        RewardClassifier.load(write("nan.safetensors", nonfinite, header))
    with pytest.raises(ValueError, match="shape"):
        RewardClassifier.load(write("shape.safetensors", tensors, {**header, "num_classes": 3,
                                                                    "class_names": ["a", "b", "c"]}))


def test_bad_inputs_raise():
    model = small_classifier()
    with pytest.raises(ValueError, match="needs camera 'front'"):
        model.probs({"wrist": np.zeros((SIZE, SIZE, 3), np.uint8)})
    with pytest.raises(ValueError, match="uint8"):
        model({"front": torch.zeros((1, SIZE, SIZE, 3), dtype=torch.float32)})
    with pytest.raises(ValueError, match="uint8"):
        model({"front": torch.zeros((1, 32, 32, 3), dtype=torch.uint8)})
    with pytest.raises(ValueError, match="num_classes"):
        ClassifierConfig(num_classes=1)
    with pytest.raises(ValueError, match="threshold"):
        ClassifierConfig(threshold=0.0)
    with pytest.raises(ValueError, match="threshold"):
        ClassifierConfig(threshold=float("nan"))
    with pytest.raises(ValueError, match="distinct"):
        ClassifierConfig(cameras=("front", "front"))
    with pytest.raises(ValueError, match="target_precision"):
        TrainClassifierConfig(target_precision=1.5)


def test_labels_round_trip_and_crash_leftovers(tmp_path):
    w = LabelWriter(tmp_path, ["front"], SIZE, task="t", chunk_frames=4)
    imgs = square_images(np.array([0, 1, 0, 1, 1, 0]), 0)
    for i, img in enumerate(imgs):
        w.add({"front": img}, i % 2, episode=i // 3, step=i % 3)
    w.close()
    assert len(read_index(tmp_path)["chunks"]) == 2 and w.counts() == [3, 3]
    # a crash mid-write leaves a temp file and an unindexed chunk: ignored, then cleaned
    (tmp_path / "chunk_000002.npz").write_bytes(b"half written")
    (tmp_path / "index.json.tmp").write_text("{")
    got = load_labels(tmp_path)
    np.testing.assert_array_equal(got.images["front"], imgs)
    assert got.labels.tolist() == [0, 1, 0, 1, 0, 1] and got.episodes.tolist() == [0, 0, 0, 1, 1, 1]
    w2 = LabelWriter(tmp_path, ["front"], SIZE)
    assert w2.next_episode == 2 and not (tmp_path / "chunk_000002.npz").exists()
    with pytest.raises(ValueError, match="holds labels for cameras"):
        LabelWriter(tmp_path, ["wrist"], SIZE)
    with pytest.raises(ValueError, match="label 2 outside"):
        w2.add({"front": imgs[0]}, 2, 0, 0)
    with pytest.raises(ValueError, match="expected uint8"):
        w2.add({"front": imgs[0][:32]}, 1, 0, 0)
    with pytest.raises(ValueError, match="no frames of cameras"):
        load_labels(tmp_path, ["wrist"])
    (tmp_path / "chunk_000000.npz").write_bytes(b"corrupt")
    with pytest.raises(ValueError, match="missing or corrupt"):
        load_labels(tmp_path)
    (tmp_path / "index.json").write_text("not json")
    with pytest.raises(ValueError, match="corrupt"):
        load_labels(tmp_path)


def test_split_keeps_episodes_whole():
    labels = synthetic_labels(episodes=20)
    train, test, kind = split_by_episode(labels, 0.25, seed=1)
    assert kind == "episode" and test.any() and train.any()
    assert not set(labels.episodes[train]) & set(labels.episodes[test])
    assert (labels.labels[test] == 1).any() and (labels.labels[test] == 0).any()


def test_choose_threshold_reaches_target_precision():
    scores = np.array([0.05, 0.2, 0.35, 0.6, 0.7, 0.9, 0.95])
    positive = np.array([0, 0, 1, 0, 1, 1, 1], bool)
    t, met = choose_threshold(scores, positive, 0.95)
    assert met and 0.6 < t <= 0.7          # above the 0.6 negative, keeps 3 of 4 positives
    t, met = choose_threshold(scores, positive, 0.7)
    assert met and 0.2 < t <= 0.35          # 4/5 precision is enough: keep every positive
    t, met = choose_threshold(np.array([0.9, 0.9]), np.array([True, False]), 0.95)
    assert not met


def test_training_separates_real_images_and_writes_report(tmp_path):
    labels = synthetic_labels(episodes=16, per_episode=12)
    w = LabelWriter(tmp_path / "labels", ["front"], SIZE, task="squares")
    for i in range(len(labels)):
        w.add({"front": labels.images["front"][i]}, labels.labels[i], labels.episodes[i], labels.steps[i])
    w.close()
    cfg = TrainClassifierConfig(epochs=15, shift_variants=2, batch_size=64, lr=1e-3, test_fraction=0.25)
    report = train_classifier(tmp_path / "labels", tmp_path / "out", cfg)
    assert report["split"] == "episode" and report["test"]["frames"] >= 36
    assert report["accuracy"] >= 0.95 and report["accuracy_at_0.5"] >= 0.95, report
    assert report["precision"] >= 0.95 and report["target_precision_met"]
    for name in ("classifier.safetensors", "report.json", "pr_curve.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    model = RewardClassifier.load(tmp_path / "out" / "classifier.safetensors")
    assert model.threshold == report["threshold"]
    fresh = square_images(np.array([1] * 10 + [0] * 10), seed=99)  # frames it never saw
    p = model.success_prob({"front": fresh})
    assert (p[:10] >= model.threshold).mean() >= 0.8 and (p[10:] < model.threshold).all()


def test_training_needs_every_class():
    labels = synthetic_labels()
    labels.labels[:] = 0
    with pytest.raises(ValueError, match="every class needs frames"):
        train_on_labels(labels, TrainClassifierConfig(epochs=1), SIZE)


def test_cli_train_classifier(tmp_path, capsys):
    from robot_rl.cli import main
    labels = synthetic_labels(episodes=8, per_episode=8)
    w = LabelWriter(tmp_path / "labels", ["front"], SIZE)
    for i in range(len(labels)):
        w.add({"front": labels.images["front"][i]}, labels.labels[i], labels.episodes[i], labels.steps[i])
    w.close()
    rc = main(["train-classifier", "--labels", str(tmp_path / "labels"), "--cameras", "front",
               "--out", str(tmp_path / "out"), "--epochs", "2", "--shift-variants", "1",
               "--target-precision", "0.9"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out) >= {"accuracy", "precision", "recall", "threshold"}
    assert json.loads((tmp_path / "out" / "report.json").read_text())["target_precision"] == 0.9
    # Not a label directory: one error line and exit code 2 (the CLI's contract), no traceback.
    assert main(["train-classifier", "--labels", str(tmp_path), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("robot-rl: error:") and "not a label directory" in err[-1]
