"""Playable-game speed: NeuralBreakout-v0 env steps/s and the play loop's rendered frames/s, next to
the emulator's steps/s, in one run.

    python benchmarks/play_speed.py [--steps 300] [--threads 2]

- env: `NeuralBreakout-v0` at batch 1 (action map + world model + colour conversion + frame parser
  for reward and lives), driven by the scripted tracker from the shipped start states;
- play loop: the same game in the pygame window of `neural-breakout play` (SDL's dummy video driver,
  frame scaled 3x, HUD drawn), with the frame-rate cap off, so the figure is what the loop can render;
- emulator: ALE/Breakout-v5 (frameskip 4) stepped in the same process. The ratio carries across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch


def time_env(env, steps: int) -> float:
    from collect.policies import make_policy

    policy, rng = make_policy("tracker"), np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    for _ in range(10):  # warm-up
        obs, _, terminated, truncated, info = env.step(policy.act(obs, rng, info))
    start = time.perf_counter()
    for _ in range(steps):
        obs, _, terminated, truncated, info = env.step(policy.act(obs, rng, info))
        if terminated or truncated:
            obs, info = env.reset()
    return steps / (time.perf_counter() - start)


def time_play_loop(steps: int) -> float:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    from play.game import NeuralGame, PlayConfig
    from play.window import GameWindow

    config = PlayConfig(seed=0)
    window = GameWindow("benchmark", scale=config.scale)
    game = NeuralGame(config, np.random.default_rng(0))
    game.reset()
    start = time.perf_counter()
    for i in range(steps):
        action, _ = window.poll()
        game.step(action if i % 8 else 1)  # FIRE now and then keeps a ball in play
        if game.over:
            game.reset()
        window.show(game.obs, game.status())
        window.tick(0)  # no cap: measure what the loop can render
    rate = steps / (time.perf_counter() - start)
    window.close()
    return rate


def time_emulator(steps: int) -> float:
    from collect.atari import make_env

    env = make_env(seed=0)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(4)))
        if terminated or truncated:
            env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="steps to time for each part (default 300)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from worldmodel.env import NeuralBreakoutEnv

    env_rate = time_env(NeuralBreakoutEnv(threads=args.threads), args.steps)
    loop_rate = time_play_loop(args.steps)
    emulator_rate = time_emulator(10 * args.steps)
    result = dict(env_steps_per_s=env_rate, play_loop_frames_per_s=loop_rate, emulator_steps_per_s=emulator_rate,
                  env_to_emulator_ratio=env_rate / emulator_rate, threads=args.threads, steps=args.steps)
    print(f"NeuralBreakout-v0 env: {env_rate:.1f} steps/s at batch 1, {args.threads} threads")
    print(f"play loop:             {loop_rate:.1f} rendered frames/s (3x scale, SDL dummy driver, no cap)")
    print(f"emulator:              {emulator_rate:.0f} steps/s")
    print(f"env / emulator ratio:  {env_rate / emulator_rate:.4f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
