"""Mathematical checks of the flow layers and of whole flows (float64, tiny networks).

Every bijection is checked for ``inverse(forward(x)) == x`` and for its log-determinant against
``slogdet`` of the autograd Jacobian. Conditioners start at zero (every coupling starts as the
identity), so parameters are perturbed with small noise first to exercise non-trivial maps.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from skflow.flows import (
    COUPLINGS,
    MIXINGS,
    ActNorm,
    AdditiveMap,
    AffineMap,
    Conditioner,
    Coupling,
    Flow,
    LULinear,
    Permutation,
    SinhArcsinh,
    SplineMap,
    build_flow,
)
from skflow.flows.base import soft_clamp

DTYPE = torch.float64
DIMS = (1, 2, 3, 5, 6)
HIDDEN = (8,)
N_ROWS = 4
CONTEXT = 2
ATOL = 1e-6


@pytest.fixture(autouse=True)
def _isolated_global_rng():
    """``nn.Linear`` draws its initial weights from the global RNG: make every test reproducible
    whatever ran before it, and leave the global state as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int, dtype: torch.dtype = DTYPE) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=dtype)


@torch.no_grad()
def _perturb(module: torch.nn.Module, std: float, seed: int) -> None:
    """Add N(0, std^2) noise to every parameter (makes zero-initialised couplings non-trivial)."""
    gen = _gen(seed)
    for param in module.parameters():
        param.add_(std * torch.randn(param.shape, generator=gen, dtype=param.dtype))


def _element_map(kind: str):
    if kind == "additive":
        return AdditiveMap()
    if kind == "affine":
        return AffineMap(scale_limit=5.0)
    # A narrow interval so that some points fall in the identity tails and some inside.
    return SplineMap(n_bins=4, bound=2.0, scale_limit=5.0)


def _test_points(d: int, seed: int) -> torch.Tensor:
    """A few rows, one of them far out so spline tails are exercised too."""
    x = 1.5 * _randn(N_ROWS, d, seed=seed)
    x[-1] = torch.linspace(-4.0, 4.0, d, dtype=DTYPE) if d > 1 else torch.tensor([3.5], dtype=DTYPE)
    return x


def _check_bijection(layer, x: torch.Tensor, context: torch.Tensor | None = None):
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


def _unit_variance_error(z: torch.Tensor) -> float:
    """Distance of the per-feature variances from 1, unbiased or biased (population)."""
    unbiased = (z.var(dim=0) - 1.0).abs()
    biased = (z.var(dim=0, correction=0) - 1.0).abs()
    return torch.minimum(unbiased, biased).max().item()


# --------------------------------------------------------------------------------------------
# 1. Bijections and log-determinants, layer by layer and for whole flows.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", DIMS)
def test_actnorm_data_init_standardizes_and_is_bijective(d):
    layer = ActNorm(d).double()
    batch = 3.0 * _randn(64, d, seed=d) + torch.arange(d, dtype=DTYPE) - 1.0
    # Evaluation mode never initialises: an uninitialised ActNorm is the identity there.
    layer.eval()
    z, logdet = layer(batch)
    assert torch.equal(z, batch) and torch.equal(logdet, torch.zeros_like(logdet))
    assert not bool(layer.initialized)
    layer.train()
    z, logdet = layer(batch)
    # The init batch comes out standardised (either variance convention is accepted).
    assert z.mean(dim=0).abs().max().item() < 1e-10
    assert _unit_variance_error(z) < 1e-10
    # The log-det is the log of the per-feature scaling that was applied.
    scaling = (z.std(dim=0) / batch.std(dim=0)).log().sum()
    assert torch.allclose(logdet, scaling.expand_as(logdet), atol=1e-12)
    assert bool(layer.initialized)
    # A second training batch must not re-initialise.
    loc = layer.loc.detach().clone()
    layer(batch * 10.0 + 5.0)
    assert torch.equal(layer.loc.detach(), loc)

    _perturb(layer, 0.1, seed=10 + d)
    layer.eval()
    _check_bijection(layer, _test_points(d, seed=20 + d))


@pytest.mark.parametrize("d", DIMS)
def test_actnorm_init_through_flow_initialize(d):
    flow = Flow([ActNorm(d)], d).double().eval()
    batch = 0.5 * _randn(50, d, seed=d) - 2.0
    flow.initialize(batch)
    assert not flow.training  # the mode is restored
    assert bool(flow.transforms[0].initialized)
    z, _ = flow(batch)
    assert z.mean(dim=0).abs().max().item() < 1e-10
    assert _unit_variance_error(z) < 1e-10


@pytest.mark.parametrize("d", DIMS)
def test_permutation(d):
    layer = Permutation(d, generator=_gen(d)).double()
    x = _test_points(d, seed=d)
    z, logdet = _check_bijection(layer, x)
    assert torch.equal(logdet, torch.zeros(N_ROWS, dtype=DTYPE))
    assert torch.equal(torch.sort(z, dim=1).values, torch.sort(x, dim=1).values)
    assert torch.equal(z, x[:, layer.perm])


@pytest.mark.parametrize("d", DIMS)
def test_lulinear(d):
    layer = LULinear(d, generator=_gen(d)).double()
    # Starts as a rotation: orthogonal weight, log|det| = 0 (factors are stored in float32).
    w = layer.weight().detach()
    assert (w @ w.T - torch.eye(d, dtype=DTYPE)).abs().max().item() < 1e-5
    assert abs(layer.log_diag.sum().item()) < 1e-5
    _perturb(layer, 0.2, seed=100 + d)
    x = _test_points(d, seed=d)
    z, logdet = _check_bijection(layer, x)
    w = layer.weight().detach()
    assert torch.allclose(z, x @ w.T, atol=1e-12)
    assert abs(logdet[0].item() - torch.linalg.slogdet(w)[1].item()) < 1e-10
    # Non-trivial after the perturbation: log|det| moved away from 0.
    assert abs(logdet[0].item()) > 1e-3


def _correlated_rows(d: int, n: int, seed: int) -> torch.Tensor:
    """Rows with distinct principal variances 3, 2, 1, ... along a random set of axes."""
    axes, _ = torch.linalg.qr(_randn(d, d, seed=seed))
    scales = torch.arange(d, 0, -1, dtype=DTYPE).sqrt()
    return (_randn(n, d, seed=seed + 1) * scales) @ axes.T, axes


@pytest.mark.parametrize("init", ["rotation", "pca", "whitening"])
def test_lulinear_initialisations_whiten_the_batch(init):
    d = 5
    x, _ = _correlated_rows(d, 20000, seed=7)
    layer = LULinear(d, generator=_gen(d), init=init).double().train()
    z, logdet = layer(x)
    cov = torch.cov(z.T)
    # Whitening up to the covariance shrinkage (d / (d + n) = 2.5e-4) and float32 factors.
    assert (cov - torch.eye(d, dtype=DTYPE)).abs().max().item() < 2e-3
    assert abs(logdet[0].item() - torch.linalg.slogdet(layer.weight().double())[1].item()) < 1e-5


def test_lulinear_pca_init_interleaves_the_leading_components():
    d = 6
    x, axes = _correlated_rows(d, 50000, seed=3)
    layer = LULinear(d, generator=_gen(d), init="pca").double().train()
    layer(x)
    w = layer.weight().double()
    # Output k reads the data along one principal axis; components ranked 0, 2, 4 go to the
    # first half (what a coupling keeps), ranks 1, 3, 5 to the second.
    directions = torch.nn.functional.normalize(w, dim=1)
    alignment = (directions @ axes).abs()  # |cos| between output rows and true axes
    expected_rank = [0, 2, 4, 1, 3, 5]
    for output, rank in enumerate(expected_rank):
        assert alignment[output, rank].item() > 0.99


def test_lulinear_whitening_init_keeps_white_input_in_place():
    d = 4
    white = _randn(50000, d, seed=11)
    layer = LULinear(d, generator=_gen(d), init="whitening").double().train()
    layer(white)
    # The random rotation it was built as is dropped: close to the identity now.
    assert (layer.weight().double() - torch.eye(d, dtype=DTYPE)).abs().max().item() < 0.03


def test_lulinear_rejects_an_unknown_init():
    with pytest.raises(ValueError, match="init must be one of"):
        LULinear(3, init="svd")


@pytest.mark.parametrize("d", DIMS)
def test_sinh_arcsinh(d):
    layer = SinhArcsinh(d).double().eval()  # eval: no data-dependent initialisation
    x = torch.cat([_test_points(d, seed=d), torch.full((1, d), -50.0, dtype=DTYPE)])
    z, logdet = layer(x)  # built as the identity
    assert torch.allclose(z, x, rtol=1e-12, atol=1e-12)
    assert logdet.abs().max().item() < 1e-12
    _perturb(layer, 0.3, seed=d)
    z, logdet = _check_bijection(layer, x)
    assert (z - x).abs().max().item() > 1e-2
    # Far-out points: finite values and a log-det that still matches the derivative.
    far = torch.tensor([[-1e6] * d, [1e6] * d], dtype=DTYPE, requires_grad=True)
    z_far, logdet_far = layer(far)
    assert torch.isfinite(z_far).all() and torch.isfinite(logdet_far).all()
    (grad,) = torch.autograd.grad(z_far.sum(), far)  # element-wise: the diagonal Jacobian
    assert torch.allclose(grad.log().sum(dim=1), logdet_far, atol=1e-8)
    back = layer.inverse(z_far.detach())
    assert ((back - far) / far).abs().max().item() < 1e-10


@pytest.mark.parametrize(("delta", "epsilon"), [(0.5, 0.3), (0.3, -0.5)])
def test_sinh_arcsinh_data_init_recovers_the_generating_map(delta, epsilon):
    """Data made by inverting a known sinh-arcsinh map of N(0, 1) draws: the maximum-likelihood
    initialisation on the first training batch must find (approximately) that map again."""
    layer = SinhArcsinh(2).double()
    g = _randn(4000, 2, seed=0)
    x = torch.sinh((torch.asinh(delta * g) + epsilon) / delta)
    layer.train()
    with torch.no_grad():
        z, _ = layer(x)
    assert bool(layer.initialized)
    fitted_delta = layer._delta().detach()
    assert torch.allclose(fitted_delta, torch.full_like(fitted_delta, delta), rtol=0.1)
    fitted_epsilon = layer.epsilon.detach()
    assert torch.allclose(fitted_epsilon, torch.full_like(fitted_epsilon, epsilon), atol=0.1)
    # The transformed batch is close to Gaussian: kurtosis near 3 (far from it before).
    assert (_kurtosis(z) - 3.0).abs().max().item() < 0.3
    assert (_kurtosis(x) - 3.0).abs().min().item() > 0.5


def test_sinh_arcsinh_never_lightens_tails():
    """Light-tailed (uniform) data must not push delta above 1: that would turn the tails into
    walls and give rows just past the training range an astronomically small density."""
    layer = SinhArcsinh(2).double()
    x = (torch.rand(4000, 2, generator=torch.Generator().manual_seed(0), dtype=DTYPE) - 0.5) * 3.4
    layer.train()
    with torch.no_grad():
        layer(x)
        delta = layer._delta()
        assert torch.all(delta <= 1.0)
        z_out, logdet_out = layer.eval()(torch.full((1, 2), 8.0, dtype=DTYPE))
    # At delta = 1 the layer is at most a shift there: the point stays at a sane latent value.
    assert z_out.abs().max().item() < 20.0 and torch.isfinite(logdet_out).all()


def _kurtosis(values: torch.Tensor) -> torch.Tensor:
    centred = values - values.mean(dim=0)
    return (centred**4).mean(dim=0) / (centred**2).mean(dim=0) ** 2


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("parity", [0, 1])
@pytest.mark.parametrize("with_context", [False, True])
@pytest.mark.parametrize("kind", ["additive", "affine", "spline"])
def test_coupling_bijection_and_logdet(kind, with_context, parity, d):
    seed = 1000 * COUPLINGS.index(kind) + 100 * d + 10 * parity + int(with_context)
    n_context = CONTEXT if with_context else 0
    torch.manual_seed(seed)
    layer = Coupling(d, _element_map(kind), HIDDEN, parity, n_context).double()
    _perturb(layer, 0.2, seed=seed)
    x = _test_points(d, seed=seed + 1)
    context = _randn(N_ROWS, CONTEXT, seed=seed + 2) if with_context else None
    z, logdet = _check_bijection(layer, x, context)

    # Structure: d = 1 is element-wise (nothing kept); else the kept block passes unchanged.
    expected_kept = 0 if d == 1 else (d // 2 if parity == 0 else (d + 1) // 2)
    assert layer.n_kept == expected_kept
    assert layer.n_kept + layer.n_changed == d
    kept = slice(0, layer.n_kept) if parity == 0 else slice(d - layer.n_kept, d)
    changed = slice(layer.n_kept, d) if parity == 0 else slice(0, d - layer.n_kept)
    assert torch.equal(z[:, kept], x[:, kept])
    # The map is not the identity on the changed block after the perturbation.
    assert (z[:, changed] - x[:, changed]).abs().max().item() > 1e-3
    if kind == "additive":
        assert torch.equal(logdet, torch.zeros_like(logdet))
    else:
        assert logdet.abs().max().item() > 1e-3


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("mixing", MIXINGS)
@pytest.mark.parametrize("coupling", COUPLINGS)
def test_flow_bijection_and_logdet(coupling, mixing, d):
    seed = 1000 * COUPLINGS.index(coupling) + 100 * MIXINGS.index(mixing) + d
    torch.manual_seed(seed)
    flow = build_flow(
        d,
        coupling,
        n_transforms=3,
        hidden_layer_sizes=HIDDEN,
        n_bins=4,
        tail_bound=3.0,
        mixing=mixing,
        generator=_gen(seed),
    ).double()
    data = 2.0 * _randn(64, d, seed=seed) + 1.0
    flow.initialize(data)
    _perturb(flow, 0.1, seed=seed + 1)
    flow.eval()
    x = torch.cat([data[:3], torch.full((1, d), 9.0, dtype=DTYPE)])
    z, logdet = _check_bijection(flow, x)
    assert logdet.abs().max().item() > 1e-3
    # log_prob is the change-of-variables formula.
    expected = -0.5 * (z**2).sum(1) - 0.5 * d * math.log(2.0 * math.pi) + logdet
    assert torch.allclose(flow.log_prob(x), expected, atol=1e-12)


@pytest.mark.parametrize("d", (2, 3, 5))
@pytest.mark.parametrize("coupling", COUPLINGS)
def test_alternating_couplings_transform_every_feature(coupling, d):
    """Without mixing, only the alternating kept half lets every feature be transformed."""
    torch.manual_seed(d)
    flow = build_flow(
        d, coupling, n_transforms=2, hidden_layer_sizes=HIDDEN, mixing="none", actnorm=False
    ).double()
    parities = [layer.parity for layer in flow.transforms if isinstance(layer, Coupling)]
    assert parities == [0, 1]
    _perturb(flow, 0.2, seed=d)
    x = _randn(16, d, seed=d)
    with torch.no_grad():
        z, _ = flow(x)
    moved = (z - x).abs().amax(dim=0)
    assert (moved > 1e-3).all(), moved


@pytest.mark.parametrize("d", (1, 3))
@pytest.mark.parametrize("coupling", COUPLINGS)
def test_conditional_flow_bijection_and_logdet(coupling, d):
    seed = 7 + 10 * d + COUPLINGS.index(coupling)
    torch.manual_seed(seed)
    flow = build_flow(
        d,
        coupling,
        n_transforms=2,
        hidden_layer_sizes=HIDDEN,
        n_bins=4,
        tail_bound=3.0,
        context_features=CONTEXT,
        generator=_gen(seed),
    ).double()
    data = _randn(32, d, seed=seed)
    context = _randn(32, CONTEXT, seed=seed + 1)
    flow.initialize(data, context)
    _perturb(flow, 0.1, seed=seed + 2)
    flow.eval()
    _check_bijection(flow, data[:N_ROWS], context[:N_ROWS])


# --------------------------------------------------------------------------------------------
# 2. Identity at initialisation.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("with_context", [False, True])
@pytest.mark.parametrize("kind", ["additive", "affine", "spline"])
def test_fresh_coupling_is_identity(kind, with_context, d):
    n_context = CONTEXT if with_context else 0
    x = 3.0 * _randn(16, d, seed=d)  # also reaches the spline tails (bound 2)
    context = _randn(16, CONTEXT, seed=d + 1) if with_context else None
    for parity in (0, 1):
        layer = Coupling(d, _element_map(kind), HIDDEN, parity, n_context).double()
        z, logdet = layer(x, context)
        x_inv = layer.inverse(x, context)
        if kind == "spline":  # identity up to rounding in the knot arithmetic
            assert (z - x).abs().max().item() < 1e-12
            assert logdet.abs().max().item() < 1e-12
            assert (x_inv - x).abs().max().item() < 1e-12
        else:
            assert torch.equal(z, x)
            assert torch.equal(logdet, torch.zeros_like(logdet))
            assert torch.equal(x_inv, x)


@pytest.mark.parametrize("coupling", COUPLINGS)
def test_fresh_flow_without_actnorm_and_mixing_is_identity(coupling):
    flow = build_flow(
        3, coupling, n_transforms=4, hidden_layer_sizes=HIDDEN, mixing="none", actnorm=False
    ).double()
    flow.eval()  # before any data-dependent initialisation
    x = 2.0 * _randn(10, 3, seed=0)
    z, logdet = flow(x)
    assert (z - x).abs().max().item() < 1e-12
    assert logdet.abs().max().item() < 1e-12
    base = -0.5 * (x**2).sum(1) - 1.5 * math.log(2.0 * math.pi)
    assert torch.allclose(flow.log_prob(x), base, atol=1e-12)


# --------------------------------------------------------------------------------------------
# 4. Affine soft clamp.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_in", "n_context"), [(3, 0), (3, 2), (0, 2), (0, 0)])
def test_conditioner_transposed_output_is_the_transpose(n_in, n_context):
    """The parameters-first output the couplings use is the plain output, transposed."""
    net = Conditioner(n_in, 7, HIDDEN, n_context).double()
    _perturb(net, std=0.5, seed=3)
    inputs = _randn(5, n_in, seed=4)
    context = _randn(5, n_context, seed=5) if n_context else None
    plain = net(inputs, context)
    transposed = net(inputs, context, transposed=True)
    assert plain.shape == (5, 7) and transposed.shape == (7, 5)
    assert torch.allclose(transposed, plain.T, atol=1e-12)
    assert plain.abs().max().item() > 0.01  # perturbed away from the zero start


def test_soft_clamp_bounds_and_is_identity_near_zero():
    values = torch.tensor([-1e30, -1e4, -3.0, -1e-4, 0.0, 1e-4, 3.0, 1e4, 1e30], dtype=DTYPE)
    out = soft_clamp(values, 5.0)
    assert out.abs().max().item() <= 5.0
    assert (out.diff() >= 0).all()
    assert abs(soft_clamp(torch.tensor(1e-4, dtype=DTYPE), 5.0).item() - 1e-4) < 1e-12
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_affine_coupling_huge_conditioner_output_is_clamped(sign):
    limit = 3.0
    d = 4
    layer = Coupling(d, AffineMap(limit), HIDDEN, 0, 0).double()
    with torch.no_grad():
        layer.conditioner.net[-1].bias.fill_(sign * 1e4)
    x = _randn(8, d, seed=0)
    z, logdet = layer(x)
    assert torch.isfinite(z).all() and torch.isfinite(logdet).all()
    # Every log-scale saturates at +-limit, never beyond it.
    assert logdet.abs().max().item() <= limit * layer.n_changed + 1e-9
    assert torch.allclose(logdet, torch.full_like(logdet, sign * limit * layer.n_changed))
    expected = x[:, 2:] * math.exp(sign * limit) + sign * 1e4
    assert torch.allclose(z[:, 2:], expected, rtol=1e-12)
    assert torch.allclose(layer.inverse(z), x, atol=1e-9)


def test_deep_affine_stack_on_large_inputs_stays_finite_in_float32():
    d, n_layers, limit = 4, 20, 5.0
    layers = [Coupling(d, AffineMap(limit), HIDDEN, i % 2, 0) for i in range(n_layers)]
    flow = Flow(layers, d)  # float32
    _perturb(flow, 0.5, seed=3)
    raw_log_scales: list[float] = []

    def record(module, inputs, output):
        raw_log_scales.append(output.view(output.shape[0], -1, 2)[..., 0].abs().max().item())

    hooks = [layer.conditioner.register_forward_hook(record) for layer in layers]
    x = 1e3 * torch.randn(16, d, generator=_gen(4))
    with torch.no_grad():
        z, logdet = flow(x)
        per_layer = []
        h = x
        for layer in layers:
            h, ld = layer(h)
            per_layer.append(ld)
    for hook in hooks:
        hook.remove()
    # The conditioners really asked for huge log-scales (without a clamp exp() overflows) ...
    assert max(raw_log_scales) > 20.0 * limit
    # ... yet every layer's log-det is bounded and the output is finite.
    assert torch.isfinite(z).all() and torch.isfinite(logdet).all()
    for ld in per_layer:
        assert ld.abs().max().item() <= limit * (d // 2) + 1e-4
    assert logdet.abs().max().item() <= n_layers * limit * (d // 2)


def test_affine_map_represents_narrow_scale_exactly():
    limit = 5.0
    target = -4.0  # scale exp(-4), inside the limit
    amap = AffineMap(limit)
    raw = limit * math.atanh(target / limit)
    x = _randn(6, 3, seed=1)
    params = torch.stack([torch.full_like(x, raw), torch.full_like(x, 0.25)])  # parameters first
    z, log_scale = amap.forward(x, params)
    assert torch.allclose(log_scale, torch.full_like(x, target), atol=1e-12)
    assert torch.allclose(z, x * math.exp(target) + 0.25, atol=1e-12)
    assert torch.allclose(amap.inverse(z, params), x, atol=1e-12)

    # The same through a coupling layer: set the conditioner's constant output.
    layer = Coupling(2, AffineMap(limit), HIDDEN, 0, 0).double()
    with torch.no_grad():
        layer.conditioner.net[-1].bias.copy_(torch.tensor([raw, 0.0], dtype=DTYPE))
    x2 = _randn(5, 2, seed=2)
    z2, logdet = layer(x2)
    assert torch.allclose(z2[:, 1], x2[:, 1] * math.exp(target), atol=1e-12)
    assert torch.allclose(logdet, torch.full_like(logdet, target), atol=1e-12)


# --------------------------------------------------------------------------------------------
# 5. Whole flows: normalisation, sampling, context.
# --------------------------------------------------------------------------------------------


def _small_flow(d, coupling, seed, context_features=0, std=0.3) -> Flow:
    torch.manual_seed(seed)
    flow = build_flow(
        d,
        coupling,
        n_transforms=2,
        hidden_layer_sizes=HIDDEN,
        n_bins=4,
        tail_bound=2.0,
        context_features=context_features,
        generator=_gen(seed),
    ).double()
    data = _randn(128, d, seed=seed) * 0.8 + 0.3
    context = _randn(128, context_features, seed=seed + 1) if context_features else None
    flow.initialize(data, context)
    _perturb(flow, std, seed=seed + 2)
    flow.eval()
    return flow


def _trapezoid_1d(flow: Flow, context: torch.Tensor | None = None) -> float:
    grid = torch.linspace(-60.0, 60.0, 24001, dtype=DTYPE).unsqueeze(1)
    ctx = None if context is None else context.expand(grid.shape[0], -1)
    with torch.no_grad():
        density = flow.log_prob(grid, ctx).exp()
    assert max(density[0].item(), density[-1].item()) < 1e-8  # grid wide enough
    return torch.trapezoid(density, grid[:, 0]).item()


@pytest.mark.parametrize("coupling", COUPLINGS)
def test_log_prob_integrates_to_one_1d(coupling):
    flow = _small_flow(1, coupling, seed=11 + COUPLINGS.index(coupling))
    # Non-trivial density: not the standard normal.
    x = torch.linspace(-2, 2, 5, dtype=DTYPE).unsqueeze(1)
    with torch.no_grad():
        diff = flow.log_prob(x) - Flow.base_log_prob(x)
    assert diff.abs().max().item() > 1e-2
    assert abs(_trapezoid_1d(flow) - 1.0) < 1e-3


@pytest.mark.parametrize("coupling", COUPLINGS)
def test_log_prob_integrates_to_one_2d(coupling):
    # Smaller noise: larger perturbations give spline flows heavy tails that need a wider grid.
    flow = _small_flow(2, coupling, seed=21 + COUPLINGS.index(coupling), std=0.1)
    # Spacing 0.05: spline densities have sharp features that a coarser grid under-resolves.
    axis = torch.linspace(-16.0, 16.0, 641, dtype=DTYPE)
    gx, gy = torch.meshgrid(axis, axis, indexing="ij")
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    with torch.no_grad():
        density = flow.log_prob(points).exp().view(axis.numel(), axis.numel())
    edge = torch.cat([density[0], density[-1], density[:, 0], density[:, -1]])
    assert edge.max().item() < 1e-6  # grid wide enough
    # Non-trivial density: far from the standard normal somewhere on the grid.
    base = Flow.base_log_prob(points).exp().view_as(density)
    assert (density - base).abs().max().item() > 1e-2
    total = torch.trapezoid(torch.trapezoid(density, axis, dim=1), axis).item()
    assert abs(total - 1.0) < 1e-3


def test_conditional_log_prob_integrates_to_one_for_each_context():
    flow = _small_flow(1, "spline", seed=31, context_features=CONTEXT)
    for seed in (1, 2):
        context = 1.5 * _randn(1, CONTEXT, seed=seed)
        assert abs(_trapezoid_1d(flow, context) - 1.0) < 1e-3


@pytest.mark.parametrize("d", (1, 3))
@pytest.mark.parametrize("coupling", COUPLINGS)
def test_sample_shape_finite_reproducible(coupling, d):
    flow = _small_flow(d, coupling, seed=41 + d)
    with torch.no_grad():
        a = flow.sample(50, generator=_gen(123))
        b = flow.sample(50, generator=_gen(123))
        c = flow.sample(50, generator=_gen(124))
        # A sample is the inverse image of standard-normal draws from the same generator.
        z, _ = flow(a)
    assert a.shape == (50, d) and a.dtype == DTYPE
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert (a - c).abs().max().item() > 1e-3
    expected_z = torch.randn(50, d, generator=_gen(123), dtype=DTYPE)
    assert (z - expected_z).abs().max().item() < 1e-6


@pytest.mark.parametrize("d", (1, 2))
@pytest.mark.parametrize("coupling", COUPLINGS)
def test_context_changes_log_prob_and_flow_is_invertible_given_context(coupling, d):
    flow = _small_flow(d, coupling, seed=51 + d, context_features=CONTEXT)
    x = _randn(8, d, seed=5)
    c1 = _randn(8, CONTEXT, seed=6)
    c2 = c1 + 1.0
    with torch.no_grad():
        lp1 = flow.log_prob(x, c1)
        lp2 = flow.log_prob(x, c2)
        z, _ = flow(x, c1)
        back = flow.inverse(z, c1)
        wrong = flow.inverse(z, c2)
        samples = flow.sample(8, context=c1, generator=_gen(0))
    assert (lp1 - lp2).abs().max().item() > 1e-3
    assert (back - x).abs().max().item() < ATOL
    assert (wrong - x).abs().max().item() > 1e-3
    assert samples.shape == (8, d) and torch.isfinite(samples).all()
    with pytest.raises(ValueError, match="context"):
        flow.log_prob(x)


# --------------------------------------------------------------------------------------------
# 6. Argument validation.
# --------------------------------------------------------------------------------------------


def test_build_flow_rejects_unknown_coupling():
    with pytest.raises(ValueError, match="coupling") as info:
        build_flow(2, coupling="glow")
    for option in COUPLINGS:
        assert option in str(info.value)
    assert "glow" in str(info.value)


def test_build_flow_rejects_unknown_mixing():
    with pytest.raises(ValueError, match="mixing") as info:
        build_flow(2, mixing="shuffle")
    for option in MIXINGS:
        assert option in str(info.value)
    assert "shuffle" in str(info.value)


def test_context_affine_standardises_each_class_at_initialisation():
    """One-hot classes with their own means and spreads come out zero-mean, unit-scale."""
    from skflow.flows import ContextAffine

    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (3000,), generator=generator)
    context = torch.nn.functional.one_hot(labels, 3).double()
    means = torch.tensor([[-5.0, 0.0], [0.0, 3.0], [4.0, -2.0]], dtype=torch.float64)
    stds = torch.tensor([[0.2, 1.0], [2.0, 0.5], [1.0, 3.0]], dtype=torch.float64)
    x = means[labels] + stds[labels] * torch.randn(3000, 2, generator=generator).double()
    layer = ContextAffine(2, 3).double()
    layer.train()
    z, _ = layer(x, context)
    for k in range(3):
        rows = z[labels == k]
        assert torch.all(rows.mean(0).abs() < 0.1), rows.mean(0)
        assert torch.all((rows.std(0) - 1).abs() < 0.1), rows.std(0)
    _check_bijection(layer.eval(), x[:N_ROWS], context[:N_ROWS])


def test_sinh_arcsinh_tail_parameter_has_a_gradient_at_its_start():
    """The layer is built as the identity (log delta = 0, at its bound delta <= 1). Its tail
    parameter must get a gradient there on every torch version: with a clamp at the bound,
    torch 2.14 gave 0 and neither the initialisation nor training ever moved it."""
    layer = SinhArcsinh(2).double().eval()  # eval: no data-dependent initialisation
    heavy = torch.sinh(1.5 * _randn(4000, 2, seed=0))  # tails far heavier than Gaussian
    z, logdet = layer(heavy)
    nll = -(Flow.base_log_prob(z) + logdet).mean()
    nll.backward()
    # Heavy tails want delta < 1, i.e. log delta to go down: a positive gradient.
    assert torch.all(layer.log_delta.grad > 0.1)


def test_sinh_arcsinh_is_even_in_its_tail_parameter():
    """delta = exp(-|log_delta|): a parameter pushed past the bound comes back (no flat region
    where a clamp would stall it), and the bound delta <= 1 holds everywhere."""
    layer = SinhArcsinh(3).double()
    raw = torch.tensor([-0.7, 0.0, 0.7], dtype=DTYPE)
    delta = layer._delta(raw)
    assert torch.all(delta <= 1.0)
    assert delta[0].item() == pytest.approx(delta[2].item())
    assert delta[1].item() == 1.0
