"""How far the paddle moves in one step, read from the emulator's RAM, and how much of it the action
and the last step decide.

    python benchmarks/paddle_steps.py --data data/breakout [--episodes N]

The paddle has momentum: its step depends on the action and on emulator state that one frame pair
may not show. For each action this prints the most common steps, and the best share of transitions
that any predictor could place within 1 px when it knows only the action and the paddle's last step
(what a 2-frame world model and action map see), or also the step before (3 frames). The world
model's latent must carry the rest, so this also counts the distinct steps a latent would need.
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict

import numpy as np

from collect.episodes import list_episodes, load_episode
from worldmodel.breakout import ACTION_MEANINGS, ram_paddle_x


def best_within_1px(groups: dict[tuple, Counter]) -> float:
    """Share of transitions placed within 1 px by the best single guess per group."""
    hit = total = 0
    for counts in groups.values():
        total += sum(counts.values())
        hit += max(sum(n for step, n in counts.items() if abs(step - guess) <= 1) for guess in counts)
    return hit / max(1, total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder of recorded episodes")
    parser.add_argument("--episodes", type=int, default=40, help="first N episodes to read (default 40)")
    args = parser.parse_args()
    paths = list_episodes(args.data)[:args.episodes]
    if not paths:
        parser.error(f"--data: no episode files in {args.data}")
    steps: dict[int, Counter] = defaultdict(Counter)
    given_last: dict[int, dict[tuple, Counter]] = defaultdict(lambda: defaultdict(Counter))
    given_two: dict[int, dict[tuple, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for path in paths:
        episode = load_episode(path, decode_frames=False)
        x = np.array([ram_paddle_x(ram) for ram in episode.ram])
        step = np.diff(x)  # step[t]: frame t -> t + 1, under actions[t]
        for t in range(2, len(step)):
            a = int(episode.actions[t])
            steps[a][int(step[t])] += 1
            given_last[a][(int(step[t - 1]),)][int(step[t])] += 1
            given_two[a][(int(step[t - 2]), int(step[t - 1]))][int(step[t])] += 1
    print(f"{len(paths)} episodes, {sum(sum(c.values()) for c in steps.values())} transitions")
    print("| action | transitions | distinct steps | most common steps (px: share) | best within 1 px, knowing "
          "the last step | knowing the last two |")
    print("|---|---|---|---|---|---|")
    for a in sorted(steps):
        counts = steps[a]
        n = sum(counts.values())
        common = ", ".join(f"{s:+d}: {100 * c / n:.0f}%" for s, c in counts.most_common(6))
        print(f"| {ACTION_MEANINGS[a]} | {n} | {len(counts)} | {common} | {100 * best_within_1px(given_last[a]):.1f}% "
              f"| {100 * best_within_1px(given_two[a]):.1f}% |")
    everything_last = {(a, *k): v for a in given_last for k, v in given_last[a].items()}
    everything_two = {(a, *k): v for a in given_two for k, v in given_two[a].items()}
    print(f"all actions: best within 1 px knowing the last step {100 * best_within_1px(everything_last):.1f}%, "
          f"the last two {100 * best_within_1px(everything_two):.1f}%")


if __name__ == "__main__":
    main()
