"""Policies that play Breakout from RGB frames, on the real game or on the neural one.

Each policy sees what a player sees: the RGB frame (210, 160, 3) and `info["lives"]`. `reset()` is
called at the start of every episode, then `act(obs, rng, info)` once per step.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import numpy as np

from worldmodel.breakout import (
    ACTION_MEANINGS,
    FIRE,
    LEFT,
    NOOP,
    PADDLE_TOP,
    PLAYFIELD_LEFT,
    PLAYFIELD_RIGHT,
    PLAYFIELD_TOP,
    RED,
    RIGHT,
    parse_frame,
)


class Policy(Protocol):
    name: str

    def reset(self) -> None: ...

    def act(self, obs: np.ndarray, rng: np.random.Generator, info: dict) -> int: ...


class RandomPolicy:
    """Uniform over the minimal action set."""

    name = "random"

    def reset(self) -> None:
        pass

    def act(self, obs: np.ndarray, rng: np.random.Generator, info: dict) -> int:
        return int(rng.integers(len(ACTION_MEANINGS)))


class TrackerPolicy:
    """A scripted player on the frame parser: it predicts where the ball will cross the paddle row
    (from its last two positions, with reflections off the side walls and, when the ball rises, the
    top wall) and moves the paddle's centre there; FIRE when no ball has been seen for 3 steps. Holding
    still, it picks NOOP or FIRE at random, so the data show both (FIRE in play moves nothing).
    It scores about 100-330 and reaches late-game states that the DQN agent does not."""

    name = "tracker"
    DEAD_ZONE = 10  # px; the paddle moves ~20 px per step, so a smaller zone oscillates

    def reset(self) -> None:
        self.previous_ball: tuple[int, int] | None = None
        self.no_ball = 0

    def __init__(self):
        self.reset()

    @staticmethod
    def landing_x(previous: tuple[int, int] | None, ball: tuple[int, int]) -> float:
        if previous is None or ball[1] == previous[1]:
            return float(ball[0])
        vx, vy = ball[0] - previous[0], ball[1] - previous[1]
        distance = PADDLE_TOP - ball[1] if vy > 0 else (ball[1] - PLAYFIELD_TOP) + (PADDLE_TOP - PLAYFIELD_TOP)
        x = ball[0] + vx * distance / abs(vy) - PLAYFIELD_LEFT
        span = PLAYFIELD_RIGHT - 2 - PLAYFIELD_LEFT  # the ball is 2 px wide
        x %= 2 * span
        return PLAYFIELD_LEFT + (x if x <= span else 2 * span - x)

    def act(self, obs: np.ndarray, rng: np.random.Generator, info: dict) -> int:
        seen = parse_frame(obs)
        previous, self.previous_ball = self.previous_ball, seen.ball
        if seen.ball is None:
            self.no_ball += 1
            return FIRE if self.no_ball > 2 else NOOP
        self.no_ball = 0
        if seen.paddle_x is None:
            return NOOP
        row = obs[PADDLE_TOP + 1, PLAYFIELD_LEFT:PLAYFIELD_RIGHT]
        width = int((row == RED).all(axis=-1).sum()) or 16
        offset = self.landing_x(previous, seen.ball) + 1 - (seen.paddle_x + width / 2)
        if abs(offset) > self.DEAD_ZONE:
            return RIGHT if offset > 0 else LEFT
        return FIRE if rng.random() < 0.5 else NOOP  # FIRE does not move the paddle in play, like NOOP


class AgentPolicy:
    """The trained DQN agent, fed the preprocessing it was trained with (84x84 grey, 4-frame stack)
    rebuilt from RGB frames. FIRE at the start of every life, as during training, and whenever no
    ball has been seen for `fire_after` steps. With probability `epsilon` an action is uniform random.

    At frameskip 4 only the last frame of each step is visible, so the agent sees that frame where
    training showed it the max over the last two; the evaluation in `record` measures the effect.
    """

    name = "agent"

    def __init__(self, checkpoint: str, epsilon: float = 0.0, fire_after: int = 8):
        import torch

        from collect.dqn import load_agent

        self.torch = torch
        self.q_net = load_agent(checkpoint)
        self.epsilon = epsilon
        self.fire_after = fire_after
        self.reset()

    def reset(self) -> None:
        self.stack: deque[np.ndarray] = deque(maxlen=4)
        self.lives: int | None = None
        self.no_ball = 0

    @staticmethod
    def preprocess(obs: np.ndarray) -> np.ndarray:
        import cv2

        return cv2.resize(cv2.cvtColor(obs, cv2.COLOR_RGB2GRAY), (84, 84), interpolation=cv2.INTER_AREA)

    def act(self, obs: np.ndarray, rng: np.random.Generator, info: dict) -> int:
        frame = self.preprocess(obs)
        if not self.stack:
            self.stack.extend([frame] * 4)
        else:
            self.stack.append(frame)
        lives = info.get("lives")
        new_life = self.lives is None or (lives is not None and lives < self.lives)
        self.lives = lives
        self.no_ball = self.no_ball + 1 if parse_frame(obs).ball is None else 0
        if new_life or self.no_ball >= self.fire_after:
            self.no_ball = 0
            return FIRE
        if rng.random() < self.epsilon:
            return int(rng.integers(len(ACTION_MEANINGS)))
        with self.torch.no_grad():
            q = self.q_net(self.torch.from_numpy(np.stack(self.stack)[None]))
        return int(q.argmax())


POLICIES = ("random", "tracker", "agent")


def make_policy(name: str, checkpoint: str | None = None, epsilon: float = 0.0) -> Policy:
    """A policy by name; `agent` needs `checkpoint` (an agent.pt) and takes `epsilon`."""
    if name == "random":
        return RandomPolicy()
    if name == "tracker":
        return TrackerPolicy()
    if name == "agent":
        if not checkpoint:
            raise ValueError("policy 'agent' needs --checkpoint (for example checkpoints/agent.pt)")
        return AgentPolicy(checkpoint, epsilon=epsilon)
    raise ValueError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}")
