"""The documentation site builds with every warning an error, and its API reference covers the seed's API."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED_API = {  # the seed's public classes and functions, and where they live
    "core.ssm.SSM": ("init_hidden", "forward"),
    "meta_rl.meta_maml.MetaMAML": ("adapt_task", "meta_update", "functional_forward"),
    "adaptation.test_time_adaptation.Adapter": ("update_step", "reset", "from_meta"),
    "adaptation.test_time_adaptation.AdaptationConfig": (),
    "env_runner.environment.Environment": ("reset", "step"),
    "env_runner.environment.make_task_family": (),
}


def test_the_api_reference_names_every_class_and_function_of_the_seeds_api():
    named = set(re.findall(r"^::: (\S+)$", (ROOT / "docs" / "api.md").read_text(), re.MULTILINE))
    assert set(SEED_API) <= named, set(SEED_API) - named


def test_the_site_builds_strictly_and_renders_each_seed_method(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for path, methods in SEED_API.items():
        for name in (path, *(f"{path}.{method}" for method in methods)):
            assert f'id="{name}"' in api, name
