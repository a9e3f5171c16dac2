"""The world model: the latent action model's decoder. Context frames (oldest first) plus one latent
action give the next frame, as one colour class per pixel at the native 210x160.

The decoder is a small U-Net over 4x4 space-to-depth blocks (53x40, then 27x20 and 14x10, so its
receptive field spans the frame), conditioned on the latent code at every level. Optional dilated
blocks at 53x40 let the finest level see where the ball was two frames back (up to 28 px away).
Its output starts from a learned bias towards the last context frame, so it learns what changes:
ball, paddle, bricks, score. Training weights changed pixels up, since they are a few dozen of 33,600;
prediction undoes that weighting with a keep bonus on each pixel's current class, stronger on the
score and lives digits (`WorldModelConfig.keep_bonus`, `hud_keep_bonus`). The ball is then redrawn as
one whole ball where the model gives it the most probability (`one_ball`), and the paddle as one
whole paddle of a width the game shows (`one_paddle`). A model with a ball head (`ball_head.py`,
added by `neural-breakout train ball-head`) draws the ball where the head puts it instead, wherever
the last context frame shows a ball (`use_ball_head`); with a return head too (`train ball-head
--returns`), a ball that blinked out for a frame as it bounced comes back where that head puts it,
read from one context frame more (`use_return_head`, `context_length`; a ball head with `first_ball`
reads that frame's ball too). A model with a brick head (`train ball-head --bricks`) gives each frame
whose last context frame shows a ball exactly that frame's bricks less the one the head says the
step breaks (`use_brick_head`, `place_bricks`). A model with a paddle table
(`paddle_table.py`, added by `neural-breakout train paddle-table`) draws the paddle where the table
puts it for the latent code, the paddle's last step and its place, wherever the table has the case
(`use_paddle_table`), unless the caller places it (`predict_ids(..., paddle=)`: the env does, from
the real action). The brick rows get a stronger keep bonus (`brick_keep_bonus`): a brick goes only
where the decoder is sure of a hit. The score digits are drawn by the game's score rule
(`count_score`): the last frame's score plus the points of the bricks the step removed.

    wm = load_world_model()                 # the shipped checkpoint
    z = wm.infer_latent(context, next_frame)  # context: uint8 (k, 210, 160, 3), oldest first
    frame = wm.predict(context, z)          # uint8 (210, 160, 3)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from worldmodel.breakout import (BALL_H, BALL_LOST_TOP, BALL_W, BRICK_BOTTOM, BRICK_COLORS, BRICK_COLS, BRICK_H,
                                  BRICK_ROWS, BRICK_TOP, BRICK_W,
                                  DIGIT_GLYPHS, DIGIT_H, DIGIT_TOP, DIGIT_W, FRAME_SHAPE, LIVES_DIGIT_X, PADDLE_BOTTOM,
                                  PADDLE_TOP, PADDLE_WIDTHS, FrameInfo,
                                  PLAYFIELD_BOTTOM, PLAYFIELD_LEFT, PLAYFIELD_RIGHT, PLAYFIELD_TOP, RED,
                                  SCORE_DIGIT_X, brick_points, bricks_of_lit, parse_frame,
                                  read_playfield, read_score, score_pixels, transition_events, widest_run)
from worldmodel.ball_head import (BallHead, BallHeadConfig, brick_centres, brick_input, drawn_rows, head_input,
                                  index_to_ball, lit_without_ball, near_bricks, returning_ball)
from worldmodel.checkpoint import load_checkpoint, load_weights
from worldmodel.colors import ColorTable
from worldmodel.errors import NeuralBreakoutError
from worldmodel.lam import PATCH, LAMConfig, LatentActionEncoder, block_indices, block_sum, conv_of_blocks
from worldmodel.paddle_table import PaddleTable, PaddleTableConfig, paddle_left

WORLD_MODEL_KIND = "world-model"
# The heads a world model file may hold, each trained on real frames alone (`train ball-head`).
HEADS = ("brick_head", "ball_head", "return_head", "return_brick_head")
SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints" / "world_model.pt"
BALL_MEMORY = 256  # frames whose parse `WorldModel.parse_ids` (and so `ball_of`) remembers
H, W = FRAME_SHAPE[:2]


@dataclass(frozen=True)
class WorldModelConfig:
    colors: tuple = field(default=((0, 0, 0),), metadata={"help": "RGB of each colour class (set from the data)"})
    context: int = field(default=2, metadata={"help": "context frames (a ball needs 2 for a velocity)"})
    codes: int = field(default=8, metadata={"help": "latent actions in the codebook, event codes included"})
    event_codes: int = field(default=0, metadata={"help": "the codebook's last codes, set aside for events the "
                                                          "context cannot time (`lam.EVENTS`: serve, life lost)"})
    event_head: bool = field(default=False, metadata={"help": "a classifier on the encoder's features picks the "
                                                              "event codes (`lam.LAMConfig.event_head`)"})
    event_input: bool = field(default=False, metadata={"help": "a second part of the latent action: two bits, "
                                                               "whether the step serves a ball and whether it loses "
                                                               "a life, read from the frames "
                                                               "(`breakout.transition_events`). The latent index is "
                                                               "then code + codes * (serve + 2 * life lost) "
                                                               "(`latents`); the decoder reads the bits through "
                                                               "zero-initialised adapters (`Decoder`)"})
    latent_dim: int = field(default=16, metadata={"help": "width of a latent code vector"})
    widths: tuple = field(default=(32, 64, 128), metadata={"help": "decoder channels at 53x40, 27x20, 14x10"})
    blocks: tuple = field(default=(1, 1, 2), metadata={"help": "residual blocks per level"})
    fine_dilations: tuple = field(default=(), metadata={"help": "dilations of extra residual blocks at 53x40: "
                                                                 "a wider fine view of the fast ball"})
    position_embedding: bool = field(default=False, metadata={"help": "a learned bias per 4x4 block at the finest "
                                                                      "level: the paddle's step depends on where it is "
                                                                      "(benchmarks/paddle_steps.py), which "
                                                                      "convolutions alone do not see"})
    encoder_width: int = field(default=32, metadata={"help": "latent action encoder width"})
    changed_weight: float = field(default=20.0, metadata={"help": "loss weight of pixels that change"})
    keep_bonus: float = field(default=1.5, metadata={"help": "logit bonus of each pixel's current class when predicting "
                                                             "(the playfield; see hud_keep_bonus)"})
    hud_keep_bonus: float = field(default=2.5, metadata={"help": "the keep bonus on the rows above the playfield, the "
                                                                 "score and lives digits, so that a chance event "
                                                                 "does not draw half a new digit over the old one "
                                                                 "(benchmarks/hud_keep_bonus.py)"})
    brick_keep_bonus: float = field(default=2.5, metadata={"help": "the keep bonus on the brick rows, so that a "
                                                                   "brick goes only where the model is sure of a "
                                                                   "hit, and a gap stays a gap "
                                                                   "(benchmarks/brick_keep_bonus.py)"})
    one_ball: bool = field(default=True, metadata={"help": "draw the ball as one whole 2x4 ball where the model "
                                                           "gives a ball the most probability, instead of the "
                                                           "pixels that win their own argmax "
                                                           "(benchmarks/decoding.py)"})
    one_paddle: bool = field(default=True, metadata={"help": "draw the paddle as one whole paddle, 12 or 16 px wide "
                                                              "(`breakout.PADDLE_WIDTHS`), where the model's pixels "
                                                              "make it most likely, instead of each column's own "
                                                              "argmax, which leaves an edge 2 px off "
                                                              "(benchmarks/decoding.py)"})
    paddle_width_bonus: float = field(default=20.0, metadata={"help": "with one_paddle: log-odds bonus of the last "
                                                                     "frame's paddle width (the paddle keeps its "
                                                                     "width but for a rare shrink)"})
    ball_head: dict | None = field(default=None, metadata={"help": "the ball head's settings "
                                                                 "(`ball_head.BallHeadConfig`), set by `train "
                                                                 "ball-head`; None: no ball head"})
    use_ball_head: bool = field(default=True, metadata={"help": "with one_ball and a ball head: the head places the "
                                                                "ball wherever the last context frame shows one "
                                                                "(`WorldModel.place_ball_with_head`)"})
    return_head: dict | None = field(default=None, metadata={"help": "the return head's settings "
                                                                   "(`ball_head.BallHeadConfig`), set by `train "
                                                                   "ball-head --returns`; None: no return head"})
    use_return_head: bool = field(default=True, metadata={"help": "with a ball head and a return head: a ball that "
                                                                  "the two frames before the last showed and the "
                                                                  "last does not (it blinked out as it bounced) "
                                                                  "shows again where the return head puts it; the "
                                                                  "model then reads one context frame more "
                                                                  "(`WorldModel.context_length`), for that ball"})
    brick_head: dict | None = field(default=None, metadata={"help": "the brick head's settings "
                                                                  "(`ball_head.BallHeadConfig`), set by `train "
                                                                  "ball-head --bricks`; None: no brick head"})
    use_brick_head: bool = field(default=True, metadata={"help": "with a brick head: wherever the last context frame "
                                                                 "shows a ball, the next frame has exactly its "
                                                                 "bricks less the one the head says the step breaks "
                                                                 "(none where the ball is far from the bricks) "
                                                                 "(`WorldModel.place_bricks`)"})
    return_brick_head: dict | None = field(default=None, metadata={"help": "the return brick head's settings "
                                                                         "(`ball_head.BallHeadConfig`), set by "
                                                                         "`train ball-head --returns --bricks`; "
                                                                         "None: no return brick head"})
    use_return_brick_head: bool = field(default=True, metadata={"help": "with a return brick head: where the last "
                                                                        "context frame shows no ball and the two "
                                                                        "before showed one near the bricks (it "
                                                                        "blinked out, often inside the brick it "
                                                                        "hits), the next frame has exactly its "
                                                                        "bricks less the one the head says the "
                                                                        "step breaks; the model then reads one "
                                                                        "context frame more (`context_length`)"})
    paddle_table: dict | None = field(default=None, metadata={"help": "the paddle table's settings "
                                                                    "(`paddle_table.PaddleTableConfig`), set by "
                                                                    "`train paddle-table`; None: no paddle table"})
    use_paddle_table: bool = field(default=True, metadata={"help": "with one_paddle and a paddle table: the paddle "
                                                                   "goes where the table puts it for the latent "
                                                                   "code, its last step and its place, wherever "
                                                                   "the table has the case (`WorldModel.place_paddle`)"})
    ball_blips: bool = field(default=True, metadata={"help": "with a ball head: the head may take the ball away at "
                                                             "any height, as the real ball blinks out for a step "
                                                             "(about 1% of recorded transitions); False: only from "
                                                             "row `breakout.BALL_LOST_TOP` down, where the recorded "
                                                             "games lose it for good, and elsewhere the ball goes "
                                                             "to the head's likeliest place "
                                                             "(benchmarks/ball_gone.py)"})
    gone_above: float | None = field(default=0.7, metadata={"help": "with a ball head and ball_blips: above row "
                                                                    "`breakout.BALL_LOST_TOP` the head takes the "
                                                                    "ball away only where its probability of \"no "
                                                                    "ball\" is above this (the places share the "
                                                                    "rest); None: where \"no ball\" outscores the "
                                                                    "likeliest single place. A ball taken away by "
                                                                    "mistake loses its flight; 0.7 was chosen on "
                                                                    "training episodes' rollouts "
                                                                    "(benchmarks/ball_blinks.py --split train)"})
    keep_gaps: bool = field(default=True, metadata={"help": "a brick cell the last context frame shows empty stays "
                                                            "empty: no brick comes back, as none does in the "
                                                            "recorded games (benchmarks/bricks_back.py); off: the "
                                                            "decoder's pixels decide"})
    one_brick: bool = field(default=True, metadata={"help": "at most one brick goes a step, as in all 117,180 "
                                                            "recorded transitions (benchmarks/bricks_back.py): "
                                                            "where the decoder takes more, only the cell it is "
                                                            "surest of goes, and the others stay as the last "
                                                            "context frame shows them (`WorldModel.one_brick`)"})
    whole_bricks: bool = field(default=True, metadata={"help": "with a brick head: each brick cell the decided frame "
                                                               "keeps is drawn whole in its row's colour "
                                                               "(`breakout.BRICK_COLORS`), as every recorded frame "
                                                               "shows it; off: the decoder's pixels, which leave a "
                                                               "hole where the last frame's ball overlapped the "
                                                               "brick (`WorldModel.whole_bricks`)"})
    count_score: bool = field(default=True, metadata={"help": "draw the score digits as the score the last context "
                                                              "frame shows plus the points of the bricks the step "
                                                              "removed (`breakout.BRICK_POINTS`), instead of the "
                                                              "decoder's pixels, which stop counting on a "
                                                              "half-drawn digit (`WorldModel.count_score`, "
                                                              "benchmarks/score_rule.py)"})
    whole_digits: bool = field(default=False, metadata={"help": "draw each score and lives digit as the whole glyph "
                                                                "the model's pixels make most likely, instead of "
                                                                "each pixel's own argmax; off: a glyph that flips "
                                                                "by chance makes a bigger error than a half-drawn "
                                                                "one (benchmarks/decoding.py)"})

    @property
    def classes(self) -> int:
        return len(self.colors)

    @property
    def latents(self) -> int:
        """Latent actions a transition can take: the codes, times 4 with the event input."""
        return self.codes * (4 if self.event_input else 1)

    @property
    def lam(self) -> LAMConfig:
        return LAMConfig(classes=self.classes, codes=self.codes, latent_dim=self.latent_dim, width=self.encoder_width,
                         events=self.event_codes, event_head=self.event_head)


def events_to_bits(event_inputs: torch.Tensor) -> torch.Tensor:
    """Event inputs (B,) in 0..3 (serve + 2 * life lost) -> (B, 4) float: serve, no serve, life lost,
    no life lost. Each event's "no" has its own adapter too, so that the decoder can learn to hold
    back what the model without the input drew by chance (a ball in a frame waiting for a serve)."""
    serve, lost = (event_inputs.long() % 2).float(), (event_inputs.long() // 2).float()
    return torch.stack([serve, 1 - serve, lost, 1 - lost], dim=1)


class ResBlock(nn.Module):
    def __init__(self, channels: int, latent_dim: int, dilation: int = 1, event_input: bool = False):
        super().__init__()
        self.norm1 = nn.GroupNorm(8, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.cond = nn.Linear(latent_dim, channels)
        self.norm2 = nn.GroupNorm(8, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        # the event input's channel bias: zero at first, so the block starts as the one without it
        self.event_cond = nn.Linear(4, channels, bias=False) if event_input else None
        if self.event_cond is not None:
            nn.init.zeros_(self.event_cond.weight)

    def forward(self, x: torch.Tensor, latent: torch.Tensor, bits: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, h, w), latent (B, D), bits (B, 4) (`events_to_bits`) or None (a block without event input)."""
        cond = self.cond(latent)
        if self.event_cond is not None:
            cond = cond + self.event_cond(bits)
        h = self.conv1(F.silu(self.norm1(x))) + cond[:, :, None, None]
        return x + self.conv2(F.silu(self.norm2(h)))


class Decoder(nn.Module):
    """(context class ids (B, k, 210, 160), latent code vectors (B, D)) -> logits (B, K, 210, 160).

    With `event_input`, also the step's events (B, 4) (`events_to_bits`: serve or not, life lost or
    not): each adds a learned map at the finest level (where a served ball appears, where the lives
    digit changes, where neither may) and a channel bias in every residual block. Both start at
    zero, so a model fine-tuned from one without the input starts as that model
    (`train world-model --event-input`)."""

    def __init__(self, config: WorldModelConfig):
        super().__init__()
        self.config = config
        k, classes, d = config.context, config.classes, config.latent_dim
        block = classes * PATCH * PATCH  # one frame's one-hot channels per 4x4 block
        w0, w1, w2 = config.widths
        self.stem = nn.Conv2d(k * block, w0, 1)
        # zero at first, so a model fine-tuned from one without it starts as that model
        self.position = nn.Parameter(torch.zeros(w0, -(-H // PATCH), W // PATCH)) if config.position_embedding else None
        event = config.event_input
        self.event_map = nn.Parameter(torch.zeros(4, w0, -(-H // PATCH), W // PATCH)) if event else None
        dilations = (1,) * config.blocks[0] + tuple(config.fine_dilations)
        self.level0 = nn.ModuleList(ResBlock(w0, d, dilation, event) for dilation in dilations)
        self.down1 = nn.Conv2d(w0, w1, 3, stride=2, padding=1)  # 53x40 -> 27x20
        self.level1 = nn.ModuleList(ResBlock(w1, d, event_input=event) for _ in range(config.blocks[1]))
        self.down2 = nn.Conv2d(w1, w2, 3, stride=2, padding=1)  # 27x20 -> 14x10
        self.level2 = nn.ModuleList(ResBlock(w2, d, event_input=event) for _ in range(config.blocks[2]))
        self.up1 = nn.Conv2d(w2 + w1, w1, 1)  # merge the upsampled coarse level with the skip
        self.up1_block = ResBlock(w1, d, event_input=event)
        self.up0 = nn.Conv2d(w1 + w0, w0, 1)
        self.up0_block = ResBlock(w0, d, event_input=event)
        self.head = nn.Conv2d(w0 + block, block, 1)
        self.copy_bias = nn.Parameter(torch.tensor(4.0))  # starts as copy-last-frame

    def forward(self, context: torch.Tensor, latent: torch.Tensor, bits: torch.Tensor | None = None) -> torch.Tensor:
        b, k, h, w = context.shape
        assert k == self.config.context and (h, w) == (H, W), f"expected (B, {self.config.context}, 210, 160), got {context.shape}"
        if (bits is None) == self.config.event_input:
            raise ValueError("a decoder with event input needs `bits` (B, 4), one without takes none")
        # The stem and the head's reading of the newest frame are 1x1 convolutions of one-hot 4x4
        # blocks (`lam.one_hot_blocks`): sums of their weights' columns at the ids' channels.
        index = block_indices(context, self.config.classes)  # (B, 53, 40, k*16)
        hb, wb = index.shape[1:3]
        h0 = conv_of_blocks(index, self.stem)  # (B, w0, 53, 40), channels last
        if self.position is not None:
            h0 = h0 + self.position
        if bits is not None:
            bits = bits.to(h0.dtype)
            # the event maps' sum as one matrix product over (h, w, C) rows, which is a view of the
            # channels-last weight at inference (`for_inference`): einsum copied the (4, C, h, w) map each step
            event = self.event_map.permute(0, 2, 3, 1)  # (4, h, w, C)
            h0 = h0 + (bits @ event.reshape(len(event), -1)).view(b, *event.shape[1:]).permute(0, 3, 1, 2)
        for blk in self.level0:
            h0 = blk(h0, latent, bits)
        h1 = self.down1(F.silu(h0))  # (B, w1, 27, 20)
        for blk in self.level1:
            h1 = blk(h1, latent, bits)
        h2 = self.down2(F.silu(h1))  # (B, w2, 14, 10)
        for blk in self.level2:
            h2 = blk(h2, latent, bits)
        u1 = F.interpolate(h2, size=h1.shape[-2:], mode="nearest")
        u1 = self.up1_block(self.up1(torch.cat([u1, h1], dim=1)), latent, bits)  # (B, w1, 27, 20)
        u0 = F.interpolate(u1, size=h0.shape[-2:], mode="nearest")
        u0 = self.up0_block(self.up0(torch.cat([u0, h0], dim=1)), latent, bits)  # (B, w0, 53, 40)
        # head(cat[silu(u0), last]) + copy_bias * last, with `last` the newest frame's one-hot blocks,
        # worked out per block (rows of (B*53*40, K*16)), then F.pixel_shuffle's order
        block = self.config.classes * PATCH * PATCH
        w0 = u0.shape[1]
        weight = self.head.weight.flatten(1)  # (K*16, w0 + K*16)
        eye = torch.eye(block, dtype=weight.dtype, device=weight.device)
        table = weight[:, w0:].t() + self.copy_bias * eye + self.head.bias / (PATCH * PATCH)  # 16 rows a block
        last = index[..., -PATCH * PATCH:] - (k - 1) * block  # the newest frame's channels, (B, 53, 40, 16)
        logits = block_sum(last.reshape(-1, PATCH * PATCH), table.contiguous())  # (B*53*40, K*16)
        logits = torch.addmm(logits, F.silu(u0).permute(0, 2, 3, 1).reshape(-1, w0), weight[:, :w0].t())
        logits = logits.view(b, hb, wb, self.config.classes, PATCH, PATCH).permute(0, 3, 1, 4, 2, 5)
        return logits.reshape(b, self.config.classes, hb * PATCH, wb * PATCH)[:, :, :H]  # (B, K, 210, 160)


class WorldModel(nn.Module):
    """Latent action encoder + decoder, trained together; the decoder alone is the world model."""

    def __init__(self, config: WorldModelConfig):
        super().__init__()
        self.config = config
        self.encoder = LatentActionEncoder(config.lam)
        self.decoder = Decoder(config)
        self.table = ColorTable(config.colors)
        self.ball_head = self.return_head = None
        if config.ball_head:
            self.ball_head = BallHead(head_config(config.ball_head))
        if config.return_head:
            self.return_head = BallHead(head_config(config.return_head))
        self.brick_head = BallHead(head_config(config.brick_head)) if config.brick_head else None
        self.return_brick_head = BallHead(head_config(config.return_brick_head)) if config.return_brick_head else None
        self.paddle_table = PaddleTable(PaddleTableConfig(**config.paddle_table)) if config.paddle_table else None
        self._parsed: dict[bytes, FrameInfo] = {}  # `parse_ids`' memory

    def with_settings(self, **changes) -> "WorldModel":
        """A model with these weights and summary and some `WorldModelConfig` settings changed (for
        example `use_brick_head=False`), in eval mode: two settings compared on the same checkpoint."""
        other = WorldModel(replace(self.config, **changes))
        other.load_state_dict(self.state_dict())
        other.summary = getattr(self, "summary", {})
        return for_inference(other)

    def codes_fingerprint(self) -> str:
        """A short hash of the latent action encoder's weights, codebook included: what the codes mean.
        An action map records the one it was trained on, and the env refuses a map whose codes are
        another world model's (the same number of codes, read by another encoder, would drive the
        decoder with the wrong latents and no error)."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.encoder.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().float().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    @property
    def context_length(self) -> int:
        """Frames a context holds: the decoder's `config.context`, and one more with a return head in
        use or a head that reads the ball three frames back (`BallHeadConfig.first_ball`; only the ball
        of that oldest frame is read), or a return brick head in use."""
        return self.config.context + int(self.returns or self.first_ball or self.return_bricks)

    @property
    def first_ball(self) -> bool:
        """Does a head in use read the ball three frames back (`BallHeadConfig.first_ball`)?"""
        c = self.config
        ball = self.ball_head is not None and c.one_ball and c.use_ball_head and self.ball_head.config.first_ball
        bricks = self.brick_head is not None and c.use_brick_head and self.brick_head.config.first_ball
        return ball or bricks

    @property
    def returns(self) -> bool:
        """Does the return head bring back a ball that blinked out (`place_ball_with_head`)?"""
        c = self.config
        return (self.return_head is not None and self.ball_head is not None and c.one_ball and c.use_ball_head
                and c.use_return_head)

    @property
    def return_bricks(self) -> bool:
        """Does the return brick head decide the bricks of a step whose ball blinked out (`place_bricks`)?"""
        return self.return_brick_head is not None and self.config.use_return_brick_head

    @property
    def keep_bonus(self) -> float:
        """Added to the logit of each pixel's current class before the argmax (`config.keep_bonus`)."""
        return self.config.keep_bonus

    def keep_bonus_rows(self) -> torch.Tensor:
        """The keep bonus of each pixel row (210, 1): `config.hud_keep_bonus` on the rows above the
        playfield (score and lives digits), `config.brick_keep_bonus` on the brick rows, `config.keep_bonus`
        elsewhere."""
        rows = torch.full((H, 1), float(self.config.keep_bonus))
        rows[:PLAYFIELD_TOP] = self.config.hud_keep_bonus
        rows[BRICK_TOP:BRICK_BOTTOM] = self.config.brick_keep_bonus
        return rows

    def _kept(self, logits: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """Logits (B, K, 210, 160) plus the keep bonus on each pixel's class in `last` (B, 210, 160)."""
        b = len(last)
        bonus = self.keep_bonus_rows().expand(H, W)
        return logits.scatter_add(1, last[:, None].long(), bonus.to(logits).expand(b, 1, H, W))

    def _decide(self, logits: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """Logits (B, K, 210, 160) without keep bonus -> class ids (B, 210, 160) as `predict` picks each
        pixel: with the keep bonus on the pixel's class in `last` (B, 210, 160). (`max().indices`: a
        channel `argmax` is about ten times slower on a CPU.)"""
        return self._kept(logits, last).max(dim=1).indices

    def event_parameters(self) -> list[nn.Parameter]:
        """The parameters of the event input: the decoder's map and channel biases."""
        if not self.config.event_input:
            return []
        adapters = [m.event_cond.weight for m in self.decoder.modules() if isinstance(m, ResBlock)]
        return [self.decoder.event_map, *adapters]

    def read_events(self, context: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        """The event input of each transition (B,) in 0..3 (serve + 2 * life lost), read by the frame
        parser from the context (B, k, 210, 160) and next frame (B, 210, 160) class ids
        (`breakout.transition_events`): the latent action model reads events from the pixels."""
        frames = self.table.to_rgb(torch.cat([context, nxt[:, None]], dim=1).cpu().numpy())  # (B, k + 1, 210, 160, 3)
        events = []
        for clip in frames:
            infos = [parse_frame(frame) for frame in clip]
            serve, lost = transition_events(infos[:-1], infos[-1])
            events.append(int(serve) + 2 * int(lost))
        return torch.tensor(events, dtype=torch.long, device=context.device)

    def _event_inputs(self, context: torch.Tensor, nxt: torch.Tensor, event_inputs: torch.Tensor | None
                      ) -> torch.Tensor | None:
        """(B,) event inputs of a model with event input: `event_inputs` where given, else read from the
        frames (`read_events`). None for a model without."""
        if not self.config.event_input:
            return None
        return self.read_events(context, nxt) if event_inputs is None else event_inputs

    def loss(self, context: torch.Tensor, target: torch.Tensor, false_changes: torch.Tensor | None = None,
             serve_probe: tuple[nn.Module, torch.Tensor, float] | None = None,
             events: torch.Tensor | None = None, encoder_last: torch.Tensor | None = None,
             train_encoder: bool = True, event_inputs: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """context (B, k, 210, 160), target (B, 210, 160) class ids -> (loss, metrics).

        Changed pixels weigh `changed_weight` more. In the samples that `false_changes` (B,) marks,
        so do the pixels the model would change but the real frame keeps: a serve that does not
        come costs as much as one that comes and is missed, and the latent has to tell them apart.

        `serve_probe` = (probe, labels (B,) bool, weight): the probe maps the quantized latent (B, D)
        to a logit of "this transition serves a ball"; its binary cross-entropy, times the weight, is
        added. The probe sees only the code, so the encoder has to give serves a code of their own.

        `events` (B,) labels each transition's event (-1: none, i: `lam.EVENTS[i]`) for a model with
        event codes: events take their code (`VectorQuantizer`).

        `encoder_last` (B, 210, 160): the frame the encoder reads before `target`, where it is not the
        context's last: in a batch whose context the model rolled out itself, the real frame keeps the
        latent the action the video shows, as the action map will give it, instead of the correction
        from the model's frame to the real one.

        `train_encoder` False: the encoder and its codebook get no gradient and no VQ loss from this
        batch, so only the decoder learns from it (what the codes mean is set by other batches).

        `event_inputs` (B,) in 0..3: each transition's event input (serve + 2 * life lost) for a model
        with one (`WorldModelConfig.event_input`); None reads them from the frames (`read_events`)."""
        last = context[:, -1] if encoder_last is None else encoder_last
        if train_encoder:
            latent, index, vq_loss = self.encoder(last, target, events)
        else:
            mode = self.encoder.training
            self.encoder.eval()  # no dead-code reset either
            with torch.no_grad():
                latent, index, _ = self.encoder(last, target, events)
            self.encoder.train(mode)
            vq_loss = latent.new_zeros(())
        inputs = self._event_inputs(context, target, event_inputs)
        logits = self.decoder(context, latent, None if inputs is None else events_to_bits(inputs))
        changed = target != context[:, -1]
        weighted = changed
        if false_changes is not None and false_changes.any():
            last = context[false_changes, -1]
            would = self._decide(logits[false_changes].detach(), last) != last
            weighted = changed.clone()
            weighted[false_changes] |= would
        changed = changed.float()
        weights = 1.0 + self.config.changed_weight * weighted.float()
        ce = F.cross_entropy(logits, target.long(), reduction="none")  # (B, 210, 160)
        recon = (weights * ce).sum() / weights.sum()
        total = recon + vq_loss
        serve_metrics = {}
        if serve_probe is not None:
            probe, labels, weight = serve_probe
            logit = probe(latent).squeeze(-1)
            serve_loss = F.binary_cross_entropy_with_logits(logit, labels.float())
            total = total + weight * serve_loss
            serve_metrics = dict(serve_label=serve_loss.item(),
                                 serve_label_error=((logit > 0) != labels.bool()).float().mean().item())
        if events is not None and self.config.event_codes:
            serve_metrics["event_error"] = self.encoder.vq.event_error
        with torch.no_grad():  # error rates on 4 samples: argmax over classes is costly on a CPU
            few = slice(0, 4)
            predicted = self._decide(logits[few].detach(), context[few, -1])
            wrong = (predicted != target[few]).float()
            changed = changed[few]
            usage = torch.bincount(index, minlength=self.config.codes).float() / len(index)
            perplexity = torch.exp(-(usage * torch.log(usage + 1e-10)).sum())
        metrics = dict(recon=recon.item(), vq=vq_loss.item(), pixel_error=wrong.mean().item(),
                       changed_pixel_error=((wrong * changed).sum() / changed.sum().clamp(min=1)).item(),
                       perplexity=perplexity.item(), codes_used=int((usage > 0).sum()), **serve_metrics)
        return total, metrics

    # ---- inference on class ids --------------------------------------------------------------
    @torch.no_grad()
    def infer_latent_ids(self, context: torch.Tensor, nxt: torch.Tensor, events: torch.Tensor | None = None,
                         event_inputs: torch.Tensor | None = None) -> torch.Tensor:
        """(B, k, 210, 160), (B, 210, 160) class ids -> latent indices (B,). With `events` labels
        (a model with event codes) the indices are those the decoder was trained on: an event's code,
        else the nearest free code. With event input, the index is code + codes * event input, the event
        input from `event_inputs` (B,) where given, else read from the frames (`read_events`). A context
        of more frames than `config.context` is read from its newest."""
        context = context[:, -self.config.context:]
        index = self.encoder(context[:, -1], nxt, events)[1]
        inputs = self._event_inputs(context, nxt, event_inputs)
        return index if inputs is None else index + self.config.codes * inputs.to(index)

    @torch.no_grad()
    def predict_ids(self, context: torch.Tensor, latent_index: torch.Tensor,
                    paddle: list[int | None] | None = None) -> torch.Tensor:
        """(B, k, 210, 160) class ids, (B,) latent indices -> next frame class ids (B, 210, 160) uint8.
        `paddle` (B,): the left edge of each next frame's paddle, where the caller knows it better than
        the latent can say (the env, from the real action: `ActionMap.paddle_step`); None entries keep
        the paddle table's place (`paddle_targets`). Used with `one_paddle` only.

        The context may hold more frames than the decoder reads (`config.context`, its newest): the
        return head reads the ball of the frame before them (`context_length` frames in all)."""
        if context.shape[1] < self.config.context:
            raise ValueError(f"context of {context.shape[1]} frames, the model needs at least {self.config.context}")
        full, context = context, context[:, -self.config.context:]
        bits, codes = None, latent_index % self.config.codes
        if self.config.event_input:
            latent_index, bits = codes, events_to_bits(latent_index // self.config.codes)
        latent = self.encoder.vq.lookup(latent_index)
        logits = self.decoder(context, latent, bits)  # without keep bonus
        kept = self._kept(logits, context[:, -1])
        ids = kept.max(dim=1).indices.to(torch.uint8)
        if self.config.whole_digits:
            ids = self.place_digits(kept, ids)
        if self.config.keep_gaps:
            ids = self.keep_gaps(ids, context)
        if self.config.one_brick:
            ids = self.one_brick(ids, kept, context)
        if (self.brick_head is not None and self.config.use_brick_head) or self.return_bricks:
            ids = self.place_bricks(ids, full)
            if self.config.whole_bricks:
                ids = self.whole_bricks(ids)
        if self.config.count_score:
            ids = self.count_score(ids, context)
        if self.config.one_paddle:
            targets = [None] * len(ids)
            red = self.table.class_of(RED)
            if self.paddle_table is not None and self.config.use_paddle_table and red is not None:
                targets = self.paddle_targets(context, codes, red)
            if paddle is not None:
                if len(paddle) != len(ids):
                    raise ValueError(f"paddle: one left edge (or None) per frame, got {len(paddle)} for {len(ids)}")
                targets = [t if p is None else p for p, t in zip(paddle, targets)]
            ids = self.place_paddle(kept, ids, context, targets)
        if not self.config.one_ball:
            return ids
        if self.ball_head is not None and self.config.use_ball_head:
            return self.place_ball_with_head(logits, ids, full)
        return self.place_ball(logits, ids)

    def keep_gaps(self, ids: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Clear each brick cell of the decided frames `ids` (B, 210, 160) that the last context frame
        (`context` (B, k, 210, 160) class ids) shows without a brick (`breakout.bricks_of_lit`) and the
        decided frame with one: in the recorded games no brick ever comes back. A ball in the cell is
        cleared too; `place_ball_with_head` draws the ball afterwards."""
        black = self.table.black
        if black is None:
            return ids
        last, decided = self._brick_maps(ids, context)
        out = ids
        for b in range(len(ids)):
            back = decided[b] & ~last[b]  # (6, 18)
            if not back.any():
                continue
            if out is ids:
                out = ids.clone()
            cells = np.kron(back, np.ones((BRICK_H, BRICK_W), dtype=bool))  # (36, 144)
            out[b, BRICK_TOP:BRICK_BOTTOM, PLAYFIELD_LEFT:PLAYFIELD_RIGHT][torch.from_numpy(cells).to(out.device)] = black
        return out

    def _brick_maps(self, ids: torch.Tensor, context: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The (B, 6, 18) brick maps (`breakout.bricks_of_lit`) of the last context frame and of the
        decided frames `ids` (B, 210, 160)."""
        band, cols = slice(BRICK_TOP, BRICK_BOTTOM), slice(PLAYFIELD_LEFT, PLAYFIELD_RIGHT)
        maps = [np.stack([bricks_of_lit(lit) for lit in (frames[:, band, cols] != self.table.black).cpu().numpy()])
                for frames in (context[:, -1], ids)]
        return maps[0], maps[1]

    def one_brick(self, ids: torch.Tensor, kept: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Where a decided frame `ids` (B, 210, 160) lacks more than one brick cell that the last context
        frame (`context` (B, k, 210, 160) class ids) shows (`breakout.bricks_of_lit`), only the cell whose
        pixels have the highest mean log-probability of black in the logits with keep bonus `kept`
        (B, K, 210, 160) stays cleared; the others get the last frame's pixels back. In the recorded
        games no step removes two bricks."""
        black = self.table.black
        if black is None:
            return ids
        band, cols = slice(BRICK_TOP, BRICK_BOTTOM), slice(PLAYFIELD_LEFT, PLAYFIELD_RIGHT)
        last_ids = context[:, -1, band, cols]
        last, decided = self._brick_maps(ids, context)
        out = ids
        for b in range(len(ids)):
            gone = last[b] & ~decided[b]  # (6, 18)
            if gone.sum() <= 1:
                continue
            if out is ids:
                out = ids.clone()
            log_black = kept[b, :, band, cols].float().log_softmax(dim=0)[black]  # (36, 144)
            surest = log_black.reshape(BRICK_ROWS, BRICK_H, BRICK_COLS, BRICK_W).mean(dim=(1, 3)).cpu().numpy()
            rows, columns = np.nonzero(gone)
            best = int(np.argmax(surest[rows, columns]))
            gone[rows[best], columns[best]] = False  # the one brick that goes
            cells = torch.from_numpy(np.kron(gone, np.ones((BRICK_H, BRICK_W), dtype=bool))).to(out.device)
            region = out[b, band, cols]  # a view
            region[cells] = last_ids[b][cells]
        return out

    def parse_ids(self, frame: torch.Tensor, rgb: np.ndarray | None = None) -> FrameInfo:
        """`parse_frame` of a class-id frame (210, 160), remembered for the last `BALL_MEMORY` frames
        asked about: in a rollout each generated frame is read by the env that made it, then as the
        last context frame, the one before and the third, by the brick heads and the ball heads alike.
        `rgb`: the frame's colours (`table.to_rgb`), where the caller has made them already."""
        frame = frame.cpu().numpy()
        key = frame.tobytes()
        if key not in self._parsed:
            if len(self._parsed) >= BALL_MEMORY:
                del self._parsed[next(iter(self._parsed))]  # the oldest
            info = parse_frame(self.table.to_rgb(frame) if rgb is None else rgb)
            info.bricks.setflags(write=False)  # shared by every caller that asks about this frame
            self._parsed[key] = info
        return self._parsed[key]

    def ball_of(self, frame: torch.Tensor) -> tuple[int, int] | None:
        """`parse_frame(...).ball` of a class-id frame (210, 160), remembered (`parse_ids`)."""
        return self.parse_ids(frame).ball

    def lit_of(self, frame: torch.Tensor) -> np.ndarray:
        """`breakout.lit_pixels` of a class-id frame (210, 160): every class but black is a colour
        that is not black (the table's colours are distinct), so no RGB frame is needed."""
        return frame.cpu().numpy() != self.table.black

    def place_bricks(self, ids: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Give each decided frame `ids` (B, 210, 160) whose last context frame (`context` (B, k, 210,
        160) class ids) shows a ball exactly that frame's bricks less the one cell the brick head says
        the step breaks (no cell where the ball's window does not reach the bricks, `near_bricks`): a
        cell to clear turns black, a cell to keep gets the last frame's pixels back. Where the last
        frame shows no ball and the two before showed one near the bricks (`returning_ball`: it
        blinked out), the return brick head decides the same way, its window on the last ball seen.
        Other frames without a ball keep the decoder's bricks (`keep_gaps` and `one_brick` still hold
        there)."""
        black, head, back_head = self.table.black, self.brick_head, self.return_brick_head
        if black is None:
            return ids
        if not self.config.use_brick_head:
            head = None
        if not self.return_bricks or context.shape[1] < 3:
            back_head = None
        band, cols = slice(BRICK_TOP, BRICK_BOTTOM), slice(PLAYFIELD_LEFT, PLAYFIELD_RIGHT)
        before = -2 if context.shape[1] > 1 else -1  # the frame before the last (the last, alone)
        last, decided = self._brick_maps(ids, context)
        wanted = last.copy()  # (B, 6, 18): no brick goes unless a head says so
        asked = {"ball": [], "back": []}  # (b, input, the ball the window sits on)
        for b in range(len(ids)):
            ball = self.ball_of(context[b, -1])
            if ball is None or head is None:
                seen = self.ball_of(context[b, before]) if back_head is not None and ball is None else None
                oldest = self.ball_of(context[b, -3]) if seen else None
                if seen is not None and returning_ball(oldest, seen) and near_bricks(seen, back_head.config.window):
                    x = brick_input(self.lit_of(context[b, before]), self.lit_of(context[b, -1]), oldest, seen,
                                    back_head.config.window)
                    asked["back"].append((b, x, seen))
                else:
                    wanted[b] = decided[b]
                continue
            if near_bricks(ball, head.config.window):
                first = head.config.first_ball and context.shape[1] > 2
                ball_first = self.ball_of(context[b, -3]) if first else None
                x = brick_input(self.lit_of(context[b, before]), self.lit_of(context[b, -1]),
                                self.ball_of(context[b, before]), ball, head.config.window, head.config.first_ball,
                                ball_first)
                asked["ball"].append((b, x, ball))
        for name, which in (("ball", head), ("back", back_head)):
            if not asked[name]:
                continue
            scores = which(torch.from_numpy(np.stack([a[1] for a in asked[name]])).to(ids.device))  # (n, c * c + 1)
            for (b, _, ball), row in zip(asked[name], scores):
                centres = brick_centres(last[b], ball, which.config.window)  # the cells it may break
                if not centres:
                    continue
                index = torch.tensor(list(centres), device=row.device)
                best = int(row[index].argmax())
                if row[index[best]] > row[-1]:
                    wanted[b][centres[int(index[best])]] = False
        out = ids
        for b in np.flatnonzero((wanted != decided).any(axis=(1, 2))):
            if out is ids:
                out = ids.clone()
            region = out[b, band, cols]  # a view
            clear = torch.from_numpy(np.kron(decided[b] & ~wanted[b], np.ones((BRICK_H, BRICK_W), dtype=bool)))
            region[clear.to(out.device)] = black
            keep = torch.from_numpy(np.kron(wanted[b] & ~decided[b], np.ones((BRICK_H, BRICK_W), dtype=bool)))
            region[keep.to(out.device)] = context[b, -1, band, cols][keep.to(out.device)]
        return out

    def whole_bricks(self, ids: torch.Tensor) -> torch.Tensor:
        """Draw each brick cell that the decided frames `ids` (B, 210, 160) keep (`breakout.bricks_of_lit`)
        whole in its row's colour (`breakout.BRICK_COLORS`), as the game draws a brick: the decoder's
        pixels can leave a hole where the last frame's ball overlapped the cell, which the heads, reading
        lit pixels, never saw in a real frame. A ball over a brick is hidden in the game (it takes the
        row's colour), so no ball pixel is lost. Rows whose colour the table lacks are left as decided."""
        classes = [self.table.class_of(colour) for colour in BRICK_COLORS]
        if self.table.black is None or None in classes:
            return ids
        band, cols = slice(BRICK_TOP, BRICK_BOTTOM), slice(PLAYFIELD_LEFT, PLAYFIELD_RIGHT)
        region = ids[:, band, cols]
        lit = (region != self.table.black).reshape(len(ids), BRICK_ROWS, BRICK_H, BRICK_COLS, BRICK_W)
        present = lit.sum(dim=(2, 4)) > (BRICK_H * BRICK_W) // 2  # (B, 6, 18): `bricks_of_lit`'s rule
        cells = present.repeat_interleave(BRICK_H, dim=1).repeat_interleave(BRICK_W, dim=2)  # (B, 36, 144)
        colour = torch.tensor(classes, dtype=ids.dtype, device=ids.device).repeat_interleave(BRICK_H)[None, :, None]
        whole = torch.where(cells, colour, region)
        if torch.equal(whole, region):
            return ids
        out = ids.clone()
        out[:, band, cols] = whole
        return out

    def count_score(self, ids: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Redraw the score digits of each decided frame `ids` (B, 210, 160) as the score the last context
        frame (`context` (B, k, 210, 160) class ids) shows, plus the points of the bricks that the step
        removed (`breakout.brick_points`), plus what the last frame still owes for the bricks of the
        step before it, in whole glyphs of the colour that frame draws them in.

        The recorded games count each brick on the step that removes it, or, when the ball hits it
        on the step's last emulated frame, on the next step (`benchmarks/score_rule.py`: 75% and 25%,
        no other change of score). The decoder's own digits learned neither: one that chance left
        half drawn was never moved on, and the score stopped counting. Here the score counts each
        brick the frames lose at once, and a real context whose score lags gets the lag back."""
        black = self.table.black
        if black is None:
            return ids
        out = ids.clone()
        decided, frames = out.cpu().numpy(), context[:, -2:].cpu().numpy()  # (B, 1 or 2, 210, 160)
        rows, band, cols = (slice(DIGIT_TOP, DIGIT_TOP + DIGIT_H), slice(BRICK_TOP, BRICK_BOTTOM),
                            slice(PLAYFIELD_LEFT, PLAYFIELD_RIGHT))
        digits = slice(SCORE_DIGIT_X[0], SCORE_DIGIT_X[-1] + DIGIT_W)  # the three digits and the gaps between
        for b in range(len(ids)):
            lit = frames[b] != black
            score, bricks_last = read_score(lit[-1]), bricks_of_lit(lit[-1, band, cols])
            points = brick_points(bricks_last, bricks_of_lit(decided[b, band, cols] != black))
            if len(lit) > 1:  # what the score still owes for the step before
                owed = read_score(lit[0]) + brick_points(bricks_of_lit(lit[0, band, cols]), bricks_last) - score
                points += max(owed, 0)
            drawn = frames[b, -1, rows, digits]
            if not lit[-1, rows, digits].any():  # no digits to take the colour from
                continue
            colour = np.bincount(drawn[drawn != black]).argmax()
            decided[b, rows, digits] = np.where(score_pixels(min(score + points, 999))[:, digits], colour, black)
        return out if out.device.type == "cpu" else torch.from_numpy(decided).to(out.device)

    def place_digits(self, kept: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Redraw the score and lives digits of the decided frames `ids` (B, 210, 160) as whole glyphs,
        from the logits with keep bonus `kept` (B, K, 210, 160).

        Each pixel's own argmax can draw half of a new digit over the old one (a 5 with a 4's stroke,
        read as a 9). Here each digit is the glyph, of the ten, whose pixels (lit or black) have the
        highest summed log-probability, drawn in the most likely lit colour of its cell."""
        black = self.table.black
        if black is None:
            return ids
        out = ids.clone()
        lit_classes = torch.from_numpy(self.table.lit).to(kept.device)
        rows = slice(DIGIT_TOP, DIGIT_TOP + 10)
        glyphs = torch.from_numpy(DIGIT_GLYPHS.reshape(10, 15)).float().to(kept.device)  # (10, 15)
        log_p = kept[:, :, rows].log_softmax(dim=1)  # (B, K, 10, 160)
        lit, dark = torch.logsumexp(log_p[:, lit_classes], dim=1), log_p[:, black]  # (B, 10, 160)
        b = len(ids)
        for x0 in (*SCORE_DIGIT_X, LIVES_DIGIT_X):
            cols = slice(x0, x0 + 12)
            block_lit = lit[:, :, cols].reshape(b, 5, 2, 3, 4).sum(dim=(2, 4)).reshape(b, 15)  # 4x2-px blocks
            block_dark = dark[:, :, cols].reshape(b, 5, 2, 3, 4).sum(dim=(2, 4)).reshape(b, 15)
            score = block_lit @ glyphs.T + block_dark @ (1 - glyphs).T  # (B, 10)
            on = glyphs[score.argmax(dim=1)].reshape(b, 5, 1, 3, 1).expand(b, 5, 2, 3, 4).reshape(b, 10, 12).bool()
            colour = lit_classes[kept[:, lit_classes, rows, cols].sum(dim=(2, 3)).argmax(dim=1)]  # (B,)
            out[:, rows, cols] = torch.where(on, colour[:, None, None].to(out.dtype),
                                            torch.tensor(black, dtype=out.dtype, device=out.device))
        return out

    def place_paddle(self, kept: torch.Tensor, ids: torch.Tensor, context: torch.Tensor,
                     targets: list[int | None] | None = None) -> torch.Tensor:
        """Redraw the paddle of each decided frame `ids` (B, 210, 160) as one whole paddle, from the logits
        with keep bonus `kept` (B, K, 210, 160) and the context (B, k, 210, 160) class ids.

        Each column's own argmax places the paddle's two edges apart, and one edge 2 px off moves the
        paddle the parser reads. Here the paddle is the run of columns, 12 or 16 px wide and cut off by
        the right wall (`breakout.PADDLE_WIDTHS`), whose pixels on the four paddle rows have the highest
        summed log-odds of red, with `config.paddle_width_bonus` for the width the last frame shows.
        Where `targets` (B,) gives a left edge (the paddle table's, `paddle_targets`, or the caller's),
        the run starts there, and the decoder's other whole red columns are cleared. Red columns the
        per-pixel decision joined to it are cleared, unless this or the last frame lights a pixel in the
        16 rows above the paddle or below it: a ball near the paddle is red on the paddle rows too, and
        clearing it lost the ball at the paddle (`place_ball` then decides). A frame without a whole red column on the paddle rows is left alone: whether
        there is a paddle stays the per-pixel decision's."""
        black, red = self.table.black, self.table.class_of(RED)
        if black is None or red is None:
            return ids
        last = context[:, -1]
        rows, left, right = slice(PADDLE_TOP, PADDLE_BOTTOM), PLAYFIELD_LEFT, PLAYFIELD_RIGHT
        n = right - left
        log_p = kept[:, :, rows, left:right].float().log_softmax(dim=1)[:, red]  # (B, 4, n)
        odds = (log_p - torch.log1p(-log_p.exp().clamp(max=1 - 1e-6))).sum(dim=1)  # (B, n): per column
        cumulative = F.pad(odds.cumsum(dim=1), (1, 0))  # (B, n + 1)
        starts = torch.arange(n, device=kept.device)
        out = ids.clone()
        decided = ids[:, rows, left:right] == red  # (B, 4, n)
        previous = last[:, rows, left:right] == red
        targets = [None] * len(ids) if targets is None else targets
        for b in range(len(ids)):
            if not decided[b].all(dim=0).any():
                continue
            run = widest_run(previous[b].all(dim=0).cpu().numpy())  # the last frame's paddle
            width_then = run[1] - run[0] if run is not None and run[1] < n else None  # unknown if cut off
            widths = sorted({*PADDLE_WIDTHS, *([width_then] if width_then else [])})
            if targets[b] is not None:  # the target's place; the width the last frame shows, else the likeliest
                best_x = targets[b] - left
                best_w = width_then or max(widths, key=lambda w: float(cumulative[b, min(best_x + w, n)]
                                                                      - cumulative[b, best_x]))
            else:
                best, best_x, best_w = -float("inf"), 0, 0
                for width in widths:
                    ends = (starts + width).clamp(max=n)
                    score = cumulative[b, ends] - cumulative[b, starts]
                    if width == width_then:
                        score = score + self.config.paddle_width_bonus
                    x = int(score.argmax())
                    if float(score[x]) > best:
                        best, best_x, best_w = float(score[x]), x, width
            end = min(best_x + best_w, n)
            region = out[b, rows, left:right]  # a view
            if targets[b] is not None:  # the decoder's paddle elsewhere
                region[:, decided[b].all(dim=0)] = black
            region[:, best_x:end] = red
            if self._ball_near_paddle(last[b], ids[b], black):
                continue  # red joined to the paddle may be the ball
            column_red = decided[b].any(dim=0).tolist()
            x = best_x - 1
            while x >= 0 and column_red[x]:  # red joined to the paddle on the left
                region[:, x] = black
                x -= 1
            x = end
            while x < n and column_red[x]:
                region[:, x] = black
                x += 1
        return out

    def paddle_targets(self, context: torch.Tensor, codes: torch.Tensor, red: int) -> list[int | None]:
        """The left edge the paddle table gives each frame's next paddle, from the latent `codes` (B,)
        and the paddle of the last two context frames (B, k, 210, 160) class ids: None where a frame
        shows no paddle, the context has one frame, or the table lacks the case."""
        targets: list[int | None] = []
        frames = context[:, -2:].cpu().numpy()
        for b, code in enumerate(codes.tolist()):
            lefts = [paddle_left(frame, red) for frame in frames[b]] if context.shape[1] > 1 else [None]
            step = None
            if None not in lefts:
                step = self.paddle_table.lookup(code, lefts[1] - lefts[0], lefts[1])
            targets.append(None if step is None else min(max(lefts[1] + step, PLAYFIELD_LEFT), PLAYFIELD_RIGHT - 1))
        return targets

    @staticmethod
    def _ball_near_paddle(last: torch.Tensor, decided: torch.Tensor, black: int) -> bool:
        """Does the last or the decided frame (210, 160) class ids light a pixel in the 16 rows above the
        paddle rows or in the rows below them (a ball near the paddle)?"""
        cols = slice(PLAYFIELD_LEFT, PLAYFIELD_RIGHT)
        return any(bool((frame[PADDLE_TOP - 16:PADDLE_TOP, cols] != black).any()
                        or (frame[PADDLE_BOTTOM:PLAYFIELD_BOTTOM, cols] != black).any()) for frame in (last, decided))

    def place_ball(self, logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Redraw the ball of each decided frame `ids` (B, 210, 160) as one whole ball, from the logits
        (B, K, 210, 160) without keep bonus.

        Each pixel's own argmax draws the ball wherever a ball pixel is likely enough: a smear where
        the model hesitates between places, the old ball kept by the keep bonus, stray dots. Here,
        where the decided frame has any ball pixel (the parser's: lit, neither brick nor paddle), they
        are cleared, and the ball is drawn in the 2x4 window of free pixels with the highest mean
        probability of being lit, each pixel in its most likely lit colour. Whether there is a ball
        stays the per-pixel decision's; only its shape and place change."""
        black = self.table.black
        if black is None:  # no background colour to clear a ball with (only toy colour tables)
            return ids
        out = ids.clone()
        top, bottom, left, right = PLAYFIELD_TOP, PLAYFIELD_BOTTOM, PLAYFIELD_LEFT, PLAYFIELD_RIGHT
        lit_classes = torch.from_numpy(self.table.lit).to(logits.device)
        frames = self.table.to_rgb(ids.cpu().numpy())  # the parser reads RGB frames on the CPU
        for b, frame in enumerate(frames):
            playfield = read_playfield(frame)
            ball = playfield.ball_pixels
            if not ball.any():
                continue
            field = logits[b, :, top:bottom, left:right]  # (K, 163, 144)
            free = torch.from_numpy(playfield.free).to(logits.device)
            lit_probability = (1.0 - field.softmax(dim=0)[black]) * free
            score = F.avg_pool2d(lit_probability[None, None], (BALL_H, BALL_W), stride=1)[0, 0]
            y, x = divmod(int(score.argmax()), score.shape[1])
            window = (slice(y, y + BALL_H), slice(x, x + BALL_W))
            colour = lit_classes[field[lit_classes][:, window[0], window[1]].max(dim=0).indices]  # most likely lit colour
            region = out[b, top:bottom, left:right]  # a view
            region[torch.from_numpy(ball).to(out.device)] = black
            region[window] = torch.where(free[window], colour.to(out.dtype), region[window])
        return out

    def place_ball_with_head(self, logits: torch.Tensor, ids: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Redraw the ball of each decided frame `ids` (B, 210, 160) where the ball head puts it, from
        the window around the ball of the last context frame (`context` (B, k, 210, 160) class ids): the
        decided frame's ball pixels are cleared, and unless the head says the ball is gone, a 2x4 ball
        is drawn on the free pixels at its place, each pixel in the decoder's most likely lit colour
        (`logits` (B, K, 210, 160)).

        A frame whose last context frame shows no ball while the two before it did (`returning_ball`:
        the ball blinked out as it bounced) gets its ball back where the return head puts it (never
        "gone": the recorded games bring such a ball back), from a window on the last ball seen; that
        needs a context of `context_length` frames. Other frames whose last context frame shows no ball
        (a serve) keep `place_ball`'s decision."""
        black, head = self.table.black, self.ball_head
        if black is None:
            return ids
        out = ids.clone()
        decided = self.table.to_rgb(ids.cpu().numpy())
        first = (self.returns or head.config.first_ball) and context.shape[1] > 2  # heads that read the ball 3 back
        returns = self.returns and context.shape[1] > 2
        before = -2 if context.shape[1] > 1 else -1  # the frame before the last (the last, alone)
        served, placed, returned = [], [], []  # frame indices, and for the heads: (b, input, ball seen, playfield)
        back = []  # per placed frame: its ball just came back from a blink
        for b in range(len(ids)):
            ball = self.ball_of(context[b, -1])
            ball_before = self.ball_of(context[b, before])
            ball_first = None
            if first and (ball is None or ball_before is None or head.config.first_ball):  # only then is it read
                ball_first = self.ball_of(context[b, -3])
            if ball is not None:
                playfield = read_playfield(decided[b])
                x = head_input(self.lit_of(context[b, before]), self.lit_of(context[b, -1]),
                               lit_without_ball(decided[b], playfield),
                               ball_before, ball, head.config.window, head.config.first_ball, ball_first)
                placed.append((b, x, ball, playfield))
                back.append(ball_before is None and ball_first is not None)
                continue
            if returns and returning_ball(ball_first, ball_before):
                playfield = read_playfield(decided[b])
                x = head_input(self.lit_of(context[b, before]), self.lit_of(context[b, -1]),
                               lit_without_ball(decided[b], playfield),
                               ball_first, ball_before, self.return_head.config.window)
                returned.append((b, x, ball_before, playfield))
                continue
            served.append(b)
        if served:
            index = torch.tensor(served, device=ids.device)
            out[index] = self.place_ball(logits[index], ids[index])
        if placed:
            scores = head(torch.from_numpy(np.stack([c[1] for c in placed])).to(logits.device))  # (n, window ** 2 + 1)
            # "gone" only where the game loses the ball for good (without blips), and never for a ball
            # just back from a blink (the recorded games blink it out again in 8 of 675 such steps)
            mid = torch.tensor([c[2][1] < BALL_LOST_TOP for c in placed], device=scores.device)
            stays = mid & ~torch.tensor([self.config.ball_blips and not just for just in back], device=scores.device)
            gone = scores.argmax(dim=1) == scores.shape[1] - 1
            if self.config.gone_above is not None:  # mid-field, "no ball" only where it is likelier than that
                gone = torch.where(mid, scores.softmax(dim=1)[:, -1] > self.config.gone_above, gone)
            choice = torch.where(gone & ~stays, scores.shape[1] - 1, scores[:, :-1].argmax(dim=1))
            for (b, _, ball, playfield), c in zip(placed, choice.tolist()):
                self._draw_ball(out[b], logits[b], playfield, index_to_ball(c, ball, head.config.window))
        if returned:
            window = self.return_head.config.window
            scores = self.return_head(torch.from_numpy(np.stack([c[1] for c in returned])).to(logits.device))
            for (b, _, ball, playfield), row in zip(returned, scores[:, :-1]):
                places = [index_to_ball(int(c), ball, window) for c in row.argsort(descending=True)[:64]]
                shown = [p for p in places if self._shows(playfield, p)]  # the returning ball shows
                self._draw_ball(out[b], logits[b], playfield, shown[0] if shown else places[0])
        return out

    @staticmethod
    def _ball_patch(playfield, ball: tuple[int, int]) -> tuple[slice, slice, np.ndarray] | None:
        """The frame rows and columns a ball at the parsed place `ball` (x, y) is drawn on, cut to the
        playfield, and which of those pixels are free in `playfield`; None if none lies inside."""
        rows = drawn_rows(ball[1])
        rows = slice(max(rows.start, PLAYFIELD_TOP), min(rows.stop, PLAYFIELD_BOTTOM))
        cols = slice(max(ball[0], PLAYFIELD_LEFT), min(ball[0] + BALL_W, PLAYFIELD_RIGHT))
        if rows.start >= rows.stop or cols.start >= cols.stop:
            return None
        free = playfield.free[rows.start - PLAYFIELD_TOP:rows.stop - PLAYFIELD_TOP,
                              cols.start - PLAYFIELD_LEFT:cols.stop - PLAYFIELD_LEFT]
        return rows, cols, free

    def _shows(self, playfield, ball: tuple[int, int]) -> bool:
        """Would a ball drawn at the parsed place `ball` (x, y) show at least half its pixels on the free
        pixels of `playfield` (not in a wall, not on a brick)?"""
        patch = self._ball_patch(playfield, ball)
        return patch is not None and int(patch[2].sum()) * 2 >= BALL_H * BALL_W

    def _draw_ball(self, out: torch.Tensor, logits: torch.Tensor, playfield, ball: tuple[int, int] | None) -> None:
        """In the decided frame `out` (210, 160) (changed in place), clear the ball pixels `playfield`
        read from it and draw a 2x4 ball at the parsed place `ball` (x, y) (None: no ball) on the free
        pixels, each in its most likely lit colour of `logits` (K, 210, 160)."""
        region = out[PLAYFIELD_TOP:PLAYFIELD_BOTTOM, PLAYFIELD_LEFT:PLAYFIELD_RIGHT]  # a view
        region[torch.from_numpy(playfield.ball_pixels).to(out.device)] = self.table.black
        patch = None if ball is None else self._ball_patch(playfield, ball)
        if patch is None:
            return
        rows, cols, free = patch
        free = torch.from_numpy(free)
        lit_classes = torch.from_numpy(self.table.lit).to(logits.device)
        colour = lit_classes[logits[lit_classes, rows, cols].max(dim=0).indices]  # most likely lit colour
        out[rows, cols] = torch.where(free.to(out.device), colour.to(out.dtype), out[rows, cols])

    # ---- inference on RGB frames (the public API) --------------------------------------------
    def _context_ids(self, context: np.ndarray) -> tuple[torch.Tensor, bool]:
        context = np.asarray(context)
        single = context.ndim == 4
        if single:
            context = context[None]
        k = self.context_length
        if context.ndim != 5 or context.shape[1:] != (k, H, W, 3):
            raise NeuralBreakoutError(f"context must be uint8 ({k}, 210, 160, 3) or (B, {k}, 210, 160, 3), "
                                      f"got {context.dtype} {context.shape}")
        return torch.from_numpy(self.table.to_ids(context)), single

    def infer_latent(self, context: np.ndarray, next_frame: np.ndarray) -> int | np.ndarray:
        """The latent action that explains context -> next_frame (an int, or (B,) for batches)."""
        ids, single = self._context_ids(context)
        nxt = torch.from_numpy(self.table.to_ids(np.asarray(next_frame).reshape(-1, H, W, 3)))
        index = self.infer_latent_ids(ids, nxt).numpy()
        return int(index[0]) if single else index

    def predict(self, context: np.ndarray, latent: int | np.ndarray) -> np.ndarray:
        """The next frame, uint8 (210, 160, 3) (or (B, 210, 160, 3) for batches)."""
        ids, single = self._context_ids(context)
        index = torch.as_tensor(np.atleast_1d(latent), dtype=torch.long)
        if index.min() < 0 or index.max() >= self.config.latents:
            raise NeuralBreakoutError(f"latent action must be in 0..{self.config.latents - 1}, got {latent}")
        frames = self.table.to_rgb(self.predict_ids(ids, index).numpy())
        return frames[0] if single else frames


def head_config(settings: dict) -> BallHeadConfig:
    """A `BallHeadConfig` from a checkpoint's settings (lists back to tuples)."""
    return BallHeadConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})


def load_world_model(path: str | Path | None = None) -> WorldModel:
    """The world model of a checkpoint (None: the shipped `checkpoints/world_model.pt`), in eval mode."""
    path = Path(path) if path is not None else SHIPPED
    payload = load_checkpoint(path, WORLD_MODEL_KIND)
    config = payload["config"]
    config = WorldModelConfig(**{k: tuple(map(tuple, v)) if k == "colors" else tuple(v) if isinstance(v, list) else v
                                 for k, v in config.items()})
    model = WorldModel(config)
    weights = {k: v.float() if v.is_floating_point() else v for k, v in payload["state"]["weights"].items()}
    load_weights(model, weights, path)
    model.summary = payload.get("summary", {})
    return for_inference(model)


def for_inference(model: WorldModel) -> WorldModel:
    """`model` in eval mode with its convolution weights in channels-last order: the same numbers,
    and on a CPU about 10% more `predict` steps a second (oneDNN's channels-last kernels, where the
    heads' small and dilated convolutions otherwise take slow paths; `benchmarks/world_model_speed.py`)."""
    return model.to(memory_format=torch.channels_last).eval()
