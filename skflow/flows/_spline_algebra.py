"""The closed-form partial derivatives of one spline bin, shared by the torch and numba paths.

Plain arithmetic only, so the same function takes torch tensors (``splines``' backward pass,
over whole slabs) and floats (``spline_kernels``, compiled by numba, one point at a time).
"""

from __future__ import annotations


def bin_partials(gy, gl, w, h, xi, xi_1m, slope, inv_slope, d0, d1, numer, dydx, inv_denom,
                 inv_dnum):  # fmt: skip
    """Gradients reaching ``xi``, the slope ``h / w`` and the two knot derivatives.

    ``gy`` and ``gl`` are the incoming gradients of the output ``y`` and of ``log dy/dx``;
    the rest are the forward pass's values for the point's bin (``xi_1m = xi (1 - xi)``,
    ``numer`` and ``1 / denom`` of ``y``, ``1 / deriv_numer`` of ``dy/dx``), with the
    reciprocals computed by the caller, each in its cheapest way.

    Returns
    -------
    g_xi, g_slope, g_d0, g_d1, numer_ratio
        The four gradients, and ``numer / denom``, which the chain rule needs again.
    """
    one_m_xi = 1.0 - xi
    two_q = 2.0 * xi_1m
    numer_ratio = numer * inv_denom
    gy_h = gy * h * inv_denom
    gl_2q = gl * two_q * inv_denom
    ddenom_dxi = (d0 + d1 - 2.0 * slope) * (one_m_xi - xi)
    ddnum_dxi = 2.0 * (d1 * xi + slope * (one_m_xi - xi) - d0 * one_m_xi)
    g_xi = gy * w * dydx + gl * (ddnum_dxi * inv_dnum - 2.0 * ddenom_dxi * inv_denom)
    one_m_2q = 1.0 - two_q
    # Squares in parentheses: the same rounding as ``t.square()`` in the torch code before.
    g_slope = gy_h * (xi * xi - numer_ratio * one_m_2q) + gl * (
        2.0 * inv_slope + two_q * inv_dnum - 2.0 * one_m_2q * inv_denom
    )
    g_d0 = gy_h * xi_1m * (1.0 - numer_ratio) + gl * (one_m_xi * one_m_xi) * inv_dnum - gl_2q
    g_d1 = gl * (xi * xi) * inv_dnum - gy_h * xi_1m * numer_ratio - gl_2q
    return g_xi, g_slope, g_d0, g_d1, numer_ratio
