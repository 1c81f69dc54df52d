"""Normalisation layers: data-initialised per-feature affine maps (ActNorm, and its
conditional form for FlowSampler's context)."""

from __future__ import annotations

import torch
from torch import nn

from .base import Transform, awaiting_init, soft_clamp


class ActNorm(Transform):
    """Per-feature affine normalisation, initialised from the first batch it sees in training.

    ``z = (x - loc) * exp(-log_scale)``; after initialisation the batch has zero mean and unit
    variance per feature, which keeps activations in deep stacks in range.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(features))
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _initialize(self, x: torch.Tensor) -> None:
        self.loc.copy_(x.mean(dim=0))
        std = x.std(dim=0) if x.shape[0] > 1 else torch.ones_like(self.loc)
        self.log_scale.copy_(torch.log(std.clamp_min(1e-6)))
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):
        if awaiting_init(self):
            self._initialize(x)
        z = (x - self.loc) * torch.exp(-self.log_scale)
        return z, (-self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return z * torch.exp(self.log_scale) + self.loc


class ContextAffine(Transform):
    """Per-feature affine map whose shift and log-scale are linear in the context.

    ``z = (x - (W c + b)) * exp(-(V c + e))``. With one-hot class contexts this standardises
    each class separately before any other layer, so a small class keeps its own location and
    spread instead of being described only through the coupling conditioners (which left
    minority classes pulled towards the majority). Initialised from the first training batch by
    least squares: the shift to the regression of ``x`` on ``[c, 1]``, the log-scale to the
    regression of the log absolute residuals (corrected for the bias of ``log|N(0, s^2)|``).
    The log-scale is softly bounded to ``(-scale_limit, scale_limit)``.
    """

    # E[log |N(0, 1)|] = -(euler_gamma + log 2) / 2
    _LOG_ABS_NORMAL_MEAN = -0.6351814227307391

    def __init__(self, features: int, context_features: int, scale_limit: float = 5.0) -> None:
        super().__init__()
        self.shift = nn.Linear(context_features, features)
        self.log_scale = nn.Linear(context_features, features)
        self.scale_limit = float(scale_limit)
        for layer in (self.shift, self.log_scale):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _initialize(self, x: torch.Tensor, context: torch.Tensor) -> None:
        # On the CPU whatever the device: the SVD-based solver copes with rank-deficient
        # designs (one-hot classes with a constant column), and torch has it only there. The
        # initialisation sees a few thousand rows at most, so the round trip costs little.
        design = torch.cat([context, torch.ones_like(context[:, :1])], dim=1).double().cpu()
        target = x.double().cpu()
        coef = torch.linalg.lstsq(design, target, driver="gelsd").solution
        residual = target - design @ coef
        log_abs = torch.log(residual.abs().clamp_min(1e-6)) - self._LOG_ABS_NORMAL_MEAN
        log_coef = torch.linalg.lstsq(design, log_abs, driver="gelsd").solution
        for layer, values in ((self.shift, coef), (self.log_scale, log_coef)):
            layer.weight.copy_(values[:-1].T.to(layer.weight))
            layer.bias.copy_(values[-1].to(layer.bias))
        self.initialized.fill_(True)

    def _params(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.shift(context), soft_clamp(self.log_scale(context), self.scale_limit)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):
        if context is None:
            raise ValueError("ContextAffine needs a context")
        if awaiting_init(self) and x.shape[0] > context.shape[1] + 1:
            self._initialize(x, context)
        shift, log_scale = self._params(context)
        return (x - shift) * torch.exp(-log_scale), -log_scale.sum(dim=1)

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if context is None:
            raise ValueError("ContextAffine needs a context")
        shift, log_scale = self._params(context)
        return z * torch.exp(log_scale) + shift
