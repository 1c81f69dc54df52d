"""BitDropout: the mask's statistics, unbiasedness, gradients and reproducibility."""

from __future__ import annotations

import pytest
import torch

from skflow.flows import BitDropout


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_drop_rate_and_scale(p):
    torch.manual_seed(0)
    layer = BitDropout(p).train()
    x = torch.ones(400, 1000, dtype=torch.float64)
    y = layer(x)
    dropped = float((y == 0).double().mean())
    # 400,000 Bernoulli draws: the standard error of the rate is below 8e-4.
    assert dropped == pytest.approx(p, abs=4e-3)
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, layer.scale))
    assert layer.scale == pytest.approx(1 / (1 - p), rel=1e-4)
    # Unbiased: the mean output matches the input up to the sampling error.
    assert float(y.mean()) == pytest.approx(1.0, abs=1e-2)


def test_every_bit_of_the_draw_is_used_uniformly():
    # A biased 16-bit word (for example a sign bit that is always zero) would show up as a
    # drop rate that differs between positions modulo 4 of the flattened tensor.
    torch.manual_seed(1)
    y = BitDropout(0.5).train()(torch.ones(200_000, 4))
    rates = (y == 0).double().mean(dim=0)
    assert torch.allclose(rates, torch.full_like(rates, 0.5), atol=5e-3)


def test_identity_in_eval_mode_and_at_zero_probability():
    x = torch.randn(64, 8)
    assert BitDropout(0.3).eval()(x) is x
    assert BitDropout(0.0).train()(x) is x


def test_gradient_is_the_scaled_mask():
    torch.manual_seed(2)
    layer = BitDropout(0.25).train()
    x = torch.randn(128, 16, requires_grad=True)
    y = layer(x)
    y.sum().backward()
    mask = (y != 0).to(x.dtype)
    assert torch.equal(x.grad, mask * layer.scale)


def test_reproducible_from_the_global_seed():
    layer = BitDropout(0.2).train()
    x = torch.randn(50, 30)
    torch.manual_seed(3)
    first = layer(x)
    torch.manual_seed(3)
    assert torch.equal(first, layer(x))
    assert not torch.equal(first, layer(x))


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_rejects_a_probability_outside_zero_one(p):
    with pytest.raises(ValueError, match="dropout probability"):
        BitDropout(p)


def test_conditioner_input_dropout_drops_features_never_the_context():
    """Input dropout zeroes (and rescales) kept features in training, leaves the context alone,
    and is the identity in evaluation mode."""
    from skflow.flows.nets import Conditioner

    torch.manual_seed(0)
    net = Conditioner(4, 3, (8,), context_features=2, input_dropout=0.5)
    seen = []
    net.net[0].register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    x = torch.randn(2000, 4)
    context = torch.randn(2000, 2)
    net.train()
    net(x, context)
    features, ctx = seen[-1][:, :4], seen[-1][:, 4:]
    assert torch.equal(ctx, context)
    dropped = features == 0
    assert 0.45 < dropped.float().mean() < 0.55
    assert torch.allclose(features[~dropped], 2.0 * x[~dropped])
    net.eval()
    net(x, context)
    assert torch.equal(seen[-1], torch.cat([x, context], dim=1))


def test_conditioner_without_features_has_no_input_dropout():
    from skflow.flows.nets import Conditioner

    assert Conditioner(0, 3, (8,), context_features=2, input_dropout=0.5).input_dropout is None
    assert Conditioner(3, 3, (8,), input_dropout=0.0).input_dropout is None
