"""LeRobotDataset v3.0 export and import (layout of huggingface/lerobot, docs/datasets.md).

    OUT/meta/info.json                          codebase_version "v3.0", fps, features, totals, path templates
    OUT/meta/stats.json                         per feature: min, max, mean, std, count
    OUT/meta/tasks.parquet                      task string (pandas index) -> task_index
    OUT/meta/episodes/chunk-000/file-000.parquet  one row per episode: length, tasks, data location, stats/...
    OUT/data/chunk-000/file-000.parquet         one row per step: observation.*, action, next.*, indices
    OUT/meta/robot_rl/episodes.parquet          ours: each episode's final observation and metadata

A data row t holds o_t, a_t and what followed: next.reward, next.done (terminated or truncated).
LeRobot keeps no final observation o_T; we keep it (and our per-episode metadata) in
meta/robot_rl/episodes.parquet, which LeRobot's loader never reads, so our own export imports
back to identical arrays. A foreign dataset without that file imports with o_T = o_{T-1}.
Images are "image" features (PNG bytes in the parquet, as Hugging Face `datasets` stores
Image()): we have no video encoder.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from robot_rl.datasets.episode import Episode
from robot_rl.datasets.store import EpisodeDataset

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000                   # files per chunk directory (LeRobot's default)
DATA_FILES_SIZE_IN_MB = 100          # a data file rolls over past this (LeRobot's default)
VIDEO_FILES_SIZE_IN_MB = 200          # lerobot 0.4.4's default (older utils.py said 500)
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}   # lerobot 0.4.x stats
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EXTRA_PATH = "meta/robot_rl/episodes.parquet"
ACTION_NAMES_7 = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
# Step fields beside observation/action: (LeRobot feature, dtype). discrete_penalty is LeRobot's
# HIL-SERL name; next.truncated and is_intervention are what its HIL forks use for the same.
REWARD, DONE, TRUNCATED = "next.reward", "next.done", "next.truncated"
PENALTY, INTERVENTION = "complementary_info.discrete_penalty", "complementary_info.is_intervention"
INDEX_FEATURES = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64",
                  "index": "int64", "task_index": "int64"}


class LeRobotFormatError(ValueError):
    """The directory is not a LeRobotDataset v3 we can read; names the file and the problem."""


def _pa():
    import pyarrow as pa
    import pyarrow.parquet as pq
    return pa, pq


# ---------------------------------------------------------------------- naming

def feature_name(obs_key: str, shape: tuple[int, ...], dtype: np.dtype) -> str:
    """Our observation key -> LeRobot feature name (state -> observation.state, cameras ->
    observation.images.<cam>, anything else -> observation.<key>)."""
    if obs_key == "state":
        return "observation.state"
    if is_image(shape, dtype):
        return f"observation.images.{obs_key}"
    return f"observation.{obs_key}"


def obs_key_from_feature(name: str) -> str | None:
    if name == "observation.state":
        return "state"
    if name.startswith("observation.images."):
        return name[len("observation.images."):]
    if name.startswith("observation."):
        return name[len("observation."):]
    return None


def is_image(shape: tuple[int, ...], dtype: np.dtype) -> bool:
    return np.dtype(dtype) == np.uint8 and len(shape) == 3 and shape[2] in (1, 3)


# ---------------------------------------------------------------------- images

def encode_png(image: np.ndarray) -> bytes:
    from PIL import Image
    out = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[2] == 1 else image).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def decode_image(data: bytes, shape: tuple[int, ...], where: str) -> np.ndarray:
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as img:
            arr = np.asarray(img.convert("L" if shape[2] == 1 else "RGB"))
    except Exception as e:  # PIL raises many types for garbled data
        raise LeRobotFormatError(f"{where}: not a readable image ({e})") from None
    arr = arr.reshape(arr.shape[0], arr.shape[1], -1)
    if arr.shape != tuple(shape):
        raise LeRobotFormatError(f"{where}: image of shape {arr.shape}, info.json says {tuple(shape)}")
    return arr


# ---------------------------------------------------------------------- stats

def _feature_stats(values: np.ndarray, image: bool) -> dict[str, np.ndarray]:
    """LeRobot's stats: images per channel (C, 1, 1) scaled to [0, 1]; others per dimension.
    Quantiles are exact here (LeRobot estimates them from histograms)."""
    if image:   # N, H, W, C -> C, N*H*W
        x = (values.astype(np.float64) / 255.0).reshape(-1, values.shape[-1]).T
        shape = (values.shape[-1], 1, 1)
    else:       # N, D -> D, N
        x = values.astype(np.float64).reshape(len(values), -1).T
        shape = (x.shape[0],)
    s = {"min": x.min(1), "max": x.max(1), "mean": x.mean(1), "std": x.std(1)}
    s.update({k: np.quantile(x, q, axis=1) for k, q in QUANTILES.items()})
    s = {k: v.reshape(shape) for k, v in s.items()}
    s["count"] = np.array([len(values)], dtype=np.int64)
    return s


def _aggregate(stats: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Combines per-episode stats as LeRobot's aggregate_stats: count-weighted mean, parallel
    variance, and count-weighted means of the per-episode quantiles."""
    counts = np.array([s["count"][0] for s in stats], dtype=np.float64)
    means = np.stack([s["mean"] for s in stats])
    w = counts.reshape(-1, *([1] * (means.ndim - 1)))
    mean = (means * w).sum(0) / counts.sum()
    var = ((np.stack([s["std"] for s in stats]) ** 2 + (means - mean) ** 2) * w).sum(0) / counts.sum()
    out = {"min": np.min(np.stack([s["min"] for s in stats]), 0),
           "max": np.max(np.stack([s["max"] for s in stats]), 0),
           "mean": mean, "std": np.sqrt(var), "count": np.array([int(counts.sum())])}
    for k in QUANTILES:
        out[k] = (np.stack([s[k] for s in stats]) * w).sum(0) / counts.sum()
    return out


# ---------------------------------------------------------------------- export

def _features(spec: dict[str, Any]) -> tuple[dict[str, dict], dict[str, str]]:
    """info.json features, and our obs key -> feature name."""
    features: dict[str, dict] = {}
    names: dict[str, str] = {}
    for key, f in spec["observations"].items():
        shape, dtype = tuple(f["shape"]), np.dtype(f["dtype"])
        name = feature_name(key, shape, dtype)
        names[key] = name
        if is_image(shape, dtype):
            features[name] = {"dtype": "image", "shape": list(shape), "names": ["height", "width", "channels"]}
        else:
            features[name] = {"dtype": dtype.name, "shape": list(shape) or [1], "names": None}
    a = spec["action_dim"]
    features["action"] = {"dtype": "float32", "shape": [a], "names": ACTION_NAMES_7 if a == 7 else None}
    features[REWARD] = {"dtype": "float32", "shape": [1], "names": None}
    features[DONE] = {"dtype": "bool", "shape": [1], "names": None}
    features[TRUNCATED] = {"dtype": "bool", "shape": [1], "names": None}
    features[PENALTY] = {"dtype": "float32", "shape": [1], "names": ["discrete_penalty"]}
    features[INTERVENTION] = {"dtype": "bool", "shape": [1], "names": ["is_intervention"]}
    for name, dtype in INDEX_FEATURES.items():
        features[name] = {"dtype": dtype, "shape": [1], "names": None}
    return features, names


def _arrow_type(feature: dict):
    pa, _ = _pa()
    if feature["dtype"] == "image":
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    value = pa.from_numpy_dtype(np.dtype(feature["dtype"]))
    shape = feature["shape"]
    if list(shape) == [1]:
        return value
    if len(shape) == 1:
        return pa.list_(value, shape[0])
    raise ValueError(f"feature of shape {shape} is not supported (vectors and images only)")


def _hf_features(features: dict[str, dict]) -> dict:
    """The 'huggingface' schema metadata `datasets` writes, so it decodes images as Image()."""
    out = {}
    for name, f in features.items():
        if f["dtype"] == "image":
            out[name] = {"_type": "Image"}
        elif list(f["shape"]) == [1]:
            out[name] = {"dtype": f["dtype"], "_type": "Value"}
        else:
            out[name] = {"feature": {"dtype": f["dtype"], "_type": "Value"}, "length": f["shape"][0],
                         "_type": "Sequence"}
    return {"info": {"features": out}}


def _column(values: np.ndarray, feature: dict):
    """A pyarrow array for one feature over T rows."""
    pa, _ = _pa()
    typ = _arrow_type(feature)
    if feature["dtype"] == "image":
        return pa.array([{"bytes": encode_png(v), "path": None} for v in values], type=typ)
    values = np.ascontiguousarray(values)
    if list(feature["shape"]) == [1]:
        return pa.array(values.reshape(-1), type=typ)
    flat = pa.array(values.reshape(-1), type=typ.value_type)
    return pa.FixedSizeListArray.from_arrays(flat, feature["shape"][0])


def _json(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _json(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def export_lerobot(dataset: str | os.PathLike | EpisodeDataset, out_dir: str | os.PathLike,
                   repo_id: str = "robot_rl/dataset", fps: float | None = None,
                   successful_only: bool = False, robot_type: str | None = None,
                   data_files_size_in_mb: float = DATA_FILES_SIZE_IN_MB) -> dict[str, Any]:
    """Writes the episode dataset as a LeRobotDataset v3.0 directory `out_dir` (must not exist).

    fps: frames per second for timestamps (default: the episodes' control_hz metadata, else 10).
    The directory is built under a temporary name and renamed at the end, so a failed export
    leaves no half dataset. Returns {"episodes", "frames", "out", "files"}.
    """
    pa, pq = _pa()
    src = dataset if isinstance(dataset, EpisodeDataset) else EpisodeDataset.open(dataset)
    out = Path(out_dir)
    if out.exists():
        raise FileExistsError(f"{out} exists; export writes a new directory")
    metas = [m for m in src.episodes if m.get("success", False) or not successful_only]
    if not metas:
        raise ValueError(f"{src.directory}: no episodes to export"
                         + (" (none is marked successful)" if successful_only else ""))
    if fps is None:
        rates = {m.get("control_hz") for m in metas if m.get("control_hz")}
        fps = rates.pop() if len(rates) == 1 else 10.0
    fps_int = int(round(fps))
    if fps_int < 1 or abs(fps_int - fps) > 1e-6:
        raise ValueError(f"LeRobot needs an integer fps, got {fps}")
    features, names = _features(src.spec)
    data_schema = pa.schema([(n, _arrow_type(f)) for n, f in features.items()],
                            metadata={b"huggingface": json.dumps(_hf_features(features)).encode()})
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tasks: dict[str, int] = {}
    episode_rows: list[dict] = []
    extra_rows: list[dict] = []
    all_stats: dict[str, list] = {n: [] for n in features}
    chunk, file_i, file_bytes, writer = 0, 0, 0.0, None
    frames = 0
    files: list[str] = []
    try:
        for new_index, meta in enumerate(metas):
            ep = src.read_episode(meta["index"])
            T = len(ep)
            task = str(meta.get("task", ""))
            task_index = tasks.setdefault(task, len(tasks))
            columns: dict[str, np.ndarray] = {names[k]: a[:T] for k, a in ep.observations.items()}
            columns.update({
                "action": ep.actions, REWARD: ep.rewards, DONE: ep.terminated | ep.truncated,
                TRUNCATED: ep.truncated, PENALTY: ep.grasp_penalty, INTERVENTION: ep.intervention,
                "timestamp": (np.arange(T) / fps_int).astype(np.float32),
                "frame_index": np.arange(T, dtype=np.int64),
                "episode_index": np.full(T, new_index, np.int64),
                "index": np.arange(frames, frames + T, dtype=np.int64),
                "task_index": np.full(T, task_index, np.int64)})
            table = pa.table({n: _column(columns[n], features[n]) for n in features}, schema=data_schema)
            if writer is not None and file_bytes + table.nbytes / 2**20 > data_files_size_in_mb:
                writer.close()
                writer = None
                file_i += 1
                if file_i == CHUNKS_SIZE:
                    chunk, file_i = chunk + 1, 0
            if writer is None:
                rel = DATA_PATH.format(chunk_index=chunk, file_index=file_i)
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                writer = pq.ParquetWriter(tmp / rel, data_schema)
                files.append(rel)
                file_bytes = 0.0
            writer.write_table(table)
            file_bytes += table.nbytes / 2**20
            stats = {n: _feature_stats(columns[n], features[n]["dtype"] == "image") for n in features}
            for n, s in stats.items():
                all_stats[n].append(s)
            row = {"episode_index": new_index, "tasks": [task], "length": T,
                   "data/chunk_index": chunk, "data/file_index": file_i,
                   "dataset_from_index": frames, "dataset_to_index": frames + T,
                   "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}
            for n, s in stats.items():
                for k, v in s.items():
                    row[f"stats/{n}/{k}"] = np.asarray(v).reshape(-1).tolist()
            episode_rows.append(row)
            final = {names[k]: a[T:] for k, a in ep.observations.items()}
            extra_rows.append({"episode_index": new_index, "metadata": json.dumps(ep.metadata),
                               "terminated": bool(ep.terminated[-1]),
                               **{n: _column(v, features[n])[0].as_py() for n, v in final.items()}})
            frames += T
        if writer is not None:
            writer.close()
            writer = None

        meta_dir = tmp / "meta"
        ep_path = tmp / EPISODES_PATH.format(chunk_index=0, file_index=0)
        ep_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(episode_rows), ep_path)
        _write_tasks(meta_dir / "tasks.parquet", tasks)
        extra_schema = pa.schema([("episode_index", pa.int64()), ("metadata", pa.string()),
                                  ("terminated", pa.bool_())]
                                 + [(n, _arrow_type(features[n])) for n in names.values()])
        (tmp / EXTRA_PATH).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(extra_rows, schema=extra_schema), tmp / EXTRA_PATH)
        stats_json = {n: _json(_aggregate(s)) for n, s in all_stats.items()}
        (meta_dir / "stats.json").write_text(json.dumps(stats_json, indent=4))
        info = {
            "codebase_version": CODEBASE_VERSION, "robot_type": robot_type,
            "total_episodes": len(metas), "total_frames": frames, "total_tasks": len(tasks),
            "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": data_files_size_in_mb,
            "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB, "fps": fps_int,
            "splits": {"train": f"0:{len(metas)}"}, "data_path": DATA_PATH, "video_path": None,
            "features": features,
        }
        (meta_dir / "info.json").write_text(json.dumps(info, indent=4))
        (tmp / "README.md").write_text(
            f"---\ntags: [LeRobot, robot_rl]\ntask_categories: [robotics]\nconfigs:\n- config_name: default\n"
            f"  data_files: data/*/*.parquet\n---\n# {repo_id}\n\nExported by robot_rl from "
            f"{src.directory} on {time.strftime('%Y-%m-%d %H:%M:%S')} ({len(metas)} episodes, "
            f"{frames} frames, {fps_int} fps).\n")
        tmp.rename(out)
    except BaseException:
        if writer is not None:
            writer.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"episodes": len(metas), "frames": frames, "out": str(out), "files": files,
            "repo_id": repo_id, "fps": fps_int}


def _write_tasks(path: Path, tasks: dict[str, int]) -> None:
    """meta/tasks.parquet as pandas writes DataFrame({"task_index": ...}, index=tasks) (LeRobot
    reads it with pd.read_parquet and looks tasks up in the index); no pandas needed here."""
    pa, pq = _pa()
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode",
                            "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                     "numpy_type": "int64", "metadata": None},
                    {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode",
                     "numpy_type": "object", "metadata": None}],
        "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.3"}
    table = pa.table({"task_index": pa.array(list(tasks.values()), pa.int64()),
                      "__index_level_0__": pa.array(list(tasks), pa.string())})
    pq.write_table(table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()}), path)


# ---------------------------------------------------------------------- import

def _read_tasks(path: Path) -> dict[int, str]:
    _, pq = _pa()
    if not path.exists():
        return {}
    table = pq.read_table(path)
    cols = table.column_names
    text_col = next((c for c in ("task", "__index_level_0__") if c in cols), None)
    if text_col is None or "task_index" not in cols:
        raise LeRobotFormatError(f"{path}: expected a task_index column and the task strings "
                                 f"(index or 'task' column), got {cols}")
    return dict(zip(table.column("task_index").to_pylist(), table.column(text_col).to_pylist()))


def read_lerobot(src_dir: str | os.PathLike) -> Iterable[Episode]:
    """Yields the episodes of a LeRobotDataset v3 directory with image features (videos are not
    decoded: a clear error). Ours import exactly; see the module docstring for foreign ones."""
    pa, pq = _pa()
    root = Path(src_dir)
    info_path = root / "meta" / "info.json"
    if not info_path.exists():
        raise LeRobotFormatError(f"{info_path}: missing; {root} is not a LeRobotDataset")
    try:
        info = json.loads(info_path.read_text())
    except ValueError as e:
        raise LeRobotFormatError(f"{info_path}: not JSON ({e})") from None
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3."):
        raise LeRobotFormatError(f"{info_path}: codebase_version {version!r}; only v3.x is read "
                                 f"(convert older datasets with LeRobot's v2.1 -> v3.0 script)")
    features = info.get("features") or {}
    videos = [n for n, f in features.items() if f.get("dtype") == "video"]
    if videos:
        raise LeRobotFormatError(f"{info_path}: video features {videos} need a video decoder, which "
                                 f"robot_rl does not have; export the dataset with image features")
    obs_features = {n: f for n, f in features.items() if obs_key_from_feature(n) is not None}
    if "action" not in features or not obs_features:
        raise LeRobotFormatError(f"{info_path}: needs an 'action' feature and observation.* features")
    tasks = _read_tasks(root / "meta" / "tasks.parquet")
    extras: dict[int, dict] = {}
    if (root / EXTRA_PATH).exists():
        for row in pq.read_table(root / EXTRA_PATH).to_pylist():
            extras[row["episode_index"]] = row
    data_files = sorted((root / "data").glob("*/*.parquet"))
    if not data_files:
        raise LeRobotFormatError(f"{root / 'data'}: no parquet files")
    by_episode: dict[int, list] = {}
    for path in data_files:
        table = pq.read_table(path)
        missing = [n for n in ("episode_index", "frame_index", "action", *obs_features) if n not in table.column_names]
        if missing:
            raise LeRobotFormatError(f"{path}: lacks columns {missing}")
        ep_col = table.column("episode_index").to_numpy()
        for e in np.unique(ep_col):
            by_episode.setdefault(int(e), []).append(table.filter(pa.array(ep_col == e)))
    for e in sorted(by_episode):
        table = pa.concat_tables(by_episode[e])
        order = np.argsort(table.column("frame_index").to_numpy(), kind="stable")
        table = table.take(pa.array(order))
        yield _episode_from_table(table, e, features, obs_features, tasks, extras.get(e), info,
                                  f"{root}: episode {e}")


def _values(table, name: str, feature: dict, where: str) -> np.ndarray:
    column = table.column(name)
    shape = tuple(feature["shape"])
    if feature["dtype"] == "image":
        return np.stack([decode_image(v["bytes"], shape, f"{where}, {name} row {i}")
                         for i, v in enumerate(column.to_pylist())])
    dtype = np.dtype("bool" if feature["dtype"] == "bool" else feature["dtype"])
    rows = column.to_pylist()
    arr = np.asarray(rows, dtype=dtype)
    want = (len(rows), *(() if list(shape) == [1] else shape))
    if arr.shape != want and arr.shape == (len(rows), 1) and list(shape) == [1]:
        arr = arr.reshape(-1)
    if arr.shape != want:
        raise LeRobotFormatError(f"{where}: column {name} has shape {arr.shape}, info.json says {shape}")
    return arr


def _episode_from_table(table, index: int, features: dict, obs_features: dict, tasks: dict[int, str],
                        extra: dict | None, info: dict, where: str) -> Episode:
    T = table.num_rows
    obs = {}
    for name, f in obs_features.items():
        values = _values(table, name, f, where)
        if list(f["shape"]) == [1] and f["dtype"] != "image":
            values = values.reshape(T, 1)
        if extra is not None and extra.get(name) is not None:
            final = _values(_single_row(name, extra[name], f), name, f, where + " (final frame)")
            final = final.reshape(1, *values.shape[1:])
        else:
            final = values[-1:]           # LeRobot keeps no final observation: repeat the last
        obs[obs_key_from_feature(name)] = np.concatenate([values, final])
    cols = set(table.column_names)

    def scalar(name: str, dtype: str, default: Any) -> np.ndarray:
        if name not in cols:
            return np.full(T, default, dtype=dtype)
        return _values(table, name, {"dtype": "float32" if dtype == "float32" else "bool", "shape": [1]},
                       where).astype(dtype)

    done = scalar(DONE, "bool", False)
    truncated = scalar(TRUNCATED, "bool", False) & done
    if extra is not None:
        terminated = np.zeros(T, bool)
        terminated[-1] = bool(extra["terminated"])
    else:
        terminated = done & ~truncated
    rewards = scalar(REWARD, "float32", 0.0)
    if extra is not None:
        metadata = json.loads(extra["metadata"])
    else:
        task_index = int(table.column("task_index")[0].as_py()) if "task_index" in cols else 0
        metadata = {"task": tasks.get(task_index, ""), "source": "lerobot",
                    # a sparse success reward at the end, or (no rewards) a teleop demo
                    "success": bool(rewards[-1] > 0) if REWARD in cols else True,
                    "length": T, "control_hz": float(info.get("fps", 10)), "lerobot_episode": index}
    ep = Episode(observations=obs, actions=_values(table, "action", features["action"], where).astype(np.float32),
                 rewards=rewards, terminated=terminated, truncated=truncated,
                 grasp_penalty=scalar(PENALTY, "float32", 0.0),
                 intervention=scalar(INTERVENTION, "bool", True), metadata=metadata)
    try:
        ep.validate()
    except ValueError as e:
        raise LeRobotFormatError(f"{where}: {e}") from None
    return ep


def _single_row(name: str, value: Any, feature: dict):
    pa, _ = _pa()
    return pa.table({name: pa.array([value], type=_arrow_type(feature))})


def import_lerobot(src_dir: str | os.PathLike, out_dataset: str | os.PathLike) -> dict[str, Any]:
    """Reads a LeRobotDataset v3 directory into an episode dataset (created, or appended to when
    it exists with the same spec). Returns {"episodes", "frames", "out"}."""
    episodes = read_lerobot(src_dir)
    first = next(iter(episodes), None)
    if first is None:
        raise LeRobotFormatError(f"{src_dir}: no episodes")
    spec = {"observations": {k: {"shape": list(a.shape[1:]), "dtype": a.dtype.str}
                             for k, a in first.observations.items()},
            "action_dim": int(first.actions.shape[1])}
    out = Path(out_dataset)
    if (out / "dataset.json").exists():
        ds = EpisodeDataset.open(out, writable=True)
        if ds.spec != spec:
            ds.close()
            raise ValueError(f"{out} holds episodes of another spec ({ds.spec}); the import has {spec}")
    else:
        ds = EpisodeDataset.create(out, spec=spec)
    n, frames = 0, 0
    try:
        for ep in _chain(first, episodes):
            ds.append(ep)
            n, frames = n + 1, frames + len(ep)
    finally:
        ds.close()
    return {"episodes": n, "frames": frames, "out": str(out)}


def _chain(first: Episode, rest: Iterable[Episode]) -> Iterable[Episode]:
    yield first
    yield from rest
