"""The multi-seed summary: pooled statistics over (seed, task) pairs, paired differences, normalised scores.

    summary.json
      prediction.<split>.<learner>.<k>, control.<condition>, control_ood.<condition>:
          {"mean", "ci95": [lo, hi], "n", "per_seed": [mean of each seed]}
      prediction_paired.<split>."maml-erm"|"maml-oracle".<k>, control_paired / control_ood_paired
          ."tta-no_tta"|"tta-memory_only"|"memory_only-no_tta"|"tta-oracle":
          {"mean", "ci95", "n", "wins", "losses"}   (a win: the first is better: lower MSE, higher return)
      normalized_score / normalized_score_ood.<condition>: mean over pairs of (R - R_random) / (R_true - R_random)
    --algo rl2, instead of prediction and control (split: in_distribution | ood; policy: ssm | gru, oracle, random):
      rl2.<split>.<policy>.episode_returns: [{"mean", "ci95", "n", "per_seed"} for each episode of a trial]
      rl2_paired.<split>.<policy>."episode_2-episode_1"|"last-first": the in-context gain, paired per (seed, task)
      rl2_normalized_score.<split>.<policy>: last episode's (R - R_random) / (R_oracle - R_random)

Every value is recomputed from the per-seed metrics.json (per_task lists), pooled over seeds x tasks; the
intervals are Student-t over those pairs (`pipeline.statistics`).

    python -m pipeline.summary README.md      regenerate the README's results blocks from docs/results/
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from pipeline.plots import write_paired_plot
from pipeline.report import format_interval
from pipeline.statistics import normalized_scores, paired_pooled, pooled

CONTROL_PAIRS = (("tta", "no_tta"), ("tta", "memory_only"), ("memory_only", "no_tta"), ("tta", "oracle"))
PREDICTION_PAIRS = (("maml", "erm"), ("maml", "oracle"))


def summarize(runs: list[dict]) -> dict:
    """The summary of per-seed metrics (same env and config but the seed)."""
    first = runs[0]
    result: dict = {"env_name": first["env_name"], "seeds": [run["seed"] for run in runs], "n_seeds": len(runs)}
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
            result[score_key] = {
                c: _pooled_normalized(per_task[c], per_task["random"], per_task["true_dynamics"]) for c in conditions
            }
    result["timing"] = _timing(runs)
    return result


def _timing(runs: list[dict]) -> dict:
    """Seconds: all seeds, each seed, and each stage's mean over seeds ("train", "control", "train ssm", ...)."""
    stages = [_stage_seconds(run["timing"]) for run in runs]
    return {
        "total_s": sum(run["timing"]["total_s"] for run in runs),
        "per_seed_s": [run["timing"]["total_s"] for run in runs],
        "mean_stage_s": {
            name: sum(seed[name] for seed in stages) / len(stages)
            for name in stages[0]
            if all(name in seed for seed in stages)
        },
    }


def _stage_seconds(timing: dict) -> dict[str, float]:
    """A run's stage times by name: `timing["stages"]` (the model-based pipeline) or the other `*_s` entries
    (RL²), nested ones flattened ({"train_s": {"ssm": t}} -> "train ssm")."""
    stages = timing.get("stages", {key: value for key, value in timing.items() if key != "total_s"})
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
    """`pooled` over seeds of each (seed, task) pair's (R - R_random) / (R_ceiling - R_random)."""
    return pooled([normalized_scores(*seed) for seed in zip(values, random, ceiling, strict=True)])


def write_summary(runs: list[dict], out_dir: Path) -> dict:
    """summary.json, summary.md and summary_paired.png in `out_dir`; returns the summary."""
    result = summarize(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(result, indent=2))
    (out_dir / "summary.md").write_text(summary_markdown(result))
    write_paired_plot(result, out_dir / "summary_paired.png")
    print(summary_markdown(result))
    return result


def summary_markdown(result: dict) -> str:
    """Markdown tables: prediction, control, paired differences, normalised scores."""
    lines = [f"#### {result['env_name']}: {result['n_seeds']} seeds ({', '.join(map(str, result['seeds']))})", ""]
    if "timing" in result:
        timing = result["timing"]
        stages = ", ".join(f"{name} {value:.0f} s" for name, value in timing["mean_stage_s"].items())
        per_seed = ", ".join(f"{value:.0f} s" for value in timing["per_seed_s"])
        lines += [f"Time per seed: {per_seed} (mean by stage: {stages})", ""]
    for split, learners in result.get("prediction", {}).items():
        steps = list(next(iter(learners.values())))
        lines += [
            f"Prediction MSE, {split} (mean [95% CI] over seed x task pairs)",
            "",
            "| learner | " + " | ".join(f"k={k}" for k in steps) + " |",
            "|---|" + "---|" * len(steps),
        ]
        lines += [
            f"| {learner} | " + " | ".join(format_interval(by_k[k], 4) for k in steps) + " |"
            for learner, by_k in learners.items()
        ]
        for pair, by_k in result["prediction_paired"][split].items():
            lines.append(
                f"| {pair} (paired; wins/losses) | "
                + " | ".join(f"{format_interval(by_k[k], 4)} ({by_k[k]['wins']}/{by_k[k]['losses']})" for k in steps)
                + " |"
            )
        lines.append("")
    for key, title in (("control", "test tasks"), ("control_ood", "OOD tasks")):
        if key not in result:
            continue
        score_key = "normalized_score" if key == "control" else "normalized_score_ood"
        lines += [f"Control return, {title}", "", "| condition | return | normalized score |", "|---|---|---|"]
        for condition, value in result[key].items():
            score = result.get(score_key, {}).get(condition)
            score_cell = format_interval(score, 2) if score else "-"
            lines.append(f"| {condition} | {format_interval(value, 1)} | {score_cell} |")
        lines += ["", "| paired difference | mean [95% CI] | n | wins | losses |", "|---|---|---|---|---|"]
        for pair, value in result[f"{key}_paired"].items():
            lines.append(_paired_row(pair, value))
        lines.append("")
    for split, policies in result.get("rl2", {}).items():
        episodes = len(next(iter(policies.values()))["episode_returns"])
        scores = result["rl2_normalized_score"].get(split, {})
        lines += [
            f"RL² return of each episode of a trial, {split} (mean [95% CI] over seed x task pairs)",
            "",
            "| policy | " + " | ".join(f"episode {e + 1}" for e in range(episodes)) + " | normalized score (last) |",
            "|---|" + "---|" * (episodes + 1),
        ]
        for name, value in policies.items():
            score = format_interval(scores[name], 2) if name in scores else "-"
            cells = " | ".join(format_interval(r, 1) for r in value["episode_returns"])
            lines.append(f"| {name} | {cells} | {score} |")
        lines += ["", "| paired in-context gain | mean [95% CI] | n | wins | losses |", "|---|---|---|---|---|"]
        for name, pairs in result["rl2_paired"][split].items():
            for pair, value in pairs.items():
                lines.append(_paired_row(f"{name} {pair}", value))
        lines.append("")
    return "\n".join(lines)


def _paired_row(label: str, value: dict) -> str:
    return f"| {label} | {format_interval(value, 1)} | {value['n']} | {value['wins']} | {value['losses']} |"


RESULTS_BLOCK = re.compile(r"(<!-- results: (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- end results -->)", re.DOTALL)


def refresh_results_blocks(text: str, root: Path) -> str:
    """`text` with every `<!-- results: PATH -->` ... `<!-- end results -->` block regenerated from the summary
    JSON at PATH (relative to `root`), so README tables are always the committed results."""

    def block(match: re.Match) -> str:
        summary_json = json.loads((root / match["path"]).read_text())
        return f"{match[1]}{summary_markdown(summary_json)}\n{match[4]}"

    return RESULTS_BLOCK.sub(block, text)


if __name__ == "__main__":  # python -m pipeline.summary README.md: regenerate its results tables in place
    readme = Path(sys.argv[1])
    readme.write_text(refresh_results_blocks(readme.read_text(), readme.parent))
