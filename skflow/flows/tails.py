"""The tail layer: a per-feature sinh-arcsinh map that makes heavy or light tails Gaussian."""

from __future__ import annotations

import math

import torch
from torch import nn

from . import cpu_math
from .base import Transform, awaiting_init, soft_clamp


class SinhArcsinh(Transform):
    """Per-feature tail adaptation: ``z = sinh(delta * asinh(x) - epsilon) / delta``.

    A sinh-arcsinh map (Jones & Pewsey, 2009) rescaled by ``1 / delta``: ``delta < 1`` compresses
    heavy tails (towards ``asinh``, i.e. logarithmic, as ``delta -> 0``), ``epsilon`` skews.
    ``delta`` is kept at or below 1 (see ``_delta``). Coupling splines are the identity outside
    their interval and affine maps are linear, so neither can turn exponential or power-law
    tails into Gaussian ones; placed on the data side, this layer can. Built as the identity
    (``delta = 1``, ``epsilon = 0``), it is initialised from the first training batch by a
    per-feature maximum likelihood fit; ``log(delta)`` is softly bounded below by
    ``-log_limit`` and ``epsilon`` to ``(-skew_limit, skew_limit)``, so the inverse cannot
    overflow for latent points of sane size.
    """

    def __init__(self, features: int, log_limit: float = 3.0, skew_limit: float = 1.5) -> None:
        super().__init__()
        self.log_delta = nn.Parameter(torch.zeros(features))
        self.epsilon = nn.Parameter(torch.zeros(features))
        self.log_limit = float(log_limit)
        self.skew_limit = float(skew_limit)
        self.register_buffer("initialized", torch.tensor(False))

    def _epsilon(self, epsilon: torch.Tensor | None = None) -> torch.Tensor:
        # A large skew combined with a small delta turns the map into a one-sided exponential
        # (z ~ -exp(epsilon) x^-delta / delta): a marginal fit may like it, the joint does not
        # (training a funnel from there diverged), so the skew is softly bounded.
        return soft_clamp(self.epsilon if epsilon is None else epsilon, self.skew_limit)

    def _delta(self, log_delta: torch.Tensor | None = None) -> torch.Tensor:
        log_delta = self.log_delta if log_delta is None else log_delta
        # delta <= 1: the layer may only compress tails. Letting delta grow
        # past 1 turns light tails into walls (p ~ exp(-x^(2 delta))), and a held-out row just
        # past the training range then gets an astronomically small density.
        # The bound is a reflection, -|log_delta|, written with torch.where so that the
        # gradient at the starting point 0 is 1 by construction: clamp's gradient at its bound
        # is a convention torch changed (1 up to 2.13, 0 from 2.14), and a zero there froze
        # the tails of every fit at delta = 1. A reflection also has no flat region where the
        # parameter could stall once past the bound, as a clamp has.
        bounded = torch.where(log_delta > 0.0, -log_delta, log_delta)
        return torch.exp(soft_clamp(bounded, self.log_limit))

    def _initialize(self, x: torch.Tensor, max_iter: int = 50) -> None:
        """Fit ``delta`` and ``epsilon`` per feature so each marginal becomes Gaussian.

        Maximum likelihood of the model "the transformed feature is N(m, s^2)", solved by
        L-BFGS in float64 on the initialisation batch (features are independent, so one joint
        solve is d small ones). Gradient descent alone moves these few parameters slowly, and by
        the time it has, early stopping may already have ended training.
        """
        data = x.detach().double()
        log_delta = torch.zeros_like(data[0], requires_grad=True)
        epsilon = torch.zeros_like(data[0], requires_grad=True)
        asinh = torch.asinh(data)
        log_norm = torch.log(torch.hypot(torch.ones_like(data), data))

        def negative_log_likelihood() -> torch.Tensor:
            u = self._delta(log_delta) * asinh - self._epsilon(epsilon)
            z = torch.sinh(u) / self._delta(log_delta)
            # Profile out the Gaussian's mean and variance: -log N at the MLE is 0.5 log var.
            log_det = u.abs() + torch.log1p(torch.exp(-2.0 * u.abs())) - log_norm
            return (0.5 * torch.log(z.var(dim=0) + 1e-12) - log_det.mean(dim=0)).sum()

        optimizer = torch.optim.LBFGS(
            [log_delta, epsilon], max_iter=max_iter, line_search_fn="strong_wolfe"
        )

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = negative_log_likelihood()
            loss.backward()
            return loss

        with torch.enable_grad():
            start = negative_log_likelihood().item()
            optimizer.step(closure)
            end = negative_log_likelihood().item()
        with torch.no_grad():
            if math.isfinite(end) and end < start:
                # The same delta, written on the side of the reflection that reads as log(delta).
                self.log_delta.copy_(-log_delta.detach().abs())
                self.epsilon.copy_(epsilon.detach())
            self.initialized.fill_(True)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):
        if awaiting_init(self):
            self._initialize(x)
        delta = self._delta()
        u = delta * cpu_math.asinh(x) - self._epsilon()
        z = cpu_math.sinh(u) / delta
        # log dz/dx = log cosh(u) - log sqrt(1 + x^2), both written so they never overflow.
        abs_u = u.abs()
        log_cosh = abs_u + torch.log1p(torch.exp(-2.0 * abs_u)) - math.log(2.0)
        log_norm = torch.log(torch.hypot(torch.ones_like(x), x))
        return z, (log_cosh - log_norm).sum(dim=1)

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        delta = self._delta()
        return cpu_math.sinh((cpu_math.asinh(delta * z) + self._epsilon()) / delta)
