"""Gymnasium task families, rollout collection and (support, query) segments for meta-learning.

Importing the package registers the `PointNavigation-v0` environment with gymnasium.
"""

from env_runner.navigation import register_point_navigation

register_point_navigation()
