"""Markdown cells and tables of results: numbers, intervals, values over seeds and paired differences."""

from __future__ import annotations


def number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def interval(bounds: list[float] | None, digits: int) -> str:
    return "-" if bounds is None else f"[{number(bounds[0], digits)}, {number(bounds[1], digits)}]"


def over_seeds_cell(value: dict, digits: int) -> str:
    """'mean [lo, hi]' of the seed means ('mean (1 seed)' without an interval)."""
    seeds = value["over_seeds"]
    if seeds["ci95"] is None:
        return f"{number(seeds['mean'], digits)} (1 seed)"
    return f"{number(seeds['mean'], digits)} {interval(seeds['ci95'], digits)}"


def seeds_won(value: dict) -> str:
    return f"{value['over_seeds']['wins']}/{value['over_seeds']['losses']}"


def paired_table(title: str, rows) -> list[str]:
    lines = [
        f"| {title} | mean [95% CI] over seeds | seeds won/lost | per seed | bootstrap 95% | "
        "pairs: mean [95% CI] (won/lost of n) |",
        "|---|---|---|---|---|---|",
    ]
    for label, value in rows:
        per_seed = ", ".join(number(mean, 1) for mean in value["over_seeds"]["per_seed"])
        won = f"{value['wins']}/{value['losses']} of {value['n']}"
        pairs = f"{number(value['mean'], 1)} {interval(value['ci95'], 1)} ({won})"
        lines.append(
            f"| {label} | {over_seeds_cell(value, 1)} | {seeds_won(value)} | {per_seed} | "
            f"{interval(value['bootstrap_ci95'], 1)} | {pairs} |"
        )
    return lines
