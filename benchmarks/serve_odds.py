"""Serves with the serve input (`train world-model --serve-input`): does the decoder serve exactly when
told to, and when does the action map tell it to?

On held-out frames where the parser sees no ball (and a life is left), read from the emulator's RAM
whether the ball is still in play (it left the screen below the paddle or hides; FIRE does nothing)
or waiting for a serve. Prints:
- the decoder: on the waiting transitions, a ball drawn with serve input 0 and with 1 (codes inferred
  from the real video), next to whether the real game served;
- the action map: its probability of a serve latent after FIRE and after NOOP, and how often its most
  likely latent (the env's pick) is a serve, from the last frames
  of each context, split by the RAM's state and by whether the lives digit changed in the map's
  window (the emulator takes the life 1 to 6 frames after the ball leaves; FIRE serves only after).

    python benchmarks/serve_odds.py --data data/breakout --checkpoint runs/world-model-si/world_model.pt \\
        --action-map runs/action-map-si/action_map.pt --start-states runs/action-map-si/start_states.npz
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from collect.episodes import list_episodes, load_episode
from train.world_model import split_episodes
from worldmodel.breakout import parse_frame, ram_ball_in_play
from worldmodel.env import NeuralBreakoutEnv

FIRE, NOOP = 1, 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the world model's episode folder")
    parser.add_argument("--checkpoint", required=True, help="a world model with serve input")
    parser.add_argument("--action-map", required=True)
    parser.add_argument("--start-states", required=True)
    parser.add_argument("--episodes", type=int, default=18, help="held-out episodes to read")
    args = parser.parse_args()

    env = NeuralBreakoutEnv(args.checkpoint, args.action_map, args.start_states)
    model = env.world_model
    if not model.config.serve_input:
        raise SystemExit(f"{args.checkpoint}: this world model has no serve input (train world-model --serve-input)")
    codes, k = model.config.codes, env.context_length
    holdout = int(model.summary.get("training_config", {}).get("holdout_every", 10))
    held = split_episodes(list_episodes(args.data), holdout)[1][:args.episodes]
    rows, contexts, nexts, served = [], [], [], []
    for path in held:
        episode = load_episode(path)
        frames, lives, in_play = episode.frames, episode.lives, ram_ball_in_play(episode.ram)
        for t in range(k, len(frames) - 1):
            if lives[t] == 0 or parse_frame(frames[t]).ball is not None:
                continue
            env.reset(options={"frames": frames[t - k + 1:t + 1]})
            fire, noop = env.latent_probabilities(FIRE), env.latent_probabilities(NOOP)
            rows.append((bool(in_play[t]), bool(lives[t] < lives[t - k + 1]), fire, noop))
            if not in_play[t]:
                contexts.append(frames[t - model.context_length + 1:t + 1])
                nexts.append(frames[t + 1])
                served.append(bool(in_play[t + 1]))
    in_play_now = np.array([r[0] for r in rows])
    changed = np.array([r[1] for r in rows])
    fire, noop = np.array([r[2] for r in rows]), np.array([r[3] for r in rows])  # (frames, latents)
    fire_picks, noop_picks = fire.argmax(axis=1) >= codes, noop.argmax(axis=1) >= codes  # as the env picks
    fire, noop = fire[:, codes:].sum(axis=1), noop[:, codes:].sum(axis=1)
    print(f"{len(held)} held-out episodes, {len(rows)} frames with no ball seen: {int((~in_play_now).sum())} waiting "
          f"for a serve, {int(in_play_now.sum())} with the ball still in play (RAM)")
    served = np.array(served)
    if len(contexts):
        ids = torch.from_numpy(model.table.to_ids(np.stack(contexts)))
        nxt = torch.from_numpy(model.table.to_ids(np.stack(nexts)))
        code = model.infer_latent_ids(ids, nxt, serves=torch.zeros(len(ids), dtype=torch.bool))
        print("\n| decoder, waiting transitions | real game served | real game did not |\n|---|---|---|")
        for value in (0, 1):
            out = model.predict_ids(ids, code + codes * value).numpy()
            ball = np.array([parse_frame(model.table.to_rgb(o)).ball is not None for o in out])
            print(f"| serve input {value}: a ball drawn | {ball[served].mean():.1%} of {served.sum()} "
                  f"| {ball[~served].mean():.1%} of {(~served).sum()} |")
    print("\n| action map, frames with no ball seen | frames | P(serve) after FIRE, mean | FIRE picks a serve "
          "| P(serve) after NOOP, mean | NOOP picks a serve |\n|---|---|---|---|---|---|")
    for name, mask in (("waiting, lives digit changed in the window", ~in_play_now & changed),
                       ("waiting, no change in the window", ~in_play_now & ~changed),
                       ("ball still in play", in_play_now)):
        if mask.any():
            print(f"| {name} | {mask.sum()} | {fire[mask].mean():.2f} | {fire_picks[mask].mean():.1%} "
                  f"| {noop[mask].mean():.2f} | {noop_picks[mask].mean():.1%} |")


if __name__ == "__main__":
    main()
