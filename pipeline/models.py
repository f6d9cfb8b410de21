"""The world models a run trains side by side: MetaMAML on the world model (`--world_model`: an SSM, a GRU or an
MLP), its ERM baseline and the oracle.

All three start from the same initial weights (the oracle's input layer is wider) and train on the same
windows for the same number of steps: MetaMAML (one Adam step on the post-adaptation query loss, adapting on
one support window per (support, query) pair, the support size that prediction and online adaptation use at
test time), ERM (one Adam step on the MSE of every window's support and query steps as one sequence, no inner
loop), and the oracle (ERM with the task's standardised coefficients appended to every input).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import replace

import torch
from torch import nn

from core.ensemble import Ensemble
from core.gru import GRUModel
from core.heads import OutputHead
from core.mlp import MLPModel
from core.ssm import SSM
from env_runner.segments import SegmentBatch
from meta_rl.distributed import sharded_backward
from meta_rl.meta_maml import MetaMAML
from pipeline.config import PipelineConfig


def make_world_model(config: PipelineConfig, input_dim: int, output_dim: int) -> nn.Module:
    """The `config.world_model` of the run's sizes, or an `Ensemble` of `config.ensemble_size` of them (members
    initialised one after the other, `output_dim` shared out among them); every kind has `init_hidden` and
    `forward(x, h, reset)`, and names its input layer `in_proj`."""
    if config.ensemble_size > 1:
        one, width = replace(config, ensemble_size=1), output_dim // config.ensemble_size
        return Ensemble([make_world_model(one, input_dim, width) for _ in range(config.ensemble_size)])
    if config.world_model in ("ssm", "ssm_complex"):
        eigenvalues = "complex" if config.world_model == "ssm_complex" else "real"
        return SSM(
            config.state_dim, input_dim, output_dim, config.hidden_dim, device=config.device, eigenvalues=eigenvalues
        )
    if config.world_model == "gru":
        return GRUModel(config.state_dim, input_dim, output_dim, device=config.device)
    return MLPModel(input_dim, output_dim, config.hidden_dim, device=config.device)


class WorldModels:
    """MetaMAML on the world model, an ERM model of the same architecture and initial weights, and the oracle."""

    def __init__(self, config: PipelineConfig, input_dim: int, output_dim: int, context_dim: int) -> None:
        torch.manual_seed(config.seed)
        self.head = OutputHead(output_dim, config.ensemble_size, config.probabilistic)
        self.maml_model = make_world_model(config, input_dim, self.head.width)
        self.erm_model = copy.deepcopy(self.maml_model)
        self.oracle_model = None
        if context_dim:
            self.oracle_model = make_world_model(config, input_dim + context_dim, self.head.width)
            own, wider = self.maml_model.state_dict(), self.oracle_model.state_dict()
            self.oracle_model.load_state_dict(
                own
                | {  # every input layer: the shared columns, then the oracle's own for its context
                    name: torch.cat([own[name], wider[name][:, input_dim:]], dim=1)
                    for name in own
                    if name.endswith("in_proj.weight")
                }
            )
        self.learner = MetaMAML(
            self.maml_model,
            inner_lr=config.inner_lr,
            outer_lr=config.outer_lr,
            first_order=config.first_order,
            learn_inner_lr=config.learn_inner_lr,
            num_inner_steps=config.num_inner_steps,
            grad_clip_norm=config.grad_clip_norm,
            inner_grad_clip=config.inner_grad_clip,
            loss_fn=self.head.loss,
        )
        self.optimizers = {
            name: torch.optim.Adam(model.parameters(), lr=config.outer_lr) for name, model in self._supervised().items()
        }
        self.grad_clip_norm = config.grad_clip_norm
        self.skipped_updates = dict.fromkeys(self.optimizers, 0)  # steps refused: the gradient was not finite

    def skipped(self) -> dict[str, int]:
        """Every model's count of updates skipped for a gradient that was not finite, MetaMAML's included."""
        return {"maml": self.learner.skipped_updates, **self.skipped_updates}

    def non_finite(self) -> list[str]:
        """The models (and MetaMAML's learned inner rates) holding a weight that is not finite."""
        learned = {"maml": [*self.maml_model.parameters(), *self.learner.inner_lrs.values()]}
        models = learned | {name: list(model.parameters()) for name, model in self._supervised().items()}
        return [name for name, weights in models.items() if not all(torch.isfinite(w).all() for w in weights)]

    def _supervised(self) -> dict[str, nn.Module]:
        models = {"erm": self.erm_model}
        if self.oracle_model is not None:
            models["oracle"] = self.oracle_model
        return models

    def train_step(self, batch: SegmentBatch, context: torch.Tensor | None = None) -> dict[str, float]:
        """One meta-update and one step of each supervised model on the same windows; returns their losses.

        context (n_tasks, K): the oracle's per-task input (needed when there is an oracle).
        """
        losses = {"maml": self.learner.meta_update(batch.window_tuples())}  # support: one window, as at test time
        for name, (model, x, y, reset) in self._supervised_windows(batch, context).items():
            losses[name] = self._supervised_step(name, model, x, y, reset)
        return losses

    @torch.no_grad()
    def losses(self, batch: SegmentBatch, context: torch.Tensor | None = None) -> dict[str, float]:
        """The losses `train_step` descends, on `batch` (held-out windows) without a step: MetaMAML's query loss
        after its inner step, and each supervised model's MSE over the windows."""
        losses = {"maml": self.learner.meta_loss(batch.window_tuples()).item()}
        for name, (model, x, y, reset) in self._supervised_windows(batch, context).items():
            flat_x, flat_y, flat_reset = (t.flatten(0, 1) for t in (x, y, reset))
            prediction, _ = model(flat_x, model.init_hidden(flat_x.shape[0]), flat_reset)
            losses[name] = self.head.loss(prediction, flat_y).item()
        return losses

    def _supervised_windows(self, batch: SegmentBatch, context: torch.Tensor | None) -> dict[str, tuple]:
        """Each supervised model with its inputs, targets and resets: a window's support and query as one sequence
        (n_tasks, W, M + K, ·), the oracle's inputs carrying the task context (n_tasks, K)."""
        x = torch.cat([batch.support_x, batch.query_x], dim=2)  # (n_tasks, W, M + K, D_in)
        y = torch.cat([batch.support_y, batch.query_y], dim=2)
        reset = torch.cat([batch.support_reset, batch.query_reset], dim=2)
        windows = {}
        for name, model in self._supervised().items():
            inputs = x if name == "erm" else torch.cat([x, context[:, None, None].expand(*x.shape[:3], -1)], dim=-1)
            windows[name] = (model, inputs, y, reset)
        return windows

    def _supervised_step(self, name: str, model: nn.Module, x, y, reset) -> float:
        """One Adam step on the MSE over all windows; under torch.distributed each rank takes a shard of tasks.

        A gradient that is not finite is never applied (as MetaMAML's meta-gradient): the step is skipped with a
        warning and counted in `skipped_updates`."""
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)

        def shard_loss(local: list[int]) -> torch.Tensor:
            local_x, local_y, local_reset = (t[local].flatten(0, 1) for t in (x, y, reset))
            prediction, _ = model(local_x, model.init_hidden(local_x.shape[0]), local_reset)
            return self.head.summed_loss(prediction, local_y) / y.numel()

        loss = sharded_backward(shard_loss, list(range(x.shape[0])), list(model.parameters()))
        if not torch.isfinite(torch.nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip_norm)):
            self.skipped_updates[name] += 1
            warnings.warn(f"the {name} model skipped an update with a non-finite gradient (loss {loss})", stacklevel=2)
            return loss
        optimizer.step()
        return loss

    def state_dict(self) -> dict:
        state = {"learner": self.learner.state_dict()}
        for name, model in self._supervised().items():
            state[f"{name}_model"] = model.state_dict()
            state[f"{name}_optimizer"] = self.optimizers[name].state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.learner.load_state_dict(state["learner"])
        for name, model in self._supervised().items():
            model.load_state_dict(state[f"{name}_model"])
            self.optimizers[name].load_state_dict(state[f"{name}_optimizer"])
