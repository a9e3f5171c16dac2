"""The DQN agent's own view of the real game: standard Atari preprocessing.

84x84 grey, max over the last two of the 4 skipped frames, up to 30 no-ops at reset, FIRE pressed at
the start of every life, a 4-frame stack, and `info["life_lost"]` so the learner can treat a lost
life as the end of an episode while the game itself goes on to game over. Rewards stay raw here; the
learner clips them. The emulator runs at frameskip 1 underneath, so the dynamics equal those of
`ALE/Breakout-v5` at frameskip 4 with sticky actions off.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

from collect.atari import make_env
from worldmodel.breakout import FIRE

STACK = 4
SIZE = 84


class FireOnLifeStart(gym.Wrapper):
    """Press FIRE after reset and after every lost life; report `life_lost` in info."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(FIRE)
        if terminated or truncated:  # pragma: no cover - cannot happen on the first step
            obs, info = self.env.reset(**kwargs)
        self.lives = info["lives"]
        info["life_lost"] = False
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        life_lost = info["lives"] < self.lives
        self.lives = info["lives"]
        if life_lost and not (terminated or truncated):
            obs, extra, terminated, truncated, info = self.env.step(FIRE)
            reward += extra
        info["life_lost"] = life_lost or terminated
        return obs, reward, terminated, truncated, info


def make_agent_env(game: str = "breakout", seed: int | None = None, noop_max: int = 30,
                   max_episode_steps: int = 27_000) -> gym.Env:
    """Observations (4, 84, 84) uint8; the minimal action set of the real game."""
    env = make_env(game, frameskip=1, max_episode_steps=max_episode_steps * 4)
    env = AtariPreprocessing(env, noop_max=noop_max, frame_skip=4, screen_size=SIZE, grayscale_obs=True)
    env = FireOnLifeStart(env)
    env = FrameStackObservation(env, STACK)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def newest_frame(obs: np.ndarray) -> np.ndarray:
    """The most recent 84x84 frame of a stacked observation (..., 4, 84, 84)."""
    return obs[..., -1, :, :]
