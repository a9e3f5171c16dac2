"""Why does a rollout's brick map go wrong? For each open-loop segment whose bricks first differ from
the real game's within 16 steps, was the ball still tracked then, and which way did the bricks differ?

    python benchmarks/brick_errors.py --data data/breakout [--checkpoint PATH] [--segments 200]

The segments are `evaluate world-model`'s (held-out episodes, latents inferred from the real video,
drawn as it draws them: its 1-step sample first, then the segments, from the same seed), so its
"bricks exact over 16 steps" is the share of segments with 16 steps that this does not list. A brick the generated game keeps where the real one broke it, or breaks where
the real one keeps it, is counted at the first step the two brick maps differ, with whether the
generated ball was still within 4 px of the real one up to that step.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import torch

from train.evaluate import EvaluateConfig, ball_tracked, compare, held_out_store, open_loop, segment_starts
from worldmodel.breakout import parse_frame
from worldmodel.world_model import load_world_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the world model's training data folder")
    parser.add_argument("--checkpoint", default=None, help="world model (default: the shipped one)")
    parser.add_argument("--segments", type=int, default=200, help="rollout segments (default 200, as evaluate's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the segments, as evaluate's (default 0)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = load_world_model(args.checkpoint)
    store = held_out_store(model, args.data)
    config = EvaluateConfig(data=args.data, segments=args.segments, seed=args.seed)
    rng = np.random.default_rng(config.seed)
    rng.choice(len(store), size=min(config.transitions, len(store)), replace=False)  # evaluate's 1-step draw first
    starts = segment_starts(store, config.segments, config.horizon, rng)
    n = len(starts)
    lost, bricks_ok = np.zeros(n, bool), np.ones(n, bool)
    length, first = np.zeros(n, int), {}
    for step, alive, real_rgb, gen_rgb in open_loop(model, store, starts, 16):
        for i in np.flatnonzero(alive):
            c = compare(real_rgb[i], gen_rgb[i])
            length[i] = step
            lost[i] |= not ball_tracked(c)
            if not c["bricks"] and bricks_ok[i]:
                real, gen = parse_frame(real_rgb[i]).bricks, parse_frame(gen_rgb[i]).bricks
                kept, broke = bool((gen & ~real).any()), bool((real & ~gen).any())
                way = "both ways" if kept and broke else "a brick the real game broke is kept" if kept \
                    else "a brick the real game keeps is broken"
                first[i] = (("ball lost before" if lost[i] else "ball still tracked"), way, step)
            bricks_ok[i] &= c["bricks"]
    full = length >= 16
    wrong = [first[i] for i in np.flatnonzero(full & ~bricks_ok)]
    print(f"{int(full.sum())} segments with 16 steps: bricks exact in {100 * bricks_ok[full].mean():.1f}%, "
          f"wrong in {len(wrong)}")
    for (ball, way), count in Counter((b, w) for b, w, _ in wrong).most_common():
        print(f"{count:4d}  {ball:18s}  {way}")
    if wrong:
        print(f"first wrong step: median {np.median([s for _, _, s in wrong]):.0f}")


if __name__ == "__main__":
    main()
