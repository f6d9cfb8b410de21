"""Memory against memory on POPGym's tasks: one table from published RL² folders, a folder per (task, memory).

    python -m pipeline.report.memories --folders docs/results/popgym_gru_repeat_previous_easy \
        docs/results/popgym_ssm_complex_repeat_previous_easy ... --baseline gru --out docs/results/popgym_memories

Per task and memory, over the seeds: POPGym's MMER (the max over training iterations of the mean episodic return),
the test episodes' return of the evaluated iterate (the best on val), training throughput (environment steps per
second, one thread), the parameter count and the environment steps trained on. Every other memory is paired with
`--baseline` on the seeds both hold (MMER per seed; test returns per (seed, episode): both policies meet the same
resets), each table's claims with their verdicts (`pipeline.report.verdicts`). Where the runs played test episodes
longer than training's (`--rl2.longer_episodes`), each memory's last part minus its first is a claim of its own.

memories.json: {"kind": "memories", "baseline", "tasks": {env_name: {"memories": {memory: {"seeds", "mmer",
"test_return", "random_return" (the random policy's, in the same runs), "collapsed" (the seeds whose training
collapsed, `meta_rl.rl2.collapsed`: the val-best iterate is the one evaluated), "throughput", "parameters",
"env_steps"}},
"paired": {"<memory> - <baseline>": {"mmer", "test_return"}}, "longer_episodes": {N: {memory: paired last-first}}}},
"sources": [folders relative to --out]}
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from core.checkpoint import atomic_write_json
from meta_rl.rl2 import collapsed
from pipeline.console import OneLineParser
from pipeline.report.markdown import number, over_seeds_cell, paired_table
from pipeline.report.statistics import over_seeds, paired_pooled, pooled
from pipeline.report.summary import seed_metrics


def _memory(runs: list[dict]) -> str:
    """The one memory a folder's runs trained (ValueError for model-based runs or a mix)."""
    memories = {run["config"]["rl2_memory"] if run.get("algo") == "rl2" else None for run in runs}
    if None in memories or len(memories) != 1:
        raise ValueError(f"a memory comparison reads folders of RL² runs of one memory each, got {sorted(memories)}")
    return memories.pop()


def _test_returns(run: dict, policy: str) -> list[float]:
    return run["rl2"]["in_distribution"][policy]["episode_returns"][0]["per_task"]


def _memory_row(runs: list[dict], memory: str) -> dict:
    throughput = [run["rl2_throughput"][memory] for run in runs if run["rl2_throughput"] is not None]
    return {
        "seeds": [run["seed"] for run in runs],
        "mmer": over_seeds([[run["rl2_mmer"][memory]] for run in runs]),
        "test_return": pooled([_test_returns(run, memory) for run in runs], sign_bounded=True),
        "random_return": pooled([_test_returns(run, "random") for run in runs], sign_bounded=True),
        "collapsed": [run["seed"] for run in runs if collapsed(run["rl2_training"][memory])],
        "throughput": over_seeds([[value] for value in throughput]) if throughput else None,
        "parameters": runs[0]["rl2_parameters"][memory],
        "env_steps": float(np.mean([run["env_steps"]["onpolicy"] for run in runs])),
    }


def _paired(runs: list[dict], memory: str, base_runs: list[dict], baseline: str) -> dict:
    """`memory` minus `baseline` on the seeds both hold (ValueError when they share none)."""
    by_seed = {run["seed"]: run for run in base_runs}
    ours = [run for run in runs if run["seed"] in by_seed]
    if not ours:
        raise ValueError(f"{runs[0]['env_name']}: {memory} and {baseline} share no seed")
    theirs = [by_seed[run["seed"]] for run in ours]
    return {
        "mmer": paired_pooled(
            [[run["rl2_mmer"][memory]] for run in ours], [[run["rl2_mmer"][baseline]] for run in theirs], True
        ),
        "test_return": paired_pooled(
            [_test_returns(run, memory) for run in ours], [_test_returns(run, baseline) for run in theirs], True
        ),
    }


def _longer_episodes(runs: list[dict], memory: str) -> dict:
    """Per factor N: the last part minus the first of the test episodes N times as long, paired per (seed, task)."""
    result = {}
    for factor in runs[0].get("rl2_longer_episodes", {}):
        parts = [[run["rl2_longer_episodes"][factor]["in_distribution"][memory]["part_returns"][p]["per_task"]
                  for run in runs] for p in range(int(factor))]  # fmt: skip
        result[factor] = paired_pooled(parts[-1], parts[0], True)
    return result


def compare_memories(folders: dict[str, list[dict]], baseline: str) -> dict:
    """The comparison (see the module docstring) of per-seed metrics, {folder: runs}."""
    tasks: dict[str, dict[str, list[dict]]] = {}
    for runs in folders.values():
        memory = _memory(runs)
        by_memory = tasks.setdefault(runs[0]["env_name"], {})
        if memory in by_memory:
            raise ValueError(f"two folders hold {memory} runs of {runs[0]['env_name']}")
        by_memory[memory] = runs
    result: dict = {"kind": "memories", "baseline": baseline, "tasks": {}}
    for env_name, by_memory in tasks.items():
        if baseline not in by_memory:
            raise ValueError(f"{env_name}: no {baseline} folder to pair the other memories with")
        entry = {
            "memories": {memory: _memory_row(runs, memory) for memory, runs in by_memory.items()},
            "paired": {
                f"{memory} - {baseline}": _paired(runs, memory, by_memory[baseline], baseline)
                for memory, runs in by_memory.items()
                if memory != baseline
            },
        }
        longer: dict = {}
        for memory, runs in by_memory.items():
            for factor, claim in _longer_episodes(runs, memory).items():
                longer.setdefault(factor, {})[memory] = claim
        if longer:
            entry["longer_episodes"] = longer
        result["tasks"][env_name] = entry
    return result


def memories_markdown(result: dict) -> str:
    """The comparison as markdown: one row per (task, memory), then the paired claims of every task in one table
    per measure (Holm over the table's claims), then the longer episodes' claims."""
    lines = [
        "| task | memory | seeds | MMER | test return | random's test return | collapsed (seeds) | "
        "steps/s (one thread) | parameters | environment steps |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for env_name, entry in result["tasks"].items():
        for memory, row in entry["memories"].items():
            speed = over_seeds_cell({"over_seeds": row["throughput"]}, 0) if row["throughput"] else "-"
            lines.append(
                f"| {env_name} | {memory} | {len(row['seeds'])} | {over_seeds_cell({'over_seeds': row['mmer']}, 3)} | "
                f"{over_seeds_cell(row['test_return'], 3)} | {over_seeds_cell(row['random_return'], 3)} | "
                f"{', '.join(map(str, row['collapsed'])) or 'none'} | {speed} | "
                f"{row['parameters']:,} | {number(row['env_steps'] / 1e6, 2)}M |"
            )
    for measure, title in (("mmer", "MMER"), ("test_return", "test return")):
        claims = [
            (f"{env_name}: {pair}", value[measure])
            for env_name, entry in result["tasks"].items()
            for pair, value in entry["paired"].items()
        ]
        if claims:
            lines += ["", *paired_table(f"{title}, paired", claims, digits=3)]
    longer = [
        (f"{env_name}: {memory}, episodes {factor}x as long, last part - first", claim)
        for env_name, entry in result["tasks"].items()
        for factor, memories in entry.get("longer_episodes", {}).items()
        for memory, claim in memories.items()
    ]
    if longer:
        lines += ["", *paired_table("length generalisation", longer, digits=3)]
    return "\n".join(lines) + "\n"


def write_memories(folders: list[Path], baseline: str, out_dir: Path) -> dict:
    """memories.json and memories.md in `out_dir` from published results folders; the sources are recorded relative
    to `out_dir`, so the record reads the same on every machine."""
    result = compare_memories({str(folder): seed_metrics(folder) for folder in folders}, baseline)
    result["sources"] = [os.path.relpath(folder.resolve(), out_dir.resolve()) for folder in folders]
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(result, out_dir / "memories.json")
    (out_dir / "memories.md").write_text(memories_markdown(result))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description="Memory against memory on POPGym's tasks, from published RL² runs.")
    parser.add_argument("--folders", type=Path, nargs="+", required=True, help="docs/results/<folder> of RL² runs")
    parser.add_argument("--baseline", default="gru", help="the memory every other one is paired with")
    parser.add_argument("--out", type=Path, required=True, help="where memories.json and memories.md go")
    args = parser.parse_args(argv)
    write_memories(args.folders, args.baseline, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
