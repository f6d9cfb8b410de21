"""MuJoCo locomotion task families: splits, physics reaching the simulator, rewards, determinism."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from env_runner.families import make_task_family
from env_runner.locomotion import (
    ANT_CRIPPLED_ID,
    ANT_MASS_ID,
    HALF_CHEETAH_CRIPPLED_ID,
    AntCrippledFamily,
    HalfCheetahFamily,
)
from env_runner.tasks import OOD_MARGIN, Task, check_disjoint

UNIFORMLY_SCALED_IDS = ["HalfCheetah-v5", "Hopper-v5"]
SCALED_IDS = [*UNIFORMLY_SCALED_IDS, ANT_MASS_ID]
CRIPPLED_PARTS = {  # env id: (param, training parts, OOD parts)
    HALF_CHEETAH_CRIPPLED_ID: ("crippled_joint", {0.0, 1.0, 3.0, 4.0}, {2.0, 5.0}),
    ANT_CRIPPLED_ID: ("crippled_leg", {0.0, 1.0, 2.0}, {3.0}),
}
MUJOCO_IDS = [*SCALED_IDS, *CRIPPLED_PARTS]
TERMINATING_IDS = {"Hopper-v5", ANT_CRIPPLED_ID}


@pytest.fixture(scope="module", autouse=True)
def mujoco_log_in_a_temporary_directory(tmp_path_factory):
    """MuJoCo writes MUJOCO_LOG.TXT into the working directory on model warnings (Hopper's XML raises one)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("mujoco"))
        yield


@pytest.fixture(scope="module")
def families():
    return {env_id: make_task_family(env_id, max_episode_steps=100) for env_id in MUJOCO_IDS}


def rollout(env: gym.Env, seed: int, steps: int) -> dict[str, np.ndarray]:
    """`steps` transitions under uniform random actions from a seeded generator, resetting when an episode ends."""
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    obs, _ = env.reset(seed=seed)
    columns = {"obs": [], "action": [], "next_obs": [], "reward": [], "terminated": []}
    for _ in range(steps):
        action = rng.uniform(low, high).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for name, value in zip(columns, (obs, action, next_obs, reward, terminated), strict=True):
            columns[name].append(value)
        obs = env.reset()[0] if terminated or truncated else next_obs
    return {name: np.asarray(values) for name, values in columns.items()}


def crippled_task(env_id: str, part: int, scale: float) -> Task:
    return Task(env_id, "x", 0, {CRIPPLED_PARTS[env_id][0]: float(part), "crippled_scale": scale})


# --- splits --------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", SCALED_IDS)
def test_scaled_splits_lie_inside_the_training_box_and_ood_outside_it_on_both_sides(families, env_id):
    family = families[env_id]
    ood_scales = []
    for seed in range(30):
        splits = {split: family.sample(8, seed=seed, split=split) for split in ("train", "val", "test", "ood")}
        check_disjoint(splits)
        for split in ("train", "val", "test"):
            for task in splits[split]:
                assert all(0.5 <= value <= 2.0 for value in family.coefficients(task).values()), task
                assert family.ood_margin(task) <= 0.0
        for task in splits["ood"]:
            assert family.ood_margin(task) >= OOD_MARGIN - 1e-9, task
            ood_scales.extend(family.coefficients(task).values())
    assert min(ood_scales) < 0.5 and max(ood_scales) > 2.0
    assert all(0.25 <= scale <= 4.0 for scale in ood_scales)


@pytest.mark.parametrize("env_id", CRIPPLED_PARTS)
def test_crippled_ood_tasks_cripple_a_part_never_crippled_in_training(families, env_id):
    family = families[env_id]
    part_name, training_parts, ood_parts = CRIPPLED_PARTS[env_id]
    parts = {"train": set(), "val": set(), "test": set(), "ood": set()}
    for seed in range(30):
        splits = {split: family.sample(8, seed=seed, split=split) for split in parts}
        check_disjoint(splits)
        for split, tasks in splits.items():
            for task in tasks:
                parts[split].add(task.params[part_name])
                assert 0.0 <= task.params["crippled_scale"] <= 0.5
                if split == "ood":
                    assert family.ood_margin(task) >= OOD_MARGIN - 1e-9
                else:
                    assert family.ood_margin(task) <= 0.0
    assert parts["train"] == parts["val"] == parts["test"] == training_parts
    assert parts["ood"] == ood_parts


@pytest.mark.parametrize("env_id", CRIPPLED_PARTS)
def test_crippled_margin_is_infinite_for_an_untrained_part_and_the_scale_margin_otherwise(families, env_id):
    family = families[env_id]
    _, training_parts, ood_parts = CRIPPLED_PARTS[env_id]
    assert family.ood_margin(crippled_task(env_id, int(min(ood_parts)), 0.3)) == float("inf")
    assert family.ood_margin(crippled_task(env_id, int(min(training_parts)), 0.3)) <= 0.0
    assert family.ood_margin(family.default_task()) == pytest.approx(1.0)  # healthy: scale 1, one width beyond 0.5


# --- the physics reaches the simulator -----------------------------------------------------------


@pytest.mark.parametrize("env_id", UNIFORMLY_SCALED_IDS)
def test_mass_and_damping_scales_are_applied_to_the_load_time_model(families, env_id):
    family = families[env_id]
    task = family.sample(1, seed=0, split="ood")[0]
    mass_scale, damping_scale = task.params["mass_scale"], task.params["damping_scale"]
    with family.make_env(task) as env, family.make_env(family.default_task()) as default_env:
        model = env.unwrapped.model
        np.testing.assert_allclose(model.body_mass, family.load_time_body_mass * mass_scale, rtol=1e-12)
        np.testing.assert_allclose(model.dof_damping, family.load_time_dof_damping * damping_scale, rtol=1e-12)
        assert model.body_subtreemass[0] == pytest.approx(family.load_time_body_mass.sum() * mass_scale)
        np.testing.assert_array_equal(default_env.unwrapped.model.body_mass, family.load_time_body_mass)
        np.testing.assert_array_equal(default_env.unwrapped.model.dof_damping, family.load_time_dof_damping)


def test_the_ant_mass_change_is_cadms_front_legs_times_the_scale_back_legs_divided_by_it(families):
    family = families[ANT_MASS_ID]
    task = Task(ANT_MASS_ID, "x", 0, {"mass_scale": 0.4, "damping_scale": 2.0})
    with family.make_env(task) as env:
        model = env.unwrapped.model
        front = [model.body(name).id for name in ("front_left_leg", "aux_1", "front_right_leg", "aux_2")]
        back = [model.body(name).id for name in ("back_leg", "aux_3", "right_back_leg", "aux_4")]
        torso = model.body("torso").id
        np.testing.assert_allclose(model.body_mass[front], family.load_time_body_mass[front] * 0.4, rtol=1e-12)
        np.testing.assert_allclose(model.body_mass[back], family.load_time_body_mass[back] / 0.4, rtol=1e-12)
        assert model.body_mass[torso] == family.load_time_body_mass[torso]
        np.testing.assert_allclose(model.dof_damping[2:8], family.load_time_dof_damping[2:8] * 2.0, rtol=1e-12)
        np.testing.assert_allclose(model.dof_damping[8:14], family.load_time_dof_damping[8:14] / 2.0, rtol=1e-12)


def test_the_ant_mass_family_has_cadms_reward_weights_and_never_terminates(families):
    env = families[ANT_MASS_ID].reference_env
    assert (env._ctrl_cost_weight, env._healthy_reward, env._contact_cost_weight) == (0.005, 0.05, 0.0)
    assert families[ANT_MASS_ID].termination_fn(families[ANT_MASS_ID].default_task()) is None


def test_default_task_steps_exactly_like_the_unmodified_environment(families):
    family = families["HalfCheetah-v5"]
    plain = gym.make("HalfCheetah-v5", exclude_current_positions_from_observation=False)
    with family.make_env(family.default_task()) as env, plain:
        np.testing.assert_array_equal(rollout(env, 3, 20)["next_obs"], rollout(plain, 3, 20)["next_obs"])


def test_a_heavier_cheetah_moves_differently_under_the_same_actions(families):
    family = families["HalfCheetah-v5"]
    light = Task(family.env_id, "x", 0, {"mass_scale": 1.0, "damping_scale": 1.0})
    heavy = Task(family.env_id, "x", 1, {"mass_scale": 2.0, "damping_scale": 1.0})
    with family.make_env(light) as light_env, family.make_env(heavy) as heavy_env:
        light_run, heavy_run = rollout(light_env, 0, 20), rollout(heavy_env, 0, 20)
    np.testing.assert_array_equal(light_run["obs"][0], heavy_run["obs"][0])
    velocity_change = np.abs(np.diff(light_run["next_obs"][:, 9:], axis=0)).mean()
    heavy_velocity_change = np.abs(np.diff(heavy_run["next_obs"][:, 9:], axis=0)).mean()
    assert heavy_velocity_change < 0.9 * velocity_change  # the same torques accelerate twice the mass less


def test_the_crippled_motor_delivers_its_share_of_the_torque(families):
    family = families[HALF_CHEETAH_CRIPPLED_ID]
    with family.make_env(crippled_task(family.env_id, 3, 0.25), seed=0) as env:
        env.reset()
        cheetah = env.unwrapped
        action = np.array([0.5, -0.5, 0.5, 2.0, -0.5, 0.5])  # motor 3 commanded beyond its range: clipped to 1
        cheetah.step(action)
        dofs = cheetah.model.jnt_dofadr[cheetah.model.actuator_trnid[:, 0]]
        gear = np.array([120.0, 90.0, 60.0, 120.0, 60.0, 30.0])
        expected = gear * np.clip(action, -1.0, 1.0) * np.array([1, 1, 1, 0.25, 1, 1])
        np.testing.assert_allclose(cheetah.data.qfrc_actuator[dofs], expected, rtol=1e-12)


def test_a_crippled_ant_leg_weakens_both_of_its_motors(families):
    family = families[ANT_CRIPPLED_ID]
    with family.make_env(crippled_task(ANT_CRIPPLED_ID, 2, 0.0), seed=0) as env:
        env.reset()
        ant = env.unwrapped
        ant.step(np.ones(8))
        dofs = ant.model.jnt_dofadr[ant.model.actuator_trnid[:, 0]]
        np.testing.assert_allclose(ant.data.qfrc_actuator[dofs], 150.0 * np.array([1, 1, 1, 1, 0, 0, 1, 1]))


def test_an_uncrippled_cheetah_steps_exactly_like_halfcheetah(families):
    family = families[HALF_CHEETAH_CRIPPLED_ID]
    plain = gym.make("HalfCheetah-v5", exclude_current_positions_from_observation=False)
    with family.make_env(family.default_task()) as env, plain:
        crippled_run, plain_run = rollout(env, 4, 20), rollout(plain, 4, 20)
    for name in ("next_obs", "reward"):
        np.testing.assert_array_equal(crippled_run[name], plain_run[name])


# --- rewards, terminations, determinism ----------------------------------------------------------


@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_reward_and_termination_fns_equal_the_environment_on_random_rollouts(families, env_id):
    family = families[env_id]
    tasks = [family.default_task(), *family.sample(1, seed=0), *family.sample(1, seed=0, split="ood")]
    terminations = 0
    for seed, task in enumerate(tasks):
        with family.make_env(task) as env:
            run = {name: torch.as_tensor(value, dtype=torch.float64) for name, value in rollout(env, seed, 100).items()}
        transition = (run["obs"], run["action"], run["next_obs"])
        torch.testing.assert_close(family.reward_fn(task)(*transition), run["reward"], rtol=1e-5, atol=1e-6)
        terminated = run["terminated"].bool()
        termination_fn = family.termination_fn(task)
        predicted = torch.zeros_like(terminated) if termination_fn is None else termination_fn(*transition)
        assert torch.equal(predicted, terminated)
        terminations += int(terminated.sum())
    if env_id == "Hopper-v5":
        assert terminations > 0  # random actions topple the hopper within 100 steps


@pytest.mark.parametrize("env_id", sorted(TERMINATING_IDS))
def test_termination_fn_equals_is_healthy_on_states_at_and_beyond_the_healthy_bounds(families, env_id):
    family = families[env_id]
    task = family.default_task()
    terminated = family.termination_fn(task)
    with family.make_env(task) as env:
        env.reset(seed=0)
        sim = env.unwrapped
        z_low, z_high = sim._healthy_z_range
        heights = [z_low - 0.01, z_low, z_low + 0.01, 0.9 * z_low + 0.1 * min(z_high, 2.0), z_high + 0.01]
        states, healthy = [], []
        for index, z in enumerate(heights + [float("nan")]):
            qpos, qvel = sim.init_qpos.copy(), sim.init_qvel.copy()
            qpos[1 if env_id == "Hopper-v5" else 2] = z
            qpos[2 if env_id == "Hopper-v5" else 7] = 0.05 * index  # Hopper's pitch, one of the Ant's hips
            sim.set_state(qpos, qvel)
            states.append(sim._get_obs())
            healthy.append(sim.is_healthy)
    next_obs = torch.as_tensor(np.array(states))
    predicted = terminated(next_obs, torch.zeros(len(states), family.action_dim), next_obs)
    assert predicted.tolist() == [not value for value in healthy]
    assert any(healthy) and not all(healthy)


def test_hopper_pays_no_healthy_reward_on_the_step_that_ends_the_episode(families):
    family = families["Hopper-v5"]
    task = family.default_task()
    with family.make_env(task) as env:
        run = {name: torch.as_tensor(value, dtype=torch.float64) for name, value in rollout(env, 0, 100).items()}
    terminal = run["terminated"].bool()
    assert terminal.any()
    dt = env.unwrapped.dt
    running = (run["next_obs"][:, 0] - run["obs"][:, 0]) / dt - 1e-3 * (run["action"] ** 2).sum(-1)
    torch.testing.assert_close(run["reward"] - running, (~terminal).double(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_the_same_seed_gives_the_same_transitions(families, env_id):
    family = families[env_id]
    task = family.sample(1, seed=2, split="val")[0]
    runs = []
    for reset_seed in (7, 7, 8):
        with family.make_env(task) as env:
            runs.append(rollout(env, reset_seed, 30))
    for name in ("obs", "next_obs", "reward", "terminated"):
        np.testing.assert_array_equal(runs[0][name], runs[1][name])
    assert not np.array_equal(runs[0]["obs"][0], runs[2]["obs"][0])


@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_every_family_env_passes_gymnasium_check_env(families, env_id):
    family = families[env_id]
    with warnings.catch_warnings():  # advice, not failures: the env is wrapped in TaskInfo and MuJoCo's
        warnings.filterwarnings("ignore", message=".*different from the unwrapped")  # observations are unbounded
        warnings.filterwarnings("ignore", message=".*Box observation space (minimum|maximum) value is")
        check_env(family.make_env(family.sample(1, seed=0, split="val")[0]), skip_render_check=True)


def test_x_is_the_first_observation_entry_and_translation_invariant(families):
    for env_id, family in families.items():
        assert family.translation_invariant_obs == ((0, 1) if env_id in (ANT_CRIPPLED_ID, ANT_MASS_ID) else (0,))
        with family.make_env(family.default_task()) as env:
            obs, _ = env.reset(seed=0)
            assert obs[0] == env.unwrapped.data.qpos[0]


# --- bad input -----------------------------------------------------------------------------------


def test_unknown_id_raises_naming_it_and_the_mujoco_families():
    with pytest.raises(ValueError, match="NoSuchCheetah-v0") as error:
        make_task_family("NoSuchCheetah-v0")
    assert all(env_id in str(error.value) for env_id in MUJOCO_IDS)


def test_a_task_of_another_family_is_rejected(families):
    cheetah_task = families["HalfCheetah-v5"].sample(1, seed=0)[0]
    with pytest.raises(ValueError, match="task of HalfCheetah-v5 given to the Hopper-v5 family"):
        families["Hopper-v5"].make_env(cheetah_task)
    with pytest.raises(ValueError, match="HalfCheetah-v5"):
        families["Hopper-v5"].coefficients(cheetah_task)


@pytest.mark.parametrize("env_id", CRIPPLED_PARTS)
def test_crippled_env_rejects_an_unknown_part_and_a_scale_outside_0_1(families, env_id):
    family = families[env_id]
    part_name = CRIPPLED_PARTS[env_id][0]
    bad_scale = r"crippled_scale .*\[0, 1\]"
    bad_tasks = [(crippled_task(env_id, 8, 0.5), part_name), (crippled_task(env_id, 1, 1.5), bad_scale)]
    for task, message in bad_tasks:
        with family.make_env(task, seed=0) as env:
            env.reset()
            with pytest.raises(ValueError, match=message):
                env.step(np.zeros(family.action_dim, dtype=np.float32))


def test_a_family_refuses_make_kwargs_its_reward_cannot_follow():
    with pytest.raises(ValueError, match="exclude_current_positions_from_observation=False"):
        HalfCheetahFamily(exclude_current_positions_from_observation=True)
    with pytest.raises(ValueError, match="contact_cost_weight=0.0"):
        AntCrippledFamily(contact_cost_weight=5e-4)


def test_without_mujoco_making_a_family_names_the_install_command():
    script = (
        "import sys; sys.modules['mujoco'] = None\n"
        "from env_runner.families import make_task_family\n"
        "make_task_family('HalfCheetah-v5')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "DependencyNotInstalled" in result.stderr and 'pip install "gymnasium[mujoco]"' in result.stderr


@pytest.mark.parametrize(
    "env_id", ["HalfCheetah-v5", "Hopper-v5", HALF_CHEETAH_CRIPPLED_ID, ANT_CRIPPLED_ID, ANT_MASS_ID]
)
def test_quick_pipeline_runs_end_to_end_on_every_mujoco_family(env_id, tmp_path):
    from pipeline import cli

    summary = cli.main(["--quick", "--no_progress", "--env_name", env_id, "--out_dir", str(tmp_path)])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["env_name"] == env_id and metrics["config"]["input_dim"] == make_task_family(env_id).model_input_dim
    assert {"maml", "erm", "oracle"} <= metrics["prediction"]["ood"].keys()
    assert {"tta", "memory_only", "no_tta", "oracle", "random"} <= metrics["control_ood"].keys()
    assert all(np.isfinite(value["mean"]) for value in metrics["control"].values())


@pytest.mark.parametrize("env_id", ["HalfCheetahCrippled-v0", "AntCrippled-v0"])
def test_the_oracle_is_told_which_part_is_crippled(env_id):
    from env_runner.tasks import Task
    from pipeline.data import TaskContext

    family = make_task_family(env_id)
    train = family.sample(12, seed=0)
    context = TaskContext(family, train)
    part = family.part_name
    same_scale = [Task(env_id, "test", 0, {part: float(p), "crippled_scale": 0.25}) for p in family.training_parts[:2]]
    rows = context(same_scale)  # two tasks that differ only in the crippled part
    assert not torch.equal(rows[0], rows[1])
    assert context.width == 1 + len(family.training_parts) + len(family.ood_parts)
    ood = Task(env_id, "ood", 0, {part: float(family.ood_parts[0]), "crippled_scale": 0.25})
    assert context([ood])[0, 1:].sum() == 1.0  # a part never crippled in training has its own column
