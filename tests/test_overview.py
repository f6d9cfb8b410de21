"""The results at a glance: every cell a claim of one table, decided by `pipeline.report.verdicts`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.report.overview import build_overview, overview_markdown
from pipeline.report.pages import refresh_page


def paired(mean: float, ci95: list[float] | None, n: int = 5, scale: str | None = None) -> dict:
    """A claim whose seeds are consistent with `ci95` (per-seed values spread around `mean`) and whose bootstrap
    interval is the t interval."""
    spread = 0.0 if ci95 is None else (ci95[1] - ci95[0]) / 4
    per_seed = [mean + spread * (i - (n - 1) / 2) / max(1, (n - 1) / 2) for i in range(n)]
    claim = {"over_seeds": {"mean": mean, "ci95": ci95, "n": n, "per_seed": per_seed}, "bootstrap_ci95": ci95}
    return claim | ({"scale": scale} if scale else {})


def summary(tta_no_tta: list[float], maml_erm: list[float]) -> dict:
    return {
        "env_name": "Pendulum-v1",
        "n_seeds": 5,
        "prediction_paired": {
            "in_distribution": {"maml/erm": {"1": paired(0.8, maml_erm, scale="ratio")}},
            "ood": {"maml/erm": {"1": paired(1.01, [0.9, 1.1], scale="ratio")}},
        },
        "control_paired": {"tta-no_tta": paired(30.0, tta_no_tta), "tta-memory_only": paired(1.0, [-4.0, 6.0])},
        "control_ood_paired": {"tta-no_tta": paired(-20.0, [-30.0, -10.0])},
    }


def test_each_family_row_reads_test_and_ood_claims_from_its_summary(tmp_path):
    folder = tmp_path / "pendulum"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summary([10.0, 50.0], [0.7, 0.9])))
    row = build_overview([folder])["rows"][0]
    assert row["folder"] == "pendulum" and row["n_seeds"] == 5
    assert row["cells"]["tta-no_tta"]["test"]["verdict"] == "established"
    assert row["cells"]["tta-no_tta"]["ood"]["verdict"] == "reversed"
    assert row["cells"]["tta-memory_only"]["test"]["verdict"] == "not established"
    assert row["cells"]["tta-memory_only"]["ood"] is None  # not in this summary
    assert row["cells"]["maml/erm"]["test"]["verdict"] == "established"
    assert row["cells"]["maml/erm"]["ood"]["verdict"] == "not established"


def test_holm_runs_over_the_whole_table_so_a_claim_can_lose_its_verdict_to_the_other_rows(tmp_path):
    folders = []
    for name, effect in (("a", [10.0, 50.0]), ("b", [0.5, 60.0])):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps(summary(effect, [0.7, 0.9])))
        folders.append(folder)
    alone = build_overview(folders[1:])["rows"][0]["cells"]["tta-no_tta"]["test"]
    together = build_overview(folders)["rows"][1]["cells"]["tta-no_tta"]["test"]
    assert alone["p"] == together["p"] and together["p_holm"] > alone["p_holm"]
    assert together["verdict"] == ("established" if together["p_holm"] < 0.05 else "not established")


def test_a_published_protocols_ood_cells_average_over_its_test_settings_as_its_own_table_does(tmp_path):
    folder = tmp_path / "cadm_ant"
    folder.mkdir()
    protocol = summary([10.0, 50.0], [0.7, 0.9]) | {
        "protocol": {"name": "cadm", "setting_mean_paired": {"tta-no_tta": paired(13.2, [5.0, 21.0])}}
    }
    (folder / "summary.json").write_text(json.dumps(protocol))
    cells = build_overview([folder])["rows"][0]["cells"]
    assert cells["tta-no_tta"]["ood"]["mean"] == 13.2  # not the mean over tasks, -20.0
    assert cells["tta-no_tta"]["test"]["mean"] == 30.0 and cells["tta-memory_only"]["ood"] is None


def test_an_rl2_summary_is_refused_it_has_none_of_the_claims(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"env_name": "PointNavigation-v0", "rl2": {}}))
    with pytest.raises(ValueError, match="not a model-based run's summary"):
        build_overview([tmp_path])


def test_the_overview_renders_into_a_readme_block_by_its_kind(tmp_path):
    folder = tmp_path / "pendulum"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summary([10.0, 50.0], [0.7, 0.9])))
    (tmp_path / "overview.json").write_text(json.dumps(build_overview([folder])))
    text = "intro\n<!-- results: overview.json -->\nstale\n<!-- end results -->\n"
    refreshed = refresh_page(text, tmp_path)
    assert "stale" not in refreshed
    row = next(line for line in refreshed.splitlines() if line.startswith("| pendulum | Pendulum-v1 | 5 |"))
    assert "established: 30.0 [10.0, 50.0]" in row and "reversed: -20.0 [-30.0, -10.0]" in row
    assert overview_markdown(build_overview([folder])) in refreshed


def test_the_committed_overview_is_recomputed_from_the_committed_summaries():
    from experiments.published import RUNS

    results = Path(__file__).resolve().parents[1] / "docs" / "results"
    committed = json.loads((results / "overview.json").read_text())
    model_based = [entry.folder for entry in RUNS if "--algo" not in entry.flags]
    assert [row["folder"] for row in committed["rows"]] == [
        name for name in model_based if (results / name / "summary.json").is_file()
    ]
    recomputed = build_overview([results / row["folder"] for row in committed["rows"]])
    hint = "run: python -m pipeline.report.overview --out docs/results/overview.json <its folders>"
    assert json.loads(json.dumps(recomputed)) == committed, hint
