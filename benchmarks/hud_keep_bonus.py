"""The world model's keep bonus on the score and lives digits (`hud_keep_bonus`): how a stronger
hold on those rows trades the digits' chance flicker against missed score and lives changes, on
training episodes only (so choosing the shipped value never looks at held-out data).

    python benchmarks/hud_keep_bonus.py --data data/breakout [--bonuses 1.5,3,5,8] [--digits pixels,whole]

For each bonus and digit decoding (`WorldModelConfig.whole_digits`: each pixel's own argmax, or the
most likely whole glyph) it prints, with the same sampled training transitions:
- 1-step, latents inferred from the video: the score read exactly where the real score changes,
  the lives read exactly where a life is lost, and both on random transitions;
- tracker games through NeuralBreakoutEnv from the start bank: how often the lives read rose, fell,
  and the score fell, and the points scored.
A digit is a chance event where the two context frames cannot time it (a lost life). Its logits then
sit near the threshold and the per-pixel argmax draws half of the new digit over the old one (a 5
with a 4's stroke reads as 9); the game feeds on that frame and flickers.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from collect.policies import make_policy
from keep_bonus import infer_latents, parse_bonuses, predict_all  # benchmarks/ is the script's folder
from train.world_model import WorldModelTrainConfig, load_split
from worldmodel.breakout import parse_frame
from worldmodel.env import NeuralBreakoutEnv


def tracker_games(env: NeuralBreakoutEnv, games: int, steps: int, seed: int) -> dict:
    counts = dict(lives_rose=0, lives_fell=0, score_fell=0, bricks_back=0, points=0)
    for game in range(games):
        policy, rng = make_policy("tracker"), np.random.default_rng(seed + game)
        obs, info = env.reset(seed=seed + game)
        policy.reset()
        last = parse_frame(obs)
        for _ in range(steps):
            obs, _, terminated, truncated, info = env.step(policy.act(obs, rng, info))
            now = parse_frame(obs)
            counts["lives_rose"] += now.lives > last.lives
            counts["lives_fell"] += now.lives < last.lives
            counts["score_fell"] += now.score < last.score
            counts["bricks_back"] += bool((now.bricks & ~last.bricks).any())
            counts["points"] += max(0, now.score - last.score)
            last = now
            if terminated or truncated:
                break
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the world model's training data folder")
    parser.add_argument("--checkpoint", default=None, help="world model (default: the shipped one)")
    parser.add_argument("--action-map", default=None, help="action map (default: the shipped one)")
    parser.add_argument("--start-states", default=None, help="start bank (default: the shipped one)")
    parser.add_argument("--bonuses", default="1.5,3,5,8", help="comma-separated bonuses to try")
    parser.add_argument("--digits", default="pixels,whole", help="digit decodings to try: pixels, whole or both")
    parser.add_argument("--episodes", type=int, default=40, help="first N episodes to read (default 40)")
    parser.add_argument("--transitions", type=int, default=400, help="1-step transitions of each kind (default 400)")
    parser.add_argument("--games", type=int, default=8, help="tracker games per bonus (default 8)")
    parser.add_argument("--steps", type=int, default=300, help="steps per tracker game (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    bonuses = parse_bonuses(parser, args.bonuses)
    digits = args.digits.split(",")
    if not set(digits) <= {"pixels", "whole"}:
        parser.error(f"--digits: expected pixels, whole or pixels,whole, got {args.digits!r}")
    torch.set_num_threads(args.threads)
    env = NeuralBreakoutEnv(checkpoint=args.checkpoint, action_map=args.action_map, start_states=args.start_states)
    model = env.world_model
    train, _ = load_split(WorldModelTrainConfig(data=args.data, max_episodes=args.episodes), model.table, False)
    rng = np.random.default_rng(args.seed)
    k = model.context_length
    nxt, now = train.starts + 1, train.starts
    lives = train.lives.astype(np.int64)
    lost = np.flatnonzero(lives[nxt] < lives[now])
    sets = dict(random=rng.choice(len(train), args.transitions, replace=False),
                lost=rng.permutation(lost)[:args.transitions])
    rgb = model.table.to_rgb
    candidates = rng.permutation(len(train))[:20 * args.transitions]  # the store keeps no scores: read them
    read = [(parse_frame(rgb(train.frames[now[i]])).score, parse_frame(rgb(train.frames[nxt[i]])).score)
            for i in candidates]
    sets["scored"] = candidates[[a != b for a, b in read]][:args.transitions]
    batches = {}
    for name, index in sets.items():
        context, target = train.batch(index, k)
        context, target = torch.from_numpy(context), torch.from_numpy(target)
        latent = infer_latents(model, context, target)
        batches[name] = (context, latent, [parse_frame(rgb(t)) for t in target.numpy()])
    print(f"{len(train.names)} training episodes; transitions: {len(sets['random'])} random, "
          f"{len(sets['scored'])} where the score changes, {len(sets['lost'])} where a life is lost; "
          f"{args.games} tracker games of {args.steps} steps")
    print("| digits | hud bonus | score exact (scored) | lives exact (life lost) | score / lives exact (random) "
          "| lives rose | lives fell | score fell | points |")
    print("|---|---|---|---|---|---|---|---|---|")
    for whole, bonus in [(d == "whole", b) for d in digits for b in bonuses]:
        model.config = dataclasses.replace(model.config, hud_keep_bonus=bonus, whole_digits=whole)
        exact = {}
        for name, (context, latent, real) in batches.items():
            predicted = predict_all(model, context, latent)
            generated = [parse_frame(rgb(p)) for p in predicted]
            exact[name] = (np.mean([g.score == r.score for g, r in zip(generated, real)]),
                           np.mean([g.lives == r.lives for g, r in zip(generated, real)]))
        play = tracker_games(env, args.games, args.steps, args.seed)
        print(f"| {'whole' if whole else 'pixels'} | {bonus:g} | {100 * exact['scored'][0]:.1f}% | {100 * exact['lost'][1]:.1f}% | "
              f"{100 * exact['random'][0]:.1f}% / {100 * exact['random'][1]:.1f}% | {play['lives_rose']} | "
              f"{play['lives_fell']} | {play['score_fell']} | {play['points']} |", flush=True)


if __name__ == "__main__":
    main()
