"""The wheel as the Docker image installs it: built from the checkout, installed into a fresh venv, run from there.

The venv is made from this interpreter without its site-packages; a `.pth` file adds this environment's
site-packages (torch, gymnasium & co.) after the venv's own, as plain paths: their `.pth` files, among them an
editable install of this project, are not run. The project is importable there only through its wheel.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "meta_rl", "adaptation", "env_runner", "planning", "pipeline", "experiments", "benchmarks")


def run(command: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    finished = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=300)
    if check:
        assert finished.returncode == 0, f"{command} failed:\n{finished.stdout[-2000:]}\n{finished.stderr[-3000:]}"
    return finished


def dependency_paths() -> list[str]:
    """Where this interpreter finds the dependencies: its site-packages (a venv's, and the base's if shared)."""
    paths = [*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    if site.ENABLE_USER_SITE:
        paths.append(site.getusersitepackages())
    return [path for path in dict.fromkeys(paths) if Path(path).is_dir() and not Path(path).is_relative_to(REPO)]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(REPO)], cwd=dist)
    wheels = list(dist.glob("ssm_metarl-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def install(wheel, tmp_path_factory) -> Path:
    """A venv holding the wheel; returns its bin/ folder (python and the console scripts)."""
    root = tmp_path_factory.mktemp("venv")
    venv.create(root, system_site_packages=False, with_pip=True)
    bin_dir = root / "bin"
    run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], cwd=root)
    purelib = run(
        [str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root
    )
    (Path(purelib.stdout.strip()) / "dependencies_of_the_test_environment.pth").write_text(
        "\n".join(dependency_paths()) + "\n"
    )
    return bin_dir


def test_the_wheel_holds_only_the_library_packages_and_two_console_scripts(wheel):
    with zipfile.ZipFile(wheel) as archive:
        top_level = {name.split("/")[0] for name in archive.namelist() if not name.split("/")[0].endswith(".dist-info")}
        entry_points = next(name for name in archive.namelist() if name.endswith(".dist-info/entry_points.txt"))
        console_scripts = archive.read(entry_points).decode()
    assert top_level == set(PACKAGES)
    assert "ssm-metarl = pipeline.__main__:console_main" in console_scripts
    assert "ssm-metarl-bench = benchmarks.__main__:console_main" in console_scripts


def test_modules_come_from_the_installed_wheel(install, tmp_path):
    imports = "; ".join(f"import {name}; print({name}.__file__)" for name in (*PACKAGES, "benchmarks.cli", "torch"))
    files = run([str(install / "python"), "-c", imports], cwd=tmp_path).stdout.split()
    venv_root = install.parent
    for line in files[: len(PACKAGES) + 1]:
        assert Path(line).is_relative_to(venv_root) and not Path(line).is_relative_to(REPO), line
    assert not Path(files[-1]).is_relative_to(venv_root), "torch should come from the test environment"


def test_main_py_is_a_checkout_script_not_a_module_of_the_installation(install, tmp_path):
    finished = run([str(install / "python"), "-c", "import main"], cwd=tmp_path, check=False)
    assert finished.returncode != 0 and "No module named 'main'" in finished.stderr, finished.stderr


def test_ssm_metarl_help_runs_from_the_installation(install, tmp_path):
    output = run([str(install / "ssm-metarl"), "--help"], cwd=tmp_path).stdout
    assert "--env_name" in output and "--state_dim" in output


def test_ssm_metarl_bench_runs_a_section_from_the_installation(install, tmp_path):
    report = tmp_path / "bench.json"
    command = [str(install / "ssm-metarl-bench"), "--section", "adapt", "--quick", "--json", str(report)]
    output = run(command, cwd=tmp_path).stdout
    assert "=== adapt ===" in output and "adapt" in report.read_text()


@pytest.mark.parametrize(
    "script, flag",
    [
        ("main.py", "--env_name"),
        ("experiments/quick_benchmark.py", "--section"),
        ("experiments/sinusoid.py", "--shots"),
        ("experiments/compute_sweep.py", "--from_run"),
        ("experiments/select_defaults.py", "--candidate"),
        ("experiments/quick_metrics.py", "--compare"),
    ],
)
def test_checkout_scripts_run_the_installed_packages(tmp_path, script, flag):
    output = run([sys.executable, str(REPO / script), "--help"], cwd=tmp_path).stdout
    assert flag in output
