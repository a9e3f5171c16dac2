"""Game knowledge for Atari Breakout: action meanings, screen layout, the frame parser, RAM decoding.

The frame parser (`parse_frame`) is the ground truth for evaluating generated frames, so it reads
only pixels. The RAM helpers decode the emulator's state; tests hold the parser against them.

Timing (measured on ale-py 0.12, frameskip 4): the ball, paddle and bricks on a frame match the RAM
read after the step, while the score and lives digits match the RAM read before the last emulated
sub-frame of the step (the digits are drawn at the top of the screen before the frame's collision
logic runs). `collect.atari.step_with_display_ram` returns both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ENV_ID = "ALE/Breakout-v5"
FRAME_SHAPE = (210, 160, 3)
FRAMESKIP = 4
ACTION_MEANINGS = ("NOOP", "FIRE", "RIGHT", "LEFT")
NOOP, FIRE, RIGHT, LEFT = range(4)

# Screen layout, native pixels (row = y, column = x).
PLAYFIELD_TOP = 32  # first row below the top wall
PLAYFIELD_BOTTOM = 195  # one past the last row where the ball can be seen
PLAYFIELD_LEFT = 8  # first column right of the left wall
PLAYFIELD_RIGHT = 152  # first column of the right wall
BRICK_TOP = 57
BRICK_ROWS, BRICK_COLS = 6, 18
BRICK_H, BRICK_W = 6, 8
BRICK_POINTS = (7, 7, 4, 4, 1, 1)  # the points of a brick in each row, top first (the score's deltas in the data)
BRICK_BOTTOM = BRICK_TOP + BRICK_ROWS * BRICK_H  # 93
PADDLE_TOP, PADDLE_BOTTOM = 189, 193
BALL_LOST_TOP = 180  # the recorded games lose the ball for good (3 frames or more) only from this row down;
                    # it blinks out for a single frame at every height (benchmarks/ball_gone.py)
PADDLE_WIDTHS = (16, 12)  # 16 px, or 12 in about a tenth of recorded frames; it keeps its width from frame to
# frame but for a rare change, and the right wall cuts it off (a paddle at x 144 shows 8 px)
BALL_W, BALL_H = 2, 4
RED = (200, 72, 72)  # ball, paddle and the top brick row share this colour
# each brick row's colour, top first: in every recorded frame a brick is a whole 8x6 cell of its row's colour
BRICK_COLORS = (RED, (198, 108, 58), (180, 122, 48), (162, 162, 42), (72, 160, 72), (66, 72, 200))
SERVE_Y = 125  # a served ball shows first on this row (the parser's y), at a random column
EVENT_INPUTS = ("serve", "life lost")  # the bits of the world model's event input, in order (`transition_events`)

# Digits are a 3x5 grid of 4x2-pixel blocks, 12 px wide, on rows 5..14.
DIGIT_TOP = 5
DIGIT_H, DIGIT_W = 10, 12
SCORE_DIGIT_X = (36, 52, 68)
LIVES_DIGIT_X = 100
_DIGIT_CODES = {  # 15-bit block pattern, row-major, most significant bit = top-left block
    0b111101101101111: 0,
    0b010010010010010: 1,
    0b111001111100111: 2,
    0b111001011001111: 3,
    0b101101111001001: 4,
    0b111100111001111: 5,
    0b100100111101111: 6,
    0b111001001001001: 7,
    0b111101111101111: 8,
    0b111101111001001: 9,
}
_DIGIT_CODE_ARRAY = np.array(list(_DIGIT_CODES), dtype=np.int64)
DIGIT_GLYPHS = np.array([[(code >> (14 - i)) & 1 for i in range(15)] for code in sorted(_DIGIT_CODES, key=_DIGIT_CODES.get)],
                        dtype=bool).reshape(10, 5, 3)  # (digit, block row, block column): True = lit
_DIGIT_VALUE_ARRAY = np.array(list(_DIGIT_CODES.values()), dtype=np.int64)


@dataclass(frozen=True)
class FrameInfo:
    """What a Breakout frame shows."""

    ball: tuple[int, int] | None
    """(x, y) of the ball's top-left pixel in native coordinates (x = column, y = row); None if no ball."""
    paddle_x: int | None
    """Leftmost visible paddle column, or None."""
    bricks: np.ndarray
    """(6, 18) bool, True = brick present; row 0 is the top (red) row."""
    score: int
    lives: int

    @property
    def bricks_left(self) -> int:
        return int(self.bricks.sum())


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.shape != FRAME_SHAPE or frame.dtype != np.uint8:
        shape = getattr(frame, "shape", None)
        dtype = getattr(frame, "dtype", type(frame).__name__)
        raise ValueError(f"expected a uint8 frame of shape {FRAME_SHAPE}, got shape {shape} dtype {dtype}")


def _read_digit(frame: np.ndarray, x0: int) -> int:
    return digit_of_lit(_lit(frame[DIGIT_TOP : DIGIT_TOP + DIGIT_H : 2, x0 : x0 + DIGIT_W : 4]))


def digit_of_lit(blocks: np.ndarray) -> int:
    """The digit that a digit's (5, 3) bool blocks (lit or not) show, or the nearest glyph to them."""
    code = int(np.packbits(blocks.ravel(), bitorder="big").view(">u2")[0]) >> 1
    value = _DIGIT_CODES.get(code)
    if value is None:  # generated frames may blur a digit: take the nearest glyph
        distance = [bin(code ^ int(c)).count("1") for c in _DIGIT_CODE_ARRAY]
        value = int(_DIGIT_VALUE_ARRAY[int(np.argmin(distance))])
    return value


def _lit(region: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixel is not black (channel OR is much faster than `.any(axis=-1)`)."""
    return (region[..., 0] | region[..., 1] | region[..., 2]) != 0


def lit_pixels(frame: np.ndarray) -> np.ndarray:
    """(210, 160) bool: the pixels of an RGB frame that are not black."""
    return _lit(frame)


def parse_bricks(frame: np.ndarray) -> np.ndarray:
    """(6, 18) bool brick map: a cell is present when most of its pixels are lit."""
    return bricks_of_lit(_lit(frame[BRICK_TOP:BRICK_BOTTOM, PLAYFIELD_LEFT:PLAYFIELD_RIGHT]))


def bricks_of_lit(region: np.ndarray) -> np.ndarray:
    """(6, 18) bool brick map of the brick band's lit pixels (36, 144) bool (`parse_bricks`)."""
    lit = region.reshape(BRICK_ROWS, BRICK_H, BRICK_COLS, BRICK_W).sum(axis=(1, 3))
    return lit > (BRICK_H * BRICK_W) // 2


def brick_points(before: np.ndarray, after: np.ndarray) -> int:
    """The points of the bricks present in the (6, 18) brick map `before` and gone in `after`
    (`BRICK_POINTS`: the score's deltas in the recorded games, `benchmarks/score_rule.py`)."""
    return int(((before & ~after).sum(axis=1) * np.asarray(BRICK_POINTS)).sum())


def read_score(lit: np.ndarray) -> int:
    """The score the three score digits of a frame's lit pixels (210, 160) bool show."""
    blocks = lit[DIGIT_TOP:DIGIT_TOP + DIGIT_H:2]
    return sum(digit_of_lit(blocks[:, x0:x0 + DIGIT_W:4]) * 10 ** (2 - i) for i, x0 in enumerate(SCORE_DIGIT_X))


def score_pixels(score: int) -> np.ndarray:
    """(10, 160) bool: the lit pixels of the digit rows (`DIGIT_TOP`.., the score's columns only)
    that show `score` (0..999, leading zeros drawn, as the game draws them)."""
    if not 0 <= score <= 999:
        raise ValueError(f"the score shows 0..999, got {score}")
    rows = np.zeros((DIGIT_H, FRAME_SHAPE[1]), dtype=bool)
    for i, x0 in enumerate(SCORE_DIGIT_X):
        glyph = DIGIT_GLYPHS[score // 10 ** (2 - i) % 10]  # (5, 3) blocks of 2 rows x 4 columns
        rows[:, x0:x0 + DIGIT_W] = np.repeat(np.repeat(glyph, 2, axis=0), 4, axis=1)
    return rows


@dataclass(frozen=True)
class Playfield:
    """What the playfield (rows PLAYFIELD_TOP..PLAYFIELD_BOTTOM, columns PLAYFIELD_LEFT..PLAYFIELD_RIGHT)
    shows, pixel by pixel: the parser's first pass, before it reads the ball's position."""

    lit: np.ndarray
    """(163, 144) bool: the pixel is not black."""
    free: np.ndarray
    """(163, 144) bool: the pixel is neither a present brick nor the paddle, so a ball may be drawn there."""
    bricks: np.ndarray
    """(6, 18) bool brick map."""
    paddle_x: int | None

    @property
    def ball_pixels(self) -> np.ndarray:
        """(163, 144) bool: lit pixels that are neither a brick nor the paddle."""
        return self.lit & self.free


def widest_run(mask: np.ndarray) -> tuple[int, int] | None:
    """(start, end) of the first widest run of True in a 1-D bool array, or None if it has none."""
    if not mask.any():
        return None
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    widest = int(np.argmax(ends - starts))
    return int(starts[widest]), int(ends[widest])


def read_playfield(frame: np.ndarray) -> Playfield:
    """The playfield's lit pixels, bricks and paddle, and where a ball may be (RGB (210, 160, 3) uint8)."""
    _check_frame(frame)
    bricks = parse_bricks(frame)
    field = frame[PLAYFIELD_TOP:PLAYFIELD_BOTTOM, PLAYFIELD_LEFT:PLAYFIELD_RIGHT]  # (163, 144, 3)
    red = (field[..., 0] == RED[0]) & (field[..., 1] == RED[1]) & (field[..., 2] == RED[2])
    lit = _lit(field)  # (163, 144)
    free = np.ones_like(lit)

    # Paddle: the widest run of columns that are red on all four paddle rows.
    paddle_rows = slice(PADDLE_TOP - PLAYFIELD_TOP, PADDLE_BOTTOM - PLAYFIELD_TOP)
    full = red[paddle_rows].all(axis=0)
    paddle_x = None
    run = widest_run(full)
    if run is not None and run[1] - run[0] > BALL_W:
        paddle_x = run[0] + PLAYFIELD_LEFT
        free[paddle_rows, run[0] : run[1]] = False

    # The ball takes the playfield colour of its scanline (grey above the bricks, the row's colour
    # among them, red below), so it is any lit pixel that is neither paddle nor present brick.
    present = np.repeat(np.repeat(bricks, BRICK_H, axis=0), BRICK_W, axis=1)  # (36, 144)
    free[BRICK_TOP - PLAYFIELD_TOP : BRICK_BOTTOM - PLAYFIELD_TOP] &= ~present
    return Playfield(lit=lit, free=free, bricks=bricks, paddle_x=paddle_x)


def parse_frame(frame: np.ndarray, playfield: Playfield | None = None) -> FrameInfo:
    """Read ball, paddle, bricks, score and lives from an RGB frame (210, 160, 3) uint8 (`playfield`:
    `read_playfield(frame)`, where the caller has it already)."""
    playfield = read_playfield(frame) if playfield is None else playfield
    lit, bricks, paddle_x = playfield.lit, playfield.bricks, playfield.paddle_x
    ball_pixels = playfield.ball_pixels
    band = slice(BRICK_TOP - PLAYFIELD_TOP, BRICK_BOTTOM - PLAYFIELD_TOP)
    ball = None
    ys, xs = np.nonzero(ball_pixels)
    if len(ys):
        # Above the bottom of the brick band the ball is drawn one scanline early: map those back.
        rows = ys + (ys < band.stop)
        x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(rows.min()), int(rows.max())
        top = int(ys.min())  # topmost drawn row
        # A ball partly hidden by a brick or wall shows fewer pixels: infer the hidden edge.
        # Index 0 means the neighbour is the wall, which lies outside `field`.
        x = x0
        if x1 - x0 + 1 < BALL_W and (x0 == 0 or lit[ys[xs == x0].min(), x0 - 1]):
            x = x0 - 1
        y = y0
        bottom_clipped = int(ys.max()) == PLAYFIELD_BOTTOM - PLAYFIELD_TOP - 1
        if y1 - y0 + 1 < BALL_H and not bottom_clipped and (top == 0 or lit[top - 1, xs[ys == top].min()]):
            y = y1 - (BALL_H - 1)
        ball = (x + PLAYFIELD_LEFT, y + PLAYFIELD_TOP)

    score = sum(_read_digit(frame, x0) * 10 ** (2 - i) for i, x0 in enumerate(SCORE_DIGIT_X))
    lives = _read_digit(frame, LIVES_DIGIT_X)
    return FrameInfo(ball=ball, paddle_x=paddle_x, bricks=bricks, score=score, lives=lives)


def transition_events(before: list[FrameInfo], after: FrameInfo) -> tuple[bool, bool]:
    """(serve, life lost) on the step from the last frame of `before` to `after`, read from pixels:
    a ball shows on the serve row (`SERVE_Y`) where none showed in any frame of `before`; the lives
    digit falls. Held against the emulator's RAM on 61,135 recorded transitions (45 episodes), with
    two frames before: the serve rule marks all 171 serves and nothing else (a ball that was in play
    but hidden shows again elsewhere), and the digit falls on the RAM's step or the one after (the
    digits show the RAM from before the step's last emulated frame)."""
    serve = after.ball is not None and after.ball[1] == SERVE_Y and all(info.ball is None for info in before)
    return serve, after.lives < before[-1].lives


# The ball's phase, remembered across frames: what a context of a few frames cannot show once the
# ball has been gone longer than the context is long (a lost life that is overdue), or whether an
# empty screen waits for FIRE or hides a ball. Indices of `BallMemory.state`:
OVERDUE_STEPS = 6  # gone this many steps or more: one state, whatever the ball's last row
LOW_Y = PADDLE_TOP - 8  # a ball last seen at or below this row left by the paddle (else: hidden mid-field)
STILL_FRAMES = 3  # a ball parsed at one place in this many frames running is no ball (see BallMemory)
MEMORY_STATES = 3 + 2 * (OVERDUE_STEPS - 1)
MEMORY_NAMES = (("in play", "waiting", f"gone {OVERDUE_STEPS}+ steps")
                + tuple(f"gone {s} {where}" for where in ("mid-field", "low") for s in range(1, OVERDUE_STEPS)))


class BallMemory:
    """The ball's phase, read from parsed frames one at a time: in play (a ball shows), gone (it showed
    and has not for `since` frames, with no life lost since), or waiting (a life was lost since it last
    showed, or none has shown since the game began: FIRE serves). The env and the training data
    track it the same way, from the first frame they have.

    A ball parsed at the same place in `STILL_FRAMES` frames running counts as no ball: the real ball
    never stands still that long (in 180 recorded episodes, 572 of 232,602 frames with a ball show it
    where the frame before did, never three frames running: `benchmarks/still_ball.py`), but a brick's stub that the world model
    leaves behind is read as a ball, and taken for one, it kept the game from ever taking a life."""

    def __init__(self):
        self.phase, self.since, self.last_y, self.lives = "waiting", 0, 0, None
        self.ball, self.still = None, 0  # the last parsed ball, and for how many frames it has not moved

    def update(self, info: FrameInfo) -> "BallMemory":
        if self.lives is not None and info.lives < self.lives:
            self.phase = "waiting"
        self.lives = info.lives
        self.still = self.still + 1 if info.ball is not None and info.ball == self.ball else 1
        self.ball = info.ball
        if info.ball is not None and self.still < STILL_FRAMES:
            self.phase, self.since, self.last_y = "play", 0, info.ball[1]
        elif self.phase != "waiting":
            self.phase, self.since = "gone", self.since + 1
        return self

    @property
    def state(self) -> int:
        """0 in play, 1 waiting, 2 gone `OVERDUE_STEPS` or more, then gone 1.. steps mid-field, then low."""
        if self.phase == "play":
            return 0
        if self.phase == "waiting":
            return 1
        if self.since >= OVERDUE_STEPS:
            return 2
        return 3 + (self.since - 1) + (OVERDUE_STEPS - 1) * int(self.last_y >= LOW_Y)


def memory_states(infos: list[FrameInfo]) -> np.ndarray:
    """`BallMemory.state` after each frame of one episode (int64, len(infos))."""
    memory = BallMemory()
    return np.array([memory.update(info).state for info in infos], dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# RAM decoding (emulator state). Addresses from the design card; the brick bit layout is the
# Atari playfield: per brick row, six bytes hold PF0/PF1/PF2 of the left and right screen halves.

def _brick_bit_table() -> tuple[np.ndarray, np.ndarray]:
    # (register group g, bit) for each of the 18 brick columns; byte = 6 * g + (5 - row).
    spec = [(5, 6)] + [(4, b) for b in (6, 4, 2, 0)] + [(3, b) for b in (0, 2, 4, 6)]
    spec += [(2, 4), (2, 6)] + [(1, b) for b in (6, 4, 2, 0)] + [(0, b) for b in (0, 2, 4)]
    rows = np.arange(BRICK_ROWS)[:, None]
    groups = np.array([g for g, _ in spec])[None, :]
    bits = np.array([b for _, b in spec])[None, :]
    return 6 * groups + (5 - rows), np.broadcast_to(bits, (BRICK_ROWS, BRICK_COLS))


_BRICK_BYTE, _BRICK_BIT = _brick_bit_table()


def bcd(value: int) -> int:
    return (int(value) >> 4) * 10 + (int(value) & 0xF)


def ram_bricks(ram: np.ndarray) -> np.ndarray:
    """(6, 18) bool brick map from RAM[0..35]."""
    return ((ram[_BRICK_BYTE] >> _BRICK_BIT) & 1).astype(bool)


def ram_with_bricks(ram: np.ndarray, bricks: np.ndarray) -> np.ndarray:
    """RAM[0..36] rewritten so that exactly `bricks` (6, 18) bool are present (both bits of each)."""
    out = np.array(ram[:36], dtype=np.uint8)
    for (r, c), present in np.ndenumerate(bricks):
        mask = 0b11 << int(_BRICK_BIT[r, c])
        byte = int(_BRICK_BYTE[r, c])
        value = int(out[byte])
        out[byte] = (value | mask) if present else (value & ~mask & 0xFF)
    return out


def ram_score(ram: np.ndarray) -> int:
    return bcd(ram[76]) * 100 + bcd(ram[77])


def ram_lives(ram: np.ndarray) -> int:
    return int(ram[57])


def ram_paddle_x(ram: np.ndarray) -> int:
    return int(ram[72]) - 47


def ram_ball_in_play(ram: np.ndarray) -> np.ndarray | bool:
    """RAM (..., 128) -> whether a ball is in play (RAM[101] != 0), for one frame or many."""
    return ram[..., 101] != 0


def ram_ball_positions(ram: np.ndarray) -> np.ndarray:
    """RAM (..., 128) -> the ball's top-left (x, y) as int64 (..., 2); meaningful where a ball is in play."""
    return np.stack([ram[..., 99].astype(np.int64) - 49, ram[..., 101].astype(np.int64) + 9], axis=-1)


def ram_ball(ram: np.ndarray) -> tuple[int, int] | None:
    """Ball top-left (x, y) from RAM, None when no ball is in play."""
    if not ram_ball_in_play(ram):
        return None
    x, y = ram_ball_positions(ram)
    return int(x), int(y)
