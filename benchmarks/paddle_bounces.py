"""Do the frames decide a paddle bounce, or does a hidden hit count? Read from the emulator's RAM.

    python benchmarks/paddle_bounces.py --data data/breakout

The Atari 2600 game is said to change its rebound angles after the 8th, 16th and 48th paddle hit,
which no three frames show. This benchmark asks the recorded games how much of a paddle bounce's
outcome that hidden count explains. A paddle bounce is a step whose ball (RAM) moved down the step
before, moves up in this one, and was below y = 150 at its start, with the ball in play over the
three frames before and the next. Its outcome is the ball's step (dx, dy); what the frames show is
the key: the ball's last step, its y, its x relative to the paddle, and the paddle's step (the
latent action's doing).

Two measures, each with and without the hit count added to the key:
- a table of the most common outcome per key, fitted on the training episodes and measured on the
  held-out ones (every 10th, as the world model holds them out): its coverage and how often it is
  right within 1 px where it covers;
- the same table's agreement with all the bounces it was fitted on, against the same extra key
  shuffled among the bounces of each plain key (a finer key agrees more by chance alone: the
  shuffled figure is that chance).
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from collect.episodes import load_episode
from worldmodel.breakout import ram_ball_in_play, ram_ball_positions, ram_paddle_x

LOW = 150  # a bounce's ball is below this y (the paddle's rows are at 189 to 192)
CAP = 60  # hit counts above this share a key


def paddle_bounces(folder: Path, holdout_every: int = 10) -> list[dict]:
    """Every paddle bounce of the folder's episodes, with what the frames show and the hit counts."""
    rows = []
    names = sorted(p.name for p in folder.glob("episode-*.npz"))
    if not names:
        raise SystemExit(f"--data {folder}: no episode-*.npz files")
    for e, name in enumerate(names):
        ram = load_episode(folder / name, decode_frames=False).ram.astype(np.int64)
        ball = ram_ball_positions(ram)
        play = ram_ball_in_play(ram)
        paddle = np.array([ram_paddle_x(r) for r in ram])
        since_serve = in_episode = 0
        for t in range(2, len(ram) - 1):
            if not play[t]:
                since_serve = 0
            if not play[t - 2:t + 2].all():
                continue
            step, before = ball[t + 1] - ball[t], ball[t] - ball[t - 1]
            if abs(step[0]) > 20 or abs(before[0]) > 20:  # the ball left through a wall's gap or reappeared
                continue
            if before[1] > 0 and step[1] < 0 and ball[t][1] > LOW:
                rows.append(dict(held=e % holdout_every == 0, last_step=tuple(before), y=int(ball[t][1]),
                                 x_on_paddle=int(ball[t][0] - paddle[t]), paddle_step=int(paddle[t + 1] - paddle[t]),
                                 since_serve=min(since_serve, CAP), in_episode=min(in_episode, CAP),
                                 outcome=tuple(step)))
                since_serve += 1
                in_episode += 1
    return rows


def near(a: tuple, b: tuple) -> bool:
    return abs(a[0] - b[0]) <= 1 and abs(a[1] - b[1]) <= 1


def fit(rows: list[dict], keys: list) -> dict:
    """The most common outcome of each key (`keys[i]` is row i's) among the given rows."""
    table = defaultdict(Counter)
    for r, k in zip(rows, keys):
        table[k][r["outcome"]] += 1
    return {k: c.most_common(1)[0][0] for k, c in table.items()}


def right_share(rows: list[dict], table: dict, keys: list) -> float:
    """Share of the rows within 1 px of the table's outcome for their key."""
    return sum(near(table[k], r["outcome"]) for r, k in zip(rows, keys)) / max(1, len(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder of recorded episodes (with RAM)")
    parser.add_argument("--shuffles", type=int, default=5, help="shuffles of the extra key for the chance figure")
    args = parser.parse_args()
    rows = paddle_bounces(Path(args.data))
    print(f"{len(rows)} paddle bounces, {sum(r['held'] for r in rows)} of them in held-out episodes")

    def plain(r):
        return r["last_step"], r["y"], r["x_on_paddle"], r["paddle_step"]

    extras = {
        "hits since the serve": lambda r: r["since_serve"],
        "hits since the serve: <8, 8-15, 16-47, 48+": lambda r: sum(r["since_serve"] >= c for c in (8, 16, 48)),
        "hits in the episode": lambda r: r["in_episode"],
    }
    print("\nheld-out table (fitted on training episodes):")
    print(f"| key | keys | covers | within 1 px where it covers | the frames' key on the same bounces |\n"
          f"|---|---|---|---|---|")
    keys = {"ball's step, y, x on the paddle (no paddle step)": lambda r: plain(r)[:3], "the frames' key": plain}
    keys.update({f"the frames' key + {name}": (lambda r, f=f: (*plain(r), f(r))) for name, f in extras.items()})
    train = [r for r in rows if not r["held"]]
    held = [r for r in rows if r["held"]]
    base = fit(train, [plain(r) for r in train])
    for name, key in keys.items():
        table = fit(train, [key(r) for r in train])
        covered = [r for r in held if key(r) in table and plain(r) in base]
        print(f"| {name} | {len(table)} | {len(covered) / len(held):.1%} | "
              f"{right_share(covered, table, [key(r) for r in covered]):.1%} | "
              f"{right_share(covered, base, [plain(r) for r in covered]):.1%} |")

    print("\nagreement with the bounces the table was fitted on (all episodes), real extra key vs shuffled:")
    print(f"| key | within 1 px | shuffled within each plain key |\n|---|---|---|")

    def agreement(keys: list) -> float:  # fitted on and measured over all rows
        return right_share(rows, fit(rows, keys), keys)

    print(f"| the frames' key | {agreement([plain(r) for r in rows]):.1%} | |")
    groups = defaultdict(list)
    for i, r in enumerate(rows):
        groups[plain(r)].append(i)
    for name, f in extras.items():
        values = [f(r) for r in rows]
        real = agreement([(*plain(r), v) for r, v in zip(rows, values)])
        chance = []
        for seed in range(args.shuffles):
            rng = np.random.default_rng(seed)
            shuffled = list(values)
            for members in groups.values():
                for i, j in zip(members, rng.permutation(members)):
                    shuffled[i] = values[j]
            chance.append(agreement([(*plain(r), v) for r, v in zip(rows, shuffled)]))
        print(f"| + {name} | {real:.1%} | {np.mean(chance):.1%} |")


if __name__ == "__main__":
    main()
