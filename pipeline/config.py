"""Every setting of a pipeline run, with the defaults of `python main.py` and the `--quick` smoke run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class PipelineConfig:
    """Settings of one pipeline run (saved as config.json; a resumed run must match them exactly).

    Data: `steps_per_task` random steps on each train task, cut into rows of `onpolicy_steps` (the length of
    every training row, random or on-policy; support_len + query_len must fit in it). Meta-training:
    `num_epochs` x `iterations_per_epoch` meta-updates of `meta_batch_size` tasks x `windows_per_task`
    windows; the last `onpolicy_rounds` epochs first collect `onpolicy_steps` with the planner and test-time
    adaptation on `onpolicy_tasks` train tasks. Evaluation: `eval_windows_per_task` windows per held-out task
    after each of `eval_steps`; control on the first `control_tasks` test tasks, `episode_steps` each.
    Planner: CEM with `planner_*`. Test-time adaptation: `adapt_*` (the learning rate defaults to inner_lr).
    """
    env_name: str = "Pendulum-v1"
    seed: int = 0
    device: str = "cpu"
    # tasks and data
    num_train_tasks: int = 40
    num_test_tasks: int = 10
    num_ood_tasks: int = 10
    steps_per_task: int = 400
    # world model
    input_dim: int | None = None  # None: the width the environment gives (obs + action)
    state_dim: int = 64
    hidden_dim: int = 64
    # meta-training
    num_epochs: int = 10
    iterations_per_epoch: int = 100
    meta_batch_size: int = 16
    windows_per_task: int = 4
    support_len: int = 16
    query_len: int = 16
    inner_lr: float = 0.05
    outer_lr: float = 1e-3
    num_inner_steps: int = 1
    first_order: bool = False
    grad_clip_norm: float = 10.0
    inner_grad_clip: float = 10.0  # caps inner-loop and test-time gradient norms (training and evaluation)
    # evaluation
    eval_windows_per_task: int = 8
    eval_steps: tuple[int, ...] = (0, 1, 5)
    # control
    control: bool = True
    control_tasks: int = 10
    episode_steps: int = 200
    onpolicy_rounds: int = 2
    onpolicy_steps: int = 200
    onpolicy_tasks: int = 8
    planner_horizon: int = 15
    planner_candidates: int = 200
    planner_iterations: int = 3
    adapt_every: int = 5
    adapt_window: int = 16
    adapt_lr: float | None = None  # None: the inner learning rate
    adapt_steps: int = 1
    adapt_max_loss_increase: float | None = 1.0  # roll back test-time updates that raise the window loss
    adapt_window_state: str = "zero"  # as MetaMAML support windows are trained: adapt from init_hidden

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> PipelineConfig:
        values = dict(values)
        values["eval_steps"] = tuple(values["eval_steps"])
        return cls(**values)


def quick_overrides() -> dict:
    """A seconds-long smoke configuration: every stage runs, on tiny sizes."""
    return {
        "num_train_tasks": 6, "num_test_tasks": 3, "num_ood_tasks": 3, "steps_per_task": 64,
        "state_dim": 16, "hidden_dim": 16, "num_epochs": 2, "iterations_per_epoch": 5, "meta_batch_size": 4,
        "windows_per_task": 2, "support_len": 8, "query_len": 8, "eval_windows_per_task": 2,
        "control_tasks": 1, "episode_steps": 20, "onpolicy_rounds": 1, "onpolicy_steps": 16, "onpolicy_tasks": 2,
        "planner_horizon": 5, "planner_candidates": 32, "planner_iterations": 2, "adapt_every": 4,
        "adapt_window": 8,
    }


def with_overrides(config: PipelineConfig, **values) -> PipelineConfig:
    return replace(config, **{key: value for key, value in values.items() if value is not None})
