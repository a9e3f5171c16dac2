"""The latent action model and world model: shapes, gradients, the RGB API, checkpoints, the CLI."""

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from test_cli import run
from train.world_model import (WorldModelTrainConfig, export_world_model, load_split, pixel_events, ram_ball_transitions,
                               ram_events, ram_serves, sample_batch, serve_transitions, split_episodes, train_world_model)
from worldmodel.checkpoint import CheckpointError, save_checkpoint
from worldmodel.colors import ColorTable
from worldmodel.errors import NeuralBreakoutError
from collect.episodes import load_episode
from worldmodel.breakout import BALL_H, BRICK_BOTTOM, BRICK_TOP, parse_frame, ram_ball
from worldmodel.lam import _BlockSum, block_indices, block_sum, one_hot_blocks
from worldmodel.world_model import WorldModel, WorldModelConfig, events_to_bits, load_world_model

COLORS = ((0, 0, 0), (142, 142, 142), (200, 72, 72), (66, 72, 200))
PER_PIXEL = dict(one_ball=False, one_paddle=False, count_score=False, keep_gaps=False, one_brick=False)  # each pixel's own argmax, nothing redrawn


def tiny_model(context=2, codes=4, fine_dilations=(), event_codes=0, event_head=False) -> WorldModel:
    torch.manual_seed(0)
    return WorldModel(WorldModelConfig(colors=COLORS, context=context, codes=codes, widths=(8, 16, 32),
                                       encoder_width=8, fine_dilations=fine_dilations, event_codes=event_codes,
                                       event_head=event_head))


def test_one_hot_blocks_matches_pixel_unshuffle():
    ids = torch.randint(0, 5, (2, 3, 210, 160), dtype=torch.uint8)
    x = torch.zeros(2, 3, 5, 212, 160)
    x[..., :210, :].scatter_(2, ids.long().unsqueeze(2), 1.0)
    x[:, :, 0, 210:, :] = 1.0  # the padding rows read as class 0
    expected = F.pixel_unshuffle(x.view(2, 15, 212, 160), 4)
    assert torch.equal(one_hot_blocks(ids, 5), expected)


def test_block_indices_name_the_one_hot_channels():
    ids = torch.randint(0, 5, (2, 3, 210, 160), dtype=torch.uint8)
    index = block_indices(ids, 5)  # (2, 53, 40, 3 * 16)
    assert index.shape == (2, 53, 40, 48)
    from_index = torch.zeros(2, 53, 40, 3 * 5 * 16).scatter_(3, index, 1.0).permute(0, 3, 1, 2)
    assert torch.equal(from_index, one_hot_blocks(ids, 5))


def test_block_sum_is_embedding_bag_forward_and_backward(monkeypatch):
    """`block_sum`'s own backward (a one-hot matrix product, a chunk of rows at a time) gives
    embedding_bag's gradient; a chunk smaller than the rows makes it take several."""
    monkeypatch.setattr(_BlockSum, "chunk", 300)
    ids = torch.randint(0, 5, (2, 3, 210, 160), dtype=torch.uint8)
    index = block_indices(ids, 5).view(-1, 48)  # 4,240 bags of 48 distinct rows of 240
    table = torch.randn(240, 7, requires_grad=True)
    out = block_sum(index, table)
    expected = F.embedding_bag(index, table, mode="sum")
    assert torch.equal(out, expected)
    grad = torch.randn_like(out)
    (mine,) = torch.autograd.grad(out, table, grad)
    (theirs,) = torch.autograd.grad(expected, table, grad)
    assert torch.allclose(mine, theirs, rtol=1e-4, atol=1e-4)
    with torch.no_grad():  # no gradient wanted: embedding_bag itself
        assert torch.equal(block_sum(index, table), expected)


def test_encoder_equals_its_one_hot_convolution():
    """The latent encoder's first layer gathers its weight's columns (`block_sum`); the same numbers
    as the 1x1 convolution of the one-hot blocks, forward and backward."""
    model = tiny_model()
    encoder = model.encoder
    ids = torch.randint(0, len(COLORS), (3, 2, 210, 160), dtype=torch.uint8)
    features = encoder.features(ids[:, 0], ids[:, 1])
    x = encoder.net(one_hot_blocks(ids, len(COLORS)))  # the reference
    expected = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
    assert torch.allclose(features, expected, atol=1e-5)
    weights = [encoder.net[0].weight, encoder.net[0].bias, encoder.net[2].weight]
    grads = torch.autograd.grad(features.square().sum(), weights)
    expected_grads = torch.autograd.grad(expected.square().sum(), weights)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max())) for a, b in zip(grads, expected_grads))


@pytest.mark.parametrize("context,event_input", [(1, False), (2, False), (3, True)])
def test_decoder_equals_its_one_hot_convolutions(context, event_input):
    """The decoder's stem and head gather their weights' columns (`block_indices`); the same
    numbers as the 1x1 convolutions of the one-hot blocks they stand for, forward and backward."""
    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(colors=COLORS, context=context, codes=4, widths=(8, 16, 32), encoder_width=8,
                                        event_input=event_input))
    decoder = model.decoder
    torch.nn.init.normal_(decoder.head.weight)  # the head starts at zero: give it weights to tell apart
    ids = torch.randint(0, len(COLORS), (2, context, 210, 160), dtype=torch.uint8)
    latent = torch.randn(2, model.config.latent_dim)
    bits = events_to_bits(torch.tensor([1, 2])) if event_input else None
    logits = decoder(ids, latent, bits)

    x = one_hot_blocks(ids, len(COLORS))  # the reference: the decoder written with one-hot blocks
    last = x[:, -len(COLORS) * 16:]
    h0 = decoder.stem(x)
    if bits is not None:
        h0 = h0 + torch.einsum("be,echw->bchw", bits, decoder.event_map)
    for blk in decoder.level0:
        h0 = blk(h0, latent, bits)
    h1 = decoder.down1(F.silu(h0))
    for blk in decoder.level1:
        h1 = blk(h1, latent, bits)
    h2 = decoder.down2(F.silu(h1))
    for blk in decoder.level2:
        h2 = blk(h2, latent, bits)
    u1 = decoder.up1_block(decoder.up1(torch.cat([F.interpolate(h2, size=h1.shape[-2:]), h1], 1)), latent, bits)
    u0 = decoder.up0_block(decoder.up0(torch.cat([F.interpolate(u1, size=h0.shape[-2:]), h0], 1)), latent, bits)
    expected = decoder.head(torch.cat([F.silu(u0), last], 1)) + decoder.copy_bias * last
    expected = F.pixel_shuffle(expected, 4)[:, :, :210]
    assert torch.allclose(logits, expected, atol=1e-4)

    weights = [decoder.stem.weight, decoder.head.weight, decoder.copy_bias, decoder.head.bias]
    grads = torch.autograd.grad(logits.square().sum(), weights)
    expected_grads = torch.autograd.grad(expected.square().sum(), weights)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max())) for a, b in zip(grads, expected_grads))


def _real_frames(steps: int = 40) -> np.ndarray:
    """Emulator frames (steps + 1, 210, 160, 3) of a game with a served ball, paddle moving right."""
    from collect.atari import make_env

    env = make_env("breakout")
    frames = [env.reset(seed=0)[0]]
    for i in range(steps):
        frames.append(env.step(1 if i < 2 else 2)[0])
    env.close()
    return np.stack(frames)


def test_ball_of_and_lit_of_read_class_id_frames_as_the_parser_reads_rgb(monkeypatch):
    import worldmodel.world_model as wm_module
    from worldmodel.breakout import lit_pixels

    model = load_world_model(None)
    frames = _real_frames()
    ids = torch.from_numpy(model.table.to_ids(frames))
    balls = [parse_frame(f).ball for f in frames]
    assert sum(b is not None for b in balls) >= 15  # the ball is in play in many of them
    assert [model.ball_of(f) for f in ids] == balls
    assert all(np.array_equal(model.lit_of(f), lit_pixels(rgb)) for f, rgb in zip(ids, frames))
    calls = []
    monkeypatch.setattr(wm_module, "parse_frame", lambda frame: calls.append(1) or parse_frame(frame))
    assert [model.ball_of(f) for f in ids] == balls and calls == []  # remembered, not parsed again
    monkeypatch.setattr(wm_module, "BALL_MEMORY", 8)
    model._parsed.clear()
    assert [model.ball_of(f) for f in ids] == balls and len(calls) == len(set(f.numpy().tobytes() for f in ids))
    assert len(model._parsed) <= 8
    for f, rgb in zip(ids, frames):  # the whole parse, which the env reads off each frame it makes
        mine, real = model.parse_ids(f), parse_frame(rgb)
        assert (mine.ball, mine.paddle_x, mine.score, mine.lives) == (real.ball, real.paddle_x, real.score, real.lives)
        assert np.array_equal(mine.bricks, real.bricks) and not mine.bricks.flags.writeable  # shared, so read-only


def test_loaded_model_predicts_the_same_with_channels_last_weights():
    """`load_world_model` puts the convolution weights in channels-last order for speed; the frames
    of a rollout are those of the same weights in the default order."""
    model = load_world_model(None)
    assert model.decoder.down1.weight.is_contiguous(memory_format=torch.channels_last)
    plain = load_world_model(None).to(memory_format=torch.contiguous_format)
    assert plain.decoder.down1.weight.is_contiguous()
    frames = _real_frames(12)
    context = torch.from_numpy(model.table.to_ids(frames[-model.context_length:]))[None]
    a = b = context
    for step in range(8):
        latent = torch.tensor([step % model.config.latents])
        next_a, next_b = model.predict_ids(a, latent), plain.predict_ids(b, latent)
        assert torch.equal(next_a, next_b)
        a, b = torch.cat([a[:, 1:], next_a[:, None]], 1), torch.cat([b[:, 1:], next_b[:, None]], 1)


def test_color_table_round_trip_and_unknown_colour():
    table = ColorTable(COLORS)
    ids = np.random.default_rng(0).integers(0, len(COLORS), size=(3, 210, 160)).astype(np.uint8)
    assert np.array_equal(table.to_ids(table.to_rgb(ids)), ids)
    frame = table.to_rgb(ids[0]).copy()
    frame[5, 5] = (1, 2, 3)
    with pytest.raises(NeuralBreakoutError, match="#010203"):
        table.to_ids(frame)


def test_color_table_lookup_tells_apart_colours_that_share_a_slot():
    rng = np.random.default_rng(1)
    colours = [tuple(int(v) for v in c) for c in np.unique(rng.integers(0, 256, size=(200, 3)), axis=0)]
    table = ColorTable(colours)
    ids = rng.integers(0, len(colours), size=(2, 210, 160)).astype(np.uint8)
    assert np.array_equal(table.to_ids(table.to_rgb(ids)), ids)
    # a colour outside the table whose packed value lands on a known colour's slot is still unknown
    stranger = int(table.packed[3]) + table.modulus
    frame = table.to_rgb(ids[0]).copy()
    frame[7, 9] = (stranger >> 16 & 255, stranger >> 8 & 255, stranger & 255)
    assert table.class_of(tuple(int(v) for v in frame[7, 9])) is None
    with pytest.raises(NeuralBreakoutError, match=f"#{stranger:06x}"):
        table.to_ids(frame)
    with pytest.raises(ValueError, match="distinct"):
        ColorTable([(1, 2, 3), (1, 2, 3)])


@pytest.mark.parametrize("context,fine_dilations", [(1, ()), (2, ()), (4, ()), (2, (2, 4))])
def test_shapes_loss_and_gradients_reach_every_parameter(context, fine_dilations):
    model = tiny_model(context, fine_dilations=fine_dilations)
    ids = torch.randint(0, len(COLORS), (3, context + 1, 210, 160), dtype=torch.uint8)
    loss, metrics = model.loss(ids[:, :-1], ids[:, -1])
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert {"recon", "vq", "perplexity", "codes_used", "changed_pixel_error"} <= set(metrics)
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert no_grad == []
    logits = model.decoder(ids[:, :-1], model.encoder.vq.lookup(torch.zeros(3, dtype=torch.long)))
    assert logits.shape == (3, len(COLORS), 210, 160)


def test_dilated_fine_blocks_see_further_at_the_finest_level():
    # the finest level's output after its blocks: which 4x4 blocks of the input reach its centre
    # (GroupNorm's statistics span the frame, so the norms are left out to see the convolutions')
    def reach(fine_dilations):
        model = tiny_model(fine_dilations=fine_dilations)
        for blk in model.decoder.level0:
            blk.norm1 = blk.norm2 = torch.nn.Identity()
        x = torch.randn(1, 8, 53, 40, requires_grad=True)
        h = x
        for blk in model.decoder.level0:
            h = blk(h, torch.zeros(1, model.config.latent_dim))
        h[0, :, 26, 20].sum().backward()
        rows = torch.nonzero(x.grad[0].abs().sum(dim=(0, 2)))
        return int(rows.max() - rows.min()) // 2  # radius in blocks

    assert reach(()) == 2
    assert reach((2, 4)) == 2 + 4 + 8


def test_predictions_undo_the_changed_pixel_weighting():
    # Only the output's bias is trained, on a black frame that turns white (class 1) in 1 of 10 samples:
    # the weighted loss's optimum favours the change 21:9, the true odds are 1:9; with the default
    # keep bonus (e^1.5 = 4.5) prediction keeps black, without it the argmax paints the change.
    model = tiny_model()
    torch.nn.init.zeros_(model.decoder.head.weight)
    trained = [model.decoder.head.bias, model.decoder.copy_bias]
    for p in model.parameters():
        p.requires_grad_(any(p is t for t in trained))
    context = torch.zeros(10, 2, 210, 160, dtype=torch.uint8)
    target = torch.zeros(10, 210, 160, dtype=torch.uint8)
    target[0] = 1
    optimizer = torch.optim.Adam(trained, lr=0.1)
    for _ in range(150):
        loss, _ = model.loss(context, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    latent = torch.zeros(1, dtype=torch.long)
    raw = model.decoder(context[:1], model.encoder.vq.lookup(latent))
    assert (raw.argmax(dim=1) == 1).float().mean() > 0.99  # the weighted odds: paint the change
    odds = (raw[:, 1] - raw[:, 0]).exp().mean().item()
    assert odds == pytest.approx(21 / 9, rel=0.1)
    assert model.keep_bonus == 1.5
    assert (model.predict_ids(context[:1], latent) == 0).all()  # odds 21/9 / e^1.5 < 1: keep


def test_the_encoder_keeps_its_own_width_where_given():
    narrow = WorldModelTrainConfig(data="x", width=16).model_config(COLORS)
    assert narrow.widths == (16, 32, 64) and narrow.encoder_width == 16
    wide = WorldModelTrainConfig(data="x", width=16, encoder_width=32).model_config(COLORS)
    assert wide.widths == (16, 32, 64) and wide.encoder_width == 32
    assert WorldModel(wide).encoder.state_dict()["net.0.weight"].shape[0] == 32


def test_hud_keep_bonus_is_off_for_models_with_a_lost_life_code():
    assert WorldModelConfig().hud_keep_bonus == 2.5 and WorldModelConfig().keep_bonus == 1.5
    # a model with a lost-life code gets no stronger hold on the digits: the code must change them
    assert WorldModelTrainConfig(data="x").model_config(COLORS).hud_keep_bonus == 2.5
    assert WorldModelTrainConfig(data="x", event_codes=2).model_config(COLORS).hud_keep_bonus == 1.5


@pytest.mark.parametrize("name, rows", [("hud_keep_bonus", slice(0, 32)), ("brick_keep_bonus", slice(57, 93))])
def test_row_keep_bonus_applies_to_its_rows_only(name, rows):
    """`hud_keep_bonus` is the keep bonus above the playfield (score and lives digits),
    `brick_keep_bonus` the one on the brick rows: equal to the keep bonus they change nothing; large,
    they keep their rows as they were and nothing else."""
    model = tiny_model().eval()
    same = dict(hud_keep_bonus=model.keep_bonus, brick_keep_bonus=model.keep_bonus)
    model.config = dataclasses.replace(model.config, **PER_PIXEL, **same)  # random frames: no ball or paddle
    torch.nn.init.normal_(model.decoder.head.weight, std=3.0)  # confident, arbitrary changes everywhere
    context = torch.randint(0, 4, (3, 2, 210, 160), dtype=torch.uint8)
    latent = torch.tensor([0, 1, 2])
    raw = model.decoder(context, model.encoder.vq.lookup(latent))
    keep = torch.nn.functional.one_hot(context[:, -1].long(), len(COLORS)).permute(0, 3, 1, 2)
    scalar = (raw + model.keep_bonus * keep).argmax(dim=1).to(torch.uint8)
    assert torch.equal(model.predict_ids(context, latent), scalar)
    model.config = dataclasses.replace(model.config, **{name: 1e4})
    predicted = model.predict_ids(context, latent)
    assert torch.equal(predicted[:, rows], context[:, -1, rows])  # these rows are kept
    others = torch.ones(210, dtype=torch.bool)
    others[rows] = False
    assert torch.equal(predicted[:, others], scalar[:, others])  # the others as before
    assert (scalar[:, rows] != context[:, -1, rows]).any()  # which the plain bonus did change


def test_false_changes_weigh_like_changes_in_marked_samples():
    """Nothing changes in these frames. A model that keeps every pixel loses nothing by the marking;
    one that would repaint some pixels loses more when they weigh 21x (their cross-entropy is the
    high one: the model prefers another class there)."""
    torch.manual_seed(0)
    model = tiny_model()
    ids = torch.randint(0, len(COLORS), (2, 2, 210, 160), dtype=torch.uint8)
    context, target = ids, ids[:, -1]
    marked = torch.tensor([True, False])
    torch.manual_seed(1)
    plain = model.loss(context, target)[0]
    torch.manual_seed(1)
    assert model.loss(context, target, false_changes=marked)[0].item() == pytest.approx(plain.item())
    model.eval()  # no dead-code reset between the two calls
    with torch.no_grad():
        model.decoder.copy_bias.fill_(-model.keep_bonus)  # no pull to the last frame: some pixels change
    plain = model.loss(context, target)[0].item()
    assert model.loss(context, target, false_changes=torch.tensor([False, False]))[0].item() == pytest.approx(plain)
    assert model.loss(context, target, false_changes=marked)[0].item() > 1.02 * plain


def test_untrained_model_starts_as_copy_last_frame():
    import dataclasses

    model = tiny_model().eval()
    model.config = dataclasses.replace(model.config, **PER_PIXEL)  # random frames have no ball or paddle
    ids = torch.randint(0, len(COLORS), (2, 2, 210, 160), dtype=torch.uint8)
    predicted = model.predict_ids(ids, torch.tensor([0, 1]))
    assert (predicted == ids[:, -1]).float().mean() > 0.99


def test_rgb_api_shapes_batches_and_errors():
    model = tiny_model().eval()
    table = ColorTable(COLORS)
    frames = table.to_rgb(np.random.default_rng(1).integers(0, 4, size=(3, 210, 160)).astype(np.uint8))
    z = model.infer_latent(frames[:2], frames[2])
    assert isinstance(z, int) and 0 <= z < 4
    frame = model.predict(frames[:2], z)
    assert frame.shape == (210, 160, 3) and frame.dtype == np.uint8
    batch = model.predict(np.stack([frames[:2], frames[1:]]), np.array([0, 3]))
    assert batch.shape == (2, 210, 160, 3)
    assert model.infer_latent(np.stack([frames[:2]] * 2), np.stack([frames[2]] * 2)).shape == (2,)
    with pytest.raises(NeuralBreakoutError, match="context must be"):
        model.predict(frames, 0)  # 3 context frames for a 2-frame model
    with pytest.raises(NeuralBreakoutError, match="latent action must be in 0..3"):
        model.predict(frames[:2], 4)


def test_vq_resets_dead_codes():
    model = tiny_model(codes=4)
    vq = model.encoder.vq
    vq.dead_after = 2
    before = vq.codebook.detach().clone()
    z = torch.randn(8, vq.codebook.shape[1])
    z[:] = vq.codebook.detach()[0] * 10  # every input picks code 0
    for _ in range(3):
        vq(z)
    moved = (vq.codebook.detach() - before).abs().sum(dim=1) > 0
    assert moved[1:].all() and not moved[0]


def test_vq_works_in_float32_under_bf16_autocast():
    """`train world-model --bf16`: the encoder's output comes in as bfloat16; the quantizer picks and
    resets codes in float32, as without autocast."""
    model = tiny_model(codes=4)
    vq = model.encoder.vq
    vq.dead_after = 2
    z = torch.randn(8, vq.codebook.shape[1])
    z[:] = vq.codebook.detach()[0] * 10
    plain = vq(z)[1]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for _ in range(3):
            out, index, loss = vq(z.bfloat16())
    assert out.dtype == loss.dtype == vq.codebook.dtype == torch.float32
    assert torch.equal(index, plain) and torch.isfinite(vq.codebook).all()


def test_checkpoint_round_trip_and_errors(tmp_path):
    model = tiny_model(fine_dilations=(2,)).eval()
    path = export_world_model(model, dict(steps=1), tmp_path / "wm.pt")
    loaded = load_world_model(path)
    ids = torch.randint(0, 4, (1, 2, 210, 160), dtype=torch.uint8)
    assert torch.equal(loaded.predict_ids(ids, torch.tensor([1])), model.predict_ids(ids, torch.tensor([1])))
    assert loaded.config == model.config and loaded.summary == dict(steps=1)
    save_checkpoint(tmp_path / "other.pt", "dqn-agent", dict(width=1), {})
    with pytest.raises(CheckpointError, match="is a 'dqn-agent' checkpoint"):
        load_world_model(tmp_path / "other.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_world_model(tmp_path / "bad.pt")
    payload = torch.load(path, weights_only=False)
    payload["config"]["widths"] = [16, 16, 32]
    torch.save(payload, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_world_model(tmp_path / "shape.pt")


def test_split_is_by_episode():
    paths = [f"episode-{i:06d}.npz" for i in range(25)]
    train, held = split_episodes(paths, 10)
    assert held == ["episode-000000.npz", "episode-000010.npz", "episode-000020.npz"]
    assert not set(train) & set(held) and len(train) + len(held) == 25
    with pytest.raises(ValueError, match="at least 2 episodes"):
        split_episodes(paths[:1], 10)


def test_train_resume_and_evaluate_cli(episodes_dir, tmp_path):
    out = tmp_path / "wm"
    result = run("train", "world-model", "--data", str(episodes_dir), "--out", str(out), "--tiny", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["steps"] == WorldModelTrainConfig.tiny("d", "o").steps
    assert summary["train_episodes"] == 2 and summary["held_out_transitions"] > 0
    model = load_world_model(out / "world_model.pt")
    assert model.summary["held_out_episodes"] == ["episode-000000.npz", "episode-000002.npz"]
    assert (out / "media").is_dir() and list((out / "media").glob("rollout-*.gif"))
    # a longer run in the same folder resumes from the checkpoint, also one saved before the serve
    # label's probe existed (no probe, one optimizer parameter group)
    payload = torch.load(out / "checkpoint.pt", weights_only=False)
    state = payload["state"]
    del state["probe"]
    probe_ids = state["optimizer"]["param_groups"].pop()["params"]
    for i in probe_ids:
        state["optimizer"]["state"].pop(i, None)
    torch.save(payload, out / "checkpoint.pt")
    result = run("train", "world-model", "--data", str(episodes_dir), "--out", str(out), "--max-episodes", "4",
                 "--holdout-every", "2", "--steps", "8", "--batch-size", "2", "--width", "8", "--warmup", "2",
                 "--no-wandb", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "resuming from" in result.stdout and json.loads(result.stdout.strip().splitlines()[-1])["steps"] == 8
    history = load_world_model(out / "world_model.pt").summary["history"]  # both commands, where each began
    assert [h["from_update"] for h in history] == [0, 6] and "--steps 8" in history[1]["command"]
    # other settings in the same folder are refused
    result = run("train", "world-model", "--data", str(episodes_dir), "--out", str(out), "--max-episodes", "4",
                 "--holdout-every", "2", "--steps", "9", "--width", "16", "--no-wandb", "--quiet")
    assert result.returncode == 2 and "width=8" in result.stderr
    report_dir = tmp_path / "eval"
    result = run("evaluate", "world-model", "--data", str(episodes_dir), "--checkpoint", str(out / "world_model.pt"),
                 "--out", str(report_dir), "--transitions", "10", "--segments", "3", "--horizon", "6", "--gifs", "1")
    assert result.returncode == 0, result.stderr
    report = json.loads((report_dir / "report.json").read_text())
    assert report["one_step"]["transitions"] == 10 and 0 <= report["one_step"]["bricks_exact"] <= 1
    assert report["rollouts"]["segments"] >= 1 and report["speed"]["predict_steps_per_s"] > 0
    assert report["serves"]["transitions"] > 0  # tracker episodes begin with no ball in play
    cost = report["model"]["training_cost"]  # the resumed run's two stretches, from its metadata
    recorded = load_world_model(out / "world_model.pt").summary["total_wall_hours"]
    assert cost["parts_hours"] == dict(world_model_runs=round(recorded, 3)) and "training cost" in result.stdout
    assert (report_dir / "metrics.png").stat().st_size > 0 and (report_dir / "rollout-0.gif").exists()


def test_stop_at_then_resume_with_other_unrolls(episodes_dir, tmp_path):
    """--stop-at ends a run inside its schedule; a resume with longer unrolls goes on from there and the
    history records both commands. A stop outside the schedule is refused before training."""
    config = WorldModelTrainConfig.tiny(str(episodes_dir), str(tmp_path / "wm"), max_episodes=4, holdout_every=2)
    with pytest.raises(ValueError, match="--stop-at"):
        train_world_model(dataclasses.replace(config, stop_at=7), progress=False)
    assert train_world_model(dataclasses.replace(config, stop_at=3), progress=False)["steps"] == 3
    summary = train_world_model(dataclasses.replace(config, unroll=0.5, unroll_steps=2), progress=False)
    assert summary["steps"] == config.steps
    assert [h["from_update"] for h in summary["history"]] == [0, 3]
    assert "--stop-at 3" in summary["history"][0]["command"] and "--unroll-steps 2" in summary["history"][1]["command"]


def test_bf16_runs_the_loss_and_the_unrolls_in_bfloat16_autocast(episodes_dir, tmp_path, monkeypatch):
    """--bf16: the loss's forward and the unrolled contexts' rollouts run under bfloat16 autocast, the
    weights stay float32 and finite, and the command records it; without it neither does."""
    seen = []
    loss, predict = WorldModel.loss, WorldModel.predict_ids

    def watch(name, method):
        def wrapped(self, *args, **kwargs):
            seen.append((name, torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
            return method(self, *args, **kwargs)
        return wrapped

    monkeypatch.setattr(WorldModel, "loss", watch("loss", loss))
    monkeypatch.setattr(WorldModel, "predict_ids", watch("predict", predict))
    config = WorldModelTrainConfig.tiny(str(episodes_dir), str(tmp_path / "wm"), max_episodes=4, holdout_every=2,
                                        unroll=1.0, bf16=True)
    summary = train_world_model(config, progress=False)
    assert "--bf16" in summary["training_command"]
    during = [(name, on, dtype) for name, on, dtype in seen if on]
    assert {name for name, _, _ in during} == {"loss", "predict"} and {d for _, _, d in during} == {torch.bfloat16}
    model = load_world_model(tmp_path / "wm" / "world_model.pt")
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())
    seen.clear()
    train_world_model(dataclasses.replace(config, bf16=False, out=str(tmp_path / "fp32")), progress=False)
    assert seen and not any(on for _, on, _ in seen)


def test_train_bad_data_folder(tmp_path):
    result = run("train", "world-model", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--tiny")
    assert result.returncode == 2 and "missing" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("device", ["tpu", "cuda:x"] + ([] if torch.cuda.is_available() else ["cuda"]))
def test_train_bad_device(episodes_dir, tmp_path, device):
    result = run("train", "world-model", "--data", str(episodes_dir), "--out", str(tmp_path / "o"), "--tiny",
                 "--device", device)
    assert result.returncode == 2 and "--device" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "checkpoint.pt").exists()


def test_unrolled_context_is_the_models_own_rollout(episodes_dir):
    """An unrolled batch's context ends at the transition's start but holds the model's frames, each
    predicted from the frames before with the latent inferred from the real video."""
    config = WorldModelTrainConfig.tiny(str(episodes_dir), "unused", batch_size=8, unroll_steps=3, max_episodes=4,
                                        holdout_every=2)
    train, _ = load_split(config, progress=False)
    torch.manual_seed(0)
    model = WorldModel(config.model_config(train.table.colors))
    context, target, served, index = sample_batch(train, model, config, np.random.default_rng(5), unroll=True)
    assert not served.any()  # serve_share 0 draws nothing else
    rng = np.random.default_rng(5)  # the same draws, replayed one sample at a time
    start = train.starts[rng.integers(len(train), size=config.batch_size)]
    n = int(rng.integers(1, config.unroll_steps + 1))
    k = config.context
    for i, s in enumerate(start):
        first = train.offsets[train.episode_of_frame[s]]
        frames = list(train.context(np.array([max(s - n, first)]), k)[0])
        for t in range(max(s - n, first) + 1, s + 1):
            z = model.infer_latent_ids(torch.from_numpy(train.context(np.array([t - 1]), k)),
                                       torch.from_numpy(train.frames[t][None]))
            frames.append(model.predict_ids(torch.from_numpy(np.stack(frames[-k:])[None]), z)[0].numpy())
        assert np.array_equal(context[i].numpy(), np.stack(frames[-k:])), f"sample {i}"
        assert np.array_equal(target[i].numpy(), train.frames[s + 1])
        if s == first:
            assert np.array_equal(context[i].numpy(), train.context(np.array([s]), k)[0])
    assert model.training


def test_encoder_can_read_the_real_last_frame_of_an_unrolled_context(episodes_dir, tmp_path, monkeypatch):
    """`encoder_last` replaces the context's last frame for the encoder only, so in an unrolled batch
    the latent is the one the real video gives (as the action map is labelled), and the decoder still
    continues from the model's own frames; `--unroll-latent real` passes the real frames in training."""
    model = tiny_model()
    torch.manual_seed(3)
    context = torch.randint(0, len(COLORS), (2, 2, 210, 160), dtype=torch.uint8)
    real_last = torch.randint(0, len(COLORS), (2, 210, 160), dtype=torch.uint8)
    target = torch.randint(0, len(COLORS), (2, 210, 160), dtype=torch.uint8)
    seen, indices = [], []  # what the encoder reads, and the latent it gives
    features, quantize = model.encoder.features, model.encoder.quantize

    def spy_features(last, nxt):
        seen.append(last)
        return features(last, nxt)

    def spy_quantize(*args):
        out = quantize(*args)
        indices.append(out[1])
        return out

    model.encoder.features, model.encoder.quantize = spy_features, spy_quantize
    decoded = []
    model.decoder.register_forward_hook(lambda module, args, output: decoded.append(args[0]))
    model.loss(context, target, encoder_last=real_last)
    assert torch.equal(seen[-1], real_last) and torch.equal(decoded[-1], context)
    assert torch.equal(indices[-1], model.infer_latent_ids(torch.stack([context[:, 0], real_last], 1), target))
    model.loss(context, target)
    assert torch.equal(seen[-1], context[:, -1])
    # in training, every batch is unrolled here: the encoder reads the real frame before each target
    config = WorldModelTrainConfig.tiny(str(episodes_dir), str(tmp_path / "r"), unroll=1.0, unroll_steps=3,
                                        unroll_latent="real", max_episodes=4, holdout_every=2)
    train, _ = load_split(config, progress=False)
    calls = []
    original = WorldModel.loss

    def spy(self, context, target, **kwargs):
        calls.append((context, target, kwargs["encoder_last"]))
        return original(self, context, target, **kwargs)

    monkeypatch.setattr(WorldModel, "loss", spy)
    train_world_model(config, progress=False)
    assert len(calls) == config.steps
    rolled = 0
    for context, target, real in calls:
        index = [np.flatnonzero((train.frames[train.starts + 1] == t.numpy()).all(axis=(1, 2))) for t in target]
        for i, candidates in enumerate(index):  # the target's transition: its real last frame is `real`
            assert any(np.array_equal(train.frames[train.starts[j]], real[i].numpy()) for j in candidates)
        rolled += int((context[:, -1] != real).any())
    assert rolled > 0  # the model's own frames differ from the real ones somewhere
    with pytest.raises(ValueError, match="--unroll-latent"):
        train_world_model(dataclasses.replace(config, unroll_latent="fake"), progress=False)
    # --no-unroll-encoder: unrolled batches train the decoder alone
    monkeypatch.undo()
    frozen = dataclasses.replace(config, out=str(tmp_path / "f"), unroll_encoder=False)
    train_world_model(frozen, progress=False)
    torch.manual_seed(frozen.seed)
    before = WorldModel(frozen.model_config(train.table.colors)).state_dict()
    after = load_world_model(tmp_path / "f" / "world_model.pt").state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))
    assert not all(torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    assert "--no-unroll-encoder" in load_world_model(tmp_path / "f" / "world_model.pt").summary["training_command"]


def test_serve_transitions_leave_frames_without_a_ball(episodes_dir):
    config = WorldModelTrainConfig.tiny(str(episodes_dir), "unused", batch_size=16, max_episodes=4, holdout_every=2,
                                        serve_share=1.0)
    train, _ = load_split(config, progress=False)
    ram = np.concatenate([load_episode(episodes_dir / name, decode_frames=False).ram for name in train.names])
    expected = [j for j, s in enumerate(train.starts) if train.lives[s] > 0 and ram_ball(ram[s]) is None]
    serves = serve_transitions(train, str(episodes_dir))
    assert 0 < len(serves) < len(train) and serves.tolist() == expected
    model = WorldModel(config.model_config(train.table.colors))
    context, target, served, index = sample_batch(train, model, config, np.random.default_rng(0), unroll=False,
                                                  serves=serves)
    assert served.all() and np.isin(index, serves).all()
    for i in range(config.batch_size):  # with a share of 1 every sample is one of them
        assert parse_frame(train.table.to_rgb(context[i, -1].numpy())).ball is None
    # a serve is one of those whose next frame has a ball in play
    waiting, labels = ram_serves(train, str(episodes_dir))
    assert np.flatnonzero(waiting).tolist() == expected
    expected_served = [j for j in expected if ram_ball(ram[train.starts[j] + 1]) is not None]
    assert 0 < len(expected_served) and np.flatnonzero(labels).tolist() == expected_served


def test_ball_transitions_are_bounces_and_flight_among_the_bricks(episodes_dir):
    config = WorldModelTrainConfig.tiny(str(episodes_dir), "unused", batch_size=16, max_episodes=4, holdout_every=2,
                                        ball_share=1.0)
    train, _ = load_split(config, progress=False)
    ram = np.concatenate([load_episode(episodes_dir / name, decode_frames=False).ram for name in train.names])
    first_frames = set(train.offsets[:-1].tolist())
    expected_bounce, expected_bricks = [], []
    for j, s in enumerate(train.starts):  # one transition at a time, from the ball's RAM position
        before, now, after = (ram_ball(ram[t]) if t >= 0 else None for t in (s - 1, s, s + 1))
        if s not in first_frames and None not in (before, now, after):
            steps = [(now[i] - before[i], after[i] - now[i]) for i in range(2)]
            if any(a * b < 0 for a, b in steps):
                expected_bounce.append(j)
        if after is not None and BRICK_TOP - BALL_H <= after[1] < BRICK_BOTTOM + BALL_H:
            expected_bricks.append(j)
    bounce, among_bricks = ram_ball_transitions(train, str(episodes_dir))
    assert 0 < len(expected_bounce) and np.flatnonzero(bounce).tolist() == expected_bounce
    assert 0 < len(expected_bricks) and np.flatnonzero(among_bricks).tolist() == expected_bricks
    balls = np.flatnonzero(bounce | among_bricks)
    model = WorldModel(config.model_config(train.table.colors))
    _, _, served, index = sample_batch(train, model, config, np.random.default_rng(0), unroll=False, balls=balls)
    assert not served.any() and np.isin(index[4:], balls).all()  # the first 4 stay uniform (logged error rates)
    config = dataclasses.replace(config, ball_share=0.0)
    _, _, _, index = sample_batch(train, model, config, np.random.default_rng(0), unroll=False, balls=balls)
    assert not np.isin(index, balls).all()


def test_position_embedding_starts_at_zero_and_lets_the_decoder_tell_places_apart(tmp_path):
    torch.manual_seed(0)
    plain = WorldModel(WorldModelConfig(colors=COLORS, widths=(8, 16, 32), encoder_width=8))
    placed = WorldModel(WorldModelConfig(colors=COLORS, widths=(8, 16, 32), encoder_width=8, position_embedding=True))
    weights = plain.state_dict()
    weights["decoder.position"] = placed.state_dict()["decoder.position"]
    placed.load_state_dict(weights)
    context = torch.zeros(1, 2, 210, 160, dtype=torch.uint8)  # a black frame looks the same everywhere
    latent = torch.zeros(1, 16)
    assert torch.equal(plain.decoder(context, latent), placed.decoder(context, latent))  # zero: the same model
    logits = placed.decoder(context, latent)
    logits[0, 1, 100, 40].backward()
    assert placed.decoder.position.grad.abs().sum() > 0
    with torch.no_grad():
        placed.decoder.position[:, 25, 10] += 1.0  # one block's bias: that block's output moves
        out = placed.decoder(context, latent)[0]
    assert not torch.allclose(out[:, 100:104, 40:44], logits[0, :, 100:104, 40:44].detach())


def test_serve_probe_reads_the_code_and_trains_the_encoder():
    """The serve label's loss reaches the encoder through the straight-through latent, and the probe
    sees only the quantized code: two samples with the same code get the same logit."""
    torch.manual_seed(0)
    model = tiny_model()
    probe = torch.nn.Linear(model.config.latent_dim, 1)
    ids = torch.randint(0, len(COLORS), (2, 2, 210, 160), dtype=torch.uint8)
    context, target = ids, ids[:, -1]
    labels = torch.tensor([True, False])
    model.eval()  # no dead-code reset between the calls
    plain = model.loss(context, target)[0]
    loss, metrics = model.loss(context, target, serve_probe=(probe, labels, 0.5))
    assert loss.item() > plain.item() and 0 < metrics["serve_label"] and 0 <= metrics["serve_label_error"] <= 1
    loss.backward()
    assert model.encoder.head.weight.grad.abs().sum() > 0 and probe.weight.grad.abs().sum() > 0
    latent, index, _ = model.encoder(context[:, -1], target)
    same = torch.stack([latent[0], latent[0]])  # one code twice
    assert torch.equal(probe(same)[0], probe(same)[1])


@pytest.mark.parametrize("event_head", [False, True])
def test_event_codes_take_labelled_transitions_and_the_encoder_learns_them(event_head):
    """Labelled events take their reserved code and the rest a free one; the event cross-entropy
    (on the code similarities, or on the event head) teaches the encoder to pick the event codes
    itself, so that inference without labels finds them."""
    model = tiny_model(codes=6, event_codes=2, event_head=event_head)
    assert (model.encoder.event_head is not None) == event_head
    torch.manual_seed(1)
    ids = torch.randint(0, len(COLORS), (4, 2, 210, 160), dtype=torch.uint8)
    context, target = ids, torch.randint(0, len(COLORS), (4, 210, 160), dtype=torch.uint8)
    events = torch.tensor([-1, 0, 1, -1])
    _, index, _ = model.encoder(context[:, -1], target, events)
    assert index[1] == 4 and index[2] == 5 and (index[[0, 3]] < 4).all()
    loss, metrics = model.loss(context, target, events=events)
    assert 0 <= metrics["event_error"] <= 1
    loss.backward()
    assert model.encoder.head.weight.grad.abs().sum() > 0 and model.decoder.stem.weight.grad.abs().sum() > 0
    optimizer = torch.optim.Adam(model.encoder.parameters(), lr=1e-2)
    for _ in range(40):
        optimizer.zero_grad()
        model.loss(context, target, events=events)[0].backward()
        optimizer.step()
    assert model.infer_latent_ids(context, target)[1:3].tolist() == [4, 5]
    assert (model.infer_latent_ids(context, target)[[0, 3]] < 4).all()


def test_event_head_keeps_events_out_of_the_free_codes():
    """With the event head, labelled events add nothing to the codebook and commitment losses (without
    it they do), and the decoder's gradient reaches an event code's row instead of the event
    sample's encoder output; a plain sample's reaches the encoder, straight through."""
    torch.manual_seed(2)
    events, logits = torch.tensor([-1, 0, 1, -1]), torch.randn(4, 3)
    for head in (True, False):
        vq = tiny_model(codes=6, event_codes=2, event_head=head).encoder.vq
        z = torch.randn(4, vq.codebook.shape[1])
        moved = z.clone()
        moved[1:3] = torch.randn(2, z.shape[1])  # only the events' encoder outputs differ
        same = torch.isclose(vq(z, events, logits if head else None)[2],
                             vq(moved, events, logits if head else None)[2])
        assert bool(same) == head  # without the head, the events pull on the codes
    vq = tiny_model(codes=6, event_codes=2, event_head=True).encoder.vq
    z = torch.randn(2, z.shape[1], requires_grad=True)
    out, index, _ = vq(z, torch.tensor([-1, 1]), torch.zeros(2, 3))
    assert index[1] == 5
    out.sum().backward()
    assert vq.codebook.grad[5].abs().sum() > 0 and z.grad[0].abs().sum() > 0
    assert z.grad[1].abs().sum() == 0  # the event sample's own output does not reach the decoder


def test_dead_code_reset_spares_event_codes():
    model = tiny_model(codes=6, event_codes=2)
    vq = model.encoder.vq
    vq.dead_after = 2
    before = vq.codebook.detach().clone()
    z = vq.codebook.detach()[0].repeat(8, 1) * 10  # every input picks code 0
    for _ in range(3):
        vq(z)
    moved = (vq.codebook.detach() - before).abs().sum(dim=1) > 0
    assert moved[1:4].all() and not moved[0] and not moved[4:].any()
    # labelled events fit the free codes worst, yet never seed one: a free code would take them over
    vq.idle.zero_()
    events = torch.tensor([-1] * 6 + [0, 1])
    z = torch.cat([vq.codebook.detach()[0].repeat(6, 1), -vq.codebook.detach()[0].repeat(2, 1)])
    for _ in range(3):
        vq(z, events)
    reset = F.normalize(vq.codebook.detach()[1:4], dim=1)
    assert (reset @ F.normalize(vq.codebook.detach()[0], dim=0) > 0.9).all()
    with pytest.raises(ValueError, match="event codes"):
        tiny_model(codes=2, event_codes=2)


def test_event_input_reaches_the_decoder_and_the_latent_index():
    """The event input is a second part of the latent: index = code + codes * (serve + 2 * life lost).
    Its adapters start at zero; given no labels, it is read from the frames by the parser."""
    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(colors=COLORS, codes=4, widths=(8, 16, 32), encoder_width=8,
                                        event_input=True))
    assert model.config.latents == 16 and not model.decoder.event_map.any()
    context = torch.randint(0, 4, (2, 2, 210, 160), dtype=torch.uint8)
    target = torch.randint(0, 4, (2, 210, 160), dtype=torch.uint8)
    same = model.predict_ids(context, torch.tensor([1, 1]))
    assert all(torch.equal(model.predict_ids(context, torch.tensor([1, 1]) + 4 * e), same) for e in (1, 2, 3))
    for parameter in model.event_parameters():  # as if trained: the four values now differ
        parameter.data.normal_()
    latent = model.encoder.vq.lookup(torch.tensor([1, 1]))
    logits = [model.decoder(context, latent, events_to_bits(torch.tensor([e, e]))) for e in range(4)]
    assert all(not torch.allclose(logits[a], logits[b]) for a in range(4) for b in range(a))
    codes = model.infer_latent_ids(context, target, event_inputs=torch.tensor([0, 0]))
    assert (codes < 4).all()
    assert torch.equal(model.infer_latent_ids(context, target, event_inputs=torch.tensor([3, 2])),
                       codes + torch.tensor([12, 8]))
    loss, _ = model.loss(context, target, event_inputs=torch.tensor([1, 2]), train_encoder=False)
    loss.backward()
    assert model.decoder.event_map.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.encoder.parameters())
    with pytest.raises(NeuralBreakoutError, match="0..15"):
        model.predict(np.zeros((2, 210, 160, 3), np.uint8), 16)
    with pytest.raises(ValueError, match="needs `bits`"):
        model.decoder(context, model.encoder.vq.lookup(torch.tensor([0, 1])))


def test_event_input_is_read_from_real_frames(episodes_dir):
    """Without labels the event input is read from the pixels: on recorded episodes it marks exactly
    the serves the emulator's RAM shows, and the lives digit's falls."""
    from worldmodel.colors import ColorTable

    store = load_split(WorldModelTrainConfig.tiny(str(episodes_dir), "unused", max_episodes=4, holdout_every=2),
                       None, progress=False)[0]
    events = pixel_events(store, 2)
    served = ram_serves(store, str(episodes_dir))[1]
    assert served.any() and np.array_equal(events % 2 == 1, served)
    lives = store.lives[store.starts + 1] < store.lives[store.starts]
    assert (events // 2).sum() == lives.sum()  # the digit may show a lost life a step after the RAM
    model = WorldModel(WorldModelConfig(colors=ColorTable(store.table.colors).colors, codes=4, widths=(8, 16, 32),
                                        encoder_width=8, event_input=True))
    index = np.flatnonzero(events > 0)
    context, nxt = store.batch(index, 2)
    assert np.array_equal(model.read_events(torch.from_numpy(context), torch.from_numpy(nxt)).numpy(), events[index])


def test_event_labels_are_serves_and_lost_lives(episodes_dir):
    config = WorldModelTrainConfig.tiny(str(episodes_dir), "unused", max_episodes=4, holdout_every=2)
    train, _ = load_split(config, progress=False)
    waiting, served = ram_serves(train, str(episodes_dir))
    j = int(np.flatnonzero(~served)[len(train) // 2])  # the short test games lose no life: make one lose it
    train.lives[train.starts[j] + 1] = train.lives[train.starts[j]] - 1
    lives = train.lives.astype(int)
    lost = lives[train.starts + 1] < lives[train.starts]
    assert lost[j] and not (lost & served).any()
    _, labels = ram_events(train, str(episodes_dir))
    assert np.array_equal(labels == 0, served) and np.array_equal(labels == 1, lost)
    assert (labels[~(served | lost)] == -1).all()
    _, serves_only = ram_events(train, str(episodes_dir), events=1)
    assert np.array_equal(serves_only >= 0, served)


def test_training_command_parses_back_to_its_config():
    """The recorded command reproduces the run: flags, not `--freeze-encoder True`."""
    import shlex

    from neural_breakout import build_parser, config_from_args
    from train.world_model import training_command

    config = WorldModelTrainConfig(data="data/x", out="runs/y", init="a.pt", freeze_encoder=True, wandb=False,
                                   event_codes=2, lr=4e-5, fine_dilations="2,4", unroll_latent="real",
                                   unroll_encoder=False)
    words = shlex.split(training_command(config))
    assert "--freeze-encoder" in words and "--no-wandb" in words and "True" not in words
    args = build_parser().parse_args(words[1:])
    assert config_from_args(WorldModelTrainConfig, args) == config
    # the action map's record goes through the same helper
    from train.action_map import ActionMapTrainConfig
    from train.logger import command_line

    config = ActionMapTrainConfig(data="data/x", world_model="w.pt", out="o", context=4, presence=True, serves=True,
                                  rare_share=0.5)
    words = shlex.split(command_line("neural-breakout train action-map", config, first=("data", "world_model", "out")))
    assert config_from_args(ActionMapTrainConfig, build_parser().parse_args(words[1:])) == config


def test_fine_tune_from_a_trained_model(episodes_dir, tmp_path):
    base = ("train", "world-model", "--data", str(episodes_dir), "--tiny", "--quiet")
    assert run(*base, "--out", str(tmp_path / "a")).returncode == 0
    init = tmp_path / "a" / "world_model.pt"
    result = run(*base, "--out", str(tmp_path / "b"), "--init", str(init), "--serve-share", "0.5",
                 "--serve-label", "0.1")
    assert result.returncode == 0, result.stderr
    summary = load_world_model(tmp_path / "b" / "world_model.pt").summary
    assert 0.05 < summary["peak_rss_gb"] < 64  # this process's peak memory, in GB
    assert summary["init"]["path"] == str(init) and summary["init"]["steps"] == summary["steps"]
    assert summary["total_wall_hours"] == pytest.approx(summary["init"]["wall_hours"] + summary["wall_hours"])
    assert "--init" in summary["training_command"] and "--serve-label 0.1" in summary["training_command"]
    assert summary["serve_transitions"] > summary["served_transitions"] > 0
    # a second --init keeps the chain: the file names every run it grew from
    assert run(*base, "--out", str(tmp_path / "chain"), "--init", str(tmp_path / "b" / "world_model.pt")).returncode == 0
    chain = load_world_model(tmp_path / "chain" / "world_model.pt").summary["init"]
    assert chain["path"] == str(tmp_path / "b" / "world_model.pt") and chain["init"]["path"] == str(init)
    # training starts from the init weights: zero updates export them unchanged
    train_world_model(WorldModelTrainConfig.tiny(str(episodes_dir), str(tmp_path / "c"), steps=0, init=str(init),
                                                 max_episodes=4, holdout_every=2), progress=False)
    before, after = load_world_model(init).state_dict(), load_world_model(tmp_path / "c" / "world_model.pt").state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # event codes are new rows after the init's codes; everything else is the init's
    train_world_model(WorldModelTrainConfig.tiny(str(episodes_dir), str(tmp_path / "g"), steps=0, init=str(init),
                                                 max_episodes=4, holdout_every=2, event_codes=2), progress=False)
    grown = load_world_model(tmp_path / "g" / "world_model.pt")
    codes = before["encoder.vq.codebook"].shape[0]
    assert grown.config.codes == codes + 2 and grown.config.event_codes == 2
    assert torch.equal(grown.state_dict()["encoder.vq.codebook"][:codes], before["encoder.vq.codebook"])
    assert all(torch.equal(before[k], grown.state_dict()[k]) for k in before if "vq" not in k)
    # --position-embedding on a model without one adds it at zero
    train_world_model(WorldModelTrainConfig.tiny(str(episodes_dir), str(tmp_path / "p"), steps=0, init=str(init),
                                                 max_episodes=4, holdout_every=2, position_embedding=True),
                      progress=False)
    placed = load_world_model(tmp_path / "p" / "world_model.pt")
    assert placed.config.position_embedding and not placed.decoder.position.any()
    assert all(torch.equal(before[k], placed.state_dict()[k]) for k in before)
    # --position-only trains the embedding alone
    train_world_model(WorldModelTrainConfig.tiny(str(episodes_dir), str(tmp_path / "q"), init=str(init),
                                                 max_episodes=4, holdout_every=2, position_embedding=True,
                                                 position_only=True, lr=1e-2), progress=False)
    only = load_world_model(tmp_path / "q" / "world_model.pt")
    assert only.decoder.position.any() and all(torch.equal(before[k], only.state_dict()[k]) for k in before)
    # --freeze-encoder trains the decoder alone: the encoder and the codebook stay as they were
    train_world_model(WorldModelTrainConfig.tiny(str(episodes_dir), str(tmp_path / "i"), init=str(init),
                                                 max_episodes=4, holdout_every=2, event_codes=2, freeze_encoder=True,
                                                 serve_share=0.5), progress=False)
    frozen = load_world_model(tmp_path / "i" / "world_model.pt").state_dict()
    assert all(torch.equal(grown.state_dict()[k], frozen[k]) for k in frozen if k.startswith("encoder."))
    assert not all(torch.equal(before[k], frozen[k]) for k in before if k.startswith("decoder."))
    # --event-input adds the event input at zero: all four of its values predict what the init predicts
    train_world_model(WorldModelTrainConfig.tiny(str(episodes_dir), str(tmp_path / "s0"), steps=0, init=str(init),
                                                 max_episodes=4, holdout_every=2, event_input=True), progress=False)
    added = load_world_model(tmp_path / "s0" / "world_model.pt")
    base_model = load_world_model(init)
    assert added.config.event_input and added.config.latents == 4 * base_model.config.codes
    assert all(torch.equal(before[k], added.state_dict()[k]) for k in before)
    context = torch.randint(0, len(base_model.config.colors), (3, 2, 210, 160), dtype=torch.uint8)
    codes = torch.tensor([0, 1, 2]) % base_model.config.codes
    served = codes + base_model.config.codes * 3  # a serve and a lost life
    assert torch.equal(added.predict_ids(context, codes), base_model.predict_ids(context, codes))
    assert torch.equal(added.predict_ids(context, served), base_model.predict_ids(context, codes))
    # and trains only that: the adapters move, every weight of the init stays
    train_world_model(WorldModelTrainConfig.tiny(str(episodes_dir), str(tmp_path / "s1"), init=str(init),
                                                 max_episodes=4, holdout_every=2, event_input=True, serve_share=0.5,
                                                 lr=1e-2), progress=False)
    tuned = load_world_model(tmp_path / "s1" / "world_model.pt")
    assert all(torch.equal(before[k], tuned.state_dict()[k]) for k in before)
    assert tuned.decoder.event_map.any()
    assert not torch.equal(tuned.predict_ids(context, served), tuned.predict_ids(context, codes))
    # a model that held out other episodes would be fine-tuned on its own evaluation data
    result = run("train", "world-model", "--data", str(episodes_dir), "--out", str(tmp_path / "d"), "--init",
                 str(init), "--max-episodes", "4", "--holdout-every", "3", "--steps", "1", "--batch-size", "2",
                 "--width", "8", "--no-wandb", "--quiet")
    assert result.returncode == 2 and "held out other episodes" in result.stderr
    result = run("train", "world-model", "--data", str(episodes_dir), "--out", str(tmp_path / "w"), "--init",
                 str(init), "--max-episodes", "4", "--holdout-every", "2", "--steps", "1", "--batch-size", "2",
                 "--width", "16", "--no-wandb", "--quiet")  # the init: --tiny's width 8
    assert result.returncode == 2 and "has --width 8, this run 16; give --width 8" in result.stderr
    result = run(*base, "--out", str(tmp_path / "e"), "--serve-share", "1.5")
    assert result.returncode == 2 and "--serve-share" in result.stderr
    result = run(*base, "--out", str(tmp_path / "k"), "--ball-share", "-0.1")
    assert result.returncode == 2 and "--ball-share" in result.stderr
    result = run(*base, "--out", str(tmp_path / "f"), "--serve-label", "-1")
    assert result.returncode == 2 and "--serve-label" in result.stderr
    result = run(*base, "--out", str(tmp_path / "h"), "--event-codes", "3")
    assert result.returncode == 2 and "--event-codes" in result.stderr
    result = run(*base, "--out", str(tmp_path / "r"), "--position-only")
    assert result.returncode == 2 and "--position-only needs" in result.stderr
    result = run(*base, "--out", str(tmp_path / "j"), "--freeze-encoder")
    assert result.returncode == 2 and "--freeze-encoder needs --init" in result.stderr
    result = run(*base, "--out", str(tmp_path / "l"), "--event-input")
    assert result.returncode == 2 and "--event-input needs --init" in result.stderr


def test_ablation_cli(episodes_dir, tmp_path):
    out = tmp_path / "ablation"
    args = ("evaluate", "ablation", "--data", str(episodes_dir), "--out", str(out), "--variants",
            "context1-codes8,context2-codes64", "--steps", "2", "--batch-size", "2", "--width", "8",
            "--max-episodes", "4", "--holdout-every", "2", "--transitions", "4", "--segments", "2", "--horizon", "3",
            "--quiet")
    result = run(*args, timeout=300)  # two trainings and evaluations: slow on a shared CPU
    assert result.returncode == 0, result.stderr
    rows = json.loads((out / "ablation.json").read_text())["rows"]
    assert [(r["context"], r["codes"], r["updates"]) for r in rows] == [(1, 8, 2), (2, 64, 2)]
    assert (out / "ablation.md").read_text().count("\n| ") == 3  # header and two variants
    assert load_world_model(out / "context2-codes64" / "world_model.pt").config.codes == 64
    report = out / "context1-codes8" / "eval" / "report.json"
    evaluated_at = report.stat().st_mtime_ns
    result = run(*args, timeout=300)  # finished runs are not trained again, nor evaluated again with the same settings
    assert result.returncode == 0 and "resuming from" not in result.stderr
    assert report.stat().st_mtime_ns == evaluated_at
    result = run(*args, "--variants", "context2-codes64", timeout=300)  # a run of one variant keeps the other's row
    assert result.returncode == 0, result.stderr
    rows = json.loads((out / "ablation.json").read_text())["rows"]
    assert [r["variant"] for r in rows] == ["context1-codes8", "context2-codes64"]
    stale = json.loads(report.read_text())
    stale["prediction_version"] = 1  # made before predictions changed: evaluated again
    report.write_text(json.dumps(stale))
    result = run(*args, "--variants", "context1-codes8", timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(report.read_text())["prediction_version"] > 1
    result = run(*args, "--variants", "context1-codes8", "--horizon", "2")  # the last value of an option wins
    assert result.returncode == 0, result.stderr
    assert report.stat().st_mtime_ns != evaluated_at and json.loads(report.read_text())["config"]["horizon"] == 2
    rows = json.loads((out / "ablation.json").read_text())["rows"]
    assert [r["variant"] for r in rows] == ["context1-codes8"]  # other settings: a new table
    result = run("evaluate", "ablation", "--data", str(episodes_dir), "--variants", "context3-codes8")
    assert result.returncode == 2 and "unknown context3-codes8" in result.stderr


def _ball_logits(ids: torch.Tensor, hot: dict) -> torch.Tensor:
    """Logits (1, K, 210, 160) that say each pixel of `ids` (210, 160) surely stays, except the pixels
    in `hot` ((row, col) -> probability of red, the ball's colour below the bricks)."""
    logits = F.one_hot(ids.long(), len(COLORS)).permute(2, 0, 1)[None].float() * 10.0
    for (y, x), p in hot.items():
        logits[0, :, y, x] = -10.0
        logits[0, 0, y, x], logits[0, 2, y, x] = np.log(1 - p), np.log(p)
    return logits


def test_one_ball_draws_one_whole_ball_where_it_is_most_likely():
    """A smear and a stray dot (what each pixel's own argmax draws) become one 2x4 ball in the window
    with the most probability; the paddle and the rest of the frame stay as decided."""
    model = tiny_model().eval()
    ids = torch.zeros(210, 160, dtype=torch.uint8)
    ids[189:193, 60:76] = 2  # the paddle
    decided = ids.clone()
    decided[100:110, 50] = 2  # a smear, one pixel wide, 10 tall
    decided[150, 120] = 2  # a stray dot
    hot = {(y, x): 0.6 for y in range(100, 110) for x in (50, 51)}
    hot.update({(y, x): 0.9 for y in range(104, 108) for x in (50, 51)})
    placed = model.place_ball(_ball_logits(ids, hot), decided[None])[0]
    expected = ids.clone()
    expected[104:108, 50:52] = 2
    assert torch.equal(placed, expected)
    assert parse_frame(model.table.to_rgb(placed.numpy())).ball == (50, 104)


def test_one_ball_leaves_a_frame_without_ball_pixels_alone():
    """Whether there is a ball stays the per-pixel decision's: no ball pixel decided, none drawn."""
    model = tiny_model().eval()
    ids = torch.zeros(210, 160, dtype=torch.uint8)
    ids[189:193, 60:76] = 2
    hot = {(y, x): 0.4 for y in range(100, 104) for x in (50, 51)}
    assert torch.equal(model.place_ball(_ball_logits(ids, hot), ids[None].clone())[0], ids)


def _paddle_logits(ids: torch.Tensor, red: dict) -> torch.Tensor:
    """Logits (1, K, 210, 160) that say each pixel of `ids` (210, 160) surely stays, except the paddle
    rows' columns in `red` (column -> probability of red on all four rows)."""
    logits = F.one_hot(ids.long(), len(COLORS)).permute(2, 0, 1)[None].float() * 10.0
    for x, p in red.items():
        logits[0, :, 189:193, x] = -10.0
        logits[0, 0, 189:193, x], logits[0, 2, 189:193, x] = np.log(1 - p), np.log(p)
    return logits


def test_one_paddle_draws_a_whole_paddle_of_the_last_frames_width():
    """Each column's own argmax puts the left edge 2 px in (a 14-px paddle, read 2 px off); the whole
    paddle keeps the last frame's 16 px where the columns' summed odds are highest. A ball apart from
    it stays; red joined to the paddle is cleared, unless a ball is near the paddle."""
    model = tiny_model().eval()
    last = torch.zeros(210, 160, dtype=torch.uint8)
    last[189:193, 60:76] = 2  # 16 px
    ids = torch.zeros(210, 160, dtype=torch.uint8)
    ids[189:193, 64:80] = 2  # the paddle has moved 4 px right
    odds = {x: 0.99 for x in range(66, 80)}
    odds.update({64: 0.45, 65: 0.45, 80: 0.1, 81: 0.1})  # the left edge hesitates
    decided = ids.clone()
    decided[189:193, 64:66] = 0  # what each column's own argmax draws: 66..79
    decided[189:193, 120:122] = 2  # a ball on the paddle rows, apart from the paddle
    placed = model.place_paddle(_paddle_logits(decided, odds), decided[None], last[None, None])[0]
    expected = decided.clone()
    expected[189:193, 64:80] = 2
    assert torch.equal(placed, expected)
    assert parse_frame(model.table.to_rgb(placed.numpy())).paddle_x == 64
    decided[189:193, 80:82] = 2  # per-pixel red joined on the right: cleared
    placed = model.place_paddle(_paddle_logits(decided, odds), decided[None], last[None, None])[0]
    assert torch.equal(placed, expected)
    near = last.clone()
    near[180:184, 90:92] = 2  # a ball 5 rows above the paddle: the red joined to the paddle may be it, so it stays
    placed = model.place_paddle(_paddle_logits(decided, odds), decided[None], near[None, None])[0]
    expected[189:193, 80:82] = 2
    assert torch.equal(placed, expected)
    no_paddle = torch.zeros(1, 210, 160, dtype=torch.uint8)  # no whole red column decided: left alone
    assert torch.equal(model.place_paddle(_paddle_logits(no_paddle[0], {70: 0.4}), no_paddle, last[None, None]), no_paddle)


def test_whole_digits_draw_the_most_likely_glyph():
    """Each pixel's own argmax draws a 4 with a stray block (no digit); the whole-glyph decoding draws
    the 4 the pixels make most likely, in the cell's lit colour, and leaves the rest of the frame."""
    from worldmodel.breakout import DIGIT_GLYPHS, DIGIT_TOP, LIVES_DIGIT_X, SCORE_DIGIT_X

    model = tiny_model().eval()
    lit = np.zeros((210, 160))  # probability of grey (class 1) per pixel; black otherwise
    for x0, glyph in [(x, DIGIT_GLYPHS[0]) for x in SCORE_DIGIT_X] + [(LIVES_DIGIT_X, DIGIT_GLYPHS[4])]:
        cell = np.kron(glyph, np.ones((2, 4)))  # (10, 12) pixels
        lit[DIGIT_TOP:DIGIT_TOP + 10, x0:x0 + 12] = np.where(cell > 0, 0.95, 0.05)
    lit[DIGIT_TOP + 8:DIGIT_TOP + 10, LIVES_DIGIT_X:LIVES_DIGIT_X + 4] = 0.6  # bottom-left block: not in a 4
    lit[150:154, 50:52] = 0.95  # a ball, left alone
    logits = torch.full((1, len(COLORS), 210, 160), -20.0)
    logits[0, 1] = torch.from_numpy(np.log(lit + 1e-9)).float()
    logits[0, 0] = torch.from_numpy(np.log(1 - lit + 1e-9)).float()
    decided = logits.argmax(dim=1).to(torch.uint8)
    assert decided[0, DIGIT_TOP + 8, LIVES_DIGIT_X] == 1  # the pixels alone draw the stray block
    placed = model.place_digits(logits, decided)[0]
    expected = decided[0].clone()
    expected[DIGIT_TOP + 8:DIGIT_TOP + 10, LIVES_DIGIT_X:LIVES_DIGIT_X + 4] = 0
    assert torch.equal(placed, expected)
    info = parse_frame(model.table.to_rgb(placed.numpy()))
    assert (info.score, info.lives) == (0, 4)


def _frame_ids(score: int, bricks: np.ndarray) -> torch.Tensor:
    """(210, 160) class ids of a frame that shows `score` in grey (class 1) and the (6, 18) `bricks`
    in blue (class 3)."""
    from worldmodel.breakout import BRICK_H, BRICK_W, DIGIT_TOP, PLAYFIELD_LEFT, score_pixels

    ids = torch.zeros(210, 160, dtype=torch.uint8)
    ids[DIGIT_TOP:DIGIT_TOP + 10] = torch.from_numpy(score_pixels(score)).to(torch.uint8)
    cells = np.kron(bricks, np.ones((BRICK_H, BRICK_W), dtype=bool))
    ids[BRICK_TOP:BRICK_BOTTOM, PLAYFIELD_LEFT:PLAYFIELD_LEFT + 144][torch.from_numpy(cells)] = 3
    return ids


def test_count_score_adds_the_points_of_the_bricks_removed_and_what_the_last_frame_owes():
    """The score digits are redrawn as the last frame's score plus the points of the bricks the step
    removed (a top-row brick: 7), in whole glyphs whatever the decoder drew there; a score that lagged
    a step behind its brick in the context gets the lag back; the rest of the frame stays."""
    model = tiny_model().eval()
    full = np.ones((6, 18), dtype=bool)
    hit = full.copy()
    hit[0, 3] = False  # a top brick: 7 points
    hit_twice = hit.copy()
    hit_twice[5, 10] = False  # and a bottom brick: 1 point
    context = torch.stack([_frame_ids(38, full), _frame_ids(38, full)])[None]
    decided = _frame_ids(38, hit)
    decided[8:10, 40:44] = 0  # the decoder's half-drawn digit
    decided[150:154, 50:52] = 2  # a ball, left alone
    counted = model.count_score(decided[None], context)[0]
    info = parse_frame(model.table.to_rgb(counted.numpy()))
    assert info.score == 45 and info.bricks_left == 107
    expected = _frame_ids(45, hit)
    expected[150:154, 50:52] = 2
    assert torch.equal(counted, expected)
    lagging = torch.stack([_frame_ids(38, full), _frame_ids(38, hit)])[None]  # the brick went, the score lags
    counted = model.count_score(_frame_ids(38, hit_twice)[None], lagging)[0]
    assert parse_frame(model.table.to_rgb(counted.numpy())).score == 46  # 38 + 7 owed + 1
    caught_up = torch.stack([_frame_ids(38, full), _frame_ids(45, hit)])[None]  # nothing owed
    counted = model.count_score(_frame_ids(45, hit)[None], caught_up)[0]
    assert parse_frame(model.table.to_rgb(counted.numpy())).score == 45


def test_median_interval_brackets_the_median_and_narrows_with_more_segments():
    from train.evaluate import median_interval

    assert median_interval([7] * 20) == [7.0, 7.0]
    rng = np.random.default_rng(0)
    few, many = rng.integers(0, 64, 50), rng.integers(0, 64, 2000)
    low, high = median_interval(few)
    assert low <= np.median(few) <= high and low < high
    assert np.diff(median_interval(many))[0] < high - low


def test_share_interval_matches_wilson_and_narrows_with_more_segments():
    from train.evaluate import share_interval

    low, high = share_interval(90, 100)  # the textbook Wilson interval of 90 in 100: 82.6%-94.5%
    assert abs(low - 0.8256) < 1e-3 and abs(high - 0.9448) < 1e-3
    low, high = share_interval(0, 10)  # none in 10: from 0 to z^2 / (n + z^2)
    assert abs(low) < 1e-12 and abs(high - 1.96 ** 2 / (10 + 1.96 ** 2)) < 1e-9
    assert abs(share_interval(10, 10)[1] - 1.0) < 1e-12
    wide, narrow = share_interval(90, 100), share_interval(900, 1000)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    with pytest.raises(ValueError, match="n=0"):
        share_interval(0, 0)


def test_training_cost_sums_the_runs_the_metadata_records():
    from train.evaluate import training_cost
    from train.world_model import init_summary

    base = dict(steps=7000, wall_hours=0.6, total_wall_hours=1.25, peak_rss_gb=9.2)
    summary = dict(steps=1500, wall_hours=0.05, total_wall_hours=1.3, peak_rss_gb=9.0,
                   init=init_summary("base.pt", base), paddle_table=dict(minutes=12.0),
                   ball_head=dict(train_hours=0.4, reading_minutes=6.0, peak_rss_gb=2.3),
                   brick_head=dict(train_hours=0.2, reading_minutes=3.0, peak_rss_gb=1.1))
    cost = training_cost(summary)
    assert cost["parts_hours"] == dict(world_model_runs=1.3, paddle_table=0.2, brick_head=0.25, ball_head=0.5)
    assert abs(cost["wall_hours"] - 2.25) < 1e-9
    assert cost["peak_rss_gb"] == 9.2  # the base run's, carried in the init's record
    del summary["ball_head"]["train_hours"]
    with pytest.raises(ValueError, match="ball_head"):
        training_cost(summary)
    assert training_cost(dict(wall_hours=0.5))["wall_hours"] == 0.5  # a base run alone
    with pytest.raises(ValueError, match="world_model_runs"):
        training_cost(dict(steps=10))


def test_keep_gaps_clears_a_brick_that_comes_back_and_keeps_the_rest():
    """A brick cell the last context frame shows empty is cleared where the decoder draws a brick
    there again; the bricks the last frame has, and the one the step breaks, stay as decided."""
    model = tiny_model().eval()
    hit = np.ones((6, 18), dtype=bool)
    hit[4, 7] = False  # a gap in the last frame
    context = torch.stack([_frame_ids(0, hit), _frame_ids(0, hit)])[None]
    broken = hit.copy()
    broken[0, 2] = False  # the step breaks a brick: kept as decided
    decided = _frame_ids(0, broken | ~hit)  # the decoder draws the gap's brick back
    kept = model.keep_gaps(decided[None], context)[0]
    assert np.array_equal(parse_frame(model.table.to_rgb(kept.numpy())).bricks, broken)
    assert torch.equal(kept, _frame_ids(0, broken))
    assert torch.equal(model.keep_gaps(context[:, -1], context)[0], context[0, -1])  # nothing comes back


def test_one_brick_keeps_the_surest_of_two_removed_bricks_and_restores_the_other():
    """Where the decoder takes two bricks in a step, only the cell whose pixels it gives the most
    probability of black goes; the other gets the last frame's pixels back. One brick taken, or none,
    is left as decided."""
    from worldmodel.breakout import BRICK_H, BRICK_W, PLAYFIELD_LEFT

    model = tiny_model().eval()
    wall = np.ones((6, 18), dtype=bool)
    context = torch.stack([_frame_ids(0, wall), _frame_ids(0, wall)])[None]
    both = wall.copy()
    both[0, 2] = both[5, 9] = False
    decided = _frame_ids(0, both)[None]
    kept = torch.zeros(1, len(COLORS), 210, 160)
    for (row, col), odds in (((0, 2), 1.0), ((5, 9), 3.0)):  # the decoder is surer of (5, 9)
        y, x = BRICK_TOP + row * BRICK_H, PLAYFIELD_LEFT + col * BRICK_W
        kept[0, 0, y:y + BRICK_H, x:x + BRICK_W] = odds
    one = wall.copy()
    one[5, 9] = False
    out = model.one_brick(decided, kept, context)[0]
    assert torch.equal(out, _frame_ids(0, one))
    assert np.array_equal(parse_frame(model.table.to_rgb(out.numpy())).bricks, one)
    single = _frame_ids(0, one)[None]
    assert torch.equal(model.one_brick(single, kept, context), single)
    assert torch.equal(model.one_brick(context[:, -1], kept, context), context[:, -1])


def test_whole_bricks_fills_the_holes_of_kept_bricks_in_their_rows_colours():
    """A brick cell the decided frame keeps (more than half of it lit) is drawn whole in its row's
    colour, as every recorded frame shows a brick; a cell it lacks, and the rest of the frame, stay as
    decided; a table without the brick colours leaves the frame alone."""
    from worldmodel.breakout import BRICK_COLORS, BRICK_H, BRICK_W, PLAYFIELD_LEFT

    colors = ((0, 0, 0), (142, 142, 142)) + BRICK_COLORS
    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(colors=colors, context=2, codes=4, widths=(8, 16, 32),
                                        encoder_width=8)).eval()
    classes = [model.table.class_of(c) for c in BRICK_COLORS]
    wall = np.ones((6, 18), dtype=bool)
    wall[2, 5] = False
    rows = torch.tensor(classes, dtype=torch.uint8).repeat_interleave(BRICK_H)[:, None]  # (36, 1)
    cells = torch.from_numpy(np.kron(wall, np.ones((BRICK_H, BRICK_W), dtype=bool)))
    whole = torch.zeros(210, 160, dtype=torch.uint8)
    black = torch.tensor(0, dtype=torch.uint8)
    whole[BRICK_TOP:BRICK_BOTTOM, PLAYFIELD_LEFT:PLAYFIELD_LEFT + 144] = torch.where(cells, rows, black)
    whole[100:104, 60:62] = classes[0]  # a ball below the bricks
    decided = whole.clone()
    y, x = BRICK_TOP + 4 * BRICK_H, PLAYFIELD_LEFT + 7 * BRICK_W
    decided[y:y + 4, x:x + 2] = 0  # a hole where the last ball was
    decided[y + 5, x + 3] = classes[0]  # a pixel of another colour
    gap_y, gap_x = BRICK_TOP + 2 * BRICK_H, PLAYFIELD_LEFT + 5 * BRICK_W
    decided[gap_y:gap_y + 2, gap_x:gap_x + 2] = classes[2]  # a ball in the gap: the cell stays empty
    out = model.whole_bricks(decided[None].clone())[0]
    expected = whole.clone()
    expected[gap_y:gap_y + 2, gap_x:gap_x + 2] = classes[2]
    assert torch.equal(out, expected)
    assert np.array_equal(parse_frame(model.table.to_rgb(out.numpy())).bricks, wall)
    assert torch.equal(model.whole_bricks(whole[None])[0], whole)  # whole bricks stay as they are
    plain = tiny_model().eval()  # its table has only two of the row colours
    assert torch.equal(plain.whole_bricks(decided[None].clone())[0], decided)
