"""The 10-minute tracker game of `evaluate play`, over several seeds: one game is chaotic, so its
violation counts move a lot between versions that differ by a few pixels. This plays one game per
seed (each from the start bank's state that seed draws) and prints each game's counts and their sum.

    python benchmarks/tracker_games.py [--seeds 0,1,2,3] [--minutes 10] [--checkpoint PATH] [--set KEY=VALUE]
        [--action-map PATH --start-states PATH]

A world model with its own encoder needs the action map trained on its codes (`--action-map`).

`--set` overrides a setting of the world model's config for this run (for example
`--set use_return_head=False`), so that two settings are compared on the same games.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np

from train.evaluate_play import EvaluatePlayConfig, game_logic
from worldmodel.env import NeuralBreakoutEnv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2,3", help="comma-separated seeds, one game each")
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of play per game at 15 steps/s")
    parser.add_argument("--checkpoint", default=None, help="world model (default: the shipped one)")
    parser.add_argument("--action-map", default=None, help="action map (default: the shipped one)")
    parser.add_argument("--start-states", default=None, help="start-state bank (default: the shipped one)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a WorldModelConfig setting (a JSON value: true, false, a number)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    env = NeuralBreakoutEnv(args.checkpoint, args.action_map, args.start_states, threads=args.threads)
    model = env.world_model
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in {f.name for f in dataclasses.fields(model.config)}:
            raise SystemExit(f"--set {item}: WorldModelConfig has no setting {key!r}")
        model.config = dataclasses.replace(model.config, **{key: json.loads(value.lower())})
    env.context_length = max(model.context_length, env.action_map.config.context)
    steps = int(round(args.minutes * 60 * 15))
    total: dict[str, int] = {}
    print("| seed | bricks back | score fell | lives rose | ball vanished | lives lost | bricks broken | games |")
    print("|---|---|---|---|---|---|---|---|")
    for seed in [int(s) for s in args.seeds.split(",")]:
        result, _ = game_logic(env, EvaluatePlayConfig(data="", seed=seed), steps)
        v = result["violations"]
        for key, value in v.items():
            total[key] = total.get(key, 0) + value
        print(f"| {seed} | {v['brick_reappeared']} | {v['score_decreased']} | {v['lives_increased']} | "
              f"{v['ball_vanished_mid_field']} | {result['lives_lost']} | {result['bricks_broken']} | "
              f"{result['games_finished']} |", flush=True)
    print(f"| all | {total['brick_reappeared']} | {total['score_decreased']} | {total['lives_increased']} | "
          f"{total['ball_vanished_mid_field']} | | | |")
    print(f"settings: {', '.join(args.set) or 'as shipped'}; {steps} steps a game")


if __name__ == "__main__":
    main()
