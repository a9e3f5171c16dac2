"""The real game: a factory for ALE Atari environments through gymnasium and ale-py's bundled ROMs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from worldmodel.errors import MissingDependencyError

GAMES = {"breakout": "ALE/Breakout-v5"}
"""Games this project knows, by short name."""


def env_id_for(game: str) -> str:
    if game in GAMES:
        return GAMES[game]
    if game in GAMES.values():
        return game
    raise ValueError(f"unknown game {game!r}; known games: {', '.join(GAMES)}")


def _register_ale() -> None:
    try:
        import ale_py
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise MissingDependencyError(
            "ale-py is not installed: run `pip install ale-py` (it ships the Atari ROMs)"
        ) from exc
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)  # no banner on every env
    gym.register_envs(ale_py)


def make_env(
    game: str = "breakout",
    seed: int | None = None,
    *,
    frameskip: int = 4,
    repeat_action_probability: float = 0.0,
    max_episode_steps: int | None = None,
) -> gym.Env:
    """Make the real game: RGB 210x160x3 observations, minimal action set, sticky actions off.

    `repeat_action_probability=0.0` (the default) makes an episode replay exactly from its seed and
    actions; pass 0.25 for the stochastic v5 benchmark setting. When `seed` is given the env is reset
    once with it, so the next `reset()` without a seed continues the same random stream.
    """
    env_id = env_id_for(game)
    _register_ale()
    kwargs = dict(
        obs_type="rgb",
        frameskip=frameskip,
        repeat_action_probability=repeat_action_probability,
        full_action_space=False,
    )
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    try:
        env = gym.make(env_id, **kwargs)
    except Exception as exc:  # ale-py raises several types when its ROM is absent
        if "rom" in str(exc).lower():
            raise MissingDependencyError(
                f"the ROM for {env_id} is missing: reinstall ale-py (`pip install --force-reinstall ale-py`)"
            ) from exc
        raise
    if seed is not None:
        env.reset(seed=seed)
    return env


def ale_of(env: gym.Env):
    """The `ale_py.ALEInterface` under a gymnasium Atari env."""
    return env.unwrapped.ale


def step_with_display_ram(env: gym.Env, action: int) -> tuple[np.ndarray, float, bool, bool, dict, np.ndarray]:
    """Step an env made with frameskip=1 four times, like one frameskip-4 step.

    Returns (obs, reward, terminated, truncated, info, display_ram), where display_ram is the RAM
    read before the last emulated frame: the score and lives digits on `obs` show that state.
    Used to hold the frame parser against the emulator.
    """
    ale = ale_of(env)
    total = 0.0
    display_ram = ale.getRAM().copy()
    for _ in range(4):
        display_ram = ale.getRAM().copy()
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        if terminated or truncated:
            break
    return obs, total, terminated, truncated, info, display_ram
