"""ReplayBuffer: episode-aware storage, ring wrap-around, flags, sizes, reopen, corrupt files, bad input.

Every observation written here encodes where it came from: state[0] = episode, state[1] = t,
and the image pixels are a function of (episode, t), so a sampled pair can be checked exactly.
"""
import json
import os

import gymnasium as gym
import numpy as np
import pytest

from robot_rl.buffers import BufferConfig, ReplayBuffer, ReplayFormatError
from robot_rl.buffers.storage import HEADER_FILE

STATE_DIM, ACTION_DIM = 5, 7


def make_space(cameras=("wrist", "front"), size=16) -> gym.spaces.Dict:
    spaces = {"state": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)}
    for cam in cameras:
        spaces[cam] = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
    return gym.spaces.Dict(spaces)


def frame(space: gym.spaces.Dict, episode: int, t: int) -> dict[str, np.ndarray]:
    obs = {}
    for key, sub in space.spaces.items():
        if key == "state":
            s = np.zeros(STATE_DIM, np.float32)
            s[0], s[1], s[2] = episode, t, episode * 0.5 - t
            obs[key] = s
        else:
            pixels = (np.arange(np.prod(sub.shape)) + 7 * episode + 13 * t + len(key)) % 256
            obs[key] = pixels.astype(np.uint8).reshape(sub.shape)
    return obs


def add_episode(buf, space, episode, length, end="terminated", commit=True, intervention=False):
    for t in range(length):
        last = t == length - 1
        buf.add(frame(space, episode, t), np.full(ACTION_DIM, (episode + t) % 3 - 1.0),
                reward=float(t), next_obs=frame(space, episode, t + 1),
                terminated=last and end == "terminated", truncated=last and end == "truncated",
                grasp_penalty=-0.1 * t, intervention=intervention)
    if commit:
        buf.commit()


def check_batch_consistent(space, batch):
    """Every row's obs and next_obs are steps t and t+1 of one episode, images included."""
    e = batch["obs"]["state"][:, 0].astype(int)
    t = batch["obs"]["state"][:, 1].astype(int)
    np.testing.assert_array_equal(batch["next_obs"]["state"][:, 0], e)
    np.testing.assert_array_equal(batch["next_obs"]["state"][:, 1], t + 1)
    for i in range(len(e)):
        for key in space.spaces:
            np.testing.assert_array_equal(batch["obs"][key][i], frame(space, e[i], t[i])[key])
            np.testing.assert_array_equal(batch["next_obs"][key][i], frame(space, e[i], t[i] + 1)[key])
    np.testing.assert_array_equal(batch["reward"], t.astype(np.float32))
    np.testing.assert_allclose(batch["grasp_penalty"], -0.1 * t, rtol=1e-6)
    np.testing.assert_array_equal(batch["action"], np.repeat(((e + t) % 3 - 1.0)[:, None], ACTION_DIM, 1))


@pytest.fixture(params=["disk", "memory"])
def location(request, tmp_path):
    return tmp_path / "buf" if request.param == "disk" else None


def test_batch_layout_and_dtypes(location):
    space = make_space()
    buf = ReplayBuffer.create(location, space, ACTION_DIM, capacity=100)
    add_episode(buf, space, 0, 10)
    assert len(buf) == 10
    batch = buf.sample(32, np.random.default_rng(0))
    assert set(batch) == {"obs", "next_obs", "action", "reward", "terminated", "truncated",
                          "grasp_penalty", "intervention"}
    for part in ("obs", "next_obs"):
        assert set(batch[part]) == {"state", "wrist", "front"}
        assert batch[part]["state"].dtype == np.float32 and batch[part]["state"].shape == (32, STATE_DIM)
        assert batch[part]["wrist"].dtype == np.uint8 and batch[part]["wrist"].shape == (32, 16, 16, 3)
    assert batch["action"].dtype == np.float32 and batch["action"].shape == (32, ACTION_DIM)
    for name in ("reward", "terminated", "truncated", "grasp_penalty", "intervention"):
        assert batch[name].dtype == np.float32 and batch[name].shape == (32,)
    check_batch_consistent(space, batch)
    buf.close()


def test_next_obs_never_crosses_episodes_across_wraparound(location):
    space = make_space()
    capacity = 40
    buf = ReplayBuffer.create(location, space, ACTION_DIM, capacity=capacity)
    rng = np.random.default_rng(1)
    total_frames = 0
    for episode in range(60):                       # ~5 000 frames through a 40-slot ring
        length = int(rng.integers(1, 12))
        add_episode(buf, space, episode, length, end=("terminated", "truncated")[episode % 2])
        total_frames += length + 1
        assert len(buf) <= capacity - 1
        check_batch_consistent(space, buf.sample(64, rng))
        # The live transitions are whole episodes, newest last, and exactly len(buf) of them.
        batch = buf.gather(buf.transition_indices())
        assert batch["reward"].shape == (len(buf),)
        check_batch_consistent(space, batch)
        episodes = batch["obs"]["state"][:, 0].astype(int)
        assert episodes[-1] == episode and np.all(np.diff(episodes) >= 0)
        for e in np.unique(episodes):                   # whole episodes only, oldest included
            steps = batch["obs"]["state"][episodes == e, 1].astype(int)
            np.testing.assert_array_equal(steps, np.arange(steps.size))
    assert total_frames > 10 * capacity
    # After wrap-around the oldest episode was dropped whole, never cut (all are shorter than the ring).
    table = buf.episodes()
    assert all(row["transitions"] > 0 for row in table)
    assert sum(row["transitions"] for row in table) == len(buf)
    buf.close()


def test_episode_longer_than_the_ring_is_evicted_from_its_start(location):
    space = make_space(cameras=("wrist",))
    buf = ReplayBuffer.create(location, space, ACTION_DIM, capacity=16)
    add_episode(buf, space, 0, 3)
    add_episode(buf, space, 1, 50, end="truncated", commit=False)    # 51 frames in 16 slots
    buf.commit()
    batch = buf.gather(buf.transition_indices())
    check_batch_consistent(space, batch)
    assert set(batch["obs"]["state"][:, 0].astype(int)) == {1}
    assert batch["obs"]["state"][-1, 1] == 49 and batch["truncated"][-1] == 1.0
    assert len(buf) >= 16 - 1 - 16 // 64 - 1
    add_episode(buf, space, 2, 4)
    check_batch_consistent(space, buf.sample(64, np.random.default_rng(0)))
    buf.close()


def test_terminated_and_truncated_flags_are_kept_apart(location):
    space = make_space()
    buf = ReplayBuffer.create(location, space, ACTION_DIM, capacity=100)
    add_episode(buf, space, 0, 4, end="terminated")
    add_episode(buf, space, 1, 3, end="truncated", intervention=True)
    add_episode(buf, space, 2, 2, end="terminated")
    batch = buf.gather(buf.transition_indices())
    np.testing.assert_array_equal(batch["terminated"], [0, 0, 0, 1, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(batch["truncated"], [0, 0, 0, 0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(batch["intervention"], [0, 0, 0, 0, 1, 1, 1, 0, 0])
    assert [row["end"] for row in buf.episodes()] == ["terminated", "truncated", "terminated"]
    buf.close()


def test_images_stored_once_two_cameras_fit_100kb(tmp_path):
    space = make_space(size=128)
    extra = {"feat/wrist": ((2, 512, 4, 4), np.float16)}
    buf = ReplayBuffer.create(tmp_path / "b", space, ACTION_DIM, capacity=1000, extra_specs=extra)
    images = 2 * 128 * 128 * 3
    scalars = STATE_DIM * 4 + ACTION_DIM * 4 + 8 + 1 + 4 + 1 + 1 + 4 + 1
    assert buf.bytes_per_transition() == images + scalars
    assert buf.bytes_per_transition() <= 100_000             # ~96 KiB: 200k slots ~ 19.7 GB
    assert buf.bytes_per_transition(include_extras=True) == images + scalars + 2 * 512 * 16 * 2
    # On disk: exactly one array per camera, sized capacity x one image; nothing for next_obs.
    files = {p.name: p.stat().st_size for p in (tmp_path / "b").iterdir() if p.suffix == ".npy"}
    data = sum(size - 128 for size in files.values())         # .npy headers are 128 bytes
    assert data == 1000 * buf.bytes_per_transition(include_extras=True)
    assert not any("next" in name for name in files)
    buf.close()


def test_extras_are_stored_per_frame_and_sampled_as_obs_keys(location):
    space = make_space(cameras=("wrist",))
    buf = ReplayBuffer.create(location, space, ACTION_DIM, capacity=50,
                              extra_specs={"feat/wrist": ((2, 3), "float16")})

    def feat(e, t):
        return np.full((2, 3), e * 10 + t, np.float16)

    with pytest.raises(ValueError, match="extras is required"):
        buf.add(frame(space, 0, 0), np.zeros(ACTION_DIM), 0.0, frame(space, 0, 1), False, False,
                next_extras={"feat/wrist": feat(0, 1)})
    for t in range(5):
        buf.add(frame(space, 0, t), np.zeros(ACTION_DIM), 0.0, frame(space, 0, t + 1), False, t == 4,
                extras={"feat/wrist": feat(0, t)} if t == 0 else None,
                next_extras={"feat/wrist": feat(0, t + 1)})
    batch = buf.sample(20, np.random.default_rng(0))
    t = batch["obs"]["state"][:, 1]
    assert batch["obs"]["feat/wrist"].dtype == np.float16
    np.testing.assert_array_equal(batch["obs"]["feat/wrist"][:, 0, 0], t)
    np.testing.assert_array_equal(batch["next_obs"]["feat/wrist"][:, 0, 0], t + 1)
    buf.close()


def test_reopen_restores_commits_and_drops_uncommitted_adds(tmp_path):
    space = make_space()
    buf = ReplayBuffer.create(tmp_path / "b", space, ACTION_DIM, capacity=64)
    add_episode(buf, space, 0, 5)
    for t in range(3):                                    # episode 1: three committed steps ...
        buf.add(frame(space, 1, t), np.full(ACTION_DIM, (1 + t) % 3 - 1.0), float(t),
                frame(space, 1, t + 1), False, False, grasp_penalty=-0.1 * t)
    buf.commit()
    for t in range(3, 6):                                 # ... and three never acknowledged
        buf.add(frame(space, 1, t), np.zeros(ACTION_DIM), 0.0, frame(space, 1, t + 1), False, False)
    assert len(buf) == 11
    buf.close()

    buf = ReplayBuffer.open(tmp_path / "b")
    assert len(buf) == 8
    batch = buf.gather(buf.transition_indices())
    check_batch_consistent(space, batch)
    assert batch["obs"]["state"][-1, :2].tolist() == [1, 2]
    assert [row["end"] for row in buf.episodes()] == ["terminated", "aborted"]
    # The aborted episode is closed: the next add starts a new episode, never continuing it.
    add_episode(buf, space, 2, 4)
    assert len(buf) == 12
    check_batch_consistent(space, buf.gather(buf.transition_indices()))
    buf.close()


def test_fsync_mode_round_trips(tmp_path):
    space = make_space()
    buf = ReplayBuffer.create(tmp_path / "b", space, ACTION_DIM, capacity=20, fsync=True)
    for episode in range(6):                              # wraps: evictions are published with fsync
        add_episode(buf, space, episode, 4)
    n = len(buf)
    buf.close()
    buf = ReplayBuffer.open(tmp_path / "b")
    assert buf.fsync and len(buf) == n
    check_batch_consistent(space, buf.gather(buf.transition_indices()))
    buf.close()


def test_one_process_at_a_time_and_no_clobbering(tmp_path):
    space = make_space()
    buf = ReplayBuffer.create(tmp_path / "b", space, ACTION_DIM, capacity=20)
    with pytest.raises(RuntimeError, match="open in another process"):
        ReplayBuffer.open(tmp_path / "b")
    buf.close()
    with pytest.raises(FileExistsError):
        ReplayBuffer.create(tmp_path / "b", space, ACTION_DIM, capacity=20)
    with ReplayBuffer.open(tmp_path / "b") as again:
        assert len(again) == 0
    with pytest.raises(RuntimeError, match="closed"):
        again.add(frame(space, 0, 0), np.zeros(ACTION_DIM), 0.0, frame(space, 0, 1), True, False)


# ---------------------------------------------------------------- corrupt or mismatched files

@pytest.fixture
def saved(tmp_path):
    space = make_space()
    buf = ReplayBuffer.create(tmp_path / "b", space, ACTION_DIM, capacity=30)
    add_episode(buf, space, 0, 5)
    buf.close()
    return tmp_path / "b"


def _data_file(directory, key="wrist"):
    return next(p for p in directory.iterdir() if p.name.startswith(f"frame.{key}."))


def test_truncated_data_file_is_detected(saved):
    path = _data_file(saved)
    os.truncate(path, path.stat().st_size - 100)
    with pytest.raises(ReplayFormatError, match="truncated"):
        ReplayBuffer.open(saved)


def test_missing_data_file_is_detected(saved):
    (saved / "slot.reward.npy").unlink()
    with pytest.raises(ReplayFormatError, match="missing"):
        ReplayBuffer.open(saved)


def test_data_file_of_another_shape_is_detected(saved):
    path = _data_file(saved)
    np.save(path, np.zeros((30, 8, 8, 3), np.uint8))
    with pytest.raises(ReplayFormatError, match="header says"):
        ReplayBuffer.open(saved)


def test_garbled_header_is_detected(saved):
    raw = bytearray((saved / HEADER_FILE).read_bytes())
    raw[len(raw) // 2] ^= 0x5A
    (saved / HEADER_FILE).write_bytes(bytes(raw))
    with pytest.raises(ReplayFormatError, match="garbled|JSON|invalid"):
        ReplayBuffer.open(saved)


def test_edited_header_fails_its_checksum(saved):
    body = json.loads((saved / HEADER_FILE).read_text())
    body["cursor"]["high"] += 3                           # valid JSON, wrong content
    (saved / HEADER_FILE).write_text(json.dumps(body))
    with pytest.raises(ReplayFormatError, match="checksum"):
        ReplayBuffer.open(saved)


def test_other_format_version_is_refused(saved):
    body = json.loads((saved / HEADER_FILE).read_text())
    body["version"] = 99
    (saved / HEADER_FILE).write_text(json.dumps(body))
    with pytest.raises(ReplayFormatError, match="version 99"):
        ReplayBuffer.open(saved)


def test_missing_header_or_directory_is_detected(saved, tmp_path):
    (saved / HEADER_FILE).unlink()
    with pytest.raises(ReplayFormatError, match="not a replay buffer"):
        ReplayBuffer.open(saved)
    with pytest.raises(ReplayFormatError, match="no such"):
        ReplayBuffer.open(tmp_path / "nowhere")


# ---------------------------------------------------------------- bad input on add

def test_bad_input_raises_and_writes_nothing(location):
    space = make_space()
    buf = ReplayBuffer.create(location, space, ACTION_DIM, capacity=30)
    add_episode(buf, space, 0, 2)
    good = dict(obs=frame(space, 1, 0), action=np.zeros(ACTION_DIM), reward=0.0,
                next_obs=frame(space, 1, 1), terminated=False, truncated=False)

    def bad(match, **changes):
        with pytest.raises(ValueError, match=match):
            buf.add(**{**good, **changes})
        assert len(buf) == 2

    obs = frame(space, 1, 0)
    bad("expected", obs={**obs, "wrist": obs["wrist"][:8]})                         # shape
    bad("expected", obs={**obs, "wrist": obs["wrist"].astype(np.float32)})          # dtype
    bad("expected", obs={**obs, "state": obs["state"].astype(np.float64)})
    bad("keys", obs={k: v for k, v in obs.items() if k != "front"})                # missing key
    bad("keys", next_obs={**obs, "depth": obs["wrist"]})                            # extra key
    bad("numpy array", obs={**obs, "state": obs["state"].tolist()})
    bad("non-finite", next_obs={**obs, "state": np.full(STATE_DIM, np.nan, np.float32)})
    bad("non-finite", obs={**obs, "state": np.full(STATE_DIM, np.inf, np.float32)})
    bad("action is not finite", action=np.array([np.nan] + [0.0] * (ACTION_DIM - 1)))
    bad("action: expected", action=np.zeros(ACTION_DIM + 1))
    bad("reward is not finite", reward=float("inf"))
    bad("reward: expected", reward=np.zeros(2))
    bad("grasp_penalty is not finite", grasp_penalty=float("nan"))
    bad("terminated: expected a bool", terminated=2)
    bad("extras given", extras={"feat": np.zeros(3)})

    # Within an episode obs must be the previous next_obs.
    buf.add(**good)
    with pytest.raises(ValueError, match="differs from the previous step's next_obs"):
        buf.add(**{**good, "obs": frame(space, 7, 7), "next_obs": frame(space, 1, 2)})
    assert len(buf) == 3
    buf.close()


def test_bad_create_arguments(tmp_path):
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer.create(None, make_space(), ACTION_DIM, capacity=1)
    with pytest.raises(ValueError, match="observation_space"):
        ReplayBuffer.create(None, gym.spaces.Box(0, 1, (3,)), ACTION_DIM, capacity=10)
    with pytest.raises(ValueError, match="collides"):
        ReplayBuffer.create(None, make_space(), ACTION_DIM, 10, extra_specs={"wrist": ((1,), "f4")})
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer.create(None, make_space(), ACTION_DIM, 10).sample(4, np.random.default_rng())


def test_config_defaults():
    cfg = BufferConfig()
    assert cfg.capacity == 200_000 and cfg.demo_ratio == 0.5 and cfg.fsync is False


def test_uncommitted_adds_that_wrap_never_damage_what_reopen_serves(tmp_path):
    """Adds after the last commit may overwrite the oldest committed frames (eviction); the
    eviction is published first, so a reopen serves only intact transitions, never the
    uncommitted ones in an old slot."""
    space = make_space()
    buf = ReplayBuffer.create(tmp_path / "b", space, ACTION_DIM, capacity=30)
    for episode in range(6):
        add_episode(buf, space, episode, 4)               # 30 frames: the ring is full
    committed = buf.gather(buf.transition_indices())["obs"]["state"][:, :2].tolist()
    add_episode(buf, space, 6, 3, commit=False)           # evicts episodes 0 and 1, uncommitted
    buf.close()                                           # = a kill: close() does not commit
    buf = ReplayBuffer.open(tmp_path / "b")
    batch = buf.gather(buf.transition_indices())
    check_batch_consistent(space, batch)
    present = batch["obs"]["state"][:, :2].tolist()
    assert present == committed[-len(present):] and [6, 0] not in present
    assert len(present) == 5 * 4                          # 4 new frames: only episode 0 evicted
    buf.close()
