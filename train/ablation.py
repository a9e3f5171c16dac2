"""The world model's ablation: latent size, context length and the decoder's finest level (plain or
with dilated blocks) at an equal training budget.

    neural-breakout evaluate ablation --data data/breakout --out runs/ablation --steps 800

Trains every variant from scratch with the same data, seed, batch and number of updates (so the
same samples), one after another on this machine, then evaluates each on the same held-out
transitions and rollout segments (a shorter version of `evaluate world-model`). Writes
OUT/ablation.json and OUT/ablation.md (the table for the README). Each variant's run lives in
OUT/<name>/ and resumes like any `train world-model` run, so an interrupted ablation continues.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from train.evaluate import PREDICTION_VERSION, EvaluateConfig, evaluate_world_model
from train.world_model import WorldModelTrainConfig, train_world_model
from worldmodel.checkpoint import write_text_atomic

# name -> (context frames, codes, dilations of extra finest-level decoder blocks); the first is the
# design the first shipped model used
VARIANTS = {
    "context2-codes8": (2, 8, ""),
    "context1-codes8": (1, 8, ""),
    "context4-codes8": (4, 8, ""),
    "context2-codes64": (2, 64, ""),
    "context2-codes8-dilated": (2, 8, "2,4"),
}


@dataclass(frozen=True)
class AblationConfig:
    data: str = field(metadata={"help": "folder of recorded episodes"})
    out: str = field(default="runs/ablation", metadata={"help": "folder for the runs, ablation.json and ablation.md"})
    variants: str = field(default=",".join(VARIANTS), metadata={"help": "comma-separated variants to run, of: "
                                                                         + ", ".join(VARIANTS)})
    steps: int = field(default=800, metadata={"help": "updates per variant (the equal budget)"})
    batch_size: int = field(default=24, metadata={"help": "transitions per update"})
    width: int = field(default=32, metadata={"help": "decoder width"})
    transitions: int = field(default=500, metadata={"help": "held-out transitions for 1-step metrics"})
    segments: int = field(default=50, metadata={"help": "held-out rollout segments"})
    horizon: int = field(default=16, metadata={"help": "longest rollout"})
    max_episodes: int | None = field(default=None, metadata={"help": "use only the first N episodes"})
    holdout_every: int = field(default=10, metadata={"help": "every n-th episode is held out"})
    seed: int = field(default=0, metadata={"help": "seed of training and evaluation"})
    threads: int = field(default=2, metadata={"help": "torch threads"})

    def names(self) -> list[str]:
        names = [v.strip() for v in self.variants.split(",") if v.strip()]
        unknown = [v for v in names if v not in VARIANTS]
        if unknown or not names:
            raise ValueError(f"--variants: unknown {', '.join(unknown) or '(none given)'}; "
                             f"choose from {', '.join(VARIANTS)}")
        return names


def row(name: str, train: dict, report: dict) -> dict:
    one, roll = report["one_step"], report["rollouts"]
    return dict(variant=name, context=report["model"]["context"], codes=report["model"]["codes"],
                fine_dilations=VARIANTS[name][2] or "none",
                updates=train["steps"], train_minutes=60 * train["wall_hours"],
                psnr_gain=one["psnr"] - one["psnr_copy_last"], ball_within_1px=one["ball_within_1px"],
                paddle_within_1px=one["paddle_within_1px"], bricks_exact=one["bricks_exact"],
                median_ball_tracking_horizon=roll["median_ball_tracking_horizon"],
                bricks_exact_16_steps=roll.get("bricks_exact_16_steps"), delta_psnr_t4=roll["delta_psnr_t4"])


def table(rows: list[dict], config: AblationConfig) -> str:
    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f}%"

    def num(v):
        return "n/a" if v is None else f"{v:.2f}"

    lines = [f"Equal budget: {config.steps} updates of {config.batch_size} transitions each, seed {config.seed}; "
             f"{config.transitions} held-out transitions, {config.segments} segments of up to {config.horizon} steps.",
             "",
             "| context | codes | fine dilations | train min | PSNR gain dB | ball <=1px | paddle <=1px | bricks exact | "
             "ball horizon | bricks exact 16 steps | delta-PSNR t=4 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['context']} | {r['codes']} | {r.get('fine_dilations', 'none')} | {r['train_minutes']:.1f} | "
                     f"{num(r['psnr_gain'])} | "
                     f"{pct(r['ball_within_1px'])} | {pct(r['paddle_within_1px'])} | {pct(r['bricks_exact'])} | "
                     f"{r['median_ball_tracking_horizon']:g} | {pct(r['bricks_exact_16_steps'])} | "
                     f"{num(r['delta_psnr_t4'])} |")
    return "\n".join(lines) + "\n"


def previous_report(config: EvaluateConfig, steps: int) -> dict | None:
    """The variant's earlier evaluation report when it used these settings and today's predictions
    (`PREDICTION_VERSION`) on the model trained `steps` updates."""
    path = Path(config.out) / "report.json"
    try:
        report = json.loads(path.read_text())
        trained = report["model"]["training"]["steps"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return None
    if report.get("prediction_version", 1) != PREDICTION_VERSION:
        return None
    same = {k: v for k, v in dataclasses.asdict(config).items() if k != "threads"}
    return report if trained == steps and {k: report["config"].get(k) for k in same} == same else None


def earlier_rows(config: AblationConfig) -> list[dict]:
    """Rows of OUT/ablation.json made with the same settings (any variants): a run of some variants
    adds to the table instead of replacing it."""
    ignored = ("variants", "threads")
    try:
        earlier = json.loads((Path(config.out) / "ablation.json").read_text())
        same = all(earlier["config"].get(k) == v for k, v in dataclasses.asdict(config).items() if k not in ignored)
        return list(earlier["rows"]) if same else []
    except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return []


def ablate(config: AblationConfig, progress: bool = True) -> list[dict]:
    """Train and evaluate each variant; returns the table's rows (also written to OUT), which keep
    the rows of other variants evaluated earlier with the same settings."""
    names = config.names()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    kept = {r["variant"]: r for r in earlier_rows(config) if r.get("variant") in VARIANTS}
    for name in names:
        context, codes, dilations = VARIANTS[name]
        start = time.time()
        train_config = WorldModelTrainConfig(
            data=config.data, out=str(out / name), steps=config.steps, batch_size=config.batch_size,
            context=context, codes=codes, fine_dilations=dilations, width=config.width, max_episodes=config.max_episodes,
            holdout_every=config.holdout_every, seed=config.seed, threads=config.threads, wandb=False,
            media_every=10 ** 9)
        summary = train_world_model(train_config, progress=progress)
        eval_config = EvaluateConfig(
            data=config.data, checkpoint=str(out / name / "world_model.pt"), out=str(out / name / "eval"),
            transitions=config.transitions, segments=config.segments, horizon=config.horizon, gifs=0,
            seed=config.seed, threads=config.threads)
        report = previous_report(eval_config, summary["steps"])
        if report is None:
            report = evaluate_world_model(eval_config)
        elif progress:
            print(f"{name}: reusing {eval_config.out}/report.json (same settings, same trained updates)")
        kept[name] = row(name, summary, report)
        rows = [kept[v] for v in VARIANTS if v in kept]  # in the table's fixed order
        if progress:
            print(f"{name}: trained and evaluated in {time.time() - start:.0f} s")
        # the table so far, after every variant: an interrupted ablation still leaves its finished rows
        write_text_atomic(out / "ablation.json",
                          json.dumps(dict(config=dataclasses.asdict(config), rows=rows), indent=1))
        write_text_atomic(out / "ablation.md", table(rows, config))
    return rows
