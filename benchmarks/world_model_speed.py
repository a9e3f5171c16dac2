"""World model speed: `predict` steps/s at batch 1 with 2 threads, next to the emulator, in one run.

    python benchmarks/world_model_speed.py [--checkpoint PATH] [--steps 300] [--threads 2]

Each step generates one 210x160 RGB frame from the model's own previous frames (RGB in, RGB out,
colour conversion included), as the neural env does. The emulator steps ALE/Breakout-v5 (frameskip 4)
in the same process. The ratio is what carries across machines. A model with a ball head is timed
twice in the run, with the head placing the ball and without (`use_ball_head`), so its cost shows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import torch

from train.evaluate import speed
from worldmodel.world_model import load_world_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="world model (default: checkpoints/world_model.pt)")
    parser.add_argument("--steps", type=int, default=300, help="generated frames to time (default 300)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_world_model(args.checkpoint)
    for use_ball_head in ([True, False] if model.ball_head is not None else [False]):
        model.config = dataclasses.replace(model.config, use_ball_head=use_ball_head)
        result = speed(model, steps=args.steps)
        label = "with its ball head" if use_ball_head else "without a ball head" if model.ball_head is None \
            else "ball head off"
        print(f"world model predict ({label}): {result['predict_steps_per_s']:.1f} steps/s at batch 1, "
              f"{args.threads} threads")
        print(f"emulator:            {result['emulator_steps_per_s']:.0f} steps/s")
        print(f"ratio:               {result['ratio']:.4f}")
        print(json.dumps(dict(result, use_ball_head=use_ball_head)))


if __name__ == "__main__":
    main()
