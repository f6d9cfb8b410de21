"""What docs/results/ publishes, as data: the main.py runs of each folder and their seed counts, the programs that
run over them (compute sweeps, sample cost) and the comparisons drawn from two folders. `experiments/reproduce.py`
regenerates all of it; adding a published result is adding a row here.

`minutes` is one seed's wall time on one core of the 2-core machine with a second run beside it (the mean of the
published seeds, rounded), used to start the longest runs first. In a program's flags, {runs}, {results} and
{out} stand for the reproduction's run folder, its results folder and the program's own output folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedRuns:
    """One results folder: `seeds` runs of `python main.py <flags> --seed S`, seeds 0 .. seeds - 1."""

    folder: str
    flags: tuple[str, ...]
    seeds: int
    minutes: float


@dataclass(frozen=True)
class PublishedProgram:
    """One results folder written by a program (`python -m <module> <flags>`) once the folders it needs are
    published from the reproduction's commit: `needs_runs`, whose runs it reads from {runs} (checkpoints, so they
    are run with it), and `needs_published`, whose published results it reads from {results} (run with it only
    when not yet published from that commit). With --quick the program gets --quick, and each flag of
    `quick_values` takes those values instead."""

    folder: str
    module: str
    flags: tuple[str, ...]
    needs_runs: tuple[str, ...] = ()
    needs_published: tuple[str, ...] = ()
    quick_values: tuple[tuple[str, tuple[str, ...]], ...] = (("--seeds", ("0",)),)


@dataclass(frozen=True)
class PublishedMemories:
    """Memory against memory on POPGym's tasks (`pipeline.report.memories`) from RL² folders, one per (task,
    memory): `tasks` holds each task's folders, its `baseline` memory's first. Drawn over the tasks whose baseline
    folder is published from the reproduction's commit, with those of their other folders that are."""

    folder: str
    tasks: tuple[tuple[str, ...], ...]
    baseline: str = "gru"

    @property
    def runs(self) -> tuple[str, ...]:
        return tuple(name for folders in self.tasks for name in folders)


@dataclass(frozen=True)
class PublishedComparison:
    """Model-based TTA against RL² on the same tasks (`pipeline.report.comparison`), from two published folders."""

    folder: str
    mbrl: str
    rl2: str


_LONGER_TRIALS = ("--rl2.longer_trials", "4", "8")

RUNS = (
    PublishedRuns("pendulum", ("--env_name", "Pendulum-v1"), 10, 5),
    PublishedRuns("cartpole", ("--env_name", "CartPole-v1"), 10, 5),
    PublishedRuns("mountaincar", ("--env_name", "MountainCarContinuous-v0"), 10, 5),
    PublishedRuns("pointnav_learned", ("--env_name", "PointNavigation-v0"), 10, 4),
    PublishedRuns("pointnav", ("--env_name", "PointNavigation-v0", "--reward", "known"), 3, 4),
    # trained on trials of 2 episodes, also played in trials of 4 and 8 (length generalisation, SSM against GRU)
    PublishedRuns("rl2_pointnav", ("--algo", "rl2", "--env_name", "PointNavigation-v0", *_LONGER_TRIALS), 10, 7),
    PublishedRuns(
        "rl2_gru_pointnav",
        ("--algo", "rl2", "--env_name", "PointNavigation-v0", "--rl2_memory", "gru", *_LONGER_TRIALS),
        3,
        14,
    ),
    PublishedRuns("cadm_pendulum", ("--env_name", "Pendulum-v1", "--protocol", "cadm"), 10, 9),
    PublishedRuns("cadm_cartpole", ("--env_name", "CartPole-v1", "--protocol", "cadm"), 10, 6),
    PublishedRuns(
        "cadm_halfcheetah",
        ("--env_name", "HalfCheetah-v5", "--protocol", "cadm", "--control_episodes", "1", "--control_tasks", "8"),
        1,
        19,
    ),
    PublishedRuns(
        "cadm_halfcheetah_crippled",
        ("--env_name", "HalfCheetahCrippled-v0", "--protocol", "cadm", "--control_episodes", "4"),
        1,
        11,
    ),
    PublishedRuns("cadm_ant", ("--env_name", "AntMass-v0", "--protocol", "cadm"), 1, 13),
    PublishedRuns("halfcheetah", ("--env_name", "HalfCheetah-v5"), 5, 16),
    PublishedRuns("halfcheetah_crippled", ("--env_name", "HalfCheetahCrippled-v0"), 5, 10),
    PublishedRuns("hopper", ("--env_name", "Hopper-v5"), 5, 7),
    PublishedRuns("ant_crippled", ("--env_name", "AntCrippled-v0"), 5, 7),
    PublishedRuns("halfcheetah_vel", ("--env_name", "HalfCheetahVel-v0"), 5, 14),
    PublishedRuns("rl2_halfcheetah_vel", ("--algo", "rl2", "--env_name", "HalfCheetahVel-v0"), 3, 25),
    PublishedRuns(
        "rl2_gru_halfcheetah_vel", ("--algo", "rl2", "--env_name", "HalfCheetahVel-v0", "--rl2_memory", "gru"), 3, 40
    ),
    PublishedRuns("halfcheetah_dir", ("--env_name", "HalfCheetahDir-v0"), 3, 17),
    PublishedRuns("ant_dir", ("--env_name", "AntDir-v0"), 3, 14),
)

# POPGym's memory tasks the SSM is compared with the GRU on: RepeatPrevious at every difficulty, the others at Easy.
# Each trains its family's iterations (pipeline.config: what the GRU trains in 12 minutes alone on one thread); the
# bandit also plays its test episodes twice as long (length generalisation).
POPGYM_TASKS = (
    "RepeatPreviousEasy",
    "RepeatPreviousMedium",
    "RepeatPreviousHard",
    "RepeatFirstEasy",
    "CountRecallEasy",
    "AutoencodeEasy",
    "PositionOnlyCartPoleEasy",
    "PositionOnlyPendulumEasy",
    "MultiarmedBanditEasy",
)
POPGYM_MEMORIES = {"gru": 16, "ssm_complex": 9}  # memory: minutes a seed; the GRU, first, is the baseline


def popgym_folder(task: str, memory: str) -> str:
    """'popgym_gru_repeat_previous_easy' for ("RepeatPreviousEasy", "gru")."""
    return f"popgym_{memory}_{re.sub(r'(?<!^)(?=[A-Z])', '_', task).lower()}"


def popgym_runs(task: str, memory: str) -> PublishedRuns:
    longer = ("--rl2.longer_episodes", "2") if task.startswith("MultiarmedBandit") else ()
    flags = ("--algo", "rl2", "--env_name", f"popgym-{task}-v0", "--rl2_memory", memory, *longer)
    return PublishedRuns(popgym_folder(task, memory), flags, 3, POPGYM_MEMORIES[memory])


RUNS += tuple(popgym_runs(task, memory) for task in POPGYM_TASKS for memory in POPGYM_MEMORIES)


def thin_compute_sweep(folder: str, env_name: str, seeds: int, run_folder: str) -> PublishedProgram:
    """`experiments/compute_sweep.py --grid thin` over the trained worlds of seeds 0 .. seeds - 1 of the published
    runs `run_folder` (their checkpoints, read from {runs})."""
    flags = ("--env_name", env_name, "--seeds", *map(str, range(seeds)), "--grid", "thin")
    return PublishedProgram(
        folder,
        "experiments.compute_sweep",
        (*flags, "--from_run", f"{{runs}}/{run_folder}", "--out_dir", "{out}"),
        needs_runs=(run_folder,),
    )


PROGRAMS = (
    thin_compute_sweep("compute_sweep", "Pendulum-v1", 3, "pendulum"),
    thin_compute_sweep("compute_sweep_hopper", "Hopper-v5", 2, "hopper"),
    thin_compute_sweep("compute_sweep_halfcheetah_crippled", "HalfCheetahCrippled-v0", 2, "halfcheetah_crippled"),
    PublishedProgram(
        "sample_cost_pointnav",
        "experiments.sample_cost",
        (
            "--env_name",
            "PointNavigation-v0",
            "--steps_per_task",
            "200",
            "400",
            "800",
            "--seeds",
            "0",
            "1",
            "--rl2",
            "{results}/rl2_pointnav",
            "--out",
            "{out}",
        ),
        needs_published=("rl2_pointnav",),
        quick_values=(("--seeds", ("0",)), ("--steps_per_task", ("16", "48"))),
    ),
    PublishedProgram(
        "sample_cost_halfcheetah_vel",
        "experiments.sample_cost",
        (
            "--env_name",
            "HalfCheetahVel-v0",
            "--steps_per_task",
            "600",
            "1200",
            "2400",
            "--seeds",
            "0",
            "1",
            "--rl2",
            "{results}/rl2_halfcheetah_vel",
            "--out",
            "{out}",
        ),
        needs_published=("rl2_halfcheetah_vel",),
        quick_values=(("--seeds", ("0",)), ("--steps_per_task", ("16", "48"))),
    ),
)

COMPARISONS = (
    PublishedComparison("tta_vs_rl2_pointnav", "pointnav_learned", "rl2_pointnav"),
    PublishedComparison("tta_vs_rl2_halfcheetah_vel", "halfcheetah_vel", "rl2_halfcheetah_vel"),
    PublishedComparison("tta_vs_rl2_gru_pointnav", "pointnav_learned", "rl2_gru_pointnav"),
    PublishedComparison("tta_vs_rl2_gru_halfcheetah_vel", "halfcheetah_vel", "rl2_gru_halfcheetah_vel"),
)

MEMORIES = (
    PublishedMemories(
        "popgym_memories",
        tuple(tuple(popgym_folder(task, memory) for memory in POPGYM_MEMORIES) for task in POPGYM_TASKS),
    ),
)

FOLDERS = tuple(entry.folder for entry in (*RUNS, *PROGRAMS, *COMPARISONS, *MEMORIES))
