"""Model-based test-time adaptation against RL² on the same tasks: one table per family from two published results
folders (the same environment and tasks, on the seeds both hold; RL² trials start from the model-based first
episodes' resets), with the environment steps each method trained on.

    python -m pipeline.report.comparison --mbrl docs/results/pointnav_learned --rl2 docs/results/rl2_pointnav \
        --out docs/results/tta_vs_rl2_pointnav

Rows: every model-based condition's first-episode return (no experience of the task before it), and every RL² policy's
first and last episode of a trial (the memory has seen the earlier episodes). Paired differences, tta minus the RL²
learner's first and last episode, pair the two methods' per-task means within each seed; intervals are over seeds.
comparison.json holds {"kind": "comparison", "env_name", "seeds", "rows", "paired", "env_steps"}; the README block
`<!-- results: .../comparison.json -->` renders it (`pipeline.report.pages`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from core.checkpoint import atomic_write_json
from pipeline.console import OneLineParser
from pipeline.report.markdown import number, over_seeds_cell, paired_table
from pipeline.report.statistics import paired_pooled, pooled
from pipeline.report.summary import seed_metrics

SPLITS = {"test": ("control", "in_distribution"), "ood": ("control_ood", "ood")}  # mbrl key, RL² key


def _check_comparable(mbrl: list[dict], rl2: list[dict]) -> None:
    """ValueError unless both hold the same environment, seeds and tasks, model-based and RL² runs respectively."""
    if any(run.get("algo") == "rl2" for run in mbrl) or any(run.get("algo") != "rl2" for run in rl2):
        raise ValueError("--mbrl must hold model-based runs and --rl2 RL² runs")
    names = {run["env_name"] for run in mbrl + rl2}
    if len(names) != 1:
        raise ValueError(f"the two folders hold different environments: {sorted(names)}")
    seeds = ([run["seed"] for run in mbrl], [run["seed"] for run in rl2])
    if seeds[0] != seeds[1]:
        raise ValueError(f"the runs compared must be of the same seeds: {seeds[0]} and {seeds[1]}")
    for a, b in zip(mbrl, rl2, strict=True):
        for split in ("test", "ood"):
            if [task["params"] for task in a["tasks"][split]] != [task["params"] for task in b["tasks"][split]]:
                raise ValueError(f"seed {a['seed']}: the two runs' {split} tasks differ")


def _rl2_per_task(runs: list[dict], split_key: str, policy: str, episode: int, tasks: int) -> list[list[float]]:
    """Per seed, RL²'s per-task returns of `episode` on the first `tasks` tasks (those the planner ran on)."""
    return [run["rl2"][split_key][policy]["episode_returns"][episode]["per_task"][:tasks] for run in runs]


def common_seeds(mbrl: list[dict], rl2: list[dict]) -> tuple[list[dict], list[dict]]:
    """The runs of the seeds both lists hold, by seed (ValueError when they share none)."""
    shared = sorted({run["seed"] for run in mbrl} & {run["seed"] for run in rl2})
    if not shared:
        raise ValueError("the two folders share no seed")
    return [run for run in mbrl if run["seed"] in shared], [run for run in rl2 if run["seed"] in shared]


def compare(mbrl: list[dict], rl2: list[dict]) -> dict:
    """The comparison of per-seed metrics of the same seeds (see the module docstring); ValueError when the runs
    cannot be compared (different environment, seeds or tasks)."""
    _check_comparable(mbrl, rl2)
    learner = rl2[0]["config"]["rl2_memory"]
    rows: dict[str, dict] = {}
    paired: dict[str, dict] = {}
    for split, (mbrl_key, rl2_key) in SPLITS.items():
        if mbrl_key not in mbrl[0] or rl2_key not in rl2[0]["rl2"]:
            continue
        conditions = mbrl[0][mbrl_key]
        tasks = len(conditions["tta"]["per_task"])
        for condition in conditions:
            rows.setdefault(f"model-based {condition}", {})[split] = pooled(
                [run[mbrl_key][condition]["per_task"] for run in mbrl], sign_bounded=True
            )
        for policy, value in rl2[0]["rl2"][rl2_key].items():
            last = len(value["episode_returns"]) - 1
            for episode, label in ((0, "episode 1"), (last, f"episode {last + 1}")):
                per_task = _rl2_per_task(rl2, rl2_key, policy, episode, tasks)
                rows.setdefault(f"RL² {policy}, {label}", {})[split] = pooled(per_task, sign_bounded=True)
        tta = [run[mbrl_key]["tta"]["per_task"] for run in mbrl]
        paired[split] = {
            f"tta - RL² {learner} episode {episode + 1}": paired_pooled(
                tta, _rl2_per_task(rl2, rl2_key, learner, episode, tasks), True
            )
            for episode in sorted({0, len(rl2[0]["rl2"][rl2_key][learner]["episode_returns"]) - 1})
        }
    steps = {
        "model-based": [sum(run["env_steps"].values()) for run in mbrl],
        f"RL² {learner}": [sum(run["env_steps"].values()) for run in rl2],
    }
    return {
        "kind": "comparison",
        "env_name": mbrl[0]["env_name"],
        "seeds": [run["seed"] for run in mbrl],
        "reward": mbrl[0]["config"].get("reward"),
        "rows": rows,
        "paired": paired,
        "env_steps": steps,
        "env_steps_ratio": float(np.mean(steps["model-based"]) / np.mean(steps[f"RL² {learner}"])),
    }


def comparison_markdown(result: dict) -> str:
    """The comparison as markdown: returns over seeds per split, the paired differences, the steps each trained on."""
    splits = [split for split in SPLITS if any(split in row for row in result["rows"].values())]
    seeds = ", ".join(map(str, result["seeds"]))
    lines = [
        f"#### {result['env_name']}: model-based TTA ({result['reward']} reward) against RL², seeds {seeds}",
        "",
        "| method | " + " | ".join(f"{split} return" for split in splits) + " |",
        "|---|" + "---|" * len(splits),
    ]
    for label, row in result["rows"].items():
        cells = [over_seeds_cell(row[split], 1) if split in row else "-" for split in splits]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for split in splits:
        lines += ["", *paired_table(f"paired, {split} tasks", result["paired"][split].items())]
    lines += ["", "| method | environment steps trained on, per seed |", "|---|---|"]
    for method, values in result["env_steps"].items():
        lines.append(f"| {method} | {number(float(np.mean(values)), 0)} |")
    lines += ["", f"The model-based pipeline trained on {number(result['env_steps_ratio'], 3)} of RL²'s steps."]
    return "\n".join(lines) + "\n"


def write_comparison(mbrl_folder: Path, rl2_folder: Path, out_dir: Path) -> dict:
    """comparison.json and comparison.md in `out_dir` from two published results folders, on the seeds both hold.
    The sources are recorded relative to `out_dir`, so the record reads the same on every machine."""
    result = compare(*common_seeds(seed_metrics(mbrl_folder), seed_metrics(rl2_folder)))
    result["sources"] = {
        "mbrl": os.path.relpath(mbrl_folder.resolve(), out_dir.resolve()),
        "rl2": os.path.relpath(rl2_folder.resolve(), out_dir.resolve()),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(result, out_dir / "comparison.json")
    (out_dir / "comparison.md").write_text(comparison_markdown(result))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description="Model-based TTA against RL² on the same tasks, from published runs.")
    parser.add_argument("--mbrl", type=Path, required=True, help="docs/results/<family> of model-based runs")
    parser.add_argument("--rl2", type=Path, required=True, help="docs/results/<family> of RL² runs, the same seeds")
    parser.add_argument("--out", type=Path, required=True, help="where comparison.json and comparison.md go")
    args = parser.parse_args(argv)
    write_comparison(args.mbrl, args.rl2, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
