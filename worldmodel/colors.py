"""Frames as colour classes: Breakout draws at most 9 colours, so the models read and predict one
class per pixel (cross-entropy gives crisp frames; an MSE loss blurs the 2x4-px ball away).
"""

from __future__ import annotations

import numpy as np

from worldmodel.errors import NeuralBreakoutError


class ColorTable:
    """The colours a model knows, class 0 first. Converts RGB frames to class ids and back."""

    def __init__(self, colors: list[tuple[int, int, int]] | tuple[tuple[int, int, int], ...]):
        if not 1 <= len(colors) <= 256:
            raise ValueError(f"a colour table needs 1 to 256 colours, got {len(colors)}")
        self.rgb = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)  # (K, 3)
        packed = self._pack(self.rgb)
        self.order = np.argsort(packed)
        self.sorted_packed = packed[self.order]

    def __len__(self) -> int:
        return len(self.rgb)

    @property
    def colors(self) -> tuple[tuple[int, int, int], ...]:
        return tuple(tuple(int(v) for v in c) for c in self.rgb)

    def class_of(self, rgb: tuple[int, int, int]) -> int | None:
        """The class id of a colour, or None if the table does not have it."""
        match = np.flatnonzero((self.rgb == np.asarray(rgb, dtype=np.uint8)).all(axis=1))
        return int(match[0]) if len(match) else None

    @property
    def black(self) -> int | None:
        """The class id of black (the background), or None if the table has no black."""
        return self.class_of((0, 0, 0))

    @property
    def lit(self) -> np.ndarray:
        """The class ids of every colour but black."""
        return np.array([c for c in range(len(self.rgb)) if c != self.black], dtype=np.int64)

    @staticmethod
    def _pack(rgb: np.ndarray) -> np.ndarray:
        rgb = rgb.astype(np.int32)
        return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]

    def to_ids(self, frames: np.ndarray) -> np.ndarray:
        """(..., H, W, 3) uint8 RGB -> (..., H, W) uint8 class ids. A colour outside the table is an
        error: the frame does not come from the game the model was trained on."""
        if frames.dtype != np.uint8 or frames.shape[-1] != 3:
            raise NeuralBreakoutError(f"expected uint8 RGB frames (..., H, W, 3), got {frames.dtype} {frames.shape}")
        packed = self._pack(frames)
        pos = np.clip(np.searchsorted(self.sorted_packed, packed), 0, len(self.sorted_packed) - 1)
        if not np.array_equal(self.sorted_packed[pos], packed):
            bad = np.unique(packed[self.sorted_packed[pos] != packed])[:3]
            raise NeuralBreakoutError(
                "frame has colours the model does not know: " + ", ".join(f"#{int(c):06x}" for c in bad))
        return self.order[pos].astype(np.uint8)

    def to_rgb(self, ids: np.ndarray) -> np.ndarray:
        """(..., H, W) class ids -> (..., H, W, 3) uint8 RGB."""
        return self.rgb[ids]

    @classmethod
    def from_palette_frames(cls, palette: np.ndarray, used: np.ndarray) -> "ColorTable":
        """From an episode palette (256, 3) and the palette indices that occur (black first)."""
        colors = sorted({tuple(int(v) for v in palette[i]) for i in used}, key=lambda c: (c != (0, 0, 0), c))
        return cls(colors)
