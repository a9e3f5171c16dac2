"""Write frames as GIF or MP4 for people to watch (lossy video is never used for training)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

VIDEO_FORMATS = ("gif", "mp4")


def write_video(path: str | Path, frames: np.ndarray, fps: float = 15.0) -> Path:
    """Write (T, H, W, 3) uint8 frames to `path` (.gif or .mp4), atomically."""
    import imageio.v2 as imageio

    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in VIDEO_FORMATS:
        raise ValueError(f"{path}: unsupported video format {path.suffix!r}; use .gif or .mp4")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (T, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        if suffix == "gif":
            imageio.mimsave(tmp, list(frames), duration=1000.0 / fps, loop=0)
        else:
            with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=8, macro_block_size=2) as writer:
                for frame in frames:
                    writer.append_data(frame)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
