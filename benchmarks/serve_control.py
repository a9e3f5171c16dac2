"""Does a world model's latent carry the serve? The serve part of `evaluate world-model`, alone and
for several checkpoints at once (a few seconds each instead of minutes).

    python benchmarks/serve_control.py --data data/breakout --checkpoints checkpoints/world_model.pt,runs/x/world_model.pt

On the held-out transitions that leave a frame where no ball is in play (the emulator's RAM says so),
with latents inferred from the real video, it prints:
- ball when served: the real next frame shows a ball (FIRE was pressed) and so does the generated one;
- no ball when not served: neither shows one (any other action);
- latent separation: total variation distance between the latent codes of the two groups (0: the
  latent says nothing about the serve, so no action map can make FIRE serve and NOOP not).
"""

from __future__ import annotations

import argparse

import torch

from train.evaluate import EvaluateConfig, held_out_store, serves
from worldmodel.world_model import load_world_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the models' training data folder (held-out episodes are used)")
    parser.add_argument("--checkpoints", default="checkpoints/world_model.pt",
                        help="comma-separated world model checkpoints (default: the shipped one)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| checkpoint | serve transitions (served) | ball when served | no ball when not served | latent separation |")
    print("|---|---|---|---|---|")
    for path in [p.strip() for p in args.checkpoints.split(",") if p.strip()]:
        model = load_world_model(path)
        r = serves(model, held_out_store(model, args.data), EvaluateConfig(data=args.data))

        def pct(v):
            return "n/a" if v is None else f"{100 * v:.1f}%"

        separation = "n/a" if r["latent_separation"] is None else f"{r['latent_separation']:.2f}"
        print(f"| {path} | {r['transitions']} ({r['real_serves']}) | {pct(r['ball_when_served'])} | "
              f"{pct(r['no_ball_when_not_served'])} | {separation} |")


if __name__ == "__main__":
    main()
