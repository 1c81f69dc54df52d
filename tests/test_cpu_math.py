"""skflow.flows.cpu_math: NumPy kernels where no gradient is recorded, torch's otherwise."""

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
