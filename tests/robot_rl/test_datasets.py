"""Episode datasets: round trips, appending across opens, crash leftovers, format errors, bad
input, a real full disk (tmpfs), and loading into the replay buffer from real twin episodes."""
from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from robot_rl.buffers import ReplayBuffer
from robot_rl.datasets import (DatasetFormatError, DatasetWriteError, Episode, EpisodeBuilder,
                               EpisodeDataset, load_into_buffer)
from robot_rl.datasets import store

STATE_DIM, A = 5, 7


def space(image: tuple[int, int, int] | None = None) -> gym.spaces.Dict:
    spaces = {"state": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)}
    if image:
        spaces["wrist"] = gym.spaces.Box(0, 255, image, np.uint8)
    return gym.spaces.Dict(spaces)


def synthetic_episode(rng: np.random.Generator, T: int, image=None, success=True, end="terminated",
                      **meta) -> Episode:
    """Random but valid arrays (storage tests need exact bytes, not a task)."""
    obs = {"state": rng.normal(size=(T + 1, STATE_DIM)).astype(np.float32)}
    if image:
        obs["wrist"] = rng.integers(0, 256, (T + 1, *image), dtype=np.uint8)
    b = EpisodeBuilder({k: v[0] for k, v in obs.items()})
    for t in range(T):
        last = t == T - 1
        b.add(rng.uniform(-1, 1, A), float(rng.normal()), {k: v[t + 1] for k, v in obs.items()},
              terminated=last and end == "terminated", truncated=last and end == "truncated",
              grasp_penalty=-0.1 * (t % 3 == 0), intervention=bool(t % 2))
    return b.build(task="unit", success=success, source="keyboard", seed=int(rng.integers(1000)), **meta)


def test_round_trip_append_across_opens_and_metadata(tmp_path):
    rng = np.random.default_rng(0)
    eps = [synthetic_episode(rng, T) for T in (3, 5)]
    with EpisodeDataset.create(tmp_path / "ds", space(), A) as ds:
        metas = [ds.append(e) for e in eps]
    assert [m["index"] for m in metas] == [0, 1] and metas[1]["length"] == 5
    with EpisodeDataset.open(tmp_path / "ds", writable=True) as ds:   # a later run appends
        eps.append(synthetic_episode(rng, 4, success=False, end="none"))
        ds.append(eps[-1])
    ds = EpisodeDataset.open(tmp_path / "ds")
    assert len(ds) == 3 and not ds.writable
    for want, got in zip(eps, ds):
        assert got.equal_arrays(want)
        assert got.metadata["task"] == "unit" and got.metadata["source"] == "keyboard"
        assert got.metadata["seed"] == want.metadata["seed"]
    assert [m["success"] for m in ds.episodes] == [True, True, False]
    assert all(m["written_at"] > 0 and m["bytes"] > 0 for m in ds.episodes)
    with pytest.raises(RuntimeError, match="read-only"):
        ds.append(eps[0])


def test_one_writer_at_a_time(tmp_path):
    ds = EpisodeDataset.create(tmp_path / "ds", space(), A)
    try:
        with pytest.raises(RuntimeError, match="one writer"):
            EpisodeDataset.open(tmp_path / "ds", writable=True)
        assert len(EpisodeDataset.open(tmp_path / "ds")) == 0   # readers are fine
    finally:
        ds.close()
    with pytest.raises(FileExistsError):
        EpisodeDataset.create(tmp_path / "ds", space(), A)


def test_bad_episodes_are_refused_and_not_kept(tmp_path):
    rng = np.random.default_rng(1)
    with EpisodeDataset.create(tmp_path / "ds", space(), A) as ds:
        ep = synthetic_episode(rng, 3)
        ep.actions[1, 2] = np.nan
        with pytest.raises(ValueError, match="finite"):
            ds.append(ep)
        ep = synthetic_episode(rng, 3)
        ep.terminated[0] = True
        with pytest.raises(ValueError, match="before its last step"):
            ds.append(ep)
        ep = synthetic_episode(rng, 3, image=(8, 8, 3))
        with pytest.raises(ValueError, match="do not match"):
            ds.append(ep)
        ep = synthetic_episode(rng, 3)
        del ep.metadata["source"]
        with pytest.raises(ValueError, match="source"):
            ds.append(ep)
        ep = synthetic_episode(rng, 3)
        ep.observations["state"] = ep.observations["state"].astype(np.float64)
        with pytest.raises(ValueError, match="do not match"):
            ds.append(ep)
        assert ds.pending == [] and len(ds) == 0
    b = EpisodeBuilder({"state": np.zeros(STATE_DIM, np.float32)})
    with pytest.raises(ValueError, match="at least one step"):
        b.build(task="t", success=True, source="expert")
    with pytest.raises(ValueError, match="keys"):
        b.add(np.zeros(A), 0.0, {"other": np.zeros(1)}, False, False)


def test_format_errors_name_file_and_problem(tmp_path):
    rng = np.random.default_rng(2)
    with EpisodeDataset.create(tmp_path / "ds", space(), A) as ds:
        ds.append(synthetic_episode(rng, 3))
    header = tmp_path / "ds" / "dataset.json"
    good = header.read_text()

    body = json.loads(good)
    body["version"] = 3
    header.write_text(json.dumps(body))
    with pytest.raises(DatasetFormatError, match=r"version 3; .*versions \(1, 2\)"):
        EpisodeDataset.open(tmp_path / "ds")
    header.write_text(good.replace('"task": "unit"', '"task": "edited"'))
    with pytest.raises(DatasetFormatError, match="checksum"):
        EpisodeDataset.open(tmp_path / "ds")
    header.write_text("{not json")
    with pytest.raises(DatasetFormatError, match="not JSON"):
        EpisodeDataset.open(tmp_path / "ds")
    header.write_text(json.dumps({"format": "something.else"}))
    with pytest.raises(DatasetFormatError, match="format"):
        EpisodeDataset.open(tmp_path / "ds")
    header.write_text(good)

    ep_file = tmp_path / "ds" / "episodes" / "episode_000000.npz"
    data = ep_file.read_bytes()
    ep_file.write_bytes(data[: len(data) // 2])   # truncated
    with pytest.raises(DatasetFormatError, match="episode_000000.npz"):
        EpisodeDataset.open(tmp_path / "ds").read_episode(0)
    ep_file.unlink()
    with pytest.raises(DatasetFormatError, match="missing"):
        EpisodeDataset.open(tmp_path / "ds").read_episode(0)
    with pytest.raises(DatasetFormatError, match="not an episode dataset"):
        EpisodeDataset.open(tmp_path)


def test_leftovers_of_a_killed_writer_are_ignored_then_repaired(tmp_path):
    """What a writer killed at each point leaves behind: a temp file (killed while writing), a
    complete episode file not in the header yet (killed between rename and header), garbage."""
    rng = np.random.default_rng(3)
    with EpisodeDataset.create(tmp_path / "ds", space(), A) as ds:
        ds.append(synthetic_episode(rng, 3))
    ep_dir = tmp_path / "ds" / "episodes"
    complete = synthetic_episode(rng, 4)
    data = store.encode_episode(complete, {**complete.metadata, "index": 1, "length": 4,
                                           "file": "episode_000001.npz"}, compress=True)
    (ep_dir / ".tmp-episode_000001.npz.dead").write_bytes(data[:100])
    (ep_dir / "episode_000001.npz").write_bytes(data)
    (tmp_path / "ds" / ".tmp-dataset.json.dead").write_text("{")
    reader = EpisodeDataset.open(tmp_path / "ds")
    assert len(reader) == 1   # a reader sees only the committed episode

    with EpisodeDataset.open(tmp_path / "ds", writable=True) as ds:
        assert ds.repaired["adopted"] == ["episode_000001.npz"]
        assert len(ds.repaired["removed_temp"]) == 2
        assert len(ds) == 2 and ds.read_episode(1).equal_arrays(complete)
    assert sorted(p.name for p in ep_dir.iterdir()) == ["episode_000000.npz", "episode_000001.npz"]

    (ep_dir / "episode_000002.npz").write_bytes(b"garbage")
    with EpisodeDataset.open(tmp_path / "ds", writable=True) as ds:
        assert ds.repaired["quarantined"] == ["episode_000002.npz"] and len(ds) == 2
        ds.append(synthetic_episode(rng, 2))   # the next episode takes the free name
        assert ds.episodes[2]["file"] == "episode_000002.npz"
    assert (ep_dir / "episode_000002.npz.orphan").read_bytes() == b"garbage"


@pytest.mark.parametrize("free_space_known", [True, False])
def test_full_disk_keeps_the_episode_pending_until_retry(tiny_disk, monkeypatch, free_space_known):
    if not free_space_known:
        # Some filesystems cannot say how much is free: then the write itself hits ENOSPC.
        monkeypatch.setattr(store, "_free_bytes", lambda d: None)
    rng = np.random.default_rng(4)
    image = (64, 64, 3)   # random pixels: incompressible, 12 KiB a frame
    ds = EpisodeDataset.create(tiny_disk / "ds", space(image), A, compress=False)
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * 600_000)
    saved = []
    try:
        with pytest.raises(DatasetWriteError) as err:
            for _ in range(20):
                ep = synthetic_episode(rng, 9, image=image)   # ~125 KB on disk
                ds.append(ep)
                saved.append(ep)
        e = err.value
        assert e.path in (tiny_disk / "ds" / "episodes" / f"episode_{len(saved):06d}.npz",
                          tiny_disk / "ds" / "dataset.json")
        assert e.bytes_needed > 120_000 and str(e.path) in str(e) and "bytes needed" in str(e)
        assert ("not enough free space" if free_space_known else "the disk is full") in str(e)
        assert len(ds.pending) == 1 and ds.pending[0] is ep
        assert len(ds) == len(saved) >= 1
        # Nothing half-written is visible or left behind.
        names = sorted(p.name for p in (tiny_disk / "ds" / "episodes").iterdir())
        assert names == [f"episode_{i:06d}.npz" for i in range(len(saved))]
        assert len(EpisodeDataset.open(tiny_disk / "ds")) == len(saved)
        # Still full: retry fails the same way and keeps it; a second episode queues behind it.
        ep2 = synthetic_episode(rng, 2, image=image)
        with pytest.raises(DatasetWriteError):
            ds.append(ep2)
        assert [p is q for p, q in zip(ds.pending, (ep, ep2))] == [True, True]
        filler.unlink()   # the operator frees space
        metas = ds.retry()
        assert [m["index"] for m in metas] == [len(saved), len(saved) + 1] and ds.pending == []
    finally:
        ds.close()
    back = EpisodeDataset.open(tiny_disk / "ds")
    for want, got in zip(saved + [ep, ep2], back):
        assert got.equal_arrays(want)


def twin_episodes(obs: str, n_success: int, n_fail: int, max_steps: int | None = None):
    """Real pick_cube episodes: the scripted expert (successes) and a still arm (failures)."""
    from robot_rl import tasks
    from robot_rl.tasks.experts import make_expert

    env = tasks.make_env("pick_cube", obs=obs, **({"max_steps": max_steps} if max_steps else {}))
    expert = make_expert("pick_cube", env, noise=0.1, seed=0)
    episodes = []
    for i in range(n_success + n_fail):
        obs_, info = env.reset(seed=i)
        b = EpisodeBuilder(obs_)
        while True:
            a = expert.act(obs_, info) if i < n_success else np.zeros(7, np.float32)
            obs_, r, term, trunc, info = env.step(a)
            b.add(a, r, obs_, term, trunc, info["grasp_penalty"], True)
            if term or trunc:
                break
        episodes.append(b.build(task="pick_cube", success=bool(info["success"]), source="expert", seed=i))
    return env, episodes


def test_load_into_buffer_from_twin_episodes(tmp_path):
    env, episodes = twin_episodes("state", n_success=2, n_fail=1, max_steps=80)
    assert [e.success for e in episodes] == [True, True, False]
    with EpisodeDataset.create(tmp_path / "ds", env.observation_space, 7) as ds:
        for e in episodes:
            ds.append(e)
    buf = ReplayBuffer.create(None, env.observation_space, 7, capacity=1000)
    stats = load_into_buffer(tmp_path / "ds", buf)
    n = len(episodes[0]) + len(episodes[1])
    assert stats == {"episodes": 2, "transitions": n, "skipped_unsuccessful": 1,
                     "dataset_episodes": 3, "sources": {"expert": 2}}
    assert len(buf) == n
    # The buffer holds exactly the recorded transitions, in order.
    batch = buf.gather(np.concatenate([np.arange(len(episodes[0])),
                                       len(episodes[0]) + 1 + np.arange(len(episodes[1]))]))
    want = np.concatenate([episodes[0].actions, episodes[1].actions])
    np.testing.assert_array_equal(batch["action"], want)
    np.testing.assert_array_equal(batch["obs"]["state"],
                                  np.concatenate([e.observations["state"][:-1] for e in episodes[:2]]))
    np.testing.assert_array_equal(batch["next_obs"]["state"],
                                  np.concatenate([e.observations["state"][1:] for e in episodes[:2]]))
    assert batch["terminated"].sum() == 2 and batch["intervention"].all()
    all_buf = ReplayBuffer.create(None, env.observation_space, 7, capacity=1000)
    assert load_into_buffer(tmp_path / "ds", all_buf, successful_only=False)["episodes"] == 3
    env.close()


def test_load_closes_an_unended_episode_as_truncated_and_checks_the_buffer(tmp_path):
    rng = np.random.default_rng(5)
    with EpisodeDataset.create(tmp_path / "ds", space(), A) as ds:
        ds.append(synthetic_episode(rng, 3, end="none"))   # the operator marked success mid-way
        ds.append(synthetic_episode(rng, 2))
    buf = ReplayBuffer.create(None, space(), A, capacity=100)
    assert load_into_buffer(tmp_path / "ds", buf)["transitions"] == 5
    last = buf.gather(np.array([2]))
    assert last["truncated"][0] == 1 and last["terminated"][0] == 0
    with pytest.raises(ValueError, match="do not match the replay buffer"):
        load_into_buffer(tmp_path / "ds", ReplayBuffer.create(None, space((8, 8, 3)), A, capacity=100))
    with pytest.raises(ValueError, match="width"):
        load_into_buffer(tmp_path / "ds", ReplayBuffer.create(None, space(), 4, capacity=100))
    with pytest.raises(ValueError, match="extra"):
        load_into_buffer(tmp_path / "ds", ReplayBuffer.create(
            None, space(), A, capacity=100, extra_specs={"feat/x": ((2,), np.float16)}))


def test_pixel_episodes_round_trip_and_load(tmp_path):
    env, episodes = twin_episodes("pixels", n_success=0, n_fail=1, max_steps=3)
    ep = episodes[0]
    assert ep.observations["wrist"].shape == (4, 128, 128, 3) and ep.observations["wrist"].dtype == np.uint8
    with EpisodeDataset.create(tmp_path / "ds", env.observation_space, 7) as ds:
        ds.append(ep)
    back = EpisodeDataset.open(tmp_path / "ds").read_episode(0)
    assert back.equal_arrays(ep) and back.truncated[-1]
    buf = ReplayBuffer.create(None, env.observation_space, 7, capacity=10)
    assert load_into_buffer(tmp_path / "ds", buf, successful_only=False)["transitions"] == 3
    np.testing.assert_array_equal(buf.gather(np.array([1]))["next_obs"]["front"][0], ep.observations["front"][2])
    env.close()
