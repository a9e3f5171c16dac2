"""Does a brick ever come back in the recorded games, and does a step ever take two? The checks
behind `WorldModelConfig.keep_gaps` and `WorldModelConfig.one_brick`.

    python benchmarks/bricks_back.py --data data/breakout [--every 2]

Reads every `--every`-th episode's frames from the second on (with the default 2, none of the
world model's held-out episodes, every 10th from the first) with the frame parser. Counts the
transitions whose next frame shows a brick in a cell the frame before shows empty, and among them
those that show a new wall (over 100 bricks); then how many bricks each transition removes.
"""

from __future__ import annotations

import argparse
from collections import Counter

from collect.episodes import list_episodes, load_episode
from worldmodel.breakout import parse_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder of recorded episodes")
    parser.add_argument("--every", type=int, default=2, help="read every N-th episode (default 2)")
    args = parser.parse_args()

    transitions = back = walls = 0
    removed = Counter()
    paths = list_episodes(args.data)[1::args.every]
    for path in paths:
        bricks = [parse_frame(frame).bricks for frame in load_episode(path).frames]
        for before, after in zip(bricks, bricks[1:]):
            transitions += 1
            removed[int((before & ~after).sum())] += 1
            if (after & ~before).any():
                back += 1
                walls += int(after.sum() > 100)
    print(f"{len(paths)} episodes, {transitions} transitions: a brick comes back in {back} "
          f"(a new wall in {walls})")
    print("bricks removed by a transition: " + ", ".join(f"{k}: {v}" for k, v in sorted(removed.items())))


if __name__ == "__main__":
    main()
