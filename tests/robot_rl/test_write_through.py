"""The learner trains on a lone actor's running episode: its transitions are in the buffers,
uncommitted, as they arrive (LearnerConfig.write_through), and committed and acked when the
episode ends. A second actor, a dropped episode or a restart take the buffers back to their
last commit; nothing unacknowledged is ever committed twice or lost.

Real point_reach episodes, real buffers on disk, a real Learner fed through its ingest path.
"""
import numpy as np

from robot_rl import config as config_lib
from robot_rl.episode import Transition, to_chunk
from robot_rl.learner import Learner, LearnerConfig
from robot_rl.run_env import make_env_and_expert
from robot_rl.train import TrainConfig


def _episode(handle, pattern, seed=0, episode=0):
    """A real point_reach episode cut to len(pattern) steps, with the given intervention flags."""
    obs, _ = handle.env.reset(seed=seed)
    out = []
    for i, flag in enumerate(pattern):
        next_obs, reward, _, _, _ = handle.env.step(handle.expert.act(obs))
        out.append(Transition.copy_of(obs, np.full(7, 0.1 * i, np.float32), reward, next_obs, False,
                                      i == len(pattern) - 1, 0.0, flag, episode=episode, step=i))
        obs = next_obs
    return out


def _learner(tmp_path, name="run", **opts):
    cfg = config_lib.load(TrainConfig, None, [
        "task=point_reach", f"run_dir={tmp_path / name}", "demos=0", "progress=false", "threads=1",
        "learning_starts=4", "batch_size=8", "agent.critic_ensemble_size=2", "agent.critic_subsample_size=null"])
    acks: list[bytes] = []
    return Learner(cfg, LearnerConfig(**opts), publish_weights=lambda b: None, publish_ack=acks.append), acks


def _rows(buffer):
    b = buffer.gather(buffer.transition_indices())
    return {k: b[k] for k in ("action", "reward", "terminated", "truncated", "intervention")} | \
        {"obs": b["obs"]["state"], "next_obs": b["next_obs"]["state"]}


def test_the_running_episode_is_sampled_before_it_ends_and_committed_at_its_end(tmp_path):
    handle = make_env_and_expert("point_reach")
    pattern = [False, True, True, False, False, True, False, False]
    episode = _episode(handle, pattern)
    learner, acks = _learner(tmp_path)
    try:
        learner.ingest(to_chunk(episode[:5], "a0", "s0", seq=0, unacked_from=0))
        # In the buffers now, not committed, not acked: the updates may train on it.
        assert len(learner.online) == 5 and learner.counters["env_steps"] == 0 and not acks
        assert len(learner.demo) == 2                    # the segment that ended at step 3
        assert learner.train_some(max_seconds=None) == 2  # budget: 5 steps seen, learning_starts 4
        sampled = learner.online.gather(learner.online.sample_indices(64, np.random.default_rng(0)))
        assert {round(float(a), 3) for a in sampled["action"][:, 0]} == {0.0, 0.1, 0.2, 0.3, 0.4}
        learner.ingest(to_chunk(episode[5:], "a0", "s0", seq=5, unacked_from=0))
        assert len(learner.online) == 8 and learner.counters["env_steps"] == 8 and len(acks) == 1
        assert len(learner.demo) == 3
    finally:
        learner.close()
    # What was committed is what a reopened run has: the whole episode, once.
    learner, _ = _learner(tmp_path)
    try:
        assert len(learner.online) == 8 and len(learner.demo) == 3
    finally:
        learner.close()


def test_written_through_and_written_whole_store_the_same_rows(tmp_path):
    handle = make_env_and_expert("point_reach")
    episodes = [_episode(handle, [True, False, True, True, False, False, True, True], seed=0, episode=0),
                _episode(handle, [False, False, True, False, True], seed=1, episode=1)]
    stores = []
    for name, through in (("through", True), ("whole", False)):
        learner, _ = _learner(tmp_path, name, write_through=through)
        try:
            seq = 0
            for ep in episodes:
                for i in range(len(ep)):                 # one transition per message, as the actor sends
                    learner.ingest(to_chunk(ep[i:i + 1], "a0", "s0", seq=seq, unacked_from=0))
                    seq += 1
            stores.append((_rows(learner.online), _rows(learner.demo)))
            assert learner.counters["env_steps"] == 13
        finally:
            learner.close()
    (online_a, demo_a), (online_b, demo_b) = stores
    assert len(demo_a["action"]) == 7                 # every intervention step
    for key in online_a:
        np.testing.assert_array_equal(online_a[key], online_b[key], err_msg=key)
        np.testing.assert_array_equal(demo_a[key], demo_b[key], err_msg=key)


def test_a_second_actor_rolls_the_running_episode_back_and_both_land_whole(tmp_path):
    handle = make_env_and_expert("point_reach")
    first, second = _episode(handle, [False] * 6, seed=0), _episode(handle, [False, True, True, False], seed=1)
    learner, acks = _learner(tmp_path)
    try:
        learner.ingest(to_chunk(first[:3], "a0", "s0", seq=0, unacked_from=0))
        assert len(learner.online) == 3                  # written through
        learner.ingest(to_chunk(second[:2], "a1", "s1", seq=0, unacked_from=0))
        assert len(learner.online) == 0 and len(learner.demo) == 0   # back to the last commit
        learner.ingest(to_chunk(first[3:], "a0", "s0", seq=3, unacked_from=0))
        learner.ingest(to_chunk(second[2:], "a1", "s1", seq=2, unacked_from=0))
        assert learner.counters["env_steps"] == 10 and len(learner.online) == 10 and len(learner.demo) == 2
        rows = _rows(learner.online)
        # Whole episodes, in the order they ended: no interleaving.
        np.testing.assert_array_equal(rows["obs"][:6], np.stack([t.obs["state"] for t in first]))
        np.testing.assert_array_equal(rows["obs"][6:], np.stack([t.obs["state"] for t in second]))
        assert learner.stats["rejected"] == 0
    finally:
        learner.close()


def test_a_dropped_running_episode_leaves_nothing_in_the_buffers(tmp_path):
    handle = make_env_and_expert("point_reach")
    episode = _episode(handle, [False, True, False, False, False])
    learner, acks = _learner(tmp_path)
    try:
        learner.ingest(to_chunk(episode[:3], "a0", "s0", seq=0, unacked_from=0))
        assert len(learner.online) == 3 and len(learner.demo) == 1
        broken = to_chunk(episode[4:], "a0", "s0", seq=3, unacked_from=0)   # step 4 after step 2
        learner.ingest(broken)
        assert learner.stats["rejected"] == 1
        assert len(learner.online) == 0 and len(learner.demo) == 0 and not acks
        # The actor resends from its oldest unacked transition: taken again, once.
        learner.ingest(to_chunk(episode, "a0", "s0", seq=0, unacked_from=0))
        assert len(learner.online) == 5 == learner.counters["env_steps"] and len(learner.demo) == 1
    finally:
        learner.close()
