"""README.md's Python examples run as written, each on its own in a fresh interpreter; its results tables, and every
docs page's, are the committed summaries."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
CHECKS = {  # what a block leaves behind, checked at its end
    "output": "assert output.shape == (4, 32) and next_hidden.shape == (4, 128)",
    "log": 'assert {"loss_before", "loss_after", "steps", "grad_norm", "rolled_back", "hidden_state"} <= log.keys()',
    "loss": "assert isinstance(loss, float)",
}


def test_the_readme_has_its_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block {index + 1}" for index in range(len(BLOCKS))])
def test_each_readme_python_block_runs_alone_in_a_fresh_interpreter(block, tmp_path):
    checks = [check for name, check in CHECKS.items() if re.search(rf"^{name}\b|[(, ]{name} =", block, re.MULTILINE)]
    script = block + "\n" + "\n".join(checks) + "\n"
    finished = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]


def test_every_page_quotes_the_committed_results():
    from pipeline.report.pages import RESULTS_BLOCK, pages, refresh_page

    root = README.parent
    texts = {path: path.read_text() for path in pages(root)}
    assert len(RESULTS_BLOCK.findall(texts[README])) >= 1  # the overview table
    stale = [str(path.relative_to(root)) for path, text in texts.items() if refresh_page(text, root) != text]
    assert not stale, f"{stale} quote numbers their JSON no longer holds: run python -m pipeline.report --pages"
