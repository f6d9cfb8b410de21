"""MAML sinusoid regression, the protocol of Finn et al. 2017 (section 5.1).

Meta-training: 25 tasks per meta-batch, K support and K query points per task, one inner SGD step with
lr 0.01, Adam with lr 0.001 on the outer loss. Evaluation: 600 new tasks, adapt on K points, MSE on 100
query points after 1 and 10 steps (mean and 95% interval over tasks).

    python experiments/sinusoid.py --iterations 10000 --shots 5 10 --json runs/sinusoid.json
    python -m benchmarks.sinusoid --iterations 10000 --shots 5 10   # the same from an installed wheel
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import trange

from core.checkpoint import atomic_write_json
from meta_rl.meta_maml import MetaMAML
from meta_rl.sinusoid import sample_sinusoid_tasks, sinusoid_mlp
from pipeline.console import OneLineParser
from pipeline.report.statistics import mean_and_ci95


def evaluate(learner: MetaMAML, shots: int, num_tasks: int, steps: tuple[int, ...], seed: int) -> dict:
    """Query MSE on new tasks after each number of inner steps in `steps` (0 = the meta-learned init)."""
    tasks = sample_sinusoid_tasks(num_tasks, shots, 100, torch.Generator().manual_seed(seed))
    losses: dict[int, list[float]] = {k: [] for k in steps}
    for support_x, support_y, query_x, query_y in tasks:
        for k in steps:
            params = learner.params() if k == 0 else learner.adapt_task(support_x, support_y, num_steps=k)
            with torch.no_grad():
                prediction = learner.functional_forward(query_x, None, params)
            losses[k].append(F.mse_loss(prediction, query_y).item())
    summaries = {str(k): mean_and_ci95(values) for k, values in losses.items()}
    return {k: {"mean": mean, "ci95": ci95} for k, (mean, ci95) in summaries.items()}


def train_and_evaluate(shots: int, iterations: int, seed: int) -> dict:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    learner = MetaMAML(sinusoid_mlp(), inner_lr=0.01, outer_lr=0.001)
    start = time.perf_counter()
    for _ in trange(iterations, desc=f"meta-train K={shots}"):
        learner.meta_update(sample_sinusoid_tasks(25, shots, shots, generator))
    train_s = time.perf_counter() - start
    results = evaluate(learner, shots, num_tasks=600, steps=(0, 1, 10), seed=seed + 1000)
    return {"shots": shots, "iterations": iterations, "train_s": train_s, "query_mse": results}


def main(argv: list[str] | None = None) -> dict:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=10000, help="meta-training iterations per K")
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 10], help="support points per task (K)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {"protocol": "Finn et al. 2017 sinusoid", "runs": []}
    for shots in args.shots:
        run = train_and_evaluate(shots, args.iterations, args.seed)
        results["runs"].append(run)
        summary = ", ".join(
            f"{k} steps {v['mean']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]" for k, v in run["query_mse"].items()
        )
        print(f"K={shots}, {args.iterations} iterations ({run['train_s']:.0f} s): query MSE {summary}")
    if args.json:
        atomic_write_json(results, args.json)
    return results


if __name__ == "__main__":
    main()
