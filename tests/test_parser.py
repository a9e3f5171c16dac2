"""The frame parser against the emulator's RAM over varied play, and on hand-made frames."""

import numpy as np
import pytest

from collect.atari import make_env
from collect.parser_check import check_parser
from worldmodel import parse_frame
from worldmodel.breakout import BRICK_COLS, BRICK_ROWS, ram_bricks, ram_with_bricks


@pytest.fixture(scope="module")
def report():
    # ~4,300 frames: random, FIRE-heavy, a ball tracker, and late game with ~12% of the bricks.
    return check_parser({"random": 800, "fire": 800, "tracker": 1200, "late": 1500}, seed=0)


def test_covers_varied_play(report):
    bricks_left = np.array(report.bricks_left)
    assert report.frames == 4300
    assert (bricks_left < 20).mean() > 0.2, "late-game frames (few bricks) must be covered"
    assert (bricks_left == 108).mean() > 0.2


def test_positions_exact_in_999_per_mille(report):
    accuracy = report.accuracy()
    assert accuracy["paddle_x"] >= 0.999, report.failures[:5]
    assert accuracy["ball"] >= 0.999, report.failures[:5]


def test_lives_score_bricks_always_exact(report):
    accuracy = report.accuracy()
    assert accuracy["lives"] == 1.0
    assert accuracy["score"] == 1.0
    assert accuracy["bricks"] == 1.0


def test_start_frame():
    env = make_env()
    obs, _ = env.reset(seed=0)
    info = parse_frame(obs)
    assert info.ball is None
    assert info.score == 0 and info.lives == 5
    assert info.bricks.shape == (BRICK_ROWS, BRICK_COLS) and info.bricks.all()
    assert info.paddle_x is not None


def test_ram_brick_writer_round_trips():
    rng = np.random.default_rng(0)
    ram = rng.integers(0, 256, 128).astype(np.uint8)
    bricks = rng.random((BRICK_ROWS, BRICK_COLS)) < 0.5
    ram[:36] = ram_with_bricks(ram, bricks)
    np.testing.assert_array_equal(ram_bricks(ram), bricks)


@pytest.mark.parametrize("bad", [np.zeros((210, 160), np.uint8), np.zeros((210, 160, 3), np.float32),
                                 np.zeros((84, 84, 3), np.uint8), [[0]]])
def test_rejects_bad_frames(bad):
    with pytest.raises(ValueError, match="expected a uint8 frame"):
        parse_frame(bad)


def test_blank_frame_has_no_objects():
    info = parse_frame(np.zeros((210, 160, 3), np.uint8))
    assert info.ball is None and info.paddle_x is None and not info.bricks.any()


def test_transition_events_read_serves_and_lost_lives():
    """A serve is a ball on the serve row after frames with none; a ball seen again elsewhere (it was
    hidden) is not one, nor is a ball on the serve row that was already in play. A life is lost when
    the lives digit falls."""
    from worldmodel.breakout import SERVE_Y, FrameInfo, transition_events

    def info(ball, lives=5):
        return FrameInfo(ball=ball, paddle_x=60, bricks=np.ones((BRICK_ROWS, BRICK_COLS), bool), score=0, lives=lives)

    empty = [info(None), info(None)]
    assert transition_events(empty, info((40, SERVE_Y))) == (True, False)
    assert transition_events(empty, info((40, SERVE_Y + 30))) == (False, False)
    assert transition_events([info((40, SERVE_Y - 4)), info(None)], info((40, SERVE_Y))) == (False, False)
    assert transition_events(empty, info(None, lives=4)) == (False, True)
    assert transition_events([info(None), info(None, lives=4)], info((90, SERVE_Y), lives=3)) == (True, True)
    assert transition_events(empty, info(None, lives=5)) == (False, False)


def test_ball_memory_tracks_the_phase_past_any_context():
    """Waiting at a game's start and after the lives digit falls; in play while a ball shows; gone for
    so many steps, low or mid-field by where the ball was last seen, and one overdue state from
    `OVERDUE_STEPS` on, however long the ball stays away."""
    from worldmodel.breakout import LOW_Y, MEMORY_NAMES, OVERDUE_STEPS, STILL_FRAMES, FrameInfo, memory_states

    def info(ball, lives=5):
        return FrameInfo(ball=ball, paddle_x=60, bricks=np.ones((BRICK_ROWS, BRICK_COLS), bool), score=0, lives=lives)

    names = lambda infos: [MEMORY_NAMES[s] for s in memory_states(infos)]  # noqa: E731
    assert names([info(None), info(None), info((40, 125)), info((42, 129))]) == ["waiting", "waiting", "in play",
                                                                                  "in play"]
    lost = [info((40, LOW_Y + 2))] + [info(None)] * (OVERDUE_STEPS + 3) + [info(None, lives=4), info(None, lives=4)]
    assert names(lost) == (["in play"] + [f"gone {s} low" for s in range(1, OVERDUE_STEPS)]
                           + [f"gone {OVERDUE_STEPS}+ steps"] * 4 + ["waiting", "waiting"])
    hidden = [info((40, 80)), info(None), info(None), info((44, 72))]
    assert names(hidden) == ["in play", "gone 1 mid-field", "gone 2 mid-field", "in play"]
    # a digit that falls while a ball shows (a serve on the same step) leaves the ball in play
    assert names([info(None), info((40, 125), lives=4), info(None, lives=4)]) == ["waiting", "in play",
                                                                                 "gone 1 mid-field"]
    # a ball parsed at one place for STILL_FRAMES frames is a stub, no ball: gone, then overdue
    stub = [info((40, 80)), info((44, 84))] + [info((60, 60))] * (STILL_FRAMES + OVERDUE_STEPS)
    assert names(stub) == (["in play"] * (STILL_FRAMES + 1) + [f"gone {s} mid-field" for s in range(1, OVERDUE_STEPS)]
                           + [f"gone {OVERDUE_STEPS}+ steps"] * 2)
    # the real ball's repeats (one frame at the place of the frame before) stay in play
    assert names([info((40, 80)), info((40, 80)), info((42, 78)), info((42, 78))]) == ["in play"] * 4


def test_score_rule_and_score_glyphs_hold_on_recorded_frames(recorded_episode):
    """The score glyphs `score_pixels` draws are the game's own digit pixels, `read_score` reads what
    `parse_frame` reads, and the bricks the episode loses are worth exactly the points it scores
    (`brick_points`, the rule the world model draws the score by)."""
    from worldmodel.breakout import DIGIT_TOP, SCORE_DIGIT_X, brick_points, lit_pixels, read_score, score_pixels

    frames = recorded_episode[3]
    infos = [parse_frame(frame) for frame in frames]
    columns = np.zeros(160, dtype=bool)
    for x0 in SCORE_DIGIT_X:
        columns[x0:x0 + 12] = True
    for frame, info in zip(frames, infos):
        lit = lit_pixels(frame)
        assert read_score(lit) == info.score
        assert np.array_equal(lit[DIGIT_TOP:DIGIT_TOP + 10][:, columns], score_pixels(info.score)[:, columns])
    worth = sum(brick_points(a.bricks, b.bricks) for a, b in zip(infos[:-1], infos[1:]))
    assert worth == infos[-1].score - infos[0].score > 0
    with pytest.raises(ValueError, match="0..999"):
        score_pixels(1000)
