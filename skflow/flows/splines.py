"""Monotone rational-quadratic splines (Durkan et al., 2019, "Neural Spline Flows").

The spline maps ``[-bound, bound]`` onto itself with ``n_bins`` bins whose widths, heights and
interior knot derivatives come from unconstrained parameters. Outside the interval it is the
identity (log-derivative 0); the boundary derivatives are fixed to 1 so the map and its derivative
are continuous at the edges.

Everything here is element-wise and written with ``torch.where`` rather than boolean indexing:
both branches are evaluated on clamped inputs, which keeps gradients finite and avoids the
gather/scatter cost of masking.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DEFAULT_MIN_BIN_SIZE = 1e-3
DEFAULT_MIN_DERIVATIVE = 1e-3


def n_spline_params(n_bins: int) -> int:
    """Number of unconstrained parameters per feature: widths, heights, interior derivatives."""
    return 3 * n_bins - 1


def rational_quadratic_spline(
    inputs: torch.Tensor,
    params: torch.Tensor,
    bound: float,
    inverse: bool = False,
    min_bin_size: float = DEFAULT_MIN_BIN_SIZE,
    min_derivative: float = DEFAULT_MIN_DERIVATIVE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply a monotone rational-quadratic spline with identity tails element-wise.

    Parameters
    ----------
    inputs : torch.Tensor of shape (...,)
        Points to transform.
    params : torch.Tensor of shape (..., 3 * n_bins - 1)
        Unconstrained parameters: ``n_bins`` widths, ``n_bins`` heights and ``n_bins - 1``
        interior derivatives, in that order. All zeros give the identity map.
    bound : float
        Half-width ``B`` of the interval ``[-B, B]`` the spline acts on.
    inverse : bool, default=False
        Compute the inverse map instead of the forward one.
    min_bin_size : float, default=1e-3
        Smallest bin width and height, as a fraction of ``2B``.
    min_derivative : float, default=1e-3
        Smallest knot derivative. Both bounds keep the map strictly monotone and well
        conditioned.

    Returns
    -------
    outputs : torch.Tensor
        Transformed points, same shape as ``inputs``.
    logabsdet : torch.Tensor
        ``log |d outputs / d inputs|`` element-wise (0 in the tails).
    """
    n_bins = (params.shape[-1] + 1) // 3
    # Widths and heights are normalised together, as a (..., 2, K) block: half the kernel calls.
    raw_sizes = params[..., : 2 * n_bins].unflatten(-1, (2, n_bins))
    raw_derivs = params[..., 2 * n_bins :]
    # A hand-written softmax: on CPU torch.softmax over a short last axis is several times slower.
    # The shift by the maximum only guards exp against overflow; softmax does not depend on
    # it, so it is detached and backward skips the max's gradient (a mask and a scatter).
    expo = torch.exp(raw_sizes - raw_sizes.detach().amax(dim=-1, keepdim=True))
    sizes = (2.0 * bound * min_bin_size) + (2.0 * bound * (1.0 - min_bin_size * n_bins)) * (
        expo / expo.sum(dim=-1, keepdim=True)
    )
    left = torch.cumsum(sizes, dim=-1) - sizes - bound  # left knot of every bin
    # Knot derivatives: raw = 0 gives exactly 1; the two boundary knots are 1 (identity tails).
    shift = math.log(math.expm1(1.0 - min_derivative))
    derivs = F.pad(min_derivative + F.softplus(raw_derivs + shift), (1, 1), value=1.0)

    inside = (inputs >= -bound) & (inputs <= bound)
    clamped = inputs.clamp(-bound, bound)
    # Bin index = number of interior left knots at or below the point (in x or in y).
    interior = left[..., 1 if inverse else 0, 1:]
    index = (clamped.unsqueeze(-1) >= interior).sum(dim=-1, keepdim=True)

    # One gather for everything the formula needs about the bin.
    table = torch.cat([left, sizes, derivs[..., None, :-1], derivs[..., None, 1:]], dim=-2)
    picked = table.gather(-1, index.unsqueeze(-2).expand(*index.shape[:-1], 6, 1)).squeeze(-1)
    x_k, y_k, w_k, h_k, d_k, d_k1 = picked.unbind(dim=-1)
    slope = h_k / w_k
    curvature = d_k1 + d_k - 2.0 * slope

    if inverse:
        dy = clamped - y_k
        a = h_k * (slope - d_k) + dy * curvature
        b = h_k * d_k - dy * curvature
        c = -slope * dy
        # Rounding can push the discriminant a hair below zero; the exact value is >= 0.
        disc = (b.square() - 4.0 * a * c).clamp_min(0.0)
        xi = ((2.0 * c) / (-b - disc.sqrt())).clamp(0.0, 1.0)
        out = x_k + xi * w_k
        xi_1m = xi * (1.0 - xi)
    else:
        xi = ((clamped - x_k) / w_k).clamp(0.0, 1.0)
        xi_1m = xi * (1.0 - xi)
        out = y_k + h_k * (slope * xi.square() + d_k * xi_1m) / (slope + curvature * xi_1m)

    deriv_numer = slope.square() * (
        d_k1 * xi.square() + 2.0 * slope * xi_1m + d_k * (1.0 - xi).square()
    )
    logdet = torch.log(deriv_numer) - 2.0 * torch.log(slope + curvature * xi_1m)
    if inverse:
        logdet = -logdet
    return torch.where(inside, out, inputs), torch.where(inside, logdet, 0.0)
