"""The meta-learned world model and its ERM baseline, trained on the same windows for the same number of steps."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from core.ssm import SSM
from env_runner.segments import SegmentBatch
from meta_rl.distributed import all_reduce_gradients_, all_reduce_sum_, shard
from meta_rl.meta_maml import MetaMAML
from pipeline.config import PipelineConfig


class WorldModels:
    """MetaMAML on an SSM and an ERM SSM of the same architecture and initial weights.

    ERM (empirical risk minimisation) trains jointly on all tasks with no inner loop: each window's
    support and query steps form one sequence, and one Adam step is taken per meta-update.
    """

    def __init__(self, config: PipelineConfig, input_dim: int, output_dim: int) -> None:
        torch.manual_seed(config.seed)
        self.maml_model = SSM(config.state_dim, input_dim, output_dim,
                              config.hidden_dim, device=config.device)
        self.erm_model = copy.deepcopy(self.maml_model)
        self.learner = MetaMAML(
            self.maml_model,
            inner_lr=config.inner_lr,
            outer_lr=config.outer_lr,
            first_order=config.first_order,
            num_inner_steps=config.num_inner_steps,
            grad_clip_norm=config.grad_clip_norm,
            inner_grad_clip=config.inner_grad_clip,
        )
        self.erm_optimizer = torch.optim.Adam(self.erm_model.parameters(), lr=config.outer_lr)
        self.grad_clip_norm = config.grad_clip_norm

    def train_step(self, batch: SegmentBatch) -> tuple[float, float]:
        """One meta-update and one ERM step on the same windows; returns (maml outer loss, erm loss)."""
        maml_loss = self.learner.meta_update(batch.task_tuples())
        return maml_loss, self._erm_step(batch)

    def _erm_step(self, batch: SegmentBatch) -> float:
        """One Adam step on the MSE over all windows; under torch.distributed each rank takes a shard of tasks."""
        x = torch.cat([batch.support_x, batch.query_x], dim=2)  # (n_tasks, W, M + K, D_in)
        y = torch.cat([batch.support_y, batch.query_y], dim=2)
        reset = torch.cat([batch.support_reset, batch.query_reset], dim=2)
        local = shard(range(x.shape[0]))
        self.erm_optimizer.zero_grad(set_to_none=True)
        loss = torch.zeros((), device=x.device)
        if local:
            local_x, local_y, local_reset = (t[local].flatten(0, 1) for t in (x, y, reset))
            prediction, _ = self.erm_model(local_x, self.erm_model.init_hidden(local_x.shape[0]), local_reset)
            loss = F.mse_loss(prediction, local_y, reduction="sum") / y.numel()
            loss.backward()
        all_reduce_gradients_(self.erm_model.parameters())
        loss = loss.detach().clone()
        all_reduce_sum_([loss])
        torch.nn.utils.clip_grad_norm_(self.erm_model.parameters(), self.grad_clip_norm)
        self.erm_optimizer.step()
        return float(loss)

    def state_dict(self) -> dict:
        return {
            "learner": self.learner.state_dict(),
            "erm_model": self.erm_model.state_dict(),
            "erm_optimizer": self.erm_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.learner.load_state_dict(state["learner"])
        self.erm_model.load_state_dict(state["erm_model"])
        self.erm_optimizer.load_state_dict(state["erm_optimizer"])
