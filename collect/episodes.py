"""Episodes on disk: lossless, compressed, written atomically, validated on load.

One `.npz` file per episode (`episode-000042.npz`). Frames are stored as palette indices (ALE's own
screen indices when recording the emulator), XOR-delta coded against the previous frame and
deflated, which makes a Breakout frame about 60 bytes instead of 100 KB of RGB. Decoding gives the
exact RGB frames back. Every member of the zip carries a CRC, so corruption is caught on load.

Arrays (T transitions):
    frames      (T+1, 210, 160, 3) uint8  observations, the first one from reset()
    actions     (T,) uint8
    rewards     (T,) float32
    lives       (T+1,) uint8
    ram         (T+1, 128) uint8          RAM after reset / after each step
    terminated, truncated                 how the episode ended
    meta        dict: game, env_id, frameskip, seed, policy, versions, ...
"""

from __future__ import annotations

import json
import os
import re
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from worldmodel.errors import EpisodeFormatError

FORMAT = "neural-breakout-episode"
FORMAT_VERSION = 1
EPISODE_GLOB = "episode-*.npz"
_NAME_RE = re.compile(r"^episode-(\d{6,})\.npz$")
_MEMBERS = ("format", "meta", "frame_shape", "palette", "frames_zlib", "actions", "rewards", "lives", "ram", "ends")


@dataclass
class Episode:
    """One recorded episode, decoded."""

    frame_indices: np.ndarray
    """(T+1, 210, 160) uint8 palette indices."""
    palette: np.ndarray
    """(256, 3) uint8: RGB of each palette index."""
    actions: np.ndarray
    rewards: np.ndarray
    lives: np.ndarray
    ram: np.ndarray
    terminated: bool
    truncated: bool
    meta: dict = field(default_factory=dict)

    @property
    def frames(self) -> np.ndarray:
        """(T+1, 210, 160, 3) uint8 RGB frames."""
        return self.palette[self.frame_indices]

    def __len__(self) -> int:
        """Number of transitions T."""
        return len(self.actions)

    @property
    def score(self) -> float:
        return float(self.rewards.sum())


class EpisodeBuilder:
    """Accumulates an episode step by step, compressing frames as they come (memory stays small).

    Pass `screen` (ALE's palette-index screen, `ale.getScreen()`) with each RGB frame when recording
    the emulator: it is exact and costs nothing. Without it, colours are indexed from the RGB frame.
    """

    def __init__(self, meta: dict):
        self.meta = dict(meta)
        self.palette = np.zeros((256, 3), dtype=np.uint8)
        self._known = np.zeros(256, dtype=bool)
        self._colour_index: dict[int, int] = {}
        self._compressor = zlib.compressobj(6)
        self._chunks: list[bytes] = []
        self._previous: np.ndarray | None = None
        self._frames_zlib: bytes | None = None  # set when the stream is finished
        self.frame_shape: tuple[int, int] | None = None
        self.actions: list[int] = []
        self.rewards: list[float] = []
        self.lives: list[int] = []
        self.ram: list[np.ndarray] = []

    def _indices_from_rgb(self, frame: np.ndarray) -> np.ndarray:
        key = (frame[..., 0].astype(np.uint32) << 16) | (frame[..., 1].astype(np.uint32) << 8) | frame[..., 2]
        colours, inverse = np.unique(key, return_inverse=True)
        lut = np.empty(len(colours), dtype=np.uint8)
        for i, colour in enumerate(colours.tolist()):
            if colour not in self._colour_index:
                free = np.flatnonzero(~self._known)
                if len(free) == 0:
                    raise ValueError("frame has more than 256 distinct colours; cannot palette-code it")
                index = int(free[0])
                self._colour_index[colour] = index
                self._known[index] = True
                self.palette[index] = ((colour >> 16) & 255, (colour >> 8) & 255, colour & 255)
            lut[i] = self._colour_index[colour]
        return lut[inverse.reshape(key.shape)]

    def _add_frame(self, frame: np.ndarray, screen: np.ndarray | None, lives: int, ram: np.ndarray | None) -> None:
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 frame (H, W, 3), got {frame.shape} {frame.dtype}")
        if screen is None:
            indices = self._indices_from_rgb(frame)
        else:
            indices = np.asarray(screen, dtype=np.uint8).reshape(frame.shape[:2])
            new = np.flatnonzero(np.bincount(indices.ravel(), minlength=256).astype(bool) & ~self._known)
            for index in new:  # learn the RGB of palette indices seen for the first time
                row, col = np.argwhere(indices == index)[0]
                self.palette[index] = frame[row, col]
                self._known[index] = True
        if self.frame_shape is None:
            self.frame_shape = indices.shape
        elif indices.shape != self.frame_shape:
            raise ValueError(f"frame shape changed from {self.frame_shape} to {indices.shape}")
        delta = indices if self._previous is None else indices ^ self._previous
        self._chunks.append(self._compressor.compress(delta.tobytes()))
        self._previous = indices
        self.lives.append(int(lives))
        self.ram.append(np.zeros(128, np.uint8) if ram is None else np.asarray(ram, dtype=np.uint8).copy())

    def reset(self, frame: np.ndarray, *, lives: int, screen: np.ndarray | None = None,
              ram: np.ndarray | None = None) -> None:
        """Record the first observation."""
        if self._previous is not None:
            raise RuntimeError("reset() called twice on one EpisodeBuilder")
        self._add_frame(frame, screen, lives, ram)

    def step(self, action: int, reward: float, frame: np.ndarray, *, lives: int,
             screen: np.ndarray | None = None, ram: np.ndarray | None = None) -> None:
        """Record one transition: the action taken, its reward and the next observation."""
        if self._previous is None:
            raise RuntimeError("step() before reset() on an EpisodeBuilder")
        if self._frames_zlib is not None:
            raise RuntimeError("step() after save() on an EpisodeBuilder")
        self.actions.append(int(action))
        self.rewards.append(float(reward))
        self._add_frame(frame, screen, lives, ram)

    def __len__(self) -> int:
        return len(self.actions)

    def save(self, directory: str | Path, *, terminated: bool, truncated: bool, index: int | None = None) -> Path:
        """Write the episode into `directory` under the next free name (or `index`) and return its path."""
        if self._frames_zlib is None:
            self._frames_zlib = b"".join(self._chunks) + self._compressor.flush()
            self._chunks = []
        frames_zlib = self._frames_zlib
        meta = dict(self.meta, steps=len(self.actions), score=float(sum(self.rewards)))
        arrays = dict(
            format=np.frombuffer(f"{FORMAT} {FORMAT_VERSION}".encode(), dtype=np.uint8),
            meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
            frame_shape=np.array([len(self.lives), *self.frame_shape], dtype=np.int64),
            palette=self.palette,
            frames_zlib=np.frombuffer(frames_zlib, dtype=np.uint8),
            actions=np.array(self.actions, dtype=np.uint8),
            rewards=np.array(self.rewards, dtype=np.float32),
            lives=np.array(self.lives, dtype=np.uint8),
            ram=np.stack(self.ram),
            ends=np.array([terminated, truncated], dtype=bool),
        )
        return write_new_episode(directory, arrays, index=index)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in ("neural-breakout", "ale-py", "gymnasium", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def recording_meta(game: str, env_id: str, seed: int, policy: str, **extra) -> dict:
    """Metadata of an episode recorded from the emulator (frameskip 4, sticky actions off)."""
    return dict(game=game, env_id=env_id, frameskip=4, repeat_action_probability=0.0, seed=seed, policy=policy,
                versions=package_versions(), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra)


def episode_name(index: int) -> str:
    return f"episode-{index:06d}.npz"


def list_episodes(directory: str | Path) -> list[Path]:
    """Episode files in `directory`, in index order. Raises if the folder does not exist."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such folder")
    return sorted(p for p in directory.glob(EPISODE_GLOB) if _NAME_RE.match(p.name))


def next_index(directory: str | Path) -> int:
    paths = list_episodes(directory) if Path(directory).is_dir() else []
    return max((int(_NAME_RE.match(p.name).group(1)) for p in paths), default=-1) + 1


def temp_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}.tmp")


def write_new_episode(directory: str | Path, arrays: dict[str, np.ndarray], index: int | None = None) -> Path:
    """Write arrays to a temp file, then link it to a name that no file has yet (never overwrites)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    index = next_index(directory) if index is None else index
    final = directory / episode_name(index)
    tmp = temp_path(final)
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        while True:
            try:
                os.link(tmp, final)  # atomic, and fails if `final` exists
                return final
            except FileExistsError:
                index += 1
                final = directory / episode_name(index)
    finally:
        tmp.unlink(missing_ok=True)


def process_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the process name (state, parent, group, ...), or None where
    there is no such process or no /proc (macOS)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()  # the name in parentheses may hold spaces


def _process_alive(pid: int) -> bool:
    """Whether process `pid` still runs. A killed process that nobody has reaped yet (a zombie, common
    in containers whose init does not reap orphans) still answers `kill(pid, 0)`, so it is read from
    /proc where there is one."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    fields = process_stat(pid)
    return fields is None or fields[0] not in ("Z", "X")  # no /proc: kill(pid, 0) said it exists


def remove_stale_temp_files(directory: str | Path) -> int:
    """Delete temp files left by recorders that were killed (their process no longer runs)."""
    removed = 0
    for path in Path(directory).glob(".episode-*.tmp"):
        try:
            pid = int(path.name.rsplit(".", 2)[-2])
        except ValueError:
            pid = None
        if pid is not None and _process_alive(pid):
            continue  # its writer is still at work
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def undo_delta(deltas: np.ndarray) -> np.ndarray:
    """Frames (T, H, W) from their delta coding: each frame XOR the one before (the first as it is).
    One frame at a time: `np.bitwise_xor.accumulate(axis=0)` gives the same frames, 50x slower (it
    strides across frames in its inner loop)."""
    frames = np.empty_like(deltas)
    if len(deltas):
        frames[0] = deltas[0]
    for t in range(1, len(deltas)):
        np.bitwise_xor(frames[t - 1], deltas[t], out=frames[t])
    return frames


def load_episode(path: str | Path, decode_frames: bool = True) -> Episode:
    """Load and validate an episode file; any defect raises EpisodeFormatError naming the file.

    With `decode_frames=False` the frames are checked (CRC) but not decompressed, and
    `frame_indices` is an empty (0, H, W) array: for statistics that need only actions, RAM, etc.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such episode file")

    def bad(reason: str) -> EpisodeFormatError:
        return EpisodeFormatError(f"{path}: {reason}")

    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [m for m in _MEMBERS if m not in data.files]
            if "format" not in data.files:
                raise bad("not a neural-breakout episode (no format marker)")
            tag = bytes(data["format"]).decode(errors="replace")
            if not tag.startswith(FORMAT + " "):
                raise bad(f"not a neural-breakout episode (format marker {tag!r})")
            if tag != f"{FORMAT} {FORMAT_VERSION}":
                raise bad(f"unsupported episode format version {tag.split()[-1]} (this code reads {FORMAT_VERSION})")
            if missing:
                raise bad(f"missing arrays {', '.join(missing)}")
            arrays = {m: data[m] for m in _MEMBERS}
    except EpisodeFormatError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error, KeyError) as exc:
        raise bad(f"truncated or corrupt ({type(exc).__name__}: {exc})") from None

    try:
        meta = json.loads(bytes(arrays["meta"]).decode())
        n_frames, height, width = (int(v) for v in arrays["frame_shape"])
        raw = zlib.decompress(bytes(arrays["frames_zlib"])) if decode_frames else None
    except (ValueError, zlib.error) as exc:
        raise bad(f"corrupt header or frame data ({type(exc).__name__}: {exc})") from None
    if raw is None:
        indices = np.zeros((0, height, width), dtype=np.uint8)
    elif len(raw) != n_frames * height * width:
        raise bad(f"frame data holds {len(raw)} bytes, expected {n_frames}x{height}x{width}")
    else:
        indices = undo_delta(np.frombuffer(raw, dtype=np.uint8).reshape(n_frames, height, width))
    T = n_frames - 1
    expected = {"actions": (T,), "rewards": (T,), "lives": (T + 1,), "ram": (T + 1, 128), "palette": (256, 3)}
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise bad(f"{name} has shape {arrays[name].shape}, expected {shape}")
    terminated, truncated = (bool(v) for v in arrays["ends"])
    return Episode(
        frame_indices=indices,
        palette=arrays["palette"],
        actions=arrays["actions"],
        rewards=arrays["rewards"],
        lives=arrays["lives"],
        ram=arrays["ram"],
        terminated=terminated,
        truncated=truncated,
        meta=meta,
    )
