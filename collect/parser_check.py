"""Hold the frame parser against the emulator's RAM over varied play.

Used by the test suite (a few thousand frames) and by `benchmarks/parser_vs_ram.py` (as many as you
like). Play styles: `random`, `fire` (FIRE-heavy random), `tracker` (follows the ball from RAM, so
it keeps the ball alive) and `late` (tracker from a state where most bricks were cleared by writing
the brick bytes of RAM, so late-game frames with few bricks come quickly).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from collect.atari import ale_of, make_env, step_with_display_ram
from worldmodel.breakout import (
    BALL_H,
    BALL_W,
    BRICK_BOTTOM,
    BRICK_COLS,
    BRICK_H,
    BRICK_ROWS,
    BRICK_TOP,
    BRICK_W,
    PLAYFIELD_BOTTOM,
    PLAYFIELD_LEFT,
    PLAYFIELD_RIGHT,
    PLAYFIELD_TOP,
    parse_frame,
    ram_ball,
    ram_bricks,
    ram_lives,
    ram_paddle_x,
    ram_score,
    ram_with_bricks,
)

STYLES = ("random", "fire", "tracker", "late")
BRICK_FILL_STEPS = 10


def _tracker_action(ram: np.ndarray, prev_ball_x: int | None, rng: np.random.Generator, noise: float) -> int:
    ball = ram_ball(ram)
    if ball is None or rng.random() < 0.03:
        return 1
    if rng.random() < noise:
        return int(rng.integers(4))
    x = ball[0] + (ball[0] - prev_ball_x if prev_ball_x is not None else 0)
    center = ram_paddle_x(ram) + 8
    return 2 if x > center + 2 else 3 if x < center - 3 else 0


def play_with_ram(style: str, steps: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (frame, ram_after_step, display_ram) for `steps` frameskip-4 steps of play."""
    if style not in STYLES:
        raise ValueError(f"unknown play style {style!r}; choose from {', '.join(STYLES)}")
    env = make_env(frameskip=1)
    ale = ale_of(env)
    rng = np.random.default_rng(seed)
    episode_seed = seed
    done = True
    prev_ball_x = None
    edited = False
    for _ in range(steps):
        if done:
            env.reset(seed=episode_seed)
            episode_seed += 1
            done, edited, since_reset = False, False, 0
        since_reset += 1
        # The game fills the bricks in over the first ~9 steps and again when it serves the first
        # ball: edit them once both are over.
        ready = since_reset > BRICK_FILL_STEPS and ram_ball(ale.getRAM()) is not None
        if style == "late" and not edited and ready:  # keep ~12% of the bricks
            edited = True
            keep = ram_bricks(ale.getRAM()) & (rng.random((BRICK_ROWS, BRICK_COLS)) < 0.12)
            for addr, value in enumerate(ram_with_bricks(ale.getRAM(), keep)):
                ale.setRAM(addr, int(value))
        ram = ale.getRAM()
        if style == "random":
            action = int(rng.integers(4))
        elif style == "fire":
            action = 1 if rng.random() < 0.5 else int(rng.integers(4))
        else:
            action = _tracker_action(ram, prev_ball_x, rng, noise=0.1)
        ball = ram_ball(ram)
        prev_ball_x = ball[0] if ball else None
        obs, _, terminated, truncated, _, display_ram = step_with_display_ram(env, action)
        done = terminated or truncated
        yield obs, ale.getRAM().copy(), display_ram
    env.close()


def expected_ball(ram: np.ndarray) -> tuple[int, int] | None:
    """The ball RAM puts on screen; None when walls, present bricks or the screen edge hide all of it.

    Above the bottom of the brick band the game draws the ball one scanline early, so a ball row r
    there shows on row r - 1, where a brick may hide it.
    """
    ball = ram_ball(ram)
    if ball is None:
        return None
    x, y = ball
    visible = np.zeros((256, 256), dtype=bool)  # RAM coordinates are bytes
    visible[PLAYFIELD_TOP:PLAYFIELD_BOTTOM, PLAYFIELD_LEFT:PLAYFIELD_RIGHT] = True
    bricks = np.repeat(np.repeat(ram_bricks(ram), BRICK_H, axis=0), BRICK_W, axis=1)
    visible[BRICK_TOP:BRICK_BOTTOM, PLAYFIELD_LEFT:PLAYFIELD_RIGHT] &= ~bricks
    if x < 0 or y < 0:
        return None
    rows = np.arange(y, y + BALL_H)
    drawn = rows - (rows < BRICK_BOTTOM)
    if not visible[drawn, x : x + BALL_W].any():
        return None
    return ball


@dataclass
class ParserReport:
    frames: int = 0
    correct: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    """(field, expected, parsed) of the first failures, for debugging."""
    bricks_left: list = field(default_factory=list)

    def add(self, frame: np.ndarray, ram: np.ndarray, display_ram: np.ndarray) -> None:
        info = parse_frame(frame)
        truth = {
            "ball": expected_ball(ram),
            "paddle_x": ram_paddle_x(ram),
            "bricks": ram_bricks(ram),
            "score": ram_score(display_ram),
            "lives": ram_lives(display_ram),
        }
        self.frames += 1
        self.bricks_left.append(int(truth["bricks"].sum()))
        for name, expected in truth.items():
            parsed = getattr(info, name)
            ok = np.array_equal(parsed, expected) if name == "bricks" else parsed == expected
            if ok:
                self.correct[name] += 1
            elif len(self.failures) < 50:
                self.failures.append((name, expected, parsed))

    def accuracy(self) -> dict[str, float]:
        return {name: self.correct[name] / self.frames for name in ("ball", "paddle_x", "bricks", "score", "lives")}


def check_parser(styles: dict[str, int], seed: int = 0) -> ParserReport:
    """Play each style for its number of steps and compare every frame's parse with RAM."""
    report = ParserReport()
    for i, (style, steps) in enumerate(styles.items()):
        for frame, ram, display_ram in play_with_ram(style, steps, seed + 1000 * i):
            report.add(frame, ram, display_ram)
    return report
