"""`neural-breakout data info DIR`: what a folder of episodes holds and how well it covers the game."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from collect.episodes import list_episodes, load_episode
from worldmodel.breakout import ACTION_MEANINGS, BRICK_COLS, BRICK_ROWS, ram_ball, ram_bricks

RAW_FRAME_BYTES = 210 * 160 * 3


def dataset_info(directory: str | Path) -> dict:
    """Counts and histograms over every episode in `directory` (frames are not decompressed)."""
    paths = list_episodes(directory)
    if not paths:
        raise FileNotFoundError(f"{directory}: no episode files (episode-*.npz) in this folder")
    actions: Counter = Counter()
    policies: Counter = Counter()
    scores, bricks_left, ball_x, ball_y = [], [], [], []
    transitions = frames = total_bytes = 0
    terminated = 0
    for path in paths:
        episode = load_episode(path, decode_frames=False)
        transitions += len(episode)
        frames += len(episode) + 1
        total_bytes += path.stat().st_size
        terminated += episode.terminated
        actions.update(episode.actions.tolist())
        policies[episode.meta.get("policy", "?")] += 1
        scores.append(episode.score)
        for ram in episode.ram[1:]:  # the state after each transition
            bricks_left.append(int(ram_bricks(ram).sum()))
            ball = ram_ball(ram)
            if ball is not None:
                ball_x.append(ball[0])
                ball_y.append(ball[1])
    total_actions = max(1, sum(actions.values()))
    return dict(
        folder=str(directory),
        episodes=len(paths),
        transitions=transitions,
        terminated_episodes=terminated,
        bytes=total_bytes,
        bytes_per_frame=total_bytes / max(1, frames),
        compression_ratio=RAW_FRAME_BYTES * frames / max(1, total_bytes),
        policies=dict(policies),
        action_fraction={ACTION_MEANINGS[a]: actions[a] / total_actions for a in range(len(ACTION_MEANINGS))},
        score=dict(mean=float(np.mean(scores)), min=float(np.min(scores)), max=float(np.max(scores)),
                   histogram=_histogram(scores, bins=[0, 5, 10, 20, 50, 100, 200, 400, 900])),
        bricks_left=dict(histogram=_histogram(bricks_left, bins=[0, 1, 10, 27, 54, 81, 108, 109]),
                         fraction_below_half=float(np.mean(np.array(bricks_left) < BRICK_ROWS * BRICK_COLS / 2))
                         if bricks_left else 0.0),
        ball_in_play_fraction=len(ball_x) / max(1, transitions),
        ball_x=_histogram(ball_x, bins=list(range(0, 161, 20))),
        ball_y=_histogram(ball_y, bins=[0, 57, 93, 140, 189, 256]),
    )


def _histogram(values, bins) -> list[tuple[str, int]]:
    counts, edges = np.histogram(np.asarray(values, dtype=float), bins=bins)
    return [(f"{edges[i]:g}-{edges[i + 1]:g}", int(c)) for i, c in enumerate(counts)]


def _bars(rows: list[tuple[str, float]], fmt) -> str:
    peak = max((v for _, v in rows), default=0) or 1
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:>{width}} {fmt(v):>9} {'#' * int(round(30 * v / peak))}" for k, v in rows)


def format_info(info: dict) -> str:
    lines = [
        f"folder           {info['folder']}",
        f"episodes         {info['episodes']} ({info['terminated_episodes']} ended by game over), "
        f"policies {info['policies']}",
        f"transitions      {info['transitions']}",
        f"size             {info['bytes'] / 1e6:.2f} MB, {info['bytes_per_frame']:.0f} bytes/frame "
        f"(raw RGB 100800: {info['compression_ratio']:.0f}x smaller)",
        f"score per episode  mean {info['score']['mean']:.1f}, min {info['score']['min']:g}, "
        f"max {info['score']['max']:g}",
        "actions",
        _bars(list(info["action_fraction"].items()), lambda v: f"{100 * v:.1f}%"),
        "episode scores",
        _bars(info["score"]["histogram"], str),
        f"bricks remaining per frame (below half: {100 * info['bricks_left']['fraction_below_half']:.1f}%)",
        _bars(info["bricks_left"]["histogram"], str),
        f"ball in play in {100 * info['ball_in_play_fraction']:.1f}% of frames; ball x",
        _bars(info["ball_x"], str),
        "ball y (57-93 = brick band, 189 = paddle)",
        _bars(info["ball_y"], str),
    ]
    return "\n".join(lines)
