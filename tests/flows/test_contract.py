"""The layer contract of ``skflow.flows.base``, checked on every layer a built flow can hold.

Every registered element map and mixing layer, with and without a context: each layer of the
flow is a ``Transform``, its ``forward`` gives a log-determinant per row equal to that of its
autograd Jacobian, its ``inverse`` undoes ``forward``, and it states its working memory.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from skflow.flows import ELEMENT_MAPS, MIXING_LAYERS, Transform, build_flow

D, CONTEXT, N_ROWS = 3, 2, 5


def _built_flow(coupling: str, mixing: str, context_features: int):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        flow = build_flow(D, coupling, n_transforms=2, hidden_layer_sizes=(8,), n_bins=4,
                          tail_bound=2.0, mixing=mixing, context_features=context_features,
                          generator=torch.Generator().manual_seed(0)).double()
        data = torch.randn(64, D, dtype=torch.float64) * 2.0
        context = None
        if context_features:
            context = torch.randn(64, context_features, dtype=torch.float64)
        flow.initialize(data, context)
        with torch.no_grad():  # every coupling starts as the identity: make them non-trivial
            for param in flow.parameters():
                param.add_(0.1 * torch.randn_like(param))
    return flow.eval()


@pytest.mark.parametrize("context_features", [0, CONTEXT])
@pytest.mark.parametrize("mixing", sorted(MIXING_LAYERS))
@pytest.mark.parametrize("coupling", sorted(ELEMENT_MAPS))
def test_every_layer_keeps_the_contract(coupling, mixing, context_features):
    flow = _built_flow(coupling, mixing, context_features)
    generator = torch.Generator().manual_seed(1)
    x = 1.5 * torch.randn(N_ROWS, D, generator=generator, dtype=torch.float64)
    context = (torch.randn(N_ROWS, context_features, generator=generator, dtype=torch.float64)
               if context_features else None)
    for layer in flow.transforms:
        assert isinstance(layer, Transform), type(layer).__name__
        floats = layer.working_floats_per_row()
        assert isinstance(floats, int) and floats >= 0
        z, logdet = layer(x, context)
        assert z.shape == x.shape and logdet.shape == (N_ROWS,)
        torch.testing.assert_close(layer.inverse(z, context), x, atol=1e-9, rtol=0)
        for i in range(N_ROWS):
            row_context = None if context is None else context[i : i + 1]

            def row_map(row, row_context=row_context, layer=layer):
                return layer(row.unsqueeze(0), row_context)[0].squeeze(0)

            _, expected = torch.linalg.slogdet(jacobian(row_map, x[i]))
            assert abs(expected.item() - logdet[i].item()) < 1e-8, type(layer).__name__
        x = z


def test_registries_name_what_the_estimators_accept():
    """The estimators' ``coupling`` and ``mixing`` choices are the registries' keys."""
    from skflow import FlowDensity

    constraints = FlowDensity._parameter_constraints
    assert constraints["coupling"][0].options == set(ELEMENT_MAPS)
    assert constraints["mixing"][0].options == set(MIXING_LAYERS)


def test_a_layer_outside_the_contract_is_refused_when_the_flow_is_built():
    from skflow.flows import ActNorm, Flow

    class Shift(torch.nn.Module):
        def forward(self, x, context=None):
            return x + 1.0, x.new_zeros(x.shape[0])

        def inverse(self, z, context=None):
            return z - 1.0

    with pytest.raises(TypeError, match="Transform subclasses.*Shift"):
        Flow([Shift(), ActNorm(2)], 2)
