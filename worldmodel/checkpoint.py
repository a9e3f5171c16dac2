"""Self-describing checkpoints: {kind, format_version, config, state, summary}, written atomically.

A checkpoint of the wrong kind, version or shape fails with a message that names the file and the
problem, never a raw `state_dict` key dump.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from worldmodel.errors import NeuralBreakoutError

FORMAT_VERSION = 1


class CheckpointError(NeuralBreakoutError):
    """A checkpoint file is missing, corrupt, of another kind or version, or does not fit the model."""


def save_checkpoint(path: str | Path, kind: str, config: Any, state: dict, summary: dict | None = None) -> Path:
    """Write atomically: a temp file in the same folder, then `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(
        kind=kind,
        format_version=FORMAT_VERSION,
        config=dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config),
        state=state,
        summary=summary or {},
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write a text file (a report, a table) atomically: a temp file in the same folder, then `os.replace`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, kind: str) -> dict:
    """Load and check kind and version; returns the payload dict."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a damaged file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or "kind" not in payload or "format_version" not in payload:
        raise CheckpointError(f"{path}: not a neural-breakout checkpoint (no kind/format_version)")
    if payload["kind"] != kind:
        raise CheckpointError(f"{path}: is a {payload['kind']!r} checkpoint, expected {kind!r}")
    if payload["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {payload['format_version']}, "
                              f"this code reads {FORMAT_VERSION}")
    return payload


def load_weights(module: nn.Module, weights: dict, path: str | Path) -> None:
    """`load_state_dict` with a one-line error on mismatch instead of a key dump."""
    own = module.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    wrong = [k for k in own if k in weights and tuple(weights[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        detail = (f"{len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} of other shape"
                  + (f" (e.g. {wrong[0]}: {tuple(weights[wrong[0]].shape)} vs {tuple(own[wrong[0]].shape)})"
                     if wrong else ""))
        raise CheckpointError(f"{path}: weights do not fit {type(module).__name__}: {detail}")
    module.load_state_dict(weights)
