"""POPGym's memory tasks (Morad et al. 2023, "POPGym: Benchmarking Partially Observable Reinforcement Learning",
ICLR) as families of the recurrent policy's pipeline (`--algo rl2`).

Each id is one POMDP: its tasks are the environment itself (`held_out_tasks` False, no OOD split), a trial is one
episode, and the memory must carry what the current observation lacks (the card k steps back, the running count, the
velocity of a cart seen only by its position). MultiarmedBandit is meta-RL proper: every episode draws a new bandit,
and a trial is the pulls on it; its episodes can grow (`episode_scale`: as many times the pulls on each bandit, each
paying +-1 / their number), the length generalisation of a task that is one episode. Observations (discrete, multi-
discrete or tuples of them) reach the policy flattened to one-hot vectors; actions are the environment's own
(discrete, or Box for the pendulum). POPGym scales every environment's rewards so that an episode's return lies in
[-1, 1], the scale its MMER (max over training of the mean episodic return) is reported on.

The environments come from the `popgym` package, an optional extra: `pip install 'ssm-metarl[popgym]'`.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym
from gymnasium.wrappers import FlattenObservation

from env_runner.protocols import COEFFICIENTS
from env_runner.tasks import Task, TaskFamily

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
GROWING_IDS = tuple(env_id for env_id in POPGYM_IDS if "MultiarmedBandit" in env_id)  # length: max_episode_length


def register_popgym(env_id: str) -> None:
    """Import `popgym`, which registers its ids with gymnasium; ValueError naming the extra where it is missing."""
    try:
        importlib.import_module("popgym")
    except ImportError as error:
        raise ValueError(f"{env_id} is a POPGym environment: install the popgym extra ({EXTRA})") from error


class PopgymFamily(TaskFamily):
    """One POPGym environment as a single-task family with flattened (one-hot) observations."""

    held_out_tasks = False

    def __init__(self, env_id: str, protocol: str = COEFFICIENTS, episode_scale: int = 1, **make_kwargs: Any) -> None:
        if env_id not in POPGYM_IDS:
            raise ValueError(f"{env_id!r} is not one of the POPGym families: {', '.join(POPGYM_IDS)}")
        if episode_scale != 1 and env_id not in GROWING_IDS:
            raise ValueError(f"{env_id}'s episodes cannot grow: episode_scale applies to {', '.join(GROWING_IDS)}")
        register_popgym(env_id)
        probe = gym.make(env_id)
        self.episode_scale = episode_scale
        self.episode_length = probe.unwrapped.max_episode_length * episode_scale
        # every POPGym episode ends by itself within max_episode_length steps; the time limit only bounds a trial
        make_kwargs.setdefault("max_episode_steps", self.episode_length + 1)
        probe.close()
        super().__init__(env_id, protocol=protocol, **make_kwargs)

    def longer_episodes(self, factor: int) -> PopgymFamily:
        """This family with episodes `factor` times as long as its own (ValueError unless they can grow)."""
        return PopgymFamily(self.env_id, self.protocol, episode_scale=self.episode_scale * factor)

    def make_env(self, task: Task, seed: int | None = None) -> gym.Env:
        env = super().make_env(task, seed)
        if self.episode_scale != 1:  # the bandit's pulls: its truncation and its +-1 / length rewards
            env.unwrapped.max_episode_length = self.episode_length
        return env

    def _observations(self, env: gym.Env) -> gym.Env:
        return FlattenObservation(env)
