"""Mixing layers between couplings (a learned LU-parameterised linear map, a fixed
permutation), and the registry ``build_flow`` chooses them from."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable

import torch
from torch import nn

from .base import Transform, awaiting_init


class Permutation(Transform):
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


class LULinear(Transform):
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


def _lu_layer(features: int, generator: torch.Generator | None, position: int) -> LULinear:
    # The first whitens onto interleaved principal components; the later ones start near the
    # identity, so the couplings keep seeing the leading components split between their two
    # halves (see LULinear).
    return LULinear(features, generator, "pca" if position == 0 else "whitening")


def _permutation_layer(
    features: int, generator: torch.Generator | None, position: int
) -> Permutation:
    return Permutation(features, generator)


# The mixing layers between couplings, by the name the estimators' ``mixing`` parameter takes:
# each builds the layer for (features, generator, position of its block in the stack), or is
# None for no mixing (the couplings' alternating halves alone).
MIXING_LAYERS: dict[str, Callable[[int, torch.Generator | None, int], Transform] | None] = {
    "lu": _lu_layer,
    "permutation": _permutation_layer,
    "none": None,
}
