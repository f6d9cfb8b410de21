"""RL² (Duan et al. 2016; Wang et al. 2016): PPO on a recurrent policy over trials of several episodes.

A trial is `episodes_per_trial` episodes of one task. The policy (`meta_rl.rl2_policy`) reads its previous
action and reward and keeps its memory across the episode ends of a trial, so it can adapt to the task
in its hidden state; no gradient step happens at test time. Each training iteration:

    tasks    N tasks drawn from the training tasks, one per sub-env of a gymnasium vector env
    collect  one trial per sub-env in step mode -> Trials: inputs (N, T, I), actions, log-probs, values,
             rewards, terminated / truncated, truncation bootstraps, valid (N, T)
    GAE      advantages and value targets (N, T) (`meta_rl.ppo.gae`, rewards times `reward_scale`)
    update   `update_epochs` passes over minibatches of whole trials; log-probs and values are recomputed
             in sequence mode from the trial start (the SSM's scan, or nn.GRU over the sequence)

Trials of one batch all start at t = 0 from a zero memory, so sequence mode needs no reset inside a row.
Trials whose episodes end early (terminations) are padded to the longest one; `valid` masks the padding.
The vector env autoresets in the same step (`AutoresetMode.SAME_STEP`): every recorded step is a real
transition, and a truncated step's value bootstrap reads `info["final_obs"]`.

Oracle variant: the task's parameters `[task.params[k] for k in sorted(task.params)]` are appended to the
observation (for navigation, the goal). Random baseline: uniform actions over the same trials.
Every seed derives from the run's seed through `core.seeding.derive_seed`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from core import threads
from core.checkpoint import atomic_save, load_checkpoint
from core.progress import progress_bar
from core.seeding import derive_seed
from core.settings import Rule, check_settings, integer, is_int, number, positive, require, setting
from env_runner.actions import action_dim, uniform_action
from env_runner.tasks import Task, TaskFamily
from meta_rl.ppo import gae, ppo_loss
from meta_rl.rl2_policy import RecurrentActorCritic, act, policy_inputs, sample_action


def _counts_of_two_or_more(value: object) -> bool:
    return isinstance(value, tuple) and all(is_int(length) and length >= 2 for length in value)


@dataclass(frozen=True)
class RL2Config:
    """Settings of RL² training and evaluation: CleanRL's PPO defaults, but for the iterations, learning rate,
    entropy bonus and reward scale, which were tuned on PointNavigation-v0's val tasks (8 to 13 minutes a seed on 2
    CPU cores busy with other runs)."""

    episodes_per_trial: int = setting(2, "episodes of one task per trial; the memory carries across them", integer(1))
    trials_per_iteration: int = setting(
        16, "trials collected per PPO iteration, one per sub-env of the vector env", integer(1)
    )
    iterations: int = setting(500, "PPO iterations (collect, then update)", integer(1))
    hidden_dim: int = setting(64, "width of the actor-critic and of its memory", integer(1))
    learning_rate: float = setting(3e-3, "Adam learning rate", positive())
    anneal_lr: bool = setting(True, "decay the learning rate linearly to 0 over the iterations")
    gamma: float = setting(0.99, "discount factor", number(0, 1))
    gae_lambda: float = setting(0.95, "GAE lambda", number(0, 1))
    update_epochs: int = setting(4, "passes over an iteration's trials", integer(1))
    num_minibatches: int = setting(
        4, "minibatches of whole trials per pass; must divide trials_per_iteration", integer(1)
    )
    clip_coef: float = setting(0.2, "PPO ratio clip", positive())
    clip_value_loss: bool = setting(True, "clip the value loss around the collected values")
    ent_coef: float = setting(0.0, "entropy bonus weight", number(0))
    vf_coef: float = setting(0.5, "value loss weight", number(0))
    max_grad_norm: float = setting(0.5, "gradient-norm clip", positive())
    reward_scale: float = setting(
        0.1, "rewards are multiplied by it for learning (inputs and GAE), not for reporting", positive()
    )
    val_every: int = setting(
        25, "every this many iterations, one trial per val task: the val learning curve (0: never)", integer(0)
    )
    longer_trials: tuple[int, ...] = setting(
        (),
        "evaluation only: also play test and OOD tasks in trials of these many episodes, longer than training's "
        "(length generalisation: does the return keep rising past the trial length trained on?)",
        Rule(_counts_of_two_or_more, "zero or more ints >= 2"),
    )
    longer_episodes: tuple[int, ...] = setting(
        (),
        "evaluation only: also play test tasks in episodes these many times as long as training's (families whose "
        "episodes can grow: POPGym's bandits), the return of each trained-length part on the trained scale",
        Rule(_counts_of_two_or_more, "zero or more ints >= 2"),
    )

    def __post_init__(self) -> None:
        check_settings(self)
        require(
            all(length > self.episodes_per_trial for length in self.longer_trials),
            "longer_trials",
            f"lengths above episodes_per_trial ({self.episodes_per_trial})",
            self.longer_trials,
        )
        require(
            self.trials_per_iteration % self.num_minibatches == 0,
            "num_minibatches",
            f"a divisor of trials_per_iteration ({self.trials_per_iteration})",
            self.num_minibatches,
        )


@dataclass
class Trials:
    """One trial per row, every row starting at t = 0; T is the longest trial's length.

    inputs (N, T, I) float32: the policy inputs x_t. actions: (N, T, A) float32 unit-space Gaussian samples
    (Box, before clipping) or (N, T) int64 (Discrete). log_probs, values, bootstrap_values (N, T) float32:
    at collection; bootstrap_values is V(final observation) at truncated steps, 0 elsewhere. rewards (N, T)
    float32 as the env returned them. terminated, truncated, valid (N, T) bool: valid is False after a
    row's trial has ended. episode_index (N, T) int64: the episode of the trial each step belongs to.
    """

    inputs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    bootstrap_values: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    valid: torch.Tensor
    episode_index: torch.Tensor

    def episode_returns(self, episodes_per_trial: int) -> torch.Tensor:
        """Undiscounted return of each episode of each trial, (N, episodes_per_trial)."""
        index = self.episode_index.clamp(max=episodes_per_trial - 1)
        return self._summed(index, episodes_per_trial)

    def part_returns(self, parts: int) -> torch.Tensor:
        """Undiscounted return of each of `parts` equal parts of each trial's steps, (N, parts)."""
        steps = torch.arange(self.valid.shape[1])  # (T,)
        index = (steps * parts // self.valid.sum(1, keepdim=True)).clamp(max=parts - 1)  # (N, T)
        return self._summed(index, parts)

    def _summed(self, index: torch.Tensor, count: int) -> torch.Tensor:
        """The valid rewards (N, T) added up into `count` bins by index (N, T) -> (N, count)."""
        rewards = torch.where(self.valid, self.rewards, torch.zeros_like(self.rewards)).double()
        return torch.zeros(rewards.shape[0], count, dtype=torch.float64).scatter_add_(1, index, rewards)


def task_features(tasks: Sequence[Task]) -> torch.Tensor:
    """The oracle's extra observation: each task's parameters in sorted-name order, (N, P) float32."""
    return torch.tensor([[task.params[k] for k in sorted(task.params)] for task in tasks], dtype=torch.float32)


def build_policy(family: TaskFamily, memory: str, config: RL2Config, oracle: bool = False) -> RecurrentActorCritic:
    """The actor-critic for `family` (observation widened by the task parameters when `oracle`)."""
    obs_dim = family.obs_dim + (len(family.param_names) if oracle else 0)
    return RecurrentActorCritic(obs_dim, family.action_space, memory=memory, hidden_dim=config.hidden_dim)


def reads_task_params(policy: RecurrentActorCritic, family: TaskFamily) -> bool:
    """Whether `policy` is an oracle, told by its observation width."""
    if policy.obs_dim == family.obs_dim:
        return False
    if policy.obs_dim == family.obs_dim + len(family.param_names):
        return True
    raise ValueError(
        f"policy reads observations of width {policy.obs_dim}, {family.env_id} has {family.obs_dim} "
        f"(+ {len(family.param_names)} task parameters for an oracle)"
    )


def make_trial_envs(family: TaskFamily, tasks: Sequence[Task]) -> gym.vector.SyncVectorEnv:
    """One sub-env per task, autoresetting in the same step (no fake transitions)."""
    envs = gym.vector.SyncVectorEnv(
        [lambda task=task: family.make_env(task) for task in tasks], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    if envs.envs[0].spec is None or envs.envs[0].spec.max_episode_steps is None:
        envs.close()
        raise ValueError(f"{family.env_id} has no time limit (max_episode_steps): trials could run forever")
    return envs


def truncation_values(policy: RecurrentActorCritic, final_x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """V(final observation) (N,): one more step from the memory after the truncated step, inputs final_x (N, I).

    The step is not taken: the trial goes on from the reset observation with the same memory.
    """
    with torch.no_grad():
        return policy(final_x, state)[1]


def collect_trials(
    family: TaskFamily,
    tasks: Sequence[Task],
    episodes_per_trial: int,
    seed: int,
    policy: RecurrentActorCritic | None = None,
    oracle: bool = False,
    reward_scale: float = 1.0,
    reset_seeds: Sequence[int] | None = None,
) -> Trials:
    """Run one trial on each task at once, in step mode; `policy=None` acts uniformly at random.

    Sub-env i first resets with `reset_seeds[i]` (default `derive_seed(seed, "rl2-reset", i)`), so policies given
    the same seeds meet the same initial states. Rows whose trial is over keep stepping (marked invalid) until every
    trial is over.
    """
    envs = make_trial_envs(family, tasks)
    space = envs.single_action_space
    generator = torch.Generator().manual_seed(derive_seed(seed, "rl2-actions"))
    extra = task_features(tasks) if oracle else torch.zeros(len(tasks), 0)  # (N, P)
    if reset_seeds is None:
        reset_seeds = [derive_seed(seed, "rl2-reset", i) for i in range(len(tasks))]
    if len(reset_seeds) != len(tasks):
        raise ValueError(f"{len(reset_seeds)} reset seeds for {len(tasks)} tasks")
    obs, _ = envs.reset(seed=[int(value) for value in reset_seeds])
    prev_action = torch.zeros(len(tasks), action_dim(space))  # (N, A)
    prev_reward = torch.zeros(len(tasks))  # (N,)
    episode_start = torch.ones(len(tasks), dtype=torch.bool)  # (N,)
    episodes_done = torch.zeros(len(tasks), dtype=torch.long)  # (N,)
    state = policy.initial_state(len(tasks)) if policy is not None else None
    steps: list[dict[str, torch.Tensor]] = []
    while bool((episodes_done < episodes_per_trial).any()):
        x = policy_inputs(torch.cat([torch.as_tensor(obs), extra], 1), prev_action, prev_reward, episode_start)
        zeros = torch.zeros(len(tasks))
        if policy is None:
            action, log_prob, value = uniform_action(space, len(tasks), generator), zeros, zeros
        else:
            with torch.no_grad():
                distribution, value, state = policy(x, state)
                action = sample_action(distribution, generator)
                log_prob = distribution.log_prob(action)
        env_action, model_action = act(action, space)
        obs, reward, terminated, truncated, info = envs.step(env_action)
        reward = torch.as_tensor(reward, dtype=torch.float32)  # (N,) as the env returned it
        scaled_reward = reward * reward_scale  # what the policy reads as r_{t-1}
        terminated, truncated = torch.as_tensor(terminated), torch.as_tensor(truncated)
        bootstrap = zeros
        if policy is not None and bool(truncated.any()):
            final_obs = np.stack([info["final_obs"][i] if done else obs[i] for i, done in enumerate(truncated)])
            final_x = policy_inputs(
                torch.cat([torch.as_tensor(final_obs), extra], 1), model_action, scaled_reward, zeros
            )
            bootstrap = torch.where(truncated, truncation_values(policy, final_x, state), zeros)
        steps.append(
            {
                "inputs": x,
                "actions": action,
                "log_probs": log_prob,
                "values": value,
                "bootstrap_values": bootstrap,
                "rewards": reward,
                "terminated": terminated,
                "truncated": truncated,
                "valid": episodes_done < episodes_per_trial,
                "episode_index": episodes_done.clone(),
            }
        )
        episode_start = terminated | truncated
        episodes_done += episode_start.long()
        prev_action, prev_reward = model_action, scaled_reward
    envs.close()
    return Trials(**{name: torch.stack([step[name] for step in steps], 1) for name in steps[0]})


def ppo_update(
    policy: RecurrentActorCritic,
    optimizer: torch.optim.Optimizer,
    trials: Trials,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    config: RL2Config,
    generator: torch.Generator,
) -> dict[str, float]:
    """`update_epochs` passes over shuffled minibatches of whole trials; returns the last minibatch's losses and
    "skipped_minibatches": steps not taken because the loss or its gradient was not finite (an importance ratio that
    overflowed), so that one such minibatch cannot turn every weight into NaN."""
    num_trials = trials.inputs.shape[0]
    skipped = 0
    for _ in range(config.update_epochs):
        for rows in torch.randperm(num_trials, generator=generator).split(num_trials // config.num_minibatches):
            distribution, new_values, _ = policy(trials.inputs[rows])  # sequence mode from the trial start
            loss = ppo_loss(
                distribution.log_prob(trials.actions[rows]),
                trials.log_probs[rows],
                advantages[rows],
                new_values,
                trials.values[rows],
                returns[rows],
                distribution.entropy(),
                trials.valid[rows],
                clip_coef=config.clip_coef,
                clip_value_loss=config.clip_value_loss,
                ent_coef=config.ent_coef,
                vf_coef=config.vf_coef,
            )
            optimizer.zero_grad()
            loss.total.backward()
            norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            if torch.isfinite(loss.total) and torch.isfinite(norm):
                optimizer.step()
            else:
                skipped += 1
    return {
        "policy_loss": loss.policy.item(),
        "value_loss": loss.value.item(),
        "entropy": loss.entropy.item(),
        "approx_kl": loss.approx_kl.item(),
        "clip_fraction": loss.clip_fraction.item(),
        "skipped_minibatches": skipped,
    }


def _load_training_state(
    path: Path, policy: RecurrentActorCritic, optimizer: torch.optim.Optimizer, identity: dict
) -> tuple[int, list[dict], dict | None]:
    """Restore the policy and optimiser; return (iterations done, the curve, the best val iterate's weights)."""
    state = load_checkpoint(path, map_location="cpu")
    if state["identity"] != identity:
        raise ValueError(
            f"cannot resume {path}: it was written by another run, saved {state['identity']}, requested {identity}"
        )
    policy.load_state_dict(state["policy"])
    optimizer.load_state_dict(state["optimizer"])
    if "best_policy" not in state:
        raise ValueError(f"cannot resume {path}: it predates keeping the best val iterate; start the run again")
    return int(state["iteration"]), list(state["training_curve"]), state["best_policy"]


COLLAPSE_SHARE = 0.5  # a collapse: the val score falls below the best by more than this share of the best's gain


def val_score(row: dict) -> float:
    """What a val measurement ranks by: the return of a whole trial (the sum of its episodes' mean returns)."""
    return float(sum(row["val_returns"]))


def best_val_iteration(curve: list[dict]) -> int | None:
    """The iteration whose val score is the highest (the earliest of ties); None without val measurements."""
    measured = [row for row in curve if "val_returns" in row]
    if not measured:
        return None
    return max(measured, key=lambda row: (val_score(row), -row["iteration"]))["iteration"]


def collapsed(curve: list[dict]) -> bool:
    """Training collapsed: its last two val scores both lie below the best by more than `COLLAPSE_SHARE` of what
    the best gained over the first measurement (it fell, and stayed down)."""
    scores = [val_score(row) for row in curve if "val_returns" in row]
    if len(scores) < 3:
        return False
    best = max(scores)
    floor = best - COLLAPSE_SHARE * (best - scores[0])
    return best > scores[0] and all(score < floor for score in scores[-2:])


def mmer(curve: list[dict]) -> float:
    """POPGym's MMER (Morad et al. 2023): the max over training iterations of the mean episodic return of the
    iteration's trials (every episode of a trial counted)."""
    return max(sum(row["episode_returns"]) / len(row["episode_returns"]) for row in curve)


def train_rl2(
    family: TaskFamily,
    train_tasks: Sequence[Task],
    config: RL2Config,
    seed: int,
    memory: str = "ssm",
    oracle: bool = False,
    progress: bool = True,
    checkpoint_path: str | Path | None = None,
    val_tasks: Sequence[Task] = (),
    on_iteration: Callable[[dict], None] | None = None,
) -> tuple[RecurrentActorCritic, list[dict]]:
    """Train an RL² policy with PPO; returns it and one dict of statistics per iteration (`on_iteration` receives
    each as it is made).

    Every `config.val_every` iterations (and after the last), the iteration's dict adds "val_returns": the mean over
    `val_tasks` of each episode's return in one trial per task (its own seeds: training's randomness is unchanged).
    The policy returned holds the weights of the best of those measurements (`best_val_iteration`), not the last
    iterate's: PPO can slide or collapse late. Without val measurements it is the last iterate.

    With `checkpoint_path`, the policy, optimiser and training curve are written atomically after every
    iteration, and an existing checkpoint of the same run (config, seed, memory, oracle) is resumed from:
    iteration k's randomness depends only on (seed, k), so a resumed run ends with the same weights.
    """
    if not train_tasks:
        raise ValueError("train_rl2 needs at least one training task")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "rl2-init"))
        policy = build_policy(family, memory, config, oracle)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.learning_rate, eps=1e-5)
    identity = {"config": asdict(config), "seed": seed, "memory": memory, "oracle": oracle, "env_id": family.env_id}
    first_iteration, curve, best = 0, [], None
    if checkpoint_path is not None and Path(checkpoint_path).is_file():
        first_iteration, curve, best = _load_training_state(Path(checkpoint_path), policy, optimizer, identity)
    bar = progress_bar(
        range(first_iteration, config.iterations), progress, f"train rl2 {memory}{' oracle' if oracle else ''}"
    )
    for iteration in bar:
        threads.tick()
        if config.anneal_lr:
            optimizer.param_groups[0]["lr"] = (1.0 - iteration / config.iterations) * config.learning_rate
        rng = np.random.default_rng(derive_seed(seed, "rl2-tasks", iteration))
        picks = rng.choice(
            len(train_tasks), config.trials_per_iteration, replace=len(train_tasks) < config.trials_per_iteration
        )
        trials = collect_trials(
            family,
            [train_tasks[i] for i in picks],
            config.episodes_per_trial,
            derive_seed(seed, "rl2-collect", iteration),
            policy,
            oracle,
            config.reward_scale,
        )
        advantages, returns = gae(
            trials.rewards * config.reward_scale,
            trials.values,
            trials.bootstrap_values,
            trials.terminated,
            trials.truncated,
            config.gamma,
            config.gae_lambda,
        )
        generator = torch.Generator().manual_seed(derive_seed(seed, "rl2-minibatches", iteration))
        stats = ppo_update(policy, optimizer, trials, advantages, returns, config, generator)
        episode_means = trials.episode_returns(config.episodes_per_trial).mean(0).tolist()
        env_steps = (curve[-1]["env_steps"] if curve else 0) + int(trials.valid.sum())
        curve.append({"iteration": iteration + 1, "env_steps": env_steps, **stats, "episode_returns": episode_means})
        if (
            val_tasks
            and config.val_every
            and ((iteration + 1) % config.val_every == 0 or iteration + 1 == config.iterations)
        ):
            returns = evaluate_rl2(policy, family, val_tasks, config, derive_seed(seed, "rl2-val", iteration))
            curve[-1]["val_returns"] = np.mean(returns, axis=0).tolist()
            if best_val_iteration(curve) == iteration + 1:
                best = copy.deepcopy(policy.state_dict())
        bar.set_postfix(returns=" ".join(f"{r:.1f}" for r in episode_means))
        if checkpoint_path is not None:
            atomic_save(
                {
                    "policy": policy.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "iteration": iteration + 1,
                    "training_curve": curve,
                    "best_policy": best,
                    "identity": identity,
                },
                checkpoint_path,
            )
        if on_iteration is not None:
            on_iteration(curve[-1])
    if best is not None:
        policy.load_state_dict(best)
    return policy, curve


def evaluate_rl2(
    policy: RecurrentActorCritic | None,
    family: TaskFamily,
    tasks: Sequence[Task],
    config: RL2Config,
    seed: int,
    reset_seeds: Sequence[int] | None = None,
    parts: int | None = None,
) -> list[list[float]]:
    """One trial per task with the policy's own sampling; returns `returns[task][episode]` (tasks x episodes_per_trial),
    or with `parts` the return of each of as many equal parts of the trial, `returns[task][part]`.

    The memory adapts within the trial; no weights change. An oracle policy (told by its observation
    width) reads the tasks' parameters; `policy=None` acts uniformly at random. `reset_seeds`: each trial's first
    reset (see `collect_trials`).
    """
    trials = collect_trials(
        family,
        tasks,
        config.episodes_per_trial,
        seed,
        policy,
        policy is not None and reads_task_params(policy, family),
        config.reward_scale,
        reset_seeds,
    )
    if parts is None:
        return trials.episode_returns(config.episodes_per_trial).tolist()
    return trials.part_returns(parts).tolist()
