"""pipeline.executor: runs in worker processes or Ray tasks give exactly the serial run's metrics, failures are
collected, and a multi-seed run resumes keeping its finished seeds."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pipeline import cli
from pipeline.executor import Executor
from pipeline.training import TrainingDiverged

QUICK = ["--quick", "--no_progress", "--num_epochs", "1"]
NOT_RESULTS = ("timing", "provenance")  # wall-clock seconds and where/how the run ran


def results(path) -> dict:
    metrics = json.loads(path.read_text())
    return {key: value for key, value in metrics.items() if key not in NOT_RESULTS}


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory):
    """Seeds 0 and 1 one after another in this process, one torch thread."""
    out_dir = tmp_path_factory.mktemp("serial")
    threads = torch.get_num_threads()
    try:
        summary = cli.main([*QUICK, "--seeds", "0", "1", "--threads", "1", "--out_dir", str(out_dir)])
    finally:
        torch.set_num_threads(threads)
    return out_dir, summary


def test_two_worker_processes_write_the_serial_runs_metrics(serial_run, tmp_path):
    serial_dir, serial_summary = serial_run
    summary = cli.main([*QUICK, "--seeds", "0", "1", "--jobs", "2", "--out_dir", str(tmp_path)])  # 2 cores: 1 thread
    for seed in (0, 1):
        parallel = json.loads((tmp_path / f"seed_{seed}" / "metrics.json").read_text())
        assert parallel["provenance"]["threads"] == 1 and not parallel["provenance"]["threads_follow_load"]
        assert results(tmp_path / f"seed_{seed}" / "metrics.json") == results(
            serial_dir / f"seed_{seed}" / "metrics.json"
        )
    assert summary["control_paired"] == serial_summary["control_paired"]


def test_ray_tasks_write_the_serial_runs_metrics(serial_run, tmp_path):
    import ray

    serial_dir, _ = serial_run
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        cli.main([*QUICK, "--seeds", "0", "1", "--executor", "ray", "--threads", "1", "--out_dir", str(tmp_path)])
    finally:
        ray.shutdown()
    for seed in (0, 1):
        assert results(tmp_path / f"seed_{seed}" / "metrics.json") == results(
            serial_dir / f"seed_{seed}" / "metrics.json"
        )


def test_without_ray_the_executor_names_the_extra_before_any_work(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(SystemExit):
        cli.main([*QUICK, "--executor", "ray", "--out_dir", str(tmp_path / "never")])
    assert 'needs Ray, which is not installed: pip install -e ".[ray]"' in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("executor", [Executor(), Executor(jobs=2)], ids=["in process", "2 processes"])
def test_a_failed_run_does_not_stop_the_others_and_is_named(executor):
    with pytest.raises(RuntimeError, match=r"1 of 3 runs failed \(seed 1: ValueError: math domain error\)"):
        executor.map(math.sqrt, [(4.0,), (-1.0,), (9.0,)], ["seed 0", "seed 1", "seed 2"])
    assert executor.map(math.sqrt, [(4.0,), (9.0,)]) == [2.0, 3.0]


def diverge_in_epoch(epoch: int) -> int:
    """A run that raises TrainingDiverged in `epoch` (0: finishes), as a worker would."""
    if epoch:
        raise TrainingDiverged(["erm"], epoch, 7, Path("run") / "checkpoint.pt")
    return epoch


@pytest.mark.parametrize("executor", [Executor(), Executor(jobs=2)], ids=["in process", "2 processes"])
def test_a_diverged_run_reaches_the_parent_whole_and_the_others_finish(executor):
    message = "training diverged in epoch 3, meta-batch 8: the erm loss"
    with pytest.raises(RuntimeError, match=rf"1 of 3 runs failed \(seed 1: TrainingDiverged: {message}"):
        executor.map(diverge_in_epoch, [(0,), (2,), (0,)], ["seed 0", "seed 1", "seed 2"])


def process_status(pid: int | str) -> dict[str, str] | None:
    """The fields of /proc/<pid>/status of a live process (not a zombie), or None once it has ended."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    fields = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
    return None if fields["State"].startswith(("Z", "X")) else fields


def alive(pid: int) -> bool:
    return process_status(pid) is not None


def workers_of(parent: int) -> list[int]:
    """The live process-pool workers whose parent is `parent` (Linux /proc)."""
    found = []
    for folder in Path("/proc").glob("[0-9]*"):
        fields = process_status(folder.name)
        try:
            is_worker = fields is not None and b"--multiprocessing-fork" in (folder / "cmdline").read_bytes()
        except OSError:  # the process ended while being read
            continue
        if is_worker and int(fields["PPid"]) == parent:
            found.append(int(fields["Pid"]))
    return found


def wait_until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads processes from Linux /proc")
@pytest.mark.parametrize("signal_to_parent", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_workers_end_when_the_process_that_started_them_is_killed_alone(signal_to_parent):
    program = "import time; from pipeline.executor import Executor; Executor(jobs=2).map(time.sleep, [(120,), (120,)])"
    parent = subprocess.Popen([sys.executable, "-c", program], cwd=Path(__file__).parents[1])
    workers = []
    try:
        assert wait_until(lambda: len(workers_of(parent.pid)) == 2, timeout_s=60), "the two workers never started"
        workers = workers_of(parent.pid)
        parent.send_signal(signal_to_parent)  # to the parent alone, not its process group
        parent.wait(timeout=10)
        assert wait_until(lambda: not any(alive(pid) for pid in workers), timeout_s=10)
    finally:
        parent.kill()
        for pid in filter(alive, workers):  # a failed check leaves no sleeping worker behind
            os.kill(pid, signal.SIGKILL)


def test_worker_threads_share_the_cores():
    assert Executor(jobs=2, threads=3).worker_threads() == 3
    assert Executor(jobs=1000).worker_threads() == 1
    assert Executor("ray").worker_threads() == 1


def test_a_multi_seed_run_resumes_keeping_its_finished_seeds(serial_run, tmp_path):
    serial_dir, _ = serial_run
    flags = [*QUICK, "--seeds", "0", "1", "--threads", "1", "--out_dir", str(tmp_path)]
    cli.main(flags)
    (tmp_path / "seed_1" / "metrics.json").unlink()  # seed 1 stopped after training (its checkpoint is complete)
    finished = (tmp_path / "seed_0" / "metrics.json").read_bytes()
    threads = torch.get_num_threads()
    try:
        summary = cli.main([*flags, "--resume"])
    finally:
        torch.set_num_threads(threads)
    assert (tmp_path / "seed_0" / "metrics.json").read_bytes() == finished  # read back, not rerun
    assert results(tmp_path / "seed_1" / "metrics.json") == results(serial_dir / "seed_1" / "metrics.json")
    assert summary["seeds"] == [0, 1]
