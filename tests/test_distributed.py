"""torchrun: 2 gloo processes on CPU end with the same weights as 1 process (same seed and flags)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from pipeline import cli

MAIN_SCRIPT = Path(__file__).resolve().parents[1] / "main.py"

FLAGS = ["--quick", "--no_progress", "--seed", "7", "--num_epochs", "3"]


def test_two_gloo_processes_match_one_process(tmp_path):
    cli.main([*FLAGS, "--out_dir", str(tmp_path / "single")])
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(MAIN_SCRIPT),
        *FLAGS,
        "--out_dir",
        str(tmp_path / "two"),
    ]
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    single = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=True)
    two = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)
    assert single["dataset"]["obs"].shape == two["dataset"]["obs"].shape  # random and on-policy rows alike
    torch.testing.assert_close(two["dataset"]["obs"], single["dataset"]["obs"], atol=1e-5, rtol=0)
    for name, value in single["model"].items():
        torch.testing.assert_close(two["model"][name], value, atol=1e-5, rtol=1e-4, msg=name)
    for name, value in single["models"]["erm_model"].items():
        torch.testing.assert_close(two["models"]["erm_model"][name], value, atol=1e-5, rtol=1e-4, msg=name)
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["training"]["world_size"] == 2
