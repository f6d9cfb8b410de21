"""The summary over seeds: every statistic with the training run (the seed) as the unit, beside the pooled one.

    summary.json
      control.<condition>, control_ood.<condition>:
          {"mean", "ci95": [lo, hi], "n", "per_seed"}       pooled over (seed, task) pairs: conditional on the models
          "over_seeds": {"mean", "ci95" | null, "n", "per_seed"}    Student-t over the seed means: claims rest on it
          "bootstrap_ci95": [lo, hi] | null                          seeds, then tasks within each seed
      prediction.<split>.<learner>.<k>: the same on the log scale, in MSE units ("scale": "geometric": geometric
          means, intervals that stay above 0); "diverged" counts the (seed, task) pairs left out (`DIVERGED_FACTOR`)
      prediction_open_loop.<split>.<learner>.<k>, prediction_open_loop_paired: the same for the open-loop error over
          the planner's horizon (k = 0, 1)
      prediction_paired.<split>."maml/erm"|"maml/oracle".<k>: the error ratio per (seed, task), its geometric mean
          and intervals ("scale": "ratio"; 1 is no difference), with "wins" and "losses" (a win: maml lower)
      control_paired / control_ood_paired."tta-no_tta"|"tta-memory_only"|"memory_only-no_tta"|"tta-oracle":
          the paired difference, with "wins" and "losses" (pairs) and over_seeds."wins"/"losses" (seeds); a win:
          the first returns more
      normalized_score / normalized_score_ood.<condition>: (R - R_random) / (R_true - R_random) per pair, pooled,
          the references each seed's mean over its tasks; "excluded_seeds" counts the seeds whose two references tie
          (no range: left out). {"withheld": reason} instead where a condition returns more than true_dynamics over
          seeds (then it is no ceiling)
      protocol (a published protocol's runs): name, source, table, and on its test settings (the OOD split)
          setting_mean.<condition> (the protocol's overall figure, pooled as above with one value per seed),
          per_setting.<condition>: [over_seeds of each setting's mean], setting_mean_paired.<pair>
      fine_tuning.<baseline>: the fine-tuning each seed chose on val tasks ("erm", "oracle"; "none 0": no step)
      env_steps: {"random": [per seed], "onpolicy": [per seed]}, the environment steps each run trained on
      learning_curve: [{"env_steps", "val_return" (pooled over (seed, val task)), "onpolicy_return": {"over_seeds"}}]
          a point per measurement; learning_curve_gain: the last point's val return minus the first's, paired as
          control differences are
    --algo rl2, instead of prediction and control (split: in_distribution | ood; policy: ssm | gru, oracle, random):
      rl2.<split>.<policy>.episode_returns: [pooled statistics for each episode of a trial]
      rl2_paired.<split>.<policy>."episode_2-episode_1"|"last-first": the in-context gain, paired per (seed, task)
      rl2_normalized_score.<split>.<policy>: last episode's (R - R_random) / (R_oracle - R_random), without the seeds
          whose oracle training collapsed ("excluded_collapsed_oracle_seeds" counts them); {"withheld": reason}
          instead where a policy (random included) returns more than the oracle over seeds
      rl2_collapsed.<policy>: the seeds whose training collapsed on val tasks (`meta_rl.rl2.collapsed`)
      rl2_longer.<N>.<split>.<policy>: {"episode_returns": [pooled per episode], "last-first": paired} in trials of
          N episodes, longer than training's (`--rl2.longer_trials`)
      rl2_longer_episodes.<N>.in_distribution.<policy>: {"part_returns": [pooled per part], "last-first": paired} in
          episodes N times as long as training's, each trained-length part on the trained scale
      rl2_mmer.<policy>, rl2_throughput.<policy>: over_seeds of POPGym's MMER and of training's environment steps per
          second (the seeds that were not resumed; null if none); rl2_parameters.<policy>: the parameter count
    env_name, seeds, n_seeds, bootstrap (its method), commits (of the runs; "unknown" where a run recorded
    none), mixed_commits (a warning, when the runs come from several commits), timing

Every value is recomputed from the per-seed metrics.json (per_task lists); `pipeline.report.statistics` computes
them, `pipeline.report.markdown` writes them as tables. Runs whose configs differ in anything but the seed are refused.

    python -m pipeline.report --recompute docs/results/<family>    summary.json from the folder's per-seed metrics
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace
from pathlib import Path

from core.checkpoint import atomic_write_json
from core.settings import differences
from meta_rl.rl2 import collapsed
from pipeline.config import PipelineConfig
from pipeline.report.markdown import summary_markdown
from pipeline.report.plots import write_paired_plot
from pipeline.report.statistics import (
    BOOTSTRAP,
    geometric_pooled,
    normalized_scores,
    over_seeds,
    paired_pooled,
    pooled,
    ratio_pooled,
)

CONTROL_PAIRS = (("tta", "no_tta"), ("tta", "memory_only"), ("memory_only", "no_tta"), ("tta", "oracle"))
PREDICTION_PAIRS = (("maml", "erm"), ("maml", "oracle"))  # compared as error ratios, "maml/erm"


def summarize(runs: list[dict]) -> dict:
    """The summary of per-seed metrics: runs of one config but the seed (ValueError otherwise)."""
    check_poolable(runs)
    first = runs[0]
    result: dict = {
        "env_name": first["env_name"],
        "seeds": [run["seed"] for run in runs],
        "n_seeds": len(runs),
        "bootstrap": BOOTSTRAP,
        "task_distribution": first.get("task_distribution", True),
        **_commits(runs),
    }
    if "env_steps" in first:
        result["env_steps"] = {kind: [run["env_steps"][kind] for run in runs] for kind in first["env_steps"]}
    if first.get("algo") == "rl2":
        return result | _summarize_rl2(runs) | {"timing": _timing(runs)}
    for key in ("prediction", "prediction_open_loop"):
        if key in first:
            result[key], result[f"{key}_paired"] = _summarize_prediction(runs, key)
    if "prediction_settings" in first:
        result["fine_tuning"] = _fine_tuning_choices(runs)
    for key, score_key in (("control", "normalized_score"), ("control_ood", "normalized_score_ood")):
        if key not in first:
            continue
        conditions = first[key]
        per_task = {c: [run[key][c]["per_task"] for run in runs] for c in conditions}
        result[key] = {c: pooled(values, sign_bounded=True) for c, values in per_task.items()}
        result[f"{key}_paired"] = {
            f"{a}-{b}": paired_pooled(per_task[a], per_task[b], True)
            for a, b in CONTROL_PAIRS
            if a in conditions and b in conditions
        }
        if "true_dynamics" in conditions:
            beaten = [
                c
                for c in conditions
                if result[key][c]["over_seeds"]["mean"] > result[key]["true_dynamics"]["over_seeds"]["mean"]
            ]
            result[score_key] = (
                {"withheld": f"true_dynamics is not a ceiling here: {', '.join(beaten)} returned more over seeds"}
                if beaten
                else {
                    c: _pooled_normalized(per_task[c], per_task["random"], per_task["true_dynamics"])
                    for c in conditions
                }
            )
    if first.get("protocol", {}).get("table") is not None and "control_ood" in first:
        result["protocol"] = _summarize_protocol(runs)
    if first.get("learning_curve"):
        result |= _summarize_learning_curve(runs)
    result["timing"] = _timing(runs)
    return result


DIVERGED_FACTOR = 10.0  # an adapted error above this multiple of the learner's own unadapted error has diverged


Cell = tuple[str, str]  # (learner, k)


def _diverged(error: float, unadapted: float) -> bool:
    return not math.isfinite(error) or error > DIVERGED_FACTOR * unadapted


def _diverged_flags(errors: dict[Cell, list[list[float]]]) -> dict[Cell, list[list[bool]]]:
    """Per cell, seed and task: whether the adapted error diverged from the learner's own k = 0 error."""
    return {
        (learner, k): [
            [k != "0" and _diverged(error, unadapted) for error, unadapted in zip(seed, base, strict=True)]
            for seed, base in zip(values, errors.get((learner, "0"), values), strict=True)
        ]
        for (learner, k), values in errors.items()
    }


def _kept(
    errors: dict[Cell, list[list[float]]], flags: dict[Cell, list[list[bool]]], cells: list[Cell]
) -> tuple[list[list[list[float]]], int]:
    """Each of `cells`' per-seed errors on the (seed, task) pairs where none of them diverged (a seed left without a
    pair is dropped), and how many pairs were left out."""
    keep = [
        [not any(task) for task in zip(*seed, strict=True)]
        for seed in zip(*(flags[cell] for cell in cells), strict=True)
    ]
    seeds = [index for index, seed in enumerate(keep) if any(seed)]
    kept = [
        [[error for error, kept in zip(errors[cell][s], keep[s], strict=True) if kept] for s in seeds] for cell in cells
    ]
    return kept, sum(len(seed) - sum(seed) for seed in keep)


def _with_count(summary: dict, left_out: int) -> dict:
    return summary | ({"diverged": left_out} if left_out else {})


def _summarize_prediction(runs: list[dict], key: str) -> tuple[dict, dict]:
    """A prediction section ("prediction" or "prediction_open_loop": split -> learner -> k -> per-task errors) as
    geometric means over (seed, task) pairs, and its learner pairs (`PREDICTION_PAIRS`) as error ratios paired per
    (seed, task). An adapted error that is not finite or above `DIVERGED_FACTOR` times the same learner's k = 0
    error on that task has diverged: it is left out of every mean and ratio it takes part in, and counted
    ("diverged")."""
    pooled_section, paired_section = {}, {}
    for split, learners in runs[0][key].items():
        errors = {
            (learner, k): [run[key][split][learner][k]["per_task"] for run in runs]
            for learner, by_k in learners.items()
            for k in by_k
        }
        flags = _diverged_flags(errors)
        pooled_section[split] = {learner: {} for learner in learners}
        for learner, k in errors:
            (kept,), left_out = _kept(errors, flags, [(learner, k)])
            pooled_section[split][learner][k] = _with_count(geometric_pooled(kept), left_out)
        paired_section[split] = {}
        for a, b in PREDICTION_PAIRS:
            if a in learners and b in learners:
                paired_section[split][f"{a}/{b}"] = {}
                for k in learners[a]:
                    (kept_a, kept_b), left_out = _kept(errors, flags, [(a, k), (b, k)])
                    paired_section[split][f"{a}/{b}"][k] = _with_count(ratio_pooled(kept_a, kept_b), left_out)
    return pooled_section, paired_section


def _fine_tuning_choices(runs: list[dict]) -> dict[str, list[str]]:
    """Per fine-tuned baseline, the candidate each seed chose on val tasks ("none 0": no step), in seed order."""
    settings = [run["prediction_settings"] for run in runs]
    names = [key.removesuffix("_optimizer") for key in settings[0] if key.endswith("_optimizer")]
    return {
        name: [f"{seed[f'{name}_optimizer']} {seed[f'{name}_learning_rate']:g}" for seed in settings] for name in names
    }


def _summarize_learning_curve(runs: list[dict]) -> dict:
    """Each point of the learning curve over seeds (the runs share a config, so their points share env steps), and
    the gain from the first point's val return to the last's."""
    curves = [run["learning_curve"] for run in runs]
    points = []
    for index, point in enumerate(curves[0]):
        row: dict = {"env_steps": point["env_steps"]}
        if "val_returns" in point:
            row["val_return"] = pooled([curve[index]["val_returns"] for curve in curves], sign_bounded=True)
        if "onpolicy_return" in point:
            row["onpolicy_return"] = {"over_seeds": over_seeds([[curve[index]["onpolicy_return"]] for curve in curves])}
        points.append(row)
    result: dict = {"learning_curve": points}
    measured = [index for index, point in enumerate(curves[0]) if "val_returns" in point]
    if len(measured) > 1:
        first, last = measured[0], measured[-1]
        result["learning_curve_gain"] = paired_pooled(
            [curve[last]["val_returns"] for curve in curves], [curve[first]["val_returns"] for curve in curves], True
        )
    return result


def _summarize_protocol(runs: list[dict]) -> dict:
    """A published protocol's figures on the OOD split (its test settings): each condition's per-setting means and
    their unweighted mean (`setting_mean`, the protocol's overall figure), each over seeds, and the paired
    differences of the setting means."""
    first = runs[0]
    conditions = first["control_ood"]
    per_seed = {c: [[run["control_ood"][c]["setting_mean"]] for run in runs] for c in conditions}
    settings = len(first["protocol"]["table"]["test_settings"])
    return {
        "name": first["protocol"]["name"],
        "source": first["protocol"]["source"],
        "table": first["protocol"]["table"],
        "setting_mean": {c: pooled(values, sign_bounded=True) for c, values in per_seed.items()},
        "per_setting": {
            c: [
                None
                if first["control_ood"][c]["per_setting"][i] is None
                else over_seeds([[run["control_ood"][c]["per_setting"][i]] for run in runs])
                for i in range(settings)
            ]
            for c in conditions
        },
        "setting_mean_paired": {
            f"{a}-{b}": paired_pooled(per_seed[a], per_seed[b], True)
            for a, b in CONTROL_PAIRS
            if a in conditions and b in conditions
        },
    }


def check_poolable(runs: list[dict]) -> None:
    """ValueError naming every setting in which a run's config differs from the first's, the seed aside."""
    if not runs:
        raise ValueError("a summary needs at least one run")
    first = PipelineConfig.from_dict(runs[0]["config"])
    for run in runs[1:]:
        config = replace(PipelineConfig.from_dict(run["config"]), seed=first.seed)
        changed = differences(first, config)
        if changed:
            listed = "; ".join(
                f"{name}: {before!r} in seed {runs[0]['seed']}, {after!r}" for name, before, after in changed
            )
            raise ValueError(
                f"cannot pool seed {run['seed']} with seed {runs[0]['seed']}: their configs differ ({listed})"
            )


def _commits(runs: list[dict]) -> dict:
    """The commits the runs came from ("<hash>", "<hash>-dirty", "unknown"); a warning when there are several."""
    commits = []
    for run in runs:
        provenance = run.get("provenance", {})
        commit = provenance.get("git_commit", "unknown")
        commits.append(f"{commit}-dirty" if provenance.get("git_dirty") else commit)
    distinct = sorted(set(commits))
    result: dict = {"commits": distinct}
    if len(distinct) > 1:
        result["mixed_commits"] = f"the runs come from {len(distinct)} commits: {', '.join(distinct)}"
        warnings.warn(f"pooling runs of several commits: {result['mixed_commits']}", stacklevel=3)
    return result


def _timing(runs: list[dict]) -> dict:
    """Seconds: all seeds, each seed, and each stage's mean over seeds ("train", "control", "train ssm", ...);
    "resumed_seeds" (only when there are some) lists the seeds resumed from a checkpoint, whose seconds count from
    the restart."""
    stages = [_stage_seconds(run["timing"]) for run in runs]
    timing = {
        "total_s": sum(run["timing"]["total_s"] for run in runs),
        "per_seed_s": [run["timing"]["total_s"] for run in runs],
        "mean_stage_s": {
            name: sum(seed[name] for seed in stages) / len(stages)
            for name in stages[0]
            if all(name in seed for seed in stages)
        },
    }
    resumed = [run["seed"] for run in runs if run["timing"].get("resumed")]
    return timing | ({"resumed_seeds": resumed} if resumed else {})


def _stage_seconds(timing: dict) -> dict[str, float]:
    """A run's stage times by name: `timing["stages"]` (the model-based pipeline) or the other `*_s` entries
    (RL²), nested ones flattened ({"train_s": {"ssm": t}} -> "train ssm")."""
    stages = timing.get("stages", {key: value for key, value in timing.items() if key not in ("total_s", "resumed")})
    seconds = {}
    for key, value in stages.items():
        name = key.removesuffix("_s")
        if isinstance(value, dict):
            seconds.update({f"{name} {part}": part_value for part, part_value in value.items()})
        else:
            seconds[name] = value
    return seconds


def _summarize_rl2(runs: list[dict]) -> dict:
    """rl2, rl2_paired and rl2_normalized_score over (seed, task) pairs."""
    result: dict = {"rl2": {}, "rl2_paired": {}, "rl2_normalized_score": {}, "rl2_collapsed": _collapsed_seeds(runs)}
    for key, parts in (("rl2_longer", "episode_returns"), ("rl2_longer_episodes", "part_returns")):
        if key in runs[0]:
            result[key] = _summarize_longer(runs, key, parts)
    if "rl2_mmer" in runs[0]:
        result["rl2_mmer"] = {
            name: over_seeds([[run["rl2_mmer"][name]] for run in runs]) for name in runs[0]["rl2_mmer"]
        }
        result["rl2_parameters"] = runs[0]["rl2_parameters"]
        timed = [run["rl2_throughput"] for run in runs if run["rl2_throughput"] is not None]  # not the resumed
        result["rl2_throughput"] = (
            {name: over_seeds([[seed[name]] for seed in timed]) for name in timed[0]} if timed else None
        )
    for split, policies in runs[0]["rl2"].items():
        # per_task[policy][episode]: one list of per-task returns per seed
        per_task = {
            name: [[run["rl2"][split][name]["episode_returns"][e]["per_task"] for run in runs] for e in range(episodes)]
            for name, value in policies.items()
            for episodes in [len(value["episode_returns"])]
        }
        result["rl2"][split] = {
            name: {"episode_returns": [pooled(values, sign_bounded=True) for values in by_episode]}
            for name, by_episode in per_task.items()
        }
        result["rl2_paired"][split] = {
            name: {
                "episode_2-episode_1": paired_pooled(by_episode[1], by_episode[0], True),
                "last-first": paired_pooled(by_episode[-1], by_episode[0], True),
            }
            for name, by_episode in per_task.items()
            if len(by_episode) > 1
        }
        if "oracle" in per_task and "random" in per_task:
            result["rl2_normalized_score"][split] = _rl2_normalized(
                result["rl2"][split], per_task, runs, result["rl2_collapsed"]["oracle"]
            )
    return result


def _rl2_normalized(
    pooled_split: dict, per_task: dict[str, list[list[list[float]]]], runs: list[dict], collapsed_oracle: list[int]
) -> dict:
    """Each policy's last-episode return placed between random's and the oracle's (`_pooled_normalized`), on the
    seeds whose oracle training did not collapse; withheld where some policy returns more than the oracle over seeds
    (it is no ceiling) or where the oracle collapsed in every seed."""
    last = {name: pooled_split[name]["episode_returns"][-1]["over_seeds"]["mean"] for name in per_task}
    beaten = [name for name in per_task if last[name] > last["oracle"]]
    if beaten:
        return {"withheld": f"the oracle is no ceiling here: {', '.join(beaten)} returned more over seeds"}
    kept = [index for index, run in enumerate(runs) if run["seed"] not in collapsed_oracle]
    if not kept:
        return {"withheld": "the oracle's training collapsed in every seed"}

    def last_episode(name: str) -> list[list[float]]:
        return [per_task[name][-1][index] for index in kept]

    scores = {
        name: _pooled_normalized(last_episode(name), last_episode("random"), last_episode("oracle"))
        for name in per_task
    }
    return {"excluded_collapsed_oracle_seeds": len(runs) - len(kept)} | scores


def _summarize_longer(runs: list[dict], key: str, parts: str) -> dict:
    """Per length N (trials of N episodes, or episodes N times as long), split and policy: each of the N episodes'
    (or parts') return pooled, and the last one's minus the first's paired per (seed, task) ("last-first": does the
    return keep rising past the length trained on?)."""
    result: dict = {}
    for length, splits in runs[0][key].items():
        result[length] = {}
        for split, policies in splits.items():
            result[length][split] = {}
            for name in policies:
                values = [
                    [run[key][length][split][name][parts][e]["per_task"] for run in runs] for e in range(int(length))
                ]
                result[length][split][name] = {
                    parts: [pooled(part, sign_bounded=True) for part in values],
                    "last-first": paired_pooled(values[-1], values[0], True),
                }
    return result


def _collapsed_seeds(runs: list[dict]) -> dict[str, list[int]]:
    """Per trained RL² policy, the seeds whose training collapsed on val tasks (`meta_rl.rl2.collapsed`)."""
    return {
        name: [run["seed"] for run in runs if collapsed(run["rl2_training"][name])] for name in runs[0]["rl2_training"]
    }


def _pooled_normalized(values: list[list[float]], random: list[list[float]], ceiling: list[list[float]]) -> dict:
    """`pooled` over seeds of `normalized_scores` per seed: each (seed, task) pair's R placed between the seed's mean
    references over its tasks. A seed whose two mean references tie has no range: left out, counted in
    "excluded_seeds"."""
    scores = [normalized_scores(*seed) for seed in zip(values, random, ceiling, strict=True)]
    kept = [seed for seed in scores if seed is not None]
    result = pooled(kept) if kept else {"mean": math.nan, "ci95": [math.nan, math.nan], "n": 0, "per_seed": []}
    return {**result, "references": "each seed's mean over its tasks", "excluded_seeds": len(scores) - len(kept)}


def write_summary(runs: list[dict], out_dir: Path) -> dict:
    """summary.json, summary.md and summary_paired.png in `out_dir`; returns the summary."""
    result = summarize(runs)
    atomic_write_json(result, out_dir / "summary.json")
    (out_dir / "summary.md").write_text(summary_markdown(result))
    write_paired_plot(result, out_dir / "summary_paired.png")
    return result


def seed_metrics(folder: Path) -> list[dict]:
    """The per-seed metrics of a results folder, by seed: the published layout (seed_<S>_metrics.json) or the one
    `main.py --seeds` writes (seed_<S>/metrics.json). ValueError naming the folder when it holds neither, and
    naming the file when one is not readable JSON."""
    paths = list(folder.glob("seed_*_metrics.json")) + list(folder.glob("seed_*/metrics.json"))
    if not paths:
        raise ValueError(f"{folder} holds no seed_<S>_metrics.json and no seed_<S>/metrics.json")
    runs = []
    for path in paths:
        try:
            runs.append(json.loads(path.read_text()))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not readable JSON ({error}); rerun or remove that seed") from error
    seeds = [run["seed"] for run in runs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{folder} holds metrics of seed {max(seeds, key=seeds.count)} twice")
    return sorted(runs, key=lambda run: run["seed"])


def recompute(folder: Path) -> dict:
    """summary.json and summary_paired.png of a results folder, recomputed from the per-seed metrics in it."""
    result = summarize(seed_metrics(folder))
    atomic_write_json(result, folder / "summary.json")
    write_paired_plot(result, folder / "summary_paired.png")
    return result
