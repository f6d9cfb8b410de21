"""Memory against memory on POPGym's tasks: the table from per-seed metrics of RL² folders, one per (task, memory)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from env_runner.popgym_families import POPGYM_IDS
from experiments.published import MEMORIES, POPGYM_TASKS, RUNS, popgym_folder
from pipeline.config import defaults_for
from pipeline.report.memories import compare_memories, memories_markdown, write_memories
from pipeline.report.pages import refresh_page

ENV = "popgym-RepeatPreviousEasy-v0"
SELECTION = Path(__file__).resolve().parents[1] / "docs" / "selection"


def rl2_run(seed: int, memory: str, mmer: float, test: list[float], parts: list[list[float]] | None = None) -> dict:
    run = {
        "env_name": ENV,
        "seed": seed,
        "algo": "rl2",
        "config": {"rl2_memory": memory},
        "rl2": {
            "in_distribution": {
                memory: {"episode_returns": [{"per_task": test}]},
                "random": {"episode_returns": [{"per_task": [-0.5] * len(test)}]},
            }
        },
        "rl2_mmer": {memory: mmer},
        "rl2_training": {memory: [{"episode_returns": [mmer], "val_returns": [mmer]}]},
        "rl2_parameters": {memory: 100 if memory == "gru" else 80},
        "rl2_throughput": {memory: 1000.0 + seed},
        "env_steps": {"random": 0, "onpolicy": 4000},
    }
    if parts is not None:
        run["rl2_longer_episodes"] = {
            str(len(parts)): {"in_distribution": {memory: {"part_returns": [{"per_task": p} for p in parts]}}}
        }
    return run


def test_each_memory_is_paired_with_the_baseline_on_the_seeds_both_hold():
    ssm = [rl2_run(0, "ssm_complex", 0.5, [0.4, 0.6]), rl2_run(1, "ssm_complex", 0.7, [0.8, 0.8])]
    gru = [rl2_run(1, "gru", 0.2, [0.1, 0.3]), rl2_run(2, "gru", 0.9, [0.9, 0.9])]
    result = compare_memories({"a": ssm, "b": gru}, "gru")
    entry = result["tasks"][ENV]
    paired = entry["paired"]["ssm_complex - gru"]
    assert paired["mmer"]["over_seeds"]["per_seed"] == pytest.approx([0.5])  # seed 1 alone: 0.7 - 0.2
    assert paired["test_return"]["over_seeds"]["per_seed"] == pytest.approx([0.6])  # mean(0.8 - 0.1, 0.8 - 0.3)
    assert entry["memories"]["ssm_complex"]["mmer"]["per_seed"] == [0.5, 0.7]  # each memory's row: all its seeds
    assert entry["memories"]["gru"]["parameters"] == 100 and entry["memories"]["gru"]["env_steps"] == 4000
    markdown = memories_markdown(result)
    assert f"| {ENV} | ssm_complex | 2 | 0.600 [" in markdown
    assert f"| {ENV}: ssm_complex - gru | 0.500 (1 seed) | too few seeds (1) |" in markdown
    assert entry["memories"]["gru"]["random_return"]["per_seed"] == [-0.5, -0.5]
    assert entry["memories"]["gru"]["collapsed"] == []  # one val measurement: nothing to fall from


def test_longer_episodes_give_each_memory_its_last_part_minus_its_first():
    runs = [rl2_run(s, "gru", 0.1, [0.0], parts=[[0.2, 0.4], [0.5, 0.5]]) for s in range(2)]
    longer = compare_memories({"g": runs}, "gru")["tasks"][ENV]["longer_episodes"]["2"]["gru"]
    assert longer["over_seeds"]["per_seed"] == pytest.approx([0.2, 0.2])
    assert "gru, episodes 2x as long, last part - first" in memories_markdown(compare_memories({"g": runs}, "gru"))


def test_folders_that_cannot_be_compared_are_refused():
    gru = [rl2_run(0, "gru", 0.2, [0.1])]
    with pytest.raises(ValueError, match="no gru folder to pair"):
        compare_memories({"a": [rl2_run(0, "ssm", 0.5, [0.4])]}, "gru")
    with pytest.raises(ValueError, match="two folders hold gru runs"):
        compare_memories({"a": gru, "b": gru}, "gru")
    with pytest.raises(ValueError, match="share no seed"):
        compare_memories({"a": [rl2_run(3, "ssm", 0.5, [0.4])], "b": gru}, "gru")
    model_based = {**gru[0], "algo": None}
    with pytest.raises(ValueError, match="RL² runs of one memory each"):
        compare_memories({"a": [model_based]}, "gru")


def test_the_docs_block_of_a_memory_comparison_renders_its_markdown(tmp_path):
    for name, run in (("s", rl2_run(0, "ssm_complex", 0.5, [0.4])), ("g", rl2_run(0, "gru", 0.2, [0.1]))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "seed_0_metrics.json").write_text(json.dumps(run))
    result = write_memories([tmp_path / "s", tmp_path / "g"], "gru", tmp_path / "out")
    assert result["sources"] == ["../s", "../g"]
    text = "<!-- results: out/memories.json -->\nold\n<!-- end results -->"
    assert memories_markdown(result) in refresh_page(text, tmp_path)


def test_the_published_popgym_folders_are_every_task_with_each_memory_at_equal_steps():
    assert popgym_folder("RepeatPreviousHard", "ssm_complex") == "popgym_ssm_complex_repeat_previous_hard"
    folders = {entry.folder: entry for entry in RUNS}
    assert set(MEMORIES[0].runs) <= set(folders) and len(MEMORIES[0].runs) == 2 * len(POPGYM_TASKS)
    for task in POPGYM_TASKS:  # no flag changes the family's iterations: both memories train its steps
        for memory in ("ssm_complex", "gru"):
            assert "--rl2.iterations" not in folders[popgym_folder(task, memory)].flags


def test_each_popgym_familys_iterations_are_what_the_measured_gru_fits():
    rows = [
        row
        for name in ("popgym_throughput.json", "popgym_throughput_others.json")
        for row in json.loads((SELECTION / name).read_text())["rows"]
        if row["memory"] == "gru"
    ]
    assert sorted(row["env_name"] for row in rows) == sorted(POPGYM_IDS)
    for row in rows:
        assert defaults_for(row["env_name"]).rl2.iterations == row["iterations_for"], row["env_name"]


def test_a_memory_row_names_the_seeds_whose_training_collapsed():
    fell = rl2_run(1, "ssm_complex", 0.5, [0.1])
    vals = (-0.5, 0.5, -0.5, -0.5)  # rose, fell and stayed down
    fell["rl2_training"]["ssm_complex"] = [{"episode_returns": [0.0], "val_returns": [v]} for v in vals]
    runs = [rl2_run(0, "ssm_complex", 0.5, [0.4]), fell]
    result = compare_memories({"s": runs, "g": [rl2_run(s, "gru", 0.2, [0.1]) for s in (0, 1)]}, "gru")
    assert result["tasks"][ENV]["memories"]["ssm_complex"]["collapsed"] == [1]
    assert f"| {ENV} | ssm_complex | 2 | 0.500 [0.500, 0.500] |" in memories_markdown(result)
    assert "| -0.500 [-0.500, -0.500] | 1 |" in memories_markdown(result)
