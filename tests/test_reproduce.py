"""experiments/reproduce.py: every published folder regenerated, resumed and published from one commit's runs."""

from __future__ import annotations

import json
import shutil

import pytest

from experiments import reproduce
from experiments.published import COMPARISONS, FOLDERS, MEMORIES, PROGRAMS, RUNS, popgym_folder
from pipeline import cli

README = """# results
<!-- results: results/overview.json -->
<!-- end results -->
<!-- results: results/pointnav_learned/summary.json -->
<!-- end results -->
<!-- results: results/tta_vs_rl2_pointnav/comparison.json -->
<!-- end results -->
"""


def chain_flags(root) -> list[str]:
    return ["--quick", "--runs", str(root / "runs"), "--results", str(root / "results"),
            "--pages", str(root), "--no_progress"]  # fmt: skip


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The quick chain over the PointNavigation comparison and its sample cost, once for this module."""
    root = tmp_path_factory.mktemp("reproduce")
    (root / "README.md").write_text(README)
    stale = root / "results" / "pointnav_learned" / "seed_7_metrics.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    record = reproduce.main([*chain_flags(root), "--only", "tta_vs_rl2_pointnav", "sample_cost_pointnav"])
    return root, record


def test_the_quick_chain_publishes_runs_summaries_comparison_program_overview_and_readme(chain):
    root, record = chain
    results = root / "results"
    for folder in ("pointnav_learned", "rl2_pointnav"):
        assert sorted(path.name for path in (results / folder).glob("seed_*")) == [
            "seed_0_metrics.json",
            "seed_1_metrics.json",
        ]  # the earlier seed_7 file is gone
        assert json.loads((results / folder / "summary.json").read_text())["seeds"] == [0, 1]
        assert record["folders"][folder]["seeds"] == 2 and record["folders"][folder]["machine_s"] > 0
    assert json.loads((results / "tta_vs_rl2_pointnav" / "comparison.json").read_text())["seeds"] == [0, 1]
    assert (results / "sample_cost_pointnav" / "sample_cost.png").is_file()
    overview = json.loads((results / "overview.json").read_text())
    assert [row["folder"] for row in overview["rows"]] == ["pointnav_learned"]  # RL² has none of its claims
    readme = (root / "README.md").read_text()
    assert "| pointnav_learned | PointNavigation-v0 | 2 |" in readme
    assert "model-based TTA (learned reward) against RL², seeds 0, 1" in readme
    assert record["machine_s"] == pytest.approx(sum(folder["machine_s"] for folder in record["folders"].values()))


def test_each_run_records_the_main_py_command_that_reruns_it_and_gives_its_numbers(chain, tmp_path):
    root, _ = chain
    published = json.loads((root / "results" / "pointnav_learned" / "seed_1_metrics.json").read_text())
    argv = published["provenance"]["argv"]
    assert argv == ["main.py", "--env_name", "PointNavigation-v0", "--seed", "1", "--quick", "--threads", "1"]
    cli.main([*argv[1:], "--no_progress", "--out_dir", str(tmp_path / "alone")])
    rerun = json.loads((tmp_path / "alone" / "metrics.json").read_text())
    assert rerun["control"] == published["control"]
    assert rerun["prediction"] == published["prediction"]


def test_a_second_call_reads_finished_runs_back_and_runs_nothing(chain, monkeypatch):
    root, first = chain

    def no_run(*args, **kwargs):
        raise AssertionError("a finished seed was run again")

    monkeypatch.setattr(reproduce, "run", no_run)
    monkeypatch.setattr("experiments.sample_cost.main", no_run)
    again = reproduce.main([*chain_flags(root), "--only", "tta_vs_rl2_pointnav", "sample_cost_pointnav"])
    assert again["folders"] == first["folders"]


def test_runs_of_another_commit_are_not_continued(chain, tmp_path, capsys):
    root, _ = chain
    shutil.copytree(root / "runs", tmp_path / "runs")
    (tmp_path / "runs" / "reproduce.json").write_text(json.dumps({"commit": "0" * 40}))
    (tmp_path / "README.md").write_text(README)
    with pytest.raises(SystemExit):
        reproduce.main([*chain_flags(tmp_path), "--only", "pointnav_learned"])
    error = capsys.readouterr().err
    assert f"holds runs of commit {'0' * 40}" in error and "git worktree add" in error


def test_a_failed_seed_does_not_stop_the_others_and_what_finished_is_published(chain, tmp_path, monkeypatch):
    root, _ = chain
    shutil.copytree(root / "runs", tmp_path / "runs")
    shutil.rmtree(tmp_path / "runs" / "rl2_pointnav" / "seed_1")
    (tmp_path / "README.md").write_text(README)

    def failing_run(*args, **kwargs):
        raise RuntimeError("the simulator crashed")

    monkeypatch.setattr(reproduce, "run", failing_run)
    with pytest.raises(RuntimeError, match="1 of 4 runs failed \\(rl2_pointnav seed 1: RuntimeError: the simulator"):
        reproduce.main([*chain_flags(tmp_path), "--only", "tta_vs_rl2_pointnav"])
    assert (tmp_path / "results" / "pointnav_learned" / "summary.json").is_file()
    assert not (tmp_path / "results" / "rl2_pointnav").exists()
    assert not (tmp_path / "results" / "tta_vs_rl2_pointnav").exists()
    assert (tmp_path / "README.md").read_text() == README  # regenerated by a call that succeeds


def test_a_comparison_is_not_drawn_against_a_folder_published_from_other_code(chain, tmp_path, monkeypatch):
    root, _ = chain
    shutil.copytree(root / "runs", tmp_path / "runs")
    shutil.rmtree(tmp_path / "runs" / "rl2_pointnav" / "seed_1")
    shutil.copytree(root / "results", tmp_path / "results")
    shutil.rmtree(tmp_path / "results" / "tta_vs_rl2_pointnav")
    record_path = tmp_path / "results" / "reproduce.json"
    record = json.loads(record_path.read_text())
    record["folders"]["rl2_pointnav"]["commit"] = "0" * 40  # published earlier, from other code
    record_path.write_text(json.dumps(record))
    (tmp_path / "README.md").write_text(README)
    monkeypatch.setattr(reproduce, "run", lambda *args, **kwargs: 1 / 0)
    with pytest.raises(RuntimeError, match="1 of 2 runs failed"):  # pointnav_learned is published from this code
        reproduce.main([*chain_flags(tmp_path), "--only", "tta_vs_rl2_pointnav"])
    assert (tmp_path / "results" / "rl2_pointnav" / "summary.json").is_file()
    assert not (tmp_path / "results" / "tta_vs_rl2_pointnav").exists()


def test_runs_that_cannot_be_pooled_leave_the_published_folder_as_it_was(chain, tmp_path):
    root, _ = chain
    entry = next(entry for entry in RUNS if entry.folder == "pointnav_learned")
    paths = []
    for seed in (0, 1):
        run = json.loads((root / "runs" / entry.folder / f"seed_{seed}" / "metrics.json").read_text())
        run["config"]["num_epochs"] += seed  # seed 1 trained otherwise: not one config
        paths.append(tmp_path / f"metrics_{seed}.json")
        paths[-1].write_text(json.dumps(run))
    results = tmp_path / "results"
    shutil.copytree(root / "results" / entry.folder, results / entry.folder)
    before = {path.name: path.read_bytes() for path in (results / entry.folder).iterdir()}
    with pytest.raises(ValueError, match="cannot pool seed 1 with seed 0"):
        reproduce.publish_runs(entry, paths, results)
    assert {path.name: path.read_bytes() for path in (results / entry.folder).iterdir()} == before


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--quick"], "--quick would replace the published results"),
        (["--quick", "--results", "x", "--only", "pendulum", "tetris"], "unknown folders ['tetris']"),
        (["--quick", "--results", "x", "--seeds", "0"], "--seeds must be >= 1"),
        (["--quick", "--results", "x", "--pages", "missing"], "--pages missing is not a checkout"),
    ],
)
def test_bad_requests_are_refused_before_any_run(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        reproduce.main([*flags, "--runs", str(tmp_path / "runs")])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_what_a_folder_needs_is_regenerated_with_it_unless_already_published_from_this_commit():
    assert reproduce.selection(["tta_vs_rl2_halfcheetah_vel"], set()) == [
        "halfcheetah_vel",
        "rl2_halfcheetah_vel",
        "tta_vs_rl2_halfcheetah_vel",
    ]
    assert reproduce.selection(["tta_vs_rl2_halfcheetah_vel"], {"halfcheetah_vel"}) == [
        "rl2_halfcheetah_vel",
        "tta_vs_rl2_halfcheetah_vel",
    ]
    assert reproduce.selection(["sample_cost_pointnav"], set()) == ["rl2_pointnav", "sample_cost_pointnav"]
    assert reproduce.selection(["sample_cost_pointnav"], {"rl2_pointnav"}) == ["sample_cost_pointnav"]
    # a compute sweep reads its runs' checkpoints, which only --runs holds: they come along even when published
    assert reproduce.selection(["compute_sweep"], {"pendulum"}) == ["pendulum", "compute_sweep"]
    assert reproduce.selection(None, set()) == list(FOLDERS)
    memories = MEMORIES[0]
    assert reproduce.selection([memories.folder], set(memories.runs[2:])) == [*memories.runs[:2], memories.folder]


def test_every_published_folder_is_named_once_and_every_program_needs_published_runs():
    names = [entry.folder for entry in (*RUNS, *PROGRAMS, *COMPARISONS, *MEMORIES)]
    assert len(names) == len(set(names))
    runs = {entry.folder for entry in RUNS}
    assert all({*program.needs_runs, *program.needs_published} <= runs for program in PROGRAMS)
    assert all(f"{{runs}}/{name}" in " ".join(program.flags) for program in PROGRAMS for name in program.needs_runs)
    assert all(
        f"{{results}}/{name}" in " ".join(program.flags) for program in PROGRAMS for name in program.needs_published
    )
    assert all({comparison.mbrl, comparison.rl2} <= runs for comparison in COMPARISONS)
    assert all(set(memories.runs) <= runs for memories in MEMORIES)


def test_quick_values_replace_a_flags_values_up_to_the_next_flag():
    flags = ["--env_name", "X", "--seeds", "0", "1", "2", "--out", "o"]
    assert reproduce.with_flag_values(flags, "--seeds", ("0",)) == ["--env_name", "X", "--seeds", "0", "--out", "o"]
    assert reproduce.with_flag_values(["--seeds", "4", "5"], "--seeds", ("0",)) == ["--seeds", "0"]


def test_the_memory_comparison_is_drawn_over_the_popgym_tasks_whose_baseline_is_published(tmp_path):
    pytest.importorskip("popgym")
    gru, ssm = (popgym_folder("RepeatPreviousEasy", memory) for memory in ("gru", "ssm_complex"))
    (tmp_path / "README.md").write_text("# results\n")
    reproduce.main([*chain_flags(tmp_path), "--only", ssm, "--seeds", "1"])
    reproduce.main([*chain_flags(tmp_path), "--only", "popgym_memories", "--publish_only"])
    assert not (tmp_path / "results" / "popgym_memories").exists()  # the SSM's folder alone: no GRU to pair with
    reproduce.main([*chain_flags(tmp_path), "--only", gru, "--seeds", "1"])
    block = "<!-- results: results/popgym_memories/memories.json -->\n<!-- end results -->\n"
    (tmp_path / "README.md").write_text(block)
    reproduce.main([*chain_flags(tmp_path), "--only", "popgym_memories", "--publish_only"])
    drawn = json.loads((tmp_path / "results" / "popgym_memories" / "memories.json").read_text())
    assert drawn["sources"] == [f"../{gru}", f"../{ssm}"]
    assert list(drawn["tasks"]) == ["popgym-RepeatPreviousEasy-v0"]
    assert list(drawn["tasks"]["popgym-RepeatPreviousEasy-v0"]["paired"]) == ["ssm_complex - gru"]
    assert "| popgym-RepeatPreviousEasy-v0 | ssm_complex | 1 |" in (tmp_path / "README.md").read_text()
