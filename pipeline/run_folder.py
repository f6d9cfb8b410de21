"""The output folder of a run: whether it can be written, whether it already holds a run, and removing one.

A run writes only the files of `RUN_FILES` (and, with several seeds, one `seed_<S>/` folder each); a folder that
holds any of them holds a run, and a new run never mixes its files with an earlier run's. `clear_run` removes
exactly those files and folders, nothing else a user keeps there. `RunFolderLock` keeps a second process out of a
folder in use: an advisory lock on `LOCK_FILE` that the operating system releases when its process ends, however
it ends, so a killed run leaves nothing stuck.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

RUN_FILES = (
    "config.json",
    "metrics.json",
    "metrics.partial.json",
    "checkpoint.pt",
    "train_*.pt",
    "prediction_mse.png",
    "control_returns.png",
    "control_ood_returns.png",
    "training_curves.png",
    "rl2_returns.png",
    "rl2_training.png",
    "summary.json",
    "summary.md",
    "summary_paired.png",
)
MARKS = ("config.json", "metrics.json", "checkpoint.pt", "summary.json")  # what a run writes first or last
LOCK_FILE = ".run.lock"


def seed_folders(folder: Path) -> list[Path]:
    return sorted(path for path in folder.glob("seed_*") if path.is_dir() and path.name[5:].isdigit())


def holds_a_run(folder: Path) -> bool:
    """Whether `folder` (or a seed_<S>/ folder in it) holds files of a run."""
    places = [folder, *seed_folders(folder)] if folder.is_dir() else []
    return any((place / name).exists() for place in places for name in MARKS)


def clear_run(folder: Path) -> None:
    """Remove the files of a run from `folder` and its seed_<S>/ folders (those folders too, once empty)."""
    for seed_folder in seed_folders(folder):
        clear_run(seed_folder)
        if seed_folder.is_dir() and not any(seed_folder.iterdir()):
            seed_folder.rmdir()
    for pattern in RUN_FILES:
        for path in folder.glob(pattern):
            path.unlink() if path.is_file() else shutil.rmtree(path)


def check_writable(folder: Path) -> None:
    """ValueError unless `folder` is a folder this process can write, or can be made as one."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out_dir must be a folder, got {str(folder)!r}, an existing file")
    existing = next(parent for parent in (folder, *folder.parents) if parent.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"--out_dir must be a folder this user can write, got {str(folder)!r} ({existing} is not writable)"
        )


class RunFolderLock:
    """This process's hold on a run folder, taken on creation and released on leaving the `with` block; ValueError
    naming the process that holds it when another one does."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.handle = open(folder / LOCK_FILE, "a+")  # noqa: SIM115  (held open for as long as the lock)
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "unknown"
            self.handle.close()
            raise ValueError(
                f"--out_dir {folder} is in use by another run (process {holder}): wait for it to end, or give "
                "another --out_dir"
            ) from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"{os.getpid()}\n")
        self.handle.flush()

    def __enter__(self) -> RunFolderLock:
        return self

    def __exit__(self, *exception) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
