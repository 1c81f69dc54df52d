"""Fused CPU kernels for the rational-quadratic spline, compiled by numba when it is installed.

On a CPU the torch formulation in :mod:`skflow.flows.splines` runs several dozen small kernels
per call, each over a slab of a few hundred to a few thousand values, so on small slabs the
spline's cost is mostly per-kernel dispatch, not arithmetic. These loops compute the whole map
one point at a time, in registers, with the same formula and parameterisation; they take the
softplus of only the two knot derivatives that bound each point's bin, where the tensor code
takes all of them; and the forward loop keeps what the closed-form backward loop needs.

The loops are scalar code: numba has no vectorised ``exp`` here, and a point needs about twenty
transcendental functions (the softmax of its widths and heights), so on large slabs torch's
vectorised kernels win. On one thread of this project's 2-core machine (float32, 8 bins, with
the affine step, best of 300 calls), forward + backward of 512 points took about 160 us
against torch's 660; for 4,096 points 1,800 us against 1,090. So the kernels take at most
:data:`MAX_ELEMENTS` points per call, which covers training batches of flows with a few
features, and torch runs the rest.

Arithmetic is in float64 whatever the storage type, so float32 results agree with the torch
path to float32 rounding, not bit for bit.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import warnings

import numpy as np
import torch

from ._compiling import is_compiling

# numba is optional (``pip install "skflow[numba]"``); without it the torch formulation runs
# everywhere. It is imported, and the kernels compiled or loaded from numba's disk cache, on
# the first call that uses them: importing numba costs about 0.25 s, which ``import skflow``
# and every joblib worker that never trains a small flow should not pay.
AVAILABLE = importlib.util.find_spec("numba") is not None
# Tests switch the kernels off to compare the two paths.
ENABLED = AVAILABLE
# Largest slab (points per call) the kernels take; see the module docstring.
MAX_ELEMENTS = 2048

# The functions below are plain Python until :func:`_load` replaces each with its compiled
# version (in this order, callees first, since numba resolves a call through the module's
# globals when it compiles the caller).
_KERNELS: list[str] = []


def _kernel(function):
    """Register ``function`` for compilation by :func:`_load`."""
    _KERNELS.append(function.__name__)
    return function


@functools.cache
def _load() -> bool:
    """Compile (or load from the cache) every kernel; False if numba cannot be imported."""
    try:
        import numba
    except Exception as error:  # a broken install: warn once and keep to torch
        warnings.warn(
            f"skflow: numba is installed but failed to import ({error!r}); the spline runs "
            "as torch code, which is slower on small batches.",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    options = {"nogil": True, "error_model": "numpy"}
    for name in _KERNELS:
        function = globals()[name]
        # Helpers are inlined into the loops before type inference, so that their constant
        # arguments (which axis to search, whether there is an affine step) fold away.
        inline = "never" if name.endswith("_loop") else "always"
        try:
            globals()[name] = numba.njit(cache=True, inline=inline, **options)(function)
        except RuntimeError:  # no writable cache directory: compile in every process
            globals()[name] = numba.njit(inline=inline, **options)(function)
    return True


@_kernel
def _softmax_sizes(params, first, column, scale, offset, sizes):
    """Bin sizes ``softmax(raw) * scale + offset`` of one point into ``sizes``."""
    n_bins = sizes.shape[0]
    top = params[first, column]
    for j in range(1, n_bins):
        top = max(top, params[first + j, column])
    total = 0.0
    for j in range(n_bins):
        sizes[j] = math.exp(params[first + j, column] - top)
        total += sizes[j]
    factor = scale / total  # one division instead of one per bin
    for j in range(n_bins):
        sizes[j] = sizes[j] * factor + offset


@_kernel
def _knot_derivative(params, first, column, knot, n_bins, shift, min_derivative):
    """``(derivative, d derivative / d raw)`` at knot ``knot`` (0..n_bins).

    1 and 0 at both ends; inside, a shifted softplus of the raw parameter and its sigmoid.
    """
    if knot == 0 or knot == n_bins:
        return 1.0, 0.0
    raw = params[first + 2 * n_bins + knot - 1, column] + shift
    if raw > 20.0:
        return raw + min_derivative, 1.0 / (1.0 + math.exp(-raw))
    e = math.exp(raw)
    return math.log1p(e) + min_derivative, e / (1.0 + e)


@_kernel
def _locate(params, first, column, shifted, geometry, widths, heights):
    """The bin of a point and what the formula needs about it.

    ``shifted`` is the point measured from ``-bound``; ``geometry`` is (bound, min_bin_size,
    min_derivative, shift). Fills ``widths`` and ``heights`` and returns
    ``(k, left_x, left_y, d0, d1, s0, s1)``: the bin index, its left knots (from ``-bound``),
    the derivatives at its two ends and their derivatives with respect to their raw parameters.
    """
    bound, min_bin_size, min_derivative, shift = geometry
    n_bins = widths.shape[0]
    scale = 2.0 * bound * (1.0 - min_bin_size * n_bins)
    offset = 2.0 * bound * min_bin_size
    _softmax_sizes(params, first, column, scale, offset, widths)
    _softmax_sizes(params, first + n_bins, column, scale, offset, heights)
    k = 0
    left_x = 0.0
    left_y = 0.0
    while k < n_bins - 1 and shifted >= left_x + widths[k]:
        left_x += widths[k]
        left_y += heights[k]
        k += 1
    d0, s0 = _knot_derivative(params, first, column, k, n_bins, shift, min_derivative)
    d1, s1 = _knot_derivative(params, first, column, k + 1, n_bins, shift, min_derivative)
    return k, left_x, left_y, d0, d1, s0, s1


@_kernel
def _softmax_backward(grad_params, first, column, k, g_own, g_left, sizes, scale, offset):
    """Gradient of the raw sizes when bin ``k`` gets ``g_own`` and every bin left of it ``g_left``.

    Bin k's size enters the map as itself, every earlier bin's through the left knot; the
    gradient then goes back through ``size = softmax(raw) * scale + offset``.
    """
    dot = 0.0
    for j in range(sizes.shape[0]):
        g = g_left if j < k else (g_own if j == k else 0.0)
        g_prob = (sizes[j] - offset) * g  # softmax value times (scale times the size's gradient)
        grad_params[first + j, column] = g_prob
        dot += g_prob
    dot /= scale
    for j in range(sizes.shape[0]):
        grad_params[first + j, column] -= (sizes[j] - offset) * dot


@_kernel
def _affine_step(params, column, value, scale_limit):
    """``(u, s, tanh)`` of ``u = value * exp(s) + t``, ``s = limit * tanh(a / limit)``."""
    tanh = math.tanh(params[0, column] / scale_limit)
    log_scale = scale_limit * tanh
    return value * math.exp(log_scale) + params[1, column], log_scale, tanh


# What the forward loop keeps of each point for the backward one (columns of ``saved``, after
# the point's bin widths and heights): recomputing them there cost more than half its time.
_SAVED_U, _SAVED_TANH, _SAVED_INSIDE, _SAVED_K, _SAVED_LEFT_X = 0, 1, 2, 3, 4
_SAVED_D0, _SAVED_D1, _SAVED_S0, _SAVED_S1 = 5, 6, 7, 8
N_SAVED = 9


@_kernel
def _forward_loop(x, params, n_bins, geometry, affine, scale_limit, out, logdet, saved):
    """Forward map and log-derivative of (the affine step, then) the spline, point by point.

    ``saved`` has ``2 * n_bins + N_SAVED`` columns and a row per point for a backward pass to
    come, or no rows.
    """
    bound = geometry[0]
    first = 2 if affine else 0
    keep = saved.shape[0] > 0
    widths = np.empty(n_bins)
    heights = np.empty(n_bins)
    extra = 2 * n_bins
    for i in range(x.shape[0]):
        u = float(x[i])
        log_scale = 0.0
        tanh = 0.0
        if affine:
            u, log_scale, tanh = _affine_step(params, i, u, scale_limit)
        if keep:
            saved[i, extra + _SAVED_U] = u
            saved[i, extra + _SAVED_TANH] = tanh
            saved[i, extra + _SAVED_INSIDE] = 0.0
        if u < -bound or u > bound:
            out[i] = u
            logdet[i] = log_scale
            continue
        shifted = u + bound
        k, left_x, left_y, d0, d1, s0, s1 = _locate(
            params, first, i, shifted, geometry, widths, heights
        )
        if keep:
            for j in range(n_bins):
                saved[i, j] = widths[j]
                saved[i, n_bins + j] = heights[j]
            saved[i, extra + _SAVED_INSIDE] = 1.0
            saved[i, extra + _SAVED_K] = k
            saved[i, extra + _SAVED_LEFT_X] = left_x
            saved[i, extra + _SAVED_D0] = d0
            saved[i, extra + _SAVED_D1] = d1
            saved[i, extra + _SAVED_S0] = s0
            saved[i, extra + _SAVED_S1] = s1
        w = widths[k]
        h = heights[k]
        slope = h / w
        xi = min(max((shifted - left_x) / w, 0.0), 1.0)
        xi_1m = xi * (1.0 - xi)
        denom = slope + (d0 + d1 - 2.0 * slope) * xi_1m
        numer = slope * xi * xi + d0 * xi_1m
        deriv_numer = d1 * xi * xi + 2.0 * slope * xi_1m + d0 * (1.0 - xi) * (1.0 - xi)
        out[i] = left_y + h * numer / denom - bound
        logdet[i] = math.log(deriv_numer * (slope / denom) ** 2) + log_scale


@_kernel
def _backward_loop(x, saved, grad_out, grad_logdet, n_bins, geometry, affine, scale_limit,
                   grad_x, grad_params):  # fmt: skip
    """Gradients of :func:`_forward_loop`'s two outputs with respect to x and the parameters.

    Reads each point's bin and knot values from the forward loop's ``saved`` rows.
    """
    bound, min_bin_size, _, _ = geometry
    first = 2 if affine else 0
    size_scale = 2.0 * bound * (1.0 - min_bin_size * n_bins)
    min_size = 2.0 * bound * min_bin_size
    extra = 2 * n_bins
    for i in range(x.shape[0]):
        gy = float(grad_out[i])
        gl = float(grad_logdet[i])
        for j in range(first, grad_params.shape[0]):
            grad_params[j, i] = 0.0
        g_u = gy  # the identity outside the interval
        if saved[i, extra + _SAVED_INSIDE] > 0.0:
            shifted = saved[i, extra + _SAVED_U] + bound
            k = int(saved[i, extra + _SAVED_K])
            left_x = saved[i, extra + _SAVED_LEFT_X]
            d0 = saved[i, extra + _SAVED_D0]
            d1 = saved[i, extra + _SAVED_D1]
            w = saved[i, k]
            h = saved[i, n_bins + k]
            slope = h / w
            xi = min(max((shifted - left_x) / w, 0.0), 1.0)
            one_m_xi = 1.0 - xi
            xi_1m = xi * one_m_xi
            denom = slope + (d0 + d1 - 2.0 * slope) * xi_1m
            numer = slope * xi * xi + d0 * xi_1m
            deriv_numer = d1 * xi * xi + 2.0 * slope * xi_1m + d0 * one_m_xi * one_m_xi
            dydx = deriv_numer * (slope / denom) ** 2

            # Partial derivatives of (y, log dy/dx) in xi, the slope and the two knot
            # derivatives, combined with the incoming gradients: the algebra of the torch
            # backward pass in ``splines``, for one point.
            inv_denom = 1.0 / denom
            inv_dnum = 1.0 / deriv_numer
            two_q = 2.0 * xi_1m
            numer_ratio = numer * inv_denom
            gy_h = gy * h * inv_denom
            gl_2q = gl * two_q * inv_denom
            ddenom_dxi = (d0 + d1 - 2.0 * slope) * (one_m_xi - xi)
            ddnum_dxi = 2.0 * (d1 * xi + slope * (one_m_xi - xi) - d0 * one_m_xi)
            g_xi = gy * w * dydx + gl * (ddnum_dxi * inv_dnum - 2.0 * ddenom_dxi * inv_denom)
            one_m_2q = 1.0 - two_q
            g_slope = gy_h * (xi * xi - numer_ratio * one_m_2q) + gl * (
                2.0 / slope + two_q * inv_dnum - 2.0 * one_m_2q * inv_denom
            )
            g_d0 = gy_h * xi_1m * (1.0 - numer_ratio) + gl * one_m_xi**2 * inv_dnum - gl_2q
            g_d1 = gl * xi * xi * inv_dnum - gy_h * xi_1m * numer_ratio - gl_2q

            # Chain rule through xi = (x - left_x) / w and slope = h / w.
            inv_w = 1.0 / w
            g_u = g_xi * inv_w
            g_w = -(g_xi * xi + g_slope * slope) * inv_w
            g_h = gy * numer_ratio + g_slope * inv_w
            widths = saved[i, :n_bins]
            heights = saved[i, n_bins:extra]
            _softmax_backward(grad_params, first, i, k, g_w, -g_u, widths, size_scale, min_size)
            _softmax_backward(
                grad_params, first + n_bins, i, k, g_h, gy, heights, size_scale, min_size
            )
            # Interior derivative r is knot r + 1: d0 for r = k - 1, d1 for r = k.
            interior = first + 2 * n_bins
            if k > 0:
                grad_params[interior + k - 1, i] = g_d0 * saved[i, extra + _SAVED_S0]
            if k < n_bins - 1:
                grad_params[interior + k, i] = g_d1 * saved[i, extra + _SAVED_S1]
        if affine:
            # Through u = x * exp(s) + t, s = limit * tanh(a / limit); the log-det gains s.
            tanh = saved[i, extra + _SAVED_TANH]
            grad_params[1, i] = g_u
            g_x = g_u * math.exp(scale_limit * tanh)
            grad_params[0, i] = (gl + g_x * float(x[i])) * (1.0 - tanh * tanh)
            grad_x[i] = g_x
        else:
            grad_x[i] = g_u


# Inference (no gradient) runs in blocks of points, each step a loop over the block that the
# compiler turns into SIMD code: the softmaxes, knots, bin counts and the spline formula.
# ``exp`` is a polynomial with the exponent set through its bits (libm's is a scalar call,
# which would keep those loops scalar). Per-point gathers and the logarithms stay scalar.
_BLOCK = 128
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 in two parts, so k * ln 2 is exact for |k| < 2**20
_LN2_LO = 1.90821492927058770002e-10


@_kernel
def _exp_block(values, out, bits, m):
    """``exp(values[:m])`` into ``out[:m]`` (float64, relative error about 2e-16).

    Arguments are clamped to [-700, 700], more than any caller needs; NaN stays NaN. ``bits`` is
    int64 scratch of at least ``m`` entries.
    """
    for b in range(m):
        v = values[b]
        v = -700.0 if v < -700.0 else v
        v = 700.0 if v > 700.0 else v
        k = math.floor(v * _LOG2E + 0.5)
        r = (v - k * _LN2_HI) - k * _LN2_LO  # |r| <= ln(2) / 2
        # Taylor series to degree 12: the truncation error is below 1.2e-16 on that interval.
        q = 1.0 / 479001600.0
        q = q * r + 1.0 / 39916800.0
        q = q * r + 1.0 / 3628800.0
        q = q * r + 1.0 / 362880.0
        q = q * r + 1.0 / 40320.0
        q = q * r + 1.0 / 5040.0
        q = q * r + 1.0 / 720.0
        q = q * r + 1.0 / 120.0
        q = q * r + 1.0 / 24.0
        q = q * r + 1.0 / 6.0
        q = q * r + 0.5
        q = q * r + 1.0
        out[b] = q * r + 1.0
        bits[b] = (np.int64(k) + 1023) << 52  # 2**k as the bits of a float64
    powers = bits.view(np.float64)
    for b in range(m):
        out[b] *= powers[b]


@_kernel
def _block_knots(params, row, start, m, scale, offset, sizes, knots, scratch, bits):
    """Bin sizes and right knots (from ``-bound``) of points ``start .. start + m``.

    ``sizes[j, b]`` is ``softmax_j(params[row + j, start + b]) * scale + offset`` and
    ``knots[j, b]`` the sum of ``sizes[: j + 1, b]``. ``scratch`` is (2, block) floats.
    """
    n_bins = sizes.shape[0]
    top = scratch[0]
    total = scratch[1]
    for b in range(m):
        top[b] = params[row, start + b]
        total[b] = 0.0
    for j in range(1, n_bins):
        for b in range(m):
            top[b] = max(top[b], params[row + j, start + b])
    for j in range(n_bins):
        shifted = knots[j]  # free until the knots are written below
        for b in range(m):
            shifted[b] = params[row + j, start + b] - top[b]
        _exp_block(shifted, sizes[j], bits, m)
        for b in range(m):
            total[b] += sizes[j, b]
    for b in range(m):
        total[b] = scale / total[b]
        sizes[0, b] = sizes[0, b] * total[b] + offset
        knots[0, b] = sizes[0, b]
    for j in range(1, n_bins):
        for b in range(m):
            sizes[j, b] = sizes[j, b] * total[b] + offset
            knots[j, b] = knots[j - 1, b] + sizes[j, b]


@_kernel
def _block_bins(shifted, knots, m, index):
    """``index[b]``: the bin of ``shifted[b]``, the number of interior knots at or left of it."""
    for b in range(m):
        index[b] = 0
    for j in range(knots.shape[0] - 1):
        for b in range(m):
            index[b] += shifted[b] >= knots[j, b]


@_kernel
def _block_geometry(params, first, start, m, shifted, on_y, geometry, tables, index, picked, bits):
    """Each point's bin and what the formula needs about it, for a block of points.

    ``tables`` is (4, n_bins, block) scratch for sizes and knots; fills ``picked[0:6, :m]``
    with the bin's width, height, left x- and y-knots (from ``-bound``) and the derivatives at
    its two ends, and ``index[:m]`` with the bins.
    """
    bound, min_bin_size, min_derivative, shift = geometry
    n_bins = tables.shape[1]
    scale = 2.0 * bound * (1.0 - min_bin_size * n_bins)
    offset = 2.0 * bound * min_bin_size
    widths, x_knots, heights, y_knots = tables[0], tables[1], tables[2], tables[3]
    _block_knots(params, first, start, m, scale, offset, widths, x_knots, picked, bits)
    _block_knots(params, first + n_bins, start, m, scale, offset, heights, y_knots, picked, bits)
    _block_bins(shifted, y_knots if on_y else x_knots, m, index)
    interior = first + 2 * n_bins
    raw0 = picked[4]
    raw1 = picked[5]
    for b in range(m):
        k = index[b]
        picked[0, b] = widths[k, b]
        picked[1, b] = heights[k, b]
        picked[2, b] = x_knots[k, b] - widths[k, b]
        picked[3, b] = y_knots[k, b] - heights[k, b]
        # Raw parameters of knots k and k + 1 (0 stands in at the interval's ends).
        raw0[b] = params[interior + k - 1, start + b] + shift if k > 0 else 0.0
        raw1[b] = params[interior + k, start + b] + shift if k < n_bins - 1 else 0.0
    exp0 = tables[0, 0]  # the sizes and knots are no longer needed
    exp1 = tables[0, 1]
    _exp_block(raw0, exp0, bits, m)
    _exp_block(raw1, exp1, bits, m)
    for b in range(m):
        k = index[b]
        # softplus(r) = log1p(exp(r)), which is r itself above 20 to float64 precision
        soft0 = raw0[b] if raw0[b] > 20.0 else math.log1p(exp0[b])
        soft1 = raw1[b] if raw1[b] > 20.0 else math.log1p(exp1[b])
        raw0[b] = 1.0 if k == 0 else soft0 + min_derivative
        raw1[b] = 1.0 if k == n_bins - 1 else soft1 + min_derivative


@_kernel
def _forward_blocks(x, params, n_bins, geometry, affine, scale_limit, out, logdet):
    """:func:`_forward_loop` without the saved values, in SIMD-friendly blocks."""
    bound = geometry[0]
    first = 2 if affine else 0
    block = _BLOCK
    u = np.empty(block)
    log_scale = np.empty(block)
    shifted = np.empty(block)
    work = np.empty(block)
    bits = np.empty(block, np.int64)
    index = np.empty(block, np.int64)
    tables = np.empty((4, n_bins, block))
    picked = np.empty((6, block))
    for start in range(0, x.shape[0], block):
        m = min(block, x.shape[0] - start)
        if affine:
            # s = limit * tanh(a / limit), tanh(z) = sign(z) (1 - e) / (1 + e), e = exp(-2|z|)
            for b in range(m):
                work[b] = -2.0 * abs(params[0, start + b] / scale_limit)
            _exp_block(work, u, bits, m)
            for b in range(m):
                tanh = (1.0 - u[b]) / (1.0 + u[b])
                log_scale[b] = scale_limit * (tanh if params[0, start + b] >= 0.0 else -tanh)
            _exp_block(log_scale, u, bits, m)
            for b in range(m):
                u[b] = x[start + b] * u[b] + params[1, start + b]
        else:
            for b in range(m):
                u[b] = x[start + b]
                log_scale[b] = 0.0
        for b in range(m):
            shifted[b] = min(max(u[b], -bound), bound) + bound
        _block_geometry(params, first, start, m, shifted, False, geometry, tables, index,
                        picked, bits)  # fmt: skip
        for b in range(m):
            w, h, left_x, left_y, d0, d1 = (picked[0, b], picked[1, b], picked[2, b],
                                            picked[3, b], picked[4, b], picked[5, b])  # fmt: skip
            slope = h / w
            xi = min(max((shifted[b] - left_x) / w, 0.0), 1.0)
            xi_1m = xi * (1.0 - xi)
            denom = slope + (d0 + d1 - 2.0 * slope) * xi_1m
            numer = slope * xi * xi + d0 * xi_1m
            deriv_numer = d1 * xi * xi + 2.0 * slope * xi_1m + d0 * (1.0 - xi) * (1.0 - xi)
            inside = u[b] >= -bound and u[b] <= bound
            out[start + b] = left_y + h * numer / denom - bound if inside else u[b]
            work[b] = deriv_numer * (slope / denom) ** 2 if inside else 1.0
        for b in range(m):
            logdet[start + b] = math.log(work[b]) + log_scale[b]


@_kernel
def _inverse_blocks(z, params, n_bins, geometry, out, logdet):
    """Inverse spline map and its log-derivative (no affine step), in SIMD-friendly blocks."""
    bound = geometry[0]
    block = _BLOCK
    shifted = np.empty(block)
    work = np.empty(block)
    bits = np.empty(block, np.int64)
    index = np.empty(block, np.int64)
    tables = np.empty((4, n_bins, block))
    picked = np.empty((6, block))
    for start in range(0, z.shape[0], block):
        m = min(block, z.shape[0] - start)
        for b in range(m):
            shifted[b] = min(max(float(z[start + b]), -bound), bound) + bound
        _block_geometry(params, 0, start, m, shifted, True, geometry, tables, index, picked, bits)
        for b in range(m):
            w, h, left_x, left_y, d0, d1 = (picked[0, b], picked[1, b], picked[2, b],
                                            picked[3, b], picked[4, b], picked[5, b])  # fmt: skip
            slope = h / w
            curvature = d0 + d1 - 2.0 * slope
            dy = shifted[b] - left_y
            a = h * (slope - d0) + dy * curvature
            bq = h * d0 - dy * curvature
            c = -slope * dy
            # Rounding can push the discriminant a hair below zero; the exact value is >= 0.
            root = -bq - math.sqrt(max(bq * bq - 4.0 * a * c, 0.0))
            xi = 0.0 if root == 0.0 else min(max(2.0 * c / root, 0.0), 1.0)
            xi_1m = xi * (1.0 - xi)
            deriv_numer = d1 * xi * xi + 2.0 * slope * xi_1m + d0 * (1.0 - xi) * (1.0 - xi)
            inside = z[start + b] >= -bound and z[start + b] <= bound
            out[start + b] = left_x + xi * w - bound if inside else z[start + b]
            work[b] = deriv_numer * (slope / (slope + curvature * xi_1m)) ** 2 if inside else 1.0
        for b in range(m):
            logdet[start + b] = -math.log(work[b])


def applicable(*tensors: torch.Tensor, differentiable: bool) -> bool:
    """Whether the kernels can and should run on these tensors (the first one sets the size).

    CPU float32/float64 tensors outside ``torch.compile``'s tracing (which needs tensor code it
    can see through); for a call that will be differentiated, at most :data:`MAX_ELEMENTS`
    points.
    """
    first = tensors[0]
    return (
        ENABLED
        and (not differentiable or first.numel() <= MAX_ELEMENTS)
        and first.dtype in (torch.float32, torch.float64)
        and all(t.device.type == "cpu" and t.dtype == first.dtype for t in tensors)
        and not is_compiling()
        and _load()
    )


def _flat(tensor: torch.Tensor, rows: int = 1) -> np.ndarray:
    """A C-contiguous NumPy view (a copy only if needed) of ``tensor`` as ``rows`` rows.

    NumPy does the reshaping: in a training step, where these wrappers run eight times, each
    torch call costs a few microseconds of dispatch and NumPy's a fraction of one.
    """
    array = np.ascontiguousarray(tensor.detach().numpy())
    return array.reshape(-1) if rows == 1 else array.reshape(rows, -1)


def _tensor(array: np.ndarray, shape: torch.Size) -> torch.Tensor:
    return torch.from_numpy(array.reshape(shape))


def forward(
    inputs: torch.Tensor,
    params: torch.Tensor,
    geometry: tuple[float, float, float, float],
    scale_limit: float | None,
    keep: bool,
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray | None]:
    """Spline (after the affine step if ``scale_limit`` is set) and its log-derivative.

    ``params`` is parameters-first, ``(n_params, *inputs.shape)``, as in ``splines``;
    ``geometry`` is ``(bound, min_bin_size, min_derivative, derivative shift)``. With ``keep``,
    also returns what :func:`backward` needs (float64, a row per point), else None.
    """
    _load()
    x = _flat(inputs)
    p = _flat(params, params.shape[0])
    out = np.empty_like(x)
    logdet = np.empty_like(x)
    n_bins = (p.shape[0] - (0 if scale_limit is None else 2) + 1) // 3
    affine = scale_limit is not None
    limit = scale_limit if affine else 1.0
    saved = None
    if keep:
        saved = np.empty((x.shape[0], 2 * n_bins + N_SAVED))
        _forward_loop(x, p, n_bins, geometry, affine, limit, out, logdet, saved)
    else:
        _forward_blocks(x, p, n_bins, geometry, affine, limit, out, logdet)
    return _tensor(out, inputs.shape), _tensor(logdet, inputs.shape), saved


def backward(
    inputs: torch.Tensor,
    saved: np.ndarray,
    n_params: int,
    grad_out: torch.Tensor,
    grad_logdet: torch.Tensor,
    geometry: tuple[float, float, float, float],
    scale_limit: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of :func:`forward`'s two outputs with respect to ``inputs`` and ``params``.

    ``saved`` is what :func:`forward` kept; the parameter gradient has ``n_params`` rows.
    """
    _load()
    x = _flat(inputs)
    grad_x = np.empty_like(x)
    grad_params = np.empty((n_params, x.shape[0]), dtype=x.dtype)
    n_bins = (n_params - (0 if scale_limit is None else 2) + 1) // 3
    affine = scale_limit is not None
    limit = scale_limit if affine else 1.0
    _backward_loop(
        x, saved, _flat(grad_out), _flat(grad_logdet), n_bins, geometry, affine, limit,
        grad_x, grad_params,
    )  # fmt: skip
    return _tensor(grad_x, inputs.shape), _tensor(grad_params, (n_params, *inputs.shape))


def inverse(
    inputs: torch.Tensor, params: torch.Tensor, geometry: tuple[float, float, float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse spline (no affine step) and its log-derivative; no gradient."""
    _load()
    z = _flat(inputs)
    p = _flat(params, params.shape[0])
    out = np.empty_like(z)
    logdet = np.empty_like(z)
    _inverse_blocks(z, p, (p.shape[0] + 1) // 3, geometry, out, logdet)
    return _tensor(out, inputs.shape), _tensor(logdet, inputs.shape)
