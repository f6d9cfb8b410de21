"""The README and the docs pages as rendered results: every table and every quoted number comes from a JSON file.

Two markers, each regenerated in place, with paths relative to the repository root:

    <!-- results: docs/results/pendulum/summary.json -->       a whole block: a summary's tables
    ...                                                          (a comparison's or an overview's JSON, marked by
    <!-- end results -->                                          its "kind", renders as those modules do)

    <!-- value: docs/results/pendulum/summary.json control_paired/tta-no_tta/over_seeds +interval:1 -->153.5 [75.8,
    231.3]<!-- end value -->                                     one number in a sentence (on one line)

A value's keys go down the JSON by "/" (list indices as integers); its format is one of `number:D`, `interval:D`
(a {"mean", "ci95"} as "mean [lo, hi]", "mean (1 seed)" without an interval), `integer`, `text`; a leading "+"
shows the sign of a number or of an interval's mean. `refresh_page(text, root) == text` is what the tests check:
a page whose numbers drifted from its JSON fails until `python -m pipeline.report --pages` re-renders it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

from pipeline.report.comparison import comparison_markdown
from pipeline.report.markdown import interval, summary_markdown
from pipeline.report.memories import memories_markdown
from pipeline.report.overview import overview_markdown

RESULTS_BLOCK = re.compile(r"(<!-- results: (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- end results -->)", re.DOTALL)
VALUE = re.compile(
    r"(<!-- value: (?P<path>\S+) (?P<keys>\S+) (?P<format>\S+) -->)(?P<text>[^\n]*?)(?P<end><!-- end value -->)"
)
BLOCK_RENDERERS: dict[str, Callable[[dict], str]] = {
    "comparison": comparison_markdown,
    "memories": memories_markdown,
    "overview": overview_markdown,
}


def pages(root: Path) -> list[Path]:
    """The rendered pages of a checkout: README.md and every markdown page under docs/ but the run folders' own
    summary.md and comparison.md (written with their runs)."""
    docs = [path for path in sorted((root / "docs").rglob("*.md")) if path.name not in ("summary.md", "comparison.md")]
    return [root / "README.md", *docs]


def refresh_page(text: str, root: Path) -> str:
    """`text` with every results block and value marker regenerated from the JSON it names (relative to `root`)."""
    read = cache(lambda path: _read_json(root, path))

    def block(match: re.Match) -> str:
        result = read(match["path"])
        markdown = BLOCK_RENDERERS.get(result.get("kind"), summary_markdown)(result)
        return f"{match[1]}{markdown}\n{match[4]}"

    def value(match: re.Match) -> str:
        found = read(match["path"])
        for key in match["keys"].split("/"):
            found = _step(found, key, match[0])
        return f"{match[1]}{format_value(found, match['format'], match[0])}{match['end']}"

    return VALUE.sub(value, RESULTS_BLOCK.sub(block, text))


def format_value(value, spec: str, marker: str = "") -> str:
    """`value` written as `spec` says (the module docstring lists the formats); ValueError naming the marker for a
    spec it does not know or a value of the wrong kind."""
    signed = spec.startswith("+")
    kind, _, digits = spec.removeprefix("+").partition(":")
    sign = "+" if signed else ""
    try:
        if kind == "number":
            return f"{value:{sign}.{int(digits)}f}"
        if kind == "integer":
            return f"{int(value):{sign}d}"
        if kind == "text":
            return str(value)
        if kind == "interval":
            mean = f"{value['mean']:{sign}.{int(digits)}f}"
            return f"{mean} (1 seed)" if value["ci95"] is None else f"{mean} {interval(value['ci95'], int(digits))}"
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"{marker}: {value!r} cannot be written as {spec!r} ({error})") from error
    raise ValueError(f"{marker}: unknown format {spec!r}; expected number:D, interval:D, integer or text")


def _step(found, key: str, marker: str):
    try:
        return found[int(key)] if isinstance(found, list) else found[key]
    except (KeyError, IndexError, ValueError, TypeError) as error:
        raise ValueError(f"{marker}: no entry {key!r} in the JSON it names") from error


def _read_json(root: Path, path: str) -> dict:
    try:
        return json.loads((root / path).read_text())
    except FileNotFoundError as error:
        raise ValueError(f"a page names {path}, which does not exist under {root}") from error


def refresh_pages(root: Path) -> list[Path]:
    """Re-render every page of the checkout at `root` in place; returns the pages that changed."""
    changed = []
    for path in pages(root):
        text = path.read_text()
        fresh = refresh_page(text, root)
        if fresh != text:
            path.write_text(fresh)
            changed.append(path)
    return changed
