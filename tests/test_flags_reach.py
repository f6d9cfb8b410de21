"""Every generated flag reaches what it configures: each setting, given a value other than its default, arrives in
the run's config, and the objects the stages build from that config (the world models and MetaMAML, the planner,
the online adapter) hold it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from adaptation.online import OnlineAdapter
from core.gru import GRUModel
from core.mlp import MLPModel
from core.ssm import SSM
from env_runner.environment import make_task_family
from pipeline import acting, cli
from pipeline.config import PipelineConfig, defaults_for
from pipeline.flags import config_from_flags
from pipeline.models import WorldModels
from planning.planner import PLANNERS
from planning.true_dynamics import true_dynamics


def other_value(value, rule):
    """A valid value of a setting other than `value`: another choice, a neighbour, or a changed flag."""
    if rule is not None and rule.choices is not None:
        return next(choice for choice in rule.choices if choice != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, tuple):
        return (*value, value[-1] + 1)
    if value is None:  # an optional number: off by default
        candidates = [1.5, 2]
    elif isinstance(value, int):
        candidates = [value + 1]
    elif isinstance(value, float):
        candidates = [value / 2, value * 2, value + 1]
    else:
        return None  # no generic neighbour: the special cases
    return next(candidate for candidate in candidates if rule is None or rule.accepts(candidate))


SPECIAL = {  # settings bound to others: a value that agrees with their defaults
    "env_name": "CartPole-v1",
    "device": "cpu",
    "protocol": "cadm",
    "input_dim": None,
    "explore_steps": 3,
    "control_tasks": 9,  # at most the test and OOD tasks (10 each)
    "steps_per_task": 600,  # a multiple of onpolicy_steps (200)
    "onpolicy_steps": 100,  # a divisor of steps_per_task (400)
    "env_steps": 40 * 400 + 8 * 200,  # the random steps and one on-policy round
    "planner.noise_exponent": 1.0,  # the default 0 halved or doubled is itself
    "rl2.trials_per_iteration": 32,  # a multiple of num_minibatches (4)
    "rl2.num_minibatches": 8,  # a divisor of trials_per_iteration (16)
    "rl2.longer_trials": (4,),  # none by default; above episodes_per_trial (2)
    "rl2.longer_episodes": (2,),  # none by default; for a family whose episodes grow (FAMILY_OF)
}
FAMILY_OF = {"rl2.longer_episodes": ["--env_name", "popgym-MultiarmedBanditEasy-v0"]}  # flags bound to a family


def changed_settings(config, group: str = "") -> dict[str, object]:
    """Every setting of `config` (nested groups as "group.name") -> a valid value other than its default."""
    changed = {}
    for item in dataclasses.fields(config):
        value, name = getattr(config, item.name), f"{group}{item.name}"
        if dataclasses.is_dataclass(value):
            changed.update(changed_settings(value, f"{name}."))
        elif name in SPECIAL:
            changed[name] = SPECIAL[name]
        else:
            changed[name] = other_value(value, item.metadata.get("rule"))
    return changed


def as_flags(changed: dict[str, object]) -> list[str]:
    flags = []
    for name, value in changed.items():
        if value is None:
            continue
        if isinstance(value, bool):
            flags.append(f"--{name}" if value else f"--no-{name}")
        elif isinstance(value, tuple):
            flags += [f"--{name}", *map(str, value)]
        else:
            flags += [f"--{name}", str(value)]
    return flags


def setting_value(config, name: str):
    for part in name.split("."):
        config = getattr(config, part)
    return config


DEFAULTS = PipelineConfig()
CHANGED = {name: value for name, value in changed_settings(DEFAULTS).items() if value is not None}


def test_every_setting_has_a_value_to_try():
    assert set(CHANGED) == set(changed_settings(DEFAULTS)) - {"input_dim"}  # input_dim: the family decides it


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_each_flag_given_alone_arrives_in_the_config(name):
    parser = cli.build_parser()
    algo = ["--algo", "rl2"] if name.startswith("rl2") else []  # a flag of the other algo is refused
    flags = [*algo, *FAMILY_OF.get(name, []), *as_flags({name: CHANGED[name]})]
    config = config_from_flags(parser, parser.parse_args(flags))
    assert setting_value(config, name) == CHANGED[name]


def built_world(config: PipelineConfig) -> WorldModels:
    return WorldModels(config, input_dim=4, output_dim=3, context_dim=2)


def world_model_kind(model) -> str:
    """The --world_model value that builds `model`."""
    if isinstance(model, SSM):
        return "ssm_complex" if model.eigenvalues == "complex" else "ssm"
    return {GRUModel: "gru", MLPModel: "mlp"}[type(model)]


MODEL_SETTINGS = {  # setting -> what the built world models hold
    "state_dim": lambda world: world.maml_model.state_dim,
    "hidden_dim": lambda world: world.maml_model.hidden_dim,
    "inner_lr": lambda world: world.learner.inner_lr,
    "outer_lr": lambda world: world.learner.optimizer.param_groups[0]["lr"],
    "first_order": lambda world: world.learner.first_order,
    "learn_inner_lr": lambda world: bool(world.learner.inner_lrs),
    "num_inner_steps": lambda world: world.learner.num_inner_steps,
    "grad_clip_norm": lambda world: world.learner.grad_clip_norm,
    "world_model": lambda world: world_model_kind(world.maml_model),
    "ensemble_size": lambda world: len(world.maml_model.members),
    "probabilistic": lambda world: world.head.gaussian and world.learner.loss_fn == world.head.loss,
    "inner_grad_clip": lambda world: world.learner.inner_grad_clip,
}


@pytest.mark.parametrize("name", sorted(MODEL_SETTINGS))
def test_the_world_models_hold_the_model_settings(name):
    config = dataclasses.replace(defaults_for("Pendulum-v1", quick=True), device="cpu")
    value = CHANGED[name] if name != "inner_grad_clip" or config.inner_grad_clip is not None else 1.5
    world = built_world(dataclasses.replace(config, **{name: value}))
    assert MODEL_SETTINGS[name](world) == pytest.approx(value)


@pytest.mark.parametrize("name", sorted(name for name in CHANGED if name.startswith(("planner.", "adapt."))))
def test_the_planner_and_the_online_adapter_hold_their_flags(name, monkeypatch):
    """`act` builds the planner and `online_adaptation_hook` the adapter from the config the flags made."""
    parser = cli.build_parser()
    flags = ["--quick", "--device", "cpu", *as_flags({name: CHANGED[name]})]
    config = config_from_flags(parser, parser.parse_args(flags))
    built = {}

    def run_episodes(envs, planner, *args, **kwargs):
        built["planner"] = planner

    monkeypatch.setattr(acting, "run_episodes", run_episodes)
    family = make_task_family(config.env_name)
    tasks = family.sample(2, seed=0, split="train")
    world = built_world(config)
    if name.startswith("planner."):
        acting.act(family, tasks, [0, 1], 1, true_dynamics(family, tasks), config, planner_seed=0)
        planner = built["planner"]
        assert planner.config == config.planner and type(planner) is PLANNERS[config.planner.method]
        assert setting_value(planner.config, name.removeprefix("planner.")) == CHANGED[name]
    else:
        hook = acting.online_adaptation_hook(world.learner, None, config.adapt, num_envs=2)
        online = next(cell.cell_contents for cell in hook.__closure__ if isinstance(cell.cell_contents, OnlineAdapter))
        assert setting_value(online.config, name.removeprefix("adapt.")) == CHANGED[name]


@pytest.mark.parametrize("name", sorted(name for name in CHANGED if name.startswith("rl2.")))
def test_rl2_training_receives_its_flags(name, tmp_path, monkeypatch):
    """`--algo rl2` hands the --rl2.* group to `train_rl2` for every policy it trains."""
    received = []

    def train_rl2(family, tasks, config, seed, **kwargs):
        received.append((kwargs["memory"], config))
        raise KeyboardInterrupt  # enough: the settings have arrived

    monkeypatch.setattr("pipeline.rl2_run.train_rl2", train_rl2)
    flags = ["--algo", "rl2", "--no_progress", *FAMILY_OF.get(name, []), *as_flags({name: CHANGED[name]})]
    with pytest.raises(SystemExit):
        cli.main([*flags, "--rl2_memory", "gru", "--out_dir", str(tmp_path / "run")])
    memory, config = received[0]
    assert memory == "gru" and setting_value(config, name.removeprefix("rl2.")) == CHANGED[name]


@pytest.mark.parametrize("method", ["mppi", "icem"])
def test_box_only_planners_are_refused_for_a_discrete_action_space_before_any_work(method, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["--env_name", "CartPole-v1", "--planner.method", method, "--quick", "--out_dir", str(tmp_path / "x")])
    assert f"--planner.method {method} needs a Box action space" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_the_world_models_are_built_on_the_config_device():
    world = built_world(dataclasses.replace(defaults_for("Pendulum-v1", quick=True), device="cpu"))
    assert next(world.maml_model.parameters()).device == torch.device("cpu")
