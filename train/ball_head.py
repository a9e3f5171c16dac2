"""Train the ball head (`worldmodel.ball_head`) on real transitions and add it to a world model.

    neural-breakout train ball-head --data data/breakout --world-model checkpoints/world_model.pt

Every transition whose frame shows a ball is a sample: the window around that ball in the frame
before, the frame and the next frame with its ball erased, and the next ball's place in the window
(or "no ball"). The world model's own split is used: its held-out episodes stay held out here, and
the accuracy reported is theirs. A next ball outside the window (never in the recorded data: the
ball moves at most 16 px a step) is left out and counted.

With `--returns` it trains the return head instead (`WorldModelConfig.return_head`): where a ball
that blinked out for a frame shows again. Its samples are the transitions whose frame shows no ball
while the two frames before did, mid-field (real blinks: the ball hides in a wall or a brick as it
bounces), plus synthetic ones: a transition with a ball, the ball erased from its frame. The input
is the head's (`head_input`) one frame back: the window sits on the last ball seen, the lit masks are
those of its frame, the ball-less frame and the next frame with its ball erased. Each batch draws
`real_share` of its samples from the real blinks; held-out figures are on real blinks only.

With `--bricks` it trains the brick head instead (`WorldModelConfig.brick_head`): which brick the
step breaks, if any. Its samples are the transitions whose frame shows a ball whose window reaches the
brick band (`near_bricks`), the input `brick_input` (no next frame), the class the removed cell's
centre or "none" (`brick_target`); a step that removes two cells (none in the recorded games) is left
out. Held-out figures are given over all samples and over the steps that break a brick.

With `--returns --bricks` it trains the return brick head (`WorldModelConfig.return_brick_head`): which
brick the step breaks where the ball blinked out of the last frame, often hidden in the very brick it
hits (the brick head needs a ball in the last frame; without this head the decoder decides those
steps). Its samples are the return head's (real blinks and synthetic ones) whose last ball seen is
near the bricks, the window on that ball, the input `brick_input` one frame back, the target the cell
the step breaks (`brick_target`). Held-out figures are on real blinks only.

Reading the samples is minutes of decoding the episodes' frames, the same frames for each head. With
`--sample-cache DIR` an episode is decoded once: its samples of the four heads' usual kinds
(`CACHED_KINDS`) go to DIR, and the heads after it read theirs from there without decoding. The
samples depend on the episodes alone, not on the world model.

Resumes from OUT/checkpoint.pt (the head, optimizer, step and generator, written every few minutes
and at the end; the samples are read again from the episodes, or the cache). Writes
OUT/world_model.pt: the world model checkpoint given, its weights untouched, with the head and its
training summary added, and OUT/log.jsonl (wandb too, offline by default).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from train.cpu import warn_if_bf16_is_slow
from train.logger import RunLogger, command_line
from train.world_model import model_split, peak_rss_gb
from worldmodel.ball_head import (H, MAX_STEP, RETURN_WINDOW, W, BallHead, BallHeadConfig, brick_input,
                                  brick_target, head_input, lit_without_ball, near_bricks, placement_metrics,
                                  returning_ball, target_index, window_origin)
from worldmodel.breakout import BALL_LOST_TOP, lit_pixels, parse_frame, read_playfield
from worldmodel.checkpoint import load_checkpoint, load_weights, save_checkpoint
from worldmodel.world_model import HEADS, WORLD_MODEL_KIND, head_config



BALL_WINDOW = 40  # the ball head's and brick head's window, px, unless --window says otherwise


@dataclass(frozen=True)
class BallHeadTrainConfig:
    data: str = field(metadata={"help": "folder of recorded episodes (the world model's training data)"})
    world_model: str = field(default="checkpoints/world_model.pt", metadata={"help": "world model checkpoint to add "
                                                                                     "the head to"})
    out: str = field(default="runs/ball-head", metadata={"help": "folder for world_model.pt, checkpoint.pt, log.jsonl"})
    extra_data: str | None = field(default=None, metadata={"help": "more folders of recorded episodes, comma-separated, "
                                                                   "all of them for training (record them with other "
                                                                   "--seed values: an episode with a held-out "
                                                                   "episode's seed is refused)"})
    steps: int = field(default=6_000, metadata={"help": "gradient updates"})
    batch_size: int = field(default=128, metadata={"help": "samples per update"})
    lr: float = field(default=2e-3, metadata={"help": "AdamW peak learning rate (cosine decay after 100 updates)"})
    window: int | None = field(default=None, metadata={"help": "side of the window around the ball "
                                                                "(`BallHeadConfig.window`); default 40, and "
                                                                f"{RETURN_WINDOW} with --returns (the ball moves "
                                                                "two steps)"})
    returns: bool = field(default=False, metadata={"help": "train the return head (where a ball that blinked out "
                                                           "shows again) instead of the ball head, and add it as "
                                                           "the world model's `return_head`; with --bricks, the "
                                                           "return brick head (`return_brick_head`)"})
    bricks: bool = field(default=False, metadata={"help": "train the brick head (which brick the step breaks, if "
                                                          "any) instead of the ball head, and add it as the world "
                                                          "model's `brick_head`"})
    real_share: float = field(default=0.5, metadata={"help": "with --returns: share of each batch drawn from real "
                                                             "blinks (the rest: balls erased from frames)"})
    synthetic_every: int = field(default=4, metadata={"help": "with --returns: one synthetic sample per this many "
                                                              "transitions with a ball"})
    width: int = field(default=24, metadata={"help": "convolution channels"})
    hard_share: float = field(default=0.0, metadata={"help": "ball head: share of each batch drawn from the samples "
                                                             "whose next ball is not where its last step's velocity "
                                                             "puts it (a bounce, no ball before or after: "
                                                             "`hard_samples`), the rest from all"})
    init_head: bool = field(default=False, metadata={"help": "start from the head of this kind that --world-model "
                                                            "already holds (same window, width and inputs) and "
                                                            "fine-tune it; its training summary is kept as `init`"})
    first_ball: bool = field(default=False, metadata={"help": "the head also reads the ball of the frame before the "
                                                              "two (`BallHeadConfig.first_ball`; the world model then "
                                                              "reads 3 context frames); not with --returns"})
    bf16: bool = field(default=False, metadata={"help": "run the training forward passes in bfloat16 autocast "
                                                        "(weights, optimizer and the held-out measure in float32): "
                                                        "faster on a CPU with AVX-512 BF16, about 10x slower "
                                                        "on one without (a warning says so) "
                                                        "(`benchmarks/train_speed.py`)"})
    sample_cache: str | None = field(default=None, metadata={"help": "folder of each episode's samples, shared by "
                                                                     "the heads: an episode read for one head gets "
                                                                     "the samples of the four heads' usual kinds "
                                                                     "(`CACHED_KINDS`) written there, so the next "
                                                                     "head reads them instead of decoding the "
                                                                     "episode again (None: no cache)"})
    held_out: int = field(default=20_000, metadata={"help": "held-out samples to measure on (at most)"})
    eval_every: int = field(default=500, metadata={"help": "updates between held-out measurements"})
    checkpoint_minutes: float = field(default=5.0, metadata={"help": "minutes between resumable checkpoints"})
    max_episodes: int | None = field(default=None, metadata={"help": "use only the first N episodes"})
    seed: int = field(default=0, metadata={"help": "seed of sampling and initialisation"})
    threads: int = field(default=2, metadata={"help": "torch threads"})
    wandb: bool = field(default=True, metadata={"help": "log to wandb (offline unless WANDB_MODE says otherwise)"})

    @classmethod
    def tiny(cls, data: str, world_model: str, out: str, **options) -> "BallHeadTrainConfig":
        """A few updates of a tiny head on a few episodes."""
        return cls(data=data, world_model=world_model, out=out, steps=4, batch_size=8, width=8, held_out=64,
                   eval_every=2, max_episodes=4, wandb=False, **options)

    def __post_init__(self):
        if self.returns and self.first_ball:
            raise ValueError("--first-ball: for the ball head and the brick head, not with --returns")
        if self.window is not None and self.returns and self.window < 2 * MAX_STEP + 8:
            raise ValueError(f"--window {self.window}: a return head needs at least {2 * MAX_STEP + 8} px (the ball "
                             f"moves up to {MAX_STEP} px a step, two steps)")
        if not 0 <= self.real_share <= 1:
            raise ValueError(f"--real-share must be in 0..1, got {self.real_share}")
        if not 0 <= self.hard_share <= 1:
            raise ValueError(f"--hard-share must be in 0..1, got {self.hard_share}")
        if self.hard_share and (self.returns or self.bricks):
            raise ValueError("--hard-share: for the ball head, not with --returns or --bricks")
        if self.synthetic_every < 1:
            raise ValueError(f"--synthetic-every must be at least 1, got {self.synthetic_every}")

    @property
    def head(self) -> BallHeadConfig:
        window = self.window if self.window is not None else RETURN_WINDOW if self.returns else BALL_WINDOW
        return BallHeadConfig(window=window, width=self.width, first_ball=self.first_ball)

    @property
    def name(self) -> str:
        """The head's name in the world model checkpoint."""
        if self.returns:
            return "return_brick_head" if self.bricks else "return_head"
        return "brick_head" if self.bricks else "ball_head"


def parse_episode(frames: np.ndarray) -> tuple[list, list, list]:
    """What every kind of sample reads from an episode's RGB frames (T+1, 210, 160, 3): each frame's
    playfield, parse (`parse_frame`) and lit mask."""
    playfields = [read_playfield(f) for f in frames]
    return playfields, [parse_frame(f, p) for f, p in zip(frames, playfields)], [lit_pixels(f) for f in frames]


def episode_samples(frames: np.ndarray, window: int, returns: bool = False, synthetic_every: int = 4,
                    bricks: bool = False, first: bool = False, parsed: tuple[list, list, list] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """The samples of one episode's RGB frames (T+1, 210, 160, 3): inputs without the row and column
    channels (N, 6, window, window) uint8 (7 with `first`: the ball head's and brick head's input
    reads the ball of frame t-2 too, `head_input`), window origins (N, 2) int64 (x0, y0), targets (N,) int64,
    how many transitions were left out because the next ball lay outside the window, and which
    samples are real blinks (N,) bool (all False for the ball head).

    With `returns`, the return head's samples: each transition t -> t+1 whose frames t-2 and t-1 show
    a ball (`returning_ball`), the window on the ball of t-1. Where frame t shows no ball it is a
    real blink; where it does, one in `synthetic_every` become synthetic blinks, the ball erased.

    With `bricks`, the brick head's samples: each transition whose frame t shows a ball near the
    bricks (`near_bricks`), the class the cell it breaks (`brick_target`); "outside" then also counts
    the steps that break two cells. With both, the return brick head's: the return head's samples
    whose ball of t-1 is near the bricks, `brick_input` one frame back (the lit masks of t-1 and t,
    the balls of t-2 and t-1), the cell the step t -> t+1 breaks. `parsed`: `parse_episode(frames)`,
    if already made."""
    playfields, infos, lit = parsed if parsed is not None else parse_episode(frames)
    inputs, origins, targets, blinks, outside = [], [], [], [], 0
    for t in range(len(frames) - 1):
        if returns:
            if t < 2 or not returning_ball(infos[t - 2].ball, infos[t - 1].ball):
                continue
            blink = infos[t].ball is None
            if not blink and t % synthetic_every:
                continue
            seen, before = t - 1, t - 2
            if bricks and not near_bricks(infos[seen].ball, window):
                continue
            blank = lit[t] if blink else lit_without_ball(frames[t], playfields[t])
        elif bricks:
            if infos[t].ball is None or not near_bricks(infos[t].ball, window):
                continue
            seen, before, blink = t, max(t - 1, 0), False
        else:
            if infos[t].ball is None:
                continue
            seen, before, blink = t, max(t - 1, 0), False  # an episode's first frame stands in for the one before
            blank = None
        last = infos[seen].ball
        if bricks:
            target = brick_target(infos[t].bricks & ~infos[t + 1].bricks, last, window)
        else:
            target = target_index(infos[t + 1].ball, last, window)
        if target is None:
            outside += 1
            continue
        ball_first = infos[t - 2].ball if t >= 2 else None
        if bricks and returns:
            x = brick_input(lit[seen], blank, infos[before].ball, last, window)
        elif bricks:
            x = brick_input(lit[before], lit[t], infos[before].ball, last, window, first, ball_first)
        elif returns:
            x = head_input(lit[seen], blank, lit_without_ball(frames[t + 1], playfields[t + 1]), infos[before].ball,
                           last, window)
        else:
            x = head_input(lit[before], lit[t], lit_without_ball(frames[t + 1], playfields[t + 1]),
                           infos[before].ball, last, window, first, ball_first)
        inputs.append(x[:-2].astype(np.uint8))  # the row and column channels are made from the origin
        origins.append(window_origin(last, window))
        targets.append(target)
        blinks.append(blink)
    if not inputs:
        empty = np.zeros((0, 6 + int(first), window, window), dtype=np.uint8)
        return empty, np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64), outside, np.zeros(0, dtype=bool)
    return (np.stack(inputs), np.array(origins, dtype=np.int64), np.array(targets, dtype=np.int64), outside,
            np.array(blinks, dtype=bool))


# The kinds of sample (window, returns, bricks, first) the heads of the shipped recipe read: a cached
# episode gets all of them at once, since decoding its frames is most of the reading.
CACHED_KINDS = ((BALL_WINDOW, False, True, False),  # the brick head
                (BALL_WINDOW, False, False, True),  # the ball head with --first-ball
                (RETURN_WINDOW, True, False, False),  # the return head
                (RETURN_WINDOW, True, True, False))  # the return brick head
SAMPLES_VERSION = 1  # part of every cache file's name: raise it when `episode_samples` changes what it makes
SAMPLE_FIELDS = ("inputs", "origins", "targets", "outside", "blinks")


def kind_key(window: int, returns: bool, bricks: bool, first: bool, synthetic_every: int) -> str:
    """The name of a kind of sample in a cache file, e.g. `ball_w40_f1` or `return_brick_w48_f0_s4`."""
    name = ("return_" if returns else "") + ("brick" if bricks else "ball")
    return f"{name}_w{window}_f{int(first)}" + (f"_s{synthetic_every}" if returns else "")


def cache_file(cache: Path, path: Path) -> Path:
    """Where the samples of the episode file `path` are cached: named by its stem and a hash of its
    resolved path, size and modification time, so an episode recorded again is read again."""
    import hashlib

    stat = path.stat()
    tag = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{SAMPLES_VERSION}".encode()).hexdigest()
    return cache / f"{path.stem}-{tag[:16]}.npz"


def path_samples(path: Path, window: int, returns: bool = False, synthetic_every: int = 4,
                 bricks: bool = False, first: bool = False, cache: str | None = None) -> tuple:
    """`episode_samples` of an episode file, its inputs packed 8 pixels to a byte (`pack_inputs`).

    With `cache` (a folder), read them from the episode's cache file if it holds this kind; otherwise
    decode the episode once, make this kind and every kind of `CACHED_KINDS` it lacks, and write them
    all there (a temp file, then a rename)."""
    import zipfile

    from collect.episodes import load_episode

    kind = (window, returns, bricks, first)
    if cache is None:
        inputs, origins, targets, outside, blinks = episode_samples(load_episode(path).frames, window, returns,
                                                                    synthetic_every, bricks, first)
        return pack_inputs(inputs), origins, targets, outside, blinks
    key = kind_key(*kind, synthetic_every)
    file = cache_file(Path(cache), Path(path))
    stored: dict[str, np.ndarray] = {}
    if file.is_file():
        try:
            with np.load(file, allow_pickle=False) as data:
                if f"{key}.targets" in data.files:
                    inputs, origins, targets, outside, blinks = (data[f"{key}.{f}"] for f in SAMPLE_FIELDS)
                    return inputs, origins, targets, int(outside), blinks
                stored = {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            stored = {}  # a damaged cache file is made again
    frames = load_episode(path).frames
    parsed = parse_episode(frames)
    for w, r, b, f in [kind, *(k for k in CACHED_KINDS if k != kind)]:
        name = kind_key(w, r, b, f, synthetic_every)
        if f"{name}.targets" not in stored:
            inputs, origins, targets, outside, blinks = episode_samples(frames, w, r, synthetic_every, b, f, parsed)
            stored.update({f"{name}.inputs": pack_inputs(inputs), f"{name}.origins": origins,
                           f"{name}.targets": targets, f"{name}.outside": np.array(outside),
                           f"{name}.blinks": blinks})
    file.parent.mkdir(parents=True, exist_ok=True)
    temp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    with open(temp, "wb") as handle:
        np.savez(handle, **stored)
    os.replace(temp, file)
    return (*(stored[f"{key}.{f}"] for f in SAMPLE_FIELDS[:3]), int(stored[f"{key}.outside"]),
            stored[f"{key}.blinks"])


def pack_inputs(inputs: np.ndarray) -> np.ndarray:
    """Stored inputs (N, 6, c, c) of 0s and 1s -> (N, 6, c, ceil(c / 8)) uint8, 8 pixels to a byte: the
    samples of the 674k transitions of three recorded folders fit in 0.8 GB instead of 6.5."""
    return np.packbits(inputs, axis=-1)


def read_samples(paths: list[Path], window: int, workers: int, progress: bool, desc: str, returns: bool = False,
                 synthetic_every: int = 4, bricks: bool = False, first: bool = False, cache: str | None = None
                 ) -> tuple:
    """The samples of some episodes, read by `workers` processes: (inputs, origins, targets, left out,
    real blinks) (`episode_samples`; `cache`: `path_samples`)."""
    from functools import partial
    from multiprocessing import get_context

    from tqdm import tqdm

    read = partial(path_samples, window=window, returns=returns, synthetic_every=synthetic_every, bricks=bricks,
                   first=first, cache=cache)
    if workers > 1:
        with get_context("spawn").Pool(workers) as pool:  # `with` ends the pool once every result is in
            parts = list(tqdm(pool.imap(read, paths), total=len(paths), desc=desc, unit="ep", disable=not progress))
    else:
        parts = [read(p) for p in tqdm(paths, desc=desc, unit="ep", disable=not progress)]
    arrays = [np.concatenate([p[i] for p in parts]) for i in (0, 1, 2, 4)]
    return (*arrays[:3], sum(p[3] for p in parts), arrays[3])


def extra_paths(extra: str, data: str, held_paths: list[Path]) -> list[Path]:
    """The episode files of the folder `extra`, all for training: it must be another folder than `data`,
    and none of its episodes may share a recorded seed with a held-out one (it would replay that game)."""
    from collect.episodes import list_episodes, load_episode

    if Path(extra).resolve() == Path(data).resolve():
        raise ValueError(f"--extra-data {extra}: the same folder as --data; its held-out episodes must stay held out")
    paths = list_episodes(extra)
    if not paths:
        raise FileNotFoundError(f"{extra}: no episode files (episode-*.npz) in this folder")
    held_seeds = {load_episode(p, decode_frames=False).meta.get("seed") for p in held_paths}
    for p in paths:
        seed = load_episode(p, decode_frames=False).meta.get("seed")
        if seed in held_seeds:
            raise ValueError(f"{p}: recorded with seed {seed}, as a held-out episode of {data} was; record the "
                             f"extra episodes with another --seed")
    return paths


def hard_samples(packed: np.ndarray, targets: np.ndarray, window: int, chunk: int = 65_536) -> np.ndarray:
    """(N,) bool: the ball head's stored samples (`pack_inputs`, `episode_samples`) whose next ball is
    not within 1 px of where its last step's velocity puts it (the box of input channel 5,
    `expected_ball`), or that have no such box (no ball the frame before) or no next ball."""
    hard = np.ones(len(targets), dtype=bool)
    for i in range(0, len(targets), chunk):
        box = np.unpackbits(packed[i:i + chunk, 5], axis=-1, count=window).reshape(-1, window * window)
        shown = box.any(axis=1)
        top_left = box.argmax(axis=1)  # row-major: the box's first lit pixel is its top-left
        target = targets[i:i + chunk]
        ball = target < window * window
        near = (np.abs(top_left // window - target // window) <= 1) & (np.abs(top_left % window - target % window) <= 1)
        hard[i:i + chunk] = ~(shown & ball & near)
    return hard


def to_input(packed: np.ndarray, origins: np.ndarray, window: int) -> torch.Tensor:
    """Stored samples packed by `pack_inputs` (B, 6 or 7, c, ceil(c / 8)) and their origins (B, 2) -> the
    head's input (B, 8 or 9, c, c)."""
    stored = np.unpackbits(packed, axis=-1, count=window)
    b = len(stored)
    steps = torch.arange(window, dtype=torch.float32)
    rows = ((torch.from_numpy(origins[:, 1]).float()[:, None] + steps) / H)[:, :, None].expand(b, window, window)
    cols = ((torch.from_numpy(origins[:, 0]).float()[:, None] + steps) / W)[:, None, :].expand(b, window, window)
    return torch.cat([torch.from_numpy(stored).float(), rows[:, None], cols[:, None]], dim=1)


@torch.no_grad()
def measure(head: BallHead, samples: tuple[np.ndarray, ...], batch: int = 512, bricks: bool = False) -> dict:
    """Held-out exact and within-1-px rates, over all samples and over those whose next frame has a ball
    (`bricks`: the brick head's exact rates, over all samples, the steps that break a brick, and the
    steps that break none)."""
    head.eval()
    stored, origins, targets = samples[:3]
    predicted = []
    with torch.no_grad():
        for i in range(0, len(targets), batch):
            x = to_input(stored[i:i + batch], origins[i:i + batch], head.config.window)
            predicted.append(head(x).argmax(dim=1))
    head.train()
    predicted, target = torch.cat(predicted), torch.from_numpy(targets)
    ball = target != head.config.positions
    if bricks:
        return {"held_out/exact": float((predicted == target).float().mean()),
                "held_out/hit_exact": float((predicted[ball] == target[ball]).float().mean()) if ball.any() else None,
                "held_out/none_exact": (float((predicted[~ball] == target[~ball]).float().mean())
                                        if (~ball).any() else None),
                "held_out/hits": int(ball.sum()), "held_out/samples": len(target)}
    out = {f"held_out/{k}": v for k, v in placement_metrics(predicted, target, head.config.window).items()}
    out.update({f"held_out/ball_{k}": v for k, v in placement_metrics(predicted[ball], target[ball],
                                                                      head.config.window).items()})
    out["held_out/no_ball_recall"] = float((predicted[~ball] == head.config.positions).float().mean()) \
        if (~ball).any() else None
    out["held_out/samples"] = len(target)
    return out


def train_ball_head(config: BallHeadTrainConfig, progress: bool = True) -> dict:
    from tqdm import tqdm

    torch.set_num_threads(config.threads)
    if config.bf16:
        warn_if_bf16_is_slow("train ball-head")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = load_checkpoint(config.world_model, WORLD_MODEL_KIND)
    if config.returns and not config.bricks and not payload["config"].get("ball_head"):
        raise ValueError(f"{config.world_model}: no ball head; the return head works beside it (train the ball head "
                         f"first: `neural-breakout train ball-head` without --returns)")
    if config.init_head:  # before the minutes of reading
        if not payload["config"].get(config.name):
            raise ValueError(f"{config.world_model}: --init-head, but it holds no {config.name.replace('_', ' ')}")
        held_config = head_config(payload["config"][config.name])
        if held_config != config.head:
            raise ValueError(f"{config.world_model}: --init-head, but its {config.name.replace('_', ' ')} is "
                             f"{held_config}, not {config.head}; give the same --window, --width and --first-ball")
    train_paths, held_paths = model_split(payload.get("summary", {}), config.data, config.max_episodes)
    for extra in (config.extra_data or "").split(","):
        if extra:
            train_paths = train_paths + extra_paths(extra, config.data, held_paths)
    started = time.time()
    workers = max(1, min(config.threads, os.cpu_count() or 1))
    window = config.head.window
    read = dict(returns=config.returns, synthetic_every=config.synthetic_every, bricks=config.bricks,
                first=config.first_ball, cache=config.sample_cache)
    train = read_samples(train_paths, window, workers, progress, "read training episodes", **read)
    held = read_samples(held_paths, window, workers, progress, "read held-out episodes", **read)
    rng = np.random.default_rng(config.seed)
    if config.returns:  # measured on real blinks only
        held = (*(a[held[4]] for a in held[:3]), held[3], held[4][held[4]])
    if len(held[2]) > config.held_out:
        keep = np.sort(rng.choice(len(held[2]), config.held_out, replace=False))
        held = (*(a[keep] for a in held[:3]), held[3], held[4][keep])
    if len(train[2]) == 0:
        raise ValueError(f"{config.data}: no training transition shows a ball" + (" near the bricks" if config.bricks
                                                                                   else ""))
    blinks, others = np.flatnonzero(train[4]), np.flatnonzero(~train[4])
    if config.returns and len(blinks) == 0:
        raise ValueError(f"{config.data}: no training transition shows a ball blinking out mid-field")

    hard = np.flatnonzero(hard_samples(train[0], train[2], window)) if config.hard_share else None
    if hard is not None and len(hard) == 0:
        raise ValueError(f"{config.data}: --hard-share {config.hard_share}, but no training sample has a bounce")

    torch.manual_seed(config.seed)
    head = BallHead(config.head)
    init_summary = None
    if config.init_head:
        prefix = f"{config.name}."
        load_weights(head, {k[len(prefix):]: v for k, v in payload["state"]["weights"].items()
                            if k.startswith(prefix)}, config.world_model)
        init_summary = payload.get("summary", {}).get(config.name)
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=0.01)
    step, elapsed, run_id = 0, 0.0, None
    resume = out / "checkpoint.pt"
    if resume.is_file():
        state = load_checkpoint(resume, "ball-head-training")
        if state["config"] != dataclasses.asdict(config):
            raise ValueError(f"{resume}: written with other settings; use another --out or delete it")
        load_weights(head, state["state"]["weights"], resume)
        optimizer.load_state_dict(state["state"]["optimizer"])
        step, elapsed, run_id = state["state"]["step"], state["state"]["elapsed"], state["state"]["run_id"]
        rng.bit_generator.state = state["state"]["rng"]
        torch.set_rng_state(state["state"]["torch_rng"])
    logger = RunLogger(config, out, run_id, "ball-head")

    def save_resume() -> None:
        save_checkpoint(resume, "ball-head-training", config, dict(
            weights=head.state_dict(), optimizer=optimizer.state_dict(), step=step, run_id=logger.id,
            elapsed=elapsed + time.time() - t0, rng=rng.bit_generator.state, torch_rng=torch.get_rng_state()))

    def lr_at(s: int) -> float:
        warmup = min(100, config.steps // 10 + 1)
        if s < warmup:
            return config.lr * (s + 1) / warmup
        return config.lr * 0.5 * (1 + np.cos(np.pi * (s - warmup) / max(config.steps - warmup, 1)))

    t0 = time.time()
    last_save = time.time()
    bar = tqdm(total=config.steps, initial=step, desc=f"train {config.name.replace('_', ' ')}", unit="step",
               disable=not progress)
    metrics: dict = {}
    while step < config.steps:
        if config.returns:  # `real_share` real blinks, the rest synthetic (if any)
            synthetic = others if len(others) else blinks
            real = rng.random(config.batch_size) < config.real_share
            index = np.where(real, blinks[rng.integers(len(blinks), size=config.batch_size)],
                             synthetic[rng.integers(len(synthetic), size=config.batch_size)])
        else:
            index = rng.integers(len(train[2]), size=config.batch_size)
            if hard is not None:  # `hard_share` of the batch from the samples that are not straight flight
                index = np.where(rng.random(config.batch_size) < config.hard_share,
                                 hard[rng.integers(len(hard), size=config.batch_size)], index)
        x = to_input(train[0][index], train[1][index], window)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            loss, metrics = head.loss(x, torch.from_numpy(train[2][index]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{metrics['loss']:.3f}", **{"exact" if config.bricks else "within_1px":
                                                          f"{metrics['exact' if config.bricks else 'within_1px']:.3f}"})
        logged = {f"train/{k}": v for k, v in metrics.items()}
        if step % config.eval_every == 0 or step == config.steps:
            logged.update(measure(head, held, bricks=config.bricks))
        logger.log(logged, step)
        if time.time() - last_save > 60 * config.checkpoint_minutes or step == config.steps:
            save_resume()
            last_save = time.time()
    bar.close()
    held_metrics = measure(head, held, bricks=config.bricks)
    hours = (elapsed + time.time() - t0) / 3600
    summary = dict(
        command=command_line("neural-breakout train ball-head", config, ("data", "world_model", "out")),
        training_config=dataclasses.asdict(config), steps=step, train_hours=round(hours, 3),
        reading_minutes=round((t0 - started) / 60, 2), peak_rss_gb=round(peak_rss_gb(), 2),
        train_episodes=len(train_paths), train_samples=int(len(train[2])), train_blinks=int(len(blinks)),
        train_hits=int((train[2] != window * window).sum()) if config.bricks else None,
        train_hard=int(len(hard)) if hard is not None else None, init=init_summary,
        outside_window=int(train[3] + held[3]),
        held_out_episodes=[p.name for p in held_paths], **{k.split("/", 1)[1]: v for k, v in held_metrics.items()})
    logger.log({f"final/{k}": v for k, v in summary.items() if isinstance(v, (int, float))}, step)
    logger.close()
    name = config.name
    world_config = dict(payload["config"], **{name: dataclasses.asdict(config.head)})
    kept = {k: v for k, v in payload["state"]["weights"].items() if not k.startswith(f"{name}.")}  # a head before
    weights = dict(kept, **{f"{name}.{k}": v for k, v in head.state_dict().items()})
    state = dict(payload["state"], weights=weights)
    world_summary = dict(payload.get("summary", {}), **{name: summary})
    save_checkpoint(out / "world_model.pt", WORLD_MODEL_KIND, world_config, state, world_summary)
    return summary


@dataclass(frozen=True)
class CopyHeadsConfig:
    source: str = field(metadata={"help": "world model checkpoint whose heads to copy (e.g. "
                                          "checkpoints/world_model.pt)"})
    world_model: str = field(metadata={"help": "world model checkpoint to add them to (its own heads, if any, "
                                               "are replaced)"})
    out: str = field(default="runs/copy-heads", metadata={"help": "folder for world_model.pt"})


def copy_heads(config: CopyHeadsConfig) -> dict:
    """Write OUT/world_model.pt: `world_model` with every head `source` holds (their settings, weights
    and training summaries, so `evaluate world-model` counts their training hours in the file's cost).

    A head is trained on real frames alone, never on a world model's output, so it fits any world
    model of the same data split. The split is checked: each head's held-out episodes must be the
    world model's, or the head would have trained on episodes the world model is measured on."""
    source = load_checkpoint(config.source, WORLD_MODEL_KIND)
    payload = load_checkpoint(config.world_model, WORLD_MODEL_KIND)
    names = [n for n in HEADS if source["config"].get(n)]
    if not names:
        raise ValueError(f"{config.source}: holds no head ({', '.join(HEADS)})")
    held = set(payload.get("summary", {}).get("held_out_episodes") or [])
    for name in names:
        head_held = set(source["summary"].get(name, {}).get("held_out_episodes") or [])
        if not held or head_held != held:
            raise ValueError(f"{config.source}: its {name.replace('_', ' ')} was trained with other held-out "
                             f"episodes than {config.world_model} holds out ({len(head_held)} vs {len(held)}, "
                             f"{len(head_held ^ held)} differ)")
    weights = {k: v for k, v in payload["state"]["weights"].items() if k.split(".")[0] not in HEADS}
    weights.update({k: v for k, v in source["state"]["weights"].items() if k.split(".")[0] in names})
    world_config = {k: v for k, v in payload["config"].items() if k not in HEADS}
    world_config.update({n: source["config"][n] for n in names})
    summary = {k: v for k, v in payload.get("summary", {}).items() if k not in HEADS}
    summary.update({n: dict(source["summary"][n], copied_from=str(config.source)) for n in names})
    out = Path(config.out) / "world_model.pt"
    save_checkpoint(out, WORLD_MODEL_KIND, world_config, dict(payload["state"], weights=weights), summary)
    return dict(heads=names, world_model=str(out), train_hours={n: summary[n].get("train_hours") for n in names})
