"""The ball head: shapes and gradients, its window and classes, drawing its ball, training and the CLI."""

import json

import numpy as np
import torch

from test_cli import run
from train.ball_head import episode_samples, pack_inputs, to_input
from worldmodel.ball_head import BallHead, BallHeadConfig, drawn_rows, expected_ball, index_to_ball, target_index
from worldmodel.breakout import BALL_H, BALL_W, PLAYFIELD_LEFT, PLAYFIELD_TOP, parse_frame, read_playfield
from worldmodel.world_model import WorldModel, WorldModelConfig, load_world_model

COLORS = ((0, 0, 0), (142, 142, 142), (200, 72, 72), (66, 72, 200))
TINY_HEAD = BallHeadConfig(window=40, width=8, dilations=(1, 2))


def test_shapes_loss_and_gradients_reach_every_parameter():
    torch.manual_seed(0)
    head = BallHead(TINY_HEAD)
    x = torch.rand(3, 8, 40, 40)
    logits = head(x)
    assert logits.shape == (3, 40 * 40 + 1)
    loss, metrics = head.loss(x, torch.tensor([0, 820, 1600]))
    assert torch.isfinite(loss) and set(metrics) == {"loss", "exact", "within_1px"}
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def test_window_classes_round_trip():
    ball = (60, 120)
    assert target_index(None, ball, 40) == 1600
    assert index_to_ball(1600, ball, 40) is None
    for nxt in [(60, 120), (40, 100), (79, 139), (52, 134)]:
        index = target_index(nxt, ball, 40)
        assert 0 <= index < 1600 and index_to_ball(index, ball, 40) == nxt
    assert target_index((80, 120), ball, 40) is None  # one past the window's right edge
    assert target_index((60, 99), ball, 40) is None


def _erase_ball(frame: np.ndarray) -> np.ndarray:
    out = frame.copy()
    field = out[PLAYFIELD_TOP:PLAYFIELD_TOP + 163, PLAYFIELD_LEFT:PLAYFIELD_LEFT + 144]
    field[read_playfield(frame).ball_pixels] = 0
    return out


def test_a_ball_drawn_at_a_parsed_place_is_drawn_as_the_game_draws_it(recorded_episode, tracker_frames):
    """`drawn_rows` knows the game's drawing: every ball of two real episodes, drawn again at its
    parsed place on the pixels its frame has free (not a wall, not a brick: `WorldModel._ball_patch`,
    where `_draw_ball` draws it), lights exactly the ball's pixels. Just below the brick band the game draws a ball on 5
    rows (rows 90 to 93): its row at the band's bottom both one scanline early and on time."""
    frames = np.concatenate([recorded_episode[3], tracker_frames])
    checked, tall = 0, 0
    for frame in frames:
        playfield = read_playfield(frame)
        info = parse_frame(frame, playfield)
        if info.ball is None:
            continue
        drawn = np.zeros_like(playfield.ball_pixels)
        rows, cols, free = WorldModel._ball_patch(read_playfield(_erase_ball(frame)), info.ball)
        drawn[rows.start - PLAYFIELD_TOP:rows.stop - PLAYFIELD_TOP,
              cols.start - PLAYFIELD_LEFT:cols.stop - PLAYFIELD_LEFT] = free
        assert np.array_equal(drawn, playfield.ball_pixels), f"ball at {info.ball} drawn elsewhere"
        checked += 1
        tall += playfield.ball_pixels.sum() > BALL_H * BALL_W
    assert checked > 400 and tall > 0
    assert [drawn_rows(y) for y in (89, 90, 93, 94)] == [slice(88, 92), slice(89, 94), slice(92, 97), slice(94, 98)]


def test_episode_samples_centre_the_ball_and_target_the_next_one(recorded_episode):
    frames = recorded_episode[3]
    stored, origins, targets, outside, blinks = episode_samples(frames, 40)
    infos = [parse_frame(f) for f in frames]
    with_ball = [t for t in range(len(frames) - 1) if infos[t].ball is not None]
    assert len(targets) + outside == len(with_ball) and outside == 0
    assert stored.dtype == np.uint8 and stored.shape == (len(targets), 6, 40, 40)
    for i, t in enumerate(with_ball):
        assert stored[i, 4, 20:24, 20:22].all() and stored[i, 4].sum() == BALL_H * BALL_W  # the last ball
        assert index_to_ball(int(targets[i]), infos[t].ball, 40) == infos[t + 1].ball
        before = infos[max(t - 1, 0)].ball
        expected = expected_ball(before, infos[t].ball)
        if expected is not None:  # constant velocity: as far again as the last step
            ex, ey = expected[0] - origins[i][0], expected[1] - origins[i][1]
            assert (ex, ey) == (2 * 20 - (before[0] - origins[i][0]), 2 * 20 - (before[1] - origins[i][1]))
            if 0 <= ex and ex + BALL_W <= 40 and 0 <= ey and ey + BALL_H <= 40:
                assert stored[i, 5, ey:ey + BALL_H, ex:ex + BALL_W].all() and stored[i, 5].sum() == BALL_H * BALL_W
        nxt = infos[t + 1].ball
        if nxt is not None and read_playfield(frames[t + 1]).ball_pixels.sum() == BALL_H * BALL_W:
            x0, y0 = origins[i]
            rows = drawn_rows(nxt[1])
            assert not stored[i, 2, rows.start - y0:rows.stop - y0, nxt[0] - x0:nxt[0] - x0 + BALL_W].any()
            assert frames[t + 1][rows, nxt[0]:nxt[0] + BALL_W].any()  # erased from the input, not the frame
    x = to_input(pack_inputs(stored[:2]), origins[:2], 40)
    assert x.shape == (2, 8, 40, 40) and x[:, 6:].min() >= -0.2 and x[:, 6:].max() <= 1.2
    assert torch.equal(x[:, :6], torch.from_numpy(stored[:2]).float())  # packing loses nothing


def _model_with_head() -> WorldModel:
    torch.manual_seed(0)
    return WorldModel(WorldModelConfig(colors=COLORS, context=2, codes=4, widths=(8, 16, 32), encoder_width=8,
                                       ball_head=dict(window=40, width=8, dilations=(1, 2)))).eval()


def _fake_head(chosen: dict):
    """A head's forward for a 40-px window that always scores `chosen["index"]` highest, and is sure
    of it (a probability of about 1, above any `gone_above`)."""
    def forward(x):
        out = torch.zeros(len(x), 1601)
        out[:, chosen["index"]] = 20.0
        return out
    return forward


def _frame_with_ball(x: int | None, y: int) -> torch.Tensor:
    ids = torch.zeros(210, 160, dtype=torch.uint8)
    ids[:32] = 1  # the top wall
    ids[:, :8] = ids[:, 152:] = 1
    ids[189:193, 60:76] = 2  # the paddle
    if x is not None:
        ids[y:y + BALL_H, x:x + BALL_W] = 1  # grey, above the bricks
    return ids


def test_the_head_places_the_ball_or_takes_it_away(monkeypatch):
    """The decided frame's ball is cleared and drawn where the head's most likely class says; "no
    ball" leaves none; a context whose last frame shows no ball keeps `place_ball`'s decision."""
    model = _model_with_head()
    context = torch.stack([_frame_with_ball(50, 120), _frame_with_ball(56, 114)])[None]  # moving up and right
    decided = _frame_with_ball(70, 100)[None]  # the decoder's ball, somewhere else
    logits = torch.zeros(1, len(COLORS), 210, 160)
    chosen = {}
    monkeypatch.setattr(model.ball_head, "forward", _fake_head(chosen))
    chosen["index"] = target_index((62, 108), (56, 114), 40)
    placed = model.place_ball_with_head(logits, decided.clone(), context)[0]
    assert torch.equal(placed, _frame_with_ball(62, 108))
    assert parse_frame(model.table.to_rgb(placed.numpy())).ball == (62, 108)
    chosen["index"] = 1600
    assert torch.equal(model.place_ball_with_head(logits, decided.clone(), context)[0], _frame_with_ball(None, 0))
    served = torch.stack([_frame_with_ball(None, 0), _frame_with_ball(None, 0)])[None]
    assert torch.equal(model.place_ball_with_head(logits, decided.clone(), served),
                       model.place_ball(logits, decided.clone()))


def test_train_ball_head_cli_resumes_and_writes_a_world_model_with_the_head(episodes_dir, tmp_path):
    world = tmp_path / "wm"
    assert run("train", "world-model", "--data", str(episodes_dir), "--out", str(world), "--tiny",
               "--quiet").returncode == 0
    out = tmp_path / "head"
    args = ("train", "ball-head", "--data", str(episodes_dir), "--world-model", str(world / "world_model.pt"),
            "--out", str(out), "--tiny", "--quiet", "--threads", "1")
    first = run(*args)
    assert first.returncode == 0, first.stderr
    assert "held out: next ball within 1 px" in first.stdout
    second = run(*args)  # resumes from OUT/checkpoint.pt, already at its last step: no more updates
    assert second.returncode == 0, second.stderr
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps[:4] == [1, 2, 3, 4] and set(steps[4:]) <= {4}
    other = run(*args, "--lr", "0.5")
    assert other.returncode != 0 and "checkpoint.pt" in other.stderr and "other settings" in other.stderr
    model = load_world_model(out / "world_model.pt")
    assert model.ball_head is not None and model.summary["ball_head"]["steps"] == 4
    base = load_world_model(world / "world_model.pt")
    for key, value in base.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), f"{key} changed"
    context = np.stack([np.zeros((210, 160, 3), np.uint8)] * 2)
    assert model.predict(context, 0).shape == (210, 160, 3)


def test_train_ball_head_bad_data_folder(tmp_path):
    result = run("train", "ball-head", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--tiny")
    assert result.returncode != 0 and "nowhere" in result.stderr


def test_extra_data_trains_on_every_episode_but_never_replays_a_held_out_one(episodes_dir, tmp_path):
    import shutil

    import pytest

    from collect.episodes import list_episodes
    from train.ball_head import extra_paths

    paths = list_episodes(episodes_dir)
    with pytest.raises(ValueError, match="same folder"):
        extra_paths(str(episodes_dir), str(episodes_dir), paths[:1])
    copy = tmp_path / "copy"
    shutil.copytree(episodes_dir, copy)  # the same games: each has a held-out episode's seed
    with pytest.raises(ValueError, match=f"{paths[0].name}.*seed"):
        extra_paths(str(copy), str(episodes_dir), paths[:1])
    assert [p.name for p in extra_paths(str(copy), str(episodes_dir), [])] == [p.name for p in paths]
    with pytest.raises(FileNotFoundError, match="empty"):
        (tmp_path / "empty").mkdir()
        extra_paths(str(tmp_path / "empty"), str(episodes_dir), [])


def test_sample_cache_reads_each_episode_once_for_every_head(episodes_dir, tmp_path, monkeypatch):
    """The first head's read writes every kind of `CACHED_KINDS`; the other heads then read the same
    samples as without a cache, without decoding the episode; a damaged cache file is made again."""
    import collect.episodes
    from collect.episodes import list_episodes
    from train.ball_head import CACHED_KINDS, SAMPLE_FIELDS, cache_file, kind_key, path_samples

    path = list_episodes(episodes_dir)[0]
    cache = tmp_path / "cache"
    first = path_samples(path, CACHED_KINDS[1][0], returns=False, bricks=False, first=True, cache=str(cache))
    file = cache_file(cache, path)
    with np.load(file) as data:
        assert {f"{kind_key(*k, 4)}.{f}" for k in CACHED_KINDS for f in SAMPLE_FIELDS} == set(data.files)
    fresh = {k: path_samples(path, k[0], returns=k[1], bricks=k[2], first=k[3]) for k in CACHED_KINDS}

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded an episode the cache holds")

    monkeypatch.setattr(collect.episodes, "load_episode", no_decoding)
    for k, expected in fresh.items():
        cached = path_samples(path, k[0], returns=k[1], bricks=k[2], first=k[3], cache=str(cache))
        assert cached[3] == expected[3]
        for got, want in zip(cached[:3] + cached[4:], expected[:3] + expected[4:]):
            assert got.dtype == want.dtype and np.array_equal(got, want)
    assert all(np.array_equal(a, b) for a, b in zip(first[:3], fresh[CACHED_KINDS[1]][:3]))
    monkeypatch.undo()
    file.write_bytes(b"not a zip")
    again = path_samples(path, 40, bricks=True, cache=str(cache))
    assert np.array_equal(again[2], fresh[CACHED_KINDS[0]][2]) and np.load(file).files
    assert not list(cache.glob(".*.tmp"))


def test_without_blips_the_head_takes_the_ball_away_only_where_the_game_loses_it(monkeypatch):
    """`ball_blips=False`: a "no ball" above `BALL_LOST_TOP` becomes the head's likeliest place; at or
    below it the ball still goes, as with blips."""
    import dataclasses

    from worldmodel.breakout import BALL_LOST_TOP

    model = _model_with_head()
    logits = torch.zeros(1, len(COLORS), 210, 160)

    def fake_head(x):  # "no ball" first, then the place 6 px right of the last ball
        out = torch.zeros(len(x), 1601)
        out[:, 1600], out[:, target_index((62, 20), (56, 20), 40) % 1600] = 2.0, 1.0
        return out

    monkeypatch.setattr(model.ball_head, "forward", fake_head)
    for y, gone_with_blips, gone_without in ((114, True, False), (BALL_LOST_TOP, True, True)):
        context = torch.stack([_frame_with_ball(50, y + 6), _frame_with_ball(56, y)])[None]
        decided = _frame_with_ball(70, 100)[None]
        for blips, gone in ((True, gone_with_blips), (False, gone_without)):
            model.config = dataclasses.replace(model.config, ball_blips=blips, gone_above=None)
            placed = model.place_ball_with_head(logits, decided.clone(), context)[0]
            ball = parse_frame(model.table.to_rgb(placed.numpy())).ball
            assert ball == (None if gone else (62, y)), (y, blips, ball)


def test_gone_above_takes_the_ball_away_mid_field_only_where_no_ball_is_that_likely(monkeypatch):
    """`gone_above`: above `BALL_LOST_TOP` the ball goes only where the head's probability of "no ball"
    is above it, however the places share the rest; at or below it the head's argmax decides, as
    without the setting."""
    import dataclasses

    from worldmodel.breakout import BALL_LOST_TOP

    model = _model_with_head()
    logits = torch.zeros(1, len(COLORS), 210, 160)
    gone_score = {"value": 2.0}

    def fake_head(x):  # "no ball" outscores the place 6 px right of the last ball, the others share the rest
        out = torch.zeros(len(x), 1601)
        out[:, 1600], out[:, target_index((62, 20), (56, 20), 40) % 1600] = gone_score["value"], 1.0
        return out

    monkeypatch.setattr(model.ball_head, "forward", fake_head)
    # p("no ball"): about 0.005 with a score of 2 (argmax all the same), about 0.93 with a score of 10
    cases = ((114, 2.0, None, True), (114, 2.0, 0.5, False), (114, 10.0, 0.5, True), (114, 10.0, 0.95, False),
             (BALL_LOST_TOP, 2.0, 0.5, True), (BALL_LOST_TOP, 10.0, 0.95, True))
    for y, score, above, gone in cases:
        gone_score["value"] = score
        context = torch.stack([_frame_with_ball(50, y + 6), _frame_with_ball(56, y)])[None]
        model.config = dataclasses.replace(model.config, gone_above=above)
        placed = model.place_ball_with_head(logits, _frame_with_ball(70, 100)[None], context)[0]
        ball = parse_frame(model.table.to_rgb(placed.numpy())).ball
        assert ball == (None if gone else (62, y)), (y, score, above, ball)


def test_return_samples_sit_on_the_last_ball_seen_and_target_the_ball_after_the_blink(recorded_episode):
    """`--returns` samples: real blinks (no ball in frame t, a ball in t-2 and t-1) and synthetic ones
    (the ball erased from frame t); the window sits on the ball of t-1 and the target is t+1's ball."""
    from worldmodel.ball_head import RETURN_WINDOW, returning_ball

    frames = recorded_episode[3].copy()
    infos = [parse_frame(f) for f in frames]
    t = next(t for t in range(2, len(frames) - 1) if returning_ball(infos[t - 2].ball, infos[t - 1].ball)
             and infos[t].ball is not None and infos[t + 1].ball is not None and t % 4 == 0)
    frames[t] = _erase_ball(frames[t])  # a blink at t: real, as the sampler sees it
    stored, origins, targets, outside, blinks = episode_samples(frames, RETURN_WINDOW, returns=True, synthetic_every=4)
    assert stored.shape[1:] == (6, RETURN_WINDOW, RETURN_WINDOW) and outside == 0
    assert blinks.sum() >= 1 and (~blinks).sum() >= 1
    i = int(np.flatnonzero(blinks)[0])
    seen = parse_frame(frames[t - 1]).ball
    assert tuple(origins[i]) == (seen[0] - RETURN_WINDOW // 2, seen[1] - RETURN_WINDOW // 2)
    assert index_to_ball(int(targets[i]), seen, RETURN_WINDOW) == infos[t + 1].ball
    assert stored[i, 4].sum() == BALL_H * BALL_W and stored[i, 3].sum() > 0  # the balls of t-1 and t-2
    synthetic = int(np.flatnonzero(~blinks)[0])
    assert not stored[synthetic, 1][stored[synthetic, 4] > 0].all()  # the ball of t-1 is not lit in frame t
    assert not returning_ball(None, (50, 100)) and not returning_ball((50, 100), (50, 185))
    assert not returning_ball((10, 100), (40, 100)) and returning_ball((42, 108), (50, 100))


def test_the_return_head_brings_back_a_ball_that_blinked_out(monkeypatch):
    """With a return head the context holds one frame more; a ball shown two and one frames back and
    not in the last comes back where the return head's likeliest place says, never "gone"; a context
    of the decoder's length only (or a lone ball) keeps `place_ball`'s decision."""
    from worldmodel.ball_head import RETURN_WINDOW

    model = _model_with_head()
    assert model.context_length == 2
    torch.manual_seed(0)
    model = WorldModel(dataclasses_replace(model.config, return_head=dict(window=RETURN_WINDOW, width=8,
                                                                         dilations=(1, 2)))).eval()
    assert model.context_length == 3 and model.returns
    n = RETURN_WINDOW ** 2

    def fake_return(x):  # "gone" first, then a place
        out = torch.zeros(len(x), n + 1)
        out[:, n], out[:, target_index((68, 102), (56, 114), RETURN_WINDOW)] = 2.0, 1.0
        return out

    monkeypatch.setattr(model.return_head, "forward", fake_return)
    logits = torch.zeros(1, len(COLORS), 210, 160)
    decided = _frame_with_ball(None, 0)[None]
    blinked = torch.stack([_frame_with_ball(50, 120), _frame_with_ball(56, 114), _frame_with_ball(None, 0)])[None]
    back = model.place_ball_with_head(logits, decided.clone(), blinked)[0]
    assert torch.equal(back, _frame_with_ball(68, 102))
    assert model.predict_ids(blinked, torch.tensor([0])).shape == (1, 210, 160)
    for context in (blinked[:, 1:], torch.stack([_frame_with_ball(None, 0), _frame_with_ball(56, 114),
                                                 _frame_with_ball(None, 0)])[None]):
        assert torch.equal(model.place_ball_with_head(logits, decided.clone(), context),
                           model.place_ball(logits, decided.clone()))
    off = WorldModel(dataclasses_replace(model.config, use_return_head=False))
    assert off.context_length == 2 and not off.returns


def dataclasses_replace(config, **changes):
    import dataclasses

    return dataclasses.replace(config, **changes)


def _blinked_copy(source, out):
    """The episodes of `source` written to `out` with the ball erased from some frames whose two frames
    before show it: real blinks for the return head to learn from."""
    from collect.episodes import EpisodeBuilder, list_episodes, load_episode
    from worldmodel.ball_head import returning_ball

    blinks = 0
    for path in list_episodes(source):
        episode = load_episode(path)
        frames = episode.frames.copy()
        balls = [parse_frame(f).ball for f in frames]
        for t in range(2, len(frames) - 1, 5):
            if returning_ball(balls[t - 2], balls[t - 1]) and balls[t] is not None:
                frames[t] = _erase_ball(frames[t])
                blinks += 1
        builder = EpisodeBuilder(episode.meta)
        builder.reset(frames[0], lives=int(episode.lives[0]))
        for t, action in enumerate(episode.actions):
            builder.step(int(action), float(episode.rewards[t]), frames[t + 1], lives=int(episode.lives[t + 1]))
        builder.save(out, terminated=episode.terminated, truncated=episode.truncated)
    return blinks


def test_train_ball_head_returns_cli_adds_a_return_head(episodes_dir, tmp_path):
    world = tmp_path / "wm"
    assert run("train", "world-model", "--data", str(episodes_dir), "--out", str(world), "--tiny",
               "--quiet").returncode == 0
    args = ("train", "ball-head", "--world-model", str(world / "world_model.pt"), "--tiny", "--quiet", "--threads",
            "1", "--returns")
    headless = run(*args, "--data", str(episodes_dir), "--out", str(tmp_path / "headless"))
    assert headless.returncode != 0 and "no ball head" in headless.stderr
    assert run("train", "ball-head", "--data", str(episodes_dir), "--world-model", str(world / "world_model.pt"),
               "--out", str(tmp_path / "head"), "--tiny", "--quiet", "--threads", "1").returncode == 0
    args = (*args[:3], str(tmp_path / "head" / "world_model.pt"), *args[4:])
    blinked = tmp_path / "blinked"
    blinked.mkdir()
    assert _blinked_copy(episodes_dir, blinked) >= 4
    out = tmp_path / "returns"
    result = run(*args, "--data", str(blinked), "--out", str(out))
    assert result.returncode == 0, result.stderr
    model = load_world_model(out / "world_model.pt")
    assert model.return_head is not None and model.summary["return_head"]["steps"] == 4
    assert model.summary["return_head"]["train_blinks"] > 0 and model.context_length == 3
    bad = run(*args, "--data", str(blinked), "--out", str(tmp_path / "o"), "--window", "20")
    assert bad.returncode != 0 and "--window 20" in bad.stderr


def test_a_returning_ball_shows_and_a_ball_just_back_does_not_blink_out_again(monkeypatch):
    """The return head's likeliest place inside a wall is passed over for the likeliest place where the
    ball shows; a ball that just came back from a blink is not taken away again by the ball head."""
    from worldmodel.ball_head import RETURN_WINDOW

    torch.manual_seed(0)
    model = WorldModel(dataclasses_replace(_model_with_head().config, return_head=dict(
        window=RETURN_WINDOW, width=8, dilations=(1, 2)))).eval()
    n = RETURN_WINDOW ** 2

    def fake_return(x):  # first inside the right wall, then a free place
        out = torch.zeros(len(x), n + 1)
        out[:, target_index((154, 102), (140, 114), RETURN_WINDOW)] = 2.0
        out[:, target_index((136, 102), (140, 114), RETURN_WINDOW)] = 1.0
        return out

    monkeypatch.setattr(model.return_head, "forward", fake_return)
    logits = torch.zeros(1, len(COLORS), 210, 160)
    decided = _frame_with_ball(None, 0)[None]
    blinked = torch.stack([_frame_with_ball(134, 120), _frame_with_ball(140, 114), _frame_with_ball(None, 0)])[None]
    assert torch.equal(model.place_ball_with_head(logits, decided.clone(), blinked)[0], _frame_with_ball(136, 102))

    def gone_first(x):  # "no ball" first (surely: above any `gone_above`), then a place 6 px up and right
        out = torch.zeros(len(x), 1601)
        out[:, 1600], out[:, target_index((62, 96), (56, 102), 40)] = 20.0, 1.0
        return out

    monkeypatch.setattr(model.ball_head, "forward", gone_first)
    back = torch.stack([_frame_with_ball(50, 120), _frame_with_ball(None, 0), _frame_with_ball(56, 102)])[None]
    assert torch.equal(model.place_ball_with_head(logits, decided.clone(), back)[0], _frame_with_ball(62, 96))
    flying = torch.stack([_frame_with_ball(44, 108), _frame_with_ball(50, 120), _frame_with_ball(56, 102)])[None]
    assert torch.equal(model.place_ball_with_head(logits, decided.clone(), flying)[0], _frame_with_ball(None, 0))


def test_brick_samples_target_the_cell_the_step_breaks(recorded_episode):
    from worldmodel.ball_head import brick_centres, near_bricks

    frames = recorded_episode[3]
    stored, origins, targets, outside, _ = episode_samples(frames, 40, bricks=True)
    infos = [parse_frame(f) for f in frames]
    near = [t for t in range(len(frames) - 1) if infos[t].ball is not None and near_bricks(infos[t].ball, 40)]
    assert len(targets) == len(near) > 0 and outside == 0  # one brick a step at most, near the ball
    hits = 0
    for i, t in enumerate(near):
        removed = infos[t].bricks & ~infos[t + 1].bricks
        assert np.array_equal(stored[i, 2], stored[i, 1])  # the last frame stands in for the next
        if removed.any():
            hits += 1
            assert brick_centres(infos[t].bricks, infos[t].ball, 40)[int(targets[i])] == tuple(np.argwhere(removed)[0])
        else:
            assert targets[i] == 40 * 40
    assert hits == int((targets != 40 * 40).sum()) > 0


def test_return_brick_samples_sit_on_the_last_ball_seen_and_target_the_cell_broken_after_the_blink(recorded_episode):
    """`--returns --bricks` samples: the return head's transitions (a ball in t-2 and t-1) whose ball of
    t-1 is near the bricks; the window sits on that ball, frame t stands in for the next one, and the
    target is the cell the step t -> t+1 breaks."""
    from worldmodel.ball_head import RETURN_WINDOW, brick_centres, near_bricks, returning_ball

    frames = recorded_episode[3].copy()
    infos = [parse_frame(f) for f in frames]
    hit = next(t for t in range(2, len(frames) - 1) if returning_ball(infos[t - 2].ball, infos[t - 1].ball)
               and infos[t].ball is not None and near_bricks(infos[t - 1].ball, RETURN_WINDOW)
               and (infos[t].bricks & ~infos[t + 1].bricks).any())
    frames[hit] = _erase_ball(frames[hit])  # the ball hides as the step breaks a brick: a real blink
    stored, origins, targets, outside, blinks = episode_samples(frames, RETURN_WINDOW, returns=True,
                                                                synthetic_every=4, bricks=True)
    _, _, ball_targets, _, ball_blinks = episode_samples(frames, RETURN_WINDOW, returns=True, synthetic_every=4)
    assert stored.shape[1:] == (6, RETURN_WINDOW, RETURN_WINDOW) and outside == 0
    assert 0 < len(targets) <= len(ball_targets) and blinks.sum() == ball_blinks.sum() >= 1
    seen = infos[hit - 1].ball
    i = next(j for j in np.flatnonzero(blinks)
             if tuple(origins[j]) == (seen[0] - RETURN_WINDOW // 2, seen[1] - RETURN_WINDOW // 2))
    assert np.array_equal(stored[i, 2], stored[i, 1])  # frame t stands in for the next
    removed = infos[hit].bricks & ~infos[hit + 1].bricks
    assert brick_centres(infos[hit].bricks, seen, RETURN_WINDOW)[int(targets[i])] == tuple(np.argwhere(removed)[0])
    assert stored[i, 4].sum() == BALL_H * BALL_W and stored[i, 3].sum() > 0  # the balls of t-1 and t-2
    assert (targets == RETURN_WINDOW ** 2).any()  # steps that break none are samples too


def test_the_return_brick_head_decides_which_brick_goes_after_a_blink(monkeypatch):
    """Where the last frame shows no ball and the two before showed one near the bricks, the return
    brick head's cell goes and no other (a cell the decoder took comes back); "none" keeps them all;
    without a ball in the two frames before (a serve) the decoder's bricks stay; the model reads three
    frames."""
    from worldmodel.ball_head import cell_centre
    from worldmodel.breakout import parse_bricks

    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(colors=COLORS, context=2, codes=4, widths=(8, 16, 32), encoder_width=8,
                                        return_brick_head=dict(window=40, width=8, dilations=(1, 2)))).eval()
    assert model.context_length == 3 and model.with_settings(use_return_brick_head=False).context_length == 2
    chosen = {}
    monkeypatch.setattr(model.return_brick_head, "forward", _fake_head(chosen))
    bricks = lambda ids: parse_bricks(model.table.to_rgb(ids.numpy()))  # noqa: E731
    context = torch.stack([_frame_with_bricks((60, 110)), _frame_with_bricks((62, 100)),
                           _frame_with_bricks(None)])[None]  # going up, then hidden
    decided = _frame_with_bricks((66, 88), gone=((5, 7), (5, 9)))[None]  # the decoder took two cells
    chosen["index"] = target_index(cell_centre(5, 6), (62, 100), 40)  # the window sits on the last ball seen
    want = np.ones((6, 18), bool)
    want[5, 6] = False
    assert np.array_equal(bricks(model.place_bricks(decided.clone(), context)[0]), want)
    frames_read = []
    place = model.place_bricks
    monkeypatch.setattr(model, "place_bricks", lambda ids, ctx: frames_read.append(ctx.shape[1]) or place(ids, ctx))
    model.predict_ids(context, torch.tensor([0]))
    assert frames_read == [3]  # predict hands it the whole context
    chosen["index"] = 1600  # none
    assert np.array_equal(bricks(model.place_bricks(decided.clone(), context)[0]), np.ones((6, 18), bool))
    served = torch.stack([_frame_with_bricks(None)] * 3)[None]
    assert torch.equal(model.place_bricks(decided.clone(), served), decided)
    off = model.with_settings(use_return_brick_head=False)
    assert torch.equal(off.place_bricks(decided.clone(), context), decided)


def _frame_with_bricks(ball: tuple[int, int] | None, gone: tuple = ()) -> torch.Tensor:
    from worldmodel.breakout import BRICK_H, BRICK_TOP, BRICK_W

    ids = _frame_with_ball(None, 0)
    ids[BRICK_TOP:BRICK_TOP + 6 * BRICK_H, 8:152] = 3  # six rows of blue bricks
    for row, col in gone:
        ids[BRICK_TOP + row * BRICK_H:BRICK_TOP + (row + 1) * BRICK_H, 8 + col * BRICK_W:8 + (col + 1) * BRICK_W] = 0
    if ball is not None:
        ids[ball[1]:ball[1] + BALL_H, ball[0]:ball[0] + BALL_W] = 1
    return ids


def test_the_brick_head_decides_which_brick_goes(monkeypatch):
    """Where the last frame shows a ball near the bricks, the next frame has the last frame's bricks
    less the cell the head chooses (a cell the decoder also took comes back); "none" keeps them all;
    a ball far from the bricks breaks none; a frame without a ball keeps the decoder's bricks."""
    from worldmodel.ball_head import cell_centre
    from worldmodel.breakout import parse_bricks

    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(colors=COLORS, context=2, codes=4, widths=(8, 16, 32), encoder_width=8,
                                        brick_head=dict(window=40, width=8, dilations=(1, 2)))).eval()
    chosen = {}
    monkeypatch.setattr(model.brick_head, "forward", _fake_head(chosen))
    bricks = lambda ids: parse_bricks(model.table.to_rgb(ids.numpy()))  # noqa: E731
    context = torch.stack([_frame_with_bricks((60, 110)), _frame_with_bricks((62, 100))])[None]  # going up
    decided = _frame_with_bricks((64, 96), gone=((5, 7), (5, 9)))[None]  # the decoder took two cells
    chosen["index"] = target_index(cell_centre(5, 6), (62, 100), 40)
    out = model.place_bricks(decided.clone(), context)[0]
    want = np.ones((6, 18), bool)
    want[5, 6] = False
    assert np.array_equal(bricks(out), want)
    chosen["index"] = 1600  # none
    assert np.array_equal(bricks(model.place_bricks(decided.clone(), context)[0]), np.ones((6, 18), bool))
    chosen["index"] = target_index(cell_centre(5, 6), (62, 150), 40)
    far = torch.stack([_frame_with_bricks((60, 160)), _frame_with_bricks((62, 150))])[None]
    assert np.array_equal(bricks(model.place_bricks(decided.clone(), far)[0]), np.ones((6, 18), bool))
    served = torch.stack([_frame_with_bricks(None), _frame_with_bricks(None)])[None]
    assert torch.equal(model.place_bricks(decided.clone(), served), decided)


def test_train_ball_head_bricks_cli_adds_a_brick_head(episodes_dir, tmp_path):
    world = tmp_path / "wm"
    assert run("train", "world-model", "--data", str(episodes_dir), "--out", str(world), "--tiny",
               "--quiet").returncode == 0
    args = ("train", "ball-head", "--data", str(episodes_dir), "--world-model", str(world / "world_model.pt"),
            "--tiny", "--quiet", "--threads", "1", "--bricks")
    result = run(*args, "--out", str(tmp_path / "bricks"), "--sample-cache", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    assert "brick head exact" in result.stdout
    assert len(list((tmp_path / "cache").glob("episode-*.npz"))) == 4  # the tiny preset's episodes
    model = load_world_model(tmp_path / "bricks" / "world_model.pt")
    assert model.brick_head is not None and model.ball_head is None
    assert model.summary["brick_head"]["steps"] == 4 and model.summary["brick_head"]["train_samples"] > 0
    context = np.stack([np.zeros((210, 160, 3), np.uint8)] * 2)
    assert model.predict(context, 0).shape == (210, 160, 3)
    blinked = tmp_path / "blinked"  # real blinks for the return brick head
    blinked.mkdir()
    assert _blinked_copy(episodes_dir, blinked) >= 4
    both = run("train", "ball-head", "--data", str(blinked), "--world-model", str(tmp_path / "bricks" / "world_model.pt"),
               "--tiny", "--quiet", "--threads", "1", "--bricks", "--returns", "--out", str(tmp_path / "both"))
    assert both.returncode == 0, both.stderr
    model = load_world_model(tmp_path / "both" / "world_model.pt")
    assert model.return_brick_head is not None and model.brick_head is not None and model.context_length == 3
    assert model.return_brick_head.config.window == 72 and model.summary["return_brick_head"]["steps"] == 4
    assert model.summary["brick_head"] == load_world_model(tmp_path / "bricks" / "world_model.pt").summary["brick_head"]
    assert model.predict(np.stack([np.zeros((210, 160, 3), np.uint8)] * 3), 0).shape == (210, 160, 3)


def test_a_first_ball_head_reads_the_ball_three_frames_back(monkeypatch):
    """With `first_ball` the head's input has a box at the ball of the oldest of three context frames,
    and the world model asks for that frame (context_length 3)."""
    from worldmodel.ball_head import head_input

    config = BallHeadConfig(window=40, width=8, dilations=(1, 2), first_ball=True)
    lit = np.zeros((210, 160), bool)
    x = head_input(lit, lit, lit, (50, 120), (56, 114), 40, True, (44, 126))
    assert x.shape == (9, 40, 40) and BallHead(config)(torch.from_numpy(x)[None]).shape == (1, 1601)
    x0, y0 = 56 - 20, 114 - 20
    assert x[6, 126 - y0:130 - y0, 44 - x0:46 - x0].all() and x[6].sum() == BALL_H * BALL_W
    assert np.array_equal(x[:6], head_input(lit, lit, lit, (50, 120), (56, 114), 40)[:6])
    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(colors=COLORS, context=2, codes=4, widths=(8, 16, 32), encoder_width=8,
                                        ball_head=dict(window=40, width=8, dilations=(1, 2),
                                                       first_ball=True))).eval()
    assert model.context_length == 3
    seen = []

    def fake_head(x):
        seen.append(x)
        return torch.zeros(len(x), 1601)

    monkeypatch.setattr(model.ball_head, "forward", fake_head)
    context = torch.stack([_frame_with_ball(44, 126), _frame_with_ball(50, 120), _frame_with_ball(56, 114)])[None]
    model.predict_ids(context, torch.tensor([0]))
    assert seen and seen[0].shape == (1, 9, 40, 40) and torch.equal(seen[0][0, 6], torch.from_numpy(x[6]))


def test_head_names_and_no_first_ball_for_the_return_heads():
    import pytest

    from train.ball_head import BallHeadTrainConfig

    names = {(r, b): BallHeadTrainConfig(data="d", returns=r, bricks=b).name for r in (False, True) for b in (False, True)}
    assert names == {(False, False): "ball_head", (True, False): "return_head", (False, True): "brick_head",
                     (True, True): "return_brick_head"}
    assert BallHeadTrainConfig(data="d", returns=True, bricks=True).head.window == 72
    with pytest.raises(ValueError, match="--first-ball"):
        BallHeadTrainConfig(data="d", returns=True, first_ball=True)
    assert BallHeadTrainConfig(data="d", bricks=True, first_ball=True).head.channels == 9


def test_hard_samples_are_the_steps_constant_velocity_gets_wrong(recorded_episode):
    """`hard_samples` marks exactly the samples whose next ball is not within 1 px of `expected_ball`
    (or that have no ball the frame before or after), read back from the packed inputs."""
    from train.ball_head import hard_samples

    frames = recorded_episode[3]
    stored, origins, targets, _, _ = episode_samples(frames, 40)
    hard = hard_samples(pack_inputs(stored), targets, 40, chunk=7)  # a chunk that splits the samples
    infos = [parse_frame(f) for f in frames]
    with_ball = [t for t in range(len(frames) - 1) if infos[t].ball is not None]
    for i, t in enumerate(with_ball):
        expected = expected_ball(infos[max(t - 1, 0)].ball, infos[t].ball)
        nxt = infos[t + 1].ball
        ex = None if expected is None else (expected[0] - origins[i][0], expected[1] - origins[i][1])
        inside = ex is not None and 0 <= ex[0] and ex[0] + BALL_W <= 40 and 0 <= ex[1] and ex[1] + BALL_H <= 40
        if not inside:
            continue  # a box cut by the window's edge: its first lit pixel is not its top-left
        straight = nxt is not None and abs(nxt[0] - expected[0]) <= 1 and abs(nxt[1] - expected[1]) <= 1
        assert hard[i] == (not straight), f"step {t}: balls {infos[t - 1].ball} {infos[t].ball} -> {nxt}"
    assert 0 < hard.sum() < len(hard)


def test_init_head_fine_tunes_the_head_the_file_holds(episodes_dir, tmp_path):
    world = tmp_path / "wm"
    assert run("train", "world-model", "--data", str(episodes_dir), "--out", str(world), "--tiny",
               "--quiet").returncode == 0
    args = ("train", "ball-head", "--data", str(episodes_dir), "--tiny", "--quiet", "--threads", "1")
    none = run(*args, "--world-model", str(world / "world_model.pt"), "--out", str(tmp_path / "none"), "--init-head")
    assert none.returncode != 0 and "holds no ball head" in none.stderr
    assert run(*args, "--world-model", str(world / "world_model.pt"), "--out", str(tmp_path / "a")).returncode == 0
    first = tmp_path / "a" / "world_model.pt"
    other = run(*args, "--world-model", str(first), "--out", str(tmp_path / "wide"), "--init-head", "--first-ball")
    assert other.returncode != 0 and "same --window, --width" in other.stderr
    result = run(*args, "--world-model", str(first), "--out", str(tmp_path / "b"), "--init-head",
                 "--hard-share", "0.5", "--lr", "0", "--bf16")
    assert result.returncode == 0, result.stderr
    before, after = load_world_model(first), load_world_model(tmp_path / "b" / "world_model.pt")
    for key, value in before.ball_head.state_dict().items():  # lr 0: the held head, untouched
        assert torch.equal(value, after.ball_head.state_dict()[key]), key
    summary = after.summary["ball_head"]
    assert summary["init"]["steps"] == 4 and summary["train_hard"] > 0 and "--bf16" in summary["command"]
    bad = run(*args, "--world-model", str(first), "--out", str(tmp_path / "c"), "--hard-share", "0.5", "--bricks")
    assert bad.returncode != 0 and "--hard-share" in bad.stderr


def test_copy_heads_moves_every_head_onto_another_world_model_of_the_same_split(episodes_dir, tmp_path):
    def world_model(name, *options):
        result = run("train", "world-model", "--data", str(episodes_dir), "--out", str(tmp_path / name), "--tiny",
                     "--quiet", *options)
        assert result.returncode == 0, result.stderr
        return tmp_path / name / "world_model.pt"

    first, second = world_model("wm-a"), world_model("wm-b", "--seed", "1")
    args = ("train", "ball-head", "--data", str(episodes_dir), "--tiny", "--quiet", "--threads", "1")
    assert run(*args, "--world-model", str(first), "--out", str(tmp_path / "ball")).returncode == 0
    assert run(*args, "--world-model", str(tmp_path / "ball" / "world_model.pt"), "--out", str(tmp_path / "brick"),
               "--bricks").returncode == 0
    source = tmp_path / "brick" / "world_model.pt"
    result = run("train", "copy-heads", "--source", source, "--world-model", second, "--out", tmp_path / "copied")
    assert result.returncode == 0, result.stderr
    assert "copied brick_head, ball_head" in result.stdout
    heads, base = load_world_model(source), load_world_model(second)
    copied = load_world_model(tmp_path / "copied" / "world_model.pt")
    assert copied.ball_head is not None and copied.brick_head is not None
    for key, value in copied.state_dict().items():  # the heads from the source, everything else from the base
        from_source = key.startswith(("ball_head.", "brick_head."))
        assert torch.equal(value, (heads if from_source else base).state_dict()[key]), key
    assert not torch.equal(heads.state_dict()[next(iter(base.state_dict()))], base.state_dict()[next(iter(base.state_dict()))])
    summary = copied.summary
    assert summary["ball_head"]["copied_from"] == str(source) and summary["brick_head"]["steps"] == 4
    assert summary["steps"] == base.summary["steps"] and summary["wall_hours"] == base.summary["wall_hours"]
    context = np.stack([np.zeros((210, 160, 3), np.uint8)] * 2)
    assert copied.predict(context, 0).shape == (210, 160, 3)

    headless = run("train", "copy-heads", "--source", second, "--world-model", first, "--out", tmp_path / "x")
    assert headless.returncode != 0 and "holds no head" in headless.stderr
    payload = torch.load(second, weights_only=False)
    payload["summary"]["held_out_episodes"] = payload["summary"]["held_out_episodes"][:-1] + ["episode-other.npz"]
    torch.save(payload, tmp_path / "other-split.pt")
    split = run("train", "copy-heads", "--source", source, "--world-model", tmp_path / "other-split.pt",
                "--out", tmp_path / "y")
    assert split.returncode != 0 and "other held-out episodes" in split.stderr and "brick head" in split.stderr
    assert not (tmp_path / "y" / "world_model.pt").exists()
