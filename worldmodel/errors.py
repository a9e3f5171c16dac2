"""Errors a user can act on. The CLI prints these as one line and exits non-zero."""


class NeuralBreakoutError(Exception):
    """Base class: an error caused by input or environment, not by a bug."""


class MissingDependencyError(NeuralBreakoutError):
    """A package or ROM the command needs is not installed."""


class EpisodeFormatError(NeuralBreakoutError):
    """An episode file is truncated, corrupt or not ours. The message names the file."""


class NoDisplayError(NeuralBreakoutError):
    """A window was asked for on a machine without a display."""
