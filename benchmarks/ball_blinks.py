"""When should the ball head take the ball away mid-field? Open-loop rollouts under each rule.

    python benchmarks/ball_blinks.py --data data/breakout [--checkpoint PATH] [--split train]
        [--gone-above none,0.5,0.7,0.9,0.95,1] [--segments 200] [--steps 16]

A real ball blinks out for a frame as it hides in a brick or a wall, and the ball head may say
"no ball" above row `breakout.BALL_LOST_TOP` (`WorldModelConfig.ball_blips`). Each `--gone-above` value
is a `WorldModelConfig.gone_above` setting of the same checkpoint: "none" takes the ball away where
"no ball" outscores the likeliest single place (the head's argmax), a number where the head's
probability of "no ball" is above it (1: never mid-field). For each, the same segments are rolled out
as `evaluate world-model` rolls them out (latents inferred from the real video, frames from the
model's own; a segment ends at a lost life or its episode's end), and it prints:
- false blinks: generated steps without a ball where the real frame shows one, mid-field, while the
  ball was still tracked (within 4 px) the step before;
- missed blinks: the reverse, a generated ball where the real frame shows none;
- of the segments with `--steps` steps: the ball tracked at every step, the brick map exact at every
  step (evaluate's "bricks exact over 16 steps" at the default 16).

`--split train` draws the segments from the model's training episodes (every fourth of them), to
choose a rule without looking at the held-out episodes; the default, `held-out`, draws evaluate's
segments (its 1-step sample first, then the segments, from the same seed).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from train.evaluate import EvaluateConfig, ball_tracked, compare, held_out_store, open_loop, segment_starts
from worldmodel.breakout import BALL_LOST_TOP, parse_frame
from worldmodel.frames import FrameStore
from worldmodel.world_model import WorldModel, load_world_model


def training_store(model: WorldModel, data: str, every: int = 4) -> FrameStore:
    """Every `every`-th of the model's training episodes in `data` (those not held out)."""
    from collect.episodes import list_episodes
    from train.world_model import read_episode

    held = set(model.summary.get("held_out_episodes") or [])
    if not held:
        raise ValueError("the checkpoint names no held-out episodes, so its training episodes are unknown")
    paths = [p for p in list_episodes(data) if p.name not in held][::every]
    if not paths:
        raise FileNotFoundError(f"{data}: none of the model's training episodes are here")
    return FrameStore.load(paths, read_episode, model.table)


def rollouts(model: WorldModel, store: FrameStore, starts: np.ndarray, steps: int, batch: int = 100) -> dict:
    """Open-loop rollouts of `steps` steps from each start: counts of false and missed blinks, and of
    the segments with every step, those whose ball stayed tracked and whose brick map stayed exact."""
    false_blinks = missed_blinks = full = tracked_all = bricks_all = 0
    for s in range(0, len(starts), batch):
        start = starts[s:s + batch]
        n = len(start)
        tracked, bricks, length = np.ones(n, bool), np.ones(n, bool), np.zeros(n, int)
        for step, alive, real_rgb, gen_rgb in open_loop(model, store, start, steps):
            for i in np.flatnonzero(alive):
                c = compare(real_rgb[i], gen_rgb[i])
                if tracked[i] and c["real_ball"] != c["gen_ball"]:
                    real_ball = parse_frame(real_rgb[i]).ball
                    gen_ball = parse_frame(gen_rgb[i]).ball
                    if real_ball is not None and real_ball[1] < BALL_LOST_TOP:
                        false_blinks += 1
                    elif gen_ball is not None and gen_ball[1] < BALL_LOST_TOP:
                        missed_blinks += 1
                tracked[i] &= ball_tracked(c)
                bricks[i] &= c["bricks"]
                length[i] = step
        done = length >= steps
        full += int(done.sum())
        tracked_all += int((done & tracked).sum())
        bricks_all += int((done & bricks).sum())
    return dict(false_blinks=false_blinks, missed_blinks=missed_blinks, segments=full, tracked=tracked_all,
                bricks_exact=bricks_all)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the world model's training data folder")
    parser.add_argument("--checkpoint", default=None, help="world model with a ball head (default: the shipped one)")
    parser.add_argument("--split", choices=("held-out", "train"), default="held-out",
                        help="segments from the held-out episodes, as evaluate's (default), or from the training ones")
    parser.add_argument("--gone-above", default="none,0.5,0.7,0.9,0.95,1",
                        help="comma-separated `gone_above` settings to compare ('none': the head's argmax)")
    parser.add_argument("--segments", type=int, default=200, help="rollout segments (default 200, as evaluate's)")
    parser.add_argument("--steps", type=int, default=16, help="steps of each rollout (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the segments (default 0, evaluate's)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        settings = [None if v.strip().lower() == "none" else float(v) for v in args.gone_above.split(",")]
    except ValueError:
        parser.error(f"--gone-above {args.gone_above!r}: give numbers in 0..1 or 'none', comma-separated")
    if any(v is not None and not 0 <= v <= 1 for v in settings):
        parser.error(f"--gone-above {args.gone_above!r}: each number must be in 0..1")

    model = load_world_model(args.checkpoint)
    if model.ball_head is None:
        parser.error(f"--checkpoint {args.checkpoint}: this world model has no ball head")
    config = EvaluateConfig(data=args.data, segments=args.segments, seed=args.seed)
    rng = np.random.default_rng(config.seed)
    if args.split == "train":
        store = training_store(model, args.data)
    else:
        store = held_out_store(model, args.data)
        rng.choice(len(store), size=min(config.transitions, len(store)), replace=False)  # evaluate's 1-step draw
    starts = segment_starts(store, config.segments, config.horizon, rng)
    print(f"{len(starts)} segments from the {args.split} episodes, {args.steps} steps each")
    for value in settings:
        r = rollouts(model.with_settings(gone_above=value), store, starts, args.steps)
        n = max(r["segments"], 1)
        print(f"gone_above {str(value):>5s}: false blinks {r['false_blinks']:3d}, missed blinks "
              f"{r['missed_blinks']:3d}; of {r['segments']} segments with {args.steps} steps, ball tracked in "
              f"{100 * r['tracked'] / n:.1f}%, bricks exact in {100 * r['bricks_exact'] / n:.1f}%", flush=True)


if __name__ == "__main__":
    main()
