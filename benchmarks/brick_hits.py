"""Does the next frame break the right brick? 1-step brick maps on held-out transitions, split into
the steps where the real game breaks a brick and those where it breaks none, with the brick head
(`WorldModelConfig.use_brick_head`) and without it (the decoder's bricks, `keep_gaps` and `one_brick`);
with a return brick head (`use_return_brick_head`), also with the brick head alone.

    python benchmarks/brick_hits.py --data data/breakout [--checkpoint PATH] [--transitions 4000]

Latents are inferred from the real video, as in `evaluate world-model`'s 1-step metrics; the
transitions are drawn at random (seeded) from the held-out episodes. Printed for each setting: the
brick map exact on the steps that break a brick, on the others, and over all; on the steps that
break one, how often the generated frame breaks none or another cell; on the others, how often it
breaks one. The steps that break a brick are also split by whether the last context frame shows a
ball: where it shows none (the ball hid in the brick it hit), the decoder decides the bricks even
with the brick head on.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from train.evaluate import held_out_store
from worldmodel.breakout import parse_bricks, parse_frame
from worldmodel.world_model import load_world_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the model's training data folder (held-out episodes are used)")
    parser.add_argument("--checkpoint", default=None, help="world model with a brick head (default: the shipped one)")
    parser.add_argument("--transitions", type=int, default=4000, help="held-out transitions (default 4000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_world_model(args.checkpoint)
    if model.brick_head is None:
        raise SystemExit(f"{args.checkpoint or 'the shipped checkpoint'}: no brick head (train ball-head --bricks)")
    settings = {"brick heads" if model.return_brick_head is not None else "brick head": model}
    if model.return_brick_head is not None:
        settings["brick head"] = model.with_settings(use_return_brick_head=False)
    settings["decoder"] = model.with_settings(use_brick_head=False, use_return_brick_head=False)
    store = held_out_store(model, args.data)
    rng = np.random.default_rng(args.seed)
    chosen = np.sort(rng.choice(store.starts, min(args.transitions, len(store)), replace=False))
    k, rgb = model.context_length, model.table.to_rgb
    rows = {name: [] for name in settings}
    with torch.no_grad():
        for i in range(0, len(chosen), 100):
            t = chosen[i:i + 100]
            context = torch.from_numpy(store.context(t - 1, k))
            nxt = torch.from_numpy(store.frames[t])
            latent = model.infer_latent_ids(context, nxt)
            last_rgb = rgb(context[:, -1].numpy())
            last = [parse_bricks(f) for f in last_rgb]
            shown = [parse_frame(f).ball is not None for f in last_rgb]
            real = [parse_bricks(f) for f in rgb(nxt.numpy())]
            for name, m in settings.items():
                generated = [parse_bricks(f) for f in rgb(m.predict_ids(context, latent).numpy())]
                for a, b, c, ball in zip(last, real, generated, shown):
                    rows[name].append(((a & ~b).any(), np.array_equal(b, c), (a & ~c).any(), ball))
    for name, r in rows.items():
        r = np.array(r)
        hit, exact, broke, shown = r[:, 0], r[:, 1], r[:, 2], r[:, 3]
        print(f"{name:11s}: exact on {hit.sum()} steps that break a brick {100 * exact[hit].mean():.1f}% "
              f"(none broken {(~broke[hit]).sum()}, another cell {(broke[hit] & ~exact[hit]).sum()}); "
              f"on {(~hit).sum()} others {100 * exact[~hit].mean():.2f}% (a brick broken {broke[~hit].sum()}); "
              f"all {100 * exact.mean():.2f}%")
        for label, where in (("a ball", shown), ("no ball", ~shown)):
            print(f"{'':12s}last frame with {label}: {(hit & where).sum()} steps that break a brick, exact "
                  f"{(exact & hit & where).sum()}; {(~hit & where).sum()} others, a brick broken "
                  f"{(broke & ~hit & where).sum()}")


if __name__ == "__main__":
    main()
