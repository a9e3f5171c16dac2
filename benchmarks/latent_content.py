"""What a world model's latent actions carry, read against the emulator's RAM on held-out episodes.

    python benchmarks/latent_content.py --data data/breakout --checkpoints checkpoints/world_model.pt,runs/x/world_model.pt

A latent action is only a control if the real action and what the context shows decide it: that is
all an action map sees. On held-out transitions, latents inferred from the real video (no event
labels), it prints per checkpoint:
- codes in use and the code entropy H (bits);
- the mutual information (bits, plug-in estimate) of the code with the real action, with the paddle's
  step (RAM), with the paddle's position before the step (8 px bins; the decoder sees it in the
  context, so a code that carries it says nothing the decoder needs) and with the ball's step (RAM;
  transitions with a ball in play on both frames);
- controllable: the share of transitions whose code is the most common code of its case (action,
  the paddle's last step, the paddle's position in 8 px bins), fitted on every other held-out
  episode and measured on the others (an unseen case falls back to the action and last step, then
  the action). A rough view of what an action map that reads only the paddle can do; the shipped
  action map, a network that also reads the ball, is at 98.9% on its own held-out transitions.
A latent spent on the paddle has I(code; paddle step) near H and a high controllable share; one
spent on something the controls do not decide (the ball's bounces, a model's own errors) has neither.

`--per-code` also prints, per checkpoint, one row per code: how many transitions take it, the
pixels that change (all, and in the score and lives rows), the paddle's mean and mean absolute step
(RAM), the share with a ball in play after the step, the ball's mean step, and the actions' mix.
A code the paddle decides shows it at once: a no-move code has a mean absolute step near 0, a
left code a negative mean step.
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict

import numpy as np
import torch

from train.action_map import label_latents
from train.evaluate import held_out_store
from train.world_model import store_ram
from worldmodel.breakout import ram_ball_in_play, ram_ball_positions, ram_paddle_x
from worldmodel.world_model import load_world_model


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in estimate of I(a; b) in bits for two integer label arrays of equal length."""
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1)
    joint /= joint.sum()
    outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log2(joint[nz] / outer[nz])).sum())


def entropy(a: np.ndarray) -> float:
    p = np.bincount(np.unique(a, return_inverse=True)[1]) / len(a)
    return float(-(p * np.log2(p)).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the models' training data folder (held-out episodes are used)")
    parser.add_argument("--checkpoints", default="checkpoints/world_model.pt",
                        help="comma-separated world model checkpoints (default: the shipped one)")
    parser.add_argument("--transitions", type=int, default=6000, help="held-out transitions sampled (default 6000)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--per-code", action="store_true", help="also print one row per code (see above)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print("| checkpoint | codes used | H(code) bits | I(code; action) | I(code; paddle step) "
          "| I(code; paddle position) | I(code; ball step) | controllable |")
    print("|---|---|---|---|---|---|---|---|")
    for path in [p.strip() for p in args.checkpoints.split(",") if p.strip()]:
        model = load_world_model(path)
        store = held_out_store(model, args.data)
        ram = store_ram(store, args.data)
        rng = np.random.default_rng(0)
        index = np.sort(rng.choice(len(store), size=min(args.transitions, len(store)), replace=False))
        start = store.starts[index]
        first = np.isin(start, store.offsets[:-1])
        index, start = index[~first], start[~first]  # the paddle's last step needs the frame before
        codes = label_latents(model, store, index, progress=False, desc="codes")
        action = store.actions[index]  # per transition, as `starts`
        x = ram[:, 72].astype(np.int64)  # ram_paddle_x without the offset
        step, last = x[start + 1] - x[start], x[start] - x[start - 1]
        position = np.array([ram_paddle_x(r) for r in ram[start]])
        in_play = ram_ball_in_play(ram)
        ball = in_play[start] & in_play[start + 1]
        ball_step = ram_ball_positions(ram[start + 1]) - ram_ball_positions(ram[start])  # (n, 2)
        ball_key = ball_step[:, 0] * 1000 + ball_step[:, 1]
        episode = store.episode_of_frame[start]
        fit = episode % 2 == 0
        keys = [lambda a, s, p: (a, s, p // 8), lambda a, s, p: (a, s), lambda a, s, p: a]  # finest first
        tables = [defaultdict(Counter) for _ in keys]
        for a, s, p, c in zip(action[fit], last[fit], position[fit], codes[fit]):
            for key, table in zip(keys, tables):
                table[key(a, s, p)][c] += 1

        def guess(a, s, p):  # the most common code of the finest case seen in fitting
            for key, table in zip(keys, tables):
                if key(a, s, p) in table:
                    return table[key(a, s, p)].most_common(1)[0][0]
            return -1

        hits = [guess(a, s, p) == c for a, s, p, c in zip(action[~fit], last[~fit], position[~fit], codes[~fit])]
        print(f"| {path} | {len(np.unique(codes))} of {model.config.codes} | {entropy(codes):.2f} "
              f"| {mutual_information(codes, action):.2f} | {mutual_information(codes, step):.2f} "
              f"| {mutual_information(codes, position // 8):.2f} "
              f"| {mutual_information(codes[ball], ball_key[ball]):.2f} | {100 * np.mean(hits):.1f}% |")
        if args.per_code:
            rows.append(per_code(path, store, start, codes, action, step, in_play[start + 1], ball, ball_step))
    print(f"({len(index)} held-out transitions per checkpoint, {int(ball.sum())} with a ball in play on both frames; "
          f"controllable fitted on {int(fit.sum())}, measured on {int((~fit).sum())})")
    for table in rows:
        print("\n" + table)


def per_code(path: str, store, start: np.ndarray, codes: np.ndarray, action: np.ndarray, step: np.ndarray,
             in_play_after: np.ndarray, ball: np.ndarray, ball_step: np.ndarray) -> str:
    """One markdown row per code: what the transitions that take it look like (see the docstring)."""
    before, after = store.frames[start], store.frames[start + 1]
    changed = (after != before).sum(axis=(1, 2))
    hud = (after[:, :32] != before[:, :32]).sum(axis=(1, 2))  # the score and lives rows
    lines = [f"{path}", "| code | transitions | changed px | HUD changed px | paddle step | paddle abs step "
             "| ball in play after | ball dx | ball dy | NOOP / FIRE / RIGHT / LEFT |", "|---|---|---|---|---|---|---|---|---|---|"]
    for c in np.unique(codes):
        m = codes == c
        b = m & ball
        mix = np.bincount(action[m], minlength=4) / m.sum()
        dx, dy = (f"{ball_step[b, 0].mean():+.2f}", f"{ball_step[b, 1].mean():+.2f}") if b.any() else ("", "")
        lines.append(f"| {c} | {m.sum()} | {changed[m].mean():.1f} | {hud[m].mean():.1f} | {step[m].mean():+.1f} "
                     f"| {np.abs(step[m]).mean():.1f} | {in_play_after[m].mean():.2f} | {dx} | {dy} "
                     f"| {' / '.join(f'{v:.2f}' for v in mix)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
