"""Recording throughput against the bare emulator, measured in one run.

    python benchmarks/record_speed.py [--episodes 120] [--workers 2]

Times (1) the bare emulator: one process stepping ALE/Breakout-v5 with random actions, nothing
stored; (2) `neural-breakout record --policy random` with its worker processes, compression and
atomic writes included (process start-up too). Prints both, their ratio, and bytes per frame.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from collect.atari import make_env
from collect.datainfo import dataset_info
from collect.record import RecordConfig, record


def bare_emulator_steps_per_s(steps: int, seed: int = 0) -> float:
    env = make_env(seed=seed)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(4)))
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=120, help="episodes to record (random policy)")
    parser.add_argument("--workers", type=int, default=2, help="recorder worker processes")
    parser.add_argument("--emulator-steps", type=int, default=20000, help="steps for the bare emulator timing")
    args = parser.parse_args()

    emulator = bare_emulator_steps_per_s(args.emulator_steps)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        results = record(RecordConfig(out=out, episodes=args.episodes, workers=args.workers, seed=123),
                         progress=False)
        elapsed = time.perf_counter() - start
        info = dataset_info(out)
    steps = sum(r["steps"] for r in results)
    recorder = steps / elapsed
    report = dict(
        emulator_steps_per_s=round(emulator, 1),
        recorder_steps_per_s=round(recorder, 1),
        recorder_workers=args.workers,
        ratio_recorder_to_emulator=round(recorder / emulator, 3),
        recorded_steps=steps,
        recorded_episodes=len(results),
        wall_s=round(elapsed, 2),
        bytes_per_frame=round(info["bytes_per_frame"], 1),
    )
    print(f"bare emulator (1 process)          {emulator:8.0f} steps/s")
    print(f"recorder ({args.workers} workers, compress+write) {recorder:8.0f} steps/s  "
          f"({steps} steps in {elapsed:.1f} s, start-up included)")
    print(f"ratio recorder / emulator          {recorder / emulator:8.2f}")
    print(f"storage                            {info['bytes_per_frame']:8.1f} bytes/frame (raw RGB 100800)")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
