"""The results at a glance: per published family, whether each claim holds over training runs (seeds).

    python -m pipeline.report.overview --out docs/results/overview.json docs/results/pendulum docs/results/cartpole ...

Three claims, on test tasks and on OOD tasks, each read from a family's summary.json (`pipeline.report.summary`):

    adaptation helps        control_paired / control_ood_paired "tta-no_tta"          higher return is better
    the update helps        control_paired / control_ood_paired "tta-memory_only"     (the weight update over memory)
    MAML beats ERM at k=1   prediction_paired.<split>."maml-erm"."1"                  lower MSE is better

A verdict is "established" when the 95% interval over seeds of the paired difference lies on the better side of
0, "reversed" when it lies on the worse side, "not established" when it contains 0, and "1 seed" when there is
no interval. overview.json (rendered into the README by `python -m pipeline.report --pages`):

    {"kind": "overview", "claims": [{"key", "label"}],
     "rows": [{"folder", "env_name", "protocol", "n_seeds", "cells": {claim: {split: verdict | null}}}]}
    verdict = {"verdict", "mean", "ci95": [lo, hi] | null, "n_seeds"}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core.checkpoint import atomic_write_json
from pipeline.console import OneLineParser
from pipeline.report.markdown import interval, number

SPLITS = ("test", "ood")
CLAIMS = (  # (key, label, where in summary.json per split, the sign of "better")
    ("tta-no_tta", "tta − no_tta", ("control_paired", "control_ood_paired"), 1.0),
    ("tta-memory_only", "tta − memory_only", ("control_paired", "control_ood_paired"), 1.0),
    ("maml-erm", "MAML − ERM MSE, k = 1", ("in_distribution", "ood"), -1.0),
)


def verdict(paired: dict, better: float) -> dict:
    """The verdict of one paired difference (summary.json's entry with "over_seeds") whose better side has the
    sign of `better`."""
    seeds = paired["over_seeds"]
    bounds = seeds["ci95"]
    if bounds is None:
        word = "1 seed"
    elif better * bounds[0] > 0 and better * bounds[1] > 0:
        word = "established"
    elif better * bounds[0] < 0 and better * bounds[1] < 0:
        word = "reversed"
    else:
        word = "not established"
    return {"verdict": word, "mean": seeds["mean"], "ci95": bounds, "n_seeds": seeds["n"]}


def _paired_entry(summary: dict, key: str, places: tuple[str, str], split_index: int) -> dict | None:
    if key == "maml-erm":
        return summary.get("prediction_paired", {}).get(places[split_index], {}).get(key, {}).get("1")
    return summary.get(places[split_index], {}).get(key)


def overview_row(folder: Path) -> dict:
    """One family's row from `folder`/summary.json (ValueError for an RL² summary: it has none of these claims)."""
    summary = json.loads((folder / "summary.json").read_text())
    if "prediction_paired" not in summary:
        raise ValueError(f"{folder}/summary.json is not a model-based run's summary (no prediction_paired)")
    cells = {}
    for key, _, places, better in CLAIMS:
        cells[key] = {}
        for index, split in enumerate(SPLITS):
            entry = _paired_entry(summary, key, places, index)
            cells[key][split] = None if entry is None else verdict(entry, better)
    return {
        "folder": folder.name,
        "env_name": summary["env_name"],
        "protocol": summary.get("protocol", {}).get("name"),
        "n_seeds": summary["n_seeds"],
        "cells": cells,
    }


def build_overview(folders: list[Path]) -> dict:
    return {
        "kind": "overview",
        "claims": [{"key": key, "label": label} for key, label, _, _ in CLAIMS],
        "rows": [overview_row(folder) for folder in folders],
    }


def _cell(value: dict | None, digits: int) -> str:
    if value is None:
        return "-"
    if value["ci95"] is None:
        return f"1 seed ({number(value['mean'], digits)})"
    return f"{value['verdict']}: {number(value['mean'], digits)} {interval(value['ci95'], digits)}"


def overview_markdown(result: dict) -> str:
    """One table: a row per results folder, a column per (claim, split); each cell the verdict, the mean and the
    interval over seeds."""
    header = [f"{claim['label']}, {split}" for claim in result["claims"] for split in SPLITS]
    lines = [
        "| results | environment | seeds | " + " | ".join(header) + " |",
        "|---|---|---|" + "---|" * len(header),
    ]
    for row in result["rows"]:
        cells = [
            _cell(row["cells"][claim["key"]][split], 3 if claim["key"] == "maml-erm" else 1)
            for claim in result["claims"]
            for split in SPLITS
        ]
        lines.append(f"| {row['folder']} | {row['env_name']} | {row['n_seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_overview(folders: list[Path], out: Path) -> dict:
    result = build_overview(folders)
    atomic_write_json(result, out)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description="The published results at a glance, from their summaries.")
    parser.add_argument("folders", type=Path, nargs="+", help="docs/results/<family> folders of model-based runs")
    parser.add_argument("--out", type=Path, required=True, help="overview.json")
    args = parser.parse_args(argv)
    write_overview(args.folders, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
