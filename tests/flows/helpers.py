"""Shared set-up of the flow-layer tests (float64, tiny networks).

Every bijection is checked for ``inverse(forward(x)) == x`` and for its log-determinant against
``slogdet`` of the autograd Jacobian. Conditioners start at zero (every coupling starts as the
identity), so parameters are perturbed with small noise first to exercise non-trivial maps.
"""

from __future__ import annotations

import torch
from torch.autograd.functional import jacobian

from skflow.flows import (
    AdditiveMap,
    AffineMap,
    SplineMap,
)

DTYPE = torch.float64
DIMS = (1, 2, 3, 5, 6)
HIDDEN = (8,)
N_ROWS = 4
CONTEXT = 2
ATOL = 1e-6



def seeded_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int, dtype: torch.dtype = DTYPE) -> torch.Tensor:
    return torch.randn(*shape, generator=seeded_generator(seed), dtype=dtype)


@torch.no_grad()
def perturb(module: torch.nn.Module, std: float, seed: int) -> None:
    """Add N(0, std^2) noise to every parameter (makes zero-initialised couplings non-trivial)."""
    gen = seeded_generator(seed)
    for param in module.parameters():
        param.add_(std * torch.randn(param.shape, generator=gen, dtype=param.dtype))


def element_map(kind: str):
    if kind == "additive":
        return AdditiveMap()
    if kind == "affine":
        return AffineMap(scale_limit=5.0)
    # A narrow interval so that some points fall in the identity tails and some inside.
    return SplineMap(n_bins=4, bound=2.0, scale_limit=5.0)


def sample_points(d: int, seed: int) -> torch.Tensor:
    """A few rows, one of them far out so spline tails are exercised too."""
    x = 1.5 * randn(N_ROWS, d, seed=seed)
    x[-1] = torch.linspace(-4.0, 4.0, d, dtype=DTYPE) if d > 1 else torch.tensor([3.5], dtype=DTYPE)
    return x


def check_bijection(layer, x: torch.Tensor, context: torch.Tensor | None = None):
    """Assert invertibility and log|det J| == slogdet(autograd Jacobian) row by row."""
    z, logdet = layer(x, context)
    assert z.shape == x.shape
    assert logdet.shape == (x.shape[0],)
    assert torch.isfinite(z).all() and torch.isfinite(logdet).all()
    x_back = layer.inverse(z, context)
    assert (x_back - x).abs().max().item() < ATOL
    for i in range(x.shape[0]):
        ctx = None if context is None else context[i : i + 1]

        def row_map(row, ctx=ctx):
            return layer(row.unsqueeze(0), ctx)[0].squeeze(0)

        jac = jacobian(row_map, x[i])
        sign, logabs = torch.linalg.slogdet(jac)
        assert sign.item() != 0.0
        assert abs(logabs.item() - logdet[i].item()) < ATOL, (i, logabs.item(), logdet[i].item())
    return z, logdet


def unit_variance_error(z: torch.Tensor) -> float:
    """Distance of the per-feature variances from 1, unbiased or biased (population)."""
    unbiased = (z.var(dim=0) - 1.0).abs()
    biased = (z.var(dim=0, correction=0) - 1.0).abs()
    return torch.minimum(unbiased, biased).max().item()
