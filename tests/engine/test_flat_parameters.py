"""FlatParameters: gradients land in the flat buffer, chores match torch's, release restores."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from skflow._engine.flat_parameters import FlatParameters
from skflow.flows import build_flow


def _flow() -> torch.nn.Module:
    torch.manual_seed(0)
    flow = build_flow(3, coupling="spline", n_transforms=2, hidden_layer_sizes=(8,))
    flow.initialize(torch.randn(64, 3))
    # Non-zero output layers, so that every parameter gets a gradient.
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return flow


def _loss(flow: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return -flow.log_prob(x).mean()


def test_backward_accumulates_into_the_flat_gradient():
    x = torch.randn(32, 3)
    reference = _flow()
    _loss(reference, x).backward()
    expected = torch.cat([p.grad.flatten() for p in reference.parameters()])

    flow = _flow()
    flat = FlatParameters(flow)
    for _ in range(2):  # zeroing in between: the views must survive it
        flat.zero_grad()
        _loss(flow, x).backward()
        torch.testing.assert_close(flat.grad, expected)
    storage = flat.grad.untyped_storage().data_ptr()
    assert all(p.grad.untyped_storage().data_ptr() == storage for p in flow.parameters())


def test_clipping_and_an_optimiser_step_match_torch_on_separate_parameters():
    # In float64: the two clip norms differ in their last bits (one norm over the buffer
    # against a norm of per-parameter norms), and Adam magnifies that for the weights whose
    # gradients are almost zero; float32 left a few of them 1e-4 apart after three steps.
    x = torch.randn(32, 3, dtype=torch.float64)
    reference, flow = _flow().double(), _flow().double()
    flat = FlatParameters(flow)
    ref_opt = torch.optim.AdamW(reference.parameters(), lr=1e-2, weight_decay=1e-3)
    opt = torch.optim.AdamW([flat.parameter], lr=1e-2, weight_decay=1e-3)
    for _ in range(3):
        ref_opt.zero_grad()
        _loss(reference, x).backward()
        ref_norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.5)
        ref_opt.step()
        flat.zero_grad()
        _loss(flow, x).backward()
        norm = flat.clip_grad_norm_(0.5)
        opt.step()
        torch.testing.assert_close(norm, ref_norm)
    for p, q in zip(flow.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_state_round_trip_and_finiteness():
    flow = _flow()
    flat = FlatParameters(flow)
    saved = flat.state()
    first = next(flow.parameters())
    with torch.no_grad():
        first.fill_(float("nan"))
    assert not flat.all_finite()
    flat.load_state(saved)
    assert flat.all_finite()
    torch.testing.assert_close(torch.cat([p.flatten() for p in flow.parameters()]), saved)


def test_release_gives_each_parameter_its_own_storage():
    flow = _flow()
    before = copy.deepcopy(flow.state_dict())
    flat = FlatParameters(flow)
    flat.release()
    for p in flow.parameters():
        assert p.grad is None
        assert p.untyped_storage().nbytes() == p.numel() * p.element_size()
    for name, value in flow.state_dict().items():
        torch.testing.assert_close(value, before[name])
    clone = pickle.loads(pickle.dumps(flow))
    x = torch.randn(16, 3)
    torch.testing.assert_close(clone.log_prob(x), flow.log_prob(x))


def test_mixed_dtypes_are_refused():
    module = torch.nn.Linear(2, 2)
    module.bias.data = module.bias.data.double()
    with pytest.raises(ValueError, match="one dtype and one device"):
        FlatParameters(module)
