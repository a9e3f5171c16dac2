"""Train the action-to-latent map on recorded episodes whose latent actions the world model infers,
and build the bank of real start states that the neural env starts from.

    neural-breakout train action-map --data data/breakout --world-model checkpoints/world_model.pt

Uses the world model's own split: its held-out episodes stay held out here, and the accuracy it
reports is measured on them. With `--serves`, every transition that leaves a frame where no ball is
in play is labelled too: FIRE serves from there and nothing else does, and such transitions are too
rare (0.5%) for a random sample to teach the map what FIRE does; their held-out accuracy is then
reported on its own. It helps only a world model whose latent carries the serve
(`benchmarks/serve_control.py`); off by default. A world model with event codes (`train world-model
--event-codes`) is labelled as its decoder was trained: serves and lost lives (read from RAM) by
their own codes, all of them in the training set, the rest by the nearest free code. These rare
transitions (events, and no-ball frames with `--serves`) fill `--rare-share` of every batch.

`--context N` lets the map read more frames than the world model: a life is lost 1 to 6 frames after
the ball was last seen (2 or 3 for two lost lives in three, `benchmarks/event_codes.py`), so from the
last 4 frames the map can tell when to pick the lost-life code, which two frames cannot. The env keeps as many frames as the longer of
the two needs, and the start bank holds that many.

`--memory` (with `--life-head --serve-head`) counts the odds of a lost life and of "FIRE serves" per
state of the ball's memory (`breakout.BallMemory`: in play, gone for 1 to 5 steps from mid-field or
from the paddle's rows, gone 6 or more, waiting), over every training transition. The env tracks
that state from every frame since reset, so a life the map has not yet taken stays due after the
ball has left the context, and an empty screen after a lost life still waits for FIRE.
Writes OUT/action_map.pt and OUT/start_states.npz.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from train.logger import command_line
from train.world_model import (WorldModelTrainConfig, load_split, parse_store, pixel_events, ram_events, ram_serves,
                               serve_transitions, store_memory)
from worldmodel.action_map import ACTION_MAP_KIND, ActionMap, ActionMapConfig
from worldmodel.breakout import ACTION_MEANINGS, EVENT_INPUTS, MEMORY_NAMES, parse_frame
from worldmodel.checkpoint import save_checkpoint
from worldmodel.frames import FrameStore
from worldmodel.lam import EVENTS
from worldmodel.world_model import WorldModel, load_world_model


@dataclass(frozen=True)
class ActionMapTrainConfig:
    data: str = field(metadata={"help": "folder of recorded episodes (the world model's training data)"})
    world_model: str = field(default="checkpoints/world_model.pt", metadata={"help": "world model checkpoint"})
    out: str = field(default="runs/action-map", metadata={"help": "folder for action_map.pt and start_states.npz"})
    transitions: int = field(default=40_000, metadata={"help": "training transitions to label with latents"})
    held_out: int = field(default=4_000, metadata={"help": "held-out transitions to measure accuracy on"})
    context: int = field(default=0, metadata={"help": "context frames the map reads (0: the world model's); more "
                                                      "than the world model's lets it time a lost life from the "
                                                      "ball's exit"})
    presence: bool = field(default=False, metadata={"help": "give the map a view of the whole frame max-pooled "
                                                            "(is a ball anywhere), for the event codes"})
    life_head: bool = field(default=False, metadata={"help": "the odds of a lost life from the context alone, not "
                                                             "the action (`ActionMapConfig.life_head`; needs a world "
                                                             "model with the event input)"})
    serve_head: bool = field(default=False, metadata={"help": "with --life-head: the serve odds are one logit of the "
                                                              "context for FIRE alone, trained on every transition "
                                                              "to say whether the game waits for FIRE (RAM)"})
    lives_digit: bool = field(default=False, metadata={"help": "let the map read the lives digit of every context "
                                                               "frame at full resolution"})
    memory: bool = field(default=False, metadata={"help": "with --serve-head: the life and serve odds are counted per "
                                                          "state of the ball's memory (in play, gone for how many "
                                                          "steps, waiting), which the env tracks past the context "
                                                          "(`ActionMapConfig.memory`)"})
    serves: bool = field(default=False, metadata={"help": "also label every transition that leaves a frame where no "
                                                          "ball is in play (where FIRE serves)"})
    rare_share: float = field(default=0.25, metadata={"help": "share of each batch drawn from the rare transitions "
                                                          "(events and, with --serves, no-ball frames), which a "
                                                          "uniform batch shows too seldom to learn"})
    steps: int = field(default=2_000, metadata={"help": "gradient updates"})
    batch_size: int = field(default=64, metadata={"help": "transitions per update"})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate"})
    width: int = field(default=32, metadata={"help": "convolution channels"})
    bank_starts: int = field(default=8, metadata={"help": "game-start states in the start bank"})
    bank_states: int = field(default=24, metadata={"help": "mid- and late-game states in the start bank"})
    max_episodes: int | None = field(default=None, metadata={"help": "use only the first N episodes"})
    seed: int = field(default=0, metadata={"help": "seed of sampling and initialisation"})
    threads: int = field(default=2, metadata={"help": "torch threads"})

    @classmethod
    def tiny(cls, data: str, world_model: str, out: str, **options) -> "ActionMapTrainConfig":
        """A few updates of a tiny map; `options` (serves, context, presence, ...) pass through."""
        return cls(data=data, world_model=world_model, out=out, transitions=64, held_out=16, steps=4, batch_size=8,
                   width=8, bank_starts=1, bank_states=2, max_episodes=4, **options)


@torch.no_grad()
def label_latents(model: WorldModel, store: FrameStore, index: np.ndarray, progress: bool, desc: str,
                  events: np.ndarray | None = None, inputs: np.ndarray | None = None, batch: int = 64) -> np.ndarray:
    """The latent action the world model's encoder infers for each transition in `index`; with
    `events` (labels over the store's transitions, `ram_events`), the codes its decoder was trained
    on: an event's own code, else the nearest free code. With `inputs` (over the store's transitions,
    `pixel_events`) the event input is the one given, read once for the whole store."""
    from tqdm import tqdm

    out = np.empty(len(index), dtype=np.int64)
    for i in tqdm(range(0, len(index), batch), desc=desc, unit="batch", disable=not progress):
        chunk = index[i:i + batch]
        context, nxt = store.batch(chunk, model.context_length)
        labels = None if events is None else torch.from_numpy(events[chunk])
        given = None if inputs is None else torch.from_numpy(inputs[chunk])
        out[i:i + batch] = model.infer_latent_ids(torch.from_numpy(context), torch.from_numpy(nxt), labels,
                                                  given).numpy()
    return out


def build_start_bank(store: FrameStore, k: int, starts: int, states: int, rng: np.random.Generator) -> dict:
    """Real contexts to start the neural env from: `starts` game starts (the first frames of episodes)
    and `states` in-game states spread evenly over the number of bricks left, each with a life left."""
    episodes = rng.permutation(len(store.names))[:starts]
    chosen = [int(store.offsets[e] + k - 1) for e in episodes]
    kinds = ["game start"] * len(chosen)
    candidates = np.arange(0, len(store.frames), 25)
    bricks, keep = [], []
    for i in candidates:
        first = store.offsets[store.episode_of_frame[i]]
        if i - first < k:
            continue
        info = parse_frame(store.table.to_rgb(store.frames[i]))
        if info.lives > 0 and info.ball is not None:
            keep.append(i)
            bricks.append(int(info.bricks.sum()))
    if states and keep:
        order = np.argsort(bricks, kind="stable")
        picks = order[np.linspace(0, len(order) - 1, states).round().astype(int)]
        chosen += [int(keep[p]) for p in picks]
        kinds += ["in game"] * len(picks)
    frames = store.table.to_rgb(store.context(np.array(chosen), k))  # (N, k, 210, 160, 3)
    infos = [parse_frame(f[-1]) for f in frames]
    return dict(frames=frames, kind=np.array(kinds), bricks=np.array([int(i.bricks.sum()) for i in infos]),
                score=np.array([i.score for i in infos]), lives=np.array([i.lives for i in infos]),
                source=np.array([store.names[store.episode_of_frame[c]] for c in chosen]))


def save_start_bank(bank: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    try:
        np.savez_compressed(tmp, **bank)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@torch.no_grad()
def predict_latents(model: ActionMap, store: FrameStore, index: np.ndarray, k: int,
                    memory: np.ndarray | None = None) -> np.ndarray:
    """The map's most likely latent for each transition's recorded action (`memory`: the memory state
    of each of the store's transitions, for a map that reads it)."""
    predicted = np.empty(len(index), dtype=np.int64)
    for i in range(0, len(index), 128):
        chunk = index[i:i + 128]
        context = torch.from_numpy(store.context(store.starts[chunk], k))
        action = torch.from_numpy(store.actions[chunk].astype(np.int64))
        states = None if memory is None else torch.from_numpy(memory[chunk])
        predicted[i:i + 128] = model.probabilities(context, action, states).argmax(axis=1)
    return predicted


def train_action_map(config: ActionMapTrainConfig, progress: bool = True) -> dict:
    from tqdm import tqdm

    if config.context < 0:
        raise ValueError(f"--context must be 0 (the world model's) or a number of frames, got {config.context}")
    if not 0.0 <= config.rare_share <= 1.0:
        raise ValueError(f"--rare-share must be between 0 and 1, got {config.rare_share}")
    torch.set_num_threads(config.threads)
    start_wall, start_cpu = time.time(), time.process_time()
    world_model = load_world_model(config.world_model)
    if config.life_head and not world_model.config.event_input:
        raise ValueError(f"--life-head needs a world model with the event input; {config.world_model} has none "
                         f"(train world-model --event-input)")
    if config.serve_head and not config.life_head:
        raise ValueError("--serve-head needs --life-head")
    if config.memory and not config.serve_head:
        raise ValueError("--memory needs --serve-head")
    wm_training = world_model.summary.get("training_config", {})
    holdout_every = int(wm_training.get("holdout_every", 10))
    split = WorldModelTrainConfig(data=config.data, holdout_every=holdout_every,
                                  max_episodes=config.max_episodes or wm_training.get("max_episodes"))
    train, held = load_split(split, world_model.table, progress)
    k = world_model.context_length
    k_map = config.context or k
    rng = np.random.default_rng(config.seed)
    train_index = rng.choice(len(train), size=min(config.transitions, len(train)), replace=False)
    rare = np.zeros(0, dtype=np.int64)  # transitions (store indices) a uniform batch shows too seldom
    held_index = rng.choice(len(held), size=min(config.held_out, len(held)), replace=False)
    held_serves = np.zeros(0, dtype=np.int64)
    train_events = held_events = None
    if world_model.config.event_codes:  # label as the decoder learned: events by their codes, all of them
        train_waiting, train_events = ram_events(train, config.data, world_model.config.event_codes)
        held_waiting, held_events = ram_events(held, config.data, world_model.config.event_codes)
        rare = np.flatnonzero(train_events >= 0)
        if config.serves:  # the same RAM read gives the waiting transitions
            rare = np.union1d(rare, np.flatnonzero(train_waiting))
            held_serves = np.flatnonzero(held_waiting)
    elif config.serves:
        rare = serve_transitions(train, config.data)
        held_serves = serve_transitions(held, config.data)
    train_inputs = held_inputs = train_memory = held_memory = None
    if world_model.config.event_input:  # read once per store; the events are rare: oversample them too
        train_infos, held_infos = parse_store(train, progress), parse_store(held, progress)
        train_inputs, held_inputs = pixel_events(train, k, infos=train_infos), pixel_events(held, k, infos=held_infos)
        if config.memory:
            train_memory, held_memory = store_memory(train, train_infos), store_memory(held, held_infos)
        del train_infos, held_infos
        if config.serves:
            rare = np.union1d(rare, np.flatnonzero(train_inputs > 0))
    train_index = np.union1d(train_index, rare)
    # with the serve head: whether FIRE would serve from each transition's frame, for every action
    waits = ram_serves(train, config.data)[0] if config.serve_head else None
    rare_pick = np.flatnonzero(np.isin(train_index, rare))  # their positions in train_index
    train_latent = label_latents(world_model, train, train_index, progress, "label training latents", train_events,
                                 train_inputs)
    held_latent = label_latents(world_model, held, held_index, progress, "label held-out latents", held_events,
                                held_inputs)
    held_serve_latent = label_latents(world_model, held, held_serves, progress, "label held-out serves", held_events,
                                      held_inputs)

    torch.manual_seed(config.seed)
    model_config = ActionMapConfig(classes=world_model.config.classes, context=k_map, codes=world_model.config.latents,
                                   width=config.width, presence=config.presence, life_head=config.life_head,
                                   serve_head=config.serve_head, lives_digit=config.lives_digit,
                                   memory=config.memory)
    model = ActionMap(model_config)
    memory_table = None
    if config.memory:  # counted over every training transition, not fitted by gradient
        memory_table = model.fit_memory(train_memory, (train_inputs >> 1) & 1, waits)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    bar = tqdm(range(config.steps), desc="action map", unit="upd", disable=not progress, smoothing=0.05)
    for step in bar:
        for group in optimizer.param_groups:  # linear decay to 10%
            group["lr"] = config.lr * (1 - 0.9 * step / max(1, config.steps))
        pick = rng.integers(len(train_index), size=config.batch_size)
        if len(rare_pick) and config.rare_share > 0:
            n = int(rng.binomial(config.batch_size, config.rare_share))
            pick[:n] = rare_pick[rng.integers(len(rare_pick), size=n)]
        transitions = train_index[pick]
        context = torch.from_numpy(train.context(train.starts[transitions], k_map))
        action = torch.from_numpy(train.actions[transitions].astype(np.int64))
        waiting = None if waits is None else torch.from_numpy(waits[transitions])
        memory = None if train_memory is None else torch.from_numpy(train_memory[transitions])
        loss, metrics = model.loss(context, action, torch.from_numpy(train_latent[pick]), waiting, memory)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{metrics['accuracy']:.3f}")
    model.eval()

    held_actions = held.actions[held_index].astype(np.int64)
    correct = predict_latents(model, held, held_index, k_map, held_memory) == held_latent
    serve_actions = held.actions[held_serves].astype(np.int64)
    serve_correct = predict_latents(model, held, held_serves, k_map, held_memory) == held_serve_latent
    # the baseline a context-free table reaches: the commonest training latent of each action
    train_actions = train.actions[train_index]
    table = np.array([np.bincount(train_latent[train_actions == a], minlength=model_config.codes).argmax()
                      if (train_actions == a).any() else 0 for a in range(model_config.actions)])
    accuracy = dict(
        held_out_accuracy=float(correct.mean()),
        held_out_accuracy_by_action={ACTION_MEANINGS[a]: float(correct[held_actions == a].mean())
                                     for a in range(model_config.actions) if (held_actions == a).any()},
        action_table_baseline=float((table[held_actions] == held_latent).mean()),
        held_out_transitions=int(len(held_index)),
        held_out_serve_accuracy_by_action={ACTION_MEANINGS[a]: float(serve_correct[serve_actions == a].mean())
                                           for a in range(model_config.actions) if (serve_actions == a).any()},
        held_out_serve_transitions=int(len(held_serves)),
    )
    if held_events is not None:  # does the map pick an event's code when, and only when, it comes?
        free = world_model.config.codes - world_model.config.event_codes
        event_index = np.flatnonzero(held_events >= 0)
        event_hit = predict_latents(model, held, event_index, k_map, held_memory) == free + held_events[event_index]
        quiet = held_index[held_events[held_index] < 0]
        false_event = predict_latents(model, held, quiet, k_map, held_memory) >= free
        accuracy.update(
            held_out_event_recall={name: float(event_hit[held_events[event_index] == i].mean())
                                   for i, name in enumerate(EVENTS[:world_model.config.event_codes])
                                   if (held_events[event_index] == i).any()},
            held_out_events={name: int((held_events[event_index] == i).sum())
                             for i, name in enumerate(EVENTS[:world_model.config.event_codes])},
            held_out_false_event_rate=float(false_event.mean()) if len(quiet) else 0.0)
    if held_inputs is not None:  # does the map set each event bit when, and only when, the event comes?
        codes = world_model.config.codes
        pool = np.union1d(held_index, np.flatnonzero(held_inputs > 0))
        bits = predict_latents(model, held, pool, k_map, held_memory) // codes
        truth = held_inputs[pool]
        accuracy["held_out_event_input"] = {
            name: dict(events=int(((truth >> b) & 1).sum()),
                       recall=float(((bits >> b) & 1)[((truth >> b) & 1) == 1].mean()) if ((truth >> b) & 1).any() else None,
                       false_rate=float(((bits >> b) & 1)[((truth >> b) & 1) == 0].mean()))
            for b, name in enumerate(EVENT_INPUTS)}
    if memory_table is not None:  # per memory state: training transitions, lost lives, waiting for FIRE
        accuracy["memory_table"] = {name: dict(transitions=n, lives_lost=l, waiting=w) for name, n, l, w in
                                    zip(MEMORY_NAMES, memory_table["transitions"], memory_table["life"],
                                        memory_table["waiting"])}
    out = Path(config.out)
    summary = dict(**accuracy, world_model=str(config.world_model), world_model_codes=world_model.codes_fingerprint(),
                   data=config.data,
                   train_transitions=int(len(train_index)), steps=config.steps,
                   wall_hours=(time.time() - start_wall) / 3600, cpu_hours=(time.process_time() - start_cpu) / 3600,
                   training_config=dataclasses.asdict(config),
                   training_command=command_line("neural-breakout train action-map", config,
                                                 first=("data", "world_model", "out")))
    save_checkpoint(out / "action_map.pt", ACTION_MAP_KIND, model_config, dict(weights=model.state_dict()), summary)
    bank = build_start_bank(train, max(k, k_map), config.bank_starts, config.bank_states, rng)
    save_start_bank(bank, out / "start_states.npz")
    summary["start_states"] = int(len(bank["frames"]))
    return summary
