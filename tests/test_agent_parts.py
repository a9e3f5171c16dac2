"""The agent's preprocessed env and its Q-network (the training loop comes with the agent issue)."""

import numpy as np
import torch

from collect.agent_env import make_agent_env, newest_frame
from collect.dqn import QNetwork, QNetworkConfig


def test_agent_env_observations_and_life_loss():
    env = make_agent_env(seed=0)
    obs, info = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert newest_frame(obs).shape == (84, 84)
    lives_lost, terminated, steps = 0, False, 0
    rng = np.random.default_rng(0)
    while not terminated and steps < 5000:
        obs, reward, terminated, truncated, info = env.step(int(rng.integers(4)))
        lives_lost += info["life_lost"]
        steps += 1
    assert terminated and lives_lost == 5  # four lost lives, then the game over


def test_agent_env_is_seeded():
    runs = []
    for _ in range(2):
        env = make_agent_env(seed=4)
        obs, _ = env.reset(seed=4)
        frames = [obs]
        for action in [2, 2, 3, 0, 1] * 8:
            obs, *_ = env.step(action)
            frames.append(obs)
        runs.append(np.stack(frames))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_q_network_shapes_and_gradients():
    torch.manual_seed(0)
    net = QNetwork(QNetworkConfig())
    obs = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    q = net(obs)
    assert q.shape == (3, 4) and torch.isfinite(q).all()
    (q * torch.randn(3, 4)).sum().backward()  # plain q.sum() cancels the mean-subtracted advantage
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_running_mean_std_matches_numpy_and_window_forgets():
    from train.agent import RunningMeanStd

    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(400, 5))
    full = RunningMeanStd((5,))
    for chunk in np.split(data, 40):
        full.update(chunk)
    np.testing.assert_allclose(full.mean, data.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(full.var, data.var(axis=0), rtol=1e-3)

    windowed, unbounded = RunningMeanStd(window=400), RunningMeanStd()
    for chunk in np.split(rng.normal(0.0, 10.0, 4000), 1000) + np.split(rng.normal(0.0, 0.1, 4000), 1000):
        windowed.update(chunk)
        unbounded.update(chunk)
    assert np.sqrt(windowed.var) < 0.2 < 5.0 < np.sqrt(unbounded.var)  # only the window follows the change


def test_rnd_bonus_keeps_its_scale_as_the_predictor_learns():
    from train.agent import RND

    def run(return_window):
        rng = np.random.default_rng(0)
        pool = rng.integers(0, 256, (64, 84, 84), dtype=np.uint8)  # few frames: the predictor learns them fast
        rnd = RND(lr=1e-3, gamma=0.99, n_envs=4, seed=0, return_window=return_window)
        bonuses = []
        for _ in range(500):
            bonuses.append(rnd.reward(pool[rng.integers(0, 64, 4)]).mean())
            rnd.train(pool[rng.integers(0, 64, 32)])
        novel = rnd.reward(rng.integers(0, 256, (4, 84, 84), dtype=np.uint8)).mean()
        return np.mean(bonuses[:20]), np.mean(bonuses[-50:]), novel

    early, late, novel = run(return_window=20)
    _, late_all_time, _ = run(return_window=10**9)
    assert late > 10 * late_all_time  # all-time return statistics shrink the bonus as the error falls
    assert late < early and novel > 10 * late  # learned frames earn little, unseen ones a lot
