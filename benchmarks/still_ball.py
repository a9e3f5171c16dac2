"""How long the real ball stays at one place, read by the frame parser from recorded episodes: the
check behind `breakout.STILL_FRAMES`, which makes `BallMemory` take a ball parsed at one place that
many frames running for no ball (a brick stub the world model leaves behind).

    python benchmarks/still_ball.py --data data/breakout [--episodes N]

Prints how many frames with a ball show it where the frame before did, the longest such run, and
how many `BallMemory` states the rule changes (none if no run reaches `STILL_FRAMES` frames).
"""

from __future__ import annotations

import argparse
from collections import Counter

from tqdm import tqdm

from collect.episodes import list_episodes, load_episode
from worldmodel.breakout import STILL_FRAMES, parse_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a folder of recorded episodes")
    parser.add_argument("--episodes", type=int, default=None, help="first N episodes (default all)")
    args = parser.parse_args()
    try:
        paths = list_episodes(args.data)[:args.episodes]
    except FileNotFoundError as error:
        parser.error(f"--data: {error}")
    if not paths:
        parser.error(f"--data: no episodes in {args.data}")
    with_ball = repeats = states = 0
    runs = Counter()  # frames running at one place -> how many times
    for path in tqdm(paths, desc="episodes", unit="ep"):
        infos = [parse_frame(frame) for frame in load_episode(path).frames]
        run = 1
        for before, after in zip(infos[:-1], infos[1:]):
            with_ball += after.ball is not None
            if after.ball is not None and after.ball == before.ball:
                repeats += 1
                run += 1
            else:
                runs[run] += run > 1
                run = 1
        runs[run] += run > 1
        states += len(infos)
    longest = max((r for r, n in runs.items() if n), default=1)
    print(f"{len(paths)} episodes: {with_ball} frames with a ball, {repeats} at the place of the frame before; "
          f"runs at one place: {dict(sorted((r, n) for r, n in runs.items() if n))}; longest {longest} frames "
          f"(STILL_FRAMES = {STILL_FRAMES})")
    # a run of STILL_FRAMES frames at one place is the only thing the rule reads
    verdict = "none" if longest < STILL_FRAMES else "some (a run reaches STILL_FRAMES)"
    print(f"BallMemory states the rule changes: {verdict}, of {states}")


if __name__ == "__main__":
    main()
