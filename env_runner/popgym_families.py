"""POPGym's memory tasks (Morad et al. 2023, "POPGym: Benchmarking Partially Observable Reinforcement Learning",
ICLR) as families of the recurrent policy's pipeline (`--algo rl2`).

Each id is one POMDP: its tasks are the environment itself (`held_out_tasks` False, no OOD split), a trial is one
episode, and the memory must carry what the current observation lacks (the card k steps back, the running count,
the velocity of a cart seen only by its position). MultiarmedBandit is meta-RL proper: every episode draws a new
bandit, and a trial is the pulls on it. Observations (discrete, multi-discrete or tuples of them) reach the policy
flattened to one-hot vectors; actions are the environment's own (discrete, or Box for the pendulum). POPGym scales
every environment's rewards so that an episode's return lies in [-1, 1], the scale its MMER (max over training of
the mean episodic return) is reported on.

The environments come from the `popgym` package, an optional extra: `pip install 'ssm-metarl[popgym]'`.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym
from gymnasium.wrappers import FlattenObservation

from env_runner.protocols import COEFFICIENTS
from env_runner.tasks import TaskFamily

POPGYM_IDS = tuple(
    f"popgym-{name}-v0"
    for name in (
        "RepeatPreviousEasy",
        "RepeatPreviousMedium",
        "RepeatPreviousHard",
        "RepeatFirstEasy",
        "RepeatFirstMedium",
        "RepeatFirstHard",
        "CountRecallEasy",
        "CountRecallMedium",
        "CountRecallHard",
        "AutoencodeEasy",
        "AutoencodeMedium",
        "AutoencodeHard",
        "PositionOnlyCartPoleEasy",
        "PositionOnlyCartPoleMedium",
        "PositionOnlyCartPoleHard",
        "PositionOnlyPendulumEasy",
        "PositionOnlyPendulumMedium",
        "PositionOnlyPendulumHard",
        "MultiarmedBanditEasy",
        "MultiarmedBanditMedium",
        "MultiarmedBanditHard",
    )
)
EXTRA = "pip install 'ssm-metarl[popgym]'"


def register_popgym(env_id: str) -> None:
    """Import `popgym`, which registers its ids with gymnasium; ValueError naming the extra where it is missing."""
    try:
        importlib.import_module("popgym")
    except ImportError as error:
        raise ValueError(f"{env_id} is a POPGym environment: install the popgym extra ({EXTRA})") from error


class PopgymFamily(TaskFamily):
    """One POPGym environment as a single-task family with flattened (one-hot) observations."""

    held_out_tasks = False

    def __init__(self, env_id: str, protocol: str = COEFFICIENTS, **make_kwargs: Any) -> None:
        if env_id not in POPGYM_IDS:
            raise ValueError(f"{env_id!r} is not one of the POPGym families: {', '.join(POPGYM_IDS)}")
        register_popgym(env_id)
        probe = gym.make(env_id)
        # every POPGym episode ends by itself within max_episode_length steps; the time limit only bounds a trial
        make_kwargs.setdefault("max_episode_steps", probe.unwrapped.max_episode_length + 1)
        probe.close()
        super().__init__(env_id, protocol=protocol, **make_kwargs)

    def _observations(self, env: gym.Env) -> gym.Env:
        return FlattenObservation(env)
