"""Markdown of results: cells (numbers, intervals, values over seeds), paired-difference tables and the whole
summary of a run folder (`summary_markdown`, written as summary.md and rendered into the docs pages)."""

from __future__ import annotations

import math

from pipeline.report.verdicts import verdicts


def number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def interval(bounds: list[float] | None, digits: int) -> str:
    """'[lo, hi]'; '-' where there is no interval (one value: no spread to make one from)."""
    if bounds is None or any(math.isnan(bound) for bound in bounds):
        return "-"
    return f"[{number(bounds[0], digits)}, {number(bounds[1], digits)}]"


def over_seeds_cell(value: dict, digits: int) -> str:
    """'mean [lo, hi]' of the seed means ('mean (1 seed)' without an interval; '(bootstrap)' where the interval is the
    percentile bootstrap's, the t interval having crossed 0 where no value does)."""
    seeds = value["over_seeds"]
    if seeds["ci95"] is None:
        return f"{number(seeds['mean'], digits)} (1 seed)"
    marked = " (bootstrap)" if "interval" in seeds else ""  # the t interval left the values' sign
    return f"{number(seeds['mean'], digits)} {interval(seeds['ci95'], digits)}{marked}"


def seeds_won(value: dict) -> str:
    return f"{value['over_seeds']['wins']}/{value['over_seeds']['losses']}"


def paired_table(title: str, rows, better: float = 1.0, digits: int = 1) -> list[str]:
    """The paired differences `rows` ((label, paired_pooled entry)) as one table, each with its verdict
    (`pipeline.report.verdicts`, Holm over the table's rows); `better`: the sign of the better side; `digits`
    after the point."""
    rows = list(rows)
    decided = verdicts([(value, better) for _, value in rows])
    lines = [
        f"| {title} | mean [95% CI] over seeds | verdict (p, Holm) | seeds won/lost | per seed | bootstrap 95% | "
        "pairs: mean [95% CI] (won/lost of n) |",
        "|---|---|---|---|---|---|---|",
    ]
    for (label, value), verdict in zip(rows, decided, strict=True):
        per_seed = ", ".join(number(mean, digits) for mean in value["over_seeds"]["per_seed"])
        won = f"{value['wins']}/{value['losses']} of {value['n']}"
        pairs = f"{number(value['mean'], digits)} {interval(value['ci95'], digits)} ({won})"
        lines.append(
            f"| {label} | {over_seeds_cell(value, digits)} | {verdict_cell(verdict)} | {seeds_won(value)} | "
            f"{per_seed} | {interval(value['bootstrap_ci95'], digits)} | {pairs} |"
        )
    return lines


def verdict_cell(verdict: dict) -> str:
    """'established (p 0.004, Holm 0.020)'; 'too few seeds (3)' where there is no verdict."""
    if verdict["p_holm"] is None:
        return f"{verdict['verdict']} ({verdict['n_seeds']})"
    return f"{verdict['verdict']} (p {number(verdict['p'], 3)}, Holm {number(verdict['p_holm'], 3)})"


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
    for key, title in (
        ("prediction", "Prediction MSE"),
        ("prediction_open_loop", "Open-loop error over the planner's horizon (the model fed its own predictions)"),
    ):
        for split, learners in result.get(key, {}).items():
            lines += _prediction_lines(f"{title}, {split}", learners, result[f"{key}_paired"][split])
        if key == "prediction" and "fine_tuning" in result:
            chosen = "; ".join(f"{name}: {', '.join(seeds)}" for name, seeds in result["fine_tuning"].items())
            lines += [f"Fine-tuning each seed chose on val tasks (none: no step): {chosen}", ""]
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
    if "learning_curve" in result:
        lines += _learning_curve_lines(result)
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
        if "withheld" in scores:
            lines += ["", f"No normalized score: {scores['withheld']}."]
        if scores.get("excluded_collapsed_oracle_seeds"):
            count = scores["excluded_collapsed_oracle_seeds"]
            lines += ["", f"Normalized scores leave out {count} seed(s) whose oracle training collapsed."]
        collapsed = {name: seeds for name, seeds in result.get("rl2_collapsed", {}).items() if seeds}
        if collapsed:
            listed = "; ".join(f"{name}: seed {', '.join(map(str, seeds))}" for name, seeds in collapsed.items())
            lines += ["", f"Training collapsed on val tasks (fell and stayed down): {listed}."]
        gains = [
            (f"{name} {pair}", value)
            for name, pairs in result["rl2_paired"][split].items()
            for pair, value in pairs.items()
        ]
        if gains:
            lines += ["", *paired_table("paired in-context gain", gains), ""]
    longer = (
        ("rl2_longer", "episode_returns", "episode", "RL² in trials of {} episodes (longer than training's)"),
        (
            "rl2_longer_episodes",
            "part_returns",
            "part",
            "RL² in episodes {} times as long as training's, each part of the trained length on the trained scale",
        ),
    )
    for key, parts, column, title in longer:
        for length, splits in result.get(key, {}).items():
            for split, policies in splits.items():
                lines += [
                    f"{title.format(length)}, {split}",
                    "",
                    "| policy | " + " | ".join(f"{column} {e + 1}" for e in range(int(length))) + " |",
                    "|---|" + "---|" * int(length),
                ]
                for name, value in policies.items():
                    lines.append(f"| {name} | " + " | ".join(over_seeds_cell(r, 1) for r in value[parts]) + " |")
                gains = [(f"{name} last-first", value["last-first"]) for name, value in policies.items()]
                lines += ["", *paired_table("paired gain over the longer trial", gains), ""]
    if "rl2_mmer" in result:
        lines += [
            "",
            "| policy | MMER (max over training of the mean episodic return) | parameters | training steps/s |",
        ]
        lines.append("|---|---|---|---|")
        for name, value in result["rl2_mmer"].items():
            speed = "-" if result["rl2_throughput"] is None else number(result["rl2_throughput"][name]["mean"], 0)
            lines.append(
                f"| {name} | {over_seeds_cell({'over_seeds': value}, 3)} | {result['rl2_parameters'][name]} | {speed} |"
            )
        lines.append("")
    return "\n".join(lines)


def _prediction_lines(title: str, learners: dict, paired: dict) -> list[str]:
    """A learner per row, a column per adaptation step k (geometric means over seeds), then the error ratios with
    their verdicts (a table of their own for Holm: the pairs and steps of this split)."""
    steps = list(next(iter(learners.values())))
    lines = [title, "", "| learner | " + " | ".join(f"k={k}" for k in steps) + " |", "|---|" + "---|" * len(steps)]
    lines += [
        f"| {learner} | " + " | ".join(_error_cell(by_k[k]) for k in steps) + " |" for learner, by_k in learners.items()
    ]
    ratios = [(pair, k, by_k[k]) for pair, by_k in paired.items() for k in steps]
    decided = iter(verdicts([(value, -1.0) for _, _, value in ratios]))
    for pair, by_k in paired.items():
        cells = " | ".join(
            f"{_error_cell(by_k[k])} ({seeds_won(by_k[k])}; {verdict_cell(next(decided))})" for k in steps
        )
        lines.append(f"| {pair} ratio (seeds won/lost; verdict) | {cells} |")
    return [*lines, ""]


def _error_cell(value: dict) -> str:
    diverged = value.get("diverged")
    return over_seeds_cell(value, 4) + (f", {diverged} diverged left out" if diverged else "")


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


def _learning_curve_lines(result: dict) -> list[str]:
    """Return against environment steps: tta on val tasks, and the on-policy rows collected on training tasks."""
    lines = [
        "Learning curve: tta's return on val tasks after training on each amount of data, and the return of the "
        "on-policy rows each round collected on training tasks",
        "",
        "| environment steps | tta, val tasks | on-policy rows |",
        "|---|---|---|",
    ]
    for point in result["learning_curve"]:
        cells = [over_seeds_cell(point[key], 1) if key in point else "-" for key in ("val_return", "onpolicy_return")]
        lines.append(f"| {point['env_steps']} | {' | '.join(cells)} |")
    lines.append("")
    if "learning_curve_gain" in result:
        gain = [("val return, last point - first", result["learning_curve_gain"])]
        lines += [*paired_table("learning curve gain", gain), ""]
    return lines


def _distinct(values: list[int]) -> str:
    return ", ".join(map(str, sorted(set(values))))


def _score_cell(score: dict | None) -> str:
    if score is None:
        return "-"
    excluded = score["excluded_seeds"]
    if score["n"] == 0:
        return f"- (no seed's references have a range; {excluded} excluded)"
    return over_seeds_cell(score, 2) + (f" ({excluded} seeds without a range excluded)" if excluded else "")
