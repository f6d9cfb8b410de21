"""pipeline.report.pages and its command line: blocks and quoted values rendered from JSON, and summaries recomputed
from either layout of per-seed metrics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline.report.__main__ import main
from pipeline.report.pages import format_value, pages, refresh_page

ROOT = Path(__file__).resolve().parents[1]
PAIRED = {"mean": 153.46, "ci95": [75.81, 231.27], "per_seed": [1.0, 2.0], "wins": 8}


def value(keys: str, spec: str, text: str = "") -> str:
    return f"<!-- value: results/x.json {keys} {spec} -->{text}<!-- end value -->"


@pytest.fixture
def root(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "x.json").write_text(json.dumps({"paired": PAIRED, "name": "cem", "rows": [{"n": 10}]}))
    return tmp_path


@pytest.mark.parametrize(
    ("keys", "spec", "expected"),
    [
        ("paired", "+interval:1", "+153.5 [75.8, 231.3]"),
        ("paired", "interval:2", "153.46 [75.81, 231.27]"),
        ("paired/mean", "number:0", "153"),
        ("paired/per_seed/1", "+number:1", "+2.0"),
        ("paired/wins", "integer", "8"),
        ("rows/0/n", "integer", "10"),
        ("name", "text", "cem"),
    ],
)
def test_a_value_marker_is_filled_from_the_json_it_names(root, keys, spec, expected):
    sentence = f"On test tasks the gain is {value(keys, spec, 'stale')} over seeds."
    assert refresh_page(sentence, root) == f"On test tasks the gain is {value(keys, spec, expected)} over seeds."


def test_a_page_whose_number_drifted_is_not_its_own_rendering(root):
    rendered = refresh_page(value("paired", "interval:1"), root)
    drifted = rendered.replace("75.8", "75.9")
    assert refresh_page(rendered, root) == rendered and refresh_page(drifted, root) == rendered


def test_an_interval_without_bounds_says_one_seed():
    assert format_value({"mean": -1.25, "ci95": None}, "interval:1") == "-1.2 (1 seed)"


@pytest.mark.parametrize(
    ("keys", "spec", "message"),
    [
        ("paired/over_seeds", "number:1", "no entry 'over_seeds'"),
        ("rows/3/n", "integer", "no entry '3'"),
        ("paired", "percent:1", "unknown format 'percent:1'"),
        ("name", "number:1", "'cem' cannot be written as 'number:1'"),
    ],
)
def test_a_marker_that_cannot_be_rendered_is_named(root, keys, spec, message):
    with pytest.raises(ValueError, match=message) as error:
        refresh_page(value(keys, spec), root)
    assert f"results/x.json {keys} {spec}" in str(error.value)


def test_a_missing_json_is_named(root):
    with pytest.raises(ValueError, match="names results/y.json, which does not exist"):
        refresh_page("<!-- value: results/y.json a number:1 --><!-- end value -->", root)


def test_the_pages_are_the_readme_and_the_docs_but_not_the_run_folders_own_markdown():
    names = {str(path.relative_to(ROOT)) for path in pages(ROOT)}
    assert "README.md" in names and "docs/protocol.md" in names
    assert not any(name.endswith(("summary.md", "comparison.md")) for name in names)


def test_recompute_reads_the_folders_main_writes_as_well_as_the_published_ones(tmp_path):
    published = ROOT / "docs" / "results" / "pointnav"
    summary = json.loads((published / "summary.json").read_text())
    for seed in summary["seeds"]:
        (tmp_path / f"seed_{seed}").mkdir()
        shutil.copyfile(published / f"seed_{seed}_metrics.json", tmp_path / f"seed_{seed}" / "metrics.json")
    main(["--recompute", str(tmp_path)])
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_recompute_names_a_truncated_metrics_file(tmp_path):
    (tmp_path / "seed_0").mkdir()
    (tmp_path / "seed_0" / "metrics.json").write_text('{"seed": 0, "env_')
    with pytest.raises(ValueError, match=r"seed_0/metrics.json is not readable JSON"):
        main(["--recompute", str(tmp_path)])
