"""What a world model's outputs mean: a point prediction, a Gaussian per target, or either from each member of an
ensemble (PETS, Chua et al. 2018), and the loss, point estimate and sample each one gives.

    head = OutputHead(target_dim=3, members=5, gaussian=True)
    model = make_world_model(..., output_dim=head.width)     # 5 members x (mean, log-variance) x 3
    loss = head.loss(prediction, target)                     # training, inner steps, online adaptation (summed
                                                             # over members)
    head.point(prediction)                                   # (..., 3): the members' mean, for errors
    head.draw(member_prediction, generator)                  # (N, 3): what the planner imagines from the outputs
                                                             # of a row's own member (Ensemble's own_rows)

Outputs are laid out member-major (`core.ensemble.Ensemble`): member m's block holds its means, then (Gaussian) its
raw log-variances. The log-variance is bounded softly to [MIN_LOG_VARIANCE, MAX_LOG_VARIANCE] (PETS' initial
bounds, fixed here) so the likelihood cannot collapse a variance to 0 or inflate it without limit. A planner's row
keeps one member for its whole rollout (PETS' TS-inf; `core.ensemble.Ensemble`'s own_rows computes only that
member), and a Gaussian head's draw adds noise of the predicted variance. A single deterministic member is the
plain model: its loss is `mse_loss`, its point and draw the output itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.parameters import mse_loss

MIN_LOG_VARIANCE, MAX_LOG_VARIANCE = -10.0, 0.5  # in normalised target units


class OutputHead:
    """The meaning of a world model's `width` outputs for `target_dim` targets."""

    def __init__(self, target_dim: int, members: int = 1, gaussian: bool = False) -> None:
        if members < 1:
            raise ValueError(f"members must be an int >= 1, got {members}")
        self.target_dim, self.members, self.gaussian = target_dim, members, gaussian
        self.plain = members == 1 and not gaussian

    @property
    def width(self) -> int:
        """Model outputs: members x (mean[, log-variance]) x targets."""
        return self.members * (2 if self.gaussian else 1) * self.target_dim

    def split(self, prediction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(..., width) -> means (..., M, D) and bounded log-variances (..., M, D) (None unless Gaussian)."""
        if prediction.shape[-1] != self.width:
            raise ValueError(f"expected {self.width} outputs per step, got {prediction.shape[-1]}")
        blocks = prediction.unflatten(-1, (self.members, -1))  # (..., M, D or 2D)
        if not self.gaussian:
            return blocks, None
        mean, raw = blocks.split(self.target_dim, dim=-1)
        return mean, bounded_log_variance(raw)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The sum over members of each one's MSE (or Gaussian negative log-likelihood, constants dropped) of
        `target`: each member's gradient is the one it would have alone, so an inner step moves every member as
        far as a single model's."""
        if self.plain:
            return mse_loss(prediction, target)
        mean, log_variance = self.split(prediction)
        error = (mean - target.unsqueeze(-2)).square()  # (..., M, D)
        if log_variance is not None:
            error = 0.5 * (error * torch.exp(-log_variance) + log_variance)
        return error.mean(dim=tuple(range(error.dim() - 2)) + (-1,)).sum()  # per member over rows and targets

    def summed_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """`loss` times the number of targets: what shards of a batch add up (`mse_loss`'s "sum" for one member)."""
        if self.plain:
            return F.mse_loss(prediction, target, reduction="sum")
        return self.loss(prediction, target) * target.numel()

    def point(self, prediction: torch.Tensor) -> torch.Tensor:
        """The point prediction (..., D): the members' mean of their means."""
        if self.plain:
            return prediction
        return self.split(prediction)[0].mean(dim=-2)

    def draw(self, prediction: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One imagined target per row from one member's outputs, (N, width / M) -> (N, D): the output itself, or a
        Gaussian head's mean plus noise of its predicted variance."""
        if prediction.shape[-1] != self.width // self.members:
            raise ValueError(f"expected one member's {self.width // self.members} outputs, got {prediction.shape[-1]}")
        if not self.gaussian:
            return prediction
        mean, raw = prediction.split(self.target_dim, dim=-1)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * bounded_log_variance(raw)) * noise


def bounded_log_variance(raw: torch.Tensor) -> torch.Tensor:
    """Raw outputs -> log-variances bounded softly to [MIN_LOG_VARIANCE, MAX_LOG_VARIANCE] (PETS)."""
    log_variance = MAX_LOG_VARIANCE - F.softplus(MAX_LOG_VARIANCE - raw)
    return MIN_LOG_VARIANCE + F.softplus(log_variance - MIN_LOG_VARIANCE)
