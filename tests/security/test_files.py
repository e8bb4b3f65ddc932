"""Files on disk that were damaged or tampered with are refused with the file named, on open,
before anything trains on them (issue #19, part B: replay buffers, checkpoints, datasets).

Every case damages real files written by the real writers (ReplayBuffer, save_state,
EpisodeDataset) and opens them with the real readers; nothing is mocked.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import zlib

import gymnasium as gym
import numpy as np
import pytest
import torch

from robot_rl.buffers import ReplayBuffer, ReplayFormatError
from robot_rl.buffers import integrity, storage
from robot_rl.checkpoint import CheckpointError, load_state, save_state
from robot_rl.datasets import store
from robot_rl.datasets.episode import EpisodeBuilder
from robot_rl.datasets.loading import load_into_buffer
from robot_rl.datasets.store import DatasetFormatError, EpisodeDataset
from robot_rl.file_format import json_crc32

ACTION_DIM = 3
EPISODES, STEPS = 4, 5                # 4 episodes x 5 steps: 20 transitions, frames 0..23


def _space() -> gym.spaces.Dict:
    return gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (4,), np.float32),
                            "wrist": gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)})


def _obs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"state": rng.standard_normal(4).astype(np.float32),
            "wrist": rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)}


def _fill(buf: ReplayBuffer, rng: np.random.Generator, episodes: int = EPISODES) -> None:
    for _ in range(episodes):
        obs = _obs(rng)
        for t in range(STEPS):
            nxt = _obs(rng)
            buf.add(obs, rng.uniform(-1, 1, ACTION_DIM).astype(np.float32), float(t == STEPS - 1),
                    nxt, t == STEPS - 1, False, intervention=bool(t % 2))
            obs = nxt
        buf.commit()


@pytest.fixture
def buffer_dir(tmp_path):
    path = tmp_path / "buf"
    with ReplayBuffer.create(path, _space(), ACTION_DIM, capacity=64) as buf:
        _fill(buf, np.random.default_rng(0))
    return path


def _spec(path):
    return storage.read_header(path)[0]


def _field_file(path, name: str):
    spec = _spec(path)
    fields = dict(spec["frames"], **spec["slots"])
    return path / fields[name]["file"]


def _poke(npy_path, row: int, value: int | None = None, byte_in_row: int = 0) -> None:
    """Overwrites one byte of row `row` of a .npy file in place (XOR 0x5A, or `value`)."""
    arr = np.load(npy_path, mmap_mode="r+")
    raw = arr[row:row + 1].view(np.uint8).reshape(-1)
    raw[byte_in_row] = (raw[byte_in_row] ^ 0x5A) if value is None else value
    arr.flush()
    del arr


# field, row, byte value (None: flip), what the message must say
CORRUPTIONS = [
    ("wrist", 7, None, "checksum"),               # a flipped pixel
    ("state", 3, None, "checksum"),               # a flipped bit in a float
    ("action", 2, None, "checksum"),
    ("reward", 4, None, "checksum"),
    ("grasp_penalty", 1, None, "checksum"),
    ("terminated", 4, 0xFF, "not 0/1"),           # 0xFF would reach a batch as 255.0
    ("truncated", 0, 0x01, "checksum"),           # a valid-looking flag that was never set
    ("intervention", 2, 0x02, "not 0/1"),
    ("has_transition", 5, 0xFF, "not 0/1"),       # would make len() count 255 for one row
    ("has_transition", 4, 0x00, "checksum"),      # a transition silently dropped
    ("episode", 6, None, "episode"),              # frames re-assigned to another episode
]


@pytest.mark.parametrize("field,row,value,says", CORRUPTIONS,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CORRUPTIONS])
def test_corrupt_replay_rows_are_refused_on_open_naming_file_and_frames(buffer_dir, field, row, value, says):
    target = _field_file(buffer_dir, field)
    _poke(target, row, value)
    with pytest.raises(ReplayFormatError, match=says) as err:
        ReplayBuffer.open(buffer_dir)
    assert target.name in str(err.value) and f"frames {row}.." in str(err.value)
    # The lock was released: the buffer can be inspected again after the refusal.
    with pytest.raises(ReplayFormatError):
        ReplayBuffer.open(buffer_dir)


def test_verify_finds_corruption_that_happens_while_the_buffer_is_open(buffer_dir):
    with ReplayBuffer.open(buffer_dir) as buf:
        assert buf.verify() == EPISODES * (STEPS + 1)
        _poke(_field_file(buffer_dir, "reward"), 8)        # another process, or the disk
        with pytest.raises(ReplayFormatError, match="slot.reward.npy: 1 row.*frames 8..8"):
            buf.verify()


def test_a_corrupt_checksum_file_is_refused_too(buffer_dir):
    _poke(buffer_dir / integrity.CHECKSUM_FILE, 9)
    with pytest.raises(ReplayFormatError, match="fail their checksum"):
        ReplayBuffer.open(buffer_dir)


def test_an_intact_buffer_opens_and_keeps_its_checksums_across_commits(buffer_dir):
    rng = np.random.default_rng(1)
    with ReplayBuffer.open(buffer_dir) as buf:
        assert len(buf) == EPISODES * STEPS
        _fill(buf, rng, episodes=12)          # wraps the 64-slot ring: eviction and reuse
        assert len(buf) < 16 * STEPS
    with ReplayBuffer.open(buffer_dir) as buf:  # every live row verified again
        batch = buf.sample(32, rng)
        assert set(np.unique(batch["terminated"])) <= {0.0, 1.0}


def test_a_step_added_after_the_last_commit_does_not_fail_the_checksums(buffer_dir):
    """The next add() of an open episode rewrites the last committed frame's transition
    fields; killed before its commit, that row must still verify (it is closed on reopen)."""
    rng = np.random.default_rng(2)
    with ReplayBuffer.open(buffer_dir) as buf:
        obs = _obs(rng)
        nxt = _obs(rng)
        buf.add(obs, np.zeros(ACTION_DIM, np.float32), 0.0, nxt, False, False)
        buf.commit()                          # an open episode, 1 step acknowledged
        buf.add(nxt, np.ones(ACTION_DIM, np.float32), 9.0, _obs(rng), False, False)
        # no commit: as after a SIGKILL
    with ReplayBuffer.open(buffer_dir) as buf:
        assert len(buf) == EPISODES * STEPS + 1


def test_a_kill_inside_commit_between_checksums_and_header_reopens_at_the_last_commit(buffer_dir):
    """commit() checksums the rows (the last committed frame again, now with its transition)
    and then replaces the header: killed between the two, the reopened buffer is the previous
    commit, and that frame's CRCs are resealed to it (found by test_buffer_kill's wraparound
    test as a refused open). A corrupt frame in that row is still refused."""
    rng = np.random.default_rng(3)
    with ReplayBuffer.open(buffer_dir) as buf:
        obs, nxt = _obs(rng), _obs(rng)
        buf.add(obs, np.zeros(ACTION_DIM, np.float32), 0.0, nxt, False, False)
        buf.commit()
        buf.add(nxt, np.ones(ACTION_DIM, np.float32), 9.0, _obs(rng), False, False)
        buf._checksums.update(buf._committed["high"] - 1, buf._high)    # commit()'s first half
        last = buf._committed["high"] - 1
        # killed here: no header
    with ReplayBuffer.open(buffer_dir) as buf:
        assert len(buf) == EPISODES * STEPS + 1
    with ReplayBuffer.open(buffer_dir) as buf:                          # and it stays so
        assert len(buf) == EPISODES * STEPS + 1
    _poke(_field_file(buffer_dir, "state"), last % 64, byte_in_row=1)
    with pytest.raises(ReplayFormatError, match="checksum"):
        ReplayBuffer.open(buffer_dir)


def test_verify_false_skips_the_open_checks_but_a_batch_still_refuses_bad_values(buffer_dir):
    _poke(_field_file(buffer_dir, "terminated"), 4, 0xFF)
    with ReplayBuffer.open(buffer_dir, verify=False) as buf:
        with pytest.raises(ReplayFormatError, match="terminated = 255"):
            buf.gather(np.array([4]))
        buf.gather(np.array([3]))             # the intact rows still serve


def test_a_non_finite_state_in_a_batch_is_refused(buffer_dir):
    state = np.load(_field_file(buffer_dir, "state"), mmap_mode="r+")
    state[2, 0] = np.nan
    state.flush()
    del state
    with ReplayBuffer.open(buffer_dir, verify=False) as buf:
        with pytest.raises(ReplayFormatError, match="non-finite obs"):
            buf.gather(np.array([2]))
    with pytest.raises(ReplayFormatError, match="checksum"):
        ReplayBuffer.open(buffer_dir)


def _downgrade_to_version_1(path) -> None:
    """What a buffer written before checksums looks like: no rows.crc32, a version-1 header."""
    spec, cursor = storage.read_header(path)
    del spec["checksum"]
    (path / integrity.CHECKSUM_FILE).unlink()
    body = {"format": storage.FORMAT_NAME, "version": 1, "spec": spec, "cursor": cursor}
    body["checksum"] = json_crc32(body)   # the header checksum every format shares (robot_rl/file_format.py)
    (path / storage.HEADER_FILE).write_text(json.dumps(body))


def test_a_version_1_buffer_is_range_checked_then_upgraded_with_a_warning(buffer_dir, caplog):
    _downgrade_to_version_1(buffer_dir)
    with caplog.at_level(logging.WARNING, logger="robot_rl.buffers"):
        with ReplayBuffer.open(buffer_dir) as buf:
            assert len(buf) == EPISODES * STEPS
    assert "version 1 has no checksums" in caplog.text
    assert storage.read_header(buffer_dir)[0]["checksum"]["algorithm"] == "crc32"
    _poke(_field_file(buffer_dir, "wrist"), 1)      # from now on corruption is found
    with pytest.raises(ReplayFormatError, match="checksum"):
        ReplayBuffer.open(buffer_dir)


def test_a_version_1_buffer_with_a_bad_flag_is_refused_not_upgraded(buffer_dir):
    _downgrade_to_version_1(buffer_dir)
    _poke(_field_file(buffer_dir, "has_transition"), 5, 0xFF)
    with pytest.raises(ReplayFormatError, match="slot.has_transition.npy.*not 0/1"):
        ReplayBuffer.open(buffer_dir)
    assert storage.read_header(buffer_dir)[0].get("checksum") is None   # left as it was


@pytest.mark.parametrize("edit,says", [
    (lambda b: b["spec"].update(checksum={"algorithm": "md5", "file": "rows.crc32", "fields": []}),
     "checksum algorithm"),
    (lambda b: b["spec"].pop("checksum"), "without row checksums"),
    (lambda b: b.update(version=True), "format version True"),
], ids=["algorithm", "version-2-without-checksums", "bool-version"])
def test_a_header_that_lies_about_its_checksums_is_refused(buffer_dir, edit, says):
    header = buffer_dir / storage.HEADER_FILE
    body = json.loads(header.read_text())
    edit(body)
    body["checksum"] = json_crc32({k: body[k] for k in ("format", "version", "spec", "cursor")})
    header.write_text(json.dumps(body))
    with pytest.raises(ReplayFormatError, match=says):
        ReplayBuffer.open(buffer_dir)


# ----------------------------------------------------------------------------- checkpoints

def _state():
    return {"modules": {"w": torch.arange(4.0)},
            "optimizer": {"param_groups": [{"lr": 3e-4, "eps": 1e-8, "weight_decay": 0.0,
                                            "params": [0]}], "state": {}},
            "counters": {"critic_steps": 10, "actor_steps": 5}}


@pytest.fixture
def ckpt(tmp_path):
    return save_state(_state(), tmp_path / "checkpoint", metadata={"counters": {"env_steps": 100,
                                                                                "updates": 50}})


def _resign(json_path, doc) -> None:
    """Rewrites checkpoint.json with a valid json_sha256: an edit that the checksum alone
    cannot catch (written by a tool that knows the format), so the range checks must."""
    body = {k: doc.get(k) for k in ("format", "format_version", "tensors_sha256", "metadata", "state")}
    doc["json_sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                                        .encode()).hexdigest()
    json_path.write_text(json.dumps(doc))


def _find_pairs(node, key):
    """The [key, value] pairs of every stored dict entry named `key` in a checkpoint skeleton."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "__dict__":
                for pair in v:
                    if pair[0] == key:
                        yield pair
                    yield from _find_pairs(pair[1], key)
            else:
                yield from _find_pairs(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from _find_pairs(v, key)


def _set_in_state(key, value):
    def edit(doc):
        for pair in _find_pairs(doc["state"], key):
            pair[1] = value
    return edit


def _deep(doc):
    node = 1
    for _ in range(200):
        node = {"__list__": [node]}
    doc["state"] = node


CHECKPOINT_EDITS = [
    ("negative-updates", lambda d: d["metadata"]["counters"].update(updates=-5000), "counters.updates"),
    ("float-env-steps", lambda d: d["metadata"]["counters"].update(env_steps=1.5), "counters.env_steps"),
    ("metadata-list", lambda d: d.update(metadata=[1, 2]), "metadata must be a mapping"),
    ("nan-lr", _set_in_state("lr", float("nan")), "lr = nan"),
    ("negative-lr", _set_in_state("lr", -1.0), "learning rate"),
    ("inf-eps", _set_in_state("eps", float("inf")), "eps = inf"),
    ("negative-critic-steps", _set_in_state("critic_steps", -3), "critic_steps"),
    ("bad-dict-entry", lambda d: d["state"]["__dict__"].append([None]), "dict entry"),
    ("bad-dict-key", lambda d: d["state"]["__dict__"].append([[1], 2]), "dict entry"),
    ("unknown-node", lambda d: d.update(state={"__weird__": 1}), "malformed"),
    ("bare-list", lambda d: d.update(state=[1, 2]), "bare list"),
    ("missing-tensor", lambda d: d.update(state={"__tensor__": "nope"}), "tensor file lacks"),
    ("tensor-key-not-str", lambda d: d.update(state={"__tensor__": [1]}), "tensor file lacks"),
    ("no-state", lambda d: d.pop("state"), "lacks"),
    ("deep-nesting", _deep, "deeper than 64"),
]


@pytest.mark.parametrize("name,edit,says", CHECKPOINT_EDITS, ids=[c[0] for c in CHECKPOINT_EDITS])
def test_tampered_checkpoint_json_is_a_checkpoint_error_naming_the_field(ckpt, name, edit, says):
    json_path = ckpt.with_suffix(".json")
    doc = json.loads(json_path.read_text())
    edit(doc)
    _resign(json_path, doc)
    with pytest.raises(CheckpointError, match=says):
        load_state(ckpt)


def test_json_nested_past_the_parser_s_limit_is_a_checkpoint_error(ckpt):
    json_path = ckpt.with_suffix(".json")
    text = json_path.read_text()
    deep = '{"__list__": [' * 100_000 + "1" + "]}" * 100_000
    json_path.write_text(text.replace('"state": {', f'"deep": {deep}, "state": {{', 1))
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_state(ckpt)


@pytest.mark.parametrize("edit", [
    lambda t: t.replace('"updates": 50', '"updates": -50'),
    lambda t: t.replace("0.0003", "0.3"),
    lambda t: t.replace('"critic_steps"', '"critic_stepz"'),
], ids=["counter", "lr", "key"])
def test_an_edit_without_resigning_fails_the_json_checksum(ckpt, edit):
    json_path = ckpt.with_suffix(".json")
    text = json_path.read_text()
    assert edit(text) != text
    json_path.write_text(edit(text))
    with pytest.raises(CheckpointError, match="json_sha256"):
        load_state(ckpt)


def test_a_format_1_checkpoint_still_loads_with_a_warning_after_range_checks(ckpt, caplog):
    json_path = ckpt.with_suffix(".json")
    doc = json.loads(json_path.read_text())
    doc.pop("json_sha256")
    doc["format_version"] = 1
    json_path.write_text(json.dumps(doc))
    with caplog.at_level(logging.WARNING, logger="robot_rl.checkpoint"):
        state, meta = load_state(ckpt)
    assert meta["counters"]["updates"] == 50 and torch.equal(state["modules"]["w"], torch.arange(4.0))
    assert "format 1 has no checksum" in caplog.text
    doc["metadata"]["counters"]["updates"] = -1          # the range checks still apply
    json_path.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="counters.updates"):
        load_state(ckpt)


# ----------------------------------------------------------------------------- datasets

def _dataset(path, seed: int, episodes: int = 2) -> EpisodeDataset:
    rng = np.random.default_rng(seed)
    ds = EpisodeDataset.create(path, _space(), ACTION_DIM, fsync=False)
    for _ in range(episodes):
        b = EpisodeBuilder(_obs(rng))
        for t in range(STEPS):
            b.add(rng.uniform(-1, 1, ACTION_DIM).astype(np.float32), float(t == STEPS - 1),
                  _obs(rng), t == STEPS - 1, False)
        ds.append(b.build(task="unit", success=True, source="expert"))
    return ds


def test_an_episode_swapped_in_from_another_dataset_is_refused_before_loading(tmp_path):
    _dataset(tmp_path / "a", seed=0).close()
    _dataset(tmp_path / "b", seed=1).close()
    victim = tmp_path / "a" / "episodes" / "episode_000001.npz"
    shutil.copyfile(tmp_path / "b" / "episodes" / "episode_000001.npz", victim)
    ds = EpisodeDataset.open(tmp_path / "a")
    ds.read_episode(0)                                    # the intact one still reads
    with pytest.raises(DatasetFormatError, match="episode_000001.npz.*another dataset"):
        ds.read_episode(1)
    with ReplayBuffer.create(None, _space(), ACTION_DIM, capacity=64) as buf:
        with pytest.raises(DatasetFormatError, match="episode_000001.npz"):
            load_into_buffer(tmp_path / "a", buf)
        assert len(buf) == 0                              # checked before anything was added


def test_a_flipped_byte_in_an_episode_file_is_refused(tmp_path):
    _dataset(tmp_path / "a", seed=0).close()
    path = tmp_path / "a" / "episodes" / "episode_000000.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetFormatError, match="episode_000000.npz"):
        EpisodeDataset.open(tmp_path / "a").verify()


def _rewrite_header(path, edit) -> None:
    header = path / store.HEADER_FILE
    body = json.loads(header.read_text())
    body.pop("checksum")
    edit(body)
    body["checksum"] = json_crc32(body)
    header.write_text(json.dumps(body))


@pytest.mark.parametrize("name", ["../../../etc/passwd", "/etc/passwd", "episode_000001.npz",
                                  "sub/episode_000000.npz", "episode_000000.npz/.."])
def test_an_episode_file_entry_outside_episodes_is_refused(tmp_path, name):
    _dataset(tmp_path / "a", seed=0).close()
    _rewrite_header(tmp_path / "a", lambda b: b["episodes"][0].update(file=name))
    with pytest.raises(DatasetFormatError, match="must be 'episode_000000.npz'"):
        EpisodeDataset.open(tmp_path / "a")


@pytest.mark.parametrize("crc", [None, "xyz", 12345, "0000000g"])
def test_a_version_2_entry_without_a_valid_crc_is_refused(tmp_path, crc):
    _dataset(tmp_path / "a", seed=0).close()
    _rewrite_header(tmp_path / "a", lambda b: b["episodes"][1].update(crc32=crc))
    with pytest.raises(DatasetFormatError, match="entry 1 lacks a valid crc32"):
        EpisodeDataset.open(tmp_path / "a")


def test_a_version_1_dataset_reads_with_a_warning_and_is_upgraded_when_opened_writable(tmp_path, caplog):
    _dataset(tmp_path / "a", seed=0).close()

    def to_v1(body):
        body["version"] = 1
        for m in body["episodes"]:
            m.pop("crc32")
    _rewrite_header(tmp_path / "a", to_v1)
    with caplog.at_level(logging.WARNING, logger="robot_rl.datasets"):
        assert len(list(EpisodeDataset.open(tmp_path / "a"))) == 2
        assert "no episode checksums" in caplog.text
        EpisodeDataset.open(tmp_path / "a", writable=True).close()
    body = json.loads((tmp_path / "a" / store.HEADER_FILE).read_text())
    files = tmp_path / "a" / "episodes"
    assert body["version"] == 2
    assert [m["crc32"] for m in body["episodes"]] == [
        f"{zlib.crc32((files / m['file']).read_bytes()):08x}" for m in body["episodes"]]


# ----------------------------------------------------------------------------- reward labels

def _labels(root):
    from robot_rl.reward.labels import LabelWriter
    rng = np.random.default_rng(0)
    w = LabelWriter(root, ["wrist"], image_size=8, chunk_frames=4)
    for i in range(8):
        w.add({"wrist": rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)}, i % 2, episode=i // 4, step=i)
    w.close()
    return root


def test_a_flipped_label_chunk_is_refused_by_its_crc(tmp_path):
    from robot_rl.reward.labels import load_labels
    root = _labels(tmp_path / "labels")
    assert len(load_labels(root)) == 8
    chunk = root / "chunk_000001.npz"
    data = bytearray(chunk.read_bytes())
    data[200] ^= 0x10
    chunk.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="chunk_000001.npz.*CRC-32"):
        load_labels(root)


@pytest.mark.parametrize("name", ["../outside.npz", "/etc/passwd", "chunk_000001.npz"])
def test_a_label_chunk_entry_outside_the_directory_is_refused(tmp_path, name):
    from robot_rl.reward.labels import load_labels
    root = _labels(tmp_path / "labels")
    index = json.loads((root / "index.json").read_text())
    index["chunks"][0]["file"] = name
    (root / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="chunk entry 0 must name file 'chunk_000000.npz'"):
        load_labels(root)


def test_a_version_1_label_set_loads_with_a_warning_and_a_writer_upgrades_it(tmp_path, caplog):
    from robot_rl.reward.labels import LabelWriter, load_labels, read_index
    root = _labels(tmp_path / "labels")
    index = json.loads((root / "index.json").read_text())
    index["version"] = 1
    for c in index["chunks"]:
        c.pop("crc32")
    (root / "index.json").write_text(json.dumps(index))
    with caplog.at_level(logging.WARNING, logger="robot_rl.reward.labels"):
        assert len(load_labels(root)) == 8
        assert "no chunk checksums" in caplog.text
        LabelWriter(root, ["wrist"], image_size=8).close()
    assert read_index(root)["version"] == 2 and all("crc32" in c for c in read_index(root)["chunks"])
