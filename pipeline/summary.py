"""The summary over seeds: every statistic with the training run (the seed) as the unit, beside the pooled one.

    summary.json
      prediction.<split>.<learner>.<k>, control.<condition>, control_ood.<condition>:
          {"mean", "ci95": [lo, hi], "n", "per_seed"}       pooled over (seed, task) pairs: conditional on the models
          "over_seeds": {"mean", "ci95" | null, "n", "per_seed"}    Student-t over the seed means: claims rest on it
          "bootstrap_ci95": [lo, hi] | null                          seeds, then tasks within each seed
      prediction_paired.<split>."maml-erm"|"maml-oracle".<k>, control_paired / control_ood_paired
          ."tta-no_tta"|"tta-memory_only"|"memory_only-no_tta"|"tta-oracle":
          the same, with "wins" and "losses" (pairs) and over_seeds."wins"/"losses" (seeds); a win: the first is
          better (lower MSE, higher return)
      normalized_score / normalized_score_ood.<condition>: (R - R_random) / (R_true - R_random) per pair, pooled;
          "excluded_pairs" counts the pairs whose two references tie (no range: left out). {"withheld": reason}
          instead where a condition returns more than true_dynamics over seeds (then it is no ceiling)
      protocol (a published protocol's runs): name, source, table, and on its test settings (the OOD split)
          setting_mean.<condition> (the protocol's overall figure, pooled as above with one value per seed),
          per_setting.<condition>: [over_seeds of each setting's mean], setting_mean_paired.<pair>
      env_steps: {"random": [per seed], "onpolicy": [per seed]}, the environment steps each run trained on
    --algo rl2, instead of prediction and control (split: in_distribution | ood; policy: ssm | gru, oracle, random):
      rl2.<split>.<policy>.episode_returns: [pooled statistics for each episode of a trial]
      rl2_paired.<split>.<policy>."episode_2-episode_1"|"last-first": the in-context gain, paired per (seed, task)
      rl2_normalized_score.<split>.<policy>: last episode's (R - R_random) / (R_oracle - R_random)
    env_name, seeds, n_seeds, bootstrap (its method), commits (of the runs; "unknown" where a run recorded
    none), mixed_commits (a warning, when the runs come from several commits), timing

Every value is recomputed from the per-seed metrics.json (per_task lists), `pipeline.statistics` computes them.
Runs whose configs differ in anything but the seed are refused.

    python -m pipeline.summary --recompute docs/results/*/    summary.json of each from its seed_<S>_metrics.json
    python -m pipeline.summary --readme README.md             the README's results blocks from those summaries
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import warnings
from dataclasses import replace
from pathlib import Path

from core.settings import differences
from pipeline.comparison import comparison_markdown
from pipeline.config import PipelineConfig
from pipeline.overview import overview_markdown
from pipeline.plots import write_paired_plot
from pipeline.statistics import BOOTSTRAP, normalized_scores, over_seeds, paired_pooled, pooled
from pipeline.tables import over_seeds_cell, paired_table, seeds_won

CONTROL_PAIRS = (("tta", "no_tta"), ("tta", "memory_only"), ("memory_only", "no_tta"), ("tta", "oracle"))
PREDICTION_PAIRS = (("maml", "erm"), ("maml", "oracle"))


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
    result["prediction"], result["prediction_paired"] = {}, {}
    for split, learners in first["prediction"].items():
        result["prediction"][split] = {
            learner: {k: pooled([run["prediction"][split][learner][k]["per_task"] for run in runs]) for k in by_k}
            for learner, by_k in learners.items()
        }
        result["prediction_paired"][split] = {
            f"{a}-{b}": {
                k: paired_pooled(
                    [run["prediction"][split][a][k]["per_task"] for run in runs],
                    [run["prediction"][split][b][k]["per_task"] for run in runs],
                    False,
                )
                for k in learners[a]
            }
            for a, b in PREDICTION_PAIRS
            if a in learners and b in learners
        }
    for key, score_key in (("control", "normalized_score"), ("control_ood", "normalized_score_ood")):
        if key not in first:
            continue
        conditions = first[key]
        per_task = {c: [run[key][c]["per_task"] for run in runs] for c in conditions}
        result[key] = {c: pooled(values) for c, values in per_task.items()}
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
    result["timing"] = _timing(runs)
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
        "setting_mean": {c: pooled(values) for c, values in per_seed.items()},
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
    result: dict = {"rl2": {}, "rl2_paired": {}, "rl2_normalized_score": {}}
    for split, policies in runs[0]["rl2"].items():
        # per_task[policy][episode]: one list of per-task returns per seed
        per_task = {
            name: [[run["rl2"][split][name]["episode_returns"][e]["per_task"] for run in runs] for e in range(episodes)]
            for name, value in policies.items()
            for episodes in [len(value["episode_returns"])]
        }
        result["rl2"][split] = {
            name: {"episode_returns": [pooled(values) for values in by_episode]}
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
            result["rl2_normalized_score"][split] = {
                name: _pooled_normalized(by_episode[-1], per_task["random"][-1], per_task["oracle"][-1])
                for name, by_episode in per_task.items()
            }
    return result


def _pooled_normalized(values: list[list[float]], random: list[list[float]], ceiling: list[list[float]]) -> dict:
    """`pooled` over seeds of each (seed, task) pair's (R - R_random) / (R_ceiling - R_random); pairs whose two
    references tie have no score and are left out, counted in "excluded_pairs" (a seed left without any pair too)."""
    scores = [normalized_scores(*seed) for seed in zip(values, random, ceiling, strict=True)]
    defined = [[score for score in seed if math.isfinite(score)] for seed in scores]
    excluded = sum(len(seed) for seed in scores) - sum(len(seed) for seed in defined)
    kept = [seed for seed in defined if seed]
    result = pooled(kept) if kept else {"mean": math.nan, "ci95": [math.nan, math.nan], "n": 0, "per_seed": []}
    return {**result, "excluded_pairs": excluded}


def write_summary(runs: list[dict], out_dir: Path) -> dict:
    """summary.json, summary.md and summary_paired.png in `out_dir`; returns the summary."""
    result = summarize(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(result, indent=2))
    (out_dir / "summary.md").write_text(summary_markdown(result))
    write_paired_plot(result, out_dir / "summary_paired.png")
    return result


def summary_markdown(result: dict) -> str:
    """Markdown tables, every value first over seeds (mean [95% CI] of the seed means), then its pooled interval."""
    n_seeds = result["n_seeds"]
    seeds = f"{n_seeds} seed{'s' if n_seeds > 1 else ''}"
    lines = [f"#### {result['env_name']}: {seeds} ({', '.join(map(str, result['seeds']))})", ""]
    commits = result.get("commits", ["unknown"])
    if commits == ["unknown"]:
        lines += ["Code: not recorded (these runs predate the provenance in metrics.json)", ""]
    else:
        lines += [f"Code: commit {', '.join(commits)}", ""]
    if not result.get("task_distribution", True):
        lines += ["Warning: a single-task family: the held-out tasks have the training physics (new episodes only)", ""]
    if "timing" in result:
        timing = result["timing"]
        stages = ", ".join(f"{name} {value:.0f} s" for name, value in timing["mean_stage_s"].items())
        per_seed = ", ".join(f"{value:.0f} s" for value in timing["per_seed_s"])
        lines += [f"Time per seed: {per_seed} (mean by stage: {stages})", ""]
        if "resumed_seeds" in timing:
            seeds = ", ".join(str(seed) for seed in timing["resumed_seeds"])
            lines += [f"Resumed from a checkpoint (their seconds count from the restart): seed {seeds}", ""]
    if "env_steps" in result:
        steps = result["env_steps"]
        totals = [random + onpolicy for random, onpolicy in zip(steps["random"], steps["onpolicy"], strict=True)]
        lines += [
            f"Environment steps trained on per seed: {_distinct(totals)} (random policy {_distinct(steps['random'])}, "
            f"on-policy {_distinct(steps['onpolicy'])})",
            "",
        ]
    if n_seeds == 1:
        over_seeds = "One seed, so no interval over seeds: each value is the mean of the seed's tasks."
    else:
        over_seeds = (
            f"Mean [95% CI] over the {seeds}: the mean of each seed's tasks is one value (a seed's tasks share its "
            "trained model)."
        )
    lines += [
        f"{over_seeds} Paired differences also give the seeds won/lost, each seed's mean, the two-level bootstrap "
        'interval and, as "pairs", the interval over (seed, task) pairs, which holds the trained models fixed.',
        "",
    ]
    for split, learners in result.get("prediction", {}).items():
        steps = list(next(iter(learners.values())))
        lines += [
            f"Prediction MSE, {split}",
            "",
            "| learner | " + " | ".join(f"k={k}" for k in steps) + " |",
            "|---|" + "---|" * len(steps),
        ]
        lines += [
            f"| {learner} | " + " | ".join(over_seeds_cell(by_k[k], 4) for k in steps) + " |"
            for learner, by_k in learners.items()
        ]
        for pair, by_k in result["prediction_paired"][split].items():
            cells = " | ".join(f"{over_seeds_cell(by_k[k], 4)} ({seeds_won(by_k[k])})" for k in steps)
            lines.append(f"| {pair} (seeds won/lost) | {cells} |")
        lines.append("")
    for key, title in (("control", "test tasks"), ("control_ood", "OOD tasks")):
        if key not in result:
            continue
        scores = result.get("normalized_score" if key == "control" else "normalized_score_ood", {})
        lines += [f"Control return, {title}", "", "| condition | return | normalized score |", "|---|---|---|"]
        for condition, value in result[key].items():
            lines.append(f"| {condition} | {over_seeds_cell(value, 1)} | {_score_cell(scores.get(condition))} |")
        if "withheld" in scores:
            lines += ["", f"No normalized score: {scores['withheld']}."]
        lines += ["", *paired_table("paired difference", result[f"{key}_paired"].items()), ""]
    if "protocol" in result:
        lines += _protocol_lines(result["protocol"])
    for split, policies in result.get("rl2", {}).items():
        episodes = len(next(iter(policies.values()))["episode_returns"])
        scores = result["rl2_normalized_score"].get(split, {})
        lines += [
            f"RL² return of each episode of a trial, {split}",
            "",
            "| policy | " + " | ".join(f"episode {e + 1}" for e in range(episodes)) + " | normalized score (last) |",
            "|---|" + "---|" * (episodes + 1),
        ]
        for name, value in policies.items():
            cells = " | ".join(over_seeds_cell(r, 1) for r in value["episode_returns"])
            lines.append(f"| {name} | {cells} | {_score_cell(scores.get(name))} |")
        gains = [
            (f"{name} {pair}", value)
            for name, pairs in result["rl2_paired"][split].items()
            for pair, value in pairs.items()
        ]
        lines += ["", *paired_table("paired in-context gain", gains), ""]
    return "\n".join(lines)


def _protocol_lines(protocol: dict) -> list[str]:
    """The protocol's test settings as columns: each condition's per-setting return and the mean over settings."""
    settings = [
        ", ".join(f"{name} {{{', '.join(f'{v:g}' for v in values)}}}" for name, values in setting.items())
        for setting in protocol["table"]["test_settings"]
    ]
    lines = [
        f"The {protocol['name']} protocol's test settings ({protocol['source']}): return per setting, and the "
        "unweighted mean over settings (the protocol's overall figure)",
        "",
        "| condition | " + " | ".join(settings) + " | mean over settings |",
        "|---|" + "---|" * (len(settings) + 1),
    ]
    for condition, per_setting in protocol["per_setting"].items():
        cells = " | ".join("-" if value is None else over_seeds_cell({"over_seeds": value}, 1) for value in per_setting)
        lines.append(f"| {condition} | {cells} | {over_seeds_cell(protocol['setting_mean'][condition], 1)} |")
    lines += ["", *paired_table("paired, mean over settings", protocol["setting_mean_paired"].items()), ""]
    return lines


def _distinct(values: list[int]) -> str:
    return ", ".join(map(str, sorted(set(values))))


def _score_cell(score: dict | None) -> str:
    if score is None:
        return "-"
    if score["n"] == 0:
        return f"- (no pair has a range; {score['excluded_pairs']} excluded)"
    excluded = score["excluded_pairs"]
    return over_seeds_cell(score, 2) + (f" ({excluded} pairs without a range excluded)" if excluded else "")


RESULTS_BLOCK = re.compile(r"(<!-- results: (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- end results -->)", re.DOTALL)


def refresh_results_blocks(text: str, root: Path) -> str:
    """`text` with every `<!-- results: PATH -->` ... `<!-- end results -->` block regenerated from the summary
    JSON at PATH (relative to `root`; a comparison's or an overview's JSON, marked by its "kind", renders as
    `pipeline.comparison` or `pipeline.overview` does), so README tables are always the committed results."""
    renderers = {"comparison": comparison_markdown, "overview": overview_markdown}

    def block(match: re.Match) -> str:
        result = json.loads((root / match["path"]).read_text())
        markdown = renderers.get(result.get("kind"), summary_markdown)(result)
        return f"{match[1]}{markdown}\n{match[4]}"

    return RESULTS_BLOCK.sub(block, text)


def recompute_published(folder: Path) -> dict:
    """summary.json and summary_paired.png of a published results folder (docs/results/<family>/), recomputed from
    the per-seed metrics committed there as seed_<S>_metrics.json."""
    paths = sorted(folder.glob("seed_*_metrics.json"), key=lambda path: int(path.name.split("_")[1]))
    if not paths:
        raise ValueError(f"{folder} holds no seed_<S>_metrics.json")
    result = summarize([json.loads(path.read_text()) for path in paths])
    (folder / "summary.json").write_text(json.dumps(result, indent=2))
    write_paired_plot(result, folder / "summary_paired.png")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Recompute published summaries from their per-seed metrics, or regenerate README results blocks."
    )
    parser.add_argument("--recompute", type=Path, nargs="+", default=[], help="docs/results/<family> folders")
    parser.add_argument("--readme", type=Path, help="a README whose results blocks are regenerated in place")
    args = parser.parse_args(argv)
    if not args.recompute and args.readme is None:
        parser.error("give --recompute FOLDER ... and/or --readme README.md")
    for folder in args.recompute:
        recompute_published(folder)
    if args.readme is not None:
        args.readme.write_text(refresh_results_blocks(args.readme.read_text(), args.readme.parent))


if __name__ == "__main__":
    main(sys.argv[1:])
