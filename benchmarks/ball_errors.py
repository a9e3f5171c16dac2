"""Where does a world model miss the ball? 1-step ball accuracy on held-out transitions, split by
what the ball does and where it is.

    python benchmarks/ball_errors.py --data data/breakout [--checkpoint PATH] [--transitions 500]

Latents are inferred from the real video, as in `evaluate world-model`'s 1-step metrics. Each
transition whose real next frame has a ball is put in one group by the frame parser's readings of
the two frames before and the real next frame:
- straight: the ball moves as it did the step before (each coordinate within 1 px); in Breakout such
  a step is fully determined by the two context frames;
- bounce: its velocity changed (a wall, a brick or the paddle), split by which component changed;
- no context ball: the parser sees no ball in one of the two frames before (a serve, a hidden ball);
and by where the real ball is: bricks (y < 100), mid-field, low (y > 150, near the paddle).
It prints each group's share of the transitions, its ball-within-1-px rate, and its share of all
misses, then the distribution of the ball error in px.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import torch

from train.evaluate import held_out_store
from worldmodel.breakout import parse_frame
from worldmodel.world_model import load_world_model


def group(before, last, real) -> str:
    if before is None or last is None:
        return "no context ball"
    v0 = (last[0] - before[0], last[1] - before[1])
    v1 = (real[0] - last[0], real[1] - last[1])
    if abs(v1[0] - v0[0]) <= 1 and abs(v1[1] - v0[1]) <= 1:
        kind = "straight"
    else:
        kind = "bounce (y)" if abs(v1[1] - v0[1]) > 1 else "bounce (x)"
    where = "bricks" if real[1] < 100 else "low" if real[1] > 150 else "mid-field"
    return f"{kind}, {where}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the model's training data folder (held-out episodes are used)")
    parser.add_argument("--checkpoint", default=None, help="world model (default: the shipped one)")
    parser.add_argument("--transitions", type=int, default=500, help="held-out transitions sampled")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_world_model(args.checkpoint)
    store = held_out_store(model, args.data)
    k = model.context_length
    index = np.random.default_rng(args.seed).choice(len(store), size=min(args.transitions, len(store)), replace=False)
    seen, hit, errors = Counter(), Counter(), Counter()
    for chunk in np.array_split(index, max(1, len(index) // 25)):
        context, target = store.batch(chunk, max(k, 2))
        model_context = torch.from_numpy(context[:, -k:])
        predicted = model.predict_ids(model_context, model.infer_latent_ids(model_context, torch.from_numpy(target)))
        for frames, real, generated in zip(context, target, predicted.numpy()):
            r = parse_frame(model.table.to_rgb(real)).ball
            if r is None:
                continue
            g = parse_frame(model.table.to_rgb(generated)).ball
            name = group(parse_frame(model.table.to_rgb(frames[-2])).ball,
                         parse_frame(model.table.to_rgb(frames[-1])).ball, r)
            error = None if g is None else max(abs(r[0] - g[0]), abs(r[1] - g[1]))
            seen[name] += 1
            hit[name] += error is not None and error <= 1
            errors["no ball" if error is None else ">= 9" if error >= 9 else str(error)] += 1
    total, misses = sum(seen.values()), sum(seen.values()) - sum(hit.values())
    print(f"{args.checkpoint or 'shipped'}: {total} held-out transitions with a ball, "
          f"ball within 1 px {100 * sum(hit.values()) / total:.1f}%")
    print("| group | share of transitions | ball within 1 px | share of misses |")
    print("|---|---|---|---|")
    for name in sorted(seen):
        print(f"| {name} | {100 * seen[name] / total:.1f}% | {100 * hit[name] / seen[name]:.1f}% | "
              f"{100 * (seen[name] - hit[name]) / max(1, misses):.1f}% |")
    order = ["no ball"] + [str(i) for i in range(9)] + [">= 9"]
    print("ball error (px): " + ", ".join(f"{key}: {errors[key]}" for key in order if errors[key]))


if __name__ == "__main__":
    main()
