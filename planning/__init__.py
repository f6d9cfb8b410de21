"""Model-predictive control with a (possibly adapted) world model, for E episodes at once.

- `planning.dynamics`: the `Dynamics` interface and `LearnedDynamics`, a stateful world model plus its
  normaliser, stepped in raw environment units, with shared or per-episode weights.
- `planning.true_dynamics`: the environments' own physics behind the same interface (the ceiling).
- `planning.planner`: CEM and MPPI planners that roll every episode's candidate action sequences through
  a `Dynamics` in one batch, with termination-aware returns.
- `planning.episode`: `run_episodes`, which lets a planner act in E gymnasium envs (with an optional
  test-time adaptation hook), and `random_episode_returns`.
"""
