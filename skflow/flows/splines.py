"""Monotone rational-quadratic splines (Durkan et al., 2019, "Neural Spline Flows").

The spline maps ``[-bound, bound]`` onto itself with ``n_bins`` bins whose widths, heights and
interior knot derivatives come from unconstrained parameters. Outside the interval it is the
identity (log-derivative 0); the boundary derivatives are fixed to 1 so the map and its derivative
are continuous at the edges.

Layout. The work happens with the parameter axis *first*, ``params[j]`` having the shape of the
inputs: every softmax, cumulative sum and bin search then runs across a handful of contiguous
slabs instead of along a short innermost axis, which on a CPU is several times faster (a
reduction over 8 contiguous values per row costs about as much as one over a whole slab).
Coupling layers produce their parameters in this layout directly;
:func:`rational_quadratic_spline` accepts the conventional ``(..., n_params)`` layout.

The forward (normalising) direction, the one training differentiates, is a
:class:`torch.autograd.Function` with a hand-derived backward pass: autograd's generic backward
of the same formula records and replays about a hundred small kernels (including a scatter for
the bin lookup and a reversed cumulative sum), the closed form needs a third as many.
:func:`affine_rational_quadratic_spline` puts a coupling's element-wise affine step into the
same node. The inverse is plain differentiable torch code; it runs when sampling, under no
gradient.

On a CPU with numba installed, fused loops run instead (``skflow.flows.spline_kernels``): the
same formula and closed-form gradient, for every call on float32 or float64 CPU tensors. The
values agree to rounding. ``torch.compile`` always traces the torch code.

Everything is element-wise and written with ``torch.where`` rather than boolean indexing: both
branches are evaluated on clamped inputs, which keeps values finite for far-out points and
avoids the gather/scatter cost of masking.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import spline_kernels
from ._spline_algebra import bin_partials

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
        interior derivatives, in that order. All zeros give the identity map. The leading
        dimensions broadcast against ``inputs``.
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
        Transformed points, of the broadcast shape of ``inputs`` and ``params[..., 0]``.
    logabsdet : torch.Tensor
        ``log |d outputs / d inputs|`` element-wise (0 in the tails).

    See Also
    --------
    rational_quadratic_spline_params_first : the same with the parameter axis first.
    """
    batch = torch.broadcast_shapes(inputs.shape, params.shape[:-1])
    params_first = params.expand(*batch, params.shape[-1]).movedim(-1, 0).contiguous()
    return rational_quadratic_spline_params_first(
        inputs.expand(batch), params_first, bound, inverse, min_bin_size, min_derivative
    )


def rational_quadratic_spline_params_first(
    inputs: torch.Tensor,
    params: torch.Tensor,
    bound: float,
    inverse: bool = False,
    min_bin_size: float = DEFAULT_MIN_BIN_SIZE,
    min_derivative: float = DEFAULT_MIN_DERIVATIVE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`rational_quadratic_spline` with the parameter axis first.

    ``params`` has shape ``(3 * n_bins - 1, *inputs.shape)``: the layout coupling layers
    produce, and the fast one, each ``params[j]`` a contiguous slab shaped like ``inputs``.
    Differentiating the forward direction uses a closed-form backward pass (second derivatives
    are not supported); the inverse direction is ordinary autograd code.
    """
    if params.shape[1:] != inputs.shape:
        raise ValueError(
            f"params must have shape (n_params, *inputs.shape) = (n, {tuple(inputs.shape)}), "
            f"got {tuple(params.shape)}"
        )
    if inverse:
        return _inverse_spline(inputs, params, float(bound), min_bin_size, min_derivative)
    return _forward_spline(inputs, params, float(bound), min_bin_size, min_derivative, None)


def affine_rational_quadratic_spline(
    inputs: torch.Tensor,
    params: torch.Tensor,
    bound: float,
    scale_limit: float,
    min_bin_size: float = DEFAULT_MIN_BIN_SIZE,
    min_derivative: float = DEFAULT_MIN_DERIVATIVE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """An element-wise affine step, then the spline: the forward map of a spline coupling.

    ``u = x * exp(s) + t`` with the log-scale ``s = scale_limit * tanh(a / scale_limit)``,
    then ``z`` is the spline of ``u``. The same values as :class:`~skflow.flows.AffineMap`
    followed by :func:`rational_quadratic_spline_params_first`, computed in one autograd node
    with a closed-form backward pass (as separate operations the affine step recorded about a
    dozen nodes). The inverse direction is computed as those two steps.

    Parameters
    ----------
    inputs : torch.Tensor of shape (...,)
        Points to transform.
    params : torch.Tensor of shape (3 * n_bins + 1, ...)
        Parameters first, each ``params[j]`` shaped like ``inputs``: the raw log-scale ``a``,
        the shift ``t``, then the spline's ``3 * n_bins - 1`` parameters. All zeros give the
        identity map.
    bound : float
        Half-width ``B`` of the spline's interval ``[-B, B]``.
    scale_limit : float
        Soft bound on the log-scale ``s``.
    min_bin_size, min_derivative : float
        As in :func:`rational_quadratic_spline`.

    Returns
    -------
    outputs : torch.Tensor
        Transformed points, shaped like ``inputs``.
    logabsdet : torch.Tensor
        ``log |d outputs / d inputs|`` element-wise: ``s`` plus the spline's log-derivative.
    """
    if params.shape[1:] != inputs.shape:
        raise ValueError(
            f"params must have shape (n_params, *inputs.shape) = (n, {tuple(inputs.shape)}), "
            f"got {tuple(params.shape)}"
        )
    return _forward_spline(
        inputs, params, float(bound), min_bin_size, min_derivative, float(scale_limit)
    )


def _needs_grad(inputs: torch.Tensor, params: torch.Tensor) -> bool:
    """Whether autograd will record this call (``Function.forward`` runs in no-grad mode, and
    its ``needs_input_grad`` ignores an enclosing ``torch.no_grad``)."""
    return torch.is_grad_enabled() and (inputs.requires_grad or params.requires_grad)


def _forward_spline(inputs, params, bound, min_bin_size, min_derivative, scale_limit):
    differentiable = _needs_grad(inputs, params)
    return _ForwardSpline.apply(
        inputs, params, bound, min_bin_size, min_derivative, scale_limit, differentiable
    )


def _derivative_shift(min_derivative: float) -> float:
    """Offset that makes a raw derivative of 0 give a knot derivative of exactly 1."""
    return math.log(math.expm1(1.0 - min_derivative))


def _kernel_geometry(bound, min_bin_size, min_derivative) -> tuple[float, float, float, float]:
    """The spline's constants as ``spline_kernels`` takes them (floats: one compiled type)."""
    return (
        float(bound),
        float(min_bin_size),
        float(min_derivative),
        _derivative_shift(min_derivative),
    )


def _bin_tables(
    params: torch.Tensor, bound: float, min_bin_size: float, min_derivative: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bin geometry from the parameters (parameter axis first).

    Returns
    -------
    probs : (2, K, ...) the softmax of the raw widths and heights.
    table : (4, K, ...) bin widths, bin heights, and the right x- and y-knots of every bin
        measured from the left edge ``-bound`` (so the last right knot is ``2 * bound``).
    derivs : (K + 1, ...) knot derivatives, 1 at both ends.
    """
    n_bins = (params.shape[0] + 1) // 3
    raw = params[: 2 * n_bins].unflatten(0, (2, n_bins))
    # The shift by the maximum only guards exp against overflow; softmax does not depend on it.
    expo = torch.exp(raw - raw.detach().amax(dim=1, keepdim=True))
    probs = expo / expo.sum(dim=1, keepdim=True)
    sizes = probs * (2.0 * bound * (1.0 - min_bin_size * n_bins)) + 2.0 * bound * min_bin_size
    table = torch.cat([sizes, sizes.cumsum(dim=1)])
    interior = F.softplus(params[2 * n_bins :] + _derivative_shift(min_derivative))
    ends = interior.new_ones((1, *interior.shape[1:]))
    derivs = torch.cat([ends, interior + min_derivative, ends])
    return probs, table, derivs


def _bin_index(shifted: torch.Tensor, right_knots: torch.Tensor) -> torch.Tensor:
    """Index of each point's bin: the number of interior knots at or left of it.

    ``shifted`` is the clamped point measured from ``-bound``; ``right_knots`` the (K, ...) right
    knots on the same axis (x for the forward map, y for the inverse).
    """
    return (shifted >= right_knots[:-1]).sum(dim=0)


def _pick(index: torch.Tensor, table: torch.Tensor, derivs: torch.Tensor):
    """Gather what the formula needs about each point's bin, in one gather per table.

    Returns the bin's width, height, left x- and y-knots (measured from ``-bound``) and the
    derivatives at its two ends.
    """
    picked = table.gather(1, index.expand(4, 1, *index.shape)).squeeze(1)
    d0, d1 = derivs.gather(0, torch.stack([index, index + 1]))
    width, height, right_x, right_y = picked.unbind(0)
    return width, height, right_x - width, right_y - height, d0, d1


class _ForwardSpline(torch.autograd.Function):
    """Forward spline map with a closed-form backward pass (parameters first).

    With ``scale_limit`` set, ``params`` starts with two extra rows, a raw log-scale ``a`` and a
    shift ``t``, and the spline acts on ``u = x * exp(s) + t``, ``s = limit * tanh(a / limit)``
    (see :func:`affine_rational_quadratic_spline`).
    """

    @staticmethod
    def forward(
        ctx, inputs, params, bound, min_bin_size, min_derivative, scale_limit, differentiable
    ):
        ctx.constants = (bound, min_bin_size, min_derivative, scale_limit)
        ctx.fused = spline_kernels.applicable(inputs, params)
        if ctx.fused:
            # The fused CPU loops (see ``spline_kernels``).
            geometry = _kernel_geometry(bound, min_bin_size, min_derivative)
            out, logdet, saved = spline_kernels.forward(
                inputs, params, geometry, scale_limit, keep=differentiable
            )
            # The NumPy array of per-point values rides on ``ctx``; the inputs are saved as
            # tensors, so autograd still notices if they are modified in place before backward.
            ctx.save_for_backward(inputs)
            ctx.kernel_saved = saved
            ctx.n_params = params.shape[0]
            return out, logdet
        x = tanh = scale = None
        if scale_limit is not None:
            x = inputs
            # The affine step inside the same node: as separate autograd operations it recorded
            # about a dozen nodes, and each slice of ``params`` materialised a full-size
            # gradient that autograd then summed.
            tanh = torch.tanh(params[0] * (1.0 / scale_limit))
            log_scale = tanh * scale_limit
            scale = torch.exp(log_scale)
            inputs = torch.addcmul(params[1], x, scale)
            params = params[2:]
        probs, table, derivs = _bin_tables(params, bound, min_bin_size, min_derivative)
        n_bins = probs.shape[1]
        inside = (inputs >= -bound) & (inputs <= bound)
        shifted = inputs.clamp(-bound, bound) + bound
        # at_or_below[j] = [j <= k] for j = 0..K, k the point's bin, as floats: the backward
        # pass builds its bin masks from it. Comparing straight into a float buffer is several
        # times cheaper than materialising a boolean tensor first.
        at_or_below = shifted.new_empty((n_bins + 1, *shifted.shape))
        at_or_below[0] = 1.0
        at_or_below[n_bins] = 0.0
        torch.ge(shifted, table[2, : n_bins - 1], out=at_or_below[1:n_bins])
        index = at_or_below[1:n_bins].sum(dim=0).long()
        w, h, left_x, left_y, d0, d1 = _pick(index, table, derivs)

        slope = h / w
        xi = ((shifted - left_x) / w).clamp(0.0, 1.0)
        xi_sq = xi.square()
        xi_1m = xi - xi_sq  # xi (1 - xi)
        denom = slope + (d0 + d1 - 2.0 * slope) * xi_1m
        numer = slope * xi_sq + d0 * xi_1m  # y = left_y + h * numer / denom
        # dy/dx = slope^2 * deriv_numer / denom^2
        deriv_numer = d1 * xi_sq + 2.0 * slope * xi_1m + d0 * (1.0 - xi).square()
        ratio = slope / denom
        dydx = deriv_numer * ratio.square()
        out = left_y + h * numer / denom - bound
        logdet = torch.where(inside, torch.log(dydx), 0.0)

        ctx.save_for_backward(
            params, probs, at_or_below, index, inside, w, h, left_x, left_y, slope, xi, xi_1m,
            denom, numer, deriv_numer, dydx, d0, d1, x, tanh, scale,
        )  # fmt: skip
        if scale_limit is None:
            return torch.where(inside, out, inputs), logdet
        return torch.where(inside, out, inputs), logdet.add_(log_scale)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_logdet):
        if ctx.fused:
            (inputs,) = ctx.saved_tensors
            bound, min_bin_size, min_derivative, scale_limit = ctx.constants
            geometry = _kernel_geometry(bound, min_bin_size, min_derivative)
            g_inputs, g_params = spline_kernels.backward(
                inputs, ctx.kernel_saved, ctx.n_params, grad_out, grad_logdet, geometry,
                scale_limit is not None,
            )  # fmt: skip
            return g_inputs, g_params, None, None, None, None, None
        (
            params, probs, at_or_below, index, inside, w, h, left_x, left_y, slope, xi, xi_1m,
            denom, numer, deriv_numer, dydx, d0, d1, x, tanh, scale,
        ) = ctx.saved_tensors  # fmt: skip
        bound, min_bin_size, min_derivative, scale_limit = ctx.constants
        n_bins = probs.shape[1]
        gy = torch.where(inside, grad_out, 0.0)
        gl = torch.where(inside, grad_logdet, 0.0)

        # Partial derivatives of (y, log dy/dx) with respect to xi, the slope h / w and the two
        # knot derivatives, combined with the incoming gradients (gy, gl). Reciprocals as
        # ``t.reciprocal()``: ``1.0 / t`` is a reciprocal and a multiply.
        g_xi, g_slope, g_d0, g_d1, numer_ratio = bin_partials(
            gy, gl, w, h, xi, xi_1m, slope, slope.reciprocal(), d0, d1, numer, dydx,
            denom.reciprocal(), deriv_numer.reciprocal(),
        )  # fmt: skip

        # Chain rule through xi = (x - left_x) / w and slope = h / w.
        inv_w = w.reciprocal()
        g_inputs = torch.where(inside, g_xi * inv_w, grad_out)
        g_w = -(g_xi * xi + g_slope * slope) * inv_w
        g_h = gy * numer_ratio + g_slope * inv_w
        g_left_x = -g_xi * inv_w

        # The gradient of every parameter row is written into one buffer, sparing
        # concatenations: the affine rows (if any) first, then the spline's.
        offset = 0 if scale_limit is None else 2
        g_params = params.new_empty((offset + params.shape[0], *params.shape[1:]))

        # Widths and heights: bin k's size enters as itself, every earlier bin's through the left
        # knot. With at_or_below[j] = [j <= k], [j == k] = at_or_below[j] - at_or_below[j + 1]
        # and [j < k] = at_or_below[j + 1], so the gradient over the bins is two broadcast
        # products; the softmax's dot product is known per point in closed form.
        size_scale = 2.0 * bound * (1.0 - min_bin_size * n_bins)
        min_size = 2.0 * bound * min_bin_size
        g_own = torch.stack([g_w, g_h]).unsqueeze(1)  # gradient for bin k's size
        g_left = torch.stack([g_left_x, gy]).unsqueeze(1)  # for the bins left of it
        k = index.to(probs.dtype)
        dot = g_own * (torch.stack([w, h]).unsqueeze(1) - min_size) + g_left * (
            torch.stack([left_x, left_y]) - min_size * k
        ).unsqueeze(1)
        # probs * (size_scale * g_sizes - dot), with the scale folded into the per-point
        # factors so that only three kernels (two fused multiply-adds) run over all the bins.
        g_sizes = torch.addcmul(-dot, at_or_below[:n_bins], size_scale * g_own)
        g_sizes.addcmul_(at_or_below[1:], size_scale * (g_left - g_own))
        g_sizes_out = g_params[offset : offset + 2 * n_bins].view_as(probs)
        torch.mul(probs, g_sizes, out=g_sizes_out)

        # Interior derivative r (knot r + 1) is d_k when r = k - 1 and d_{k+1} when r = k.
        g_interior = at_or_below[1:n_bins] * (g_d0 - g_d1)
        g_interior.addcmul_(at_or_below[2:], g_d0, value=-1.0)
        g_interior.addcmul_(at_or_below[: n_bins - 1], g_d1)
        d_interior = torch.sigmoid(params[2 * n_bins :] + _derivative_shift(min_derivative))
        torch.mul(g_interior, d_interior, out=g_params[offset + 2 * n_bins :])
        if scale_limit is None:
            return g_inputs, g_params, None, None, None, None, None

        # Through u = x * exp(s) + t, s = limit * tanh(a / limit); log-det gains s.
        g_params[1] = g_inputs
        g_x = g_inputs * scale
        g_log_scale = torch.addcmul(grad_logdet, g_x, x)
        torch.mul(g_log_scale, 1.0 - tanh.square(), out=g_params[0])
        return g_x, g_params, None, None, None, None, None


def _inverse_spline(inputs, params, bound, min_bin_size, min_derivative):
    """Inverse spline map (parameters first), plain autograd or, without a gradient, fused."""
    if not _needs_grad(inputs, params) and spline_kernels.applicable(inputs, params):
        geometry = _kernel_geometry(bound, min_bin_size, min_derivative)
        return spline_kernels.inverse(inputs, params, geometry)
    _, table, derivs = _bin_tables(params, bound, min_bin_size, min_derivative)
    inside = (inputs >= -bound) & (inputs <= bound)
    shifted = inputs.clamp(-bound, bound) + bound
    w, h, left_x, left_y, d0, d1 = _pick(_bin_index(shifted, table[3]), table, derivs)

    slope = h / w
    curvature = d0 + d1 - 2.0 * slope
    dy = shifted - left_y
    a = h * (slope - d0) + dy * curvature
    b = h * d0 - dy * curvature
    c = -slope * dy
    # Rounding can push the discriminant a hair below zero; the exact value is >= 0.
    disc = (b.square() - 4.0 * a * c).clamp_min(0.0)
    xi = ((2.0 * c) / (-b - disc.sqrt())).clamp(0.0, 1.0)
    out = left_x + xi * w - bound
    xi_1m = xi * (1.0 - xi)
    deriv_numer = d1 * xi.square() + 2.0 * slope * xi_1m + d0 * (1.0 - xi).square()
    ratio = slope / (slope + curvature * xi_1m)
    logdet = -torch.log(deriv_numer * ratio.square())
    return torch.where(inside, out, inputs), torch.where(inside, logdet, 0.0)
