"""Everything a trained model needs at inference time: game knowledge, models, checkpoints, the neural env.

Imports nothing from `collect`, `train` or `play`; they import it.
"""

from worldmodel.breakout import ACTION_MEANINGS, FrameInfo, parse_frame
from worldmodel.errors import EpisodeFormatError, MissingDependencyError, NeuralBreakoutError

__all__ = [
    "ACTION_MEANINGS",
    "EpisodeFormatError",
    "FrameInfo",
    "MissingDependencyError",
    "NeuralBreakoutError",
    "parse_frame",
]
