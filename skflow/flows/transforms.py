"""Invertible layers. ``forward`` is the normalizing direction (data -> latent).

Every layer implements ``forward(x, context=None) -> (z, logabsdet)`` with ``logabsdet`` of shape
``(n_rows,)``, and ``inverse(z, context=None) -> x``.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Sequence

import torch
from torch import nn

from . import cpu_math
from .nets import Conditioner
from .splines import (
    affine_rational_quadratic_spline,
    n_spline_params,
    rational_quadratic_spline_params_first,
)


def awaiting_init(layer: nn.Module) -> bool:
    """Whether a data-initialised layer, in training mode, has yet to see its first batch.

    Reading the ``initialized`` buffer costs a device-to-host sync on a GPU; once it has been
    read as true the answer is remembered on the module, so steady-state training never syncs.
    """
    if not layer.training or getattr(layer, "_init_seen", False):
        return False
    if bool(layer.initialized):
        layer._init_seen = True
        return False
    return True


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
        if awaiting_init(self):
            self._initialize(x)
        z = (x - self.loc) * torch.exp(-self.log_scale)
        return z, (-self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return z * torch.exp(self.log_scale) + self.loc


class ContextAffine(nn.Module):
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


class SinhArcsinh(nn.Module):
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


LU_INITS = ("rotation", "pca", "whitening")

# The LU layers' matrices built in the current reuse_mixing_matrices scope (None: no scope).
_MATRIX_CACHE: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "skflow_mixing_matrices", default=None
)


@contextlib.contextmanager
def reuse_mixing_matrices():
    """Within this scope, each :class:`LULinear` builds ``W`` and ``W^-1`` once, not per call.

    For a series of no-gradient calls with fixed weights, such as scoring a data set chunk by
    chunk; the weights must not change inside the scope. Per thread (a context variable).
    """
    token = _MATRIX_CACHE.set({})
    try:
        yield
    finally:
        _MATRIX_CACHE.reset(token)


class LULinear(nn.Module):
    """A learned invertible linear map ``z = x W^T`` with ``W = P L U`` (Glow's 1x1 convolution).

    ``P`` is a fixed permutation, ``L`` unit lower-triangular and ``U`` upper-triangular with
    diagonal ``sign * exp(log_diag)``, so ``log|det W| = sum(log_diag)`` costs O(d) and the map can
    never become singular. It is built as a random rotation and, like ActNorm, initialised from
    the first training batch it sees to a whitening of that batch (covariance shrunk towards the
    identity when rows are few), so a flow starts as the best full-covariance Gaussian instead
    of having to discover the correlations by gradient descent, which matters in high
    dimensions on small data. ``init`` chooses which whitening:

    * ``"rotation"``: a random rotation times the inverse Cholesky factor of the covariance;
    * ``"pca"``: principal components scaled to unit variance, ordered by variance with the
      even-ranked components first and the odd-ranked after them. A coupling layer keeps one
      half of its input and transforms the other, so the leading components, where data that
      is low-dimensional structure plus noise keeps its structure, land on both sides and
      condition each other, instead of being scattered over all features by a rotation;
    * ``"whitening"``: the inverse Cholesky factor alone, which is close to the identity when
      the input is already white (as it is after a ``"pca"`` layer at initialisation), so the
      features keep the order an earlier layer gave them.

    Parameters
    ----------
    features : int
        Number of features.
    generator : torch.Generator, optional
        Source of the random rotation the layer is built as.
    init : {"rotation", "pca", "whitening"}, default="rotation"
        The data-dependent initialisation, see above.
    """

    def __init__(
        self, features: int, generator: torch.Generator | None = None, init: str = "rotation"
    ) -> None:
        super().__init__()
        if init not in LU_INITS:
            raise ValueError(f"init must be one of {LU_INITS}, got {init!r}")
        self.init = init
        gaussian = torch.randn(features, features, generator=generator, dtype=torch.float64)
        rotation, _ = torch.linalg.qr(gaussian)
        perm, lower, upper = torch.linalg.lu(rotation)
        diag = torch.diagonal(upper)
        self.register_buffer("perm", perm.float())
        self.register_buffer("sign", torch.sign(diag).float())
        self.lower = nn.Parameter(torch.tril(lower, -1).float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_diag = nn.Parameter(torch.log(diag.abs()).float())
        self.register_buffer("eye", torch.eye(features))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _initialize(self, x: torch.Tensor) -> None:
        n_rows, features = x.shape
        data = x.double()
        centred = data - data.mean(dim=0)
        cov = centred.T @ centred / max(n_rows - 1, 1)
        eye = torch.eye(features, dtype=cov.dtype, device=cov.device)
        # Shrink towards the identity (the data arrive standardised by an ActNorm): a sample
        # covariance from few rows is noisy, and singular when rows < features.
        shrink = features / (features + n_rows)
        cov = (1.0 - shrink) * cov + shrink * eye
        # The d x d algebra runs on the CPU whatever the device: cuSOLVER's eigenvectors may
        # differ from LAPACK's in sign, and a flipped axis sends a GPU fit down another path
        # than the CPU fit with the same seed. (A d x d matrix is also no work for a GPU.)
        weight = self._whitening(cov.cpu(), eye.cpu())
        if weight is None:
            self.initialized.fill_(True)
            return
        perm, lower, upper = torch.linalg.lu(weight)
        diag = torch.diagonal(upper)
        self.perm.copy_(perm)
        self.sign.copy_(torch.sign(diag))
        self.lower.copy_(torch.tril(lower, -1))
        self.upper.copy_(torch.triu(upper, 1))
        self.log_diag.copy_(torch.log(diag.abs()))
        self.initialized.fill_(True)

    def _whitening(self, cov: torch.Tensor, eye: torch.Tensor) -> torch.Tensor | None:
        """A matrix ``W`` with ``W cov W^T = I`` of the kind ``init`` asks for (None: keep W)."""
        if self.init == "pca":
            variances, axes = torch.linalg.eigh(cov)
            if not bool(torch.isfinite(variances).all()) or float(variances.min()) <= 0.0:
                return None
            ranked = torch.argsort(variances, descending=True)
            order = torch.cat([ranked[0::2], ranked[1::2]])
            return (axes[:, order] / variances[order].sqrt()).T
        chol, info = torch.linalg.cholesky_ex(cov)
        if int(info) != 0:
            return None
        whitening = torch.linalg.solve_triangular(chol, eye, upper=False)
        if self.init == "whitening":
            return whitening
        return self.weight().double().cpu() @ whitening

    def extra_repr(self) -> str:
        return f"init={self.init!r}"

    def _factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        lower = torch.tril(self.lower, -1) + self.eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign * torch.exp(self.log_diag))
        return lower, upper

    def weight(self) -> torch.Tensor:
        """The current matrix ``W``."""
        return self._cached("weight", self._weight)

    def _weight(self) -> torch.Tensor:
        lower, upper = self._factors()
        return self.perm @ lower @ upper

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):
        if awaiting_init(self):
            self._initialize(x)
        z = x @ self.weight().T
        return z, self.log_diag.sum().expand(x.shape[0])

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return z @ self.inverse_weight().T

    def inverse_weight(self) -> torch.Tensor:
        """The matrix ``W^-1 = U^-1 L^-1 P^T``.

        Two triangular solves against the d x d identity, then one matrix product per call:
        3-6x faster for d = 2-64 than solving with every row as a right-hand side, and as
        accurate for the well-conditioned maps the layer holds (its ``U`` has no zero pivot).
        """
        return self._cached("inverse_weight", self._inverse_weight)

    def _inverse_weight(self) -> torch.Tensor:
        lower, upper = self._factors()
        inverse_lower = torch.linalg.solve_triangular(
            lower, self.eye, upper=False, unitriangular=True
        )
        return torch.linalg.solve_triangular(upper, inverse_lower, upper=True) @ self.perm.T

    def _cached(self, name: str, build) -> torch.Tensor:
        """``build()``, reused within a :func:`reuse_mixing_matrices` scope.

        Inference runs the flow chunk by chunk, and building ``W`` costs two d x d x d
        products: at d = 1,555 (a wide binary table, 32 cell points per row) rebuilding it
        for every chunk made scoring take about 2 s per row. Within the scope the weights do
        not change (one scoring call), so each matrix is built once per layer and dtype.
        """
        cache = _MATRIX_CACHE.get()
        if cache is None or torch.is_grad_enabled():
            return build()
        key = (id(self), name, self.lower.dtype, self.lower.device)
        if key not in cache:
            cache[key] = build()
        return cache[key]


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
