"""Events with the event input (`train world-model --event-input`): does the decoder serve a ball and
take a life exactly when told to, and when does the action map tell it to?

Reads held-out episodes. Prints:
- the decoder, with codes inferred from the real video: on transitions that leave a frame where the
  emulator waits for a serve (RAM), a ball drawn with the serve bit 0 and 1, next to whether the
  real game served; on transitions where the lives digit falls (and as many others), the digit
  falling with the life bit 0 and 1;
- the action map, from each held-out frame where the parser sees no ball: its odds of the serve bit
  after FIRE and after NOOP, and of the life bit, split by the RAM's state (the ball still in play:
  it left the screen below the paddle or hides; or waiting for a serve), and how often the env's
  pick (the most likely code, the event drawn from the odds) sets each bit; then the serve odds after
  FIRE where the emulator waits, split by how many frames before the lives digit fell (a map that
  reads the fall knows the game waits).

    python benchmarks/event_odds.py --data data/breakout --checkpoint runs/world-model-ei/world_model.pt \\
        --action-map runs/action-map-ei/action_map.pt --start-states runs/action-map-ei/start_states.npz
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from collect.episodes import list_episodes, load_episode
from train.world_model import split_episodes
from worldmodel.breakout import FIRE, NOOP, parse_frame, ram_ball_in_play, transition_events
from worldmodel.env import NeuralBreakoutEnv


def event_odds(probs: np.ndarray, codes: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames, latents) map probabilities -> the odds of the serve bit and of the life bit (frames,),
    given the most likely code, as the env draws them."""
    joint = probs.reshape(len(probs), -1, codes)  # (frames, event inputs, codes)
    code = joint.sum(axis=1).argmax(axis=1)
    given = joint[np.arange(len(probs)), :, code]  # (frames, event inputs)
    given = given / given.sum(axis=1, keepdims=True)
    return given[:, 1] + given[:, 3], given[:, 2] + given[:, 3]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the world model's episode folder")
    parser.add_argument("--checkpoint", required=True, help="a world model with event input")
    parser.add_argument("--action-map", required=True)
    parser.add_argument("--start-states", required=True)
    parser.add_argument("--episodes", type=int, default=18, help="held-out episodes to read")
    args = parser.parse_args()

    env = NeuralBreakoutEnv(args.checkpoint, args.action_map, args.start_states)
    model = env.world_model
    if not model.config.event_input:
        raise SystemExit(f"{args.checkpoint}: this world model has no event input (train world-model --event-input)")
    codes, k, k_wm = model.config.codes, env.context_length, model.context_length
    holdout = int(model.summary.get("training_config", {}).get("holdout_every", 10))
    held = split_episodes(list_episodes(args.data), holdout)[1][:args.episodes]
    rows, waits, losses = [], [], []  # map rows; decoder samples (context, next, truth)
    for path in held:
        episode = load_episode(path)
        frames, lives, in_play = episode.frames, episode.lives, ram_ball_in_play(episode.ram)
        infos = [parse_frame(frame) for frame in frames]
        fell = None  # the frame where the lives digit last fell
        for t in range(1, len(frames) - 1):
            if infos[t].lives < infos[t - 1].lives:
                fell = t
            if t < k:
                continue
            serve, lost = transition_events(infos[t - k_wm + 1:t + 1], infos[t + 1])
            if lives[t] > 0 and not in_play[t]:
                waits.append((frames[t - k_wm + 1:t + 1], frames[t + 1], serve))
            if lost or (t % 50 == 0 and infos[t].ball is not None):
                losses.append((frames[t - k_wm + 1:t + 1], frames[t + 1], lost))
            if infos[t].ball is not None or lives[t] == 0:
                continue
            env.reset(options={"frames": frames[t - k + 1:t + 1]})
            rows.append((bool(in_play[t]), serve, lost, env.latent_probabilities(FIRE), env.latent_probabilities(NOOP),
                         None if fell is None else t - fell))
    print(f"{len(held)} held-out episodes; {len(waits)} transitions waiting for a serve, "
          f"{sum(w[2] for w in waits)} of them serve; {sum(x[2] for x in losses)} lose a life")

    print("\n| decoder | real game: event | real game: none |\n|---|---|---|")
    for name, samples, bit, reads in (("serve bit", waits, 1, lambda i: i.ball is not None),
                                      ("life bit", losses, 2, None)):
        if not samples:
            continue
        ids = torch.from_numpy(model.table.to_ids(np.stack([s[0] for s in samples])))
        nxt = torch.from_numpy(model.table.to_ids(np.stack([s[1] for s in samples])))
        truth = np.array([s[2] for s in samples])
        code = model.infer_latent_ids(ids, nxt, event_inputs=torch.zeros(len(ids), dtype=torch.long))
        before = [parse_frame(model.table.to_rgb(c[-1].numpy())) for c in ids]
        for value in (0, 1):
            out = model.table.to_rgb(model.predict_ids(ids, code + codes * bit * value).numpy())
            infos = [parse_frame(o) for o in out]
            shown = np.array([reads(i) if reads else i.lives < b.lives for i, b in zip(infos, before)])
            what = "a ball drawn" if reads else "the lives digit falls"
            print(f"| {name} {value}: {what} | {shown[truth].mean():.1%} of {truth.sum()} "
                  f"| {shown[~truth].mean():.1%} of {(~truth).sum()} |")

    in_play = np.array([r[0] for r in rows])
    served, lost = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    fire_serve, fire_life = event_odds(np.array([r[3] for r in rows]), codes)
    noop_serve, noop_life = event_odds(np.array([r[4] for r in rows]), codes)
    print("\n| action map, frames with no ball seen | frames | serve odds after FIRE | after NOOP "
          "| life odds after NOOP |\n|---|---|---|---|---|")
    for name, mask in (("ball still in play (RAM), the life is lost on this step", in_play & lost),
                       ("ball still in play (RAM), no event on this step", in_play & ~lost),
                       ("waiting for a serve (RAM), real game served", ~in_play & served),
                       ("waiting for a serve (RAM), no serve", ~in_play & ~served)):
        if mask.any():
            print(f"| {name} | {mask.sum()} | {fire_serve[mask].mean():.2f} | {noop_serve[mask].mean():.2f} "
                  f"| {noop_life[mask].mean():.2f} |")

    since = np.array([-1 if r[5] is None else r[5] for r in rows])
    print("\n| waiting for a serve (RAM): the lives digit fell | frames | serve odds after FIRE | odds < 0.5 |"
          "\n|---|---|---|---|")
    for name, mask in (("on this frame", since == 0), ("1 to 7 frames before", (since >= 1) & (since <= 7)),
                       ("8 or more frames before", since >= 8), ("never (the game's first ball)", since < 0)):
        mask = mask & ~in_play
        if mask.any():
            print(f"| {name} | {mask.sum()} | {fire_serve[mask].mean():.2f} | {(fire_serve[mask] < 0.5).mean():.0%} |")


if __name__ == "__main__":
    main()
