"""The paddle table: where the paddle is in the next frame, from the latent code, its last step and its place.

The paddle has momentum, and its step depends on where it is: the action, the last step and the
position decide it to within 1 px 99.4% of the time (`benchmarks/paddle_steps.py`). The latent code
carries the action's part. The decoder places the paddle from 4x4 blocks and has not learned every
position's step: it is 2 px off in about 2% of transitions, and a paddle that is off stays off in a
rollout. The table holds, for every case (code, last step, left edge) of the training transitions,
the step seen most often after it, with the codes the latent action model infers from the real
video. `WorldModel.place_paddle` draws the paddle there; a case the table has not seen keeps the
decoder's paddle, and whether there is a paddle at all stays the decoder's decision.

It is counted, not trained by gradient (`neural-breakout train paddle-table`), and stored inside
the world model checkpoint: one int8 per case, 83 KB for 8 codes.

    table = PaddleTable(PaddleTableConfig(codes=8))
    table.fit(codes, last_steps, lefts, steps)     # int arrays, one entry per training transition
    step = table.lookup(code=3, last_step=4, left=70)   # an int, or None where the case was not seen
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from worldmodel.breakout import BALL_W, FRAME_SHAPE, PADDLE_BOTTOM, PADDLE_TOP, PLAYFIELD_LEFT, PLAYFIELD_RIGHT, \
    widest_run

W = FRAME_SHAPE[1]
UNSEEN = -128  # a case no training transition showed


@dataclass(frozen=True)
class PaddleTableConfig:
    codes: int = field(default=8, metadata={"help": "latent codes (the world model's `codes`, events excluded)"})
    max_step: int = field(default=32, metadata={"help": "the largest last or next step, px, that is a case (the "
                                                        "recorded paddle moves at most 23 px a step)"})


def paddle_left(ids: np.ndarray, red: int) -> int | None:
    """The parser's `paddle_x` read from a frame of class ids (210, 160): the left edge of the widest
    run of columns that are red (`red`: its class id) on all four paddle rows, if wider than a ball."""
    rows = ids[PADDLE_TOP:PADDLE_BOTTOM, PLAYFIELD_LEFT:PLAYFIELD_RIGHT] == red
    run = widest_run(rows.all(axis=0))
    if run is None or run[1] - run[0] <= BALL_W:
        return None
    return run[0] + PLAYFIELD_LEFT


class PaddleTable(nn.Module):
    def __init__(self, config: PaddleTableConfig):
        super().__init__()
        self.config = config
        steps = torch.full((config.codes, 2 * config.max_step + 1, W), UNSEEN, dtype=torch.int8)
        self.register_buffer("steps", steps)  # [code, last step + max_step, left edge] -> next step

    def fit(self, codes: np.ndarray, last_steps: np.ndarray, lefts: np.ndarray, steps: np.ndarray) -> dict:
        """Fill the table with the most common step of each case (ties: the lowest step), from one
        entry per transition. Transitions whose last or next step is larger than `max_step` are not
        counted. Returns the cases filled and the transitions counted."""
        s = self.config.max_step
        codes, last_steps, lefts, steps = (np.asarray(a, dtype=np.int64) for a in (codes, last_steps, lefts, steps))
        keep = (np.abs(last_steps) <= s) & (np.abs(steps) <= s) & (codes >= 0) & (codes < self.config.codes) \
            & (lefts >= 0) & (lefts < W)
        counts = np.zeros((self.config.codes, 2 * s + 1, W, 2 * s + 1), dtype=np.int64)
        np.add.at(counts, (codes[keep], last_steps[keep] + s, lefts[keep], steps[keep] + s), 1)
        seen = counts.sum(axis=-1) > 0
        table = np.where(seen, counts.argmax(axis=-1) - s, UNSEEN)
        self.steps.copy_(torch.from_numpy(table.astype(np.int8)))
        return dict(cases=int(seen.sum()), transitions=int(keep.sum()), left_out=int((~keep).sum()))

    def lookup(self, code: int, last_step: int, left: int) -> int | None:
        """The most common next step of a case, or None if the training transitions never showed it."""
        s = self.config.max_step
        if not (0 <= code < self.config.codes and abs(last_step) <= s and 0 <= left < W):
            return None
        step = int(self.steps[code, last_step + s, left])
        return None if step == UNSEEN else step

    def predict(self, codes: np.ndarray, last_steps: np.ndarray, lefts: np.ndarray) -> np.ndarray:
        """`lookup` of many cases: the steps (N,) int64, `UNSEEN` where the table has none."""
        return np.array([UNSEEN if (step := self.lookup(int(c), int(d), int(x))) is None else step
                         for c, d, x in zip(codes, last_steps, lefts)], dtype=np.int64)
