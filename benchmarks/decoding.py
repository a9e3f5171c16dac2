"""How the world model turns its per-pixel logits into a frame: each pixel's own argmax, against the
ball drawn as one whole ball where the model gives a ball the most probability
(`WorldModelConfig.one_ball`), the digits drawn as the most likely whole glyphs (`whole_digits`), and
the paddle drawn as one whole paddle of a width the game shows (`one_paddle`), and the ball placed by
the ball head (`use_ball_head`, a model with one: its 1-step figures here are on the head's own
training transitions, so only its tracker games compare fairly), and the paddle placed by the paddle
table (`use_paddle_table`, `table`: with the ball head; also counted on these training transitions).
Training episodes only, so choosing the shipped setting never looks at held-out data.

    python benchmarks/decoding.py --data data/breakout [--checkpoint PATH]

For each decoding it prints, from the same sampled training transitions, segments and tracker games:
- 1-step ball within 1 px, paddle within 1 px and brick map exact (latents inferred from the video);
- open-loop rollouts of up to 32 steps (latents inferred from the video, frames from the model's own):
  median ball-tracking horizon (4 px) and brick map exact over 16 steps;
- tracker play through the env from the start bank (`evaluate_play.game_logic`): steps with a whole
  ball, steps whose frame is unchanged, points, lives lost and violations of the game's rules.
(`hud_keep_bonus.py` has the digits' own figures.)
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import Counter

import numpy as np
import torch

from keep_bonus import infer_latents, predict_all  # benchmarks/ is the script's folder
from train.evaluate import EvaluateConfig, rollouts
from train.evaluate_play import EvaluatePlayConfig, game_logic
from train.world_model import WorldModelTrainConfig, load_split
from worldmodel.breakout import parse_frame
from worldmodel.env import NeuralBreakoutEnv


def within(a, b, tolerance: int = 1) -> bool:
    return a is not None and b is not None and max(abs(a[0] - b[0]), abs(a[1] - b[1])) <= tolerance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the world model's training data folder")
    parser.add_argument("--checkpoint", default=None, help="world model (default: the shipped one)")
    parser.add_argument("--episodes", type=int, default=30, help="first N episodes to read (default 30)")
    parser.add_argument("--transitions", type=int, default=600, help="1-step transitions (default 600)")
    parser.add_argument("--segments", type=int, default=60, help="rollout segments of 32 steps (default 60)")
    parser.add_argument("--tracker-steps", type=int, default=1500, help="steps of each tracker game (default 1500)")
    parser.add_argument("--games", type=int, default=1,
                        help="tracker games, seeds seed, seed + 1, ...; their figures are summed (default 1: one "
                             "game is chaotic, so compare decodings over several)")
    parser.add_argument("--play-only", action="store_true", help="only the tracker games (no 1-step or rollouts)")
    parser.add_argument("--decodings", default="pixels,ball,digits,paddle",
                        help="which to run, comma-separated: pixels (per pixel), ball (one ball), digits (one ball "
                             "and whole digits), paddle (one ball and one paddle), head (the ball head's ball and "
                             "one paddle; a model with a ball head); default the first four")
    parser.add_argument("--paddle-width-bonus", type=float, default=None,
                        help="with paddle: the last frame's width's bonus (default: the model's config)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    decodings = {"pixels": ("per pixel", False, False, False, False, False),
                 "ball": ("one ball", True, False, False, False, False),
                 "digits": ("one ball, whole digits", True, True, False, False, False),
                 "paddle": ("one ball, one paddle", True, False, True, False, False),
                 "head": ("ball head, one paddle", True, False, True, True, False),
                 "table": ("ball head, paddle table", True, False, True, True, True)}
    chosen = [d.strip() for d in args.decodings.split(",") if d.strip()]
    unknown = [d for d in chosen if d not in decodings]
    if unknown or not chosen:
        parser.error(f"--decodings: expected some of {', '.join(decodings)}, got {args.decodings!r}")
    torch.set_num_threads(args.threads)
    env = NeuralBreakoutEnv(checkpoint=args.checkpoint, threads=args.threads)
    model = env.world_model
    train, _ = load_split(WorldModelTrainConfig(data=args.data, max_episodes=args.episodes), model.table, False)
    rng = np.random.default_rng(args.seed)
    context, target = train.batch(rng.choice(len(train), args.transitions, replace=False), model.context_length)
    context, target = torch.from_numpy(context), torch.from_numpy(target)
    latent = infer_latents(model, context, target)
    real = [parse_frame(model.table.to_rgb(t)) for t in target.numpy()]
    print(f"{len(train.names)} training episodes; {args.transitions} transitions, {args.segments} segments, "
          f"{args.games} tracker games of {args.tracker_steps} steps")
    print("| decoding | ball <=1px | paddle <=1px | bricks exact | ball horizon (median) | bricks exact 16 steps "
          "| whole-ball steps | unchanged steps | points | lives lost "
          "| violations: bricks back / score fell / lives rose / ball vanished |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    if args.paddle_width_bonus is not None:
        model.config = dataclasses.replace(model.config, paddle_width_bonus=args.paddle_width_bonus)
    if "head" in chosen and model.ball_head is None:
        parser.error("--decodings head: this world model has no ball head (`neural-breakout train ball-head`)")
    if "table" in chosen and (model.paddle_table is None or model.ball_head is None):
        parser.error("--decodings table: this world model lacks a paddle table or a ball head "
                     "(`neural-breakout train paddle-table`, `train ball-head`)")
    for name, one_ball, whole_digits, one_paddle, use_ball_head, use_paddle_table in (decodings[d] for d in chosen):
        model.config = dataclasses.replace(model.config, one_ball=one_ball, whole_digits=whole_digits,
                                           one_paddle=one_paddle, use_ball_head=use_ball_head,
                                           use_paddle_table=use_paddle_table)
        row = ["", "", "", "", ""]
        if not args.play_only:
            generated = [parse_frame(model.table.to_rgb(p)) for p in predict_all(model, context, latent)]
            ball = np.mean([within(r.ball, g.ball) for r, g in zip(real, generated) if r.ball is not None])
            paddle = np.mean([g.paddle_x is not None and abs(g.paddle_x - r.paddle_x) <= 1
                              for r, g in zip(real, generated) if r.paddle_x is not None])
            bricks = np.mean([np.array_equal(r.bricks, g.bricks) for r, g in zip(real, generated)])
            rollout, _ = rollouts(model, train, EvaluateConfig(data=args.data, segments=args.segments, horizon=32,
                                                               gifs=0), np.random.default_rng(args.seed))
            row = [f"{100 * ball:.1f}%", f"{100 * paddle:.1f}%", f"{100 * bricks:.1f}%",
                   f"{rollout['median_ball_tracking_horizon']:.0f} (mean {rollout['mean_ball_tracking_horizon']:.1f})",
                   f"{100 * rollout['bricks_exact_16_steps']:.1f}%"]
        total, rules = Counter(), []
        for game in range(args.games):
            play, _ = game_logic(env, EvaluatePlayConfig(data=args.data, seed=args.seed + game), args.tracker_steps)
            total.update({k: play[k] for k in ("whole_ball_steps", "frozen_steps", "points", "lives_lost")})
            total.update(play["violations"])
            rules = list(play["violations"])  # in game_logic's order
        violations = " / ".join(str(total[k]) for k in rules)
        print(f"| {name} | {' | '.join(row)} | {total['whole_ball_steps']} | {total['frozen_steps']} "
              f"| {total['points']} | {total['lives_lost']} | {violations} |", flush=True)

if __name__ == "__main__":
    main()
