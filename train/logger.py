"""Training logs: a JSON-lines file that always works, plus wandb (offline by default, lazily imported)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path


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
