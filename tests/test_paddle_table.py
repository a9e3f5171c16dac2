"""The paddle tables: counting and looking up, reading the paddle from class ids, drawing the paddle
where they say, counting cases from episodes, the action map's table through the env, and the CLIs."""

import numpy as np
import torch

from test_cli import run
from test_world_model import _paddle_logits
from train.paddle_table import action_cases, episode_cases
from worldmodel.action_map import ActionMap, ActionMapConfig, load_action_map, paddle_key
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
    packed = np.unique(ColorTable._pack(frames))  # one int per pixel: far faster than unique RGB rows
    seen = {(int(v) >> 16, int(v) >> 8 & 255, int(v) & 255) for v in packed}
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
    """The table gives code 2 after a +4 step at 64 the left edge 70, and nothing for code 1. The
    decoder's paddle (at 66, 2 px off) is cleared and drawn at the target in the last frame's width;
    without a target the decoder's paddle stays."""
    model = _model_with_table()
    context = torch.stack([_paddle_frame(60), _paddle_frame(64)])[None]  # moved +4
    assert model.paddle_targets(context, torch.tensor([2]), 2) == [70]
    assert model.paddle_targets(context, torch.tensor([1]), 2) == [None]
    decided = _paddle_frame(66)[None]
    logits = _paddle_logits(decided[0], {x: 0.99 for x in range(66, 82)})
    placed = model.place_paddle(logits, decided, context, [70])[0]
    assert torch.equal(placed, _paddle_frame(70))
    assert model.place_paddle(logits, decided, context, [None])[0].equal(decided[0])
    assert model.place_paddle(logits, decided, context)[0].equal(decided[0])  # no targets: the decoder's search
    far = _paddle_frame(100)[None]  # the decoder's paddle far away: cleared, not left as a second paddle
    placed = model.place_paddle(_paddle_logits(far[0], {x: 0.99 for x in range(100, 116)}), far, context, [70])[0]
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
    assert other.returncode != 0 and "another model" in other.stderr


def test_train_paddle_table_bad_data_folder(tmp_path):
    result = run("train", "paddle-table", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--tiny")
    assert result.returncode != 0 and "nowhere" in result.stderr


def test_action_cases_key_each_transition_by_both_actions_and_by_the_action_alone(recorded_episode):
    _, _, actions, frames = recorded_episode[:4]
    table = ColorTable(_colours(frames))
    cases = action_cases(table.to_ids(frames), np.array(actions), table.class_of((200, 72, 72)))
    xs = [parse_frame(f).paddle_x for f in frames]
    expected = [t for t in range(1, len(frames) - 1) if None not in (xs[t - 1], xs[t], xs[t + 1])]
    n = len(expected)
    assert len(cases["codes"]) == 2 * n and n > 100
    assert list(cases["codes"][:n]) == [actions[t] + 4 * actions[t - 1] for t in expected]
    assert list(cases["codes"][n:]) == [actions[t] + 4 * 4 for t in expected]  # the action before not known
    for half in (slice(0, n), slice(n, 2 * n)):
        assert list(cases["lefts"][half]) == [xs[t] for t in expected]
        assert list(cases["last_steps"][half]) == [xs[t] - xs[t - 1] for t in expected]
        assert list(cases["steps"][half]) == [xs[t + 1] - xs[t] for t in expected]


def test_action_map_paddle_step_falls_back_to_the_action_alone():
    assert paddle_key(2, 3) == 14 and paddle_key(2, None) == 18
    action_map = ActionMap(ActionMapConfig(codes=8, width=8, paddle_table=dict(codes=20, max_step=32)))
    action_map.paddle_table.fit(np.array([paddle_key(2, 3), paddle_key(2, None)]), np.array([0, 0]),
                                np.array([60, 60]), np.array([3, 6]))
    assert action_map.paddle_step(2, 3, 0, 60) == 3
    assert action_map.paddle_step(2, 2, 0, 60) == 6  # this action before never seen: the action alone
    assert action_map.paddle_step(2, None, 0, 60) == 6
    assert action_map.paddle_step(3, None, 0, 60) is None and action_map.paddle_step(2, 3, 4, 60) is None
    assert ActionMap(ActionMapConfig(codes=8, width=8)).paddle_step(2, 3, 0, 60) is None


def test_train_action_paddle_cli_and_the_env_places_the_paddle_by_it(episodes_dir, tmp_path):
    """The CLI adds the table to a tiny action map (weights untouched) and resumes from its cases;
    the env then puts the paddle where the table says the press puts it."""
    from worldmodel.env import NeuralBreakoutEnv

    data, wm, am = episodes_dir, tmp_path / "wm", tmp_path / "am"
    for args in (("train", "world-model", "--data", str(data), "--out", str(wm), "--tiny"),
                 ("train", "action-map", "--data", str(data), "--world-model", str(wm / "world_model.pt"),
                  "--out", str(am), "--tiny")):
        result = run(*args, "--quiet")
        assert result.returncode == 0, result.stderr
    out = tmp_path / "ap"
    args = ("train", "action-paddle", "--data", str(data), "--action-map", str(am / "action_map.pt"),
            "--world-model", str(wm / "world_model.pt"), "--out", str(out), "--tiny", "--quiet")
    first = run(*args)
    assert first.returncode == 0, first.stderr
    assert "held out: next paddle within 1 px" in first.stdout
    cached = sorted((out / "action-cases").glob("*.npz"))
    assert len(cached) == 4
    stamp = [p.stat().st_mtime_ns for p in cached]
    second = run(*args)
    assert second.returncode == 0 and [p.stat().st_mtime_ns for p in cached] == stamp
    assert second.stdout.splitlines()[0] == first.stdout.splitlines()[0]
    action_map, base = load_action_map(out / "action_map.pt"), load_action_map(am / "action_map.pt")
    assert action_map.paddle_table is not None and action_map.summary["paddle_table"]["train_cases"] > 0
    for key, value in base.state_dict().items():
        assert torch.equal(value, action_map.state_dict()[key]), f"{key} changed"
    env = NeuralBreakoutEnv(wm / "world_model.pt", out / "action_map.pt", am / "start_states.npz")
    placed = 0
    for seed in range(3):
        env.reset(seed=seed)
        for action in (2, 2, 3, 0, 3, 2):
            target = env.paddle_target(action)
            obs = env.step(action)[0]
            shown = parse_frame(obs).paddle_x
            if target is not None and shown is not None:
                assert shown == target
                placed += 1
    assert placed > 0
