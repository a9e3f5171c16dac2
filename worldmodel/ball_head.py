"""The ball head: where the ball is in the next frame, or that it is gone, from a window around it.

The decoder places the ball from 4x4 blocks of a whole frame and misses it most often at a bounce
(`benchmarks/ball_errors.py`). The ball head looks only at a square window of native pixels centred
on the last frame's ball: which pixels are lit in the last two frames and in the next frame as the
decoder drew it with its ball erased (so it sees the walls, the bricks the decoder broke and the
paddle where the latent action moved it), and boxes at the last two balls. It scores every pixel of
the window as the next ball's top-left, plus one score for "no ball". `WorldModel.predict_ids` then
draws the ball where it says (`WorldModel.place_ball_with_head`), in the colour the decoder gives
that place; a frame whose last context frame shows no ball (a serve) keeps the decoder's ball.

The return head is a second head of this kind, for a ball that blinked out: where the two frames
before the last showed a ball (`returning_ball`), it places the ball of the next frame from a window
on the last ball seen, one frame further back (`WorldModel.place_ball_with_head`).

The brick head is a third head of this kind, for the bricks: which brick the step breaks, if any,
from the window on the last frame's ball (`brick_input`: the last frame stands in for the next one,
whose bricks are what it decides). It scores the centre pixel of each brick cell and "none"
(`brick_target`, `brick_centres`); `WorldModel.place_bricks` then gives the next frame exactly the
last frame's bricks less that one.

The return brick head is a fourth, for the bricks of a step whose ball blinked out of the last frame
(often hidden in the brick it hits): `brick_input` one frame back, the window on the last ball seen
(`WorldModel.place_bricks`).

It is trained on real transitions (`neural-breakout train ball-head`), with the next frame's real
ball erased, and stored inside the world model checkpoint.

    head = BallHead(BallHeadConfig())
    x = head_input(lit_prev, lit_last, lit_next, ball_prev, ball_last, head.config.window)  # (8, c, c)
    logits = head(torch.from_numpy(x)[None])  # (1, c * c + 1): positions row-major, then "no ball"
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from worldmodel.breakout import (BALL_H, BALL_LOST_TOP, BALL_W, BRICK_BOTTOM, BRICK_H, BRICK_TOP,
                                  BRICK_W, FRAME_SHAPE, PLAYFIELD_BOTTOM, PLAYFIELD_LEFT, PLAYFIELD_RIGHT,
                                  PLAYFIELD_TOP, Playfield, lit_pixels)

H, W = FRAME_SHAPE[:2]
INPUT_CHANNELS = 8  # lit t-1, lit t, lit t+1 without its ball; ball boxes t-1, t, t+1 at constant velocity; row, column
# (a head with `first_ball` has one more: a box at the ball of t-2, before the row and column)
MAX_STEP = 16  # the most a ball moves in one step along either axis, native px (in the recorded games)
RETURN_WINDOW = 72  # the return head's window: the ball moves two steps, up to 32 px either way


@dataclass(frozen=True)
class BallHeadConfig:
    window: int = field(default=40, metadata={"help": "side of the square window around the last ball, native "
                                                      "pixels (the ball moves at most 16 px a step)"})
    width: int = field(default=24, metadata={"help": "channels of the convolutions, which run on 2x2 blocks"})
    dilations: tuple = field(default=(1, 2, 4, 2, 1), metadata={"help": "dilation of each residual 3x3 block; "
                                                                       "their sum sets how far a block sees"})
    first_ball: bool = field(default=False, metadata={"help": "also read a box at the ball of the frame before "
                                                              "the two (`head_input`'s `ball_first`): the ball's "
                                                              "step before a bounce inside the last step, and its "
                                                              "way after a blink"})

    @property
    def channels(self) -> int:
        """Input channels: `INPUT_CHANNELS`, and one more with `first_ball`."""
        return INPUT_CHANNELS + int(self.first_ball)

    @property
    def positions(self) -> int:
        return self.window * self.window


def window_origin(ball: tuple[int, int], window: int) -> tuple[int, int]:
    """(x0, y0): the top-left native pixel of the window centred on a ball's (x, y)."""
    return ball[0] - window // 2, ball[1] - window // 2


def crop(mask: np.ndarray, x0: int, y0: int, window: int, fill: float) -> np.ndarray:
    """The (window, window) part of a (210, 160) array at (x0, y0), `fill` outside the frame."""
    out = np.full((window, window), fill, dtype=np.float32)
    ys, xs = slice(max(y0, 0), min(y0 + window, H)), slice(max(x0, 0), min(x0 + window, W))
    if ys.start < ys.stop and xs.start < xs.stop:
        out[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0] = mask[ys, xs]
    return out


def lit_without_ball(frame: np.ndarray, playfield: Playfield) -> np.ndarray:
    """(210, 160) bool: the lit pixels of an RGB frame with its ball pixels (`playfield`'s, read from
    that frame) cleared: the next frame as the ball head sees it."""
    lit = lit_pixels(frame)
    lit[PLAYFIELD_TOP:PLAYFIELD_BOTTOM, PLAYFIELD_LEFT:PLAYFIELD_RIGHT] &= ~playfield.ball_pixels
    return lit


def head_input(lit_prev: np.ndarray, lit_last: np.ndarray, lit_next: np.ndarray, ball_prev: tuple[int, int] | None,
               ball_last: tuple[int, int], window: int, first: bool = False,
               ball_first: tuple[int, int] | None = None) -> np.ndarray:
    """The ball head's input (8, window, window) float32 around `ball_last`: the lit masks (210, 160)
    bool of the frame before the last, the last and the next one with its ball erased (outside the
    frame counts as lit, like a wall); 2x4 boxes at the parsed balls (x, y) of the first two and where
    the ball would be next at constant velocity (`expected_ball`), so that straight flight is a copy
    and only a bounce must be worked out; with `first` (a head with `first_ball`), a 2x4 box at the
    ball of the frame before the two (`ball_first`, None: none shown); the window's native row and
    column, scaled to 0..1: (8 or 9, window, window)."""
    x0, y0 = window_origin(ball_last, window)
    x = np.zeros((INPUT_CHANNELS + int(first), window, window), dtype=np.float32)
    for c, mask in enumerate((lit_prev, lit_last, lit_next)):
        x[c] = crop(mask, x0, y0, window, 1.0)
    boxes = [(3, ball_prev), (4, ball_last), (5, expected_ball(ball_prev, ball_last))]
    for c, ball in boxes + ([(6, ball_first)] if first else []):
        if ball is not None:
            bx, by = ball[0] - x0, ball[1] - y0
            x[c, max(by, 0):max(by + BALL_H, 0), max(bx, 0):max(bx + BALL_W, 0)] = 1.0
    x[-2] = ((y0 + np.arange(window)) / H)[:, None]
    x[-1] = ((x0 + np.arange(window)) / W)[None, :]
    return x


def expected_ball(ball_prev: tuple[int, int] | None, ball_last: tuple[int, int]) -> tuple[int, int] | None:
    """Where the ball would be next at the velocity of its last step; None without a ball before, or
    if the two are further apart than a ball moves in a step (not the same ball)."""
    if ball_prev is None:
        return None
    dx, dy = ball_last[0] - ball_prev[0], ball_last[1] - ball_prev[1]
    if max(abs(dx), abs(dy)) > MAX_STEP:
        return None
    return ball_last[0] + dx, ball_last[1] + dy


def returning_ball(ball_before: tuple[int, int] | None, ball_seen: tuple[int, int] | None) -> bool:
    """Is a ball that the last frame does not show one the return head brings back? The two frames
    before it show the same ball (at most `MAX_STEP` apart), mid-field (above `BALL_LOST_TOP`, where the
    recorded games blink it out for a frame as it bounces, and never lose it)."""
    if ball_before is None or ball_seen is None or ball_seen[1] >= BALL_LOST_TOP:
        return False
    return max(abs(ball_seen[0] - ball_before[0]), abs(ball_seen[1] - ball_before[1])) <= MAX_STEP


def target_index(ball_next: tuple[int, int] | None, ball_last: tuple[int, int], window: int) -> int | None:
    """The class of the next ball: its top-left's place in the window (row-major), `window ** 2` for no
    ball, None if it lies outside the window."""
    if ball_next is None:
        return window * window
    x0, y0 = window_origin(ball_last, window)
    bx, by = ball_next[0] - x0, ball_next[1] - y0
    if not (0 <= bx < window and 0 <= by < window):
        return None
    return by * window + bx


def index_to_ball(index: int, ball_last: tuple[int, int], window: int) -> tuple[int, int] | None:
    """`target_index`'s inverse: (x, y) native, or None for "no ball"."""
    if index == window * window:
        return None
    x0, y0 = window_origin(ball_last, window)
    return x0 + index % window, y0 + index // window


def near_bricks(ball: tuple[int, int], window: int) -> bool:
    """Does the window on a ball at (x, y) reach the brick band? Only then can the step break a brick
    (the ball moves at most `MAX_STEP` px, less than half a window)."""
    return ball[1] - window // 2 < BRICK_BOTTOM


def brick_input(lit_prev: np.ndarray, lit_last: np.ndarray, ball_prev: tuple[int, int] | None,
                ball_last: tuple[int, int], window: int, first: bool = False,
                ball_first: tuple[int, int] | None = None) -> np.ndarray:
    """The brick head's input (8 or 9, window, window): `head_input` with the last frame's lit mask in
    the next frame's place (the next frame's bricks are what the head decides)."""
    return head_input(lit_prev, lit_last, lit_last, ball_prev, ball_last, window, first, ball_first)


def cell_centre(row: int, col: int) -> tuple[int, int]:
    """The (x, y) native pixel that stands for brick cell (row, col) in the brick head's output."""
    return PLAYFIELD_LEFT + col * BRICK_W + BRICK_W // 2, BRICK_TOP + row * BRICK_H + BRICK_H // 2


def brick_target(removed: np.ndarray, ball_last: tuple[int, int], window: int) -> int | None:
    """The brick head's class for a step that removes the (6, 18) bool brick cells `removed`: the
    centre of the one cell (`cell_centre`) in the window on `ball_last`, `window ** 2` for none; None
    where two or more go, or the cell's centre lies outside the window."""
    count = int(removed.sum())
    if count == 0:
        return window * window
    if count > 1:
        return None
    row, col = np.argwhere(removed)[0]
    return target_index(cell_centre(int(row), int(col)), ball_last, window)


def brick_centres(bricks: np.ndarray, ball_last: tuple[int, int], window: int) -> dict[int, tuple[int, int]]:
    """{window class: (row, col)} of the centres of the present cells of a (6, 18) brick map inside
    the window on `ball_last`: the classes the brick head may choose besides "none"."""
    out = {}
    for row, col in np.argwhere(bricks):
        index = target_index(cell_centre(int(row), int(col)), ball_last, window)
        if index is not None:
            out[index] = (int(row), int(col))
    return out


def drawn_rows(y: int) -> slice:
    """The rows a ball at parsed row `y` is drawn on: the game draws a ball's rows above the bottom of
    the brick band one scanline early (`breakout.parse_frame` maps them back), and its row at the
    band's bottom both early and on time, so a ball at rows 90 to 93 shows on 5 rows."""
    top = y - 1 if y <= BRICK_BOTTOM else y
    bottom = y + BALL_H if y + BALL_H - 1 >= BRICK_BOTTOM else y + BALL_H - 1
    return slice(top, bottom)


class Block(nn.Module):
    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(width, width, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.conv2(F.silu(self.conv1(F.silu(h))))


class BallHead(nn.Module):
    def __init__(self, config: BallHeadConfig):
        super().__init__()
        self.config = config
        self.stem = nn.Conv2d(config.channels * 4, config.width, 3, padding=1)  # on 2x2 blocks
        self.blocks = nn.ModuleList(Block(config.width, d) for d in config.dilations)
        self.place = nn.Conv2d(config.width, 4, 1)  # a score for each pixel of the 2x2 block
        self.gone = nn.Linear(config.width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 8 or 9, c, c) -> logits (B, c * c + 1): each window pixel as the next ball's top-left,
        then "no ball"."""
        c = self.config
        assert x.shape[1:] == (c.channels, c.window, c.window), f"ball head input {x.shape}"
        h = self.stem(F.pixel_unshuffle(x, 2))  # (B, width, c / 2, c / 2)
        for block in self.blocks:
            h = block(h)
        h = F.silu(h)
        place = F.pixel_shuffle(self.place(h), 2).flatten(1)  # (B, c * c)
        gone = self.gone(h.mean(dim=(2, 3)))  # (B, 1)
        return torch.cat([place, gone], dim=1)

    def loss(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Cross-entropy over the window's pixels and "no ball"; metrics: exact and within 1 px."""
        logits = self(x)
        loss = F.cross_entropy(logits, target)
        with torch.no_grad():
            metrics = dict(loss=float(loss), **placement_metrics(logits.argmax(dim=1), target, self.config.window))
        return loss, metrics


def placement_metrics(predicted: torch.Tensor, target: torch.Tensor, window: int) -> dict:
    """Of (B,) predicted and target classes: exact, within 1 px (both balls, or both none), and the
    share of targets with a ball."""
    none = window * window
    both = (predicted != none) & (target != none)
    dy = (predicted // window - target // window).abs()
    dx = (predicted % window - target % window).abs()
    near = (both & (dx <= 1) & (dy <= 1)) | ((predicted == none) & (target == none))
    return dict(exact=float((predicted == target).float().mean()), within_1px=float(near.float().mean()))
