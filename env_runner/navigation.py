"""2D point navigation with a hidden goal: the meta-learning benchmark of Finn et al. (2017, MAML).

The agent is a point in the plane that starts at the origin. An action is a velocity in
[-0.1, 0.1]^2 (clipped to those bounds), the position moves by it, and the reward is minus the
Euclidean distance from the new position to the goal. The observation is the position only: the
goal is a property of the task, not of the observation, so it has to be inferred from rewards or
from experience on the task. Episodes are truncated after 100 steps by the registered time limit.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

POINT_NAVIGATION_ID = "PointNavigation-v0"
MAX_EPISODE_STEPS = 100


class PointNavigationEnv(gym.Env[np.ndarray, np.ndarray]):
    """A point in the plane steered by bounded velocities towards a hidden goal.

    Observation: position, shape (2,), float32. Action: velocity, shape (2,), in [-0.1, 0.1].
    Reward: -||position_after_step - (goal_x, goal_y)||. The goal lives in the attributes
    `goal_x` and `goal_y`, which a task family sets per task.
    """

    metadata = {"render_modes": []}
    max_speed = 0.1

    def __init__(self, goal_x: float = 0.5, goal_y: float = 0.5) -> None:
        self.goal_x = float(goal_x)
        self.goal_y = float(goal_y)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-self.max_speed, self.max_speed, shape=(2,), dtype=np.float32)
        self._position = np.zeros(2, dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._position = np.zeros(2, dtype=np.float32)
        return self._position.copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"expected action shape {self.action_space.shape}, received {action.shape}")
        velocity = np.clip(action, -self.max_speed, self.max_speed)
        self._position = (self._position + velocity).astype(np.float32)
        goal = np.array([self.goal_x, self.goal_y], dtype=np.float32)
        reward = -float(np.linalg.norm(self._position - goal))
        return self._position.copy(), reward, False, False, {}


def register_point_navigation() -> None:
    """Register `PointNavigation-v0` with gymnasium; calling it again changes nothing."""
    if POINT_NAVIGATION_ID not in gym.registry:
        gym.register(
            id=POINT_NAVIGATION_ID,
            entry_point="env_runner.navigation:PointNavigationEnv",
            max_episode_steps=MAX_EPISODE_STEPS,
        )
