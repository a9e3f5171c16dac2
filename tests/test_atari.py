"""The real-game factory (DESIGN contract 1)."""

import numpy as np
import pytest

from collect.atari import make_env
from worldmodel import ACTION_MEANINGS


def test_contract():
    env = make_env()
    assert env.observation_space.shape == (210, 160, 3) and env.observation_space.dtype == np.uint8
    assert env.action_space.n == 4
    assert tuple(env.unwrapped.get_action_meanings()) == ACTION_MEANINGS
    assert env.unwrapped._frameskip == 4


def test_same_seed_same_frames():
    runs = []
    for _ in range(2):
        env = make_env()
        obs, _ = env.reset(seed=3)
        frames = [obs]
        for action in [1, 2, 2, 3, 0, 1] * 10:
            obs, *_ = env.step(action)
            frames.append(obs)
        runs.append(np.stack(frames))
    assert runs[0].tobytes() == runs[1].tobytes()


def test_unknown_game():
    with pytest.raises(ValueError, match="unknown game 'pong'"):
        make_env("pong")
