"""How far the paddle moves in one step, read from the emulator's RAM, and how much of it what a model
sees decides.

    python benchmarks/paddle_steps.py --data data/breakout [--episodes N] [--horizon 32]

The paddle has momentum: its step depends on the action and on emulator state. For each kind of
knowledge this fits the most common step of each case (action, the paddle's last step, ...) on half
of the episodes and reports the share of the other half's transitions that it places within 1 px
(a case unseen in the first half falls back to the action and last step). That is about the best
any predictor with that knowledge can do:
- the action and the last step;
- the action, the last step and the paddle's position: what a 2-frame world model and action map see;
- the same and the action before: what an action map fed the last action could see;
- the action, the last two steps and the position: a 3-frame context.
Then the second and third tables rolled out open loop on their own paddle for `--horizon` steps, as
the env's controlled rollouts (`evaluate play`) run: what that knowledge allows over a segment, where
one step off leaves the paddle off until a wall stops both. The third is the action map's paddle
table (`train action-paddle`): the env knows the action before, and it carries the paddle's
momentum, which two frames do not show.
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict

import numpy as np

from collect.episodes import list_episodes, load_episode
from worldmodel.breakout import ACTION_MEANINGS, ram_paddle_x

KNOWLEDGE = {
    "action, last step": lambda a, s, x, t: (a[t], s[t - 1]),
    "action, last step, position (2 frames)": lambda a, s, x, t: (a[t], s[t - 1], x[t]),
    "2 frames and the action before": lambda a, s, x, t: (a[t], s[t - 1], x[t], a[t - 1]),
    "action, last two steps, position (3 frames)": lambda a, s, x, t: (a[t], s[t - 2], s[t - 1], x[t]),
}


def episodes(paths):
    for path in paths:
        episode = load_episode(path, decode_frames=False)
        x = np.array([ram_paddle_x(ram) for ram in episode.ram])
        yield episode.actions.astype(int), np.diff(x), x  # step[t]: frame t -> t + 1, under actions[t]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder of recorded episodes")
    parser.add_argument("--episodes", type=int, default=80, help="first N episodes to read (default 80)")
    parser.add_argument("--horizon", type=int, default=32, help="steps of the open-loop rollouts (0: none)")
    args = parser.parse_args()
    paths = list_episodes(args.data)[:args.episodes]
    if len(paths) < 2:
        parser.error(f"--data: needs at least 2 episode files in {args.data}")
    fit, test = paths[0::2], paths[1::2]
    counts = {name: defaultdict(Counter) for name in KNOWLEDGE}
    steps_per_action: dict[int, set] = defaultdict(set)
    for a, s, x in episodes(fit):
        for t in range(2, len(s)):
            steps_per_action[a[t]].add(int(s[t]))
            for name, key in KNOWLEDGE.items():
                counts[name][key(a, s, x, t)][int(s[t])] += 1
    guess = {name: {k: c.most_common(1)[0][0] for k, c in table.items()} for name, table in counts.items()}
    fallback = guess["action, last step"]
    hits, n = Counter(), 0
    for a, s, x in episodes(test):
        for t in range(2, len(s)):
            n += 1
            for name, key in KNOWLEDGE.items():
                g = guess[name].get(key(a, s, x, t), fallback.get((a[t], s[t - 1]), 0))
                hits[name] += abs(g - int(s[t])) <= 1
    print(f"fitted on {len(fit)} episodes, measured on {n} transitions of {len(test)} others")
    print("distinct steps per action: " + ", ".join(f"{ACTION_MEANINGS[a]} {len(v)}"
                                                     for a, v in sorted(steps_per_action.items())))
    print("| knowledge | cases | paddle within 1 px after one step |")
    print("|---|---|---|")
    for name in KNOWLEDGE:
        print(f"| {name} | {len(guess[name])} | {100 * hits[name] / n:.1f}% |")
    if args.horizon:
        print(f"open loop, {args.horizon} steps from every {args.horizon}th frame of the measured episodes, each "
              f"table fed its own paddle:")
        for name in ("action, last step, position (2 frames)", "2 frames and the action before"):
            rolled = open_loop(guess[name], KNOWLEDGE[name], fallback, episodes(test), args.horizon)
            print(f"- {name}: within 1 px in {100 * rolled['within_1px']:.1f}% of {rolled['steps']} steps "
                  f"({rolled['segments']} segments); after the last step {100 * rolled['at_horizon']:.1f}%")


def open_loop(guess: dict, key, fallback: dict, test, horizon: int) -> dict:
    """A table rolled out on its own paddle, as a world model and action map with that knowledge must
    roll out: from the real paddle of two frames, the recorded actions, each step the table's guess
    for its own last step and position (`key`, as in KNOWLEDGE; a case it lacks falls back to the
    action and last step). Every `horizon`-th frame starts a segment of `horizon` steps."""
    near, last_near, segments = [], [], 0
    for a, s, x in test:
        low, high = int(x.min()), int(x.max())
        for t0 in range(2, len(s) - horizon, horizon):
            position, step = int(x[t0]), int(s[t0 - 1])
            own = np.array(s, copy=True)  # the rolled-out steps, for keys that read the last step
            pos = np.array(x, copy=True)
            segments += 1
            for t in range(t0, t0 + horizon):
                own[t - 1], pos[t] = step, position
                guessed = guess.get(key(a, own, pos, t), fallback.get((a[t], step), 0))
                moved = min(max(position + guessed, low), high)  # the walls stop it
                step, position = moved - position, moved
                near.append(abs(position - int(x[t + 1])) <= 1)
            last_near.append(near[-1])
    return dict(within_1px=float(np.mean(near)), at_horizon=float(np.mean(last_near)), steps=len(near),
                segments=segments)


if __name__ == "__main__":
    main()
