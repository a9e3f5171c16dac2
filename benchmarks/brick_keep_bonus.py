"""The world model's keep bonus on the brick rows (`brick_keep_bonus`): how a stronger hold on the
bricks trades bricks removed by mistake (and gaps filled again) against hits it misses, on training
episodes only (so choosing the shipped value never looks at held-out data).

    python benchmarks/brick_keep_bonus.py --data data/breakout [--bonuses 1.5,2,2.5,3,3.5,5]

For each bonus it prints, with the same sampled training transitions:
- 1-step brick map exact, latents inferred from the video: on random transitions, and on transitions
  where the real brick map changes (a hit);
- tracker games through NeuralBreakoutEnv from the start bank: the steps after which a brick came
  back, the score fell, and the points scored.
Most 1-step brick errors of the shipped model with the playfield's bonus (1.5) are bricks the
decoder removes where the real game keeps them: the ball is near, and the two context frames
cannot tell whether it hits within the step's four emulator frames.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from hud_keep_bonus import tracker_games  # benchmarks/ is the script's folder
from keep_bonus import infer_latents, parse_bonuses, predict_all
from train.world_model import WorldModelTrainConfig, load_split
from worldmodel.breakout import parse_bricks
from worldmodel.env import NeuralBreakoutEnv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the world model's training data folder")
    parser.add_argument("--checkpoint", default=None, help="world model (default: the shipped one)")
    parser.add_argument("--bonuses", default="1.5,2,2.5,3,3.5,5", help="comma-separated bonuses to try")
    parser.add_argument("--episodes", type=int, default=40, help="first N episodes to read (default 40)")
    parser.add_argument("--transitions", type=int, default=1000, help="random 1-step transitions (default 1000)")
    parser.add_argument("--hits", type=int, default=300, help="1-step transitions with a hit (default 300)")
    parser.add_argument("--games", type=int, default=8, help="tracker games per bonus (default 8)")
    parser.add_argument("--steps", type=int, default=300, help="steps per tracker game (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    bonuses = parse_bonuses(parser, args.bonuses)
    torch.set_num_threads(args.threads)
    env = NeuralBreakoutEnv(checkpoint=args.checkpoint)
    model = env.world_model
    train, _ = load_split(WorldModelTrainConfig(data=args.data, max_episodes=args.episodes), model.table, False)
    rng = np.random.default_rng(args.seed)
    k, rgb = model.context_length, model.table.to_rgb
    candidates = rng.permutation(len(train))[:100 * args.hits]  # the store keeps no brick maps: read them
    hit = [not np.array_equal(parse_bricks(rgb(train.frames[train.starts[i]])),
                              parse_bricks(rgb(train.frames[train.starts[i] + 1]))) for i in candidates]
    sets = dict(random=rng.choice(len(train), args.transitions, replace=False),
                hits=candidates[np.array(hit, dtype=bool)][:args.hits])
    batches = {}
    for name, index in sets.items():
        context, target = train.batch(index, k)
        context, target = torch.from_numpy(context), torch.from_numpy(target)
        batches[name] = (context, infer_latents(model, context, target), [parse_bricks(rgb(t)) for t in target.numpy()])
    print(f"{len(train.names)} training episodes; transitions: {len(sets['random'])} random, {len(sets['hits'])} "
          f"with a hit; {args.games} tracker games of {args.steps} steps")
    print("| brick bonus | bricks exact (random) | bricks exact (hit) | bricks back | score fell | points |")
    print("|---|---|---|---|---|---|")
    for bonus in bonuses:
        model.config = dataclasses.replace(model.config, brick_keep_bonus=bonus)
        exact = {}
        for name, (context, latent, real) in batches.items():
            predicted = predict_all(model, context, latent)
            exact[name] = np.mean([np.array_equal(parse_bricks(rgb(p)), r) for p, r in zip(predicted, real)])
        play = tracker_games(env, args.games, args.steps, args.seed)
        print(f"| {bonus:g} | {100 * exact['random']:.1f}% | {100 * exact['hits']:.1f}% | {play['bricks_back']} | "
              f"{play['score_fell']} | {play['points']} |", flush=True)


if __name__ == "__main__":
    main()
