"""`neural-breakout evaluate world-model`: DESIGN's evaluation protocol on held-out episodes.

- 1-step: real context frames, the latent inferred from the real next frame; PSNR on native RGB next
  to the copy-last-frame baseline; ball and paddle within 1 px; brick map, score and lives exact.
- Open-loop rollouts: from real context frames, latents inferred from the real video, frames from the
  model's own outputs, up to 64 steps; a segment ends at a life loss (the relaunch position is not a
  function of the pixels). Ball-tracking horizon: steps until the generated ball is more than 4 px
  from the real one, or missing, or extra.
- Controllability: Genie's delta-PSNR at t=4 (inferred latents vs uniformly random latents).
- Speed: `predict` at batch 1 next to the emulator, in the same run.

Writes OUT/report.json, OUT/metrics.png and side-by-side GIFs (real | generated | difference).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from worldmodel.breakout import FIRE, NOOP, parse_frame
from worldmodel.checkpoint import write_text_atomic
from worldmodel.frames import FrameStore
from worldmodel.world_model import HEADS, WorldModel, load_world_model

HORIZONS = (1, 4, 16, 64)


@dataclass(frozen=True)
class EvaluateConfig:
    data: str = field(metadata={"help": "folder of recorded episodes; the checkpoint's held-out ones are used"})
    checkpoint: str | None = field(default=None, metadata={"help": "world model (default: the shipped one)"})
    out: str = field(default="runs/evaluate-world-model", metadata={"help": "folder for report, plot and GIFs"})
    transitions: int = field(default=2000, metadata={"help": "held-out transitions for 1-step metrics"})
    segments: int = field(default=200, metadata={"help": "held-out rollout segments"})
    horizon: int = field(default=64, metadata={"help": "longest rollout"})
    gifs: int = field(default=4, metadata={"help": "side-by-side GIFs to write"})
    seed: int = field(default=0, metadata={"help": "seed of the sampled transitions and segments"})
    threads: int = field(default=2, metadata={"help": "torch threads"})
    batch: int = field(default=50, metadata={"help": "frames per model call"})


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of uint8 images over all their pixels (100 dB for identical images)."""
    mse = np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2)
    return 100.0 if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def compare(real: np.ndarray, generated: np.ndarray) -> dict:
    """Parser readings of a real and a generated RGB frame."""
    r, g = parse_frame(real), parse_frame(generated)
    ball_error = None
    if r.ball is not None and g.ball is not None:
        ball_error = max(abs(r.ball[0] - g.ball[0]), abs(r.ball[1] - g.ball[1]))
    return dict(real_ball=r.ball is not None, gen_ball=g.ball is not None, ball_error=ball_error,
                paddle_error=None if r.paddle_x is None or g.paddle_x is None else abs(r.paddle_x - g.paddle_x),
                real_paddle=r.paddle_x is not None, bricks=bool(np.array_equal(r.bricks, g.bricks)),
                score=r.score == g.score, lives=r.lives == g.lives)


def ball_tracked(c: dict, tolerance: int = 4) -> bool:
    if c["real_ball"] != c["gen_ball"]:
        return False
    return not c["real_ball"] or c["ball_error"] <= tolerance


def held_out_store(model: WorldModel, data: str) -> FrameStore:
    from collect.episodes import list_episodes
    from train.world_model import read_episode, split_episodes

    paths = list_episodes(data)
    if not paths:
        raise FileNotFoundError(f"{data}: no episode files (episode-*.npz) in this folder")
    names = model.summary.get("held_out_episodes")
    if names:
        held = [p for p in paths if p.name in set(names)]
        if not held:
            raise ValueError(f"{data}: none of the model's held-out episodes are here; evaluate on the folder "
                             f"it was trained from ({model.summary.get('data')})")
    else:
        every = model.summary.get("training_config", {}).get("holdout_every", 10)
        held = split_episodes(paths, every)[1]
    return FrameStore.load(held, read_episode, model.table, progress=False)


def one_step(model: WorldModel, store: FrameStore, config: EvaluateConfig, rng: np.random.Generator) -> dict:
    k = model.context_length
    index = rng.choice(len(store), size=min(config.transitions, len(store)), replace=False)
    rows, psnr_model, psnr_copy = [], [], []
    sq_model = sq_copy = 0.0
    rgb = model.table.to_rgb
    for chunk in np.array_split(index, max(1, len(index) // config.batch)):
        context, target = store.batch(chunk, k)
        context_t, target_t = torch.from_numpy(context), torch.from_numpy(target)
        predicted = model.predict_ids(context_t, model.infer_latent_ids(context_t, target_t)).numpy()
        for last, real, gen in zip(rgb(context[:, -1]), rgb(target), rgb(predicted)):
            rows.append(compare(real, gen))
            sq_model += np.mean((real.astype(np.float32) - gen) ** 2)
            sq_copy += np.mean((real.astype(np.float32) - last) ** 2)
            psnr_model.append(psnr(real, gen))
            psnr_copy.append(psnr(real, last))
    n = len(rows)
    with_ball = [r for r in rows if r["real_ball"]]
    with_paddle = [r for r in rows if r["real_paddle"]]
    return dict(
        transitions=n,
        psnr=float(10 * np.log10(255.0 ** 2 / max(1e-10, sq_model / n))),
        psnr_copy_last=float(10 * np.log10(255.0 ** 2 / max(1e-10, sq_copy / n))),
        mean_frame_psnr=float(np.mean(psnr_model)), mean_frame_psnr_copy_last=float(np.mean(psnr_copy)),
        ball_within_1px=float(np.mean([r["ball_error"] is not None and r["ball_error"] <= 1 for r in with_ball])),
        ball_transitions=len(with_ball),
        extra_ball=float(np.mean([r["gen_ball"] and not r["real_ball"] for r in rows])),
        paddle_within_1px=float(np.mean([r["paddle_error"] is not None and r["paddle_error"] <= 1
                                         for r in with_paddle])),
        bricks_exact=float(np.mean([r["bricks"] for r in rows])),
        score_exact=float(np.mean([r["score"] for r in rows])),
        lives_exact=float(np.mean([r["lives"] for r in rows])),
    )


def serves(model: WorldModel, store: FrameStore, config: EvaluateConfig) -> dict:
    """Held-out transitions that leave a frame where no ball is in play, latents inferred from the real
    video: does the generated frame show a ball exactly when the real one does, and do the latents
    of serves differ from the others'? A ball appears only on the step after FIRE, so this asks
    whether the latent carries the serve; if not, FIRE cannot be a control in the game.
    `latent_separation` is the total variation distance between the latents' histograms of served
    and unserved transitions whose action is FIRE or NOOP (neither moves the paddle, so only the
    serve tells them apart): 0 when both get the same codes, 1 when no code is shared."""
    from train.world_model import serve_transitions

    index = serve_transitions(store, config.data)
    real_ball, gen_ball, codes = [], [], []
    for chunk in np.array_split(index, max(1, len(index) // config.batch)) if len(index) else []:
        context, target = store.batch(chunk, model.context_length)
        context_t, target_t = torch.from_numpy(context), torch.from_numpy(target)
        latent = model.infer_latent_ids(context_t, target_t)
        predicted = model.predict_ids(context_t, latent).numpy()
        codes.extend(latent.tolist())
        for real, gen in zip(target, predicted):
            real_ball.append(parse_frame(model.table.to_rgb(real)).ball is not None)
            gen_ball.append(parse_frame(model.table.to_rgb(gen)).ball is not None)
    real_ball, gen_ball, codes = np.array(real_ball, dtype=bool), np.array(gen_ball, dtype=bool), np.array(codes)
    still = np.isin(store.actions[index], (NOOP, FIRE))
    separation = None
    if (real_ball & still).any() and (~real_ball & still).any():
        served = np.bincount(codes[real_ball & still], minlength=model.config.latents) / (real_ball & still).sum()
        unserved = np.bincount(codes[~real_ball & still], minlength=model.config.latents) / (~real_ball & still).sum()
        separation = float(0.5 * np.abs(served - unserved).sum())
    return dict(transitions=len(index), real_serves=int(real_ball.sum()),
                ball_when_served=float(gen_ball[real_ball].mean()) if real_ball.any() else None,
                no_ball_when_not_served=float((~gen_ball[~real_ball]).mean()) if (~real_ball).any() else None,
                latent_separation=separation)


def segment_starts(store: FrameStore, count: int, horizon: int, rng: np.random.Generator) -> np.ndarray:
    """Frame indices where rollouts start: inside an episode, with a ball in play (a serve's random
    relaunch is not a function of the pixels) and at least `horizon` // 4 frames before the episode ends."""
    candidates = store.starts[rng.permutation(len(store))]
    chosen = []
    for frame in candidates:
        episode = store.episode_of_frame[frame]
        if store.offsets[episode + 1] - frame < max(2, horizon // 4):
            continue
        if parse_frame(store.table.to_rgb(store.frames[frame])).ball is None:
            continue
        chosen.append(frame)
        if len(chosen) == count:
            break
    return np.array(chosen, dtype=np.int64)


def median_interval(values, level: float = 0.95, resamples: int = 2000) -> list[float]:
    """A bootstrap interval of the median of `values` (percentile method, a fixed seed): how far the
    median of this many segments moves between samples of segments."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(0)
    medians = np.median(values[rng.integers(len(values), size=(resamples, len(values)))], axis=1)
    tail = 100 * (1 - level) / 2
    return [float(np.percentile(medians, tail)), float(np.percentile(medians, 100 - tail))]


def share_interval(hits: int, n: int, level_z: float = 1.96) -> list[float]:
    """The Wilson score interval (95% by default) of a share `hits` / `n`: how far the share of this
    many segments could be from the share of all segments the draw stands for."""
    if n <= 0:
        raise ValueError(f"share_interval needs at least one case, got n={n}")
    p, z2 = hits / n, level_z * level_z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = level_z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return [float(centre - half), float(centre + half)]


def open_loop(model: WorldModel, store: FrameStore, starts: np.ndarray, steps: int):
    """`rollouts`' open loop alone, for the benchmarks that look inside it: from each start, `steps`
    steps with latents inferred from the real video and frames from the model's own. Yields (step,
    alive (n,) bool: no life lost and the episode not over, real and generated RGB frames (n, 210,
    160, 3))."""
    k, rgb = model.context_length, model.table.to_rgb
    ends = store.offsets[store.episode_of_frame[starts] + 1] - 1  # last frame of each episode
    alive = np.ones(len(starts), dtype=bool)
    context = torch.from_numpy(store.context(starts, k))
    for step in range(1, steps + 1):
        real_index = np.minimum(starts + step, ends)
        alive &= starts + step <= ends
        alive &= store.lives[real_index] >= store.lives[np.minimum(starts + step - 1, ends)]
        real_next = torch.from_numpy(store.frames[real_index])
        with torch.no_grad():
            latent = model.infer_latent_ids(torch.from_numpy(store.context(real_index - 1, k)), real_next)
            generated = model.predict_ids(context, latent)
        context = torch.cat([context[:, 1:], generated[:, None]], dim=1)
        yield step, alive, rgb(real_next.numpy()), rgb(generated.numpy())


def rollouts(model: WorldModel, store: FrameStore, config: EvaluateConfig, rng: np.random.Generator,
             starts: np.ndarray | None = None) -> tuple[dict, list[np.ndarray]]:
    """Open-loop rollouts with latents inferred from the real video, from `config.segments` segment
    starts drawn with `rng` (`segment_starts`), or from the frame indices `starts` where given."""
    k, rgb = model.context_length, model.table.to_rgb
    if starts is None:
        starts = segment_starts(store, config.segments, config.horizon, rng)
    n = len(starts)
    ends = store.offsets[store.episode_of_frame[starts] + 1] - 1  # last frame of each episode
    tracked_until = np.full(n, -1)  # last step at which the ball was still tracked
    alive = np.ones(n, dtype=bool)  # segment still running (no life lost, episode not over)
    length = np.zeros(n, dtype=int)
    per_step = {h: [] for h in range(1, config.horizon + 1)}
    bricks_ok = np.ones(n, dtype=bool)
    context = torch.from_numpy(store.context(starts, k))  # (n, k, 210, 160) the model's own context
    random_context = context.clone()
    delta_psnr = []
    gif_frames: list[list[np.ndarray]] = [[] for _ in range(min(config.gifs, n))]
    broken = np.zeros(n, dtype=bool)  # ball tracking already lost
    for step in range(1, config.horizon + 1):
        real_index = np.minimum(starts + step, ends)
        alive &= starts + step <= ends
        alive &= store.lives[real_index] >= store.lives[np.minimum(starts + step - 1, ends)]
        if not alive.any():
            break
        real_context = torch.from_numpy(store.context(real_index - 1, k))
        real_next = torch.from_numpy(store.frames[real_index])
        latent = model.infer_latent_ids(real_context, real_next)
        generated = model.predict_ids(context, latent)
        context = torch.cat([context[:, 1:], generated[:, None]], dim=1)
        if step <= 4:
            random_latent = torch.from_numpy(rng.integers(model.config.latents, size=n))
            random_generated = model.predict_ids(random_context, random_latent)
            random_context = torch.cat([random_context[:, 1:], random_generated[:, None]], dim=1)
        real_rgb, gen_rgb = rgb(real_next.numpy()), rgb(generated.numpy())
        for i in np.flatnonzero(alive):
            c = compare(real_rgb[i], gen_rgb[i])
            length[i] = step
            if not broken[i] and ball_tracked(c):
                tracked_until[i] = step
            else:
                broken[i] = True
            if step <= 16:
                bricks_ok[i] &= c["bricks"]
            per_step[step].append(dict(psnr=psnr(real_rgb[i], gen_rgb[i]), ball=ball_tracked(c),
                                       paddle=c["paddle_error"] is not None and c["paddle_error"] <= 1,
                                       bricks=c["bricks"]))
            if step == 4:
                delta_psnr.append(psnr(real_rgb[i], gen_rgb[i]) - psnr(real_rgb[i], rgb(random_generated[i].numpy())))
            if i < len(gif_frames):
                diff = np.where((real_rgb[i] != gen_rgb[i]).any(-1, keepdims=True), 255, 0).astype(np.uint8)
                bar = np.full((210, 4, 3), 255, np.uint8)
                gif_frames[i].append(np.concatenate([real_rgb[i], bar, gen_rgb[i], bar, diff.repeat(3, -1)], 1))
    horizon = np.maximum(tracked_until, 0)
    long_enough = length >= 16
    curve = {h: dict(segments=len(rows), psnr=float(np.mean([r["psnr"] for r in rows])),
                     ball_tracked=float(np.mean([r["ball"] for r in rows])),
                     paddle_within_1px=float(np.mean([r["paddle"] for r in rows])),
                     bricks_exact=float(np.mean([r["bricks"] for r in rows])))
             for h, rows in per_step.items() if rows}
    report = dict(
        segments=n,
        median_ball_tracking_horizon=float(np.median(horizon)),
        median_ball_tracking_horizon_95ci=median_interval(horizon),
        mean_ball_tracking_horizon=float(np.mean(horizon)),
        horizon_censored_share=float(np.mean(~broken)),
        bricks_exact_16_steps=float(np.mean(bricks_ok[long_enough])) if long_enough.any() else None,
        bricks_exact_16_steps_95ci=share_interval(int(bricks_ok[long_enough].sum()), int(long_enough.sum()))
        if long_enough.any() else None,
        segments_with_16_steps=int(long_enough.sum()),
        delta_psnr_t4=float(np.mean(delta_psnr)) if delta_psnr else None,
        at_horizon={h: curve[h] for h in HORIZONS if h in curve},
        curve=curve,
    )
    return report, [np.stack(f) for f in gif_frames if f]


def speed(model: WorldModel, steps: int = 200) -> dict:
    """`predict` steps/s at batch 1 and the emulator's steps/s, timed in the same run."""
    from collect.atari import make_env

    context = np.zeros((model.context_length, 210, 160, 3), np.uint8)
    env = make_env("breakout")
    frame, _ = env.reset(seed=0)
    context[:] = frame
    for _ in range(10):
        model.predict(context, 0)
    start = time.perf_counter()
    for i in range(steps):
        frame = model.predict(context, i % model.config.latents)
        context = np.concatenate([context[1:], frame[None]])
    model_rate = steps / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(steps * 5):
        _, _, terminated, truncated, _ = env.step(i % 4)
        if terminated or truncated:
            env.reset()
    emulator_rate = steps * 5 / (time.perf_counter() - start)
    return dict(predict_steps_per_s=model_rate, emulator_steps_per_s=emulator_rate,
                ratio=model_rate / emulator_rate, threads=torch.get_num_threads())


def plot(report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = report["rollouts"]["curve"]
    steps = sorted(int(h) for h in curve)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, label in (("ball_tracked", "ball within 4 px"), ("paddle_within_1px", "paddle within 1 px"),
                       ("bricks_exact", "brick map exact")):
        axes[0].plot(steps, [curve[h][key] for h in steps], label=label)
    axes[0].set(xlabel="rollout step", ylabel="share of live segments", ylim=(0, 1.02), xscale="log")
    axes[0].legend()
    axes[1].plot(steps, [curve[h]["psnr"] for h in steps], label="model (inferred latents)")
    axes[1].axhline(report["one_step"]["psnr_copy_last"], color="grey", ls="--", label="1-step copy-last baseline")
    axes[1].set(xlabel="rollout step", ylabel="PSNR (dB)", xscale="log")
    axes[1].legend()
    fig.suptitle("world model on held-out episodes, open-loop rollouts")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path


# Bumped when the same checkpoint would score differently: 2 = predictions undo the changed-pixel
# weighting (`WorldModel.keep_bonus`); 3 = a stronger keep bonus on the digits' rows
# (`hud_keep_bonus`); 4 = the ball is drawn as one whole ball (`one_ball`); 5 = the paddle is drawn as
# one whole paddle (`one_paddle`); 6 = a stronger keep bonus on the brick rows (`brick_keep_bonus`);
# 7 = the score digits drawn by the score rule (`count_score`); 8 = no brick comes back (`keep_gaps`);
# 9 = at most one brick goes a step (`one_brick`); 10 = the brick head decides the bricks wherever the
# last frame shows a ball (`place_bricks`, with a brick head); 11 = the return brick head decides them
# where the ball blinked out of the last frame (`place_bricks`, with a return brick head); 12 = a ball at
# rows 90 to 93 is drawn on 5 rows as the game draws it (`ball_head.drawn_rows`), kept bricks are drawn
# whole (`whole_bricks`), and the ball head's "no ball" mid-field needs odds above `gone_above`.
# The ablation reuses only reports of the current version.
PREDICTION_VERSION = 12


def ball_head_summary(model: WorldModel) -> dict | None:
    """How the model's ball head was trained and what it measured (None: no ball head, or not used)."""
    if model.ball_head is None or not model.config.use_ball_head:
        return None
    summary = model.summary.get("ball_head", {})
    return {k: summary.get(k) for k in ("command", "steps", "train_hours", "reading_minutes", "ball_within_1px")}


def brick_head_summary(model: WorldModel, returns: bool = False) -> dict | None:
    """How the model's brick head (`returns`: its return brick head) was trained and what it measured
    (None: no such head, or not used)."""
    used = model.return_bricks if returns else model.brick_head is not None and model.config.use_brick_head
    if not used:
        return None
    summary = model.summary.get("return_brick_head" if returns else "brick_head", {})
    return {k: summary.get(k) for k in ("command", "steps", "train_hours", "reading_minutes", "exact", "hit_exact",
                                        "none_exact")}


def paddle_table_summary(model: WorldModel) -> dict | None:
    """How the model's paddle table was counted and what it measured (None: no table, or not used)."""
    if model.paddle_table is None or not model.config.use_paddle_table or not model.config.one_paddle:
        return None
    summary = model.summary.get("paddle_table", {})
    return {k: summary.get(k) for k in ("command", "minutes", "table_cases", "covered", "within_1px")}


def training_cost(summary: dict) -> dict:
    """What a world model file cost to make, summed from its metadata: the world-model runs (its
    `total_wall_hours`, which counts the runs of its `--init` chain), the paddle table, and each head's
    updates and episode reading. Not counted: recording episodes, the 1 to 2 minutes each world-model
    run spends loading episodes before its clock starts, and runs whose result a later one replaced."""
    parts = {"world_model_runs": summary.get("total_wall_hours", summary.get("wall_hours"))}
    if summary.get("paddle_table"):
        minutes = summary["paddle_table"].get("minutes")
        parts["paddle_table"] = None if minutes is None else minutes / 60
    for name in HEADS:
        head = summary.get(name)
        if head:
            hours = head.get("train_hours")
            parts[name] = None if hours is None else hours + head.get("reading_minutes", 0.0) / 60
    if any(v is None for v in parts.values()):
        missing = [k for k, v in parts.items() if v is None]
        raise ValueError(f"the checkpoint's summary lacks the wall time of {', '.join(missing)}")
    peaks = [summary.get("peak_rss_gb"), (summary.get("init") or {}).get("peak_rss_gb")]  # the init's: newer files
    peaks += [summary[name].get("peak_rss_gb") for name in HEADS if summary.get(name)]
    peaks = [p for p in peaks if p is not None]
    return dict(wall_hours=round(sum(parts.values()), 3), parts_hours={k: round(v, 3) for k, v in parts.items()},
                peak_rss_gb=max(peaks) if peaks else None)


def recorded_cost(summary: dict) -> dict | None:
    """`training_cost`, or None for a file whose metadata lacks a part's wall time (an ad-hoc file)."""
    try:
        return training_cost(summary)
    except ValueError:
        return None


def evaluate_world_model(config: EvaluateConfig) -> dict:
    from worldmodel.video import write_video

    torch.set_num_threads(config.threads)
    model = load_world_model(config.checkpoint)
    store = held_out_store(model, config.data)
    rng = np.random.default_rng(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    report = dict(checkpoint=config.checkpoint or "checkpoints/world_model.pt", data=config.data,
                  held_out_episodes=len(store.names), held_out_transitions=len(store), config=asdict(config),
                  prediction_version=PREDICTION_VERSION,
                  model=dict(context=model.config.context, codes=model.config.codes, latents=model.config.latents,
                             event_input=model.config.event_input,
                             fine_dilations=list(model.config.fine_dilations), keep_bonus=model.keep_bonus,
                             hud_keep_bonus=model.config.hud_keep_bonus,
                             brick_keep_bonus=model.config.brick_keep_bonus, one_ball=model.config.one_ball,
                             one_paddle=model.config.one_paddle, ball_head=ball_head_summary(model),
                             brick_head=brick_head_summary(model),
                             return_brick_head=brick_head_summary(model, returns=True),
                             paddle_table=paddle_table_summary(model),
                             parameters=sum(p.numel() for p in model.parameters()),
                             training=dict((k, model.summary.get(k)) for k in ("steps", "wall_hours", "cpu_hours",
                                                                                "total_wall_hours", "total_cpu_hours",
                                                                                "samples", "training_command",
                                                                                "init")),
                             training_cost=recorded_cost(model.summary)))
    report["one_step"] = one_step(model, store, config, rng)
    report["serves"] = serves(model, store, config)
    report["rollouts"], gifs = rollouts(model, store, config, rng)
    report["speed"] = speed(model)
    report["eval_wall_s"] = time.time() - start
    for i, frames in enumerate(gifs):
        write_video(out / f"rollout-{i}.gif", frames, fps=15)
    plot(report, out / "metrics.png")
    write_text_atomic(out / "report.json", json.dumps(report, indent=1))
    return report
