"""SinhArcsinh: bijective, data-initialised, tail parameter trainable."""

from __future__ import annotations

import pytest
import torch

from skflow.flows import (
    Flow,
    SinhArcsinh,
)

from .helpers import DIMS, DTYPE, check_bijection, perturb, randn, sample_points


@pytest.mark.parametrize("d", DIMS)
def test_sinh_arcsinh(d):
    layer = SinhArcsinh(d).double().eval()  # eval: no data-dependent initialisation
    x = torch.cat([sample_points(d, seed=d), torch.full((1, d), -50.0, dtype=DTYPE)])
    z, logdet = layer(x)  # built as the identity
    assert torch.allclose(z, x, rtol=1e-12, atol=1e-12)
    assert logdet.abs().max().item() < 1e-12
    perturb(layer, 0.3, seed=d)
    z, logdet = check_bijection(layer, x)
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
    g = randn(4000, 2, seed=0)
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


def test_sinh_arcsinh_tail_parameter_has_a_gradient_at_its_start():
    """The layer is built as the identity (log delta = 0, at its bound delta <= 1). Its tail
    parameter must get a gradient there on every torch version: with a clamp at the bound,
    torch 2.14 gave 0 and neither the initialisation nor training ever moved it."""
    layer = SinhArcsinh(2).double().eval()  # eval: no data-dependent initialisation
    heavy = torch.sinh(1.5 * randn(4000, 2, seed=0))  # tails far heavier than Gaussian
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
