"""The paddle table: counting and looking up, reading the paddle from class ids, drawing the paddle
where it says, counting cases from episodes, and the CLI."""

import numpy as np
import torch

from test_cli import run
from test_world_model import _paddle_logits
from train.paddle_table import episode_cases
from worldmodel.breakout import parse_frame
from worldmodel.colors import ColorTable
from worldmodel.paddle_table import UNSEEN, PaddleTable, PaddleTableConfig, paddle_left
from worldmodel.world_model import WorldModel, WorldModelConfig, load_world_model

COLORS = ((0, 0, 0), (142, 142, 142), (200, 72, 72), (66, 72, 200))


def test_fit_keeps_the_most_common_step_of_each_case_and_leaves_out_large_steps():
    table = PaddleTable(PaddleTableConfig(codes=4, max_step=8))
    codes = [1, 1, 1, 1, 2, 2, 3, 0]
    last = [4, 4, 4, 4, -3, -3, 9, 0]
    lefts = [70, 70, 70, 70, 30, 30, 50, 60]
    steps = [6, 6, 5, 20, 2, -2, 1, 0]  # (1, 4, 70): 6 twice, 5 once, 20 too large; (2, -3, 30) a tie
    fitted = table.fit(np.array(codes), np.array(last), np.array(lefts), np.array(steps))
    assert fitted == dict(cases=3, transitions=6, left_out=2)  # the step of 20 and the last step of 9
    assert table.lookup(1, 4, 70) == 6
    assert table.lookup(2, -3, 30) == -2  # a tie goes to the lower step
    assert table.lookup(0, 0, 60) == 0
    assert table.lookup(1, 4, 71) is None and table.lookup(3, 9, 50) is None and table.lookup(7, 0, 60) is None
    assert list(table.predict(np.array([1, 1]), np.array([4, 5]), np.array([70, 70]))) == [6, UNSEEN]


def _colours(frames: np.ndarray) -> tuple:
    """The colours of some RGB frames, black first, as a world model's colour table has them."""
    seen = {tuple(int(v) for v in c) for c in np.unique(frames.reshape(-1, 3), axis=0)}
    return ((0, 0, 0), *sorted(seen - {(0, 0, 0)}))


def test_paddle_left_reads_the_parsers_paddle_from_class_ids(recorded_episode):
    frames = recorded_episode[3]
    table = ColorTable(_colours(frames))
    red = table.class_of((200, 72, 72))
    ids = table.to_ids(frames)
    assert all(paddle_left(i, red) == parse_frame(f).paddle_x for i, f in zip(ids, frames))
    assert any(parse_frame(f).paddle_x is not None for f in frames)


def _model_with_table() -> WorldModel:
    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(colors=COLORS, context=2, codes=4, widths=(8, 16, 32), encoder_width=8,
                                        paddle_table=dict(codes=4, max_step=32))).eval()
    model.paddle_table.fit(np.array([2]), np.array([4]), np.array([64]), np.array([6]))  # code 2 after +4 at 64: +6
    return model


def _paddle_frame(x: int, width: int = 16) -> torch.Tensor:
    ids = torch.zeros(210, 160, dtype=torch.uint8)
    ids[189:193, x:x + width] = 2
    return ids


def test_the_table_places_the_paddle_where_it_has_the_case():
    """The decoder's paddle (at 66, 2 px off the table's 70) is cleared and drawn at the table's place
    in the last frame's width; a code the table lacks keeps the decoder's paddle."""
    model = _model_with_table()
    context = torch.stack([_paddle_frame(60), _paddle_frame(64)])[None]  # moved +4
    decided = _paddle_frame(66)[None]
    logits = _paddle_logits(decided[0], {x: 0.99 for x in range(66, 82)})
    placed = model.place_paddle(logits, decided, context, torch.tensor([2]))[0]
    assert torch.equal(placed, _paddle_frame(70))
    assert model.place_paddle(logits, decided, context, torch.tensor([1]))[0].equal(decided[0])
    assert model.place_paddle(logits, decided, context)[0].equal(decided[0])  # no codes: the decoder's search
    far = _paddle_frame(100)[None]  # the decoder's paddle far away: cleared, not left as a second paddle
    placed = model.place_paddle(_paddle_logits(far[0], {x: 0.99 for x in range(100, 116)}), far, context,
                                torch.tensor([2]))[0]
    assert torch.equal(placed, _paddle_frame(70))
    assert parse_frame(model.table.to_rgb(placed.numpy())).paddle_x == 70


def test_episode_cases_follow_the_parsed_paddle(recorded_episode):
    frames = recorded_episode[3]
    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(colors=_colours(frames), context=2, codes=4, widths=(8, 16, 32),
                                        encoder_width=8)).eval()
    cases = episode_cases(model, model.table.to_ids(frames), batch_size=32)
    xs = [parse_frame(f).paddle_x for f in frames]
    expected = [t for t in range(1, len(frames) - 1) if None not in (xs[t - 1], xs[t], xs[t + 1])]
    assert len(cases["codes"]) == len(expected) > 100
    assert list(cases["lefts"]) == [xs[t] for t in expected]
    assert list(cases["last_steps"]) == [xs[t] - xs[t - 1] for t in expected]
    assert list(cases["steps"]) == [xs[t + 1] - xs[t] for t in expected]
    assert cases["codes"].min() >= 0 and cases["codes"].max() < 4


def test_train_paddle_table_cli_resumes_and_writes_a_world_model_with_the_table(episodes_dir, tmp_path):
    world = tmp_path / "wm"
    assert run("train", "world-model", "--data", str(episodes_dir), "--out", str(world), "--tiny",
               "--quiet").returncode == 0
    out = tmp_path / "table"
    args = ("train", "paddle-table", "--data", str(episodes_dir), "--world-model", str(world / "world_model.pt"),
            "--out", str(out), "--tiny", "--quiet", "--threads", "1")
    first = run(*args)
    assert first.returncode == 0, first.stderr
    assert "held out: next paddle within 1 px" in first.stdout
    cached = sorted((out / "cases").glob("*.npz"))
    assert len(cached) == 4
    stamp = [p.stat().st_mtime_ns for p in cached]
    second = run(*args)  # every episode's cases are read back, none made again
    assert second.returncode == 0, second.stderr
    assert [p.stat().st_mtime_ns for p in cached] == stamp
    assert second.stdout.splitlines()[0] == first.stdout.splitlines()[0]
    model = load_world_model(out / "world_model.pt")
    assert model.paddle_table is not None and model.summary["paddle_table"]["train_cases"] > 0
    base = load_world_model(world / "world_model.pt")
    for key, value in base.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), f"{key} changed"
    context = np.stack([np.zeros((210, 160, 3), np.uint8)] * 2)
    assert model.predict(context, 0).shape == (210, 160, 3)
    other = run("train", "paddle-table", "--data", str(episodes_dir), "--world-model", str(out / "world_model.pt"),
                "--out", str(out), "--tiny", "--quiet", "--threads", "1")
    assert other.returncode != 0 and "another world model" in other.stderr


def test_train_paddle_table_bad_data_folder(tmp_path):
    result = run("train", "paddle-table", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--tiny")
    assert result.returncode != 0 and "nowhere" in result.stderr
