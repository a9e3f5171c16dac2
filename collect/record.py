"""Record episodes of the real game to disk, in parallel worker processes.

Each episode gets the next free index in the output folder and a seed derived from (seed, index),
so recording again into the same folder adds new episodes and never overwrites one. Files appear
atomically: an interrupted recording (Ctrl-C, kill) leaves only complete episodes.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from collect.atari import ale_of, env_id_for, make_env
from collect.episodes import (
    EpisodeBuilder,
    episode_name,
    load_episode,
    next_index,
    recording_meta,
    remove_stale_temp_files,
)
from collect.policies import POLICIES, make_policy
from worldmodel.video import VIDEO_FORMATS, write_video


@dataclass(frozen=True)
class RecordConfig:
    out: str = field(metadata={"help": "folder to write episodes into (created if missing)", "positional": False})
    policy: str = field(default="random", metadata={"help": "policy that plays", "choices": POLICIES})
    checkpoint: str | None = field(default=None, metadata={"help": "agent checkpoint for --policy agent "
                                                                   "(for example checkpoints/agent.pt)"})
    random_fraction: float = field(default=0.0, metadata={
        "help": "share of whole episodes played by the uniform random policy instead of --policy"})
    tracker_fraction: float = field(default=0.0, metadata={
        "help": "share of whole episodes played by the scripted ball tracker instead of --policy "
                "(it reaches late-game states, few bricks left)"})
    epsilon: float = field(default=0.0, metadata={
        "help": "share of random actions mixed into the steps of non-random episodes"})
    episodes: int = field(default=10, metadata={"help": "number of episodes to record"})
    seed: int = field(default=0, metadata={"help": "base seed; episode i uses a seed derived from (seed, i)"})
    workers: int = field(default=2, metadata={"help": "worker processes (one emulator each)"})
    game: str = field(default="breakout", metadata={"help": "game to record"})
    max_steps: int | None = field(default=None, metadata={"help": "cap on steps per episode (truncates)"})
    preview: bool = field(default=False, metadata={"help": "also write GIF/MP4 previews of the first episodes"})
    preview_count: int = field(default=3, metadata={"help": "how many episodes get a preview"})
    preview_format: str = field(default="gif", metadata={"help": "preview format", "choices": VIDEO_FORMATS})


def episode_seed(base_seed: int, index: int) -> int:
    """A 31-bit seed for episode `index`, distinct across indices and base seeds."""
    return int(np.random.SeedSequence([base_seed, index]).generate_state(1)[0] & 0x7FFFFFFF)


# Worker process state: one env and policy per process, made once.
_worker: dict = {}


def episode_policy(config: RecordConfig, seed: int) -> str:
    """Which policy plays the episode with this seed: random, tracker or `config.policy`."""
    u = np.random.default_rng([seed, 1]).random()
    if u < config.random_fraction:
        return "random"
    if u < config.random_fraction + config.tracker_fraction:
        return "tracker"
    return config.policy


def _init_worker(config: RecordConfig, first_index: int, subprocess: bool = True) -> None:
    if subprocess:
        def stop(signum, frame):  # let `finally` blocks remove temp files when the pool is terminated
            sys.exit(1)

        signal.signal(signal.SIGTERM, stop)
        # Ctrl-C reaches the whole process group. A worker interrupted inside the pool's queue can leave
        # its lock held and hang `pool.terminate()`, so workers ignore it: the parent catches it and
        # terminates the pool, whose SIGTERM lets each worker's `finally` remove its temp file.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if config.policy == "agent":
            import torch

            torch.set_num_threads(1)  # one core per worker
    _worker["first_index"] = first_index
    _worker["env"] = make_env(config.game, max_episode_steps=config.max_steps)
    _worker["policies"] = {}
    _worker["config"] = config


def _policy(name: str, config: RecordConfig):
    if name not in _worker["policies"]:
        _worker["policies"][name] = make_policy(name, config.checkpoint)
    return _worker["policies"][name]


def record_episode(index: int) -> dict:
    """Play one episode with episode index `index` and write it; returns a summary."""
    config: RecordConfig = _worker["config"]
    env = _worker["env"]
    ale = ale_of(env)
    seed = episode_seed(config.seed, index)
    name = episode_policy(config, seed)
    policy = _policy(name, config)
    policy.reset()
    epsilon = config.epsilon if name != "random" else 0.0
    label = name + (f" (epsilon {epsilon:g})" if epsilon else "")
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    builder = EpisodeBuilder(recording_meta(config.game, env_id_for(config.game), seed, label))
    builder.reset(obs, lives=info["lives"], screen=ale.getScreen(), ram=ale.getRAM())
    terminated = truncated = False
    while not (terminated or truncated):
        action = policy.act(obs, rng, info)  # the policy's state follows every frame, even when overridden
        if epsilon and rng.random() < epsilon:
            action = int(rng.integers(env.action_space.n))
        obs, reward, terminated, truncated, info = env.step(action)
        builder.step(action, reward, obs, lives=info["lives"], screen=ale.getScreen(), ram=ale.getRAM())
    path = builder.save(config.out, terminated=terminated, truncated=truncated, index=index)
    preview = None
    if config.preview and index < _worker["first_index"] + config.preview_count:
        preview = write_video(Path(config.out) / "previews" / f"{path.stem}.{config.preview_format}",
                              load_episode(path).frames)
    return dict(path=str(path), steps=len(builder), score=builder.meta.get("score", sum(builder.rewards)),
                bytes=path.stat().st_size, preview=str(preview) if preview else None)


def record(config: RecordConfig, progress: bool = True) -> list[dict]:
    """Record `config.episodes` episodes into `config.out`; returns one summary per episode written."""
    if config.episodes < 1:
        raise ValueError(f"--episodes must be at least 1, got {config.episodes}")
    if config.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {config.workers}")
    for name, value in (("random-fraction", config.random_fraction), ("tracker-fraction", config.tracker_fraction),
                        ("epsilon", config.epsilon)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"--{name} must be between 0 and 1, got {value}")
    if config.random_fraction + config.tracker_fraction > 1.0:
        raise ValueError("--random-fraction and --tracker-fraction add up to more than 1")
    if config.policy != "agent" or config.random_fraction + config.tracker_fraction < 1.0:
        make_policy(config.policy, config.checkpoint)  # fail fast: unknown policy, missing or wrong checkpoint
    env_id_for(config.game)  # and on an unknown game
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out)
    first = next_index(out)
    indices = list(range(first, first + config.episodes))
    workers = min(config.workers, config.episodes)

    from tqdm import tqdm

    results: list[dict] = []
    bar = tqdm(total=config.episodes, unit="ep", disable=not progress, desc=f"record {config.policy}")
    start = time.perf_counter()
    steps = 0

    def on_result(result: dict) -> None:
        nonlocal steps
        results.append(result)
        steps += result["steps"]
        bar.update(1)
        bar.set_postfix(steps=steps, steps_per_s=f"{steps / (time.perf_counter() - start):.0f}")

    previous_term = signal.signal(signal.SIGTERM, lambda s, f: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        if workers == 1:
            _init_worker(config, first, subprocess=False)
            for index in indices:
                on_result(record_episode(index))
        else:
            ctx = mp.get_context("spawn")
            with ctx.Pool(workers, initializer=_init_worker, initargs=(config, first)) as pool:
                try:
                    for result in pool.imap_unordered(record_episode, indices):
                        on_result(result)
                    pool.close()  # a clean exit: workers finish instead of being terminated
                    pool.join()
                except BaseException:
                    pool.terminate()
                    raise
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        bar.close()
    return sorted(results, key=lambda r: r["path"])


__all__ = ["RecordConfig", "episode_name", "episode_seed", "record", "record_episode"]
