"""Does a ball that blinked out come back? 1-step ball accuracy on the held-out transitions whose
last context frame shows no ball while the two frames before it did, mid-field
(`ball_head.returning_ball`): the real ball hid in a wall or a brick as it bounced, and shows again.

    python benchmarks/ball_returns.py --data data/breakout [--checkpoint PATH]

Latents are inferred from the real video, as in `evaluate world-model`'s 1-step metrics. Each
transition is predicted twice by the same checkpoint: with its return head
(`WorldModelConfig.use_return_head`) and without it, where the decoder alone decides whether a ball
shows and `place_ball` draws it. Printed: the transitions, how often the real next frame shows the
ball, and for each setting how often the generated one does, and shows it within 1 px of the real one.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from train.evaluate import held_out_store
from worldmodel.ball_head import returning_ball
from worldmodel.breakout import parse_frame
from worldmodel.world_model import load_world_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the model's training data folder (held-out episodes are used)")
    parser.add_argument("--checkpoint", default=None, help="world model with a return head (default: the shipped one)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_world_model(args.checkpoint)
    if model.return_head is None:
        raise SystemExit(f"{args.checkpoint or 'the shipped checkpoint'}: no return head (train ball-head --returns)")
    without = model.with_settings(use_return_head=False)
    store = held_out_store(model, args.data)
    balls = [parse_frame(store.table.to_rgb(frame)).ball for frame in store.frames]
    first = store.offsets[store.episode_of_frame[store.starts]]
    index = np.array([j for j, t in enumerate(store.starts) if t - 2 >= first[j] and balls[t] is None
                      and returning_ball(balls[t - 2], balls[t - 1])], dtype=np.int64)
    if not len(index):
        raise SystemExit(f"{args.data}: no held-out blink")
    real = [balls[store.starts[j] + 1] for j in index]
    print(f"{len(index)} held-out transitions after a blink (the ball shown 2 and 1 frames back, not in the last); "
          f"the real next frame shows the ball in {sum(b is not None for b in real)}")
    for name, m in (("return head", model), ("decoder (place_ball)", without)):
        shown = near = 0
        for chunk in np.array_split(np.arange(len(index)), max(1, len(index) // 32)):
            context, target = store.batch(index[chunk], 3)
            context_t, target_t = torch.from_numpy(context), torch.from_numpy(target)
            latent = m.infer_latent_ids(context_t, target_t)
            generated = m.predict_ids(context_t[:, -m.context_length:], latent).numpy()
            for i, frame in zip(chunk, generated):
                ball = parse_frame(m.table.to_rgb(frame)).ball
                shown += ball is not None
                near += ball is not None and real[i] is not None and max(abs(ball[0] - real[i][0]),
                                                                          abs(ball[1] - real[i][1])) <= 1
        with_ball = sum(b is not None for b in real)
        print(f"{name}: a ball shown in {shown} of {len(index)} ({100 * shown / len(index):.1f}%), within 1 px of "
              f"the real one in {near} of {with_ball} ({100 * near / max(with_ball, 1):.1f}%)")


if __name__ == "__main__":
    main()
