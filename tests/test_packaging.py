"""The install path the Docker image uses: build the wheel, install it into a fresh venv, run from there."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run(command: list[str], cwd: Path) -> str:
    finished = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, f"{command} failed:\n{finished.stdout[-2000:]}\n{finished.stderr[-3000:]}"
    return finished.stdout


@pytest.fixture(scope="module")
def installed_python(tmp_path_factory) -> Path:
    """A venv that sees torch, gymnasium & co. from this interpreter but the project only through its wheel."""
    root = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(root / "dist"),
         str(REPO)], cwd=root)
    wheels = list((root / "dist").glob("ssm_metarl-*.whl"))
    assert len(wheels) == 1, wheels
    venv.create(root / "venv", system_site_packages=True, with_pip=True)
    python = root / "venv" / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheels[0])], cwd=root)
    return python


def test_modules_come_from_the_installed_wheel(installed_python, tmp_path):
    output = run([str(installed_python), "-c",
                  "import core, main, experiments.quick_benchmark as q; print(core.__file__); print(main.__file__)"],
                 cwd=tmp_path)
    for line in output.split():
        assert "site-packages" in line and str(REPO) not in line, line


def test_main_help_from_the_installation(installed_python, tmp_path):
    output = run([str(installed_python), "-m", "main", "--help"], cwd=tmp_path)
    assert "--env_name" in output and "--state_dim" in output


def test_benchmark_section_from_the_installation(installed_python, tmp_path):
    output = run([str(installed_python), "-m", "experiments.quick_benchmark", "--section", "adapt", "--quick",
                  "--json", str(tmp_path / "bench.json")], cwd=tmp_path)
    assert "adapt" in output and (tmp_path / "bench.json").is_file()
