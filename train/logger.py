"""Training logs: a JSON-lines file that always works, plus wandb (offline by default, lazily imported)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path


def command_line(command: str, config, first: tuple[str, ...] = ("data", "out")) -> str:
    """The command line that reproduces a run: the `first` settings always, then every setting off
    its default, booleans as flags (`--freeze-encoder`, `--no-wandb`)."""
    words = [command] + [f"--{name.replace('_', '-')} {getattr(config, name)}" for name in first]
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name not in first and f.default is not dataclasses.MISSING and value != f.default:
            flag = f.name.replace("_", "-")
            words.append(f"--{flag}" if value is True else f"--no-{flag}" if value is False else f"--{flag} {value}")
    return " ".join(words)


class RunLogger:
    """`log(metrics, step, media)` appends to OUT/log.jsonl and, with wandb on, logs the metrics and
    media files already written to disk (.png as images, .gif as videos: wandb needs moviepy for raw
    frames, so GIFs are written by us)."""

    def __init__(self, config, out: Path, resume_id: str | None, job_type: str):
        self.file = open(out / "log.jsonl", "a")
        self.run = None
        if config.wandb:
            os.environ.setdefault("WANDB_MODE", "offline")
            import wandb

            self.run = wandb.init(project="neural-breakout", job_type=job_type, dir=str(out),
                                  config=dataclasses.asdict(config), id=resume_id, resume="allow")
        self.id = self.run.id if self.run else None

    def log(self, metrics: dict, step: int, media: dict[str, Path] | None = None) -> None:
        self.file.write(json.dumps(dict(step=step, **metrics)) + "\n")
        self.file.flush()
        if not self.run:
            return
        payload = dict(metrics)
        try:
            import wandb

            for key, path in (media or {}).items():
                payload[key] = (wandb.Image(str(path)) if Path(path).suffix == ".png"
                                else wandb.Video(str(path), format="gif"))
        except Exception as exc:  # media must never stop a training run
            print(f"warning: media not logged ({type(exc).__name__}: {exc})")
        self.run.log(payload, step=step)

    def close(self) -> None:
        self.file.close()
        if self.run:
            self.run.finish()
