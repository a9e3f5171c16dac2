"""Train the latent action model and its decoder, the world model, on recorded episodes.

    neural-breakout train world-model --data data/breakout --out runs/world-model

Episodes are split by episode: every `holdout_every`-th one (in file order, the first included) is
held out for evaluation and never trained on. Resumes from `OUT/checkpoint.pt` after a kill; writes
`OUT/world_model.pt` (the inference checkpoint), `OUT/log.jsonl` and wandb logs (offline by
default) with image strips and rollout GIFs of held-out episodes.

Rollout stability: with probability `unroll` a batch's context is the model's own: it rolls out
1..`unroll_steps` steps (latents inferred from the real video, no gradient) from the real frames
before, and is trained to continue from its own outputs to the real next frame (DESIGN's lessons:
autoregressive rollouts drift otherwise). With `unroll_steps` 1 only the newest frame is replaced.
What the encoder reads before the real next frame is the model's own last frame by default
(`--unroll-latent generated`, as the shipped model was trained); the latent can then spend its few
codes on the correction from the model's frame to the real one, which no action map can predict.
`--unroll-latent real` gives the encoder the real last frame, so an unrolled batch's latent is the
one the action map is trained to give, and the decoder learns to follow it from its own frames.
Even then the latent can carry what the model's frames got wrong (where the ball really is), so
`--no-unroll-encoder` keeps the encoder out of unrolled batches: they train the decoder alone.

Serves: a ball appears only on the step after FIRE, from a frame with no ball in play. Such
transitions are about 0.5% of the data, too rare for the 8-code latent to spend a code on them, and
then FIRE is no control: the decoder serves by chance whatever the action. `serve_share` draws that
share of every batch from the transitions that leave a frame where no ball is in play (FIRE and the
other actions alike), and in those samples a ball painted where none comes weighs as much as a
missed one (`WorldModel.loss`'s `false_changes`), so the latent has to tell a serve from its absence.
Those two alone did not make it (the encoder gave serves and non-serves the same code, and the
decoder learned a prior instead). `serve_label` adds a weak label: a linear probe reads the
quantized latent and must say whether the transition serves a ball (read from the emulator's RAM),
so the encoder has to spend a code on serves (`WorldModel.loss`'s `serve_probe`).

Event codes: a serve and a lost life are events the two context frames cannot time (the serve waits
for FIRE; a life is lost while the ball is already out of sight). A decoder that learns them as
chance events paints them by chance, and the neural game then flickers. `--event-codes 2` adds two
codes after the free ones; in training, transitions labelled from RAM (`ram_events`) take them, so
the decoder never sees a serve or a lost life under a free code. The action map is labelled the same
way, so FIRE picks the serve code. An encoder cross-entropy (`--event-weight`) is meant to teach the
encoder to pick the codes itself; on the shipped encoder it did not (its pooled features do not
respond to a lives digit change).

A GPU: `--device cuda` trains there (batches and unrolls on the GPU, the ball decoding's parser on
the CPU); the checkpoints hold the device in their training command and load anywhere. The shipped
models are trained on a CPU.

Fine-tuning: `--init PATH` starts from a trained world model's weights (same architecture, same
held-out episodes) with a fresh optimizer and schedule; the report adds its training time. New event
codes are added to the init's codebook. `--freeze-encoder` trains the decoder alone, so the free
codes keep their meaning.

Event input: every way of teaching the codes the serve also cost the paddle's codes (README, *Event
codes*). `--event-input` leaves the codes alone. It adds a second part to the latent action, a serve
and a lost life, read from the frames by the parser (`pixel_events`, `breakout.transition_events`;
the latent index is code + codes * (serve + 2 * life lost)), which zero-initialised adapters in the
decoder read. Only those train; every weight of `--init` stays as it was, so the codes keep carrying
the paddle exactly.
"""

from __future__ import annotations

import dataclasses
import math
import resource
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from train.cpu import warn_if_bf16_is_slow
from train.logger import RunLogger, command_line
from worldmodel.breakout import (BALL_H, BRICK_BOTTOM, BRICK_TOP, memory_states, parse_frame, ram_ball_in_play,
                                  ram_ball_positions, transition_events)
from worldmodel.checkpoint import load_checkpoint, load_weights, save_checkpoint
from worldmodel.colors import ColorTable
from worldmodel.frames import FrameStore
from worldmodel.lam import EVENTS
from worldmodel.world_model import WORLD_MODEL_KIND, WorldModel, WorldModelConfig, load_world_model

TRAIN_STATE_KIND = "world-model-training-state"


@dataclass(frozen=True)
class WorldModelTrainConfig:
    data: str = field(metadata={"help": "folder of recorded episodes (neural-breakout record)"})
    out: str = field(default="runs/world-model", metadata={"help": "folder for checkpoints and logs"})
    steps: int = field(default=30_000, metadata={"help": "gradient updates"})
    batch_size: int = field(default=24, metadata={"help": "transitions per update"})
    lr: float = field(default=1e-3, metadata={"help": "peak AdamW learning rate (cosine decay to 5%)"})
    warmup: int = field(default=300, metadata={"help": "linear warm-up updates"})
    context: int = field(default=2, metadata={"help": "context frames"})
    codes: int = field(default=8, metadata={"help": "latent actions in the codebook"})
    latent_dim: int = field(default=16, metadata={"help": "width of a latent code vector"})
    width: int = field(default=32, metadata={"help": "decoder channels at the finest level (x2, x4 below)"})
    encoder_width: int | None = field(default=None, metadata={"help": "the latent action encoder's channels (None: "
                                                                      "--width)"})
    fine_dilations: str = field(default="", metadata={"help": "comma-separated dilations of extra residual blocks "
                                                               "at the decoder's finest level, e.g. 2,4 (none: '')"})
    position_embedding: bool = field(default=False, metadata={"help": "give the decoder a learned bias per 4x4 block "
                                                                      "(where on the screen it is); with --init, it "
                                                                      "starts at zero"})
    unroll: float = field(default=0.25, metadata={"help": "share of batches whose context is the model's "
                                                          "own rollout"})
    unroll_steps: int = field(default=1, metadata={"help": "most steps the model rolls out on its own to make an "
                                                           "unrolled batch's context (1..N, uniform)"})
    unroll_latent: str = field(default="generated", metadata={"help": "what the encoder reads before the real next "
                                                                    "frame in an unrolled batch: 'generated' (the "
                                                                    "model's own last frame; the latent can then "
                                                                    "carry the correction to the real frame) or "
                                                                    "'real' (the real last frame, as the action map's "
                                                                    "labels are made)"})
    unroll_encoder: bool = field(default=True, metadata={"help": "let unrolled batches train the encoder too; "
                                                                 "--no-unroll-encoder: they train the decoder alone, "
                                                                 "so only batches with real contexts set what the "
                                                                 "codes mean"})
    serve_share: float = field(default=0.0, metadata={"help": "share of each batch drawn from transitions that "
                                                              "leave a frame with no ball in play (serve or not)"})
    ball_share: float = field(default=0.0, metadata={"help": "share of each batch drawn from transitions where the "
                                                             "ball bounces or flies among the bricks (RAM), where "
                                                             "the 1-step ball is missed most"})
    serve_label: float = field(default=0.0, metadata={"help": "weight of the serve label: a probe on the quantized "
                                                              "latent must tell serves (emulator RAM) from the rest"})
    event_codes: int = field(default=0, metadata={"help": "extra codes set aside for events the context cannot "
                                                          "time, labelled from RAM: 1 = serves, 2 = serves and "
                                                          "lost lives"})
    event_weight: float = field(default=1.0, metadata={"help": "weight of the event labels' cross-entropy on the "
                                                               "encoder's code choice"})
    event_head: bool = field(default=False, metadata={"help": "a classifier on the encoder's features picks the "
                                                              "event codes, so the events never pull on where the "
                                                              "free codes lie (off: the event cross-entropy acts "
                                                              "on the code similarities, as ev12 was trained)"})
    freeze_encoder: bool = field(default=False, metadata={"help": "train the decoder only: the encoder and its "
                                                                  "codebook stay as --init made them (new event "
                                                                  "codes keep their random vectors)"})
    event_input: bool = field(default=False, metadata={"help": "give the --init model an event input (two bits "
                                                               "beside the code: a serve, a lost life, read from the "
                                                               "frames by the parser) and train only it: the "
                                                               "decoder's zero-initialised adapters; every other "
                                                               "weight stays as --init made it"})
    position_only: bool = field(default=False, metadata={"help": "train only the decoder's position embedding (needs "
                                                                 "--init and --position-embedding): the rest stays "
                                                                 "as --init made it, rare events' odds included"})
    init: str | None = field(default=None, metadata={"help": "start from this world model's weights (fine-tuning): "
                                                            "same architecture and held-out episodes"})
    holdout_every: int = field(default=10, metadata={"help": "every n-th episode is held out"})
    max_episodes: int | None = field(default=None, metadata={"help": "use only the first N episodes"})
    seed: int = field(default=0, metadata={"help": "seed of initialisation and sampling"})
    threads: int = field(default=2, metadata={"help": "torch threads"})
    bf16: bool = field(default=False, metadata={"help": "run the forward passes (the loss's and the unrolls') in "
                                                        "bfloat16 autocast, weights and optimizer in float32: about "
                                                        "1.4x faster on a CPU with AVX-512 BF16, 7x slower "
                                                        "on one without (a warning says so) "
                                                        "(`benchmarks/train_speed.py`)"})
    device: str = field(default="cpu", metadata={"help": "where the model trains: 'cpu' (the shipped models), "
                                                         "'cuda' or 'cuda:N' where a GPU is at hand (about 10 to "
                                                         "16x faster, not bit-identical to a CPU run; the "
                                                         "checkpoints load on a CPU)"})
    log_every: int = field(default=100, metadata={"help": "updates between logged averages"})
    media_every: int = field(default=2_500, metadata={"help": "updates between held-out image strips and GIFs"})
    checkpoint_minutes: float = field(default=5.0, metadata={"help": "minutes between training checkpoints"})
    max_minutes: float | None = field(default=None, metadata={"help": "stop (with a checkpoint) after this wall time"})
    stop_at: int | None = field(default=None, metadata={"help": "stop (with a checkpoint) at this update, inside the "
                                                                 "--steps schedule: a resume with other settings "
                                                                 "(say, longer unrolls) then goes on from there"})
    wandb: bool = field(default=True, metadata={"help": "log to wandb (offline unless WANDB_MODE says otherwise)"})

    def dilations(self) -> tuple[int, ...]:
        try:
            dilations = tuple(int(d) for d in self.fine_dilations.split(",") if d.strip())
        except ValueError:
            dilations = (0,)
        if any(d < 1 for d in dilations):
            raise ValueError(f"--fine-dilations: expected comma-separated positive integers such as 2,4, "
                             f"got {self.fine_dilations!r}")
        return dilations

    def model_config(self, colors: tuple) -> WorldModelConfig:
        w = self.width
        config = WorldModelConfig(colors=colors, context=self.context, codes=self.codes + self.event_codes,
                                  event_codes=self.event_codes, event_head=self.event_head and self.event_codes > 0,
                                  latent_dim=self.latent_dim, widths=(w, 2 * w, 4 * w),
                                  encoder_width=self.encoder_width or w, fine_dilations=self.dilations(),
                                  position_embedding=self.position_embedding, event_input=self.event_input)
        if self.event_codes:  # the lost-life code changes the lives digit: no stronger hold on the digits
            config = dataclasses.replace(config, hud_keep_bonus=config.keep_bonus)
        return config

    @classmethod
    def tiny(cls, data: str, out: str, **overrides) -> "WorldModelTrainConfig":
        base = dict(data=data, out=out, steps=6, batch_size=2, width=8, warmup=2, log_every=2, media_every=4,
                    checkpoint_minutes=0.0, wandb=False)
        return cls(**{**base, **overrides})


def split_episodes(paths: list[Path], holdout_every: int) -> tuple[list[Path], list[Path]]:
    """(training, held-out): every `holdout_every`-th episode, the first included, is held out."""
    held = [p for i, p in enumerate(paths) if i % holdout_every == 0]
    train = [p for i, p in enumerate(paths) if i % holdout_every != 0]
    if not train or not held:
        raise ValueError(f"need at least 2 episodes to split one in {holdout_every} for evaluation, "
                         f"got {len(paths)}")
    return train, held


def model_split(summary: dict, data: str, max_episodes: int | None = None) -> tuple[list[Path], list[Path]]:
    """(training, held-out) episode files of the folder `data` (its first `max_episodes`, if given) as
    a trained world model split them: its recorded held-out episodes (`summary["held_out_episodes"]`),
    or for a model without that record (a tiny one) the split its trainer makes. Both must be
    non-empty."""
    from collect.episodes import list_episodes

    paths = list_episodes(data)
    if not paths:
        raise FileNotFoundError(f"{data}: no episode files (episode-*.npz) in this folder")
    paths = paths[:max_episodes] if max_episodes else paths
    names = set(summary.get("held_out_episodes") or [])
    if names:
        train = [p for p in paths if p.name not in names]
        held = [p for p in paths if p.name in names]
    else:
        train, held = split_episodes(paths, 10 if len(paths) >= 10 else 2)
    if not train or not held:
        raise ValueError(f"{data}: the world model's split leaves {len(train)} training and "
                         f"{len(held)} held-out episodes here; both must be non-empty")
    return train, held


def read_episode(path: Path):
    from collect.episodes import load_episode

    episode = load_episode(path)
    return episode.palette, episode.frame_indices, episode.actions, episode.lives


def load_split(config: WorldModelTrainConfig, table: ColorTable | None = None, progress: bool = True
               ) -> tuple[FrameStore, FrameStore]:
    from collect.episodes import list_episodes

    paths = list_episodes(config.data)
    if not paths:
        raise FileNotFoundError(f"{config.data}: no episode files (episode-*.npz) in this folder")
    if config.max_episodes:
        paths = paths[:config.max_episodes]
    train_paths, held_paths = split_episodes(paths, config.holdout_every)
    train = FrameStore.load(train_paths, read_episode, table, progress)
    held = FrameStore.load(held_paths, read_episode, train.table, progress)
    return train, held


def peak_rss_gb() -> float:
    """This process's peak resident memory in GB (Linux reports kB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1e9 if sys.platform == "darwin" else 1e6)


def lr_at(step: int, config: WorldModelTrainConfig) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def store_ram(store: FrameStore, data: str) -> np.ndarray:
    """The emulator's RAM of every frame in the store (frames, 128), read from its episode files."""
    from collect.episodes import load_episode

    folder = Path(data)
    parts = []
    for e, name in enumerate(store.names):
        ram = load_episode(folder / name, decode_frames=False).ram
        frames = store.offsets[e + 1] - store.offsets[e]
        if len(ram) != frames:
            raise ValueError(f"{folder / name}: holds {len(ram)} frames, the loaded data {frames}")
        parts.append(ram)
    return np.concatenate(parts)


def ram_serves(store: FrameStore, data: str) -> tuple[np.ndarray, np.ndarray]:
    """Two bool arrays over the store's transitions, read from the emulator's RAM in the episode
    files: `waiting`, the transition leaves a frame where no ball is in play and a life is left (FIRE
    serves from there, the ball shows on the next frame at the same spot, and no other action does);
    `served`, it is one of those and the next frame has a ball in play. Not from the pixels: the
    parser also misses a ball that is in play but hidden (below the paddle after a miss, or behind
    a brick), where FIRE does nothing."""
    in_play = ram_ball_in_play(store_ram(store, data))
    start = store.starts  # each transition's frame; its next frame is in the same episode
    waiting = ~in_play[start] & (store.lives[start] > 0)
    return waiting, waiting & in_play[start + 1]


def ram_events(store: FrameStore, data: str, events: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(`ram_serves`' `waiting`, event labels (-1: none, i: `lam.EVENTS[i]`)) over the store's
    transitions; only the first `events` of (serve, life lost) are labelled. A life is lost on the
    transition whose next frame has one life fewer (the emulator's count, which the digit shows):
    the ball is then out of sight below the paddle, so the two context frames cannot time it."""
    waiting, served = ram_serves(store, data)
    labels = np.full(len(store), -1, dtype=np.int64)
    if events >= 2:
        lost = store.lives[store.starts + 1].astype(np.int64) < store.lives[store.starts].astype(np.int64)
        labels[lost] = 1
    if events >= 1:
        labels[served] = 0
    return waiting, labels


def ram_ball_transitions(store: FrameStore, data: str) -> tuple[np.ndarray, np.ndarray]:
    """Two bool arrays over the store's transitions, read from the emulator's RAM: `bounce`, the ball is
    in play on the frame before, the frame and the next one, and its step to the next frame reverses a
    direction of its step to this one (a wall, brick or paddle bounce); `bricks`, the
    ball is in play on the next frame with its top in the brick band or just below it (it breaks and
    bounces off bricks there, and takes each brick row's colour). These are where the 1-step ball is
    missed most (`benchmarks/ball_errors.py`)."""
    ram = store_ram(store, data)
    in_play, position = ram_ball_in_play(ram), ram_ball_positions(ram)  # (frames,), (frames, 2)
    start = store.starts  # each transition's frame t; t + 1 is in the same episode, t - 1 may not be
    first = np.zeros(len(ram), dtype=bool)
    first[store.offsets[:-1]] = True
    before, now, after = position[start - 1], position[start], position[start + 1]
    both = ~first[start] & in_play[start - 1] & in_play[start] & in_play[start + 1]
    bounce = both & (np.sign(now - before) * np.sign(after - now) < 0).any(axis=1)
    y_next = after[:, 1]
    bricks = in_play[start + 1] & (y_next >= BRICK_TOP - BALL_H) & (y_next < BRICK_BOTTOM + BALL_H)
    return bounce, bricks


def parse_store(store: FrameStore, progress: bool = False) -> list:
    """`parse_frame` of every frame in the store, in order."""
    from tqdm import tqdm

    infos = []
    for i in tqdm(range(0, len(store.frames), 1024), desc="parse frames", unit="chunk", disable=not progress):
        infos += [parse_frame(frame) for frame in store.table.to_rgb(store.frames[i:i + 1024])]
    return infos


def store_memory(store: FrameStore, infos: list) -> np.ndarray:
    """The ball's memory state (`breakout.BallMemory`) of each of the store's transitions: after its
    frame, tracked from its episode's first frame (int64, len(store))."""
    states = np.concatenate([memory_states(infos[o:e]) for o, e in zip(store.offsets[:-1], store.offsets[1:])])
    return states[store.starts]


def pixel_events(store: FrameStore, k: int, progress: bool = False, infos: list | None = None) -> np.ndarray:
    """The event input of each of the store's transitions (int64, 0..3: serve + 2 * life lost), read by
    the frame parser from its `k` context frames (fewer at an episode's start) and next frame, as
    `WorldModel.read_events` reads them (`breakout.transition_events`). Each frame is parsed once
    (`infos`: `parse_store`'s, if already read)."""
    infos = parse_store(store, progress) if infos is None else infos
    first = store.offsets[store.episode_of_frame[store.starts]]
    events = np.empty(len(store), dtype=np.int64)
    for j, (start, begin) in enumerate(zip(store.starts, first)):
        serve, lost = transition_events(infos[max(begin, start - k + 1):start + 1], infos[start + 1])
        events[j] = int(serve) + 2 * int(lost)
    return events


def serve_transitions(store: FrameStore, data: str) -> np.ndarray:
    """Indices of the transitions that leave a frame where no ball is in play and a life is left
    (`ram_serves`' `waiting`)."""
    return np.flatnonzero(ram_serves(store, data)[0]).astype(np.int64)


def sample_batch(store: FrameStore, model: WorldModel, config: WorldModelTrainConfig, rng: np.random.Generator,
                 unroll: bool, serves: np.ndarray | None = None, balls: np.ndarray | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """(context, next frame, which samples were drawn from `serves`, the transitions' indices).
    Shares `config.serve_share` and `config.ball_share` of the batch come from the transitions
    `serves` and `balls`; the rest from all."""
    index = rng.integers(len(store), size=config.batch_size)
    served = torch.zeros(config.batch_size, dtype=torch.bool)
    if config.ball_share > 0 and balls is not None and len(balls):
        n = int(rng.binomial(config.batch_size, config.ball_share))
        first = max(4, config.batch_size - n)  # not the first 4: the loss's logged error rates read them
        index[first:] = balls[rng.integers(len(balls), size=config.batch_size - first)]
    if config.serve_share > 0 and serves is not None and len(serves):
        n = int(rng.binomial(config.batch_size, config.serve_share))
        first = config.batch_size - n  # at the end: the loss's logged error rates read the first samples
        index[first:] = serves[rng.integers(len(serves), size=n)]
        served[first:] = True
    start = store.starts[index]
    k = config.context
    device = next(model.parameters()).device
    target = torch.from_numpy(store.frames[start + 1]).to(device)
    if not unroll:
        return torch.from_numpy(store.context(start, k)).to(device), target, served.to(device), index
    # Roll n steps from the real context n frames back (fewer near an episode's start), latents
    # inferred from the real video, so the context ends at `start` but holds the model's own frames.
    first = store.offsets[store.episode_of_frame[start]]
    n = int(rng.integers(1, config.unroll_steps + 1))
    begin = np.maximum(start - n, first)
    context = torch.from_numpy(store.context(begin, k)).to(device)
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
        for j in range(1, n + 1):
            active = begin + j <= start
            if not active.any():
                break
            t = np.minimum(begin + j, start)
            latent = model.infer_latent_ids(torch.from_numpy(store.context(t - 1, k)).to(device),
                                            torch.from_numpy(store.frames[t]).to(device))
            generated = model.predict_ids(context, latent)
            rolled = torch.cat([context[:, 1:], generated[:, None]], dim=1)
            context = torch.where(torch.from_numpy(active).to(device)[:, None, None, None], rolled, context)
    model.train()
    return context, target, served.to(device), index


@torch.no_grad()
def held_out_media(model: WorldModel, store: FrameStore, rng: np.random.Generator, horizon: int = 48
                   ) -> tuple[np.ndarray, np.ndarray, dict]:
    """An image strip (rows: last context | real next | predicted next | difference) of 4 held-out
    transitions, a rollout (real | generated) over `horizon` steps with latents inferred from the
    real video, and 1-step metrics on 64 held-out transitions."""
    model.eval()
    k = model.context_length
    device = next(model.parameters()).device
    index = rng.integers(len(store), size=64)
    context, target = store.batch(index, k)
    context_t, target_t = torch.from_numpy(context).to(device), torch.from_numpy(target).to(device)
    latent = model.infer_latent_ids(context_t, target_t)
    predicted = model.predict_ids(context_t, latent).cpu().numpy()
    wrong = predicted != target
    changed = target != context[:, -1]
    metrics = dict(pixel_error=float(wrong.mean()),
                   changed_pixel_error=float((wrong & changed).sum() / max(1, changed.sum())))
    rgb = model.table.to_rgb
    rows = [np.concatenate(list(rgb(x[:4])), axis=1) for x in (context[:, -1], target, predicted)]
    rows.append(np.where((predicted[:4] != target[:4])[..., None], 255, 0).astype(np.uint8).repeat(3, -1)
                .transpose(1, 0, 2, 3).reshape(210, -1, 3))
    strip = np.concatenate(rows, axis=0)
    # rollout from the start of a held-out episode segment
    episode = int(rng.integers(len(store.names)))
    begin, end = store.offsets[episode], store.offsets[episode + 1]
    start = int(begin + rng.integers(max(1, end - begin - horizon - 1)))
    frames = store.frames
    generated = [frames[i] for i in range(max(begin, start - k + 1), start + 1)]
    while len(generated) < k:
        generated.insert(0, generated[0])
    video = []
    for t in range(start, min(end - 1, start + horizon)):
        real_context = torch.from_numpy(store.context(np.array([t]), k)).to(device)
        z = model.infer_latent_ids(real_context, torch.from_numpy(frames[t + 1][None]).to(device))
        nxt = model.predict_ids(torch.from_numpy(np.stack(generated[-k:])[None]).to(device), z)[0].cpu().numpy()
        generated.append(nxt)
        video.append(np.concatenate([rgb(frames[t + 1]), np.full((210, 4, 3), 255, np.uint8), rgb(nxt)], axis=1))
    model.train()
    return strip, np.stack(video), metrics


def write_media(folder: Path, step: int, strip: np.ndarray | None, video: np.ndarray | None) -> dict[str, Path]:
    """The held-out image strip (PNG) and rollout (GIF) of an update, as files for the logger."""
    from PIL import Image

    from worldmodel.video import write_video

    media = {}
    if strip is not None:
        folder.mkdir(parents=True, exist_ok=True)
        media["held_out/strip"] = folder / f"strip-{step:07d}.png"
        Image.fromarray(strip).save(media["held_out/strip"])
    if video is not None:
        media["held_out/rollout"] = write_video(folder / f"rollout-{step:07d}.gif", video, fps=15)
    return media


def export_world_model(model: WorldModel, summary: dict, path: str | Path) -> Path:
    return save_checkpoint(path, WORLD_MODEL_KIND, model.config, dict(weights=model.state_dict()), summary)


def training_command(config: WorldModelTrainConfig) -> str:
    """The command line that reproduces a run: its data, out and every setting off its default."""
    return command_line("neural-breakout train world-model", config)


def check_init(config: WorldModelTrainConfig, init: WorldModel, model: WorldModel, held: FrameStore) -> None:
    """The `--init` model must fit `model` and hold out the same episodes."""
    if init.config.colors != model.config.colors:
        raise ValueError(f"--init {config.init}: its colour table differs from the data's; fine-tune on the "
                         f"folder it was trained from ({init.summary.get('data')})")
    sizes = {"--width": (init.config.widths[0], model.config.widths[0]),
             "--context": (init.config.context, model.config.context),
             "--latent-dim": (init.config.latent_dim, model.config.latent_dim),
             "--encoder-width": (init.config.encoder_width, model.config.encoder_width)}
    for option, (held_size, size) in sizes.items():
        if held_size != size:
            raise ValueError(f"--init {config.init}: its model has {option} {held_size}, this run {size}; "
                             f"give {option} {held_size}")
    weights = init.state_dict()
    codebook = weights["encoder.vq.codebook"]
    own = {key: value.cpu() for key, value in model.state_dict().items()}  # the init's weights are on the CPU
    if config.event_codes and init.config.event_codes == 0 and len(codebook) == config.codes:
        # event codes are new rows after the init's codes; the rest of the model is unchanged
        weights["encoder.vq.codebook"] = torch.cat([codebook, own["encoder.vq.codebook"][len(codebook):]])
        weights["encoder.vq.idle"] = torch.cat([weights["encoder.vq.idle"], own["encoder.vq.idle"][len(codebook):]])
    for key in own:  # a new event head starts as this model's fresh one
        if key.startswith("encoder.event_head.") and key not in weights:
            weights[key] = own[key]
    if config.position_embedding and not init.config.position_embedding:
        weights["decoder.position"] = own["decoder.position"]  # zero: starts as the init
    if config.event_input and not init.config.event_input:  # zero adapters: starts as the init
        for key in own:
            if key not in weights and "event_" in key:  # event_map, event_cond
                weights[key] = own[key]
    load_weights(model, weights, config.init)
    if init.summary.get("held_out_episodes") and list(init.summary["held_out_episodes"]) != list(held.names):
        raise ValueError(f"--init {config.init}: it held out other episodes than this run would; fine-tuning "
                         f"would train on its evaluation data (use its data folder and --holdout-every)")


def init_summary(path: str, summary: dict) -> dict:
    """How the `--init` model was made, so that the total training cost can be reported."""
    total_wall = summary.get("total_wall_hours", summary.get("wall_hours", 0.0))
    total_cpu = summary.get("total_cpu_hours", summary.get("cpu_hours", 0.0))
    peaks = [p for p in (summary.get("peak_rss_gb"), (summary.get("init") or {}).get("peak_rss_gb")) if p is not None]
    return dict(path=str(path), steps=summary.get("steps"), wall_hours=summary.get("wall_hours"),
                cpu_hours=summary.get("cpu_hours"), total_wall_hours=total_wall, total_cpu_hours=total_cpu,
                peak_rss_gb=max(peaks) if peaks else None, training_command=summary.get("training_command"),
                history=summary.get("history"), init=summary.get("init"))  # the chain, run by run


def train_world_model(config: WorldModelTrainConfig, progress: bool = True) -> dict:
    """Train until `config.steps` updates; returns the summary stored in the checkpoint."""
    from tqdm import tqdm

    config.dilations()  # a bad --fine-dilations fails before the data loads
    if not 0.0 <= config.serve_share <= 1.0:
        raise ValueError(f"--serve-share must be in [0, 1], got {config.serve_share}")
    if not 0.0 <= config.ball_share <= 1.0:
        raise ValueError(f"--ball-share must be in [0, 1], got {config.ball_share}")
    if config.serve_label < 0:
        raise ValueError(f"--serve-label must be >= 0, got {config.serve_label}")
    if config.freeze_encoder and not config.init:
        raise ValueError("--freeze-encoder needs --init: an untrained encoder would stay untrained")
    if config.event_input and not config.init:
        raise ValueError("--event-input needs --init: it adds the event input to a trained world model and trains "
                         "only that")
    if config.event_input and config.event_codes:
        raise ValueError("--event-input and --event-codes are two ways to give events their latent; use one")
    if config.position_only and not (config.init and config.position_embedding):
        raise ValueError("--position-only needs --init and --position-embedding: it trains the embedding alone")
    if config.unroll_latent not in ("generated", "real"):
        raise ValueError(f"--unroll-latent must be 'generated' or 'real', got {config.unroll_latent!r}")
    if not 0 <= config.event_codes <= 2:
        raise ValueError(f"--event-codes must be 0, 1 (serves) or 2 (serves and lost lives), got {config.event_codes}")
    if config.stop_at is not None and not 0 < config.stop_at <= config.steps:
        raise ValueError(f"--stop-at must be in 1..--steps ({config.steps}), got {config.stop_at}")
    torch.set_num_threads(config.threads)
    if config.bf16 and config.device == "cpu":
        warn_if_bf16_is_slow("train world-model")
    try:
        device = torch.device(config.device)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device: expected 'cpu', 'cuda' or 'cuda:N', got {config.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {config.device}: this torch sees no CUDA GPU; train with --device cpu")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "checkpoint.pt"
    saved = load_checkpoint(state_path, TRAIN_STATE_KIND) if state_path.exists() else None
    table = None
    if saved:
        for key in ("context", "codes", "event_codes", "latent_dim", "width", "fine_dilations", "holdout_every",
                    "max_episodes", "position_embedding", "event_head", "event_input"):
            defaults = dict(event_codes=0, position_embedding=False, event_head=False, event_input=False)  # runs made before these options had none
            before = saved["config"].get(key, defaults.get(key, ""))
            if before != getattr(config, key):
                raise ValueError(f"{state_path}: was trained with {key}={before!r}, not "
                                 f"{getattr(config, key)!r}; use another --out or the same setting")
        table = ColorTable(saved["state"]["colors"])
    train, held = load_split(config, table, progress)
    torch.manual_seed(config.seed)
    model = WorldModel(config.model_config(train.table.colors))
    model.encoder.vq.event_weight = config.event_weight  # a training setting, not part of the model
    if config.freeze_encoder:
        model.encoder.requires_grad_(False)
    if config.position_only:
        model.requires_grad_(False)
        model.decoder.position.requires_grad_(True)
    if config.event_input:
        model.requires_grad_(False)
        for parameter in model.event_parameters():
            parameter.requires_grad_(True)
    probe = torch.nn.Linear(config.latent_dim, 1)  # the serve label's probe: training only, not exported
    model.to(device)
    probe.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)

    rng = np.random.default_rng(config.seed)
    counters = dict(step=0, wall_s=0.0, cpu_s=0.0)
    wandb_id = None
    history: list[dict] = []
    if saved:
        state = saved["state"]
        load_weights(model, state["model"], state_path)
        if "probe" in state:  # runs saved before the serve label have no probe and one parameter group
            load_weights(probe, state["probe"], state_path)
            optimizer.add_param_group(dict(params=list(probe.parameters())))
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        counters.update(state["counters"])
        wandb_id = state.get("wandb_id")
        history = state.get("history") or [dict(from_update=0, command=saved["summary"].get("training_command"))]
        print(f"resuming from {state_path} at update {counters['step']}")
    if len(optimizer.param_groups) == 1:
        optimizer.add_param_group(dict(params=list(probe.parameters())))
    init = load_world_model(config.init) if config.init else None
    if init is not None and not saved:  # a resumed run has its weights already
        check_init(config, init, model, held)
    if not history or history[-1]["command"] != training_command(config):
        history.append(dict(from_update=counters["step"], command=training_command(config)))
    data_summary = dict(data=config.data, train_episodes=len(train.names), train_transitions=len(train),
                        held_out_episodes=held.names, held_out_transitions=len(held))
    if init is not None:
        data_summary["init"] = init_summary(config.init, init.summary)
    serves = labels = events = None
    if config.event_codes:  # one read of the RAM serves both
        waiting, events = ram_events(train, config.data, config.event_codes)
        labels = events == 0  # the served transitions
    elif config.serve_share > 0 or config.serve_label > 0 or config.event_input:
        waiting, labels = ram_serves(train, config.data)
    inputs = None
    if config.event_input:  # the event input, read from the frames as `infer_latent` reads it
        inputs = pixel_events(train, model.context_length, progress)
        data_summary["event_input_transitions"] = dict(serve=int((inputs % 2).sum()), life_lost=int((inputs // 2).sum()))
        print(f"event input: {data_summary['event_input_transitions']} training transitions")
    if config.serve_share > 0 or config.serve_label > 0:
        serves = np.flatnonzero(waiting if inputs is None else waiting | (inputs > 0))  # lost lives too
        data_summary["serve_transitions"] = len(serves)
        data_summary["served_transitions"] = int(labels.sum())
        print(f"{int(waiting.sum())} training transitions leave a frame where no ball is in play "
              f"({100 * waiting.mean():.2f}%), {int(labels.sum())} of them serve"
              + ("" if inputs is None else f"; with the lost lives, {len(serves)} around events"))
    if config.event_codes:
        serves = np.flatnonzero(waiting | (events >= 0))  # the serve share draws lost lives too
        data_summary["event_transitions"] = {name: int((events == i).sum()) for i, name in
                                             enumerate(EVENTS[:config.event_codes])}
        print(f"event codes: {data_summary['event_transitions']} training transitions")
    if serves is not None and config.serve_share > 0:
        print(f"{config.serve_share:.0%} of each batch is drawn from {len(serves)} transitions around serves")
    balls = None
    if config.ball_share > 0:
        bounce, among_bricks = ram_ball_transitions(train, config.data)
        balls = np.flatnonzero(bounce | among_bricks)
        data_summary["ball_transitions"] = dict(bounce=int(bounce.sum()), among_bricks=int(among_bricks.sum()))
        print(f"{config.ball_share:.0%} of each batch is drawn from {len(balls)} transitions where the ball "
              f"bounces ({int(bounce.sum())}) or flies among the bricks ({int(among_bricks.sum())})")
    logger = RunLogger(config, out, wandb_id, job_type="world-model")

    def summary() -> dict:
        before = data_summary.get("init", {})
        counters["peak_rss_gb"] = max(counters.get("peak_rss_gb", 0.0), peak_rss_gb())  # over resumed stretches
        return dict(steps=counters["step"], wall_hours=counters["wall_s"] / 3600, cpu_hours=counters["cpu_s"] / 3600,
                    peak_rss_gb=counters["peak_rss_gb"],
                    total_wall_hours=before.get("total_wall_hours", 0.0) + counters["wall_s"] / 3600,
                    total_cpu_hours=before.get("total_cpu_hours", 0.0) + counters["cpu_s"] / 3600,
                    samples=counters["step"] * config.batch_size, training_config=dataclasses.asdict(config),
                    training_command=training_command(config), history=history, **data_summary)

    def checkpoint() -> None:
        state = dict(model=model.state_dict(), probe=probe.state_dict(), optimizer=optimizer.state_dict(), rng=rng.bit_generator.state,
                     torch_rng=torch.get_rng_state(), counters=counters, colors=model.config.colors,
                     wandb_id=logger.id, history=history)
        save_checkpoint(state_path, TRAIN_STATE_KIND, config, state, summary())
        export_world_model(model, summary(), out / "world_model.pt")  # usable before the run ends

    start_wall, start_cpu = time.time(), time.process_time()
    base_wall, base_cpu = counters["wall_s"], counters["cpu_s"]
    last_checkpoint = time.time()
    bar = tqdm(total=config.steps, initial=counters["step"], unit="upd", disable=not progress, smoothing=0.05,
               desc="world model")
    sums: dict[str, float] = {}
    media_rng = np.random.default_rng(config.seed + 1)

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    previous_sigterm = signal.signal(signal.SIGTERM, on_sigterm)
    model.train()
    try:
        last_update = config.steps if config.stop_at is None else config.stop_at
        while counters["step"] < last_update:
            step = counters["step"]
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, config)
            unrolled = rng.random() < config.unroll
            context, target, served, index = sample_batch(train, model, config, rng, unroll=unrolled, serves=serves,
                                                          balls=balls)
            if config.freeze_encoder or config.position_only or config.event_input:
                model.encoder.eval()  # no dead-code reset either
            serve = None
            if config.serve_label > 0:
                serve = (probe, torch.from_numpy(labels[index]).to(device), config.serve_label)
            real_last = None
            if config.unroll_latent == "real":  # the real frame before the target, whatever the context holds
                real_last = torch.from_numpy(train.frames[train.starts[index]]).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
                loss, metrics = model.loss(context, target, false_changes=served, serve_probe=serve,
                                           events=None if events is None else torch.from_numpy(events[index]).to(device),
                                           encoder_last=real_last,
                                           train_encoder=(config.unroll_encoder or not unrolled) and not config.event_input,
                                           event_inputs=None if inputs is None else torch.from_numpy(inputs[index]).to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([*model.parameters(), *probe.parameters()], 1.0)
            optimizer.step()
            counters["step"] += 1
            counters["wall_s"] = base_wall + time.time() - start_wall
            counters["cpu_s"] = base_cpu + time.process_time() - start_cpu
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + value
            bar.update(1)
            if counters["step"] % config.log_every == 0:
                averages = {f"train/{k}": v / config.log_every for k, v in sums.items()}
                averages.update({"train/lr": lr_at(step, config), "time/wall_h": counters["wall_s"] / 3600,
                                 "time/cpu_h": counters["cpu_s"] / 3600})
                sums = {}
                strip = video = None
                if counters["step"] % config.media_every == 0 or counters["step"] == config.steps:
                    strip, video, held_metrics = held_out_media(model, held, media_rng)
                    averages.update({f"held_out/{k}": v for k, v in held_metrics.items()})
                logger.log(averages, counters["step"], write_media(out / "media", counters["step"], strip, video))
                bar.set_postfix(loss=f"{averages['train/recon']:.4f}",
                                changed_err=f"{averages['train/changed_pixel_error']:.3f}",
                                codes=f"{averages['train/codes_used']:.1f}")
            stop_for_time = config.max_minutes is not None and time.time() - start_wall > 60 * config.max_minutes
            if time.time() - last_checkpoint > 60 * config.checkpoint_minutes or stop_for_time:
                checkpoint()
                last_checkpoint = time.time()
            if stop_for_time:
                bar.write(f"stopping after {config.max_minutes} minutes; resume with the same command")
                break
        checkpoint()
    except BaseException as exc:
        checkpoint()
        bar.write(f"stopped by {type(exc).__name__}: checkpoint saved at update {counters['step']}; "
                  f"resume with the same command")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        bar.close()
        logger.close()
    return summary()
