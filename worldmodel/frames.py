"""Recorded episodes as colour-class frames in memory, split by episode, for training and evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from worldmodel.colors import ColorTable


class FrameStore:
    """Every frame of some episodes as class ids in one (N, 210, 160) uint8 array (about 34 KB a
    frame), with the actions and the offsets where episodes start.

    `load` takes a function that returns (palette (256, 3), palette-index frames (T+1, 210, 160),
    actions (T,), lives (T+1,)) for a path, so that `worldmodel/` need not import the recorder."""

    def __init__(self, frames: np.ndarray, offsets: np.ndarray, actions: np.ndarray, lives: np.ndarray,
                 table: ColorTable, names: list[str]):
        self.frames, self.offsets, self.actions, self.lives = frames, offsets, actions, lives
        self.table, self.names = table, names
        # transition j goes from frame starts[j] to starts[j] + 1, inside one episode
        self.starts = np.concatenate([np.arange(o, e - 1) for o, e in zip(offsets[:-1], offsets[1:])])
        self.episode_of_frame = np.repeat(np.arange(len(names)), np.diff(offsets))

    def __len__(self) -> int:
        """Transitions."""
        return len(self.starts)

    @classmethod
    def load(cls, paths: list[Path], read, table: ColorTable | None = None, progress: bool = False) -> "FrameStore":
        from concurrent.futures import ThreadPoolExecutor

        from tqdm import tqdm

        episodes = list(paths)
        total = 0
        actions, lives, chunks = [], [], []  # palette-index frames, mapped to classes once all are read
        palette = None
        used = np.zeros(256, dtype=np.int64)
        # two episodes read at once: their decompression and delta decoding release the GIL
        pool = ThreadPoolExecutor(max_workers=2)
        try:
            read_all = zip(episodes, pool.map(read, episodes))
            for path, (pal, indices, acts, liv) in tqdm(read_all, desc="load episodes", unit="ep",
                                                        total=len(episodes), disable=not progress):
                if palette is None:
                    palette = pal
                elif not np.array_equal(palette, pal):
                    raise ValueError(f"{path}: its palette differs from the other episodes'")
                used += np.bincount(indices[::8].ravel(), minlength=256)  # a sample of frames finds every colour
                used[np.unique(indices[-1])] += 1
                chunks.append(indices)
                actions.append(acts)
                lives.append(liv)
                total += len(indices)
        finally:
            pool.shutdown(cancel_futures=True)
        if not chunks:
            raise ValueError("no episodes to load")
        if table is None:
            table = ColorTable.from_palette_frames(palette, np.flatnonzero(used))
        lut = np.array([table.class_of(colour) or 0 for colour in palette], dtype=np.uint8)  # unused: 0
        frames = np.empty((total, *chunks[0].shape[1:]), dtype=np.uint8)
        offsets = np.zeros(len(chunks) + 1, dtype=np.int64)
        for i, chunk in enumerate(chunks):
            offsets[i + 1] = offsets[i] + len(chunk)
            for s in range(0, len(chunk), 64):  # 64 frames at a time: take's index copy stays small
                part = chunk[s:s + 64]
                np.take(lut, part, out=frames[offsets[i] + s:offsets[i] + s + len(part)])
            chunks[i] = None  # free as we go: peak memory stays near one copy
        return cls(frames, offsets, np.concatenate(actions), np.concatenate(lives), table,
                   [Path(p).name for p in episodes])

    def context(self, frame_index: np.ndarray, k: int) -> np.ndarray:
        """Frames frame_index-k+1 .. frame_index (oldest first), the episode's first frame repeated
        before its start: (B, k, 210, 160)."""
        first = self.offsets[self.episode_of_frame[frame_index]]
        idx = np.maximum(frame_index[:, None] + np.arange(-k + 1, 1)[None], first[:, None])
        return self.frames[idx]

    def batch(self, transition_index: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(context (B, k, 210, 160), next frame (B, 210, 160)) for transitions."""
        start = self.starts[transition_index]
        return self.context(start, k), self.frames[start + 1]
