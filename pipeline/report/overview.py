"""The results at a glance: per published family, whether each claim holds over training runs (seeds).

    python -m pipeline.report.overview --out docs/results/overview.json docs/results/pendulum docs/results/cartpole ...

Three claims, on test tasks and on OOD tasks, each read from a family's summary.json (`pipeline.report.summary`):

    adaptation helps        control_paired / control_ood_paired "tta-no_tta"          higher return is better
    the update helps        control_paired / control_ood_paired "tta-memory_only"     (the weight update over memory)
    MAML beats ERM at k=1   prediction_paired.<split>."maml/erm"."1"                  a MSE ratio below 1 is better

A published protocol's OOD control cells are its mean over test settings, as its tables give it. Every cell of the
table is one claim, and the table is one family of claims for `pipeline.report.verdicts`: the
verdict needs 5 seeds, the t and bootstrap intervals over seeds on one side, and Holm's correction over all the
table's cells. overview.json (rendered into the README by `python -m pipeline.report --pages`):

    {"kind": "overview", "claims": [{"key", "label"}],
     "rows": [{"folder", "env_name", "protocol", "n_seeds", "cells": {claim: {split: verdict | null}}}]}
    verdict = `pipeline.report.verdicts.verdicts`' entry: {"verdict", "mean", "ci95", "bootstrap_ci95", "p",
              "p_holm", "n_seeds"}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core.checkpoint import atomic_write_json
from pipeline.console import OneLineParser
from pipeline.report.markdown import interval, number
from pipeline.report.verdicts import MIN_SEEDS, verdicts

SPLITS = ("test", "ood")
CLAIMS = (  # (key, label, where in summary.json per split, the sign of "better")
    ("tta-no_tta", "tta − no_tta", ("control_paired", "control_ood_paired"), 1.0),
    ("tta-memory_only", "tta − memory_only", ("control_paired", "control_ood_paired"), 1.0),
    ("maml/erm", "MAML / ERM MSE, k = 1", ("in_distribution", "ood"), -1.0),
)


def _paired_entry(summary: dict, key: str, places: tuple[str, str], split_index: int) -> dict | None:
    """The claim's paired entry in `summary`; a published protocol's OOD control claims average as the protocol
    does, over its test settings (`setting_mean_paired`), as its own table on the family's page does."""
    if key == "maml/erm":
        return summary.get("prediction_paired", {}).get(places[split_index], {}).get(key, {}).get("1")
    if SPLITS[split_index] == "ood" and "protocol" in summary:
        return summary["protocol"]["setting_mean_paired"].get(key)
    return summary.get(places[split_index], {}).get(key)


def _summary(folder: Path) -> dict:
    """`folder`/summary.json (ValueError for an RL² summary: it has none of the claims)."""
    summary = json.loads((folder / "summary.json").read_text())
    if "prediction_paired" not in summary:
        raise ValueError(f"{folder}/summary.json is not a model-based run's summary (no prediction_paired)")
    return summary


def build_overview(folders: list[Path]) -> dict:
    """A row per folder; every cell's verdict decided with the whole table's claims (Holm over all of them)."""
    summaries = [_summary(folder) for folder in folders]
    places = [
        (row, key, split, entry, better)
        for row, summary in enumerate(summaries)
        for key, _, where, better in CLAIMS
        for index, split in enumerate(SPLITS)
        for entry in [_paired_entry(summary, key, where, index)]
    ]
    claims = [(entry, better) for _, _, _, entry, better in places if entry is not None]
    decided = iter(verdicts(claims))
    rows = [
        {
            "folder": folder.name,
            "env_name": summary["env_name"],
            "protocol": summary.get("protocol", {}).get("name"),
            "n_seeds": summary["n_seeds"],
            "cells": {key: {} for key, *_ in CLAIMS},
        }
        for folder, summary in zip(folders, summaries, strict=True)
    ]
    for row, key, split, entry, _ in places:
        rows[row]["cells"][key][split] = None if entry is None else next(decided)
    return {
        "kind": "overview",
        "claims": [{"key": key, "label": label} for key, label, _, _ in CLAIMS],
        "min_seeds": MIN_SEEDS,
        "rows": rows,
    }


def _cell(value: dict | None, digits: int) -> str:
    if value is None:
        return "-"
    figures = f"{number(value['mean'], digits)} {interval(value['ci95'], digits)}"
    if value["verdict"] == "too few seeds":
        return f"too few seeds ({value['n_seeds']}): {figures}"
    return f"{value['verdict']}: {figures} (p {number(value['p'], 3)}, Holm {number(value['p_holm'], 3)})"


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
            _cell(row["cells"][claim["key"]][split], 3 if claim["key"] == "maml/erm" else 1)
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
