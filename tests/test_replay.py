"""Prioritized replay: sum-tree sampling, frame stacks from once-stored frames, n-step targets."""

import numpy as np
import pytest

from collect.replay import PrioritizedReplay, SumTree


def test_sum_tree_samples_in_proportion():
    tree = SumTree(5)
    tree.set(np.arange(5), np.array([1.0, 0.0, 3.0, 0.0, 4.0]))
    assert tree.total == pytest.approx(8.0)
    values = np.random.default_rng(0).uniform(0, tree.total, 80000)
    counts = np.bincount(tree.find(values), minlength=5) / len(values)
    np.testing.assert_allclose(counts, [1 / 8, 0, 3 / 8, 0, 4 / 8], atol=0.01)
    tree.set(np.array([2]), np.array([0.0]))
    assert tree.total == pytest.approx(5.0) and tree.max_leaf() == 4.0
    with pytest.raises(ValueError):
        tree.set(np.array([0]), np.array([-1.0]))


def fill(replay, steps, episode_length, seed=0):
    """Write `steps` slots per env; frame pixels [0,0] + 256 [0,2] = step, [0,1] = episode number."""
    rng = np.random.default_rng(seed)
    E = replay.n_envs
    episode = np.zeros(E, int)
    t_in_episode = np.zeros(E, int)
    for step in range(steps):
        frames = np.zeros((E, 84, 84), np.uint8)
        frames[:, 0, 0] = step % 256
        frames[:, 0, 2] = step // 256
        frames[:, 0, 1] = episode % 256
        firsts = t_in_episode == 0
        dones = t_in_episode == episode_length - 1
        replay.add(frames, rng.integers(4, size=E), np.ones(E, np.float32), dones, firsts)
        t_in_episode += 1
        episode = np.where(dones, episode + 1, episode)
        t_in_episode = np.where(dones, 0, t_in_episode)


@pytest.mark.parametrize("steps", [30, 500])  # before and after the ring wraps (per env 100 slots)
def test_stacks_and_n_step_targets(steps):
    replay = PrioritizedReplay(capacity=200, n_envs=2, n_step=3, gamma=0.9, seed=1)
    episode_length = 7
    fill(replay, steps, episode_length)
    batch = replay.sample(512, beta=0.4)
    def step_of(frame):
        return int(frame[0, 0]) + 256 * int(frame[0, 2])

    for obs, nxt, ret, boot in zip(batch["obs"], batch["next_obs"], batch["returns"], batch["bootstrap"]):
        t = np.array([step_of(f) for f in obs])
        ep = obs[:, 0, 1].astype(int)
        assert (ep == ep[-1]).all(), "a stack never mixes episodes"
        t_in_ep = t[-1] % episode_length
        diffs = np.diff(t)
        assert set(diffs.tolist()) <= {0, 1}, "consecutive frames, repeated only as start padding"
        if (diffs == 0).any():
            first_run = np.flatnonzero(diffs == 1)
            assert len(first_run) == 0 or (diffs[: first_run[0]] == 0).all(), "padding only before the start"
        left = episode_length - 1 - t_in_ep  # steps after this one in its episode
        n = min(3, left + 1)
        assert ret == pytest.approx(sum(0.9 ** i for i in range(n)))
        assert boot == pytest.approx(0.0 if left < 3 else 0.9 ** 3)
        if left >= 3:
            assert step_of(nxt[-1]) == t[-1] + 3
    assert (batch["weights"] > 0).all() and batch["weights"].max() == pytest.approx(1.0)


def test_unready_slots_are_never_sampled():
    replay = PrioritizedReplay(capacity=100, n_envs=1, n_step=3)
    with pytest.raises(ValueError, match="replay is empty"):
        replay.sample(4, beta=0.4)
    fill(replay, 5, episode_length=1000)
    assert len(replay) == 2  # slots 0 and 1 have their 3-step targets stored
    assert set(replay.sample(64, beta=0.4)["index"].tolist()) <= {0, 1}


def test_priorities_steer_sampling_and_state_round_trips():
    replay = PrioritizedReplay(capacity=100, n_envs=1, n_step=1, alpha=1.0, seed=3)
    fill(replay, 50, episode_length=10)
    index = np.arange(len(replay))
    errors = np.where(index == 7, 100.0, 0.01)
    replay.update_priorities(index, errors)
    batch = replay.sample(256, beta=1.0)
    assert (batch["index"] == 7).mean() > 0.8
    assert batch["weights"][batch["index"] == 7].max() < batch["weights"].max()

    clone = PrioritizedReplay(capacity=100, n_envs=1, n_step=1, alpha=1.0, seed=99)
    clone.load_state_dict(replay.state_dict())
    a, b = replay.sample(32, beta=0.5), clone.sample(32, beta=0.5)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
