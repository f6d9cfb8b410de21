"""Every family's `--quick` run, and the quick compute sweep and default selection, saved or compared: a check
that a change to the code moved no number.

    python experiments/quick_metrics.py --save runs/quick_before        # before a change
    python experiments/quick_metrics.py --compare runs/quick_before     # after it: exit status 1 on any difference

Each command runs in its own process with one torch thread (`--threads 1`), so results do not depend on the
machine's thread count. What a run writes (metrics.json, summary.json, the sweep's and the selection's JSON) is
compared value by value, floats exactly, with the exit status; wall-clock times, provenance and the command
line are left out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from core.checkpoint import atomic_write_json
from pipeline.console import OneLineParser

MBRL_FAMILIES = (
    "Pendulum-v1",
    "CartPole-v1",
    "MountainCarContinuous-v0",
    "Acrobot-v1",
    "PointNavigation-v0",
    "HalfCheetah-v5",
    "Hopper-v5",
    "HalfCheetahCrippled-v0",
    "AntCrippled-v0",
)
QUIET = ["--no_progress", "--threads", "1"]
COMMANDS: dict[str, list[str]] = {
    **{family: ["main.py", "--env_name", family, "--quick", *QUIET, "--out_dir", "{out}"] for family in MBRL_FAMILIES},
    "rl2-PointNavigation-v0": [
        "main.py",
        "--algo",
        "rl2",
        "--env_name",
        "PointNavigation-v0",
        "--quick",
        *QUIET,
        "--out_dir",
        "{out}",
    ],
    "compute_sweep": ["experiments/compute_sweep.py", "--quick", *QUIET, "--out_dir", "{out}"],
    "select_defaults": [
        "experiments/select_defaults.py",
        "--env_name",
        "Pendulum-v1",
        "--quick",
        "--candidate",
        "{}",
        "--candidate",
        '{"hidden_dim": 8}',
        *QUIET,
        "--out",
        "{out}/selection.json",
    ],
}
# seconds of wall clock, where the run happened and how it was called: not results
IGNORED_KEYS = {
    "timing",
    "provenance",
    "train_s",
    "seconds_per_step",
    "seconds_per_step_per_seed",
    "from_run",
    "argv",
    "commits",  # the code's commit, as in the provenance
    "mixed_commits",
}


def results_of(out_dir: Path) -> dict[str, Any]:
    """Every JSON file a run wrote, by its path relative to `out_dir` (config.json aside: the metrics hold it)."""
    return {
        str(path.relative_to(out_dir)): json.loads(path.read_text())
        for path in sorted(out_dir.rglob("*.json"))
        if path.name != "config.json"
    }


def without_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: without_times(item) for key, item in value.items() if key not in IGNORED_KEYS}
    if isinstance(value, list):
        return [without_times(item) for item in value]
    return value


def differences(saved: Any, now: Any, where: str = "") -> list[str]:
    """Paths at which `now` differs from `saved` (floats compared exactly; nan equals nan)."""
    if isinstance(saved, dict) and isinstance(now, dict):
        found = [f"{where}.{key}: only in the saved results" for key in saved.keys() - now.keys()]
        found += [f"{where}.{key}: only in the new results" for key in now.keys() - saved.keys()]
        for key in saved.keys() & now.keys():
            found += differences(saved[key], now[key], f"{where}.{key}")
        return found
    if isinstance(saved, list) and isinstance(now, list) and len(saved) == len(now):
        return [
            item
            for index, pair in enumerate(zip(saved, now, strict=True))
            for item in differences(*pair, f"{where}[{index}]")
        ]
    if saved == now or (isinstance(saved, float) and isinstance(now, float) and saved != saved and now != now):
        return []
    return [f"{where}: saved {saved!r}, now {now!r}"]


def run_all(names: list[str], out_root: Path) -> None:
    """Run each command into out_root/<name>/ and write out_root/<name>/results.json: its exit status and outputs."""
    for name in names:
        out = out_root / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        command = [sys.executable, *(part.replace("{out}", str(out)) for part in COMMANDS[name])]
        print(f"{name}: {' '.join(command[1:])}", flush=True)
        with open(out / "stderr.log", "w") as log:
            status = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=log).returncode
        results = {"exit_status": status, **without_times(results_of(out))}
        atomic_write_json(results, out / "results.json")


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--save", type=Path, help="run everything and keep the results in this folder")
    action.add_argument("--compare", type=Path, help="run everything and compare with the results saved here")
    parser.add_argument("--only", nargs="+", choices=sorted(COMMANDS), help="a subset of the commands")
    args = parser.parse_args(argv)
    names = args.only or list(COMMANDS)
    if args.save:
        run_all(names, args.save)
        return 0
    new_root = args.compare.with_name(args.compare.name + "-now")
    run_all(names, new_root)
    failed = 0
    for name in names:
        saved = json.loads((args.compare / name / "results.json").read_text())
        found = differences(saved, json.loads((new_root / name / "results.json").read_text()))
        failed += bool(found)
        print(f"{name}: {'identical' if not found else f'{len(found)} differences'}")
        for line in sorted(found)[:20]:
            print(f"  {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
