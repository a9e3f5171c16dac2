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
