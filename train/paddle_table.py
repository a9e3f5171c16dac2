"""Count paddle tables (`worldmodel.paddle_table`) from real transitions: one keyed by the latent code,
added to a world model, and one keyed by the real action and the action before, added to an action map.

    neural-breakout train paddle-table --data data/breakout --world-model checkpoints/world_model.pt
    neural-breakout train action-paddle --data data/breakout --action-map checkpoints/action_map.pt

Every transition whose frame and the frame before both show a paddle, and whose next frame does too,
is a case: the latent code the world model's encoder infers from the frame and the real next frame,
the paddle's last step and its left edge, and the step that follows. The table keeps the most
common step of each case over the training episodes. The world model's own split is used: its
held-out episodes stay held out, and the accuracy reported is theirs.

Inferring the codes is the slow part: about 0.7 ms a transition on 2 cores in batches of 32, so
about 3.5 minutes for the 212k training transitions of data/breakout (10 episodes: 0.19 minutes on an
AVX2-only AMD EPYC, where batches of 128 took 0.31 and the code before `block_indices` read the ids
in one pass took 0.59). Each episode's cases are written to OUT/cases/ as
soon as they are made, so a stopped run resumes after the last episode it finished. Writes
OUT/world_model.pt: the world model checkpoint given, its weights untouched, with the table and a
summary of how it was counted and what it measured added.

`action-paddle` counts its cases from the recorded actions and frames alone (no encoder: a few
minutes), keyed by the action and the action before (`action_map.paddle_key`), which carries the
paddle's momentum that two frames do not show. It writes OUT/action_map.pt, through which the env
places the paddle where the real press puts it (`NeuralBreakoutEnv.paddle_target`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from train.logger import command_line
from train.world_model import model_split, read_episode
from worldmodel.action_map import ACTION_MAP_KIND, load_action_map, paddle_key
from worldmodel.breakout import RED
from worldmodel.checkpoint import load_checkpoint, save_checkpoint
from worldmodel.frames import FrameStore
from worldmodel.paddle_table import UNSEEN, PaddleTable, PaddleTableConfig, paddle_left
from worldmodel.world_model import WORLD_MODEL_KIND, WorldModel, load_world_model

CASE_FIELDS = ("codes", "last_steps", "lefts", "steps")


@dataclass(frozen=True)
class PaddleTableTrainConfig:
    data: str = field(metadata={"help": "folder of recorded episodes (the world model's training data)"})
    world_model: str = field(default="checkpoints/world_model.pt", metadata={"help": "world model checkpoint whose "
                                                                                     "codes the table reads, and "
                                                                                     "to add it to"})
    out: str = field(default="runs/paddle-table", metadata={"help": "folder for world_model.pt and cases/"})
    max_step: int = field(default=32, metadata={"help": "the largest step, px, that is a case "
                                                        "(`PaddleTableConfig.max_step`)"})
    batch_size: int = field(default=32, metadata={"help": "transitions per encoder batch (32 is faster per "
                                                         "transition than 128 on a CPU: the ids stay in cache)"})
    max_episodes: int | None = field(default=None, metadata={"help": "use only the first N episodes"})
    threads: int = field(default=2, metadata={"help": "torch threads"})

    @classmethod
    def tiny(cls, data: str, world_model: str, out: str, **options) -> "PaddleTableTrainConfig":
        """A few episodes in small batches."""
        return cls(data=data, world_model=world_model, out=out, batch_size=16, max_episodes=4, **options)


def episode_cases(model: WorldModel, frames: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """The cases of one episode's frames (T+1, 210, 160) class ids: for every transition t -> t+1 whose
    frames t-1, t and t+1 show a paddle, the inferred code, the last step, the left edge at t and the
    step to t+1 (int64 arrays, one entry per case)."""
    red = model.table.class_of(RED)
    if red is None:
        raise ValueError("the world model's colours have no paddle red")
    lefts = np.array([-1 if (x := paddle_left(f, red)) is None else x for f in frames], dtype=np.int64)
    t = np.arange(1, len(frames) - 1)
    t = t[(lefts[t - 1] >= 0) & (lefts[t] >= 0) & (lefts[t + 1] >= 0)]
    codes = []
    for chunk in np.array_split(t, max(1, -(-len(t) // batch_size))):
        if len(chunk):
            with torch.no_grad():
                index = model.encoder(torch.from_numpy(frames[chunk]), torch.from_numpy(frames[chunk + 1]))[1]
            codes.append(index.numpy().astype(np.int64))
    codes = np.concatenate(codes) if codes else np.zeros(0, dtype=np.int64)
    return dict(codes=codes, last_steps=lefts[t] - lefts[t - 1], lefts=lefts[t], steps=lefts[t + 1] - lefts[t])


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_cases(make, paths: list[Path], folder: Path, digest: str, progress: bool, desc: str
               ) -> dict[str, np.ndarray]:
    """The cases of some episodes, made by `make(path)` or read back from `folder` (one .npz per
    episode, written atomically and marked with `digest`, the world model's for code cases: cases
    marked otherwise are an error)."""
    from tqdm import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    bar = tqdm(paths, desc=desc, unit="ep", disable=not progress)
    for path in bar:
        cached = folder / f"{path.stem}.npz"
        if cached.is_file():
            with np.load(cached) as stored:
                if str(stored["world_model"]) != digest:
                    raise ValueError(f"{cached}: counted for another model than this run's; use another --out "
                                     f"or delete it")
                parts.append({k: stored[k] for k in CASE_FIELDS})
            continue
        cases = make(path)
        tmp = cached.with_name(f".{cached.stem}.{os.getpid()}.tmp.npz")
        try:
            np.savez(tmp, world_model=digest, **cases)
            os.replace(tmp, cached)
        finally:
            tmp.unlink(missing_ok=True)
        parts.append(cases)
        bar.set_postfix(cases=sum(len(p["codes"]) for p in parts))
    if not parts:
        return {k: np.zeros(0, dtype=np.int64) for k in CASE_FIELDS}
    return {k: np.concatenate([p[k] for p in parts]) for k in CASE_FIELDS}


def measure(table: PaddleTable, cases: dict[str, np.ndarray]) -> dict:
    """Held-out figures: the share of cases the table has, the next paddle within 1 px where it has
    them and over all cases (a case it lacks counted as a miss), and the same for the last step
    repeated (constant velocity) as a reference."""
    predicted = table.predict(cases["codes"], cases["last_steps"], cases["lefts"])
    seen = predicted != UNSEEN
    near = np.abs(predicted - cases["steps"]) <= 1
    n = max(len(predicted), 1)
    return dict(cases=int(len(predicted)), covered=float(seen.sum() / n),
                within_1px_where_covered=float(near[seen].mean()) if seen.any() else None,
                within_1px=float((near & seen).sum() / n),
                constant_velocity_within_1px=float((np.abs(cases["last_steps"] - cases["steps"]) <= 1).sum() / n))


def train_paddle_table(config: PaddleTableTrainConfig, progress: bool = True) -> dict:
    torch.set_num_threads(config.threads)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = load_checkpoint(config.world_model, WORLD_MODEL_KIND)
    model = load_world_model(config.world_model)
    train_paths, held_paths = model_split(payload.get("summary", {}), config.data, config.max_episodes)
    digest = file_digest(config.world_model)
    started = time.time()
    def make(path: Path) -> dict[str, np.ndarray]:
        return episode_cases(model, FrameStore.load([path], read_episode, model.table).frames, config.batch_size)

    train = read_cases(make, train_paths, out / "cases", digest, progress, "training episodes")
    held = read_cases(make, held_paths, out / "cases", digest, progress, "held-out episodes")
    if len(train["codes"]) == 0:
        raise ValueError(f"{config.data}: no training transition shows a paddle in three frames running")
    table = PaddleTable(PaddleTableConfig(codes=model.config.codes, max_step=config.max_step))
    fitted = table.fit(**{k: train[k] for k in CASE_FIELDS})
    summary = dict(
        command=command_line("neural-breakout train paddle-table", config, ("data", "world_model", "out")),
        training_config=dataclasses.asdict(config), minutes=round((time.time() - started) / 60, 2),
        train_episodes=len(train_paths), train_cases=fitted["transitions"], table_cases=fitted["cases"],
        left_out=fitted["left_out"], held_out_episodes=[p.name for p in held_paths], **measure(table, held))
    world_config = dict(payload["config"], paddle_table=dataclasses.asdict(table.config))
    weights = dict(payload["state"]["weights"], **{f"paddle_table.{k}": v for k, v in table.state_dict().items()})
    world_summary = dict(payload.get("summary", {}), paddle_table=summary)
    save_checkpoint(out / "world_model.pt", WORLD_MODEL_KIND, world_config, dict(payload["state"], weights=weights),
                    world_summary)
    return summary


ACTION_CASES = "recorded actions"  # the mark of action cases: they depend on the recorded episode alone


@dataclass(frozen=True)
class ActionPaddleTrainConfig:
    data: str = field(metadata={"help": "folder of recorded episodes (the world model's training data)"})
    action_map: str = field(default="checkpoints/action_map.pt", metadata={"help": "action map checkpoint to add "
                                                                                   "the table to"})
    world_model: str = field(default="checkpoints/world_model.pt", metadata={"help": "world model whose split is "
                                                                                     "kept: its held-out episodes "
                                                                                     "are measured, never counted"})
    out: str = field(default="runs/action-paddle", metadata={"help": "folder for action_map.pt and action-cases/"})
    max_step: int = field(default=32, metadata={"help": "the largest step, px, that is a case "
                                                        "(`PaddleTableConfig.max_step`)"})
    max_episodes: int | None = field(default=None, metadata={"help": "use only the first N episodes"})

    @classmethod
    def tiny(cls, data: str, action_map: str, world_model: str, out: str, **options) -> "ActionPaddleTrainConfig":
        """A few episodes."""
        return cls(data=data, action_map=action_map, world_model=world_model, out=out, max_episodes=4, **options)


def action_cases(frames: np.ndarray, actions: np.ndarray, red: int, actions_count: int = 4) -> dict[str, np.ndarray]:
    """The cases of one episode's frames (T+1, 210, 160) class ids and actions (T,): for every
    transition t -> t+1 whose frames t-1, t and t+1 show a paddle, twice: keyed by the action and the
    action before (`action_map.paddle_key`), and by the action alone (the action before not known,
    as on the first step after a reset); with the last step, the left edge at t and the step to t+1."""
    lefts = np.array([-1 if (x := paddle_left(f, red)) is None else x for f in frames], dtype=np.int64)
    t = np.arange(1, len(frames) - 1)
    t = t[(lefts[t - 1] >= 0) & (lefts[t] >= 0) & (lefts[t + 1] >= 0)]
    acts = actions.astype(np.int64)
    keys = [paddle_key(a, p, actions_count) for a, p in zip(acts[t], acts[t - 1])]
    unknown = [paddle_key(a, None, actions_count) for a in acts[t]]
    twice = lambda x: np.concatenate([x, x])  # noqa: E731
    return dict(codes=np.array(keys + unknown, dtype=np.int64), last_steps=twice(lefts[t] - lefts[t - 1]),
                lefts=twice(lefts[t]), steps=twice(lefts[t + 1] - lefts[t]))


def train_action_paddle(config: ActionPaddleTrainConfig, progress: bool = True) -> dict:
    """Count the action map's paddle table over the world model's training episodes, measure it on its
    held-out ones, and write OUT/action_map.pt: the action map given, its weights untouched, with the
    table and a summary added."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = load_checkpoint(config.action_map, ACTION_MAP_KIND)
    action_map = load_action_map(config.action_map)
    world = load_world_model(config.world_model)
    table = world.table
    red = table.class_of(RED)
    if red is None:
        raise ValueError(f"{config.world_model}: the world model's colours have no paddle red")
    train_paths, held_paths = model_split(world.summary, config.data, config.max_episodes)
    actions = action_map.config.actions
    started = time.time()

    def make(path: Path) -> dict[str, np.ndarray]:
        store = FrameStore.load([path], read_episode, table)
        return action_cases(store.frames, store.actions, red, actions)

    train = read_cases(make, train_paths, out / "action-cases", ACTION_CASES, progress, "training episodes")
    held = read_cases(make, held_paths, out / "action-cases", ACTION_CASES, progress, "held-out episodes")
    if len(train["codes"]) == 0:
        raise ValueError(f"{config.data}: no training transition shows a paddle in three frames running")
    paddle = PaddleTable(PaddleTableConfig(codes=actions * (actions + 1), max_step=config.max_step))
    fitted = paddle.fit(**{k: train[k] for k in CASE_FIELDS})
    known = held["codes"] < actions * actions  # the held-out cases with the action before
    summary = dict(
        command=command_line("neural-breakout train action-paddle", config,
                             ("data", "action_map", "world_model", "out")),
        training_config=dataclasses.asdict(config), minutes=round((time.time() - started) / 60, 2),
        train_episodes=len(train_paths), train_cases=fitted["transitions"] // 2, table_cases=fitted["cases"],
        left_out=fitted["left_out"] // 2, held_out_episodes=[p.name for p in held_paths],
        **measure(paddle, {k: v[known] for k, v in held.items()}),
        action_alone=measure(paddle, {k: v[~known] for k, v in held.items()}))
    config_out = dict(payload["config"], paddle_table=dataclasses.asdict(paddle.config))
    weights = dict(payload["state"]["weights"], **{f"paddle_table.{k}": v for k, v in paddle.state_dict().items()})
    save_checkpoint(out / "action_map.pt", ACTION_MAP_KIND, config_out, dict(payload["state"], weights=weights),
                    dict(payload.get("summary", {}), paddle_table=summary))
    return summary
