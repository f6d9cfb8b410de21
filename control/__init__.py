"""Model-predictive control with a (possibly adapted) world model.

- `control.dynamics`: the `Dynamics` interface and `LearnedDynamics`, a stateful world model plus its
  normaliser, stepped in raw environment units.
- `control.true_dynamics`: the environments' own physics behind the same interface (the ceiling).
- `control.planner`: CEM and MPPI planners that roll all candidate action sequences through a
  `Dynamics` in one batch.
- `control.episode`: `run_episode`, which lets a planner act in a gymnasium env (with an optional
  test-time adaptation hook), and `random_policy_return`.
"""
