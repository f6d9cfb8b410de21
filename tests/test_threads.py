"""torch's threads following the machine's load (`core.threads`); runs compute the same numbers at any count."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from core import threads
from pipeline.config import defaults_for
from pipeline.run import run


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    threads.stop_following()
    torch.set_num_threads(before)


class FakeMachine:
    """/proc/stat's busy seconds and this process's own, advanced by hand; a clock that moves by INTERVAL."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.busy = self.own = self.now = 0.0
        monkeypatch.setattr(threads, "busy_seconds", lambda cores: self.busy)
        monkeypatch.setattr(threads, "own_seconds", lambda: self.own)
        monkeypatch.setattr(threads, "usable_cores", lambda: [0, 1])
        monkeypatch.setattr(threads.time, "monotonic", lambda: self.now)

    def run(self, seconds: float, own_cores: float, other_cores: float) -> None:
        self.now += seconds
        self.own += own_cores * seconds
        self.busy += (own_cores + other_cores) * seconds


def test_threads_drop_to_the_free_cores_while_another_process_is_busy_and_come_back(monkeypatch, restore_threads):
    machine = FakeMachine(monkeypatch)
    threads.follow_load(2)
    assert torch.get_num_threads() == 2
    machine.run(threads.INTERVAL, own_cores=2.0, other_cores=0.0)
    threads.tick()
    assert torch.get_num_threads() == 2  # alone: every core
    machine.run(threads.INTERVAL, own_cores=1.2, other_cores=0.9)
    threads.tick()
    assert torch.get_num_threads() == 1  # a neighbour took most of a core
    machine.run(threads.INTERVAL / 2, own_cores=1.0, other_cores=0.0)
    threads.tick()
    assert torch.get_num_threads() == 1  # measured at most once per INTERVAL
    machine.run(threads.INTERVAL, own_cores=1.0, other_cores=0.1)
    threads.tick()
    assert torch.get_num_threads() == 2  # the neighbour is gone


def test_following_ends_with_its_block_and_gives_the_thread_count_back(monkeypatch, restore_threads):
    machine = FakeMachine(monkeypatch)
    torch.set_num_threads(1)
    with threads.following_load(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 1
    machine.run(threads.INTERVAL, own_cores=0.0, other_cores=0.0)
    threads.tick()
    assert torch.get_num_threads() == 1


def test_the_command_line_follows_the_load_only_for_runs_in_its_own_process(tmp_path, monkeypatch, restore_threads):
    from pipeline import cli as main

    seen = []

    def record(*args, executor, **kwargs):
        seen.append((executor.in_process, threads._follower is not None))

    monkeypatch.setattr(main, "run_seeds", record)
    quick = ["--quick", "--no_progress"]
    main.main([*quick, "--out_dir", str(tmp_path / "a")])
    main.main([*quick, "--out_dir", str(tmp_path / "b"), "--threads", "1"])
    main.main([*quick, "--out_dir", str(tmp_path / "c"), "--seeds", "0", "1", "--jobs", "2"])
    assert seen == [(True, True), (True, False), (False, False)]
    assert threads._follower is None


def test_tick_changes_nothing_unless_following_the_load(monkeypatch, restore_threads):
    machine = FakeMachine(monkeypatch)
    torch.set_num_threads(2)
    threads.stop_following()
    machine.run(threads.INTERVAL, own_cores=1.0, other_cores=2.0)
    threads.tick()
    assert torch.get_num_threads() == 2


def test_the_busy_seconds_of_this_machine_grow_while_this_process_computes():
    cores = threads.usable_cores()
    first = threads.busy_seconds(cores)
    if first is None:
        pytest.skip("no /proc/stat on this system: the thread count stays as set")
    own = threads.own_seconds()
    while threads.own_seconds() - own < 0.2:
        torch.randn(256, 256) @ torch.randn(256, 256)
    assert threads.busy_seconds(cores) - first >= 0.1


def test_a_run_computes_the_same_numbers_at_one_and_two_threads(tmp_path, restore_threads):
    quick = defaults_for("Pendulum-v1", quick=True)
    config = dataclasses.replace(  # the default widths and candidate count: products large enough to be split
        quick, device="cpu", state_dim=64, hidden_dim=64, planner=dataclasses.replace(quick.planner, num_candidates=100)
    )
    results = []
    for count in (1, 2):
        torch.set_num_threads(count)
        metrics = run(config, tmp_path / str(count), progress=False, argv=["test"])
        results.append({key: value for key, value in metrics.items() if key not in ("timing", "provenance")})
    assert results[0] == results[1]
