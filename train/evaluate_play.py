"""Evaluate the playable game, `NeuralBreakout-v0`, against the real game.

    neural-breakout evaluate play --data data/breakout

All of it goes through the env and its action map, as a player would:
- controlled rollouts: the env starts from real frames of a held-out episode and gets that episode's
  recorded actions; the recorded frames are what the emulator showed for the same actions (episodes
  replay exactly, sticky actions off). Ball-tracking horizon (4 px, DESIGN's protocol; its median with
  a bootstrap 95% interval) and the paddle within 1 px, per step. Beside them, the horizon of the
  world model alone on the same segments, with latents inferred from the real video (the one place
  a latent is inferred here): what playing through the controls costs the ball;
- paddle direction: from held-out contexts with the paddle away from the walls, LEFT and RIGHT are
  each pressed once; the generated paddle must move that way. The same measure on the recorded
  presses of the real game is reported next to it;
- FIRE: from held-out contexts with no ball in play and a life left (read from the emulator's RAM:
  a ball that is only hidden is in play, and shows again without FIRE), FIRE then NOOPs; a whole
  ball (at least half of its pixels: a 1-pixel dot does not count) must appear within `fire_window`
  steps. The real game's rate over the same window is reported next to it,
  and so is the env's rate with NOOP in place of FIRE from the same contexts: a FIRE that launches
  no more often than NOOP does is not a control;
- game logic over `tracker_minutes` of play at 15 steps/s by the scripted tracker: bricks only
  disappear, the score only rises, lives only fall, the ball never vanishes mid-field for more than 2
  steps. Each violation is counted. Beside them: the points the score rose by, next to what the
  bricks broken are worth (`breakout.BRICK_POINTS`): a score that stops counting breaks no rule above.
Writes OUT/report.json and a GIF of the tracker's game.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from train.evaluate import (EvaluateConfig, ball_head_summary, ball_tracked, compare, held_out_store, median_interval,
                            paddle_table_summary, rollouts, segment_starts)
from train.world_model import ram_serves
from worldmodel.breakout import (BALL_H, BALL_W, BRICK_POINTS, FIRE, LEFT, NOOP, PADDLE_TOP, PLAYFIELD_LEFT,
                                PLAYFIELD_RIGHT, RIGHT, parse_frame)
from worldmodel.checkpoint import write_text_atomic
from worldmodel.frames import FrameStore

PADDLE_WIDTH = 16
WALL_MARGIN = 8  # px between the paddle and a wall for a press to count in the direction test


@dataclass(frozen=True)
class EvaluatePlayConfig:
    data: str = field(metadata={"help": "the world model's training data folder (its held-out episodes are used)"})
    checkpoint: str | None = field(default=None, metadata={"help": "world model (default: the shipped one)"})
    action_map: str | None = field(default=None, metadata={"help": "action map (default: the shipped one)"})
    start_states: str | None = field(default=None, metadata={"help": "start-state bank (default: the shipped one)"})
    out: str = field(default="runs/eval-play", metadata={"help": "folder for report.json and the GIF"})
    segments: int = field(default=200, metadata={"help": "controlled rollout segments"})
    horizon: int = field(default=32, metadata={"help": "steps per controlled rollout"})
    presses: int = field(default=200, metadata={"help": "contexts for the paddle-direction test (x2 presses)"})
    fires: int = field(default=100, metadata={"help": "contexts for the FIRE test"})
    fire_window: int = field(default=4, metadata={"help": "steps after FIRE within which a ball must appear"})
    tracker_minutes: float = field(default=10.0, metadata={"help": "minutes of tracker play at 15 steps/s"})
    seed: int = field(default=0, metadata={"help": "seed of the sampled contexts and of the tracker's games"})
    threads: int = field(default=2, metadata={"help": "torch threads"})


def _rgb_context(store: FrameStore, frame: int, k: int) -> np.ndarray:
    return store.table.to_rgb(store.context(np.array([frame]), k)[0])


def controlled_rollouts(env, store: FrameStore, config: EvaluatePlayConfig, rng: np.random.Generator) -> dict:
    k = env.context_length
    starts = segment_starts(store, config.segments, config.horizon, rng)
    horizons, paddle_ok, lengths = [], [], []
    for start in starts:
        end = store.offsets[store.episode_of_frame[start] + 1] - 1
        env.reset(options={"frames": _rgb_context(store, start, k)})
        tracked, broken, length = 0, False, 0
        for step in range(1, config.horizon + 1):
            real = start + step
            if real > end or store.lives[real] < store.lives[real - 1]:
                break  # a segment ends at a life loss: the relaunch is not a function of the pixels
            obs, *_ = env.step(int(store.actions[_transition_of(store, real - 1)]))
            c = compare(store.table.to_rgb(store.frames[real]), obs)
            length = step
            if not broken and ball_tracked(c):
                tracked = step
            else:
                broken = True
            if c["real_paddle"]:
                paddle_ok.append(c["paddle_error"] is not None and c["paddle_error"] <= 1)
        horizons.append(tracked)
        lengths.append(length)
    # the same segments rolled out by the world model alone, with latents inferred from the video: what
    # the controls cost the ball (a median over a few hundred segments moves by several steps between
    # samples of segments, so only the same segments compare)
    reference, _ = rollouts(env.world_model, store, EvaluateConfig(data=config.data, horizon=config.horizon, gifs=0),
                            np.random.default_rng(config.seed), starts=starts)
    return dict(segments=len(starts), median_ball_tracking_horizon=float(np.median(horizons)),
                median_ball_tracking_horizon_95ci=median_interval(horizons),
                mean_ball_tracking_horizon=float(np.mean(horizons)), mean_segment_length=float(np.mean(lengths)),
                paddle_within_1px=float(np.mean(paddle_ok)), paddle_steps=len(paddle_ok),
                inferred_latents={key: reference[key] for key in ("median_ball_tracking_horizon",
                                                                  "median_ball_tracking_horizon_95ci",
                                                                  "mean_ball_tracking_horizon")})


def paddle_direction(env, store: FrameStore, config: EvaluatePlayConfig, rng: np.random.Generator) -> dict:
    """Generated: LEFT and RIGHT pressed from the same real contexts. Real: recorded presses."""
    k = env.context_length
    low, high = PLAYFIELD_LEFT + WALL_MARGIN, PLAYFIELD_RIGHT - PADDLE_WIDTH - WALL_MARGIN
    results, real_results, tried = {RIGHT: [], LEFT: []}, [], 0
    for start in store.starts[rng.permutation(len(store))]:
        if tried >= config.presses and len(real_results) >= 2 * config.presses:
            break
        paddle = parse_frame(store.table.to_rgb(store.frames[start])).paddle_x
        if paddle is None or not low <= paddle <= high:
            continue
        action = int(store.actions[_transition_of(store, start)])
        if action in (LEFT, RIGHT) and len(real_results) < 2 * config.presses:
            after = parse_frame(store.table.to_rgb(store.frames[start + 1])).paddle_x
            real_results.append(after is not None and np.sign(after - paddle) == (1 if action == RIGHT else -1))
        if tried >= config.presses:
            continue
        tried += 1
        context = _rgb_context(store, start, k)
        for action, sign in ((RIGHT, 1), (LEFT, -1)):
            env.reset(options={"frames": context})
            obs, *_ = env.step(action)
            after = parse_frame(obs).paddle_x
            results[action].append(after is not None and np.sign(after - paddle) == sign)
    presses = results[RIGHT] + results[LEFT]
    return dict(accuracy=float(np.mean(presses)), presses=len(presses), right=float(np.mean(results[RIGHT])),
                left=float(np.mean(results[LEFT])), real_game_accuracy=float(np.mean(real_results)),
                real_game_presses=len(real_results))


def _transition_of(store: FrameStore, frame: int) -> int:
    """Index into `store.actions` of the transition that leaves `frame`."""
    episode = store.episode_of_frame[frame]
    return int(frame - episode)  # each episode before this one has one frame more than transitions


def whole_ball(frame: np.ndarray) -> bool:
    """Does the frame show a ball, at least half of its 2x4 pixels lit where the parser places it?
    A generated 1-pixel dot is read as a ball by the parser but is not one (it never moves)."""
    ball = parse_frame(frame).ball
    if ball is None:
        return False
    x, y = ball
    lit = frame[y:y + BALL_H, x:x + BALL_W].sum(axis=-1) > 0
    return int(lit.sum()) >= BALL_W * BALL_H // 2


def ball_appears(env, context: np.ndarray, first: int, window: int) -> bool:
    """From `context` (RGB frames), does a whole ball show within `window` steps of `first` then NOOPs?"""
    env.reset(options={"frames": context})
    for i in range(window):
        obs, *_ = env.step(first if i == 0 else NOOP)
        if whole_ball(obs):
            return True
    return False


def fire_launches(env, store: FrameStore, config: EvaluatePlayConfig, rng: np.random.Generator) -> dict:
    k = env.context_length
    launched, noop_launched, real_launched, tried = [], [], [], 0
    waiting = ram_serves(store, config.data)[0]  # no ball in play (RAM: a hidden ball is in play) and a life left
    for transition in rng.permutation(len(store)):
        if tried >= config.fires:
            break
        start = store.starts[transition]
        episode_end = store.offsets[store.episode_of_frame[start] + 1] - 1
        if not waiting[transition] or start + config.fire_window > episode_end:
            continue
        tried += 1
        context = _rgb_context(store, start, k)
        launched.append(ball_appears(env, context, FIRE, config.fire_window))
        noop_launched.append(ball_appears(env, context, NOOP, config.fire_window))
        if int(store.actions[_transition_of(store, start)]) == FIRE:
            real_launched.append(any(whole_ball(store.table.to_rgb(store.frames[start + 1 + i]))
                                     for i in range(config.fire_window)))
    return dict(launch_rate=float(np.mean(launched)) if launched else None, presses=len(launched),
                noop_launch_rate=float(np.mean(noop_launched)) if noop_launched else None,
                real_game_launch_rate=float(np.mean(real_launched)) if real_launched else None,
                real_game_presses=len(real_launched), window_steps=config.fire_window)


def game_logic(env, config: EvaluatePlayConfig, steps: int) -> tuple[dict, np.ndarray]:
    """Tracker play on the neural env from the start bank; counts the violations of the game's rules."""
    from collect.policies import make_policy

    policy = make_policy("tracker")
    rng = np.random.default_rng(config.seed)
    counts = dict(brick_reappeared=0, score_decreased=0, lives_increased=0, ball_vanished_mid_field=0)
    games, points, lives_lost, bricks_broken, brick_points = 0, 0, 0, 0, 0
    frozen = whole = 0  # is it still a game: frames unchanged from the last, frames with a whole ball
    gif = []
    obs, info = env.reset(seed=config.seed)
    last_obs = obs
    previous = parse_frame(obs)
    missing, last_ball = 0, previous.ball
    policy.reset()
    start = time.time()
    for step in range(steps):
        action = policy.act(obs, rng, info)
        obs, reward, terminated, truncated, info = env.step(action)
        if len(gif) < 450:
            gif.append(obs)
        now = parse_frame(obs)
        frozen += int(np.array_equal(obs, last_obs))
        whole += int(whole_ball(obs))
        last_obs = obs
        counts["brick_reappeared"] += int((now.bricks & ~previous.bricks).any())
        counts["score_decreased"] += int(now.score < previous.score)
        counts["lives_increased"] += int(now.lives > previous.lives)
        points += max(0, now.score - previous.score)
        lives_lost += max(0, previous.lives - now.lives)
        bricks_broken += int((previous.bricks & ~now.bricks).sum())
        brick_points += int(((previous.bricks & ~now.bricks).sum(axis=1) * BRICK_POINTS).sum())
        if now.ball is None:
            missing += 1
            if missing == 3 and last_ball is not None and last_ball[1] < PADDLE_TOP - 8 and now.lives == previous.lives:
                counts["ball_vanished_mid_field"] += 1
        else:
            missing, last_ball = 0, now.ball
        previous = now
        if terminated or truncated:
            games += 1
            obs, info = env.reset()
            last_obs = obs
            policy.reset()
            previous, missing, last_ball = parse_frame(obs), 0, None
    seconds = time.time() - start
    return dict(steps=steps, minutes_at_15fps=steps / 15 / 60, violations=counts, games_finished=games,
                points=points, brick_points=brick_points, lives_lost=lives_lost, bricks_broken=bricks_broken,
                frozen_steps=frozen, whole_ball_steps=whole, env_steps_per_s=steps / seconds), np.stack(gif)


def action_paddle_summary(action_map) -> dict | None:
    """How the action map's paddle table was counted and what it measured (None: no table)."""
    if action_map.paddle_table is None:
        return None
    summary = action_map.summary.get("paddle_table", {})
    return {k: summary.get(k) for k in ("command", "minutes", "table_cases", "covered", "within_1px")}


def evaluate_play(config: EvaluatePlayConfig, progress: bool = True) -> dict:
    from worldmodel.env import NeuralBreakoutEnv
    from worldmodel.video import write_video

    torch.set_num_threads(config.threads)
    env = NeuralBreakoutEnv(config.checkpoint, config.action_map, config.start_states, threads=config.threads)
    store = held_out_store(env.world_model, config.data)
    rng = np.random.default_rng(config.seed)
    env.reset(seed=config.seed)  # the env's own generator (the events it draws) is seeded once, here
    start = time.time()
    report = dict(config=asdict(config), world_model=env.world_model.summary.get("training_command"),
                  ball_head=ball_head_summary(env.world_model), paddle_table=paddle_table_summary(env.world_model),
                  action_map=env.action_map.summary.get("training_command"),
                  action_map_paddle_table=action_paddle_summary(env.action_map),
                  held_out_episodes=len(store.names), held_out_transitions=len(store))
    parts = [("controlled_rollouts", lambda: controlled_rollouts(env, store, config, rng)),
             ("paddle_direction", lambda: paddle_direction(env, store, config, rng)),
             ("fire", lambda: fire_launches(env, store, config, rng))]
    for name, run in parts:
        t = time.time()
        report[name] = run()
        if progress:
            print(f"{name}: {json.dumps(report[name])} ({time.time() - t:.0f} s)")
    steps = max(1, int(round(config.tracker_minutes * 60 * 15)))
    report["game_logic"], gif = game_logic(env, config, steps)
    if progress:
        print(f"game_logic: {json.dumps(report['game_logic'])}")
    report["seconds"] = round(time.time() - start, 1)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    write_video(out / "tracker.gif", gif, fps=15)
    write_text_atomic(out / "report.json", json.dumps(report, indent=2))
    return report
