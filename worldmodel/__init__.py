"""Everything a trained model needs at inference time: game knowledge, models, checkpoints, the neural env.

Imports nothing from `collect`, `train` or `play`; they import it.
"""

from worldmodel.breakout import ACTION_MEANINGS, FrameInfo, parse_frame
from worldmodel.errors import EpisodeFormatError, MissingDependencyError, NeuralBreakoutError

ENV_ID = "NeuralBreakout-v0"


def _register() -> None:
    import gymnasium

    if ENV_ID not in gymnasium.registry:
        gymnasium.register(ENV_ID, entry_point="worldmodel.env:NeuralBreakoutEnv", max_episode_steps=27_000)


def __getattr__(name: str):
    """Heavy members (torch models) load on first use, so `import worldmodel` stays light."""
    if name == "NeuralBreakoutEnv":
        from worldmodel.env import NeuralBreakoutEnv

        return NeuralBreakoutEnv
    if name == "load_world_model":
        from worldmodel.world_model import load_world_model

        return load_world_model
    if name == "load_action_map":
        from worldmodel.action_map import load_action_map

        return load_action_map
    raise AttributeError(f"module 'worldmodel' has no attribute {name!r}")


_register()

__all__ = [
    "ACTION_MEANINGS",
    "ENV_ID",
    "EpisodeFormatError",
    "FrameInfo",
    "MissingDependencyError",
    "NeuralBreakoutEnv",
    "NeuralBreakoutError",
    "load_action_map",
    "load_world_model",
    "parse_frame",
]
