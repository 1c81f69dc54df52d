"""The fused CPU spline kernels (numba): same numbers as the torch code, used where they should be.

``test_splines`` runs every mathematical check on both paths; this file checks that the two
agree on the same inputs, that the kernels' own exp and log are accurate, that the dispatcher
picks the kernels exactly for float32/64 CPU tensors outside ``torch.compile``, and that an
estimator fits to the same model either way.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from skflow import FlowDensity
from skflow.flows import spline_kernels
from skflow.flows.splines import (
    affine_rational_quadratic_spline,
    n_spline_params,
    rational_quadratic_spline_params_first,
)

pytestmark = pytest.mark.skipif(
    not spline_kernels.AVAILABLE, reason="numba is not installed, so there are no fused kernels"
)

BOUND = 4.0
N_BINS = 8


def _case(n: int, affine: bool, dtype: torch.dtype, seed: int = 0):
    """Points inside, outside and exactly on the interval's edges, and varied parameters."""
    gen = torch.Generator().manual_seed(seed)
    x = 3.0 * torch.randn(n, generator=gen, dtype=dtype)
    x[:4] = torch.tensor([-BOUND, BOUND, 1e6, -1e6], dtype=dtype)
    n_params = n_spline_params(N_BINS) + (2 if affine else 0)
    params = 2.0 * torch.randn(n_params, n, generator=gen, dtype=dtype)
    return x, params


def _run(x, params, affine: bool, mode: str):
    """Outputs, log-derivatives and, when training, the gradients of a random linear loss.

    ``mode``: "train" (forward with gradients, kept values, then the backward pass), "eval"
    (forward without gradients) or "inverse".
    """
    if mode != "train":
        with torch.no_grad():
            if mode == "inverse":
                return rational_quadratic_spline_params_first(x, params, BOUND, inverse=True)
            if affine:
                return affine_rational_quadratic_spline(x, params, BOUND, scale_limit=3.0)
            return rational_quadratic_spline_params_first(x, params, BOUND)
    x = x.clone().requires_grad_()
    params = params.clone().requires_grad_()
    if affine:
        out, logdet = affine_rational_quadratic_spline(x, params, BOUND, scale_limit=3.0)
    else:
        out, logdet = rational_quadratic_spline_params_first(x, params, BOUND)
    gen = torch.Generator().manual_seed(1)
    weights = torch.randn(2, *x.shape, generator=gen, dtype=x.dtype)
    # The tails are the identity: give them no weight, so that 1e6 * weight does not swamp
    # the tolerance of the float32 comparison.
    inside = (out.detach().abs() < 1e5).to(x.dtype)
    loss = (out * weights[0] * inside).sum() + (logdet * weights[1]).sum()
    loss.backward()
    return out.detach(), logdet.detach(), x.grad, params.grad


@pytest.mark.parametrize(
    ("affine", "mode"),
    [(False, "train"), (True, "train"), (False, "eval"), (True, "eval"), (False, "inverse")],
)
def test_fused_kernels_agree_with_the_torch_code(monkeypatch, affine, mode):
    """Float64: the same algebra to rounding. Float32: at least as accurate as torch's own code.

    The kernels compute in float64 whatever the storage type, so in float32 they are nearer
    the float64 result than the torch code is (the gradients of steep bins are ill conditioned
    in float32 on either path, which is why the float32 check is relative to torch's error).
    The 1,000 points span several of the block loops' blocks, the last one partial.
    """
    x, params = _case(1000, affine, torch.float64)
    fused64 = _run(x, params, affine, mode)
    fused32 = _run(x.float(), params.float(), affine, mode)
    monkeypatch.setattr(spline_kernels, "ENABLED", False)
    torch64 = _run(x, params, affine, mode)
    torch32 = _run(x.float(), params.float(), affine, mode)
    for got64, got32, expected64, expected32 in zip(
        fused64, fused32, torch64, torch32, strict=True
    ):
        assert got64.dtype == torch.float64 and got32.dtype == torch.float32
        assert torch.isfinite(got64).all() and torch.isfinite(got32).all()
        torch.testing.assert_close(got64, expected64, rtol=1e-10, atol=1e-10)
        error_fused = (got32.double() - expected64).abs().max()
        error_torch = (expected32.double() - expected64).abs().max()
        assert error_fused <= 1.5 * error_torch + 1e-6


def test_nan_stays_nan(monkeypatch):
    """A NaN point or parameter gives NaN, never a finite value, on every path."""
    x, params = _case(300, affine=True, dtype=torch.float64)
    x[10] = math.nan
    params[5, 20] = math.nan  # a width parameter of point 20
    params[0, 30] = math.nan  # the log-scale of point 30
    for mode in ("train", "eval"):
        out, logdet = _run(x, params, True, mode)[:2]
        for i in (10, 20, 30):
            assert math.isnan(out[i]) or math.isnan(logdet[i]), (mode, i)
        assert torch.isfinite(out[40:]).all()
    out, logdet = _run(x, params[2:], False, "inverse")
    assert math.isnan(out[10]) and math.isnan(out[20])


def _special_and_random_values(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    specials = [0.0, -0.0, -1.0, 1.0, 2.0, math.sqrt(2.0), np.nextafter(math.sqrt(2.0), 2.0),
                5e-320, 1e-300, 1e300, math.inf, -math.inf, math.nan]  # fmt: skip
    return np.concatenate([
        np.array(specials),
        rng.uniform(-750.0, 750.0, 5000),  # past both ends of the clamp
        rng.uniform(-1.0, 1.0, 5000),
        np.exp(rng.uniform(-700.0, 700.0, 5000)),
        1.0 + rng.uniform(-1e-9, 1e-9, 1000),  # near log's zero
    ])  # fmt: skip


@pytest.mark.parametrize("name, reference", [("exp", np.exp), ("log", np.log)])
def test_block_exp_and_log_match_numpy_to_a_few_ulps(name, reference):
    """The kernels' own exp and log: a few units in the last place from NumPy's, and the same
    inf, NaN and -inf where NumPy gives them (exp clamps its argument to [-700, 700] first)."""
    spline_kernels._load()
    values = _special_and_random_values()
    out = np.empty_like(values)
    block = getattr(spline_kernels, f"_{name}_block")
    block(values, out, np.empty(len(values), np.int64), len(values))
    with np.errstate(all="ignore"):
        expected = reference(np.clip(values, -700.0, 700.0) if name == "exp" else values)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(out[~finite], expected[~finite])
    ulps = np.abs(out[finite] - expected[finite]) / np.spacing(np.abs(expected[finite]))
    # Near log(1) = 0 the absolute error is what matters: a few ulps of 1.
    absolute = np.abs(out[finite] - expected[finite]) <= 4 * np.spacing(1.0)
    assert np.all((ulps <= 4) | absolute), float(ulps.max())


def _count_kernel_calls(monkeypatch) -> dict[str, int]:
    calls = {"forward": 0, "backward": 0, "inverse": 0}
    for name in calls:
        original = getattr(spline_kernels, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(spline_kernels, name, spy)
    return calls


def test_kernels_run_for_every_cpu_call_of_a_float_dtype(monkeypatch):
    calls = _count_kernel_calls(monkeypatch)
    # Training slabs of every size (65,536 points: a batch of 512 rows and 128 changed features).
    for n in (5, 65_536):
        x, params = _case(n, affine=True, dtype=torch.float32)
        x.requires_grad_()
        out, logdet = affine_rational_quadratic_spline(x, params, BOUND, scale_limit=3.0)
        (out.sum() + logdet.sum()).backward()
        assert calls == {"forward": 1, "backward": 1, "inverse": 0}
        with torch.no_grad():
            affine_rational_quadratic_spline(x, params, BOUND, scale_limit=3.0)
            rational_quadratic_spline_params_first(x, params[2:], BOUND, inverse=True)
        assert calls == {"forward": 2, "backward": 1, "inverse": 1}
        calls.update(forward=0, backward=0, inverse=0)
    # An inverse that must be differentiated runs as torch code.
    x, params = _case(10, affine=False, dtype=torch.float64)
    rational_quadratic_spline_params_first(x.requires_grad_(), params, BOUND, inverse=True)
    assert calls["inverse"] == 0
    # Half-precision and mixed-dtype inputs are not the kernels' business either.
    x, params = _case(10, affine=False, dtype=torch.float16)
    assert not spline_kernels.applicable(x, params)
    assert not spline_kernels.applicable(x.double(), params.float())
    assert spline_kernels.applicable(x.double(), params.double())


def test_torch_compile_traces_the_torch_code(monkeypatch):
    calls = _count_kernel_calls(monkeypatch)
    x, params = _case(64, affine=True, dtype=torch.float32)

    def spline(x, params):
        return affine_rational_quadratic_spline(x, params, BOUND, scale_limit=3.0)

    compiled = torch.compile(spline, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x, params), spline(x, params), rtol=1e-5, atol=1e-5)
    assert calls["forward"] == 1  # the eager call; the traced one never reached the kernels


def test_estimator_fits_the_same_model_on_either_path(monkeypatch):
    """A d = 2 fit's every spline call goes through the kernels; the model matches torch's."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(800, 2))
    X[:, 1] += X[:, 0] ** 2
    params = {"max_iter": 3, "n_transforms": 2, "hidden_layer_sizes": (16,), "random_state": 0}
    calls = _count_kernel_calls(monkeypatch)
    fused = FlowDensity(**params).fit(X)
    assert calls["forward"] > 0 and calls["backward"] > 0
    monkeypatch.setattr(spline_kernels, "ENABLED", False)
    reference = FlowDensity(**params).fit(X)
    # The paths round float32 differently, so three epochs of Adam drift apart a little.
    np.testing.assert_allclose(fused.loss_curve_, reference.loss_curve_, atol=1e-3)
    np.testing.assert_allclose(fused.score_samples(X), reference.score_samples(X), atol=1e-2)


def test_a_broken_numba_install_warns_and_falls_back_to_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # makes ``import numba`` raise ImportError
    monkeypatch.setattr(spline_kernels, "_load", spline_kernels._load_once.__wrapped__)
    x, params = _case(32, affine=False, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="numba is installed but failed to import"):
        assert not spline_kernels.applicable(x, params)


_THREADED_FIRST_FITS = """
import numpy as np
from joblib import Parallel, delayed, parallel_backend
from skflow import FlowDensity
X = np.random.default_rng(0).normal(size=(300, 3))
def fit(seed):
    est = FlowDensity(n_transforms=2, hidden_layer_sizes=(8,), max_iter=1, random_state=seed)
    return est.fit(X).score(X)
with parallel_backend("threading", n_jobs=4):
    print(Parallel()(delayed(fit)(seed) for seed in range(4)))
"""


@pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="needs numba")
def test_first_fits_in_threads_load_the_kernels_once():
    """Fits starting together in threads of a fresh process once both ran the loader, and
    the second jitted the first's compiled functions (a TypeError in one of the fits)."""
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _THREADED_FIRST_FITS],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "TypeError" not in result.stderr
