"""Published protocols: CaDM's tables as published, disjoint splits drawn from them, the hanging-down Pendulum start,
per-setting evaluation and the protocol's figures in the summary."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from core.settings import SettingError
from env_runner.families import make_task_family
from env_runner.locomotion import ANT_MASS_ID, HALF_CHEETAH_CRIPPLED_ID
from env_runner.protocols import CADM, ProtocolTable, protocol_table
from env_runner.tasks import check_disjoint
from pipeline.config import PipelineConfig, defaults_for
from pipeline.report.markdown import summary_markdown
from pipeline.report.summary import summarize

# The sets as written in CaDM's configuration (younggyoseo/CaDM, cadm/envs/config.py), typed out here rather than
# generated, so a slip in the tables' grids fails.
PENDULUM_TRAIN = {0.75, 0.80, 0.85, 0.90, 0.95, 1.00, 1.05, 1.10, 1.15, 1.20, 1.25}
CADM_TABLES = {
    "Pendulum-v1": (
        {"m": PENDULUM_TRAIN, "l": PENDULUM_TRAIN},
        [
            {"m": {0.2, 0.4}, "l": {1.6, 1.8}},
            {"m": {0.5, 0.7}, "l": {1.3, 1.5}},
            {"m": {1.3, 1.5}, "l": {0.5, 0.7}},
            {"m": {1.6, 1.8}, "l": {0.2, 0.4}},
        ],
        200,
    ),
    "CartPole-v1": (
        {
            "force_mag": {5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0},
            "length": {0.40, 0.45, 0.50, 0.55, 0.60},
        },
        [
            {"force_mag": {2.0, 2.5}, "length": {0.15, 0.20}},
            {"force_mag": {3.0, 3.5}, "length": {0.25, 0.30}},
            {"force_mag": {16.5, 17.0}, "length": {0.70, 0.75}},
            {"force_mag": {17.5, 18.0}, "length": {0.80, 0.85}},
        ],
        200,
    ),
    "HalfCheetah-v5": (
        {"mass_scale": {0.75, 0.85, 1.0, 1.15, 1.25}, "damping_scale": {0.75, 0.85, 1.0, 1.15, 1.25}},
        [{"mass_scale": s, "damping_scale": s} for s in ({0.2, 0.3}, {0.4, 0.5}, {1.5, 1.6}, {1.7, 1.8})],
        1000,
    ),
    HALF_CHEETAH_CRIPPLED_ID: ({"crippled_joint": {0.0, 1.0, 2.0, 3.0}}, [{"crippled_joint": {4.0, 5.0}}], 1000),
    ANT_MASS_ID: (
        {"mass_scale": {0.85, 0.90, 0.95, 1.0}},
        [{"mass_scale": {0.20, 0.25, 0.30, 0.35, 0.40}}, {"mass_scale": {0.40, 0.45, 0.50, 0.55, 0.60}}],
        1000,
    ),
}
CLASSIC_IDS = ["Pendulum-v1", "CartPole-v1"]


@pytest.fixture(scope="module")
def families():
    return {env_id: make_task_family(env_id, protocol="cadm") for env_id in CADM_TABLES}


@pytest.mark.parametrize("env_id", CADM_TABLES)
def test_each_cadm_table_holds_the_published_sets(env_id):
    train, settings, episode_steps = CADM_TABLES[env_id]
    table = CADM.table(env_id)
    assert {name: set(values) for name, values in table.train.items()} == train
    assert [{name: set(values) for name, values in setting.items()} for setting in table.test_settings] == settings
    assert table.episode_steps == episode_steps
    assert table.episodes_per_setting == (20 if env_id in (HALF_CHEETAH_CRIPPLED_ID, ANT_MASS_ID) else 10)
    assert all(value == round(value, 9) for values in table.train.values() for value in values)  # no float drift


def test_cadm_fixes_the_parameters_it_does_not_vary():
    assert CADM.table("Pendulum-v1").fixed == {"g": 10.0}
    assert CADM.table("CartPole-v1").fixed == {"masspole": 0.1, "masscart": 1.0}
    assert CADM.table(HALF_CHEETAH_CRIPPLED_ID).fixed == {"crippled_scale": 0.0}  # the joint is disabled
    assert CADM.table(ANT_MASS_ID).fixed == {"damping_scale": 1.0}


@pytest.mark.parametrize("env_id", CADM_TABLES)
def test_splits_are_disjoint_inside_the_training_sets_and_ood_is_every_test_combination(families, env_id):
    family, table = families[env_id], CADM.table(env_id)
    train_sets, settings, _ = CADM_TABLES[env_id]
    combinations = math.prod(len(values) for values in train_sets.values())
    held_out = sum(table.held_out.values())
    expected_ood = {
        tuple(sorted({**table.fixed, **dict(zip(setting, values, strict=True))}.items()))
        for setting in settings
        for values in itertools.product(*setting.values())
    }
    for seed in range(5):
        counts = {"train": combinations - held_out, **{s: table.held_out.get(s, 0) for s in ("val", "test")}}
        splits = {split: family.sample(n, seed, split) for split, n in counts.items()}
        splits["ood"] = family.sample(len(expected_ood), seed, "ood")
        check_disjoint(splits)
        for split in ("train", "val", "test"):
            for task in splits[split]:
                assert all(task.params[name] in values for name, values in train_sets.items()), task
                assert table.settings_of(task.params) == []
        assert {task.key for task in splits["ood"]} == expected_ood
        assert sum(len(splits[s]) for s in ("train", "val", "test")) == combinations  # every combination used once
    if table.held_out:  # the held-out combinations depend on the seed
        assert family.sample(3, 0, "val") != family.sample(3, 1, "val")


def test_cartpoles_55_combinations_are_sized_to_fit_and_asking_for_more_is_refused(families):
    assert defaults_for("CartPole-v1", protocol="cadm").num_train_tasks == 35
    with pytest.raises(ValueError, match="the cadm protocol's CartPole-v1 train split holds 35 tasks, 36 were asked"):
        families["CartPole-v1"].sample(36, 0, "train")
    with pytest.raises(SettingError, match=r"num_train_tasks must be at most 35 \(the cadm protocol's train split"):
        PipelineConfig(env_name="CartPole-v1", protocol="cadm", num_train_tasks=36)


def test_crippled_cheetah_and_ant_train_on_every_training_combination_with_no_val_or_test_split():
    for env_id in (HALF_CHEETAH_CRIPPLED_ID, ANT_MASS_ID):
        config = defaults_for(env_id, protocol="cadm")
        assert (config.num_train_tasks, config.num_val_tasks, config.num_test_tasks) == (4, 0, 0)
        assert config.episode_steps == 1000 and config.control_tasks >= config.num_ood_tasks  # every OOD task


def test_ood_tasks_interleave_the_settings_and_a_shared_combination_appears_once(families):
    pendulum = [task.params for task in families["Pendulum-v1"].sample(4, 0, "ood")]
    assert [CADM.table("Pendulum-v1").settings_of(params) for params in pendulum] == [[0], [1], [2], [3]]
    ant = [task.params["mass_scale"] for task in families[ANT_MASS_ID].sample(9, 0, "ood")]
    assert sorted(ant) == [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6]  # 0.40 is in both settings, once
    assert CADM.table(ANT_MASS_ID).settings_of({"mass_scale": 0.4, "damping_scale": 1.0}) == [0, 1]


def test_setting_means_average_each_settings_tasks_and_count_a_shared_task_in_both():
    table = CADM.table(ANT_MASS_ID)
    params = [{"mass_scale": scale, "damping_scale": 1.0} for scale in (0.2, 0.4, 0.6)]
    assert table.setting_means(params, [1.0, 4.0, 10.0]) == [2.5, 7.0]
    assert table.setting_means(params[:1], [1.0]) == [1.0, None]


def test_the_pendulum_starts_hanging_down_within_pi_over_8_and_slowly(families):
    family = families["Pendulum-v1"]
    task = family.sample(1, 0, "ood")[0]
    angles, speeds = [], []
    with family.make_env(task) as env:
        for seed in range(300):
            obs, _ = env.reset(seed=seed)
            theta, theta_dot = env.unwrapped.state
            np.testing.assert_allclose(obs, [np.cos(theta), np.sin(theta), theta_dot], rtol=1e-6)
            angles.append(abs(math.remainder(theta - math.pi, 2 * math.pi)))  # distance from hanging straight down
            speeds.append(abs(theta_dot))
        first, _ = env.reset(seed=3)
        again, _ = env.reset(seed=3)
        np.testing.assert_array_equal(first, again)
    assert max(angles) <= math.pi / 8 and max(speeds) <= 0.2
    assert max(angles) > 0.9 * math.pi / 8 and max(speeds) > 0.18  # the whole range is drawn, not one point


def test_the_default_pendulum_still_starts_anywhere():
    family = make_task_family("Pendulum-v1")
    angles = []
    with family.make_env(family.sample(1, 0)[0]) as env:
        for seed in range(100):
            env.reset(seed=seed)
            angles.append(abs(math.remainder(env.unwrapped.state[0] - math.pi, 2 * math.pi)))
    assert max(angles) > math.pi / 2  # gymnasium's uniform start: often far from hanging down


@pytest.mark.parametrize("env_id", CLASSIC_IDS)
def test_protocol_envs_stop_at_the_protocols_episode_length(families, env_id):
    family = families[env_id]
    with family.make_env(family.sample(1, 0)[0]) as env:
        assert env.spec.max_episode_steps == 200
    with pytest.raises(ValueError, match="episodes last 200 steps, not max_episode_steps=500"):
        make_task_family(env_id, protocol="cadm", max_episode_steps=500)


def test_a_table_that_does_not_set_the_familys_parameters_is_refused(families):
    family = families["Pendulum-v1"]
    table = ProtocolTable(train={"m": (1.0,)}, test_settings=(), held_out={}, episode_steps=200, episodes_per_setting=1)
    with pytest.raises(ValueError, match=r"sets \['m'\]: expected the family's parameters \['g', 'l', 'm'\]"):
        family._check_protocol_table(table)


def test_unknown_protocols_and_families_without_a_table_are_named():
    with pytest.raises(ValueError, match="unknown protocol 'tmcl': expected coefficients or one of cadm"):
        protocol_table("tmcl", "Pendulum-v1")
    with pytest.raises(ValueError, match="the cadm protocol has no table for Hopper-v5"):
        make_task_family("Hopper-v5", protocol="cadm")
    with pytest.raises(SettingError, match="protocol must be a protocol with a table for MountainCarContinuous-v0"):
        defaults_for("MountainCarContinuous-v0", protocol="cadm")


def test_quick_cadm_run_records_the_protocol_the_sample_budget_and_per_setting_returns(tmp_path):
    from pipeline import cli

    cli.main(
        ["--quick", "--no_progress", "--protocol", "cadm", "--env_name", "Pendulum-v1", "--out_dir", str(tmp_path)]
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["protocol"]["name"] == "cadm" and metrics["protocol"]["table"]["episode_steps"] == 200
    assert metrics["protocol"]["table"]["test_settings"][0] == {"m": [0.2, 0.4], "l": [1.6, 1.8]}
    config = metrics["config"]
    assert metrics["env_steps"]["random"] == config["num_train_tasks"] * config["steps_per_task"]
    assert metrics["env_steps"]["random"] + metrics["env_steps"]["onpolicy"] == metrics["training"]["transitions"]
    assert (
        metrics["env_steps"]["onpolicy"]
        == config["onpolicy_rounds"] * config["onpolicy_tasks"] * config["onpolicy_steps"]
    )
    table = CADM.table("Pendulum-v1")
    ood = [task["params"] for task in metrics["tasks"]["ood"]][: config["control_tasks"]]
    for condition, value in metrics["control_ood"].items():
        assert value["per_setting"] == table.setting_means(ood, value["per_task"]), condition
        present = [mean for mean in value["per_setting"] if mean is not None]
        assert value["setting_mean"] == pytest.approx(np.mean(present))
    assert "per_setting" not in metrics["control"]["tta"]  # test tasks are training combinations, not settings


def _protocol_run(seed: int, tta: list[float | None], no_tta: list[float | None]) -> dict:
    def condition(per_setting):
        present = [value for value in per_setting if value is not None]
        return {"per_task": present, "per_setting": per_setting, "setting_mean": float(np.mean(present))}

    return {
        "env_name": "Toy-v0",
        "seed": seed,
        "config": {"seed": seed},
        "timing": {"total_s": 1.0},
        "prediction": {},
        "protocol": {"name": "cadm", "source": "a paper", "table": {"test_settings": [{"m": [1]}, {"m": [2]}]}},
        "env_steps": {"random": 100, "onpolicy": 10 * seed},
        "control_ood": {"tta": condition(tta), "no_tta": condition(no_tta)},
    }


def test_summary_gives_the_protocols_figures_over_seeds():
    runs = [_protocol_run(0, [1.0, 3.0], [0.0, 1.0]), _protocol_run(1, [2.0, 6.0], [1.0, 2.0])]
    result = summarize(runs)
    protocol = result["protocol"]
    assert protocol["setting_mean"]["tta"]["over_seeds"]["per_seed"] == [2.0, 4.0]
    assert protocol["per_setting"]["tta"][1]["per_seed"] == [3.0, 6.0]
    assert protocol["setting_mean_paired"]["tta-no_tta"]["over_seeds"]["per_seed"] == [1.5, 2.5]
    assert result["env_steps"] == {"random": [100, 100], "onpolicy": [0, 10]}
    text = summary_markdown(result)
    assert "| tta | 1.5 [" in text and "mean over settings" in text and "random policy 100, on-policy 0, 10" in text


@pytest.mark.parametrize("env_id", ["CartPole-v1", "HalfCheetah-v5", HALF_CHEETAH_CRIPPLED_ID, ANT_MASS_ID])
def test_quick_cadm_runs_end_to_end_on_every_family_of_the_protocol(env_id, tmp_path):
    from pipeline import cli

    cli.main(["--quick", "--no_progress", "--protocol", "cadm", "--env_name", env_id, "--out_dir", str(tmp_path)])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    table = CADM.table(env_id)
    assert metrics["protocol"]["name"] == "cadm"
    for task in metrics["tasks"]["ood"]:
        assert table.settings_of(task["params"]), task  # every OOD task is a combination of a test setting
    for task in metrics["tasks"]["train"]:
        assert all(task["params"][name] in values for name, values in table.train.items()), task
    assert all(math.isfinite(value["setting_mean"]) for value in metrics["control_ood"].values())
    assert ("control" in metrics) == bool(table.held_out)  # no test split where every combination is trained on


@pytest.mark.parametrize(
    ("env_id", "random_steps", "budget"),
    [
        ("HalfCheetah-v5", 15 * 1000, 195_000),  # 15 train tasks: one random episode each, then 18 rounds of 10
        ("HalfCheetahCrippled-v0", 4 * 3000, 192_000),  # 4 train tasks: three random episodes each (>= 10 episodes)
        ("Pendulum-v1", 40 * 200, 40_000),
    ],
)
def test_the_cadm_preset_spends_its_budget_in_rounds_of_ten_whole_episodes(env_id, random_steps, budget):
    from pipeline.config import defaults_for

    config = defaults_for(env_id, protocol="cadm")
    episode = CADM.table(env_id).episode_steps
    assert config.onpolicy_steps == episode and config.steps_per_task % episode == 0
    assert config.random_steps == random_steps and config.random_steps >= 10 * episode
    assert config.onpolicy_tasks == 10 and config.num_epochs == config.rounds + 1
    assert config.budget == config.env_steps == budget <= 20 * 10 * episode
    assert budget + 10 * episode > 20 * 10 * episode  # no further round fits
    assert defaults_for(env_id, quick=True, protocol="cadm").env_steps is None  # --quick stays seconds long
