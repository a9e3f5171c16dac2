"""What does each latent code do where no ball is in play? For held-out transitions that leave a
frame where the emulator has no ball in play (RAM), the world model predicts the next frame under
every code. The benchmark prints, per code, how often a whole ball appears (`evaluate play`'s
`whole_ball`) and how often the lives digit changes (read by the frame parser). A model that serves or takes a life by chance does so under
every code. With event codes (`train world-model --event-codes`), only the serve code should paint a
ball, and only the life-lost code should change the digit.

It first prints when a life is lost in the held-out episodes: how many frames before the lost life
(the emulator's count drops) the ball was last seen by the parser. Two context frames time it only
when that is 1.

    python benchmarks/event_codes.py --data data/breakout --checkpoints checkpoints/world_model.pt,runs/world-model-events/world_model.pt
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from train.evaluate import held_out_store
from train.evaluate_play import whole_ball
from train.world_model import ram_serves
from worldmodel.breakout import parse_frame
from worldmodel.lam import EVENTS
from worldmodel.world_model import load_world_model


def lost_life_gaps(store) -> dict[int, int]:
    """For each held-out lost life, the number of frames up to the one it leaves that show no ball."""
    lives = store.lives.astype(np.int64)
    gaps: dict[int, int] = {}
    for t in np.flatnonzero(lives[store.starts + 1] < lives[store.starts]):
        frame, first = store.starts[t], store.offsets[store.episode_of_frame[store.starts[t]]]
        gap = 0
        while frame - gap >= first and parse_frame(store.table.to_rgb(store.frames[frame - gap])).ball is None:
            gap += 1
        gaps[gap] = gaps.get(gap, 0) + 1
    return dict(sorted(gaps.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the models' training data folder (held-out episodes are used)")
    parser.add_argument("--checkpoints", default="checkpoints/world_model.pt", help="comma-separated world models")
    parser.add_argument("--contexts", type=int, default=60, help="held-out no-ball contexts (the first N)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for i, path in enumerate(args.checkpoints.split(",")):
        model = load_world_model(path)
        store = held_out_store(model, args.data)
        if i == 0:
            gaps = lost_life_gaps(store)
            print(f"held-out lost lives by frames without a ball before them: {gaps} "
                  f"({sum(gaps.values())} lost lives)")
        waiting, served = ram_serves(store, args.data)
        index = np.flatnonzero(waiting)[:args.contexts]
        context, target = store.batch(index, model.context_length)
        context_t = torch.from_numpy(context)
        lives = [parse_frame(model.table.to_rgb(frame)).lives for frame in context[:, -1]]
        real_ball = np.mean([whole_ball(model.table.to_rgb(frame)) for frame in target])
        print(f"{path}: {len(index)} held-out no-ball contexts, {int(served[index].sum())} of them served "
              f"(a ball in {100 * real_ball:.0f}% of the real next frames)")
        print("| code | meaning | ball appears | lives digit changes |")
        print("|---|---|---|---|")
        free = model.config.codes - model.config.event_codes
        for code in range(model.config.codes):
            predicted = model.predict_ids(context_t, torch.full((len(index),), code)).numpy()
            rgb = model.table.to_rgb(predicted)
            info = [parse_frame(frame) for frame in rgb]
            ball = np.mean([whole_ball(frame) for frame in rgb])
            changed = np.mean([f.lives != before for f, before in zip(info, lives)])
            meaning = "free" if code < free else EVENTS[code - free]
            print(f"| {code} | {meaning} | {100 * ball:.0f}% | {100 * changed:.0f}% |")


if __name__ == "__main__":
    main()
