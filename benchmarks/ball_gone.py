"""Where does the real ball disappear? The row of the last ball seen, for each recorded transition
whose next frame shows no ball, split by how long the ball stays gone.

    python benchmarks/ball_gone.py --data data/breakout [--episodes 60] [--lasting 3]

A ball gone for `--lasting` frames or more is lost for good (a missed ball: the game waits for FIRE);
a shorter absence is a blink, where the frame parser sees no ball for a frame or two and then the
ball again. The training episodes of the world model's split are read (every tenth episode is held
out), one in three of the first `--episodes`. `WorldModelConfig.ball_blips` and
`breakout.BALL_LOST_TOP` are set from this table.
"""

from __future__ import annotations

import argparse
from collections import Counter

from collect.episodes import list_episodes, load_episode
from worldmodel.breakout import BALL_LOST_TOP, parse_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder of recorded episodes")
    parser.add_argument("--episodes", type=int, default=60, help="read one in three of the first N episodes")
    parser.add_argument("--lasting", type=int, default=3, help="frames without a ball that make a ball lost")
    args = parser.parse_args()

    paths = [p for i, p in enumerate(list_episodes(args.data)[:args.episodes]) if i % 10 and i % 3 == 1]
    lost, blinks, transitions = Counter(), Counter(), 0
    for path in paths:
        balls = [parse_frame(frame).ball for frame in load_episode(path).frames]
        transitions += len(balls) - 1
        for t in range(len(balls) - args.lasting):
            if balls[t] is None or balls[t + 1] is not None:
                continue
            gone_for_good = all(b is None for b in balls[t + 1:t + 1 + args.lasting])
            (lost if gone_for_good else blinks)[balls[t][1] // 10 * 10] += 1
    print(f"{len(paths)} training episodes, {transitions} transitions: the ball is lost {sum(lost.values())} times, "
          f"blinks out {sum(blinks.values())} times ({100 * sum(blinks.values()) / max(transitions, 1):.2f}% of "
          f"transitions)")
    print("| last ball's row | lost (gone >= %d frames) | blinks |" % args.lasting)
    print("|---|---|---|")
    for row in sorted(set(lost) | set(blinks)):
        print(f"| {row}-{row + 9} | {lost[row]} | {blinks[row]} |")
    high = sum(v for row, v in lost.items() if row < BALL_LOST_TOP)
    print(f"lost above row {BALL_LOST_TOP} (breakout.BALL_LOST_TOP): {high} of {sum(lost.values())}")


if __name__ == "__main__":
    main()
