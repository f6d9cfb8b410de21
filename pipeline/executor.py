"""Many independent runs: one after another in this process, at once in local worker processes, or as Ray tasks
on a cluster. Every program that runs several runs (`--seeds`, the compute sweep, default selection) goes
through `Executor.map` (`pipeline.seeds.run_seeds` for `--seeds`).

    executor = Executor(jobs=2)                                  # --jobs 2
    executor = Executor("ray", ray_address="auto")               # --executor ray --ray_address auto
    results = executor.map(function, [(arg, ...), ...])          # function(*args) each, results in that order

`function` must be a module-level function (a worker imports it by name), its arguments and result picklable.
A run's numbers depend on its seed and its torch thread count, not on where it ran: every run in a worker gets
`threads` torch threads (default max(1, cores // jobs) locally, 1 on Ray), and a run in this process with the
same thread count writes the same metrics.

A local worker ends itself within a second once the process that started it is gone: a SIGTERM or SIGKILL sent
to that process alone (a job scheduler's, `kill PID`) leaves no run training for nobody. The runs resume from
their checkpoints.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from core.settings import check_settings, integer, one_of, optional, setting
from pipeline.console import quiet_warnings

RAY_EXTRA = 'pip install -e ".[ray]"'
CONNECT_TIMEOUT_S = 5.0  # how long --ray_address's host:port has to answer
ORPHAN_CHECK_S = 0.5  # how often a local worker checks that the process that started it is alive


def available_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Executor:
    """Where the runs of `map` run: "local" (this process with jobs=1, else that many worker processes) or "ray"."""

    kind: str = setting("local", "local processes or a Ray cluster", one_of(("local", "ray")))
    jobs: int = setting(1, "runs at once on this machine (local)", integer(1))
    threads: int | None = setting(None, "torch threads per run in a worker", optional(integer(1)))
    ray_address: str | None = setting(None, "Ray cluster to join (none: start a local Ray instance)")

    def __post_init__(self) -> None:
        check_settings(self)

    @property
    def in_process(self) -> bool:
        return self.kind == "local" and self.jobs == 1

    def worker_threads(self) -> int:
        if self.threads is not None:
            return self.threads
        return max(1, available_cores() // self.jobs) if self.kind == "local" else 1

    def map(self, function: Callable[..., Any], arguments: Sequence[tuple], labels: Sequence[str] = ()) -> list:
        """function(*args) for every tuple of `arguments`, results in their order. A failed run does not stop the
        others; once all have ended, RuntimeError names the failed ones (`labels`, default their positions)."""
        labels = list(labels) or [f"run {index}" for index in range(len(arguments))]
        if self.in_process:
            return _results([_outcome(lambda args=args: function(*args)) for args in arguments], labels)
        if self.kind == "ray":
            return self._map_ray(function, arguments, labels)
        return self._map_processes(function, arguments, labels)

    def _map_processes(self, function: Callable[..., Any], arguments: Sequence[tuple], labels: list[str]) -> list:
        context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch's thread pools
        threads = self.worker_threads()
        setup = (threads, os.getpid())
        with ProcessPoolExecutor(self.jobs, context, initializer=_start_worker, initargs=setup) as pool:
            futures = [pool.submit(function, *args) for args in arguments]
            try:
                outcomes = [_outcome(future.result) for future in futures]
            except KeyboardInterrupt:  # the workers ignore Ctrl-C: this process ends them, and reports it once
                for worker in list(pool._processes.values()):  # no public way to stop a running task
                    worker.terminate()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return _results(outcomes, labels)

    def check_available(self) -> None:
        """RuntimeError naming the extra to install when the executor needs Ray and it is missing, or naming the
        address when `ray_address` is a host:port that nothing answers at within `CONNECT_TIMEOUT_S` (Ray itself
        would retry without end)."""
        if self.kind != "ray":
            return
        try:
            import ray  # noqa: F401
        except ImportError as error:
            raise RuntimeError(f"--executor ray needs Ray, which is not installed: {RAY_EXTRA}") from error
        host, _, port = (self.ray_address or "").removeprefix("ray://").rpartition(":")
        if host and port.isdigit():
            try:
                socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
            except OSError as error:
                raise RuntimeError(
                    f"--ray_address {self.ray_address}: no Ray cluster answers there ({error})"
                ) from None

    def _map_ray(self, function: Callable[..., Any], arguments: Sequence[tuple], labels: list[str]) -> list:
        self.check_available()
        import ray

        if not ray.is_initialized():
            ray.init(address=self.ray_address, include_dashboard=False, log_to_driver=True)
        threads = self.worker_threads()
        remote = ray.remote(num_cpus=threads)(_in_worker)
        references = [remote.remote(function, args, threads) for args in arguments]
        return _results([_outcome(lambda reference=reference: ray.get(reference)) for reference in references], labels)


def _start_worker(threads: int, parent: int) -> None:
    """A local worker's setup: its torch threads, its warnings as the programs print them, Ctrl-C left to the parent
    (which ends the workers and reports the interruption once), and a watch that ends it once `parent` is no longer
    its parent."""
    torch.set_num_threads(threads)
    quiet_warnings()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()


def _exit_cleanly(*_) -> None:
    """SIGTERM from the parent (Ctrl-C there): end the task, then the worker, with its finalizers run."""
    raise SystemExit(143)


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_S)
    os._exit(1)  # no cleanup to run: a run's files are written atomically, and its parent is gone


def _in_worker(function: Callable[..., Any], args: tuple, threads: int) -> Any:
    torch.set_num_threads(threads)
    quiet_warnings()
    return function(*args)


def _outcome(result: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    try:
        return result(), None
    except Exception as error:  # kept, and raised once every run has ended
        return None, error


def _results(outcomes: list[tuple[Any, BaseException | None]], labels: list[str]) -> list:
    failed = [(label, error) for label, (_, error) in zip(labels, outcomes, strict=True) if error is not None]
    if failed:
        listed = "; ".join(f"{label}: {type(error).__name__}: {error}" for label, error in failed)
        raise RuntimeError(f"{len(failed)} of {len(outcomes)} runs failed ({listed})") from failed[0][1]
    return [result for result, _ in outcomes]
