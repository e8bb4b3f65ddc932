"""LeRobotDataset v3 export/import: the layout and field names, exact round trips (state and
pixels), a foreign dataset without our extras, file roll-over, clear errors, and the CLI."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from robot_rl import cli
from robot_rl.datasets import EpisodeDataset
from robot_rl.datasets.lerobot import (LeRobotFormatError, export_lerobot, import_lerobot,
                                       read_lerobot)
from test_datasets import space, synthetic_episode, twin_episodes

A = 7


@pytest.fixture
def state_dataset(tmp_path):
    rng = np.random.default_rng(0)
    eps = [synthetic_episode(rng, 4, control_hz=10.0), synthetic_episode(rng, 3, end="truncated"),
           synthetic_episode(rng, 2, success=False, end="none")]
    eps[1].metadata["task"] = "other task"
    with EpisodeDataset.create(tmp_path / "ds", space(), A) as ds:
        for e in eps:
            ds.append(e)
    return tmp_path / "ds", eps


def test_export_writes_the_v3_layout(state_dataset, tmp_path):
    src, eps = state_dataset
    result = export_lerobot(src, tmp_path / "lr", repo_id="me/demos", fps=10)
    assert result["episodes"] == 3 and result["frames"] == 9
    root = tmp_path / "lr"
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10
    assert info["total_episodes"] == 3 and info["total_frames"] == 9 and info["total_tasks"] == 2
    assert info["chunks_size"] == 1000 and info["data_files_size_in_mb"] == 100
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] is None and info["splits"] == {"train": "0:3"}
    f = info["features"]
    assert f["observation.state"] == {"dtype": "float32", "shape": [5], "names": None}
    assert f["action"]["shape"] == [7] and f["action"]["names"][-1] == "gripper"
    assert f["next.reward"]["dtype"] == "float32" and f["next.done"]["dtype"] == "bool"
    for name in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert f[name]["shape"] == [1]

    data = pq.read_table(root / "data" / "chunk-000" / "file-000.parquet")
    assert set(data.column_names) == set(f)
    np.testing.assert_array_equal(data.column("index").to_numpy(), np.arange(9))
    np.testing.assert_array_equal(data.column("episode_index").to_numpy(), [0] * 4 + [1] * 3 + [2] * 2)
    np.testing.assert_array_equal(data.column("frame_index").to_numpy(), [0, 1, 2, 3, 0, 1, 2, 0, 1])
    np.testing.assert_allclose(data.column("timestamp").to_numpy(), data.column("frame_index").to_numpy() / 10)
    np.testing.assert_array_equal(data.column("next.done").to_numpy(zero_copy_only=False),
                                  [0, 0, 0, 1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(np.stack(data.column("observation.state").to_numpy(zero_copy_only=False)),
                                  np.concatenate([e.observations["state"][:-1] for e in eps]))
    np.testing.assert_array_equal(data.column("task_index").to_numpy(), [0] * 4 + [1] * 3 + [0] * 2)

    tasks = pq.read_table(root / "meta" / "tasks.parquet")
    pandas_meta = json.loads(tasks.schema.metadata[b"pandas"])
    assert pandas_meta["index_columns"] == ["__index_level_0__"]   # pd.read_parquet: tasks as index
    assert dict(zip(tasks.column("__index_level_0__").to_pylist(), tasks.column("task_index").to_pylist())) \
        == {"unit": 0, "other task": 1}

    episodes = pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    assert [e["length"] for e in episodes] == [4, 3, 2]
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in episodes] == [(0, 4), (4, 7), (7, 9)]
    assert episodes[1]["tasks"] == ["other task"] and episodes[0]["data/file_index"] == 0
    assert episodes[0]["stats/action/count"] == [4]

    stats = json.loads((root / "meta" / "stats.json").read_text())
    all_actions = np.concatenate([e.actions for e in eps]).astype(np.float64)
    np.testing.assert_allclose(stats["action"]["mean"], all_actions.mean(0), rtol=1e-9)
    np.testing.assert_allclose(stats["action"]["std"], all_actions.std(0), rtol=1e-9)
    assert stats["action"]["count"] == [9]
    assert set(stats["next.reward"]) == {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
    assert np.all(np.diff([stats["action"][q] for q in ("q01", "q10", "q50", "q90", "q99")], axis=0) >= 0)


def test_our_export_round_trips_exactly(state_dataset, tmp_path):
    src, eps = state_dataset
    export_lerobot(src, tmp_path / "lr")
    assert import_lerobot(tmp_path / "lr", tmp_path / "back") == {"episodes": 3, "frames": 9,
                                                                   "out": str(tmp_path / "back")}
    back = EpisodeDataset.open(tmp_path / "back")
    for want, got in zip(eps, back):
        assert got.equal_arrays(want)
        for key in ("task", "success", "source", "seed"):
            assert got.metadata[key] == want.metadata[key]
    # Importing again appends (same spec).
    assert import_lerobot(tmp_path / "lr", tmp_path / "back")["episodes"] == 3
    assert len(EpisodeDataset.open(tmp_path / "back")) == 6


def test_successful_only_and_data_file_roll_over(state_dataset, tmp_path):
    src, eps = state_dataset
    result = export_lerobot(src, tmp_path / "lr", successful_only=True, data_files_size_in_mb=1e-6)
    assert result["episodes"] == 2 and len(result["files"]) == 2   # one file per episode here
    got = list(read_lerobot(tmp_path / "lr"))
    assert len(got) == 2 and all(g.equal_arrays(w) for g, w in zip(got, eps[:2]))


def test_pixel_episode_round_trips_through_png(tmp_path):
    env, episodes = twin_episodes("pixels", n_success=0, n_fail=1, max_steps=2)
    with EpisodeDataset.create(tmp_path / "ds", env.observation_space, A) as ds:
        ds.append(episodes[0])
    env.close()
    export_lerobot(tmp_path / "ds", tmp_path / "lr")
    info = json.loads((tmp_path / "lr" / "meta" / "info.json").read_text())
    assert info["features"]["observation.images.wrist"] == {
        "dtype": "image", "shape": [128, 128, 3], "names": ["height", "width", "channels"]}
    data = pq.read_table(tmp_path / "lr" / "data" / "chunk-000" / "file-000.parquet")
    cell = data.column("observation.images.front")[0].as_py()
    assert cell["bytes"][:8] == b"\x89PNG\r\n\x1a\n"
    stats = json.loads((tmp_path / "lr" / "meta" / "stats.json").read_text())
    for k in ("mean", "std", "min", "q50"):
        assert np.asarray(stats["observation.images.wrist"][k]).shape == (3, 1, 1)
    wrist = episodes[0].observations["wrist"][:-1].astype(np.float64) / 255
    np.testing.assert_allclose(np.ravel(stats["observation.images.wrist"]["mean"]), wrist.mean((0, 1, 2)))
    import_lerobot(tmp_path / "lr", tmp_path / "back")
    assert EpisodeDataset.open(tmp_path / "back").read_episode(0).equal_arrays(episodes[0])


def test_a_foreign_dataset_without_our_extras(state_dataset, tmp_path):
    src, eps = state_dataset
    export_lerobot(src, tmp_path / "lr")
    shutil.rmtree(tmp_path / "lr" / "meta" / "robot_rl")   # as LeRobot itself would write it
    got = list(read_lerobot(tmp_path / "lr"))
    for g, w in zip(got, eps):
        np.testing.assert_array_equal(g.actions, w.actions)
        np.testing.assert_array_equal(g.observations["state"][:-1], w.observations["state"][:-1])
        # LeRobot keeps no final observation: the last one is repeated.
        np.testing.assert_array_equal(g.observations["state"][-1], w.observations["state"][-2])
        assert g.metadata["source"] == "lerobot" and g.metadata["task"] == w.metadata["task"]
    assert [bool(g.terminated[-1]) for g in got] == [True, False, False]
    assert [bool(g.truncated[-1]) for g in got] == [False, True, False]
    assert [g.metadata["success"] for g in got] == [bool(w.rewards[-1] > 0) for w in eps]


def test_clear_errors(state_dataset, tmp_path):
    src, _ = state_dataset
    export_lerobot(src, tmp_path / "lr")
    with pytest.raises(FileExistsError):
        export_lerobot(src, tmp_path / "lr")
    info_path = tmp_path / "lr" / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(LeRobotFormatError, match="v2.1"):
        list(read_lerobot(tmp_path / "lr"))
    video = dict(info)
    video["features"] = {**info["features"], "observation.images.top": {
        "dtype": "video", "shape": [8, 8, 3], "names": ["height", "width", "channels"]}}
    info_path.write_text(json.dumps(video))
    with pytest.raises(LeRobotFormatError, match="video"):
        list(read_lerobot(tmp_path / "lr"))
    with pytest.raises(LeRobotFormatError, match="not a LeRobotDataset"):
        list(read_lerobot(tmp_path))
    with EpisodeDataset.create(tmp_path / "other", space((8, 8, 3)), A):
        pass
    info_path.write_text(json.dumps(info))
    with pytest.raises(ValueError, match="another spec"):
        import_lerobot(tmp_path / "lr", tmp_path / "other")


def test_cli_export_and_import(state_dataset, tmp_path, capsys):
    src, eps = state_dataset
    assert cli.main(["export", str(src), "--lerobot", str(tmp_path / "lr"), "--repo-id", "me/x"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 3
    assert "me/x" in (tmp_path / "lr" / "README.md").read_text()
    assert cli.main(["import", "--lerobot", str(tmp_path / "lr"), str(tmp_path / "back")]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 9
    assert cli.main(["export", str(src), "--lerobot", str(tmp_path / "lr")]) == 1
    assert "exists" in capsys.readouterr().err
    assert cli.main(["import", "--lerobot", str(tmp_path / "nope"), str(tmp_path / "b2")]) == 1
    assert "not a LeRobotDataset" in capsys.readouterr().err
