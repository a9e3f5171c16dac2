"""Does a world model's latent carry the serve? The serve part of `evaluate world-model`, alone and
for several checkpoints at once (a few seconds each instead of minutes).

    python benchmarks/serve_control.py --data data/breakout --checkpoints checkpoints/world_model.pt,runs/x/world_model.pt

On the held-out transitions that leave a frame where no ball is in play (the emulator's RAM says so),
with latents inferred from the real video, it prints:
- ball when served: the real next frame shows a ball (FIRE was pressed) and so does the generated one;
- no ball when not served: neither shows one (any other action);
- latent separation: total variation distance between the latent codes of the two groups (0: the
  latent says nothing about the serve, so no action map can make FIRE serve and NOOP not);
- features probe: whether the encoder's pooled features, before its last layer and the codebook,
  hold the serve: accuracy of a ridge-regression probe on them telling served from unserved
  transitions, 5-fold cross-validated over these held-out transitions (the majority share is the
  floor). High accuracy with low separation: the information is there and is lost in the head.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from train.evaluate import EvaluateConfig, held_out_store, serves
from train.world_model import ram_serves
from worldmodel.world_model import WorldModel, load_world_model


@torch.no_grad()
def features_probe(model: WorldModel, store, data: str, folds: int = 5) -> tuple[float, float]:
    """(cross-validated accuracy of a ridge probe on the encoder's pooled features, majority share)."""
    waiting, served = ram_serves(store, data)
    index = np.flatnonzero(waiting)
    labels = served[index]
    context, target = store.batch(index, model.context_length)
    x = model.encoder.features(torch.from_numpy(context[:, -1]), torch.from_numpy(target)).double().numpy()
    x = np.c_[(x - x.mean(0)) / (x.std(0) + 1e-6), np.ones(len(x))]
    y = 2.0 * labels - 1
    order = np.random.default_rng(0).permutation(len(y))
    right = 0
    for test in np.array_split(order, folds):
        fit = np.setdiff1d(order, test)
        weights = np.linalg.solve(x[fit].T @ x[fit] + 10 * np.eye(x.shape[1]), x[fit].T @ y[fit])
        right += int(((x[test] @ weights > 0) == labels[test]).sum())
    return right / len(y), float(max(labels.mean(), 1 - labels.mean()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the models' training data folder (held-out episodes are used)")
    parser.add_argument("--checkpoints", default="checkpoints/world_model.pt",
                        help="comma-separated world model checkpoints (default: the shipped one)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| checkpoint | serve transitions (served) | ball when served | no ball when not served | latent separation "
          "| features probe (majority) |")
    print("|---|---|---|---|---|---|")
    for path in [p.strip() for p in args.checkpoints.split(",") if p.strip()]:
        model = load_world_model(path)
        store = held_out_store(model, args.data)
        r = serves(model, store, EvaluateConfig(data=args.data))
        probe, majority = features_probe(model, store, args.data)

        def pct(v):
            return "n/a" if v is None else f"{100 * v:.1f}%"

        separation = "n/a" if r["latent_separation"] is None else f"{r['latent_separation']:.2f}"
        print(f"| {path} | {r['transitions']} ({r['real_serves']}) | {pct(r['ball_when_served'])} | "
              f"{pct(r['no_ball_when_not_served'])} | {separation} | {pct(probe)} ({pct(majority)}) |")


if __name__ == "__main__":
    main()
