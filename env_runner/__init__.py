"""Gymnasium task families, rollout collection and (support, query) segments for meta-learning.

Importing the package registers the `PointNavigation-v0`, `HalfCheetahCrippled-v0` and `AntCrippled-v0`
environments with gymnasium (the last two need MuJoCo only when they are made).
"""

from env_runner.locomotion import register_locomotion_envs
from env_runner.navigation import register_point_navigation

register_point_navigation()
register_locomotion_envs()
