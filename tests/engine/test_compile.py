"""``compile=True``: the training loss through torch.compile.

Each new architecture costs torch.compile 10-30 s on the CI machine, so these tests use
few, tiny flows. Every test resets dynamo first: its caches are per process, and a test
must not pass on graphs (or fail on a recompilation limit) left by another.
"""

from __future__ import annotations

import os
import pickle
import shutil
import warnings

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

import skflow._engine.compiled_loss as compiled_loss
import skflow._engine.training as training
import skflow.flows.dropout as dropout
from skflow import FlowDensity, FlowSampler
from skflow.flows import BitDropout

TINY = dict(
    n_transforms=2,
    hidden_layer_sizes=(16,),
    n_bins=4,
    batch_size=128,
    max_iter=2,
    early_stopping=False,
    dropout=0.2,
    device="cpu",
    random_state=0,
)


# torch builds without custom operators that take tags run the dropout mask outside the
# compiled graph (see ``skflow.flows.dropout``): the loss is then several graphs.
MASK_IN_GRAPH = dropout.MASK_IN_GRAPH

# Inductor's CPU backend builds C++; without a compiler only the fallback can be tested.
needs_compiler = pytest.mark.skipif(
    not any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++")),
    reason="torch.compile's CPU backend needs a C++ compiler, and none is on PATH",
)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def _fit_quietly(estimator, *args):
    with warnings.catch_warnings():
        # Two epochs do not converge; that is not what these tests are about.
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*max_iter.*")
        return estimator.fit(*args)


def _data(seed=0, n=600):
    # 600 rows in batches of 128: four compiled batches and an eager one of 88 rows per epoch.
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.4]])
    y = (X[:, 0] > 0.5).astype(int)
    return X, y


@needs_compiler
@pytest.mark.parametrize("estimator_class", [FlowDensity, FlowSampler])
def test_compiled_fit_matches_eager_and_runs_as_one_graph(estimator_class):
    X, y = _data()
    args = (X,) if estimator_class is FlowDensity else (X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no silent fallback to eager
        compiled = _fit_quietly(estimator_class(compile=True, **TINY), *args)
    # One graph for the whole loss: a graph break (a tensor read as a Python bool, an
    # unsupported operation) would split it into pieces and lose most of the gain.
    if MASK_IN_GRAPH:
        assert counters["stats"]["unique_graphs"] == 1
        assert dict(counters["graph_break"]) == {}
    eager = _fit_quietly(estimator_class(compile=False, **TINY), *args)
    # Same batches, same dropout masks: the fits differ by float rounding only.
    np.testing.assert_allclose(compiled.loss_curve_, eager.loss_curve_, rtol=1e-4)
    scored = [part[:50] for part in args]
    np.testing.assert_allclose(
        compiled.score_samples(*scored), eager.score_samples(*scored), rtol=1e-3, atol=1e-3
    )
    # The compiled function is not part of the fitted estimator: it pickles like any other.
    restored = pickle.loads(pickle.dumps(compiled))
    np.testing.assert_array_equal(restored.score_samples(*scored), compiled.score_samples(*scored))


@needs_compiler
def test_fits_reuse_the_graph_of_their_architecture_and_compile_new_ones():
    X, _ = _data()
    _fit_quietly(FlowDensity(compile=True, **TINY), X)
    _fit_quietly(FlowDensity(compile=True, **{**TINY, "random_state": 1}), X[::-1].copy())
    graphs_of_one_architecture = counters["stats"]["unique_graphs"]
    # Two fits of one architecture share its graph. (Where the dropout mask runs outside the
    # graph, torch < 2.8, the loss is split at every mask and the pieces are not reused.)
    if MASK_IN_GRAPH:
        assert graphs_of_one_architecture == 1
    # torch's own limit of graphs per compiled function (8) would leave later candidates of
    # a grid search uncompiled; skflow raises it while its loss runs.
    with torch._dynamo.config.patch(compiled_loss._limit_setting(), 1):
        _fit_quietly(FlowDensity(compile=True, **{**TINY, "hidden_layer_sizes": (8,)}), X)
    assert counters["stats"]["unique_graphs"] > graphs_of_one_architecture
    if MASK_IN_GRAPH:
        assert counters["stats"]["unique_graphs"] == 2


def test_failed_compilation_warns_and_trains_uncompiled(monkeypatch):
    def broken(loss):
        def compiled(*args):
            raise torch._dynamo.exc.TorchDynamoException("no C++ compiler found")

        return compiled

    monkeypatch.setattr(compiled_loss, "_compiled", broken)
    X, _ = _data()
    with pytest.warns(RuntimeWarning, match="torch.compile failed.*no C\\+\\+ compiler"):
        fallback = _fit_quietly(FlowDensity(compile=True, **TINY), X)
    eager = _fit_quietly(FlowDensity(compile=False, **TINY), X)
    np.testing.assert_array_equal(fallback.loss_curve_, eager.loss_curve_)


class _BackwardCompilerBug(torch.autograd.Function):
    """The identity, whose backward fails the way torch 2.2's lazily compiled backward did."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise AssertionError("tmp4")  # inductor's C++ code generator, in torch 2.2


def test_compiler_failure_in_the_backward_pass_falls_back_to_eager(monkeypatch):
    def broken(loss):
        def compiled(*args):
            return _BackwardCompilerBug.apply(loss(*args))

        return compiled

    monkeypatch.setattr(compiled_loss, "_compiled", broken)
    X, _ = _data()
    deterministic = {**TINY, "dropout": 0.0, "input_dropout": 0.0}
    with pytest.warns(RuntimeWarning, match="torch.compile failed.*AssertionError: tmp4"):
        fallback = _fit_quietly(FlowDensity(compile=True, **deterministic), X)
    eager = _fit_quietly(FlowDensity(compile=False, **deterministic), X)
    # The failed step is redone eagerly from zeroed gradients: the fit is the eager one.
    np.testing.assert_array_equal(fallback.loss_curve_, eager.loss_curve_)


def test_model_errors_are_not_mistaken_for_compilation_failures(monkeypatch):
    def model_error(flow, batch):
        raise ValueError("a problem in the model")

    # The error is the model's, in eager and compiled runs alike: it must propagate as it is,
    # without a warning about compilation.
    monkeypatch.setattr(training, "mean_nll", model_error)
    monkeypatch.setattr(compiled_loss, "_compiled", lambda loss: loss)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(ValueError, match="a problem in the model"):
            _fit_quietly(FlowDensity(compile=True, **TINY), _data()[0])


@needs_compiler
def test_bit_dropout_under_compile_keeps_one_mask_per_layer_and_in_backward():
    torch.manual_seed(0)
    first, second = BitDropout(0.25).train(), BitDropout(0.25).train()
    weights = torch.randn(2, 50_000)

    @torch.compile
    def loss(x):
        out = torch.stack([first(x), second(x)])
        return (out * weights).sum(), out

    x = torch.ones(50_000, requires_grad=True)
    value, out = loss(x)
    value.backward()
    masks = out.detach()
    # Keep rate and scale as in eager mode (50,000 draws: standard error 2e-3).
    assert float((masks == 0).double().mean()) == pytest.approx(0.25, abs=1e-2)
    np.testing.assert_allclose(masks[masks != 0], first.scale)
    # Each layer draws its own mask (the compiler must not merge the two calls) ...
    assert float((masks[0] != masks[1]).double().mean()) > 0.3
    # ... and the backward pass uses the forward's masks, not fresh draws.
    torch.testing.assert_close(x.grad, (weights * masks).sum(dim=0))
