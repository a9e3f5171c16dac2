"""Agent training throughput: environment steps/s and gradient updates/s, measured in one run.

    python benchmarks/agent_throughput.py [--steps 20000]

Runs `train agent` with the default (shipped) settings but a short budget in a temporary folder:
the first `learning_starts` steps only collect; after that each 4 environment steps (one vector
step of 4 envs) are overlapped with one Double-DQN update on a prioritized batch of 32. Prints the
collect-only rate, the training rate (steps/s and updates/s) and the bare emulator's rate through
the same preprocessing in one process, for reference.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from collect.agent_env import make_agent_env
from train.agent import AgentConfig, train_agent


def bare_agent_env_steps_per_s(steps: int) -> float:
    env = make_agent_env(seed=0)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(4)))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20_000, help="training steps after collection (default 20000)")
    parser.add_argument("--learning-starts", type=int, default=5_000, help="collect-only steps (default 5000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        collect = AgentConfig(out=f"{tmp}/a", steps=args.learning_starts, learning_starts=args.learning_starts,
                              buffer_size=100_000, wandb=False, eval_every=10**9)
        start = time.perf_counter()
        train_agent(collect, progress=False)
        collect_rate = args.learning_starts / (time.perf_counter() - start)
        config = AgentConfig(out=f"{tmp}/b", steps=args.learning_starts + args.steps,
                             learning_starts=args.learning_starts, buffer_size=100_000, wandb=False, eval_every=10**9)
        start = time.perf_counter()
        summary = train_agent(config, progress=False)
        elapsed = time.perf_counter() - start
    train_seconds = elapsed - args.learning_starts / collect_rate  # the collect-only prefix, timed above
    result = dict(
        collect_only_steps_per_s=collect_rate,
        training_steps_per_s=args.steps / train_seconds,
        updates_per_s=summary["updates"] / train_seconds,
        batch_size=config.batch_size, n_envs=config.n_envs,
        bare_agent_env_steps_per_s_one_process=bare_agent_env_steps_per_s(5_000),
    )
    print(f"collect only:  {result['collect_only_steps_per_s']:.0f} env steps/s ({config.n_envs} envs)")
    print(f"training:      {result['training_steps_per_s']:.0f} env steps/s and {result['updates_per_s']:.1f} "
          f"updates/s (batch {config.batch_size})")
    print(f"reference:     {result['bare_agent_env_steps_per_s_one_process']:.0f} steps/s, one preprocessed env, "
          f"random actions, no learning")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
