"""README.md's Python examples run as written, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 4
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["output"].shape == (4, 32) and namespace["next_hidden"].shape == (4, 128)
    assert {"loss_before", "loss_after", "steps", "grad_norm", "rolled_back", "hidden_state"} <= namespace["log"].keys()
    assert isinstance(namespace["loss"], float)


def test_readme_results_tables_are_the_committed_summaries():
    from pipeline.summary import RESULTS_BLOCK, refresh_results_blocks

    text = README.read_text()
    assert len(RESULTS_BLOCK.findall(text)) >= 1
    assert refresh_results_blocks(text, README.parent) == text, "run: python -m pipeline.summary --readme README.md"
