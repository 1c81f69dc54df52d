"""Fused CPU kernels for the rational-quadratic spline, compiled by numba when it is installed.

On a CPU the torch formulation in :mod:`skflow.flows.splines` runs several dozen small kernels
per call, each over a slab of a few hundred to a few thousand values: on small slabs the cost is
mostly per-kernel dispatch, on large ones memory traffic through full-size temporaries. These
loops compute the same formula, with the same parameterisation and closed-form gradient, in a
few passes over blocks of 128 points, each pass a loop the compiler turns into SIMD code:
``exp`` and ``log`` are polynomials, with the exponent written or read through the bits
(libm's are scalar calls, which would keep the loops scalar), and only the two knot
derivatives that bound each point's bin go through a softplus, where the tensor code takes
all of them. The forward pass of a training
step keeps each point's bin values for the backward pass, which then needs no transcendental
function at all.

On one thread of this project's 2-core machine (float32, 8 bins, with the affine step, best of
100 calls; 30 at 65,536 points), against torch's kernels:

* for 512 / 4,096 / 16,384 / 65,536 points, the forward map without gradients (scoring,
  validation) took 51 / 266 / 1,006 / 4,893 us against 285 / 585 / 2,026 / 8,097, and the
  inverse (sampling) 42 / 237 / 908 / 4,409 against 257 / 570 / 5,497 / 8,263;
* a training step's forward + backward through autograd took 172 / 507 / 1,834 / 10,104 us
  against 669 / 1,112 / 3,037 / 12,512, so every call takes the kernels whatever its size.

Every inner loop indexes its arrays by the loop variable itself, on views of the block: see
the note above :func:`_load_block`; that took the backward pass from 299 to 104 us at 4,096
points.

Arithmetic is in float64 whatever the storage type, so float32 results agree with the torch
path to float32 rounding, not bit for bit.

About 650 lines, one job: the forward, inverse and backward loops share the block loading, the
polynomial exp/log and the bin search, which numba compiles together; split across modules they
would have to be public helpers of each other.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import threading
import warnings

import numpy as np
import torch

from ._compiling import is_compiling
from ._spline_algebra import bin_partials

# numba is optional (``pip install "skflow[numba]"``); without it the torch formulation runs
# everywhere. It is imported, and the kernels compiled or loaded from numba's disk cache, on
# the first call that uses them: importing numba costs about 0.25 s, which ``import skflow``
# and every joblib worker that never touches a spline should not pay. Compiling them takes
# about 10-15 s, once per installation (numba caches the machine code on disk).
AVAILABLE = importlib.util.find_spec("numba") is not None
# Tests switch the kernels off to compare the two paths.
ENABLED = AVAILABLE

# The functions below are plain Python until :func:`_load` replaces each with its compiled
# version (all before the first call: numba resolves a callee through the module's globals
# when it compiles the caller).
_KERNELS: list[str] = []


def _kernel(function):
    """Register ``function`` for compilation by :func:`_load`."""
    _KERNELS.append(function.__name__)
    return function


# Fits running in threads (joblib's threading backend, a dask LocalCluster with
# processes=False) reach the first call together: without the lock two of them ran the body
# at once, and the second jitted the first's already jitted functions (a TypeError).
_LOAD_LOCK = threading.Lock()


def _load() -> bool:
    """Compile (or load from the cache) every kernel, once per process, thread-safely."""
    with _LOAD_LOCK:
        return _load_once()


@functools.cache
def _load_once() -> bool:
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
        try:
            globals()[name] = numba.njit(cache=True, **options)(function)
        except RuntimeError:  # no writable cache directory: compile in every process
            globals()[name] = numba.njit(**options)(function)
    return True


# The kernels run over blocks of points, each step a loop over the block that the compiler
# turns into SIMD code: the softmaxes, knots, bin counts, the spline formula and its gradient.
# Per-point gathers and the logarithms stay scalar.
_BLOCK = 128
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 in two parts, so k * ln 2 is exact for |k| < 2**20
_LN2_LO = 1.90821492927058770002e-10
# Rows of the per-point values ``_block_geometry`` picks (the last four are its scratch).
_W, _H, _LEFT_X, _LEFT_Y, _D0, _D1, _S0, _S1 = 0, 1, 2, 3, 4, 5, 6, 7
_PICKED = 12
# Rows the forward pass keeps for the backward one, after the bin widths and heights: the
# picked values, then the bin, the clamped point, whether it was inside, and the affine
# step's tanh and scale.
_KEPT_PICKED = 8
_K, _SHIFTED, _INSIDE, _TANH, _SCALE = 8, 9, 10, 11, 12
N_KEPT = 13


# The bin algebra shared with the torch backward pass, compiled here like the kernels.
bin_partials = _kernel(bin_partials)


# Polynomial coefficients, highest degree first. exp: the Taylor series to degree 12, whose
# truncation error on |r| <= ln(2) / 2 is below 1.2e-16. log: 1 + z / 3 + z^2 / 5 + ... +
# z^10 / 21 (see :func:`_log_block`).
_EXP_TAYLOR = tuple(1.0 / math.factorial(n) for n in range(12, -1, -1))
_LOG_ATANH = tuple(1.0 / (2 * n + 1) for n in range(10, -1, -1))


@_kernel
def _horner(coefficients, x):
    """The polynomial with ``coefficients`` (highest degree first) at ``x``, by Horner's rule."""
    q = coefficients[0]
    for i in range(1, len(coefficients)):
        q = q * x + coefficients[i]
    return q


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
        out[b] = _horner(_EXP_TAYLOR, r)
        bits[b] = (np.int64(k) + 1023) << 52  # 2**k as the bits of a float64
    powers = bits.view(np.float64)
    for b in range(m):
        out[b] *= powers[b]


# Bit patterns and bounds :func:`_log_block` reads a float64 with.
_FRACTION = 0x000FFFFFFFFFFFFF  # the mantissa bits of a float64
_SQRT2_FRACTION = 0x6A09E667F3BCD  # ... of sqrt(2)
_ONE_BITS = 0x3FF0000000000000  # the exponent bits of 1.0
_HALF_BITS = 0x3FE0000000000000  # ... of 0.5
_SMALLEST_NORMAL = 2.2250738585072014e-308
_LARGEST = 1.7976931348623157e308


@_kernel
def _log_block(values, out, bits, m):
    """``log(values[:m])`` into ``out[:m]`` (float64, relative error about 2e-16).

    ``values`` must be a contiguous float64 array and distinct from ``out``. Zero, negative,
    subnormal, infinite and NaN arguments go to ``math.log`` in a second pass, so they give what
    it gives. ``bits`` is int64 scratch of at least ``m`` entries.
    """
    ints = values.view(np.int64)
    for b in range(m):
        # values = x * 2**k with x in [sqrt(2) / 2, sqrt(2)), read off the bits.
        fraction = ints[b] & _FRACTION
        above = fraction > _SQRT2_FRACTION
        bits[b] = fraction | (_HALF_BITS if above else _ONE_BITS)
        out[b] = (ints[b] >> 52) - 1023 + (1 if above else 0)
    reduced = bits.view(np.float64)
    for b in range(m):
        # log(x) = 2 s (1 + s^2 / 3 + s^4 / 5 + ...) with s = (x - 1) / (x + 1); on this
        # interval s^2 <= 0.0295, so the terms after s^20 / 21 are below 1e-17.
        s = (reduced[b] - 1.0) / (reduced[b] + 1.0)
        q = _horner(_LOG_ATANH, s * s)
        k = out[b]
        out[b] = k * _LN2_HI + (2.0 * s * q + k * _LN2_LO)
    unusual = False
    for b in range(m):
        unusual |= not (values[b] >= _SMALLEST_NORMAL and values[b] <= _LARGEST)
    if unusual:
        for b in range(m):
            if not (values[b] >= _SMALLEST_NORMAL and values[b] <= _LARGEST):
                out[b] = math.log(values[b])


# From here on, every loop indexes its arrays by the loop variable itself, on views of the
# block (``x[start : start + m]``, the block's slice of ``kept``, ``local``): indexing by
# ``start + b`` makes numba wrap negative indices around, a select per access that LLVM turns
# into gathers and scalar code (copying 25 rows of 4,096 parameters took 43 us that way and
# 9 us on views).


@_kernel
def _load_block(source, start, m, block):
    """``block[r, :m] = source[r, start : start + m]`` for every row, converted to float64."""
    for r in range(source.shape[0]):
        row = source[r, start : start + m]
        for b in range(m):
            block[r, b] = row[b]


@_kernel
def _block_knots(local, row, m, scale, offset, sizes, knots, scratch, bits):
    """Bin sizes and right knots (from ``-bound``) of a block of ``m`` points.

    ``sizes[j, b]`` is ``softmax_j(local[row + j, b]) * scale + offset`` and ``knots[j, b]``
    the sum of ``sizes[: j + 1, b]``. ``scratch`` is (2, block) floats.
    """
    n_bins = sizes.shape[0]
    top = scratch[0]
    total = scratch[1]
    for b in range(m):
        top[b] = local[row, b]
        total[b] = 0.0
    for j in range(1, n_bins):
        for b in range(m):
            top[b] = max(top[b], local[row + j, b])
    for j in range(n_bins):
        shifted = knots[j]  # free until the knots are written below
        for b in range(m):
            shifted[b] = local[row + j, b] - top[b]
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
def _block_geometry(local, first, m, shifted, on_y, geometry, tables, index, picked, bits):
    """Each point's bin and what the formula needs about it, for a block of points.

    ``local`` holds the block's parameters (a row each, from ``_load_block``); the spline's
    start at row ``first``. ``tables`` is (4, n_bins, block) for the bin widths, right
    x-knots, heights and right y-knots (from ``-bound``), which stay there. Fills
    ``index[:m]`` with the bins and ``picked[:, :m]`` with each bin's width, height, left x-
    and y-knots, the derivatives at its two ends (``_D0``, ``_D1``) and their derivatives in
    their raw parameters (``_S0``, ``_S1``); ``picked`` has ``_PICKED`` rows, the last four
    scratch.
    """
    bound, min_bin_size, min_derivative, shift = geometry
    n_bins = tables.shape[1]
    scale = 2.0 * bound * (1.0 - min_bin_size * n_bins)
    offset = 2.0 * bound * min_bin_size
    widths, x_knots, heights, y_knots = tables[0], tables[1], tables[2], tables[3]
    _block_knots(local, first, m, scale, offset, widths, x_knots, picked, bits)
    _block_knots(local, first + n_bins, m, scale, offset, heights, y_knots, picked, bits)
    _block_bins(shifted, y_knots if on_y else x_knots, m, index)
    interior = first + 2 * n_bins
    raw0 = picked[_D0]
    raw1 = picked[_D1]
    for b in range(m):
        k = index[b]
        picked[_W, b] = widths[k, b]
        picked[_H, b] = heights[k, b]
        picked[_LEFT_X, b] = x_knots[k, b] - widths[k, b]
        picked[_LEFT_Y, b] = y_knots[k, b] - heights[k, b]
        # Raw parameters of knots k and k + 1 (0 stands in at the interval's ends).
        raw0[b] = local[interior + k - 1, b] + shift if k > 0 else 0.0
        raw1[b] = local[interior + k, b] + shift if k < n_bins - 1 else 0.0
    exp0 = picked[_PICKED - 4]
    exp1 = picked[_PICKED - 3]
    _exp_block(raw0, exp0, bits, m)
    _exp_block(raw1, exp1, bits, m)
    # softplus(r) = log1p(exp(r)), which is r itself above 20 to float64 precision; its
    # derivative is the sigmoid exp(r) / (1 + exp(r)). log1p(e) is log(u) - (u - 1 - e) / u
    # with u = 1 + e rounded: the second term restores what rounding u lost when e is small.
    log0 = picked[_PICKED - 2]
    log1 = picked[_PICKED - 1]
    for b in range(m):
        picked[_S0, b] = 1.0 + exp0[b]
        picked[_S1, b] = 1.0 + exp1[b]
    _log_block(picked[_S0], log0, bits, m)
    _log_block(picked[_S1], log1, bits, m)
    for b in range(m):
        k = index[b]
        u0 = picked[_S0, b]
        u1 = picked[_S1, b]
        soft0 = raw0[b] if raw0[b] > 20.0 else log0[b] - ((u0 - 1.0) - exp0[b]) / u0
        soft1 = raw1[b] if raw1[b] > 20.0 else log1[b] - ((u1 - 1.0) - exp1[b]) / u1
        picked[_D0, b] = 1.0 if k == 0 else soft0 + min_derivative
        picked[_D1, b] = 1.0 if k == n_bins - 1 else soft1 + min_derivative
        picked[_S0, b] = 0.0 if k == 0 else exp0[b] / (1.0 + exp0[b])
        picked[_S1, b] = 0.0 if k == n_bins - 1 else exp1[b] / (1.0 + exp1[b])


@_kernel
def _block_scratch(params, n_bins):
    """The per-block work arrays the forward and inverse passes share: the block's parameters
    (``_load_block``), three rows of per-point floats, int64 scratch for the exponent bits and
    the bins, the bin tables and the picked values (see :func:`_block_geometry`)."""
    block = _BLOCK
    return (
        np.empty((params.shape[0], block)),
        np.empty(block),
        np.empty(block),
        np.empty(block),
        np.empty(block, np.int64),
        np.empty(block, np.int64),
        np.empty((4, n_bins, block)),
        np.empty((_PICKED, block)),
    )


@_kernel
def _forward_blocks(x, params, n_bins, geometry, affine, scale_limit, out, logdet, kept):
    """Forward map and log-derivative of (the affine step, then) the spline, block by block.

    ``kept`` is ``(n_blocks, 2 * n_bins + N_KEPT, _BLOCK)`` for a backward pass to come (see
    :func:`_backward_blocks`), or has no blocks.
    """
    bound = geometry[0]
    first = 2 if affine else 0
    keep = kept.shape[0] > 0
    block = _BLOCK
    local, shifted, work, logs, bits, index, tables, picked = _block_scratch(params, n_bins)
    u = np.empty(block)
    log_scale = np.empty(block)
    scale = np.empty(block)
    extra = 2 * n_bins
    for start in range(0, x.shape[0], block):
        m = min(block, x.shape[0] - start)
        x_block = x[start : start + m]
        _load_block(params, start, m, local)
        if affine:
            # s = limit * tanh(a / limit), tanh(z) = sign(z) (1 - e) / (1 + e), e = exp(-2|z|)
            for b in range(m):
                work[b] = -2.0 * abs(local[0, b] / scale_limit)
            _exp_block(work, u, bits, m)
            for b in range(m):
                tanh = (1.0 - u[b]) / (1.0 + u[b])
                work[b] = tanh if local[0, b] >= 0.0 else -tanh
                log_scale[b] = scale_limit * work[b]
            _exp_block(log_scale, scale, bits, m)
            for b in range(m):
                u[b] = x_block[b] * scale[b] + local[1, b]
        else:
            for b in range(m):
                u[b] = x_block[b]
                log_scale[b] = 0.0
        for b in range(m):
            shifted[b] = min(max(u[b], -bound), bound) + bound
        _block_geometry(local, first, m, shifted, False, geometry, tables, index, picked, bits)
        if keep:
            saved = kept[start // block]
            for j in range(n_bins):
                for b in range(m):
                    saved[j, b] = tables[0, j, b]
                    saved[n_bins + j, b] = tables[2, j, b]
            for row in range(_KEPT_PICKED):
                for b in range(m):
                    saved[extra + row, b] = picked[row, b]
            for b in range(m):
                saved[extra + _K, b] = index[b]
                saved[extra + _SHIFTED, b] = shifted[b]
                saved[extra + _INSIDE, b] = u[b] >= -bound and u[b] <= bound
                saved[extra + _TANH, b] = work[b] if affine else 0.0
                saved[extra + _SCALE, b] = scale[b] if affine else 1.0
        for b in range(m):
            w, h, d0, d1 = picked[_W, b], picked[_H, b], picked[_D0, b], picked[_D1, b]
            left_x, left_y = picked[_LEFT_X, b], picked[_LEFT_Y, b]
            slope = h / w
            xi = min(max((shifted[b] - left_x) / w, 0.0), 1.0)
            xi_1m = xi * (1.0 - xi)
            denom = slope + (d0 + d1 - 2.0 * slope) * xi_1m
            numer = slope * xi * xi + d0 * xi_1m
            deriv_numer = d1 * xi * xi + 2.0 * slope * xi_1m + d0 * (1.0 - xi) * (1.0 - xi)
            inside = u[b] >= -bound and u[b] <= bound
            shifted[b] = left_y + h * numer / denom - bound if inside else u[b]  # the output
            work[b] = deriv_numer * (slope / denom) ** 2 if inside else 1.0
        out_block = out[start : start + m]
        logdet_block = logdet[start : start + m]
        _log_block(work, logs, bits, m)
        for b in range(m):
            out_block[b] = shifted[b]
            logdet_block[b] = logs[b] + log_scale[b]


@_kernel
def _backward_blocks(x, kept, grad_out, grad_logdet, n_bins, geometry, affine, grad_x,
                     grad_params):  # fmt: skip
    """Gradients of :func:`_forward_blocks`'s two outputs with respect to x and the parameters.

    Reads each point's bin values from ``kept``; no transcendental function is left, so every
    loop compiles to SIMD code.
    """
    bound, min_bin_size, _, _ = geometry
    first = 2 if affine else 0
    size_scale = 2.0 * bound * (1.0 - min_bin_size * n_bins)
    min_size = 2.0 * bound * min_bin_size
    extra = 2 * n_bins
    interior = first + 2 * n_bins
    block = _BLOCK
    g_own = np.empty((2, block))  # gradient reaching bin k's width and height
    g_left = np.empty((2, block))  # ... and every bin left of it, through the left knots
    g_d = np.empty((2, block))  # ... and the raw parameters of the knots at the bin's ends
    g_u = np.empty(block)
    dot = np.empty(block)
    bins = np.empty(block, np.int64)
    g_block = np.empty((grad_params.shape[0], block))
    for start in range(0, x.shape[0], block):
        m = min(block, x.shape[0] - start)
        saved = kept[start // block]
        grad_out_block = grad_out[start : start + m]
        grad_logdet_block = grad_logdet[start : start + m]
        for b in range(m):
            inside = saved[extra + _INSIDE, b] > 0.0
            gy = grad_out_block[b] if inside else 0.0
            gl = grad_logdet_block[b] if inside else 0.0
            w = saved[extra + _W, b]
            h = saved[extra + _H, b]
            d0 = saved[extra + _D0, b]
            d1 = saved[extra + _D1, b]
            slope = h / w
            xi = min(max((saved[extra + _SHIFTED, b] - saved[extra + _LEFT_X, b]) / w, 0.0), 1.0)
            one_m_xi = 1.0 - xi
            xi_1m = xi * one_m_xi
            denom = slope + (d0 + d1 - 2.0 * slope) * xi_1m
            numer = slope * xi * xi + d0 * xi_1m
            deriv_numer = d1 * xi * xi + 2.0 * slope * xi_1m + d0 * one_m_xi * one_m_xi
            dydx = deriv_numer * (slope / denom) ** 2

            g_xi, g_slope, g_d0, g_d1, numer_ratio = bin_partials(
                gy, gl, w, h, xi, xi_1m, slope, 1.0 / slope, d0, d1, numer, dydx, 1.0 / denom,
                1.0 / deriv_numer,
            )  # fmt: skip

            # Chain rule through xi = (x - left_x) / w and slope = h / w. Outside the interval
            # the map is the identity and every spline parameter's gradient is 0.
            inv_w = 1.0 / w
            g_u[b] = g_xi * inv_w if inside else grad_out_block[b]
            g_own[0, b] = -(g_xi * xi + g_slope * slope) * inv_w
            g_own[1, b] = gy * numer_ratio + g_slope * inv_w
            g_left[0, b] = -g_xi * inv_w
            g_left[1, b] = gy
            g_d[0, b] = g_d0 * saved[extra + _S0, b]
            g_d[1, b] = g_d1 * saved[extra + _S1, b]
            bins[b] = int(saved[extra + _K, b])
        # Back through size = softmax(raw) * size_scale + min_size, for widths and heights.
        for table in range(2):
            sizes = table * n_bins
            for b in range(m):
                dot[b] = 0.0
            for j in range(n_bins):
                for b in range(m):
                    k = bins[b]
                    g = g_left[table, b] if j < k else (g_own[table, b] if j == k else 0.0)
                    g_prob = (saved[sizes + j, b] - min_size) * g
                    g_block[first + sizes + j, b] = g_prob
                    dot[b] += g_prob
            for b in range(m):
                dot[b] /= size_scale
            for j in range(n_bins):
                for b in range(m):
                    size = saved[sizes + j, b]
                    g_block[first + sizes + j, b] -= (size - min_size) * dot[b]
        # Interior derivative r is knot r + 1: knot k for r = k - 1, knot k + 1 for r = k.
        for r in range(n_bins - 1):
            for b in range(m):
                k = bins[b]
                g = g_d[0, b] if r == k - 1 else (g_d[1, b] if r == k else 0.0)
                g_block[interior + r, b] = g
        x_block = x[start : start + m]
        grad_x_block = grad_x[start : start + m]
        for b in range(m):
            if affine:
                # Through u = x exp(s) + t, s = limit * tanh(a / limit); the log-det gains s.
                tanh = saved[extra + _TANH, b]
                g_x = g_u[b] * saved[extra + _SCALE, b]
                g_block[1, b] = g_u[b]
                g_block[0, b] = (grad_logdet_block[b] + g_x * x_block[b]) * (1.0 - tanh * tanh)
                grad_x_block[b] = g_x
            else:
                grad_x_block[b] = g_u[b]
        for r in range(grad_params.shape[0]):
            row = grad_params[r, start : start + m]
            for b in range(m):
                row[b] = g_block[r, b]


@_kernel
def _inverse_blocks(z, params, n_bins, geometry, out, logdet):
    """Inverse spline map and its log-derivative (no affine step), in SIMD-friendly blocks."""
    bound = geometry[0]
    block = _BLOCK
    local, shifted, work, logs, bits, index, tables, picked = _block_scratch(params, n_bins)
    for start in range(0, z.shape[0], block):
        m = min(block, z.shape[0] - start)
        z_block = z[start : start + m]
        _load_block(params, start, m, local)
        for b in range(m):
            shifted[b] = min(max(float(z_block[b]), -bound), bound) + bound
        _block_geometry(local, 0, m, shifted, True, geometry, tables, index, picked, bits)
        for b in range(m):
            w, h, d0, d1 = picked[_W, b], picked[_H, b], picked[_D0, b], picked[_D1, b]
            left_x, left_y = picked[_LEFT_X, b], picked[_LEFT_Y, b]
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
            inside = z_block[b] >= -bound and z_block[b] <= bound
            shifted[b] = left_x + xi * w - bound if inside else z_block[b]  # the output
            work[b] = deriv_numer * (slope / (slope + curvature * xi_1m)) ** 2 if inside else 1.0
        out_block = out[start : start + m]
        logdet_block = logdet[start : start + m]
        _log_block(work, logs, bits, m)
        for b in range(m):
            out_block[b] = shifted[b]
            logdet_block[b] = -logs[b]


_PLAIN_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)


def applicable(*tensors: torch.Tensor) -> bool:
    """Whether the kernels can run on these tensors: CPU float32/float64 tensors of one dtype,
    outside ``torch.compile``'s tracing (which needs tensor code it can see through).

    The kernels read the tensors' memory through NumPy, which tensor subclasses do not have:
    torch.compile's fake tensors among them, which older torch (2.2) passes through an
    autograd.Function while ``is_compiling()`` is False.
    """
    first = tensors[0]
    return (
        ENABLED
        and first.dtype in (torch.float32, torch.float64)
        and all(t.device.type == "cpu" and t.dtype == first.dtype for t in tensors)
        and all(type(t) in _PLAIN_TENSOR_TYPES for t in tensors)
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
    also returns what :func:`backward` needs (float64, a block of columns per 128 points),
    else None.
    """
    _load()
    x = _flat(inputs)
    p = _flat(params, params.shape[0])
    out = np.empty_like(x)
    logdet = np.empty_like(x)
    n_bins = (p.shape[0] - (0 if scale_limit is None else 2) + 1) // 3
    affine = scale_limit is not None
    n_blocks = -(-x.shape[0] // _BLOCK) if keep else 0
    kept = np.empty((n_blocks, 2 * n_bins + N_KEPT, _BLOCK))
    limit = scale_limit if affine else 1.0
    _forward_blocks(x, p, n_bins, geometry, affine, limit, out, logdet, kept)
    return _tensor(out, inputs.shape), _tensor(logdet, inputs.shape), kept if keep else None


def backward(
    inputs: torch.Tensor,
    kept: np.ndarray,
    n_params: int,
    grad_out: torch.Tensor,
    grad_logdet: torch.Tensor,
    geometry: tuple[float, float, float, float],
    affine: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of :func:`forward`'s two outputs with respect to ``inputs`` and ``params``.

    ``kept`` is what :func:`forward` kept; the parameter gradient has ``n_params`` rows.
    """
    _load()
    x = _flat(inputs)
    grad_x = np.empty_like(x)
    grad_params = np.empty((n_params, x.shape[0]), dtype=x.dtype)
    n_bins = (n_params - (2 if affine else 0) + 1) // 3
    _backward_blocks(
        x, kept, _flat(grad_out), _flat(grad_logdet), n_bins, geometry, affine, grad_x,
        grad_params,
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
