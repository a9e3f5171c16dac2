"""Compare `train agent` runs (e.g. temperature vs RND exploration) at the same budget.

Reads each RUN/log.jsonl (written every 10k environment steps) and RUN/checkpoint.pt's evaluation
curve, and writes a markdown report: the mean score of the last 100 training games against
environment steps and against CPU hours, up to the budget every run reached.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from worldmodel.checkpoint import load_checkpoint, write_text_atomic
from worldmodel.errors import NeuralBreakoutError

SCORE, CPU_H, WALL_H = "train/mean_score_100", "time/cpu_h", "time/wall_h"


def read_run(run: str | Path) -> dict:
    """A run's config and its log rows sorted by step (a resumed run may log a step twice: the last wins)."""
    run = Path(run)
    log = run / "log.jsonl"
    if not log.is_file():
        raise NeuralBreakoutError(f"{run}: no log.jsonl here; pass the folder of a `train agent` run")
    rows = {}
    for number, line in enumerate(log.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise NeuralBreakoutError(f"{log}:{number}: not JSON ({exc.msg})") from None
        if SCORE in row:
            rows[row["step"]] = row
    if not rows:
        raise NeuralBreakoutError(f"{log}: no training rows (with {SCORE}) yet")
    config, curve = {}, []
    if (run / "checkpoint.pt").is_file():
        from train.agent import TRAIN_STATE_KIND

        payload = load_checkpoint(run / "checkpoint.pt", TRAIN_STATE_KIND)
        config, curve = payload["config"], payload["state"]["curve"]
    steps = sorted(rows)
    return dict(name=run.name, path=str(run), config=config, curve=curve, steps=np.array(steps),
                score=np.array([rows[s][SCORE] for s in steps]), cpu_h=np.array([rows[s][CPU_H] for s in steps]),
                wall_h=np.array([rows[s][WALL_H] for s in steps]),
                intrinsic=np.array([rows[s].get("rnd/intrinsic_reward", np.nan) for s in steps]))


def at(run: dict, key: str, value: float) -> str:
    """The training score logged last with `key` (steps or cpu_h) at most `value`; "-" before the first row."""
    index = int(np.searchsorted(run[key], value * (1 + 1e-9), side="right")) - 1
    return "-" if index < 0 else f"{run['score'][index]:.1f}"


def compare_runs(runs: list[str | Path], out: str | Path, points: int = 8) -> str:
    """Write the comparison to `out` (markdown) and return it."""
    if len(runs) < 2:
        raise NeuralBreakoutError(f"give at least two runs to compare, got {len(runs)}")
    data = [read_run(run) for run in runs]
    max_steps = min(int(d["steps"][-1]) for d in data)
    max_cpu = min(float(d["cpu_h"][-1]) for d in data)
    names = [d["name"] + (f" ({d['config'].get('exploration')})" if d["config"] else "") for d in data]
    header = "| " + " | ".join(names) + " |"
    rule = "|---" * (len(data) + 1) + "|"
    lines = ["# Exploration comparison", "",
             f"Runs: {', '.join(d['path'] for d in data)}. Score = mean of the last 100 training games (full games "
             "of 5 lives, played by the exploring policy). Compared up to the budget every run reached: "
             f"{max_steps:,} environment steps, {max_cpu:.2f} CPU hours.", "",
             "## Score against environment steps", "", "| steps " + header, rule]
    for step in np.linspace(max_steps / points, max_steps, points):
        step = int(round(step, -4)) or int(step)
        lines.append(f"| {step:,} | " + " | ".join(at(d, "steps", step) for d in data) + " |")
    lines += ["", "## Score against CPU hours", "", "| CPU h " + header, rule]
    for cpu in np.linspace(max_cpu / points, max_cpu, points):
        lines.append(f"| {cpu:.2f} | " + " | ".join(at(d, "cpu_h", cpu) for d in data) + " |")
    lines += ["", "## Cost", "", "| | " + " | ".join(names) + " |", rule,
              f"| CPU h for {max_steps:,} steps | "
              + " | ".join(f"{d['cpu_h'][np.searchsorted(d['steps'], max_steps)]:.2f}" for d in data) + " |",
              f"| wall h for {max_steps:,} steps | "
              + " | ".join(f"{d['wall_h'][np.searchsorted(d['steps'], max_steps)]:.2f}" for d in data) + " |",
              "| mean intrinsic reward per step | "
              + " | ".join("-" if np.all(np.isnan(d["intrinsic"])) else f"{np.nanmean(d['intrinsic']):.2g}"
                           for d in data) + " |"]
    evals = [(d["name"], p) for d in data for p in d["curve"] if p["step"] <= max_steps]
    if evals:
        lines += ["", "## Evaluations logged during training (3 games each, epsilon 0.01)", "",
                  "| run | step | CPU h | eval mean |", "|---|---|---|---|"]
        lines += [f"| {name} | {p['step']:,} | {p['cpu_h']:.2f} | {p['eval_mean']:.1f} |" for name, p in evals]
    text = "\n".join(lines) + "\n"
    write_text_atomic(out, text)
    return text
