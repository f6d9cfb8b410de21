"""Gymnasium task families, rollout collection and (support, query) segments for meta-learning.

Importing the package registers the `PointNavigation-v0` and `HalfCheetahCrippled-v0` environments with
gymnasium (the latter needs MuJoCo only when it is made).
"""

from env_runner.locomotion import register_locomotion_envs
from env_runner.navigation import register_point_navigation

register_point_navigation()
register_locomotion_envs()
