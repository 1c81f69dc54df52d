"""skflow.flows.cpu_math: NumPy kernels on CPU tensors, torch's where NumPy cannot serve."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skflow.flows import cpu_math

FUNCTIONS = [(cpu_math.asinh, torch.asinh), (cpu_math.sinh, torch.sinh)]


def _values(dtype: torch.dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = 4.0 * torch.randn(200, 3, generator=gen, dtype=dtype)
    x[0] = torch.tensor([0.0, -1e-30, 80.0], dtype=dtype)  # zero, tiny, large (sinh near max)
    return x


@pytest.mark.parametrize("fast, reference", FUNCTIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_torch_without_gradient(fast, reference, dtype):
    x = _values(dtype)
    with torch.no_grad():
        got, want = fast(x), reference(x)
    assert got.dtype == dtype and got.shape == x.shape
    torch.testing.assert_close(got, want, rtol=4 * torch.finfo(dtype).eps, atol=0.0)


@pytest.mark.parametrize("fast, reference", FUNCTIONS)
def test_non_contiguous_input_and_inference_mode(fast, reference):
    x = _values(torch.float32).T  # a transposed view
    with torch.inference_mode():
        got = fast(x)
    assert got.shape == x.shape
    torch.testing.assert_close(got, reference(x), rtol=4 * torch.finfo(torch.float32).eps, atol=0)


@pytest.mark.parametrize("fast, reference", FUNCTIONS)
def test_gradients_flow_when_recorded(fast, reference):
    x = _values(torch.float64)[:20].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(fast(x).sum(), x)
    x_ref = x.detach().clone().requires_grad_(True)
    (grad_ref,) = torch.autograd.grad(reference(x_ref).sum(), x_ref)
    torch.testing.assert_close(grad, grad_ref)


def test_numpy_used_only_where_it_is_safe():
    x = torch.ones(3)
    assert cpu_math._numpy_eligible(x)
    assert not cpu_math._numpy_eligible(x.clone().requires_grad_(True))
    with torch.no_grad():
        assert cpu_math._numpy_eligible(x.clone().requires_grad_(True))
    assert not cpu_math._numpy_eligible(x.to(torch.bfloat16))
    assert torch.equal(cpu_math.asinh(x.to(torch.bfloat16)), torch.asinh(x.to(torch.bfloat16)))
    assert np.isclose(float(cpu_math.asinh(x)[0]), np.arcsinh(1.0))


def test_overflow_gives_inf_silently_like_torch():
    x = torch.tensor([1e4, -1e4], dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(cpu_math.sinh(x), torch.sinh(x))  # no RuntimeWarning from NumPy
    assert torch.isinf(cpu_math.sinh(x)).all()


def test_asinh_records_a_gradient_around_numpy():
    """With a gradient recorded, asinh's values are NumPy's (the same as without one, so
    training and scoring agree bit for bit) and its gradient is torch's formula."""
    x = _values(torch.float32).requires_grad_(True)
    y = cpu_math.asinh(x)
    assert type(y.grad_fn).__name__ == "_NumpyAsinhBackward"
    with torch.no_grad():
        assert torch.equal(y, cpu_math.asinh(x))
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, (x.detach().square() + 1.0).rsqrt(), rtol=0, atol=0)


def test_torch_compile_traces_torch_code(monkeypatch):
    """Under torch.compile the functions trace torch's operations (NumPy calls would break the
    graph)."""
    calls = []
    original = cpu_math._numpy

    def spy(x, numpy_fn):
        calls.append(numpy_fn)
        return original(x, numpy_fn)

    monkeypatch.setattr(cpu_math, "_numpy", spy)
    x = _values(torch.float32)
    compiled = torch.compile(lambda x: cpu_math.asinh(x) + cpu_math.sinh(x), backend="eager")
    torch.testing.assert_close(compiled(x), torch.asinh(x) + torch.sinh(x))
    assert calls == []
    cpu_math.asinh(x)  # the spy does see an eager call
    assert calls == [np.arcsinh]
