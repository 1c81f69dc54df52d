"""ActNorm and ContextAffine: data-initialised, bijective, standardising."""

from __future__ import annotations

import pytest
import torch

from skflow.flows import (
    ActNorm,
    Flow,
)

from .helpers import (
    DIMS,
    DTYPE,
    N_ROWS,
    check_bijection,
    perturb,
    randn,
    sample_points,
    unit_variance_error,
)


@pytest.mark.parametrize("d", DIMS)
def test_actnorm_data_init_standardizes_and_is_bijective(d):
    layer = ActNorm(d).double()
    batch = 3.0 * randn(64, d, seed=d) + torch.arange(d, dtype=DTYPE) - 1.0
    # Evaluation mode never initialises: an uninitialised ActNorm is the identity there.
    layer.eval()
    z, logdet = layer(batch)
    assert torch.equal(z, batch) and torch.equal(logdet, torch.zeros_like(logdet))
    assert not bool(layer.initialized)
    layer.train()
    z, logdet = layer(batch)
    # The init batch comes out standardised (either variance convention is accepted).
    assert z.mean(dim=0).abs().max().item() < 1e-10
    assert unit_variance_error(z) < 1e-10
    # The log-det is the log of the per-feature scaling that was applied.
    scaling = (z.std(dim=0) / batch.std(dim=0)).log().sum()
    assert torch.allclose(logdet, scaling.expand_as(logdet), atol=1e-12)
    assert bool(layer.initialized)
    # A second training batch must not re-initialise.
    loc = layer.loc.detach().clone()
    layer(batch * 10.0 + 5.0)
    assert torch.equal(layer.loc.detach(), loc)

    perturb(layer, 0.1, seed=10 + d)
    layer.eval()
    check_bijection(layer, sample_points(d, seed=20 + d))


@pytest.mark.parametrize("d", DIMS)
def test_actnorm_init_through_flow_initialize(d):
    flow = Flow([ActNorm(d)], d).double().eval()
    batch = 0.5 * randn(50, d, seed=d) - 2.0
    flow.initialize(batch)
    assert not flow.training  # the mode is restored
    assert bool(flow.transforms[0].initialized)
    z, _ = flow(batch)
    assert z.mean(dim=0).abs().max().item() < 1e-10
    assert unit_variance_error(z) < 1e-10


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
    check_bijection(layer.eval(), x[:N_ROWS], context[:N_ROWS])
