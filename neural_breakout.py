"""The `neural-breakout` command line: one entry point, one subcommand per job.

Each subcommand's options are generated from its typed config dataclass (`field(metadata={"help": ...})`),
so `--help` and the code never disagree. Errors caused by input (a bad file, a missing folder, an
unknown policy) print one line and exit with status 2; bugs still show a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import types
import typing

PROG = "neural-breakout"


class OneLineErrorParser(argparse.ArgumentParser):
    """Usage errors print one line (`neural-breakout record: error: ...`) and exit with status 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _field_type(tp) -> tuple[type, bool]:
    """(base type, optional) for int, float, str, bool and `X | None` annotations."""
    optional = False
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional, tp = True, args[0]
    return tp, optional


def add_config_arguments(parser: argparse.ArgumentParser, config_cls, positional: tuple[str, ...] = ()) -> None:
    """Add one option per dataclass field; fields named in `positional` become positional arguments."""
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        tp, _ = _field_type(hints[f.name])
        help_text = f.metadata.get("help", "").replace("%", "%%")  # argparse formats help with %
        kwargs: dict = {"help": help_text}
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        if f.name in positional:
            parser.add_argument(f.name, type=tp, metavar=f.name.upper(), **kwargs)
            continue
        flag = "--" + f.name.replace("_", "-")
        has_default = f.default is not dataclasses.MISSING
        if tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, **kwargs)
            continue
        if has_default:
            kwargs["help"] = f"{help_text} (default: {f.default})"
            parser.add_argument(flag, type=tp, default=f.default, dest=f.name, **kwargs)
        else:
            parser.add_argument(flag, type=tp, required=True, dest=f.name, **kwargs)


def config_from_args(config_cls, args: argparse.Namespace):
    return config_cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls)})


# ---------------------------------------------------------------------------------------------
# Subcommands. Heavy imports happen inside each one so `--help` stays fast.

def cmd_record(args: argparse.Namespace) -> int:
    from collect.record import RecordConfig, record

    config = config_from_args(RecordConfig, args)
    results = record(config, progress=not args.quiet)
    steps = sum(r["steps"] for r in results)
    size = sum(r["bytes"] for r in results)
    print(f"wrote {len(results)} episodes ({steps} transitions, {size / 1e6:.2f} MB) to {config.out}")
    for r in results:
        if r["preview"]:
            print(f"preview {r['preview']}")
    return 0


def cmd_data_info(args: argparse.Namespace) -> int:
    from collect.datainfo import dataset_info, format_info

    info = dataset_info(args.dir)
    print(json.dumps(info) if args.json else format_info(info))
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    from play.game import PlayConfig, play
    from worldmodel.errors import NoDisplayError

    config = config_from_args(PlayConfig, args)
    try:
        play(config)
    except NoDisplayError as exc:
        print(f"{PROG}: error: {exc}; to watch the neural game without a screen, write a GIF with "
              f"`{PROG} rollout --out neural.gif`", file=sys.stderr)
        return 2
    return 0


def cmd_train_agent(args: argparse.Namespace) -> int:
    from train.agent import AgentConfig, train_agent

    config = config_from_args(AgentConfig, args)
    if args.tiny:
        config = AgentConfig.tiny(**{f.name: getattr(config, f.name) for f in dataclasses.fields(AgentConfig)
                                     if f.name in ("out", "exploration", "seed")})
    summary = train_agent(config, progress=not args.quiet)
    print(json.dumps(summary))
    return 0


def cmd_train_world_model(args: argparse.Namespace) -> int:
    from train.world_model import WorldModelTrainConfig, train_world_model

    config = config_from_args(WorldModelTrainConfig, args)
    if args.tiny:
        sizes = ("data", "out", "steps", "batch_size", "width", "warmup", "log_every", "media_every",
                 "checkpoint_minutes", "wandb", "max_episodes", "holdout_every")  # the preset's
        kept = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in sizes}
        config = WorldModelTrainConfig.tiny(config.data, config.out, max_episodes=config.max_episodes or 4,
                                            holdout_every=min(config.holdout_every, 2), **kept)
    summary = train_world_model(config, progress=not args.quiet)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("training_config", "held_out_episodes")}))
    return 0


def cmd_train_ball_head(args: argparse.Namespace) -> int:
    from train.ball_head import BallHeadTrainConfig, train_ball_head

    config = config_from_args(BallHeadTrainConfig, args)
    if args.tiny:
        sizes = ("data", "world_model", "out", "steps", "batch_size", "width", "held_out", "eval_every",
                 "max_episodes", "wandb")  # the preset's; every other option passes through
        kept = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in sizes}
        config = BallHeadTrainConfig.tiny(config.data, config.world_model, config.out, **kept)
    summary = train_ball_head(config, progress=not args.quiet)
    if config.bricks:
        what = "return brick head exact (real blinks)" if config.returns else "brick head exact"
        print(f"held out: {what} {100 * summary['exact']:.1f}% of {summary['samples']} samples, on the "
              f"{summary['hits']} that break a brick {100 * (summary['hit_exact'] or 0):.1f}%, on the others "
              f"{100 * (summary['none_exact'] or 0):.1f}%; wrote {config.out}/world_model.pt")
        print(json.dumps({k: v for k, v in summary.items() if k not in ("training_config", "held_out_episodes")}))
        return 0
    what = "ball after a blink" if config.returns else "next ball"
    print(f"held out: {what} within 1 px {100 * summary['ball_within_1px']:.1f}% of {summary['samples']} "
          f"samples with a ball next, all samples {100 * summary['within_1px']:.1f}%; wrote {config.out}/world_model.pt")
    print(json.dumps({k: v for k, v in summary.items() if k not in ("training_config", "held_out_episodes")}))
    return 0


def cmd_train_copy_heads(args: argparse.Namespace) -> int:
    from train.ball_head import CopyHeadsConfig, copy_heads

    summary = copy_heads(config_from_args(CopyHeadsConfig, args))
    print(f"copied {', '.join(summary['heads'])}; wrote {summary['world_model']}")
    print(json.dumps(summary))
    return 0


def cmd_train_paddle_table(args: argparse.Namespace) -> int:
    from train.paddle_table import PaddleTableTrainConfig, train_paddle_table

    config = config_from_args(PaddleTableTrainConfig, args)
    if args.tiny:
        kept = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                if f.name not in ("data", "world_model", "out", "batch_size", "max_episodes")}
        config = PaddleTableTrainConfig.tiny(config.data, config.world_model, config.out, **kept)
    summary = train_paddle_table(config, progress=not args.quiet)
    covered = summary["within_1px_where_covered"]
    print(f"held out: next paddle within 1 px {100 * summary['within_1px']:.1f}% of {summary['cases']} cases "
          f"(the table has {100 * summary['covered']:.1f}% of them"
          + (f", within 1 px {100 * covered:.1f}% there" if covered is not None else "")
          + f"; the last step repeated: {100 * summary['constant_velocity_within_1px']:.1f}%); "
          f"wrote {config.out}/world_model.pt")
    print(json.dumps({k: v for k, v in summary.items() if k not in ("training_config", "held_out_episodes")}))
    return 0


def cmd_train_action_paddle(args: argparse.Namespace) -> int:
    from train.paddle_table import ActionPaddleTrainConfig, train_action_paddle

    config = config_from_args(ActionPaddleTrainConfig, args)
    if args.tiny:
        kept = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                if f.name not in ("data", "action_map", "world_model", "out", "max_episodes")}
        config = ActionPaddleTrainConfig.tiny(config.data, config.action_map, config.world_model, config.out, **kept)
    summary = train_action_paddle(config, progress=not args.quiet)
    alone = summary["action_alone"]
    print(f"held out: next paddle within 1 px {100 * summary['within_1px']:.1f}% of {summary['cases']} cases "
          f"(the table has {100 * summary['covered']:.1f}% of them; the action alone, without the one before: "
          f"{100 * alone['within_1px']:.1f}%; the last step repeated: "
          f"{100 * summary['constant_velocity_within_1px']:.1f}%); wrote {config.out}/action_map.pt")
    print(json.dumps({k: v for k, v in summary.items() if k not in ("training_config", "held_out_episodes")}))
    return 0


def cmd_evaluate_world_model(args: argparse.Namespace) -> int:
    from train.evaluate import EvaluateConfig, evaluate_world_model

    config = config_from_args(EvaluateConfig, args)
    report = evaluate_world_model(config)
    one, roll, speed = report["one_step"], report["rollouts"], report["speed"]
    print(f"1-step on {one['transitions']} held-out transitions: PSNR {one['psnr']:.2f} dB "
          f"(copy-last {one['psnr_copy_last']:.2f}), ball within 1 px {100 * one['ball_within_1px']:.1f}%, "
          f"paddle within 1 px {100 * one['paddle_within_1px']:.1f}%, bricks exact {100 * one['bricks_exact']:.1f}%")
    low, high = roll["median_ball_tracking_horizon_95ci"]
    share_ci = roll.get("bricks_exact_16_steps_95ci")
    bricks_ci = f" ({100 * share_ci[0]:.1f}-{100 * share_ci[1]:.1f})" if share_ci else ""
    print(f"rollouts ({roll['segments']} segments): median ball-tracking horizon "
          f"{roll['median_ball_tracking_horizon']:g} steps (95% interval {low:g}-{high:g}), bricks exact over 16 steps "
          f"{100 * (roll['bricks_exact_16_steps'] or 0):.1f}%{bricks_ci}, "
          f"delta-PSNR at t=4 {roll['delta_psnr_t4']:.2f} dB")
    print(f"speed: predict {speed['predict_steps_per_s']:.0f} steps/s at batch 1, emulator "
          f"{speed['emulator_steps_per_s']:.0f} steps/s (ratio {speed['ratio']:.3f})")
    cost = report["model"]["training_cost"]
    if cost is None:
        print("training cost: the checkpoint's metadata does not record it")
    else:
        parts = ", ".join(f"{name.replace('_', ' ')} {hours:.2f}" for name, hours in cost["parts_hours"].items())
        print(f"training cost (from the checkpoint's metadata): {cost['wall_hours']:.2f} h wall ({parts}); "
              f"peak memory of the runs it records {cost['peak_rss_gb']} GB")
    print(f"wrote {config.out}/report.json, metrics.png and rollout GIFs")
    return 0


def cmd_train_action_map(args: argparse.Namespace) -> int:
    from train.action_map import ActionMapTrainConfig, train_action_map

    config = config_from_args(ActionMapTrainConfig, args)
    if args.tiny:
        sizes = ("data", "world_model", "out", "transitions", "held_out", "steps", "batch_size", "width",
                 "bank_starts", "bank_states", "max_episodes")  # the preset's; every other option passes through
        kept = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in sizes}
        config = ActionMapTrainConfig.tiny(config.data, config.world_model, config.out, **kept)
    summary = train_action_map(config, progress=not args.quiet)
    print(f"held-out accuracy {100 * summary['held_out_accuracy']:.1f}% (a context-free action table: "
          f"{100 * summary['action_table_baseline']:.1f}%); wrote {config.out}/action_map.pt and "
          f"{config.out}/start_states.npz ({summary['start_states']} start states)")
    print(json.dumps({k: v for k, v in summary.items() if k != "training_config"}))
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    from play.rollout import RolloutConfig, rollout

    config = config_from_args(RolloutConfig, args)
    result = rollout(config, progress=not args.quiet)
    print(f"wrote {result['out']}: {result['steps']} steps of {config.policy} play"
          f"{' next to the real game' if config.side_by_side else ''} in {result['seconds']} s")
    print(json.dumps(result))
    return 0


def cmd_evaluate_play(args: argparse.Namespace) -> int:
    from train.evaluate_play import EvaluatePlayConfig, evaluate_play

    config = config_from_args(EvaluatePlayConfig, args)
    report = evaluate_play(config, progress=not args.quiet)
    roll, direction, fire, logic = (report[k] for k in ("controlled_rollouts", "paddle_direction", "fire",
                                                         "game_logic"))
    low, high = roll["median_ball_tracking_horizon_95ci"]
    print(f"controlled rollouts ({roll['segments']} segments): median ball-tracking horizon "
          f"{roll['median_ball_tracking_horizon']:g} steps (95% interval {low:g}-{high:g}; latents inferred from "
          f"the video, same segments: {roll['inferred_latents']['median_ball_tracking_horizon']:g}), "
          f"paddle within 1 px {100 * roll['paddle_within_1px']:.1f}%")
    print(f"paddle direction {100 * direction['accuracy']:.1f}% of {direction['presses']} presses "
          f"(real game {100 * direction['real_game_accuracy']:.1f}%); FIRE launches "
          f"{100 * (fire['launch_rate'] or 0):.1f}% of {fire['presses']} presses "
          f"(NOOP instead: {100 * (fire['noop_launch_rate'] or 0):.1f}%)")
    print(f"game logic over {logic['minutes_at_15fps']:.1f} min of tracker play: {json.dumps(logic['violations'])}")
    print(f"is it still a game: points scored {logic['points']}, bricks broken {logic['bricks_broken']} "
          f"(worth {logic['brick_points']} points), "
          f"lives lost {logic['lives_lost']}; a whole ball in {logic['whole_ball_steps']} of {logic['steps']} "
          f"steps; the frame unchanged in {logic['frozen_steps']}")
    print(f"wrote {config.out}/report.json and {config.out}/tracker.gif")
    return 0


def cmd_evaluate_ablation(args: argparse.Namespace) -> int:
    from train.ablation import AblationConfig, ablate, table

    config = config_from_args(AblationConfig, args)
    rows = ablate(config, progress=not args.quiet)
    print(table(rows, config), end="")
    print(f"wrote {config.out}/ablation.json and {config.out}/ablation.md")
    return 0


def cmd_agent_eval(args: argparse.Namespace) -> int:
    import numpy as np

    from train.agent import evaluate, load_agent

    if args.episodes < 1:
        raise ValueError(f"--episodes must be at least 1, got {args.episodes}")
    q_net = load_agent(args.checkpoint)
    start = time.time()
    scores, _ = evaluate(q_net, args.episodes, seed=args.seed, epsilon=args.epsilon, max_steps=args.max_steps)
    for i, score in enumerate(scores):
        print(f"game {i + 1:3d}: {score:g}")
    result = dict(mean_score=float(np.mean(scores)), std_score=float(np.std(scores)), min_score=float(np.min(scores)),
                  max_score=float(np.max(scores)), episodes=len(scores), epsilon=args.epsilon, seed=args.seed,
                  checkpoint=str(args.checkpoint), wall_s=round(time.time() - start, 1),
                  policy=f"epsilon-greedy, epsilon {args.epsilon}, full games of 5 lives, FIRE at each life start")
    print(f"mean {result['mean_score']:.1f} +- {result['std_score']:.1f} (min {result['min_score']:g}, "
          f"max {result['max_score']:g}) over {len(scores)} games")
    print(json.dumps(result))
    return 0


def cmd_agent_export(args: argparse.Namespace) -> int:
    from train.agent import export_from_run

    if args.episodes < 1:
        raise ValueError(f"--episodes must be at least 1, got {args.episodes}")
    path, evaluation = export_from_run(args.run, args.out, episodes=args.episodes, seed=args.seed,
                                       epsilon=args.epsilon, max_steps=args.max_steps)
    print(f"wrote {path}: mean {evaluation['mean_score']:.1f} +- {evaluation['std_score']:.1f} "
          f"over {evaluation['episodes']} games")
    print(json.dumps({k: v for k, v in evaluation.items() if k != "scores"}))
    return 0


def cmd_agent_compare(args: argparse.Namespace) -> int:
    from train.agent_report import compare_runs

    print(compare_runs(args.runs, args.out, points=args.points), end="")
    print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from collect.record import RecordConfig
    from play.game import PlayConfig
    from train.agent import AgentConfig
    from play.rollout import RolloutConfig
    from train.ablation import AblationConfig
    from train.action_map import ActionMapTrainConfig
    from train.ball_head import BallHeadTrainConfig, CopyHeadsConfig
    from train.evaluate import EvaluateConfig
    from train.paddle_table import ActionPaddleTrainConfig, PaddleTableTrainConfig
    from train.evaluate_play import EvaluatePlayConfig
    from train.world_model import WorldModelTrainConfig

    parser = OneLineErrorParser(
        prog=PROG,
        description="A playable neural world model of Atari Breakout: record the real game, train, play.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=OneLineErrorParser)

    p = sub.add_parser("record", help="record episodes of the real game to disk",
                       description="Play the real game with a policy in worker processes and write lossless, "
                                   "compressed episode files (episode-NNNNNN.npz). Recording again into the same "
                                   "folder adds episodes; an interrupted run leaves only complete files.")
    add_config_arguments(p, RecordConfig)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("data", help="inspect recorded episodes", description="Inspect folders of recorded episodes.")
    data_sub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True,
                                parser_class=OneLineErrorParser)
    q = data_sub.add_parser("info", help="counts, size and coverage of a folder of episodes",
                            description="Print episodes, transitions, bytes per frame, and histograms of actions, "
                                        "scores, bricks remaining and ball positions. Every file is validated.")
    q.add_argument("dir", metavar="DIR", help="folder of episode files")
    q.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    q.set_defaults(func=cmd_data_info)

    p = sub.add_parser("play", help="play Breakout with the keyboard in a window",
                       description="Open a pygame window and play: Left/Right move, Space fires, P pauses, "
                                   "R resets, Tab switches between the neural game (the default: every frame "
                                   "generated by the world model) and the real emulator, Esc or Q quits. "
                                   "--real starts in the emulator; --record DIR saves each real game "
                                   "as an episode (human demonstrations).")
    add_config_arguments(p, PlayConfig)
    p.set_defaults(func=cmd_play)

    p = sub.add_parser("rollout", help="record the neural game played by a policy as a GIF or MP4",
                       description="Play NeuralBreakout-v0 with a policy (tracker: follows the ball read by the "
                                   "frame parser; agent: the shipped DQN; random) and write the frames as a video. "
                                   "--side-by-side shows the real emulator fed the same actions next to it "
                                   "(neural | real), both started from the same real frames.")
    add_config_arguments(p, RolloutConfig)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_rollout)

    p = sub.add_parser("train", help="train a model", description="Train the agent or the models.")
    train_sub = p.add_subparsers(dest="train_command", metavar="MODEL", required=True, parser_class=OneLineErrorParser)
    q = train_sub.add_parser("agent", help="train the DQN collector agent on the real game",
                             description="Double DQN with a dueling head, n-step returns and prioritized replay; "
                                         "exploration by annealed Boltzmann temperature or by RND. Resumes from "
                                         "OUT/checkpoint.pt; writes OUT/agent.pt, OUT/curve.json, OUT/log.jsonl.")
    add_config_arguments(q, AgentConfig)
    q.add_argument("--tiny", action="store_true", help="a few hundred steps with tiny networks (smoke test)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_train_agent)

    q = train_sub.add_parser("world-model", help="train the latent action model and its decoder, the world model",
                             description="Train on recorded episodes (every --holdout-every-th episode is held out). "
                                         "Resumes from OUT/checkpoint.pt; writes OUT/world_model.pt, OUT/log.jsonl "
                                         "and held-out image strips and rollout GIFs under OUT/media.")
    add_config_arguments(q, WorldModelTrainConfig)
    q.add_argument("--tiny", action="store_true", help="a few updates of a tiny model (smoke test)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_train_world_model)

    q = train_sub.add_parser("action-map", help="train the map from real actions to latent actions",
                             description="Label recorded transitions with the latent actions the world model "
                                         "infers, train a small network from (context, real action) to latent "
                                         "action, report its accuracy on the world model's held-out episodes, and "
                                         "write OUT/action_map.pt and OUT/start_states.npz (real start states for "
                                         "NeuralBreakout-v0).")
    add_config_arguments(q, ActionMapTrainConfig)
    q.add_argument("--tiny", action="store_true", help="a few updates of a tiny map (smoke test)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_train_action_map)

    q = train_sub.add_parser("ball-head", help="train the ball head and add it to a world model checkpoint",
                             description="Train the small network that places the next ball from a window around "
                                         "the last one (worldmodel/ball_head.py) on real transitions, report its "
                                         "accuracy on the world model's held-out episodes, and write "
                                         "OUT/world_model.pt: the given world model with the head added. With "
                                         "--returns, the return head instead: where a ball that blinked out for a "
                                         "frame as it bounced shows again. With --bricks, the brick head: which "
                                         "brick the step breaks, if any. Resumes from OUT/checkpoint.pt.")
    add_config_arguments(q, BallHeadTrainConfig)
    q.add_argument("--tiny", action="store_true", help="a few updates of a tiny head (smoke test)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_train_ball_head)

    q = train_sub.add_parser("copy-heads", help="copy the heads of one world model checkpoint into another",
                             description="Write OUT/world_model.pt: --world-model with every head --source holds "
                                         "(ball, return, brick and return brick heads: their settings, weights "
                                         "and training summaries, whose hours `evaluate world-model` counts in "
                                         "the file's cost). The heads train on real frames alone, so they fit "
                                         "any world model whose held-out episodes are theirs; another split is "
                                         "refused.")
    add_config_arguments(q, CopyHeadsConfig)
    q.set_defaults(func=cmd_train_copy_heads)

    q = train_sub.add_parser("paddle-table", help="count the paddle table and add it to a world model checkpoint",
                             description="Infer the latent code of every recorded transition whose last frames "
                                         "show the paddle, count the most common next step of each case (code, "
                                         "last step, left edge) over the training episodes "
                                         "(worldmodel/paddle_table.py), report how often it places the paddle "
                                         "within 1 px on the world model's held-out episodes, and write "
                                         "OUT/world_model.pt: the given world model with the table added. "
                                         "Resumes after the last episode done (OUT/cases/).")
    add_config_arguments(q, PaddleTableTrainConfig)
    q.add_argument("--tiny", action="store_true", help="a few episodes in small batches (smoke test)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_train_paddle_table)

    q = train_sub.add_parser("action-paddle", help="count where each press puts the paddle, add it to an action map",
                             description="Count the most common next paddle step of each case (action, action "
                                         "before, last step, left edge) over the world model's training "
                                         "episodes, from the recorded actions and frames, report how often it "
                                         "places the paddle within 1 px on the held-out episodes, and write "
                                         "OUT/action_map.pt: the given action map with the table added. The env "
                                         "then places the paddle where the real press puts it. Resumes after the "
                                         "last episode done (OUT/action-cases/).")
    add_config_arguments(q, ActionPaddleTrainConfig)
    q.add_argument("--tiny", action="store_true", help="a few episodes (smoke test)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_train_action_paddle)

    p = sub.add_parser("evaluate", help="evaluate a model against the real game",
                       description="Evaluate against the real game on held-out episodes.")
    eval_sub = p.add_subparsers(dest="evaluate_command", metavar="MODEL", required=True,
                                parser_class=OneLineErrorParser)
    q = eval_sub.add_parser("world-model", help="1-step, open-loop rollout, controllability and speed metrics",
                            description="DESIGN's protocol on the checkpoint's held-out episodes: 1-step metrics, "
                                        "open-loop rollouts with latents inferred from the real video, delta-PSNR "
                                        "at t=4, predict speed next to the emulator. Writes OUT/report.json, "
                                        "OUT/metrics.png and side-by-side GIFs (real | generated | difference).")
    add_config_arguments(q, EvaluateConfig)
    q.set_defaults(func=cmd_evaluate_world_model)
    q = eval_sub.add_parser("play", help="the playable env: controlled rollouts, paddle direction, FIRE, game logic",
                            description="Hold NeuralBreakout-v0, driven by real actions through the action map, "
                                        "against the real game: controlled rollouts on held-out episodes, "
                                        "paddle-direction accuracy, FIRE launches, and rule violations over "
                                        "minutes of tracker play. Writes OUT/report.json and OUT/tracker.gif.")
    add_config_arguments(q, EvaluatePlayConfig)
    q.add_argument("--quiet", action="store_true", help="no per-part output")
    q.set_defaults(func=cmd_evaluate_play)
    q = eval_sub.add_parser("ablation", help="train world-model variants (context, codes) at equal budget and "
                                             "compare them", description="The world model's ablation over latent size and context length: trains "
                                        "each variant from scratch for the same number of updates (same data, seed "
                                        "and batches), evaluates each on the same held-out transitions and "
                                        "segments, and writes OUT/ablation.json and OUT/ablation.md. Each variant's "
                                        "run resumes, so an interrupted ablation continues.")
    add_config_arguments(q, AblationConfig)
    q.add_argument("--quiet", action="store_true", help="no progress bars")
    q.set_defaults(func=cmd_evaluate_ablation)

    p = sub.add_parser("agent", help="use a trained agent", description="Use a trained agent.")
    agent_sub = p.add_subparsers(dest="agent_command", metavar="SUBCOMMAND", required=True,
                                 parser_class=OneLineErrorParser)
    q = agent_sub.add_parser("eval", help="play full games and report the score",
                             description="Play full games (5 lives) epsilon-greedily and print each score, then mean, "
                                         "std, min and max; the last line is JSON.")
    q.add_argument("--checkpoint", required=True, help="agent checkpoint (agent.pt)")
    q.add_argument("--episodes", type=int, default=30, help="games to play (default: 30)")
    q.add_argument("--seed", type=int, default=0, help="seed of the games (default: 0)")
    q.add_argument("--epsilon", type=float, default=0.01, help="random-action probability (default: 0.01)")
    q.add_argument("--max-steps", type=int, default=27_000, help="step cap per game (default: 27000)")
    q.set_defaults(func=cmd_agent_eval)
    q = agent_sub.add_parser("export", help="export a training run's latest network as a small agent checkpoint",
                             description="Read RUN/checkpoint.pt (a run of `train agent`, finished or not), play "
                                         "--episodes full games, and write the Q-network (fp16) with steps, wall "
                                         "and CPU time, learning curve and that evaluation as its metadata.")
    q.add_argument("--run", required=True, help="folder of a `train agent` run (holds checkpoint.pt)")
    q.add_argument("--out", default="checkpoints/agent.pt", help="file to write (default: checkpoints/agent.pt)")
    q.add_argument("--episodes", type=int, default=30, help="evaluation games (default: 30)")
    q.add_argument("--seed", type=int, default=0, help="seed of the evaluation games (default: 0)")
    q.add_argument("--epsilon", type=float, default=0.01, help="random-action probability (default: 0.01)")
    q.add_argument("--max-steps", type=int, default=27_000, help="step cap per game (default: 27000)")
    q.set_defaults(func=cmd_agent_export)
    q = agent_sub.add_parser("compare", help="compare training runs (e.g. temperature vs RND) at the same budget",
                             description="Read each RUN/log.jsonl and write a markdown report: the mean score of the "
                                         "last 100 training games against environment steps and against CPU hours, "
                                         "up to the budget every run reached, with each run's cost.")
    q.add_argument("runs", nargs="+", metavar="RUN", help="folders of `train agent` runs (two or more)")
    q.add_argument("--out", default="docs/exploration.md", help="markdown file to write (default: docs/exploration.md)")
    q.add_argument("--points", type=int, default=8, help="rows per table (default: 8)")
    q.set_defaults(func=cmd_agent_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    from worldmodel.errors import NeuralBreakoutError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (NeuralBreakoutError, FileNotFoundError, NotADirectoryError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
