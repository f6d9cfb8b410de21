"""Atomic checkpoint and JSON files: a crash while saving never corrupts the previous file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """`torch.save(obj)` to a temporary file beside `path`, then `os.replace` it into place."""
    return _atomic_write(path, lambda handle: torch.save(obj, handle))


def atomic_write_json(values: Any, path: str | os.PathLike) -> Path:
    """`values` as indented JSON, written atomically like `atomic_save`: a reader never sees half a file."""
    return _atomic_write(path, lambda handle: handle.write(json.dumps(values, indent=2).encode()))


def _atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """`write(handle)` into a temporary file beside `path`, synced, then `os.replace`d into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = None) -> Any:
    """`torch.load(weights_only=True)` with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise ValueError(f"checkpoint {path} is corrupt or not a weights-only torch file: {error}") from error


def load_marked_checkpoint(path: str | os.PathLike, marker: str, what: str) -> dict:
    """A checkpoint dict whose "format" entry is `marker`; ValueError naming the file and `what` it should be
    otherwise (unreadable, foreign or corrupt), without torch's advice to load unsafely."""
    try:
        state = load_checkpoint(path, map_location="cpu")
    except ValueError as error:
        raise ValueError(f"{path} is not a readable {what} (unreadable file)") from error
    if not isinstance(state, dict) or state.get("format") != marker:
        raise ValueError(f"{path} is not a readable {what} (no '{marker}' marker)")
    return state
