"""Evaluation runs in chunks sized by scikit-learn's ``working_memory``; results do not change."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn
import torch

from skflow import FlowDensity, FlowSampler
from skflow._engine.chunking import (
    FAST_CHUNK_BYTES_CPU,
    MAX_CHUNK_ROWS,
    chunk_rows,
)
from skflow.flows import build_flow

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# 0.05 MiB: a chunk of a few rows for the flows below, so 600 rows take many chunks.
SMALL_MEMORY = 0.05


def test_chunk_rows_follows_working_memory():
    flow = build_flow(6, n_transforms=2, hidden_layer_sizes=(32,), n_bins=8)
    row_bytes = flow.working_bytes_per_row()
    assert row_bytes > 0
    with sklearn.config_context(working_memory=1):
        assert chunk_rows(flow) == 2**20 // row_bytes
    with sklearn.config_context(working_memory=SMALL_MEMORY):
        assert 1 <= chunk_rows(flow) < 100
    with sklearn.config_context(working_memory=1e-9):
        assert chunk_rows(flow) == 1
    # More memory than the fast chunk size needs does not make chunks bigger (or slower).
    with sklearn.config_context(working_memory=10**6):
        assert chunk_rows(flow) == min(MAX_CHUNK_ROWS, FAST_CHUNK_BYTES_CPU // row_bytes)
    tiny_rows = build_flow(1, n_transforms=1, hidden_layer_sizes=(2,), coupling="additive")
    with sklearn.config_context(working_memory=10**6):
        assert chunk_rows(tiny_rows) == MAX_CHUNK_ROWS
    # float64 rows cost twice as much.
    assert flow.working_bytes_per_row(torch.float64) == 2 * row_bytes


def test_cpu_chunks_are_sized_for_the_cache_and_others_larger():
    """The chunk follows the device the flow's parameters are on: a CPU flow gets chunks
    sized for its cache, a flow elsewhere (here the meta device, standing in for a GPU) the
    whole working memory, as many rows as it allows."""
    flow = build_flow(16, n_transforms=4, hidden_layer_sizes=(64, 64), n_bins=8)
    row_bytes = flow.working_bytes_per_row()
    with sklearn.config_context(working_memory=1024):
        on_cpu = chunk_rows(flow)
        elsewhere = chunk_rows(flow.to("meta"))
    assert on_cpu == FAST_CHUNK_BYTES_CPU // row_bytes
    assert elsewhere == min(MAX_CHUNK_ROWS, 1024 * 2**20 // row_bytes) > on_cpu


def test_a_flow_without_parameters_is_chunked_as_on_the_cpu():
    """A flow of fixed permutations has no parameter to tell its device: it runs on the CPU,
    within the working memory."""
    from skflow.flows import Flow
    from skflow.flows.mixing import Permutation

    flow = Flow([Permutation(4)], 4)
    row_bytes = flow.working_bytes_per_row()
    with sklearn.config_context(working_memory=10**6):
        assert chunk_rows(flow) == min(MAX_CHUNK_ROWS, FAST_CHUNK_BYTES_CPU // row_bytes)
    with sklearn.config_context(working_memory=SMALL_MEMORY):
        assert chunk_rows(flow) == int(SMALL_MEMORY * 2**20) // row_bytes


def test_working_bytes_grow_with_the_architecture():
    small = build_flow(10, n_transforms=2, hidden_layer_sizes=(32,), n_bins=4)
    wide = build_flow(10, n_transforms=2, hidden_layer_sizes=(256,), n_bins=4)
    many_bins = build_flow(10, n_transforms=2, hidden_layer_sizes=(32,), n_bins=16)
    assert wide.working_bytes_per_row() > small.working_bytes_per_row()
    assert many_bins.working_bytes_per_row() > small.working_bytes_per_row()


def test_density_results_do_not_depend_on_the_chunk(blobs_2d, tiny_params):
    est = FlowDensity(**tiny_params, random_state=0).fit(blobs_2d)
    Z = est.transform(blobs_2d)
    reference = (
        est.score_samples(blobs_2d),
        Z,
        est.inverse_transform(Z),
        est.sample(300, random_state=1),
    )
    with sklearn.config_context(working_memory=SMALL_MEMORY):
        assert chunk_rows(est.flow_) < 100
        chunked = (
            est.score_samples(blobs_2d),
            est.transform(blobs_2d),
            est.inverse_transform(Z),
            est.sample(300, random_state=1),
        )
    for expected, got in zip(reference, chunked, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_far_rows_in_a_later_chunk_stay_finite(blobs_2d, tiny_params):
    est = FlowDensity(**tiny_params, random_state=0).fit(blobs_2d)
    X = blobs_2d.copy()
    X[-3] = [1e6, -1e6]  # lands in the last chunk, whose float32 pass overflows
    with sklearn.config_context(working_memory=SMALL_MEMORY):
        scores = est.score_samples(X)
    assert np.isfinite(scores).all()
    assert scores[-3] == scores.min()
    np.testing.assert_allclose(scores[:-3], est.score_samples(blobs_2d[:-3]), rtol=1e-5)


def test_training_does_not_depend_on_the_validation_chunk(blobs_2d, tiny_params):
    default = FlowDensity(**tiny_params, random_state=0).fit(blobs_2d)
    with sklearn.config_context(working_memory=SMALL_MEMORY):
        chunked = FlowDensity(**tiny_params, random_state=0).fit(blobs_2d)
    np.testing.assert_allclose(
        chunked.validation_scores_, default.validation_scores_, rtol=1e-5, atol=1e-5
    )


def test_conditional_results_do_not_depend_on_the_chunk(blobs_2d, tiny_params):
    y = np.repeat([0, 1], 300)
    est = FlowSampler(**tiny_params, random_state=0).fit(blobs_2d, y)
    reference = est.score_samples(blobs_2d, y), est.predict_proba(blobs_2d)
    with sklearn.config_context(working_memory=SMALL_MEMORY):
        chunked = est.score_samples(blobs_2d, y), est.predict_proba(blobs_2d)
    for expected, got in zip(reference, chunked, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("error::UserWarning")
def test_read_only_inputs_are_scored_without_warnings(blobs_2d, tiny_params):
    # joblib hands parallel workers read-only memmaps; torch warns on non-writable arrays.
    est = FlowDensity(**tiny_params, random_state=0).fit(blobs_2d)
    expected = est.score_samples(blobs_2d)
    frozen = blobs_2d.copy()
    frozen.flags.writeable = False
    np.testing.assert_array_equal(est.score_samples(frozen), expected)


def test_mixing_matrices_are_built_once_per_call_not_once_per_chunk(monkeypatch):
    """Wide binary data: every row is scored at 32 cell points, so a chunk holds few rows. The
    LU layers' d x d matrices must be built once per scoring call, not for every chunk (at
    1,555 columns that made scoring take about 2 s per row), and afresh in the next call, so a
    changed weight is always seen."""
    from skflow.flows.mixing import LULinear

    rng = np.random.default_rng(0)
    X = (rng.random((400, 40)) < 0.3).astype(float)
    est = FlowDensity(n_transforms=2, hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X)
    n_lu = sum(isinstance(m, LULinear) for m in est.flow_.modules())
    built = []
    real = LULinear._weight
    monkeypatch.setattr(LULinear, "_weight", lambda self: built.append(1) or real(self))
    with sklearn.config_context(working_memory=1):  # many small chunks
        first = est.score_samples(X[:200])
        assert len(built) == n_lu
        with torch.no_grad():
            next(m for m in est.flow_.modules() if isinstance(m, LULinear)).log_diag.add_(0.1)
        assert not np.array_equal(est.score_samples(X[:200]), first)
        assert len(built) == 2 * n_lu
