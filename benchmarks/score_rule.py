"""The score rule (`WorldModelConfig.count_score`): how the recorded games count a brick, and what
drawing the score by that rule does to the neural game.

    python benchmarks/score_rule.py --data data/breakout [--episodes 60] [--games 8] [--steps 400]

1. Over recorded training episodes, read by the frame parser: each step whose bricks or score
   change, as one of: the score rises by the points of the bricks the step removed
   (`breakout.BRICK_POINTS`) on that step; on the next step (the ball hit the brick on the step's
   last emulated frame, after the digits were drawn); or neither (the rule does not explain it).
2. Tracker games through NeuralBreakoutEnv from the start bank, with the score drawn by the rule
   and by the decoder's pixels: points scored (the score's rises), what the bricks broken are
   worth, how often the score fell, the games whose score stopped counting (bricks broken after
   its last rise worth more than 14 points, two top bricks), and the steps and lives the games
   lasted (a game ends early at its last life).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses

import numpy as np

from collect.episodes import list_episodes, load_episode
from collect.policies import make_policy
from train.world_model import WorldModelTrainConfig, split_episodes
from worldmodel.breakout import brick_points, parse_frame
from worldmodel.env import NeuralBreakoutEnv


def count_rule(paths: list) -> collections.Counter:
    counts = collections.Counter()
    for path in paths:
        infos = [parse_frame(frame) for frame in load_episode(path).frames]
        owed = 0
        for before, after in zip(infos[:-1], infos[1:]):
            if (after.bricks & ~before.bricks).any():  # a new wall: bricks come back
                counts["new wall"] += 1
                owed = 0
                continue
            points, delta = brick_points(before.bricks, after.bricks), after.score - before.score
            if points and delta == points:
                counts["same step"] += 1
            elif points and delta == 0:
                counts["next step"] += 1
            elif (points or delta) and not (not points and delta == owed):  # not the next step's rise
                counts["unexplained"] += 1
            owed += points - delta
    return counts


def tracker_games(env: NeuralBreakoutEnv, games: int, steps: int, seed: int) -> dict:
    counts = dict(points=0, brick_points=0, score_fell=0, stopped_games=0, steps=0, lives_lost=0)
    for game in range(games):
        policy, rng = make_policy("tracker"), np.random.default_rng(seed + game)
        obs, info = env.reset(seed=seed + game)
        policy.reset()
        last = parse_frame(obs)
        since_rise = 0  # points of the bricks broken since the score last rose
        for _ in range(steps):
            obs, _, terminated, truncated, info = env.step(policy.act(obs, rng, info))
            now = parse_frame(obs)
            worth = brick_points(last.bricks, now.bricks)
            counts["brick_points"] += worth
            counts["score_fell"] += now.score < last.score
            counts["points"] += max(0, now.score - last.score)
            since_rise = 0 if now.score > last.score else since_rise + worth
            counts["steps"] += 1
            counts["lives_lost"] += now.lives < last.lives
            last = now
            if terminated or truncated:
                break
        counts["stopped_games"] += since_rise > 14
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the world model's training data folder")
    parser.add_argument("--episodes", type=int, default=60, help="training episodes to count the rule on (default 60)")
    parser.add_argument("--games", type=int, default=8, help="tracker games per setting (default 8)")
    parser.add_argument("--steps", type=int, default=400, help="steps per tracker game (default 400)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    paths = list_episodes(args.data)
    if not paths:
        raise SystemExit(f"{args.data}: no episode files (episode-*.npz) in this folder")
    train, _ = split_episodes(paths, WorldModelTrainConfig(data=args.data).holdout_every)
    counts = count_rule(train[:args.episodes])
    total = sum(v for k, v in counts.items() if k != "new wall")
    print(f"{min(args.episodes, len(train))} training episodes: {total} steps remove a brick or change the score")
    for key in ("same step", "next step", "unexplained"):
        print(f"  {key:12s} {counts[key]:6d}  {100 * counts[key] / max(total, 1):5.1f}%")
    print(f"  (steps that bring a new wall: {counts['new wall']})")
    env = NeuralBreakoutEnv()
    print(f"\n{args.games} tracker games of {args.steps} steps through NeuralBreakout-v0:")
    print("| score drawn by | points scored | bricks broken worth | score fell | games whose score stopped | steps played | lives lost |")
    print("|---|---|---|---|---|---|---|")
    for rule in (True, False):
        env.world_model.config = dataclasses.replace(env.world_model.config, count_score=rule)
        c = tracker_games(env, args.games, args.steps, args.seed)
        print(f"| {'the rule' if rule else 'the decoder'} | {c['points']} | {c['brick_points']} | {c['score_fell']} | "
              f"{c['stopped_games']} of {args.games} | {c['steps']} | {c['lives_lost']} |")


if __name__ == "__main__":
    main()
