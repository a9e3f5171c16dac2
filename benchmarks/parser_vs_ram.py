"""The frame parser against the emulator's RAM over many frames of varied play, and its speed.

    python benchmarks/parser_vs_ram.py [--steps 10000]

Plays `--steps` frameskip-4 steps in each style (random, FIRE-heavy, ball tracker, late game with
~12% of the bricks) and prints, per field, the fraction of frames where the parse equals RAM.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import numpy as np

from collect.parser_check import STYLES, ParserReport, play_with_ram
from worldmodel import parse_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10000, help="steps per play style")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    report = ParserReport()
    frames = []
    for i, style in enumerate(STYLES):
        for frame, ram, display_ram in play_with_ram(style, args.steps, args.seed + 1000 * i):
            report.add(frame, ram, display_ram)
            if len(frames) < 2000:
                frames.append(frame)
    start = time.perf_counter()
    for frame in frames:
        parse_frame(frame)
    parse_us = (time.perf_counter() - start) / len(frames) * 1e6

    bricks_left = np.array(report.bricks_left)
    accuracy = report.accuracy()
    print(f"frames {report.frames} ({args.steps} per style: {', '.join(STYLES)}); "
          f"with < 20 bricks left: {(bricks_left < 20).sum()}, all 108: {(bricks_left == 108).sum()}")
    for name, value in accuracy.items():
        print(f"  {name:9s} exact in {100 * value:8.3f}% ({report.frames - report.correct[name]} misses)")
    print(f"misses by field: {dict(Counter(f[0] for f in report.failures))} (first 50 listed)")
    for name, expected, parsed in report.failures[:10]:
        print(f"  {name}: RAM {expected} parsed {parsed}")
    print(f"parse_frame: {parse_us:.0f} us per frame")
    print(json.dumps(dict(frames=report.frames, accuracy=accuracy, parse_us=round(parse_us, 1))))


if __name__ == "__main__":
    main()
