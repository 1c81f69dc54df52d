"""Coupling layers and their element-wise maps (additive, affine, rational-quadratic
spline), and the registry ``build_flow`` chooses the maps from."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .base import ElementMap, Transform, soft_clamp
from .nets import Conditioner
from .splines import (
    affine_rational_quadratic_spline,
    n_spline_params,
    rational_quadratic_spline_params_first,
)


class AdditiveMap:
    """NICE: ``z = x + t``; volume preserving.

    Element-wise maps take their parameters with the parameter axis first: ``p[j]`` has the
    shape of ``x`` (see :mod:`skflow.flows.splines` for why).
    """

    n_params = 1

    @staticmethod
    def forward(x: torch.Tensor, p: torch.Tensor):
        return x + p[0], torch.zeros_like(x)

    @staticmethod
    def inverse(z: torch.Tensor, p: torch.Tensor):
        return z - p[0]


class AffineMap:
    """RealNVP: ``z = x * exp(s) + t`` with the log-scale ``s`` softly clamped to (-limit, limit).

    A hard cap makes narrow modes unreachable and an unbounded ``s`` overflows in deep stacks;
    the tanh clamp keeps gradients alive while bounding each layer's contraction/expansion.
    Parameters come first: ``p[0]`` is the raw log-scale, ``p[1]`` the shift.
    """

    n_params = 2

    def __init__(self, scale_limit: float = 5.0) -> None:
        self.scale_limit = float(scale_limit)

    def forward(self, x: torch.Tensor, p: torch.Tensor):
        log_scale = soft_clamp(p[0], self.scale_limit)
        return x * torch.exp(log_scale) + p[1], log_scale

    def inverse(self, z: torch.Tensor, p: torch.Tensor):
        log_scale = soft_clamp(p[0], self.scale_limit)
        return (z - p[1]) * torch.exp(-log_scale)


class SplineMap:
    """A conditional affine map followed by a rational-quadratic spline on ``[-bound, bound]``.

    The spline alone is the identity outside its interval, so heavy-tailed or far-out
    conditionals would stay untouched (a known failure of spline flows on e.g. Neal's funnel).
    The preceding affine step, predicted by the same conditioner, first moves each conditional
    into the interval, then the spline shapes it. Parameters come first: ``p[:2]`` for the
    affine step, ``p[2:]`` for the spline.
    """

    def __init__(self, n_bins: int = 8, bound: float = 5.0, scale_limit: float = 5.0) -> None:
        self.n_bins = int(n_bins)
        self.bound = float(bound)
        self.affine = AffineMap(scale_limit)
        self.n_params = 2 + n_spline_params(self.n_bins)

    def forward(self, x: torch.Tensor, p: torch.Tensor):
        # Both steps in one autograd node (same values as affine.forward, then the spline).
        return affine_rational_quadratic_spline(x, p, self.bound, self.affine.scale_limit)

    def inverse(self, z: torch.Tensor, p: torch.Tensor):
        u, _ = rational_quadratic_spline_params_first(z, p[2:], self.bound, inverse=True)
        return self.affine.inverse(u, p[:2])


class Coupling(Transform):
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
    dropout : float, default=0.0
        Dropout in the conditioner's hidden layers.
    input_dropout : float, default=0.0
        Dropout on the conditioner's input features (the kept block, not the context).
    """

    def __init__(
        self,
        features: int,
        element_map,
        hidden_layer_sizes: Sequence[int] = (64, 64),
        parity: int = 0,
        context_features: int = 0,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
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
            n_kept,
            self.n_changed * element_map.n_params,
            hidden_layer_sizes,
            context_features,
            dropout,
            input_dropout,
        )

    def working_floats_per_row(self) -> int:
        """A generous bound on the values per row alive at once while this layer runs.

        Calibrated on spline and affine layers in inference (the spline's bin table holds
        several values per parameter); used to size evaluation chunks, so an overestimate only
        costs a little speed.
        """
        return 4 * self.conditioner.widest_hidden + 8 * self.n_changed * self.element_map.n_params

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
        """Element-wise parameters, shape ``(n_params, n_changed, n_rows)``, parameter-major."""
        raw = self.conditioner(kept, context, transposed=True)
        return raw.view(self.element_map.n_params, self.n_changed, kept.shape[0])

    # The element-wise maps run on (n_changed, n_rows) slabs, the layout of the parameters: a
    # transposed copy of the changed block costs a few microseconds, mixing layouts in every
    # kernel of the spline would cost far more.

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):
        kept, changed = self._split(x)
        out, logdet = self.element_map.forward(changed.T.contiguous(), self._params(kept, context))
        return self._join(kept, out.T), logdet.sum(dim=0)

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        kept, changed = self._split(z)
        out = self.element_map.inverse(changed.T.contiguous(), self._params(kept, context))
        return self._join(kept, out.T)


# The element maps a coupling can apply, by the name the estimators' ``coupling`` parameter
# takes: each builds one from (n_bins, tail_bound, scale_limit), using what applies to it.
ELEMENT_MAPS: dict[str, Callable[[int, float, float], ElementMap]] = {
    "additive": lambda n_bins, tail_bound, scale_limit: AdditiveMap(),
    "affine": lambda n_bins, tail_bound, scale_limit: AffineMap(scale_limit),
    "spline": lambda n_bins, tail_bound, scale_limit: SplineMap(n_bins, tail_bound, scale_limit),
}
