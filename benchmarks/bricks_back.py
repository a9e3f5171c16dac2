"""Does a brick ever come back in the recorded games? The check behind `WorldModelConfig.keep_gaps`.

    python benchmarks/bricks_back.py --data data/breakout [--every 2]

Reads every `--every`-th episode's frames with the frame parser and counts the transitions whose
next frame shows a brick in a cell the frame before shows empty, and among them those that show a
new wall (over 100 bricks).
"""

from __future__ import annotations

import argparse

from collect.episodes import list_episodes, load_episode
from worldmodel.breakout import parse_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder of recorded episodes")
    parser.add_argument("--every", type=int, default=2, help="read every N-th episode (default 2)")
    args = parser.parse_args()

    transitions = back = walls = 0
    paths = list_episodes(args.data)[::args.every]
    for path in paths:
        bricks = [parse_frame(frame).bricks for frame in load_episode(path).frames]
        for before, after in zip(bricks, bricks[1:]):
            transitions += 1
            if (after & ~before).any():
                back += 1
                walls += int(after.sum() > 100)
    print(f"{len(paths)} episodes, {transitions} transitions: a brick comes back in {back} "
          f"(a new wall in {walls})")


if __name__ == "__main__":
    main()
