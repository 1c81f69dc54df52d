"""Mixing layers: Permutation and LULinear, their initialisations."""

from __future__ import annotations

import pytest
import torch

from skflow.flows import (
    LULinear,
    Permutation,
)

from .helpers import (
    DIMS,
    DTYPE,
    N_ROWS,
    check_bijection,
    perturb,
    randn,
    sample_points,
    seeded_generator,
)


@pytest.mark.parametrize("d", DIMS)
def test_permutation(d):
    layer = Permutation(d, generator=seeded_generator(d)).double()
    x = sample_points(d, seed=d)
    z, logdet = check_bijection(layer, x)
    assert torch.equal(logdet, torch.zeros(N_ROWS, dtype=DTYPE))
    assert torch.equal(torch.sort(z, dim=1).values, torch.sort(x, dim=1).values)
    assert torch.equal(z, x[:, layer.perm])


@pytest.mark.parametrize("d", DIMS)
def test_lulinear(d):
    layer = LULinear(d, generator=seeded_generator(d)).double()
    # Starts as a rotation: orthogonal weight, log|det| = 0 (factors are stored in float32).
    w = layer.weight().detach()
    assert (w @ w.T - torch.eye(d, dtype=DTYPE)).abs().max().item() < 1e-5
    assert abs(layer.log_diag.sum().item()) < 1e-5
    perturb(layer, 0.2, seed=100 + d)
    x = sample_points(d, seed=d)
    z, logdet = check_bijection(layer, x)
    w = layer.weight().detach()
    assert torch.allclose(z, x @ w.T, atol=1e-12)
    assert abs(logdet[0].item() - torch.linalg.slogdet(w)[1].item()) < 1e-10
    # Non-trivial after the perturbation: log|det| moved away from 0.
    assert abs(logdet[0].item()) > 1e-3


def _correlated_rows(d: int, n: int, seed: int) -> torch.Tensor:
    """Rows with distinct principal variances 3, 2, 1, ... along a random set of axes."""
    axes, _ = torch.linalg.qr(randn(d, d, seed=seed))
    scales = torch.arange(d, 0, -1, dtype=DTYPE).sqrt()
    return (randn(n, d, seed=seed + 1) * scales) @ axes.T, axes


@pytest.mark.parametrize("init", ["rotation", "pca", "whitening"])
def test_lulinear_initialisations_whiten_the_batch(init):
    d = 5
    x, _ = _correlated_rows(d, 20000, seed=7)
    layer = LULinear(d, generator=seeded_generator(d), init=init).double().train()
    z, logdet = layer(x)
    cov = torch.cov(z.T)
    # Whitening up to the covariance shrinkage (d / (d + n) = 2.5e-4) and float32 factors.
    assert (cov - torch.eye(d, dtype=DTYPE)).abs().max().item() < 2e-3
    assert abs(logdet[0].item() - torch.linalg.slogdet(layer.weight().double())[1].item()) < 1e-5


def test_lulinear_pca_init_interleaves_the_leading_components():
    d = 6
    x, axes = _correlated_rows(d, 50000, seed=3)
    layer = LULinear(d, generator=seeded_generator(d), init="pca").double().train()
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
    white = randn(50000, d, seed=11)
    layer = LULinear(d, generator=seeded_generator(d), init="whitening").double().train()
    layer(white)
    # The random rotation it was built as is dropped: close to the identity now.
    assert (layer.weight().double() - torch.eye(d, dtype=DTYPE)).abs().max().item() < 0.03


def test_lulinear_rejects_an_unknown_init():
    with pytest.raises(ValueError, match="init must be one of"):
        LULinear(3, init="svd")
