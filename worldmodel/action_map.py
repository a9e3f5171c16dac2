"""The action-to-latent map: (context frames, real action) -> a distribution over latent actions.

The world model is driven by latent actions that the latent action model inferred from video. To play
it with the real controls (NOOP, FIRE, RIGHT, LEFT), this small network learns which latent action
each real action produces from a given context: the same press can mean different latents near a
wall, with no ball in play, or with the paddle already moving. It scores all four actions in one
pass, so the env computes it once per step.
"""

from __future__ import annotations

import functools

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from worldmodel.breakout import (DIGIT_H, DIGIT_TOP, DIGIT_W, FIRE, LIVES_DIGIT_X, MEMORY_STATES, PADDLE_BOTTOM,
                                 PADDLE_TOP)
from worldmodel.checkpoint import load_checkpoint, load_weights
from worldmodel.lam import PADDED_HEIGHT, PATCH
from worldmodel.paddle_table import PaddleTable, PaddleTableConfig

ACTION_MAP_KIND = "action-map"
SHIPPED_ACTION_MAP = Path(__file__).resolve().parent.parent / "checkpoints" / "action_map.pt"


@dataclass(frozen=True)
class ActionMapConfig:
    classes: int = field(default=9, metadata={"help": "colour classes of a frame (from the world model)"})
    context: int = field(default=2, metadata={"help": "context frames (from the world model)"})
    codes: int = field(default=8, metadata={"help": "latent actions (from the world model)"})
    actions: int = field(default=4, metadata={"help": "real actions"})
    width: int = field(default=32, metadata={"help": "convolution channels"})
    hidden: int = field(default=128, metadata={"help": "width of the hidden layer"})
    presence: bool = field(default=False, metadata={"help": "also max-pool the first convolution over the frame: "
                                                            "whether a ball is anywhere, in which frames"})
    life_head: bool = field(default=False, metadata={"help": "for a world model with the event input: the odds of "
                                                             "a lost life come from the context alone, one logit "
                                                             "for all actions, since no control causes it (the "
                                                             "policies that recorded the data press FIRE once the "
                                                             "ball is gone, so a map that reads the action learns "
                                                             "that FIRE loses lives)"})
    serve_head: bool = field(default=False, metadata={"help": "with life_head: the odds of a serve are one logit of "
                                                              "the context, 'the game waits for FIRE', applied to "
                                                              "FIRE alone (no other action serves), and trained on "
                                                              "every transition from the emulator's RAM, not only "
                                                              "where FIRE was pressed"})
    lives_digit: bool = field(default=False, metadata={"help": "also read the lives digit of every context frame at "
                                                               "full resolution (a life just lost: the game waits)"})
    memory: bool = field(default=False, metadata={"help": "with serve_head: the odds of a lost life and of 'the game "
                                                          "waits for FIRE' come from the ball's memory state "
                                                          "(`breakout.BallMemory`: in play, gone for how many steps "
                                                          "and from where, waiting), counted over the training data, "
                                                          "not from the pixels: the env remembers the ball past the "
                                                          "context, so an overdue life is still taken"})
    paddle_table: dict | None = field(default=None, metadata={"help": "the paddle's next step per (action, action "
                                                                    "before, last step, left edge) "
                                                                    "(`paddle_table.PaddleTableConfig`, one code "
                                                                    "per action pair, `paddle_key`), counted by "
                                                                    "`train action-paddle`; None: no table"})


def paddle_key(action: int, previous: int | None, actions: int = 4) -> int:
    """The paddle table's code of an action and the action before it (None: not known, as on the
    first step after a reset): action + actions * previous, with `actions` for not known."""
    return action + actions * (actions if previous is None else previous)


@functools.lru_cache(maxsize=4)
def block_index(width: int) -> torch.Tensor:
    """(212, width) int64: the 4x4 block (row-major over 53 x width / 4) each pixel of a padded frame falls in."""
    return torch.arange(PADDED_HEIGHT)[:, None] // PATCH * (width // PATCH) + torch.arange(width)[None] // PATCH


def class_counts(ids: torch.Tensor, classes: int) -> torch.Tensor:
    """(B, F, 210, 160) class ids -> (B, F * classes, 53, 40): how many pixels of each class every 4x4
    block holds, divided by 16 (a bincount: much cheaper than one-hot maps)."""
    b, f, h, w = ids.shape
    ids = F.pad(ids, (0, 0, 0, PADDED_HEIGHT - h))
    rows, cols = PADDED_HEIGHT // PATCH, w // PATCH
    plane = (torch.arange(b * f).view(b, f, 1, 1) * classes + ids.long()) * (rows * cols)  # (sample, frame, class)
    counts = torch.bincount((plane + block_index(w)).flatten(), minlength=b * f * classes * rows * cols)
    return counts.view(b, f * classes, rows, cols).float() / (PATCH * PATCH)


class ActionMap(nn.Module):
    """Context class ids (B, k, 210, 160) -> latent-action logits for every real action (B, A, codes)
    (with `life_head`, log-probabilities).

    Two views of the context: class counts per 4x4 block through three strided convolutions (where
    the ball, bricks and paddle are), and the paddle rows at full horizontal resolution (exactly
    where the paddle is and how it moved, which decides what a press does near a wall). With
    `presence`, a third: the first convolution's features max-pooled over the whole frame, which say
    whether something small, like the ball, is anywhere, and in which frames (a serve needs none in
    play, a lost life a ball that left a few frames ago). With `lives_digit`, a fourth: the lives
    digit's pixels in every frame, whose fall says the game now waits for FIRE; the block counts blur
    it (`benchmarks/event_odds.py`). With `memory`, the odds of a lost life and of a serve are not read
    from the context at all but looked up per state of the ball's memory (`breakout.BallMemory`),
    counted over the training data (`fit_memory`): the env carries that state past the context.

    With `paddle_table`, the map also says where a press puts the paddle (`paddle_step`): the most
    common next step of each (action, action before, last step, left edge) in the recorded video. The
    action before carries the paddle's momentum, which two frames do not show: rolled out open loop
    on its own paddle, that table keeps it within 1 px far more often than one without it
    (`benchmarks/paddle_steps.py`)."""

    def __init__(self, config: ActionMapConfig):
        super().__init__()
        self.config = config
        k, w = config.context, config.width
        self.convs = nn.Sequential(
            nn.Conv2d(k * config.classes, w, 3, stride=2, padding=1), nn.SiLU(),  # 27x20
            nn.Conv2d(w, w, 3, stride=2, padding=1), nn.SiLU(),  # 14x10
            nn.Conv2d(w, w, 3, stride=2, padding=1), nn.SiLU(),  # 7x5
        )
        pooled = 2 * w if config.presence else 0
        if config.life_head and config.codes % 4:
            raise ValueError(f"life_head needs the latents of a world model with the event input (codes x 4), "
                             f"got {config.codes}")
        if config.serve_head and not config.life_head:
            raise ValueError("serve_head needs life_head (both event bits get their own logit)")
        if config.memory and not config.serve_head:
            raise ValueError("memory needs serve_head (it gives the life and the serve logits)")
        if config.memory:  # code logits per action; the life and serve logits are the memory tables'
            outputs = config.actions * config.codes // 4
            # log-odds of a lost life on the next step, and of 'FIRE serves', per memory state
            self.register_buffer("life_table", torch.zeros(MEMORY_STATES))
            self.register_buffer("wait_table", torch.zeros(MEMORY_STATES))
        elif config.serve_head:  # code logits per action, then the life and the serve logits
            outputs = config.actions * config.codes // 4 + 2
        elif config.life_head:
            outputs = config.actions * config.codes // 2 + 1
        else:
            outputs = config.actions * config.codes
        self.paddle_table = PaddleTable(PaddleTableConfig(**config.paddle_table)) if config.paddle_table else None
        digit = k * DIGIT_H * DIGIT_W if config.lives_digit else 0
        self.mlp = nn.Sequential(nn.Linear(w * 7 * 5 + k * 160 + pooled + digit, config.hidden), nn.SiLU(),
                                 nn.Linear(config.hidden, outputs))

    def outputs(self, context: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
        """Context class ids (B, k, 210, 160) -> the MLP's outputs. `counts`: `class_counts(context)`,
        where the caller keeps them (the env counts each new frame once, not k times)."""
        counts = class_counts(context, self.config.classes) if counts is None else counts
        first = self.convs[1](self.convs[0](counts))  # (B, w, 27, 20)
        x = self.convs[2:](first).flatten(1)
        paddle = (context[:, :, PADDLE_TOP:PADDLE_BOTTOM] != 0).float().mean(dim=2).flatten(1)  # (B, k * 160)
        views = [x, paddle]
        if self.config.presence:  # the strongest and weakest response anywhere: is it there at all?
            views += [first.amax(dim=(2, 3)), first.amin(dim=(2, 3))]
        if self.config.lives_digit:
            digit = context[:, :, DIGIT_TOP:DIGIT_TOP + DIGIT_H, LIVES_DIGIT_X:LIVES_DIGIT_X + DIGIT_W]
            views.append((digit != 0).float().flatten(1))
        return self.mlp(torch.cat(views, dim=1))

    def forward(self, context: torch.Tensor, memory: torch.Tensor | None = None,
                counts: torch.Tensor | None = None) -> torch.Tensor:
        return self.log_probs(self.outputs(context, counts), memory)

    def event_logits(self, out: torch.Tensor, memory: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """With `serve_head`: the (life, waiting) logits, (B,) each: from the memory tables (`memory`:
        (B,) `BallMemory.state`) or the MLP's last two outputs."""
        if not self.config.memory:
            return out[:, -2], out[:, -1]
        if memory is None:
            raise ValueError("this action map reads the ball's memory: pass `memory`, the BallMemory state of "
                             "each context")
        return self.life_table[memory], self.wait_table[memory]

    def log_probs(self, out: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        """The MLP's outputs -> logits (B, A, codes); with `life_head`, log-probabilities."""
        a = self.config.actions
        if not self.config.life_head:
            return out.view(-1, a, self.config.codes)
        # log-probabilities: log P(code, serve | action) + log P(life lost | context); the latent index is
        # code + codes * (serve + 2 * life lost), so the lives-kept half comes first
        if self.config.serve_head:  # log P(code | action) + log P(serve | action): FIRE's is the waiting logit
            codes = self.config.codes // 4
            code = out[:, :a * codes].view(-1, a, codes).log_softmax(dim=-1)
            life, waits = (x[:, None, None] for x in self.event_logits(out, memory))  # (B, 1, 1) each
            fire = (torch.arange(a) == FIRE).view(1, a, 1)
            no_serve = torch.where(fire, F.logsigmoid(-waits), torch.zeros_like(waits))
            serve = torch.where(fire, F.logsigmoid(waits), torch.full_like(waits, float("-inf")))
            pairs = torch.cat([code + no_serve, code + serve], dim=-1)
        else:
            pairs = out[:, :-1].view(-1, a, self.config.codes // 2).log_softmax(dim=-1)
            life = out[:, -1:, None]  # (B, 1, 1)
        return torch.cat([pairs + F.logsigmoid(-life), pairs + F.logsigmoid(life)], dim=-1)

    def loss(self, context: torch.Tensor, action: torch.Tensor, latent: torch.Tensor,
             waiting: torch.Tensor | None = None, memory: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """Cross-entropy of the recorded latent; with `serve_head`, the code's cross-entropy plus the
        life's and the waiting's (`waiting`: (B,) bool, FIRE would serve here, from RAM); with
        `memory`, the code's alone (the tables are counted, `fit_memory`)."""
        out = self.outputs(context)
        logits = self.log_probs(out, memory)[torch.arange(len(action)), action]  # (B, codes)
        accuracy = (logits.argmax(dim=1) == latent).float().mean()
        if not self.config.serve_head:
            loss = F.cross_entropy(logits, latent)
            return loss, dict(loss=loss.item(), accuracy=accuracy.item())
        codes = self.config.codes // 4
        code = out[:, :self.config.actions * codes].view(-1, self.config.actions, codes)[torch.arange(len(action)), action]
        code_loss = F.cross_entropy(code, latent % codes)
        if self.config.memory:
            return code_loss, dict(loss=code_loss.item(), accuracy=accuracy.item())
        if waiting is None:
            raise ValueError("serve_head: loss needs `waiting`, whether FIRE would serve from each context")
        life_loss = F.binary_cross_entropy_with_logits(out[:, -2], (latent // (2 * codes)).float())
        wait_loss = F.binary_cross_entropy_with_logits(out[:, -1], waiting.float())
        loss = code_loss + life_loss + wait_loss
        return loss, dict(loss=loss.item(), accuracy=accuracy.item(), wait_loss=wait_loss.item())

    @torch.no_grad()
    def fit_memory(self, states: np.ndarray, life: np.ndarray, waiting: np.ndarray) -> dict:
        """With `memory`: set the tables to the log-odds counted over transitions (`states`: their
        BallMemory state; `life`: the lives digit falls on the next frame; `waiting`: FIRE would serve,
        from RAM), with half a count of each outcome added (a state never seen gets odds 1:1).
        Returns the counts per state."""
        if not self.config.memory:
            raise ValueError("fit_memory needs an action map with memory")
        seen = np.bincount(states, minlength=MEMORY_STATES).astype(np.float64)
        table = {}
        for name, target, labels in (("life", self.life_table, life), ("waiting", self.wait_table, waiting)):
            hits = np.bincount(states, weights=labels.astype(np.float64), minlength=MEMORY_STATES)
            target.copy_(torch.from_numpy(np.log((hits + 0.5) / (seen - hits + 0.5))).float())
            table[name] = hits.astype(int).tolist()
        table["transitions"] = seen.astype(int).tolist()
        return table

    def paddle_step(self, action: int, previous: int | None, last_step: int, left: int) -> int | None:
        """The paddle's next step, px, after `action` with `previous` the action before (None: not
        known), its `last_step` and `left` edge; None without a paddle table or where it lacks the
        case (the action before not known falls back to the case over all actions before)."""
        if self.paddle_table is None:
            return None
        step = self.paddle_table.lookup(paddle_key(action, previous, self.config.actions), last_step, left)
        if step is None and previous is not None:
            step = self.paddle_table.lookup(paddle_key(action, None, self.config.actions), last_step, left)
        return step

    @torch.no_grad()
    def probabilities(self, context: torch.Tensor, action: torch.Tensor, memory: torch.Tensor | None = None,
                      counts: torch.Tensor | None = None) -> np.ndarray:
        """(B, k, 210, 160) class ids, (B,) actions [, (B,) memory states, the context's `class_counts`]
        -> (B, codes) probabilities."""
        logits = self(context, memory, counts)[torch.arange(len(action)), action]
        return torch.softmax(logits, dim=1).numpy()


def load_action_map(path: str | Path | None = None) -> ActionMap:
    """The action map of a checkpoint (None: the shipped `checkpoints/action_map.pt`), in eval mode."""
    path = Path(path) if path is not None else SHIPPED_ACTION_MAP
    payload = load_checkpoint(path, ACTION_MAP_KIND)
    model = ActionMap(ActionMapConfig(**payload["config"]))
    weights = {k: v.float() if v.is_floating_point() else v for k, v in payload["state"]["weights"].items()}
    load_weights(model, weights, path)
    model.summary = payload.get("summary", {})
    return model.eval()
