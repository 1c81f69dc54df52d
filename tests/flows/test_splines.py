"""Mathematical checks of the rational-quadratic spline with identity tails (float64).

Every check runs on both formulations: the torch code of ``splines`` and the fused CPU loops of
``spline_kernels`` (numba), the latter given every slab size here.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from skflow.flows import (
    AffineMap,
    rational_quadratic_spline,
    rational_quadratic_spline_params_first,
    spline_kernels,
)
from skflow.flows.splines import (
    DEFAULT_MIN_BIN_SIZE,
    DEFAULT_MIN_DERIVATIVE,
    affine_rational_quadratic_spline,
    n_spline_params,
)

DTYPE = torch.float64
BOUND = 3.0
N_BINS = 6
N_PARAMS = n_spline_params(N_BINS)


@pytest.fixture(autouse=True, params=["torch", "fused"])
def spline_path(request, monkeypatch) -> str:
    if request.param == "fused":
        if not spline_kernels.AVAILABLE:
            pytest.skip("numba is not installed, so there are no fused kernels to check")
    else:
        monkeypatch.setattr(spline_kernels, "ENABLED", False)
    return request.param


def _params(n: int, seed: int, scale: float = 1.0, dtype: torch.dtype = DTYPE) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, N_PARAMS, generator=gen, dtype=dtype)


def _grid(n: int = 4001, span: float = 4.0, edges: bool = True) -> torch.Tensor:
    """Points from -span*B to span*B, with the edges +-B included exactly (unless ``edges``)."""
    grid = torch.linspace(-span * BOUND, span * BOUND, n, dtype=DTYPE)
    grid = grid[(grid.abs() - BOUND).abs() > 1e-9]
    if not edges:
        return grid
    return torch.cat([grid, torch.tensor([-BOUND, BOUND], dtype=DTYPE)])


def _spline(x, params, inverse=False):
    return rational_quadratic_spline(x, params, BOUND, inverse=inverse)


def _reference_spline(x: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Durkan et al.'s forward formula, written independently (searchsorted on explicit knots)."""
    k = N_BINS
    raw_w, raw_h, raw_d = params[..., :k], params[..., k : 2 * k], params[..., 2 * k :]

    def knots(raw):
        size = 2 * BOUND * (DEFAULT_MIN_BIN_SIZE + (1 - k * DEFAULT_MIN_BIN_SIZE) * raw.softmax(-1))
        edges = F.pad(torch.cumsum(size, -1), (1, 0)) - BOUND
        return edges, size

    xs, widths = knots(raw_w)
    ys, heights = knots(raw_h)
    shift = math.log(math.expm1(1 - DEFAULT_MIN_DERIVATIVE))
    derivs = F.pad(DEFAULT_MIN_DERIVATIVE + F.softplus(raw_d + shift), (1, 1), value=1.0)
    inside = x.abs() <= BOUND
    xc = x.clamp(-BOUND, BOUND)
    idx = (torch.searchsorted(xs[..., 1:-1].contiguous(), xc.unsqueeze(-1), right=True)).squeeze(-1)

    def pick(t):
        return t.gather(-1, idx.unsqueeze(-1)).squeeze(-1)

    x_k, y_k, w, h = pick(xs[..., :-1]), pick(ys[..., :-1]), pick(widths), pick(heights)
    d0, d1 = pick(derivs[..., :-1]), pick(derivs[..., 1:])
    s = h / w
    xi = (xc - x_k) / w
    denom = s + (d0 + d1 - 2 * s) * xi * (1 - xi)
    y = y_k + h * (s * xi**2 + d0 * xi * (1 - xi)) / denom
    dydx = s**2 * (d1 * xi**2 + 2 * s * xi * (1 - xi) + d0 * (1 - xi) ** 2) / denom**2
    return torch.where(inside, y, x), torch.where(inside, dydx.log(), 0.0)


def test_n_spline_params():
    assert n_spline_params(1) == 2
    assert n_spline_params(8) == 23


def test_matches_reference_formula():
    x = _grid(2001, span=1.5)
    params = _params(x.numel(), seed=0, scale=1.5)
    y, logdet = _spline(x, params)
    y_ref, logdet_ref = _reference_spline(x, params)
    assert (y - y_ref).abs().max().item() < 1e-10
    assert (logdet - logdet_ref).abs().max().item() < 1e-10
    # Non-trivial parameters: far from the identity inside the interval.
    assert (y - x).abs().max().item() > 0.1


def test_knots_are_interpolated():
    """The widths / heights blocks of ``params`` place the knots: f(x_k) = y_k for every knot."""
    params = _params(1, seed=1, scale=2.0)[0]
    k = N_BINS
    softmax = params[: 2 * k].view(2, k).softmax(-1)
    sizes = 2 * BOUND * (DEFAULT_MIN_BIN_SIZE + (1 - k * DEFAULT_MIN_BIN_SIZE) * softmax)
    edges = F.pad(torch.cumsum(sizes, -1), (1, 0)) - BOUND
    y, _ = _spline(edges[0], params.expand(k + 1, -1))
    assert (y - edges[1]).abs().max().item() < 1e-10
    x, _ = _spline(edges[1], params.expand(k + 1, -1), inverse=True)
    assert (x - edges[0]).abs().max().item() < 1e-10


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_round_trip(scale):
    x = _grid()
    params = _params(x.numel(), seed=2, scale=scale)
    y, _ = _spline(x, params)
    x_back, _ = _spline(y, params, inverse=True)
    assert (x_back - x).abs().max().item() < 1e-8
    z = _grid()
    z_back, _ = _spline(_spline(z, params, inverse=True)[0], params)
    assert (z_back - z).abs().max().item() < 1e-8
    inside = x.abs() <= BOUND
    assert (y[inside] - x[inside]).abs().max().item() > 0.05  # non-trivial map


@pytest.mark.parametrize("inverse", [False, True])
def test_identity_with_zero_logdet_outside_the_interval(inverse):
    x = _grid()
    params = _params(x.numel(), seed=3, scale=2.0)
    y, logdet = _spline(x, params, inverse=inverse)
    tails = x.abs() > BOUND
    assert tails.sum().item() > 1000
    assert torch.equal(y[tails], x[tails])
    assert torch.equal(logdet[tails], torch.zeros_like(logdet[tails]))
    inside = ~tails
    assert y[inside].abs().max().item() <= BOUND + 1e-12
    assert logdet[inside].abs().max().item() > 0.1


@pytest.mark.parametrize("inverse", [False, True])
def test_monotone_increasing_and_onto(inverse):
    x = torch.linspace(-2 * BOUND, 2 * BOUND, 6001, dtype=DTYPE)
    params = _params(1, seed=4, scale=2.0).expand(x.numel(), -1)
    y, logdet = _spline(x, params, inverse=inverse)
    assert (y.diff() > 0).all()
    assert torch.isfinite(logdet).all()
    ends, _ = _spline(torch.tensor([-BOUND, BOUND], dtype=DTYPE), params[:2], inverse=inverse)
    assert torch.allclose(ends, torch.tensor([-BOUND, BOUND], dtype=DTYPE), atol=1e-12)


@pytest.mark.parametrize("inverse", [False, True])
def test_logdet_is_log_of_autograd_derivative(inverse):
    # Not exactly at +-B: there the internal clamp of xi to [0, 1] can zero the autograd
    # derivative (a one-point artefact of that clamp) although the derivative there is 1.
    x = _grid(3001, span=1.5, edges=False).requires_grad_(True)
    params = _params(x.numel(), seed=5, scale=1.5)
    y, logdet = _spline(x, params, inverse=inverse)
    (grad,) = torch.autograd.grad(y.sum(), x)  # element-wise map: the gradient is dy/dx
    assert (grad > 0).all()
    assert (grad.log() - logdet).abs().max().item() < 1e-8
    assert logdet.abs().max().item() > 0.1


def test_forward_and_inverse_logdets_cancel():
    x = _grid()
    params = _params(x.numel(), seed=6, scale=2.0)
    y, logdet_forward = _spline(x, params)
    _, logdet_inverse = _spline(y, params, inverse=True)
    assert (logdet_forward + logdet_inverse).abs().max().item() < 1e-8


@pytest.mark.parametrize("inverse", [False, True])
def test_continuous_with_unit_derivative_at_the_edges(inverse):
    params = _params(1, seed=7, scale=2.0)
    for eps in (1e-6, 1e-8):
        for edge in (-BOUND, BOUND):
            points = torch.tensor([edge - eps, edge, edge + eps], dtype=DTYPE)
            y, logdet = _spline(points, params.expand(3, -1), inverse=inverse)
            # Value continuous (it matches the identity tail) ...
            assert (y - points).abs().max().item() < 1e-9
            # ... and so is the derivative: the boundary knots have derivative 1.
            assert logdet.abs().max().item() < 1e3 * eps


@pytest.mark.parametrize("inverse", [False, True])
def test_zero_params_give_the_identity(inverse):
    x = _grid()
    y, logdet = _spline(x, torch.zeros(x.numel(), N_PARAMS, dtype=DTYPE), inverse=inverse)
    assert (y - x).abs().max().item() < 1e-12
    assert logdet.abs().max().item() < 1e-12


def test_batch_shapes_are_element_wise():
    x = _grid(598, span=1.5).view(3, 200, 1)
    params = _params(600, seed=8, scale=1.5).view(3, 200, 1, N_PARAMS)
    y, logdet = _spline(x, params)
    y_flat, logdet_flat = _spline(x.reshape(-1), params.reshape(-1, N_PARAMS))
    assert y.shape == logdet.shape == x.shape
    assert torch.equal(y.reshape(-1), y_flat)
    assert torch.equal(logdet.reshape(-1), logdet_flat)


def test_inverse_far_outside_is_exact_identity():
    z = torch.tensor([-1e300, -1e6, -1e3, 1e3, 1e6, 1e300], dtype=DTYPE)
    params = _params(z.numel(), seed=9, scale=50.0)
    for inverse in (False, True):
        x, logdet = _spline(z, params, inverse=inverse)
        assert torch.equal(x, z)
        assert torch.equal(logdet, torch.zeros_like(logdet))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("scale", [50.0, 1000.0])
def test_extreme_params_stay_finite(dtype, scale):
    """Near-degenerate bins (sizes and derivatives at their minimum) must not produce NaN."""
    z = torch.cat([torch.linspace(-BOUND, BOUND, 20001, dtype=dtype), _grid(2001).to(dtype)])
    params = _params(z.numel(), seed=10, scale=scale, dtype=dtype)
    x, logdet_inverse = _spline(z, params, inverse=True)
    y, logdet_forward = _spline(z, params)
    for values in (x, logdet_inverse, y, logdet_forward):
        assert torch.isfinite(values).all()
    assert x.abs().max().item() <= 4 * BOUND + 1e-3  # inside points stay inside
    inside = z.abs() <= BOUND
    assert x[inside].abs().max().item() <= BOUND * (1 + 1e-6)
    if dtype == torch.float64:
        # Ill-conditioned but still invertible in double precision.
        z_back, _ = _spline(x, params)
        assert (z_back - z).abs().max().item() < 1e-5


@pytest.mark.parametrize("scale", [1.0, 50.0])
@pytest.mark.parametrize("inverse", [False, True])
def test_param_gradient_is_finite_and_zero_in_the_tails(inverse, scale):
    x = torch.tensor([-1e6, -10.0, -BOUND - 1e-9, BOUND + 1e-9, 10.0, 1e6], dtype=DTYPE)
    params = _params(x.numel(), seed=11, scale=scale).requires_grad_(True)
    y, logdet = _spline(x, params, inverse=inverse)
    (grad,) = torch.autograd.grad(y.sum() + logdet.sum(), params)
    assert torch.isfinite(grad).all()
    assert torch.equal(grad, torch.zeros_like(grad))

    # Mixed points (edges, interior, tails): finite everywhere, non-zero inside.
    x = _grid(401, span=2.0)
    params = _params(x.numel(), seed=12, scale=scale).requires_grad_(True)
    y, logdet = _spline(x, params, inverse=inverse)
    (grad,) = torch.autograd.grad(y.sum() + logdet.sum(), params)
    assert torch.isfinite(grad).all()
    inside = x.abs() < BOUND
    assert grad[inside].abs().sum().item() > 0
    assert torch.equal(grad[x.abs() > BOUND], torch.zeros_like(grad[x.abs() > BOUND]))


# --------------------------------------------------------------------------------------------
# The forward map's hand-written backward pass and the parameters-first layout.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_bins", [1, 2, 5, 8])
@pytest.mark.parametrize("inverse", [False, True])
def test_gradcheck_inputs_and_params(n_bins, inverse):
    """Finite differences agree with the gradients (closed form forward, autograd inverse)."""
    gen = torch.Generator().manual_seed(n_bins)
    x = (1.6 * BOUND * torch.rand(60, generator=gen, dtype=DTYPE) - 0.8 * BOUND).view(20, 3)
    x[0] = torch.tensor([-2.0 * BOUND, 1.5 * BOUND, 0.0], dtype=DTYPE)  # tails and the middle
    params = 1.5 * torch.randn(20, 3, n_spline_params(n_bins), generator=gen, dtype=DTYPE)
    x.requires_grad_(True)
    params.requires_grad_(True)

    def spline(inputs, raw):
        return rational_quadratic_spline(inputs, raw, BOUND, inverse=inverse)

    assert torch.autograd.gradcheck(spline, (x, params), eps=1e-6, atol=1e-6)


def test_closed_form_backward_matches_autograd_of_the_reference():
    """The analytic gradients equal autograd's through the independent reference formula."""
    x = _grid(1501, span=1.3, edges=False)
    params = _params(x.numel(), seed=13, scale=2.0)
    gen = torch.Generator().manual_seed(14)
    weights = torch.randn(2, x.numel(), generator=gen, dtype=DTYPE)  # a random linear read-out

    def grads(fn):
        xs, ps = x.clone().requires_grad_(True), params.clone().requires_grad_(True)
        y, logdet = fn(xs, ps)
        return torch.autograd.grad((weights[0] * y + weights[1] * logdet).sum(), (xs, ps))

    got = grads(lambda a, b: _spline(a, b))
    want = grads(_reference_spline)
    for g, w in zip(got, want, strict=True):
        assert (g - w).abs().max().item() < 1e-8 * max(1.0, w.abs().max().item())
    assert got[1].abs().max().item() > 0.1  # non-trivial


@pytest.mark.parametrize("inverse", [False, True])
def test_params_first_layout_matches_the_last_axis_layout(inverse):
    x = _grid(600, span=1.5)[:600].view(200, 3)
    params = _params(600, seed=15, scale=1.5).view(200, 3, N_PARAMS)
    y, logdet = _spline(x, params, inverse=inverse)
    y_first, logdet_first = rational_quadratic_spline_params_first(
        x.T.contiguous(), params.permute(2, 1, 0).contiguous(), BOUND, inverse=inverse
    )
    assert torch.equal(y_first.T, y) and torch.equal(logdet_first.T, logdet)


def test_params_first_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"params must have shape \(n_params, \*inputs.shape\)"):
        rational_quadratic_spline_params_first(
            torch.zeros(4, 3), torch.zeros(4, 3, N_PARAMS), BOUND
        )


def test_second_derivatives_are_refused_not_silently_wrong():
    x = _grid(11, span=0.5, edges=False).requires_grad_(True)
    params = _params(x.numel(), seed=16).requires_grad_(True)
    y, _ = _spline(x, params)
    (grad,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="twice|does not require grad"):
        torch.autograd.grad(grad.sum(), params)


# --------------------------------------------------------------------------------------------
# The affine step fused into the forward spline's autograd node.
# --------------------------------------------------------------------------------------------

SCALE_LIMIT = 2.0


def _affine_spline_inputs(seed: int, scale: float = 1.5):
    """Points in the tails and inside; raw log-scales beyond the soft limit included."""
    gen = torch.Generator().manual_seed(seed)
    x = 1.2 * BOUND * torch.randn(3, 40, generator=gen, dtype=DTYPE)
    params = scale * torch.randn(2 + N_PARAMS, 3, 40, generator=gen, dtype=DTYPE)
    params[0, 0, :5] = torch.tensor([-9.0, -3.0, 0.0, 3.0, 9.0], dtype=DTYPE)
    return x, params


def _composed(x, params):
    """The affine map, then the spline: two autograd graphs, the unfused reference."""
    u, logdet_affine = AffineMap(SCALE_LIMIT).forward(x, params[:2])
    z, logdet_spline = rational_quadratic_spline_params_first(u, params[2:], BOUND)
    return z, logdet_affine + logdet_spline


def test_affine_spline_equals_affine_map_then_spline_with_gradients():
    x, params = _affine_spline_inputs(seed=21)
    gen = torch.Generator().manual_seed(22)
    weights = torch.randn(2, *x.shape, generator=gen, dtype=DTYPE)  # a random linear read-out

    def run(fn):
        xs, ps = x.clone().requires_grad_(True), params.clone().requires_grad_(True)
        z, logdet = fn(xs, ps)
        grads = torch.autograd.grad((weights[0] * z + weights[1] * logdet).sum(), (xs, ps))
        return (z, logdet, *grads)

    fused = run(lambda a, b: affine_rational_quadratic_spline(a, b, BOUND, SCALE_LIMIT))
    composed = run(_composed)
    outside = ((x * torch.exp(SCALE_LIMIT * torch.tanh(params[0] / SCALE_LIMIT)) + params[1])
               .abs() > BOUND)  # fmt: skip
    assert 0 < int(outside.sum()) < x.numel()  # both the tails and the interval are exercised
    for got, want in zip(fused, composed, strict=True):
        assert got.shape == want.shape
        assert (got - want).abs().max().item() < 1e-10 * max(1.0, want.abs().max().item())
    assert fused[3][0].abs().max().item() > 0.1  # the log-scale's gradient is non-trivial


def test_affine_spline_gradcheck():
    x, params = _affine_spline_inputs(seed=23, scale=1.0)
    x, params = x[:, :12].contiguous(), params[:, :, :12].contiguous()

    def fused(inputs, raw):
        return affine_rational_quadratic_spline(inputs, raw, BOUND, SCALE_LIMIT)

    inputs = (x.requires_grad_(True), params.requires_grad_(True))
    assert torch.autograd.gradcheck(fused, inputs, eps=1e-6, atol=1e-6)


def test_affine_spline_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"params must have shape \(n_params, \*inputs.shape\)"):
        affine_rational_quadratic_spline(
            torch.zeros(4, 3), torch.zeros(4, 3, 2 + N_PARAMS), BOUND, SCALE_LIMIT
        )
