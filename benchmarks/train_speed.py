"""How fast do the world model and its ball head train on this CPU, in float32 and with `--bf16`
(bfloat16 autocast)?

    python benchmarks/train_speed.py --data data/breakout [--updates 20] [--unroll-steps 4] [--float32-only]
                                     [--width 32] [--encoder-width N]

Times the shipped architecture's training updates (batch 24, the `train world-model` defaults; `--width`
and `--encoder-width` for others) on the same batches in one run, first without unrolls (the loss's
forward, backward and the optimizer step), then the unrolled contexts' making (`sample_batch` rolling
the model out 1 to `--unroll-steps` steps), in float32 and in bfloat16 autocast, then the ball head's
updates (`train ball-head`, random inputs of the shipped head's shape), and prints the rates and
their ratios. The first two updates of each setting are left out (warm-up). `--float32-only` skips
the bf16 settings, which take minutes on a CPU that emulates bfloat16 (no avx512_bf16).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from train.world_model import WorldModelTrainConfig, load_split, sample_batch
from worldmodel.ball_head import BallHead, BallHeadConfig
from worldmodel.world_model import WorldModel


def updates_per_s(module: torch.nn.Module, losses: list, bf16: bool) -> float:
    """Training updates a second of `module`: each of `losses` (callables returning (loss, metrics))
    forward in bfloat16 autocast or not, backward, an AdamW step; the first two left out (warm-up)."""
    optimizer, times = torch.optim.AdamW(module.parameters(), lr=1e-4), []
    for loss_of in losses:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = loss_of()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return 1 / np.mean(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder of recorded episodes")
    parser.add_argument("--updates", type=int, default=20, help="timed updates per setting (default 20)")
    parser.add_argument("--unroll-steps", type=int, default=4, help="steps of the timed unrolls (default 4)")
    parser.add_argument("--episodes", type=int, default=12, help="episodes to read (default 12)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--width", type=int, default=32, help="the decoder's width (default 32, the shipped one)")
    parser.add_argument("--encoder-width", type=int, default=None, help="the encoder's width (default: --width)")
    parser.add_argument("--float32-only", action="store_true", help="time float32 only, not bf16 autocast")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = WorldModelTrainConfig(data=args.data, max_episodes=args.episodes, width=args.width,
                                   encoder_width=args.encoder_width)
    train, _ = load_split(config, progress=False)
    torch.manual_seed(0)
    model = WorldModel(config.model_config(train.table.colors))
    rng = np.random.default_rng(0)
    batches = [sample_batch(train, model, config, rng, unroll=False)[:3] for _ in range(args.updates + 2)]
    rates = {}
    settings = (False,) if args.float32_only else (False, True)
    for bf16 in settings:
        rates[("update", bf16)] = updates_per_s(model, [lambda c=c, t=t, s=s: model.loss(c, t, false_changes=s)
                                                        for c, t, s in batches], bf16)
        unroll = dataclasses.replace(config, unroll_steps=args.unroll_steps, bf16=bf16)
        unroll_rng, times = np.random.default_rng(1), []
        for _ in range(args.updates + 2):  # each rolls out 1..--unroll-steps steps, as in training
            start = time.perf_counter()
            sample_batch(train, model, unroll, unroll_rng, unroll=True)
            times.append(time.perf_counter() - start)
        rates[("unroll", bf16)] = 1 / np.mean(times[2:])
    head = BallHead(BallHeadConfig(width=32, first_ball=True))  # the shipped ball head's shape
    x = torch.rand(128, head.config.channels, head.config.window, head.config.window).round()
    target = torch.randint(head.config.positions + 1, (128,))
    for bf16 in settings:
        rates[("head", bf16)] = updates_per_s(head, [lambda: head.loss(x, target)] * (4 * args.updates + 2), bf16)
    for kind, label in (("update", "updates/s (forward, backward, step)"),
                        ("unroll", f"unrolled contexts/s (1..{args.unroll_steps} steps)"),
                        ("head", "ball head updates/s (batch 128, width 32, first ball)")):
        line = f"{label}: float32 {rates[(kind, False)]:.2f}"
        if not args.float32_only:
            line += f", bf16 autocast {rates[(kind, True)]:.2f}, ratio {rates[(kind, True)] / rates[(kind, False)]:.2f}"
        print(line)


if __name__ == "__main__":
    main()
