"""Record the neural game played by a policy as a GIF or MP4, optionally next to the real emulator fed
the same actions (`--side-by-side`: neural | real, both started from the same real frames).

    neural-breakout rollout --policy tracker --steps 300 --out neural.gif --side-by-side
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from collect.policies import POLICIES, make_policy
from worldmodel.breakout import NOOP
from worldmodel.video import VIDEO_FORMATS, write_video

SEPARATOR = 4  # white columns between the neural and the real frame


@dataclass(frozen=True)
class RolloutConfig:
    out: str = field(default="neural-breakout.gif", metadata={"help": "video to write (.gif or .mp4)"})
    policy: str = field(default="tracker", metadata={"help": "who plays", "choices": POLICIES})
    steps: int = field(default=300, metadata={"help": "env steps to record"})
    side_by_side: bool = field(default=False, metadata={"help": "show the real emulator fed the same actions "
                                                                "next to the neural game (neural | real)"})
    seed: int = field(default=0, metadata={"help": "seed of the start state, the real game and the policy"})
    agent_checkpoint: str = field(default="checkpoints/agent.pt", metadata={"help": "agent for --policy agent"})
    epsilon: float = field(default=0.0, metadata={"help": "random-action share mixed into the policy"})
    checkpoint: str | None = field(default=None, metadata={"help": "world model (default: the shipped one)"})
    action_map: str | None = field(default=None, metadata={"help": "action map (default: the shipped one)"})
    start_states: str | None = field(default=None, metadata={"help": "start-state bank (default: the shipped one)"})
    sample: bool = field(default=False, metadata={"help": "sample latent actions instead of the most likely one"})
    fps: float = field(default=15.0, metadata={"help": "frames per second of the video"})
    scale: int = field(default=2, metadata={"help": "integer upscaling of the video frames"})


def real_start(env, seed: int, k: int) -> list[np.ndarray]:
    """Reset the emulator and take k-1 NOOP steps: the k real frames both games start from."""
    obs, _ = env.reset(seed=seed)
    frames = [obs]
    for _ in range(k - 1):
        obs, *_ = env.step(NOOP)
        frames.append(obs)
    return frames


def rollout(config: RolloutConfig, progress: bool = True) -> dict:
    from tqdm import tqdm

    from collect.atari import make_env
    from worldmodel.env import NeuralBreakoutEnv

    out = Path(config.out)
    if out.suffix.lower().lstrip(".") not in VIDEO_FORMATS:
        raise ValueError(f"--out {out}: use a .gif or .mp4 file name")
    if config.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {config.steps}")
    if config.scale < 1:
        raise ValueError(f"--scale must be at least 1, got {config.scale}")
    start = time.time()
    env = NeuralBreakoutEnv(config.checkpoint, config.action_map, config.start_states, sample=config.sample)
    k = env.context_length
    policy = make_policy(config.policy, config.agent_checkpoint if config.policy == "agent" else None,
                         config.epsilon)
    rng = np.random.default_rng(config.seed)
    real = make_env() if config.side_by_side else None
    games = 0

    def new_game() -> tuple[np.ndarray, dict, np.ndarray | None]:
        nonlocal games
        seed = config.seed + games
        games += 1
        policy.reset()
        if real is None:
            obs, info = env.reset(seed=seed)
            return obs, info, None
        frames = real_start(real, seed, k)
        obs, info = env.reset(seed=seed, options={"frames": np.stack(frames)})
        return obs, info, frames[-1]

    obs, info, real_obs = new_game()
    video, score, actions = [], 0.0, []

    def frame() -> np.ndarray:
        if real_obs is None:
            image = obs
        else:
            image = np.concatenate([obs, np.full((obs.shape[0], SEPARATOR, 3), 255, np.uint8), real_obs], axis=1)
        return image.repeat(config.scale, axis=0).repeat(config.scale, axis=1)

    video.append(frame())
    for _ in tqdm(range(config.steps), desc="rollout", unit="step", disable=not progress):
        action = policy.act(obs, rng, info)
        actions.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        score += reward
        ended = terminated or truncated
        if real is not None:
            real_obs, _, real_terminated, real_truncated, _ = real.step(action)
            ended = ended or real_terminated or real_truncated
        video.append(frame())
        if ended:
            obs, info, real_obs = new_game()
            video.append(frame())
    path = write_video(out, np.stack(video), fps=config.fps)
    if real is not None:
        real.close()
    return dict(out=str(path), steps=config.steps, frames=len(video), games=games, neural_score=score,
                policy=config.policy, actions={a: actions.count(a) for a in range(4)},
                seconds=round(time.time() - start, 1))
