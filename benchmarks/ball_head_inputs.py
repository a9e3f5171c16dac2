"""Does the ball head miss because of the frame the decoder drew, or on its own? Held-out transitions.

    python benchmarks/ball_head_inputs.py --data data/breakout [--checkpoint PATH] [--transitions 3000]

The ball head places the next ball from a window that includes the next frame with its ball erased
(the paddle where the latent action moved it, the bricks the step broke). In `predict` that frame is
the decoder's; in training it is the real one. For each held-out transition whose last context
frame and real next frame show a ball (latents inferred from the video, as in `evaluate
world-model`), the head is run twice on the same context: once on the model's next frame and once on
the real next frame, each with its ball erased, and its likeliest place is held against the real
ball. The groups are `ball_errors.py`'s. Where the two columns agree, the head's misses are its own,
not the decoder's.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import torch

from ball_errors import group  # benchmarks/ is the script's folder
from train.evaluate import held_out_store
from worldmodel.ball_head import head_input, index_to_ball, lit_without_ball
from worldmodel.breakout import parse_frame, read_playfield
from worldmodel.world_model import load_world_model

COLUMNS = ("model's", "real")  # the next frame the head reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the model's training data folder (held-out episodes are used)")
    parser.add_argument("--checkpoint", default=None, help="world model with a ball head (default: the shipped one)")
    parser.add_argument("--transitions", type=int, default=3000, help="held-out transitions sampled (default 3000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_world_model(args.checkpoint)
    head = model.ball_head
    if head is None:
        parser.error(f"--checkpoint {args.checkpoint}: the world model has no ball head")
    store = held_out_store(model, args.data)
    k, rgb = model.context_length, model.table.to_rgb
    index = np.random.default_rng(args.seed).choice(len(store), size=min(args.transitions, len(store)), replace=False)
    seen, hit = Counter(), Counter()
    for chunk in np.array_split(index, max(1, len(index) // 25)):
        context, target = store.batch(chunk, max(k, 3))
        model_context = torch.from_numpy(context[:, -k:])
        latent = model.infer_latent_ids(model_context, torch.from_numpy(target))
        predicted = model.predict_ids(model_context, latent).numpy()
        for frames, real, generated in zip(context, target, predicted):
            first, before, last = (parse_frame(rgb(f)).ball for f in frames[-3:])
            real_rgb = rgb(real)
            ball = parse_frame(real_rgb).ball
            if ball is None or last is None:
                continue
            name = group(before, last, ball)
            lit_before, lit_last = model.lit_of(torch.from_numpy(frames[-2])), model.lit_of(torch.from_numpy(frames[-1]))
            inputs = [head_input(lit_before, lit_last, lit_without_ball(nxt, read_playfield(nxt)), before, last,
                                 head.config.window, head.config.first_ball, first)
                      for nxt in (rgb(generated), real_rgb)]
            with torch.no_grad():
                scores = head(torch.from_numpy(np.stack(inputs)))[:, :-1]
            places = [index_to_ball(int(row.argmax()), last, head.config.window) for row in scores]
            for key in (name, "all"):
                seen[key] += 1
                for column, place in zip(COLUMNS, places):
                    hit[key, column] += max(abs(place[0] - ball[0]), abs(place[1] - ball[1])) <= 1
    print(f"{args.checkpoint or 'shipped'}: {seen['all']} held-out transitions with a ball in the last and the real "
          "next frame")
    print("| group | transitions | head on the model's next frame | head on the real next frame |")
    print("|---|---|---|---|")
    for name in [*sorted(set(seen) - {"all"}), "all"]:
        rates = " | ".join(f"{100 * hit[name, column] / seen[name]:.1f}%" for column in COLUMNS)
        print(f"| {name} | {seen[name]} | {rates} |")

if __name__ == "__main__":
    main()
