"""The latent action model's encoder: (last context frame, next frame) -> one latent action from a
tiny codebook (vector quantization, straight-through estimator, commitment loss, dead-code reset).

The latent is one token of `codes` codes (8 by default): 3 bits cannot carry the next frame, only
what the context cannot predict, which in Breakout is what the player controls (DESIGN's lessons).
The decoder that turns context + latent into the next frame is the world model (`world_model.py`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

PATCH = 4  # frames are read as 4x4 space-to-depth blocks: (212, 160) -> (53, 40)
PADDED_HEIGHT = 212  # 210 rows padded to a multiple of PATCH


def block_indices(ids: torch.Tensor, classes: int) -> torch.Tensor:
    """(B, F, 210, 160) class ids -> (B, 53, 40, F * 16) int32: at each 4x4 block, the channel that
    `one_hot_blocks` sets to 1 for each (frame, pixel of the block). A 1x1 convolution of the one-hot
    blocks is then a sum of its weight's columns at these channels (`block_sum`), without
    making the one-hot tensor, 16x larger than the ids."""
    b, f, h, w = ids.shape
    ids = F.pad(ids, (0, 0, 0, PADDED_HEIGHT - h))  # (B, F, 212, 160)
    # channel = (frame * classes + id) * 16 + pixel: one pass over the ids, then one copy into blocks
    index = torch.add(_channel_offsets(f, classes, w, ids.device), ids, alpha=PATCH * PATCH)
    index = index.view(b, f, PADDED_HEIGHT // PATCH, PATCH, w // PATCH, PATCH).permute(0, 2, 4, 1, 3, 5)
    return index.reshape(b, PADDED_HEIGHT // PATCH, w // PATCH, f * PATCH * PATCH)


@functools.lru_cache(maxsize=16)
def _channel_offsets(frames: int, classes: int, width: int, device: torch.device) -> torch.Tensor:
    """(frames, 212, width) int32: `block_indices`' channel of class 0 at each frame's pixel."""
    row = torch.arange(PADDED_HEIGHT, device=device)[:, None] % PATCH
    column = torch.arange(width, device=device)[None] % PATCH
    frame = torch.arange(frames, device=device)[:, None, None] * classes * PATCH * PATCH
    return (frame + row * PATCH + column).to(torch.int32)


class _BlockSum(torch.autograd.Function):
    """`F.embedding_bag(index, table, mode="sum")` whose backward is a matrix product with the one-hot
    rows of `index`, 8,192 rows at a time (a small one-hot buffer is reused, where a whole one's
    pages are new each time): on a CPU, embedding_bag's own backward sorts the indices, 135 ms
    where this takes about 17 on the stem of a batch of 24 (an ad-hoc timing; the whole update:
    `benchmarks/train_speed.py`)."""

    chunk = 8192

    @staticmethod
    def forward(ctx, index: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.rows = table.shape[0]
        return F.embedding_bag(index, table, mode="sum")

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        (index,) = ctx.saved_tensors
        grad_table = grad.new_zeros(ctx.rows, grad.shape[1])
        for start in range(0, len(index), _BlockSum.chunk):
            rows = slice(start, start + _BlockSum.chunk)
            # a bag's indices are distinct in every use here (`block_indices`), so scatter_ counts them
            one_hot = grad.new_zeros(len(index[rows]), ctx.rows).scatter_(1, index[rows].long(), 1.0)
            grad_table.addmm_(one_hot.t(), grad[rows])
        return None, grad_table


def block_sum(index: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """(N, L) indices into `table` (V, D), distinct within each row -> (N, D): the sum of each row's
    table rows. A 1x1 convolution of one-hot blocks, read through `block_indices`."""
    if torch.is_grad_enabled() and table.requires_grad:
        return _BlockSum.apply(index, table)
    return F.embedding_bag(index, table, mode="sum")


def conv_of_blocks(index: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """A 1x1 convolution `conv` of one-hot blocks, read through `block_indices` (B, 53, 40, L): the
    sum of its weight's columns at the ids' channels plus its bias, (B, C, 53, 40) channels last."""
    b, hb, wb, n = index.shape
    x = block_sum(index.view(-1, n), conv.weight.flatten(1).t().contiguous()) + conv.bias
    return x.view(b, hb, wb, -1).permute(0, 3, 1, 2)


def one_hot_blocks(ids: torch.Tensor, classes: int) -> torch.Tensor:
    """(B, F, 210, 160) class ids -> (B, F * classes * 16, 53, 40) one-hot 4x4 blocks, channel =
    (frame, class, row-in-block, column-in-block) as `F.pixel_unshuffle` orders them. The two
    padding rows read as class 0 (black, like the frame's bottom border)."""
    b, f, h, w = ids.shape
    ids = F.pad(ids, (0, 0, 0, PADDED_HEIGHT - h))  # (B, F, 212, 160)
    blocks = ids.view(b, f, PADDED_HEIGHT // PATCH, PATCH, w // PATCH, PATCH).permute(0, 1, 3, 5, 2, 4)
    blocks = blocks.reshape(b, f, 1, PATCH * PATCH, PADDED_HEIGHT // PATCH, w // PATCH).long()
    x = torch.zeros(b, f, classes, PATCH * PATCH, PADDED_HEIGHT // PATCH, w // PATCH, device=ids.device)
    x.scatter_(2, blocks, 1.0)
    return x.view(b, f * classes * PATCH * PATCH, PADDED_HEIGHT // PATCH, w // PATCH)


@dataclass(frozen=True)
class LAMConfig:
    classes: int = field(default=9, metadata={"help": "colour classes of a frame"})
    codes: int = field(default=8, metadata={"help": "codebook size: latent actions per transition"})
    latent_dim: int = field(default=16, metadata={"help": "width of a code vector"})
    width: int = field(default=32, metadata={"help": "encoder width"})
    commitment: float = field(default=0.25, metadata={"help": "weight of the commitment loss"})
    dead_after: int = field(default=50, metadata={"help": "updates without use after which a code is reset"})
    diversity: float = field(default=0.1, metadata={"help": "weight of the code-diversity loss"})
    events: int = field(default=0, metadata={"help": "codes at the end of the codebook set aside for events "
                                                     "(`EVENTS`), taught by labels in training"})
    event_weight: float = field(default=1.0, metadata={"help": "weight of the event labels' cross-entropy"})
    event_head: bool = field(default=False, metadata={"help": "a classifier on the encoder's features picks the "
                                                              "event codes, so the free codes are placed by the "
                                                              "decoder's gradient alone (False: the event "
                                                              "cross-entropy acts on the code similarities)"})


EVENTS = ("serve", "life lost")  # the event codes, in order, after the free codes


class VectorQuantizer(nn.Module):
    """Nearest code by cosine similarity; straight-through gradients; a diversity loss (wav2vec 2.0)
    that keeps the batch's soft code assignment spread; codes unused for `dead_after` updates are
    reset to the batch's encoder outputs that their codes fit worst.

    Event codes: the last `events` codes are set aside for events that the context frames cannot
    time (`EVENTS`: a serve, a lost life). Given labels, a transition with an event takes its code and
    the others the nearest free code, so the decoder learns what each event code means from the
    start, and a cross-entropy over (best free code, event codes) teaches the encoder to pick them
    itself. Without labels (inference) the nearest of all codes wins.

    With `event_logits` (B, 1 + events) from the encoder's event head, the head picks instead: its
    cross-entropy against the labels trains it, an event's code is a plain embedding the decoder's
    gradient shapes, and only the other samples take part in the codebook, commitment and diversity
    losses, so the events never pull on where the free codes lie."""

    def __init__(self, codes: int, dim: int, commitment: float, dead_after: int, diversity: float = 0.1,
                 temperature: float = 0.1, events: int = 0, event_weight: float = 1.0):
        super().__init__()
        if not 0 <= events < codes:
            raise ValueError(f"event codes must be in 0..{codes - 1}, got {events}")
        self.codebook = nn.Parameter(F.normalize(torch.randn(codes, dim), dim=1))
        self.commitment = commitment
        self.dead_after = dead_after
        self.diversity = diversity
        self.temperature = temperature
        self.events = events
        self.event_weight = event_weight
        self.event_error = 0.0  # share of the last labelled batch whose nearest code was not its label's
        self.register_buffer("idle", torch.zeros(codes, dtype=torch.long))  # updates since last use

    def lookup(self, index: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.codebook, dim=1)[index]

    def forward(self, z: torch.Tensor, event: torch.Tensor | None = None, event_logits: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z: (B, D), event: (B,) labels (-1: none, i: `EVENTS[i]`) or None, event_logits: the event
        head's (B, 1 + events) or None -> (quantized (B, D) with straight-through gradient, index (B,),
        VQ loss). It runs in float32 under autocast (`train world-model --bf16`): the code choice and the
        dead-code reset see the encoder's output at full precision."""
        with torch.autocast(z.device.type, enabled=False):
            return self._quantize(z.float(), event, None if event_logits is None else event_logits.float())

    def _quantize(self, z: torch.Tensor, event: torch.Tensor | None, event_logits: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = F.normalize(z, dim=1)
        codebook = F.normalize(self.codebook, dim=1)
        similarity = z @ codebook.t()  # (B, codes)
        index = similarity.argmax(dim=1)  # (B,)
        free = len(codebook) - self.events
        event_loss = z.new_zeros(())
        labelled = event is not None and self.events > 0
        head = event_logits is not None and self.events > 0
        if head:
            picked = event_logits.argmax(dim=1) - 1  # -1: no event
            chosen = event if labelled else picked
            index = torch.where(chosen >= 0, free + chosen.clamp(min=0), similarity[:, :free].argmax(dim=1))
            if labelled:
                event_loss = self.event_weight * F.cross_entropy(event_logits, event + 1)
                self.event_error = (picked != event).float().mean().item()
        elif labelled:
            nearest = index
            index = torch.where(event >= 0, free + event.clamp(min=0), similarity[:, :free].argmax(dim=1))
            logits = torch.cat([torch.logsumexp(similarity[:, :free] / self.temperature, dim=1, keepdim=True),
                                similarity[:, free:] / self.temperature], dim=1)  # (B, 1 + events)
            event_loss = self.event_weight * F.cross_entropy(logits, event + 1)
            self.event_error = (nearest != index).float().mean().item()
        quantized = codebook[index]
        if head:
            plain = index < free
        else:
            plain = event < 0 if labelled else torch.ones_like(index, dtype=torch.bool)  # samples without an event
        keep = plain.float()[:, None] if head else 1.0  # the head's events stay out of the code geometry
        loss = ((keep * (quantized - z.detach()) ** 2).mean()
                + self.commitment * (keep * (z - quantized.detach()) ** 2).mean() + event_loss)
        if self.diversity and plain.any():  # over the free codes and plain samples: events are rare by nature
            mean_assignment = F.softmax(similarity[plain, :free] / self.temperature, dim=1).mean(dim=0)  # (free,)
            entropy = -(mean_assignment * torch.log(mean_assignment + 1e-9)).sum()
            loss = loss + self.diversity * (math.log(free) - entropy)
        if self.training:
            fit = similarity.detach().gather(1, index[:, None]).squeeze(1)
            fit = torch.where(plain, fit, torch.full_like(fit, math.inf))  # an event never seeds a free code
            self._reset_dead(z.detach(), index, fit)
        out = z + (quantized - z).detach()
        if head:  # an event's code is an embedding: the decoder's gradient reaches its row
            out = torch.where(plain[:, None], out, quantized)
        return out, index, loss

    @torch.no_grad()
    def _reset_dead(self, z: torch.Tensor, index: torch.Tensor, fit: torch.Tensor) -> None:
        used = torch.bincount(index, minlength=len(self.idle)) > 0
        self.idle = torch.where(used, torch.zeros_like(self.idle), self.idle + 1)
        if self.events:
            self.idle[len(self.idle) - self.events:] = 0  # event codes are rare, never reset
        dead = torch.nonzero(self.idle >= self.dead_after).flatten()
        if len(dead):
            worst = torch.argsort(fit)[:len(dead)]  # the outputs their codes fit worst
            if len(worst) < len(dead):
                worst = torch.randint(len(z), (len(dead),), device=z.device)
            self.codebook.data[dead] = z[worst] + 0.01 * torch.randn_like(z[worst])
            self.idle[dead] = 0


class LatentActionEncoder(nn.Module):
    """(last context frame, next frame) as class ids -> latent action index and its code vector."""

    def __init__(self, config: LAMConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.net = nn.Sequential(
            nn.Conv2d(2 * config.classes * PATCH * PATCH, w, 1), nn.ReLU(),  # (B, w, 53, 40)
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),  # (B, 2w, 27, 20)
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),  # (B, 2w, 14, 10)
        )
        self.head = nn.Linear(4 * w, config.latent_dim)
        self.event_head = nn.Linear(4 * w, 1 + config.events) if config.events and config.event_head else None
        self.vq = VectorQuantizer(config.codes, config.latent_dim, config.commitment, config.dead_after,
                                  config.diversity, events=config.events, event_weight=config.event_weight)

    def features(self, last: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        """last, nxt: (B, 210, 160) class ids -> pooled features (B, 4w), before the head."""
        # the first layer, a 1x1 convolution of the one-hot blocks (`one_hot_blocks`), as a sum of its
        # weight's columns at the ids' channels (`block_sum`): the same numbers, without the one-hot tensor
        index = block_indices(torch.stack([last, nxt], dim=1), self.config.classes)  # (B, 53, 40, 32)
        features = self.net[1:](conv_of_blocks(index, self.net[0]))  # (B, 2w, 14, 10)
        return torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3))], dim=1)

    def quantize(self, features: torch.Tensor, event: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pooled features (B, 4w), event: (B,) labels or None (see `VectorQuantizer`) -> (code vector
        (B, D), index (B,), VQ loss)."""
        event_logits = None if self.event_head is None else self.event_head(features)
        return self.vq(self.head(features), event, event_logits)

    def forward(self, last: torch.Tensor, nxt: torch.Tensor, event: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """last, nxt: (B, 210, 160) class ids, event: (B,) labels or None (see `VectorQuantizer`) ->
        (code vector (B, D), index (B,), VQ loss)."""
        return self.quantize(self.features(last, nxt), event)
