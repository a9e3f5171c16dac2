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
        help_text = f.metadata.get("help", "")
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
    from play.real import PlayConfig, play_real

    config = config_from_args(PlayConfig, args)
    if not config.real:
        print(f"{PROG} play: the neural game is not trained yet; play the real game with `{PROG} play --real`",
              file=sys.stderr)
        return 2
    play_real(config)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from collect.record import RecordConfig
    from play.real import PlayConfig

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
                                   "R resets, Esc or Q quits. --real plays the emulator; --record DIR saves "
                                   "each game as an episode (human demonstrations).")
    add_config_arguments(p, PlayConfig)
    p.set_defaults(func=cmd_play)
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
