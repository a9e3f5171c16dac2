"""Where does a world model lose the paddle in one step: the paddle table, or the drawing?

    python benchmarks/paddle_misses.py --data data/breakout [--checkpoint PATH]

Draws `evaluate world-model`'s 1-step sample (the same seed and number of held-out transitions,
latents inferred from the real video) and, for each transition whose real next frame has a paddle,
reads the generated paddle and the left edge the paddle table gives (`WorldModel.paddle_targets`).
Each miss (generated paddle not within 1 px of the real one) is put in one group:
- the table had no case (no paddle in the last two frames, or a case the training data never showed);
- the table's edge was within 1 px of the real paddle, yet the frame lost it (the drawing);
- the table's edge was off (the codes or the table).
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import torch

from train.evaluate import EvaluateConfig, held_out_store
from worldmodel.breakout import RED, parse_frame
from worldmodel.world_model import load_world_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the world model's training data folder")
    parser.add_argument("--checkpoint", default=None, help="world model (default: the shipped one)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    defaults = EvaluateConfig(data=args.data)
    model = load_world_model(args.checkpoint)
    if model.paddle_table is None:
        raise SystemExit(f"--checkpoint {args.checkpoint or 'checkpoints/world_model.pt'}: the model has no paddle table")
    store = held_out_store(model, args.data)
    rng = np.random.default_rng(defaults.seed)
    index = rng.choice(len(store), size=min(defaults.transitions, len(store)), replace=False)
    k, red = model.context_length, model.table.class_of(RED)
    seen, groups, examples = 0, Counter(), []
    for chunk in np.array_split(index, max(1, len(index) // defaults.batch)):
        context, target = store.batch(chunk, k)
        context_t, target_t = torch.from_numpy(context), torch.from_numpy(target)
        latents = model.infer_latent_ids(context_t, target_t)
        predicted = model.predict_ids(context_t, latents).numpy()
        codes = latents % model.config.codes
        targets = model.paddle_targets(context_t[:, -model.config.context:], codes, red)
        for i, (real, gen, table_x) in enumerate(zip(target, predicted, targets)):
            r = parse_frame(model.table.to_rgb(real)).paddle_x
            if r is None:
                continue
            seen += 1
            g = parse_frame(model.table.to_rgb(gen)).paddle_x
            if g is not None and abs(g - r) <= 1:
                continue
            if table_x is None:
                name = "table had no case"
            elif abs(table_x - r) <= 1:
                name = "table right, frame lost it"
            else:
                name = "table off"
            groups[name] += 1
            last = parse_frame(model.table.to_rgb(context[i, -1])).paddle_x
            examples.append((int(chunk[i]), name, last, r, g, table_x, int(codes[i])))
    misses = sum(groups.values())
    print(f"{args.checkpoint or 'shipped'}: {seen} held-out transitions with a paddle, "
          f"paddle within 1 px {100 * (seen - misses) / seen:.2f}% ({misses} misses)")
    for name, n in groups.most_common():
        print(f"  {name}: {n}")
    print("transition, group, last paddle x, real next, generated, table's edge, code:")
    for row in examples:
        print("  " + ", ".join(str(v) for v in row))


if __name__ == "__main__":
    main()
