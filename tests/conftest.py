import os

import numpy as np
import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

try:  # keep tests from fighting over the two cores
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

from collect.atari import ale_of, make_env  # noqa: E402
from collect.episodes import EpisodeBuilder  # noqa: E402


@pytest.fixture(scope="session")
def recorded_episode():
    """A short random-policy episode recorded in memory: (builder, seed, actions, frames)."""
    seed = 7
    env = make_env()
    obs, info = env.reset(seed=seed)
    ale = ale_of(env)
    builder = EpisodeBuilder(dict(game="breakout", seed=seed, policy="random"))
    builder.reset(obs, lives=info["lives"], screen=ale.getScreen(), ram=ale.getRAM())
    rng = np.random.default_rng(0)
    frames, actions = [obs], []
    terminated = truncated = False
    for _ in range(300):
        action = int(rng.integers(4)) if rng.random() > 0.3 else 1
        obs, reward, terminated, truncated, info = env.step(action)
        builder.step(action, reward, obs, lives=info["lives"], screen=ale.getScreen(), ram=ale.getRAM())
        frames.append(obs)
        actions.append(action)
        if terminated or truncated:
            break
    env.close()
    return builder, seed, actions, np.stack(frames), terminated, truncated


@pytest.fixture(scope="session")
def tracker_frames():
    """RGB frames (501, 210, 160, 3) of 500 steps of the ball tracker (seed 0): it breaks bricks, so
    its ball crosses the bottom of the brick band, where the random episode's never goes."""
    from collect.policies import TrackerPolicy

    env = make_env(max_episode_steps=500)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    policy = TrackerPolicy()
    policy.reset()
    frames, done = [obs], False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy.act(obs, rng, info))
        frames.append(obs)
        done = terminated or truncated
    env.close()
    return np.stack(frames)


@pytest.fixture(scope="session")
def episodes_dir(tmp_path_factory):
    """A folder of 4 short tracker episodes, recorded by the CLI, for the training and evaluation tests."""
    from test_cli import run

    out = tmp_path_factory.mktemp("wm-data")
    result = run("record", "--episodes", "4", "--policy", "tracker", "--max-steps", "40", "--out", str(out),
                 "--quiet")
    assert result.returncode == 0, result.stderr
    return out
