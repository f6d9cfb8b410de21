"""The results at a glance: each claim's verdict from the interval over seeds, with the side that counts as better."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.report.overview import build_overview, overview_markdown, verdict
from pipeline.report.pages import refresh_page


def paired(mean: float, ci95: list[float] | None, n: int = 3) -> dict:
    return {"over_seeds": {"mean": mean, "ci95": ci95, "n": n}}


@pytest.mark.parametrize(
    ("ci95", "better", "expected"),
    [
        ([2.0, 9.0], 1.0, "established"),
        ([-9.0, -2.0], 1.0, "reversed"),
        ([-2.0, 9.0], 1.0, "not established"),
        ([-9.0, -2.0], -1.0, "established"),  # a lower MSE is better
        ([2.0, 9.0], -1.0, "reversed"),
        (None, 1.0, "1 seed"),
    ],
)
def test_a_verdict_needs_the_whole_interval_over_seeds_on_one_side_of_zero(ci95, better, expected):
    assert verdict(paired(5.0, ci95), better)["verdict"] == expected


def summary(tta_no_tta: list[float], maml_erm: list[float]) -> dict:
    return {
        "env_name": "Pendulum-v1",
        "n_seeds": 3,
        "prediction_paired": {
            "in_distribution": {"maml-erm": {"1": paired(-0.02, maml_erm)}},
            "ood": {"maml-erm": {"1": paired(0.01, [-0.01, 0.03])}},
        },
        "control_paired": {"tta-no_tta": paired(30.0, tta_no_tta), "tta-memory_only": paired(1.0, [-4.0, 6.0])},
        "control_ood_paired": {"tta-no_tta": paired(-20.0, [-30.0, -10.0])},
    }


def test_each_family_row_reads_test_and_ood_claims_from_its_summary(tmp_path):
    folder = tmp_path / "pendulum"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summary([10.0, 50.0], [-0.03, -0.01])))
    row = build_overview([folder])["rows"][0]
    assert row["folder"] == "pendulum" and row["n_seeds"] == 3
    assert row["cells"]["tta-no_tta"]["test"]["verdict"] == "established"
    assert row["cells"]["tta-no_tta"]["ood"]["verdict"] == "reversed"
    assert row["cells"]["tta-memory_only"]["test"]["verdict"] == "not established"
    assert row["cells"]["tta-memory_only"]["ood"] is None  # not in this summary
    assert row["cells"]["maml-erm"]["test"]["verdict"] == "established"
    assert row["cells"]["maml-erm"]["ood"]["verdict"] == "not established"


def test_an_rl2_summary_is_refused_it_has_none_of_the_claims(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"env_name": "PointNavigation-v0", "rl2": {}}))
    with pytest.raises(ValueError, match="not a model-based run's summary"):
        build_overview([tmp_path])


def test_the_overview_renders_into_a_readme_block_by_its_kind(tmp_path):
    folder = tmp_path / "pendulum"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summary([10.0, 50.0], [-0.03, -0.01])))
    (tmp_path / "overview.json").write_text(json.dumps(build_overview([folder])))
    text = "intro\n<!-- results: overview.json -->\nstale\n<!-- end results -->\n"
    refreshed = refresh_page(text, tmp_path)
    assert "stale" not in refreshed
    row = next(line for line in refreshed.splitlines() if line.startswith("| pendulum | Pendulum-v1 | 3 |"))
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
