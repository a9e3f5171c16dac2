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
        self.packed = self._pack(self.rgb)  # (K,) int32 0xRRGGBB
        if len(np.unique(self.packed)) != len(self.packed):
            raise ValueError("a colour table needs distinct colours")
        # `to_ids` looks colours up by their packed value modulo the smallest number that keeps them apart
        self.modulus = next(m for m in range(len(self.packed), 1 << 24)
                            if len(np.unique(self.packed % m)) == len(self.packed))
        self.slot = np.zeros(self.modulus, dtype=np.uint8)  # packed % modulus -> class id
        self.slot[self.packed % self.modulus] = np.arange(len(self.packed))
        self._black = self.class_of((0, 0, 0))  # looked up once: the env asks for it many times a step
        self._lit = np.array([c for c in range(len(self.rgb)) if c != self._black], dtype=np.int64)

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
        return self._black

    @property
    def lit(self) -> np.ndarray:
        """The class ids of every colour but black."""
        return self._lit.copy()

    @staticmethod
    def _pack(rgb: np.ndarray) -> np.ndarray:
        return (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]

    def to_ids(self, frames: np.ndarray) -> np.ndarray:
        """(..., H, W, 3) uint8 RGB -> (..., H, W) uint8 class ids. A colour outside the table is an
        error: the frame does not come from the game the model was trained on."""
        if frames.dtype != np.uint8 or frames.shape[-1] != 3:
            raise NeuralBreakoutError(f"expected uint8 RGB frames (..., H, W, 3), got {frames.dtype} {frames.shape}")
        packed = self._pack(frames)
        ids = np.take(self.slot, packed % self.modulus)  # np.take: 3x faster than indexing
        unknown = np.take(self.packed, ids) != packed
        if unknown.any():
            bad = np.unique(packed[unknown])[:3]
            raise NeuralBreakoutError(
                "frame has colours the model does not know: " + ", ".join(f"#{int(c):06x}" for c in bad))
        return ids

    def to_rgb(self, ids: np.ndarray) -> np.ndarray:
        """(..., H, W) class ids -> (..., H, W, 3) uint8 RGB."""
        return np.take(self.rgb, ids, axis=0)  # 8x faster than self.rgb[ids]

    @classmethod
    def from_palette_frames(cls, palette: np.ndarray, used: np.ndarray) -> "ColorTable":
        """From an episode palette (256, 3) and the palette indices that occur (black first)."""
        colors = sorted({tuple(int(v) for v in palette[i]) for i in used}, key=lambda c: (c != (0, 0, 0), c))
        return cls(colors)
