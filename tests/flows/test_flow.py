"""Whole flows: bijective, identity at the start, normalised, sampling, context, arguments."""

from __future__ import annotations

import math

import pytest
import torch

from skflow.flows import (
    COUPLINGS,
    MIXINGS,
    AffineMap,
    Coupling,
    Flow,
    build_flow,
)

from .helpers import (
    ATOL,
    CONTEXT,
    DIMS,
    DTYPE,
    HIDDEN,
    N_ROWS,
    check_bijection,
    perturb,
    randn,
    seeded_generator,
)


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
        generator=seeded_generator(seed),
    ).double()
    data = 2.0 * randn(64, d, seed=seed) + 1.0
    flow.initialize(data)
    perturb(flow, 0.1, seed=seed + 1)
    flow.eval()
    x = torch.cat([data[:3], torch.full((1, d), 9.0, dtype=DTYPE)])
    z, logdet = check_bijection(flow, x)
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
    perturb(flow, 0.2, seed=d)
    x = randn(16, d, seed=d)
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
        generator=seeded_generator(seed),
    ).double()
    data = randn(32, d, seed=seed)
    context = randn(32, CONTEXT, seed=seed + 1)
    flow.initialize(data, context)
    perturb(flow, 0.1, seed=seed + 2)
    flow.eval()
    check_bijection(flow, data[:N_ROWS], context[:N_ROWS])


@pytest.mark.parametrize("coupling", COUPLINGS)
def test_fresh_flow_without_actnorm_and_mixing_is_identity(coupling):
    flow = build_flow(
        3, coupling, n_transforms=4, hidden_layer_sizes=HIDDEN, mixing="none", actnorm=False
    ).double()
    flow.eval()  # before any data-dependent initialisation
    x = 2.0 * randn(10, 3, seed=0)
    z, logdet = flow(x)
    assert (z - x).abs().max().item() < 1e-12
    assert logdet.abs().max().item() < 1e-12
    base = -0.5 * (x**2).sum(1) - 1.5 * math.log(2.0 * math.pi)
    assert torch.allclose(flow.log_prob(x), base, atol=1e-12)


def test_deep_affine_stack_on_large_inputs_stays_finite_in_float32():
    d, n_layers, limit = 4, 20, 5.0
    layers = [Coupling(d, AffineMap(limit), HIDDEN, i % 2, 0) for i in range(n_layers)]
    flow = Flow(layers, d)  # float32
    perturb(flow, 0.5, seed=3)
    raw_log_scales: list[float] = []

    def record(module, inputs, output):
        raw_log_scales.append(output.view(output.shape[0], -1, 2)[..., 0].abs().max().item())

    hooks = [layer.conditioner.register_forward_hook(record) for layer in layers]
    x = 1e3 * torch.randn(16, d, generator=seeded_generator(4))
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
        generator=seeded_generator(seed),
    ).double()
    data = randn(128, d, seed=seed) * 0.8 + 0.3
    context = randn(128, context_features, seed=seed + 1) if context_features else None
    flow.initialize(data, context)
    perturb(flow, std, seed=seed + 2)
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
        context = 1.5 * randn(1, CONTEXT, seed=seed)
        assert abs(_trapezoid_1d(flow, context) - 1.0) < 1e-3


@pytest.mark.parametrize("d", (1, 3))
@pytest.mark.parametrize("coupling", COUPLINGS)
def test_sample_shape_finite_reproducible(coupling, d):
    flow = _small_flow(d, coupling, seed=41 + d)
    with torch.no_grad():
        a = flow.sample(50, generator=seeded_generator(123))
        b = flow.sample(50, generator=seeded_generator(123))
        c = flow.sample(50, generator=seeded_generator(124))
        # A sample is the inverse image of standard-normal draws from the same generator.
        z, _ = flow(a)
    assert a.shape == (50, d) and a.dtype == DTYPE
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert (a - c).abs().max().item() > 1e-3
    expected_z = torch.randn(50, d, generator=seeded_generator(123), dtype=DTYPE)
    assert (z - expected_z).abs().max().item() < 1e-6


@pytest.mark.parametrize("d", (1, 2))
@pytest.mark.parametrize("coupling", COUPLINGS)
def test_context_changes_log_prob_and_flow_is_invertible_given_context(coupling, d):
    flow = _small_flow(d, coupling, seed=51 + d, context_features=CONTEXT)
    x = randn(8, d, seed=5)
    c1 = randn(8, CONTEXT, seed=6)
    c2 = c1 + 1.0
    with torch.no_grad():
        lp1 = flow.log_prob(x, c1)
        lp2 = flow.log_prob(x, c2)
        z, _ = flow(x, c1)
        back = flow.inverse(z, c1)
        wrong = flow.inverse(z, c2)
        samples = flow.sample(8, context=c1, generator=seeded_generator(0))
    assert (lp1 - lp2).abs().max().item() > 1e-3
    assert (back - x).abs().max().item() < ATOL
    assert (wrong - x).abs().max().item() > 1e-3
    assert samples.shape == (8, d) and torch.isfinite(samples).all()
    with pytest.raises(ValueError, match="context"):
        flow.log_prob(x)


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
