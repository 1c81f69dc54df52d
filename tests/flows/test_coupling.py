"""Coupling layers and their element maps: bijective, identity at the start, bounded scales."""

from __future__ import annotations

import math

import pytest
import torch

from skflow.flows import (
    COUPLINGS,
    AffineMap,
    Conditioner,
    Coupling,
)
from skflow.flows.base import soft_clamp

from .helpers import (
    CONTEXT,
    DIMS,
    DTYPE,
    HIDDEN,
    N_ROWS,
    check_bijection,
    element_map,
    perturb,
    randn,
    sample_points,
)


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("parity", [0, 1])
@pytest.mark.parametrize("with_context", [False, True])
@pytest.mark.parametrize("kind", ["additive", "affine", "spline"])
def test_coupling_bijection_and_logdet(kind, with_context, parity, d):
    seed = 1000 * COUPLINGS.index(kind) + 100 * d + 10 * parity + int(with_context)
    n_context = CONTEXT if with_context else 0
    torch.manual_seed(seed)
    layer = Coupling(d, element_map(kind), HIDDEN, parity, n_context).double()
    perturb(layer, 0.2, seed=seed)
    x = sample_points(d, seed=seed + 1)
    context = randn(N_ROWS, CONTEXT, seed=seed + 2) if with_context else None
    z, logdet = check_bijection(layer, x, context)

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
@pytest.mark.parametrize("with_context", [False, True])
@pytest.mark.parametrize("kind", ["additive", "affine", "spline"])
def test_fresh_coupling_is_identity(kind, with_context, d):
    n_context = CONTEXT if with_context else 0
    x = 3.0 * randn(16, d, seed=d)  # also reaches the spline tails (bound 2)
    context = randn(16, CONTEXT, seed=d + 1) if with_context else None
    for parity in (0, 1):
        layer = Coupling(d, element_map(kind), HIDDEN, parity, n_context).double()
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


@pytest.mark.parametrize(("n_in", "n_context"), [(3, 0), (3, 2), (0, 2), (0, 0)])
def test_conditioner_transposed_output_is_the_transpose(n_in, n_context):
    """The parameters-first output the couplings use is the plain output, transposed."""
    net = Conditioner(n_in, 7, HIDDEN, n_context).double()
    perturb(net, std=0.5, seed=3)
    inputs = randn(5, n_in, seed=4)
    context = randn(5, n_context, seed=5) if n_context else None
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
    x = randn(8, d, seed=0)
    z, logdet = layer(x)
    assert torch.isfinite(z).all() and torch.isfinite(logdet).all()
    # Every log-scale saturates at +-limit, never beyond it.
    assert logdet.abs().max().item() <= limit * layer.n_changed + 1e-9
    assert torch.allclose(logdet, torch.full_like(logdet, sign * limit * layer.n_changed))
    expected = x[:, 2:] * math.exp(sign * limit) + sign * 1e4
    assert torch.allclose(z[:, 2:], expected, rtol=1e-12)
    assert torch.allclose(layer.inverse(z), x, atol=1e-9)


def test_affine_map_represents_narrow_scale_exactly():
    limit = 5.0
    target = -4.0  # scale exp(-4), inside the limit
    amap = AffineMap(limit)
    raw = limit * math.atanh(target / limit)
    x = randn(6, 3, seed=1)
    params = torch.stack([torch.full_like(x, raw), torch.full_like(x, 0.25)])  # parameters first
    z, log_scale = amap.forward(x, params)
    assert torch.allclose(log_scale, torch.full_like(x, target), atol=1e-12)
    assert torch.allclose(z, x * math.exp(target) + 0.25, atol=1e-12)
    assert torch.allclose(amap.inverse(z, params), x, atol=1e-12)

    # The same through a coupling layer: set the conditioner's constant output.
    layer = Coupling(2, AffineMap(limit), HIDDEN, 0, 0).double()
    with torch.no_grad():
        layer.conditioner.net[-1].bias.copy_(torch.tensor([raw, 0.0], dtype=DTYPE))
    x2 = randn(5, 2, seed=2)
    z2, logdet = layer(x2)
    assert torch.allclose(z2[:, 1], x2[:, 1] * math.exp(target), atol=1e-12)
    assert torch.allclose(logdet, torch.full_like(logdet, target), atol=1e-12)
