"""Invertible layers. ``forward`` is the normalizing direction (data -> latent).

Every layer implements ``forward(x, context=None) -> (z, logabsdet)`` with ``logabsdet`` of shape
``(n_rows,)``, and ``inverse(z, context=None) -> x``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .nets import Conditioner
from .splines import n_spline_params, rational_quadratic_spline


def soft_clamp(values: torch.Tensor, limit: float) -> torch.Tensor:
    """Smoothly bound ``values`` to ``(-limit, limit)``; close to the identity near zero."""
    return limit * torch.tanh(values / limit)


class ActNorm(nn.Module):
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
        if self.training and not bool(self.initialized):
            self._initialize(x)
        z = (x - self.loc) * torch.exp(-self.log_scale)
        return z, (-self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return z * torch.exp(self.log_scale) + self.loc


class Permutation(nn.Module):
    """A fixed random permutation of the features (log-det 0)."""

    def __init__(self, features: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        perm = torch.randperm(features, generator=generator)
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return z[:, self.inverse_perm]


class LULinear(nn.Module):
    """A learned invertible linear map ``z = x W^T`` with ``W = P L U`` (Glow's 1x1 convolution).

    ``P`` is a fixed permutation, ``L`` unit lower-triangular and ``U`` upper-triangular with
    diagonal ``sign * exp(log_diag)``, so ``log|det W| = sum(log_diag)`` costs O(d) and the map can
    never become singular. It starts at a random rotation, which mixes features from step one.
    """

    def __init__(self, features: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        gaussian = torch.randn(features, features, generator=generator, dtype=torch.float64)
        rotation, _ = torch.linalg.qr(gaussian)
        perm, lower, upper = torch.linalg.lu(rotation)
        diag = torch.diagonal(upper)
        self.register_buffer("perm", perm.float())
        self.register_buffer("sign", torch.sign(diag).float())
        self.lower = nn.Parameter(torch.tril(lower, -1).float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_diag = nn.Parameter(torch.log(diag.abs()).float())
        eye = torch.eye(features)
        self.register_buffer("eye", eye)

    def _factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        lower = torch.tril(self.lower, -1) + self.eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign * torch.exp(self.log_diag))
        return lower, upper

    def weight(self) -> torch.Tensor:
        """The current matrix ``W``."""
        lower, upper = self._factors()
        return self.perm @ lower @ upper

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):
        z = x @ self.weight().T
        return z, self.log_diag.sum().expand(x.shape[0])

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        lower, upper = self._factors()
        # x = U^-1 L^-1 P^T z, written for row vectors.
        y = (z @ self.perm).T
        y = torch.linalg.solve_triangular(lower, y, upper=False, unitriangular=True)
        y = torch.linalg.solve_triangular(upper, y, upper=True)
        return y.T


class AdditiveMap:
    """NICE: ``z = x + t``; volume preserving."""

    n_params = 1

    @staticmethod
    def forward(x: torch.Tensor, p: torch.Tensor):
        return x + p[..., 0], torch.zeros_like(x)

    @staticmethod
    def inverse(z: torch.Tensor, p: torch.Tensor):
        return z - p[..., 0]


class AffineMap:
    """RealNVP: ``z = x * exp(s) + t`` with the log-scale ``s`` softly clamped to (-limit, limit).

    A hard cap makes narrow modes unreachable and an unbounded ``s`` overflows in deep stacks;
    the tanh clamp keeps gradients alive while bounding each layer's contraction/expansion.
    """

    n_params = 2

    def __init__(self, scale_limit: float = 5.0) -> None:
        self.scale_limit = float(scale_limit)

    def forward(self, x: torch.Tensor, p: torch.Tensor):
        log_scale = soft_clamp(p[..., 0], self.scale_limit)
        return x * torch.exp(log_scale) + p[..., 1], log_scale

    def inverse(self, z: torch.Tensor, p: torch.Tensor):
        log_scale = soft_clamp(p[..., 0], self.scale_limit)
        return (z - p[..., 1]) * torch.exp(-log_scale)


class SplineMap:
    """A conditional affine map followed by a rational-quadratic spline on ``[-bound, bound]``.

    The spline alone is the identity outside its interval, so heavy-tailed or far-out
    conditionals would stay untouched (a known failure of spline flows on e.g. Neal's funnel).
    The preceding affine step, predicted by the same conditioner, first moves each conditional
    into the interval, then the spline shapes it.
    """

    def __init__(self, n_bins: int = 8, bound: float = 5.0, scale_limit: float = 5.0) -> None:
        self.n_bins = int(n_bins)
        self.bound = float(bound)
        self.affine = AffineMap(scale_limit)
        self.n_params = 2 + n_spline_params(self.n_bins)

    def forward(self, x: torch.Tensor, p: torch.Tensor):
        u, ld_affine = self.affine.forward(x, p[..., :2])
        z, ld_spline = rational_quadratic_spline(u, p[..., 2:], self.bound)
        return z, ld_affine + ld_spline

    def inverse(self, z: torch.Tensor, p: torch.Tensor):
        u, _ = rational_quadratic_spline(z, p[..., 2:], self.bound, inverse=True)
        return self.affine.inverse(u, p[..., :2])


class Coupling(nn.Module):
    """A coupling layer: keep one block of features, transform the other element-wise.

    The element-wise parameters come from a :class:`Conditioner` fed with the kept block (and the
    context), so the Jacobian is triangular and its log-determinant is the sum of element-wise
    log-derivatives. ``parity`` chooses which block is kept, so alternating it between layers
    lets every feature be transformed. With a single feature nothing can be kept: the layer is
    an element-wise map whose parameters depend only on the context (or are constants).

    Parameters
    ----------
    features : int
        Number of features.
    element_map : AdditiveMap, AffineMap or SplineMap
        The element-wise bijection.
    hidden_layer_sizes : sequence of int
        Conditioner widths.
    parity : int
        0 keeps the first ``features // 2`` features; 1 keeps the last ``ceil(features / 2)``.
    context_features : int, default=0
        Width of the context vector.
    """

    def __init__(
        self,
        features: int,
        element_map,
        hidden_layer_sizes: Sequence[int] = (64, 64),
        parity: int = 0,
        context_features: int = 0,
    ) -> None:
        super().__init__()
        self.features = int(features)
        self.parity = int(parity) % 2
        self.element_map = element_map
        if self.features == 1:
            n_kept = 0
        else:
            n_kept = self.features // 2 if self.parity == 0 else (self.features + 1) // 2
        self.n_kept = n_kept
        self.n_changed = self.features - n_kept
        self.conditioner = Conditioner(
            n_kept, self.n_changed * element_map.n_params, hidden_layer_sizes, context_features
        )

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.parity == 0:
            kept, changed = x.split([self.n_kept, self.n_changed], dim=1)
        else:
            changed, kept = x.split([self.n_changed, self.n_kept], dim=1)
        return kept, changed

    def _join(self, kept: torch.Tensor, changed: torch.Tensor) -> torch.Tensor:
        parts = [kept, changed] if self.parity == 0 else [changed, kept]
        return torch.cat(parts, dim=1)

    def _params(self, kept: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        raw = self.conditioner(kept, context)
        return raw.view(kept.shape[0], self.n_changed, self.element_map.n_params)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):
        kept, changed = self._split(x)
        out, logdet = self.element_map.forward(changed, self._params(kept, context))
        return self._join(kept, out), logdet.sum(dim=1)

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        kept, changed = self._split(z)
        out = self.element_map.inverse(changed, self._params(kept, context))
        return self._join(kept, out)
