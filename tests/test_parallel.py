"""Parallel hyper-parameter search: joblib's process workers and a dask.distributed cluster.

A grid search runs several fits at once; each fit must then use one torch thread, or the
workers' thread pools oversubscribe the cores. The thread count is observed where it matters,
inside the training call in the worker, and carried back to the parent through the search's
own channel: a scorer that reads what the fit recorded.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from joblib import parallel_config
from sklearn.model_selection import GridSearchCV

from skflow import FlowDensity

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

TINY = {"n_transforms": 1, "hidden_layer_sizes": (8,), "max_iter": 2, "n_iter_no_change": 2}
GRID = {"n_bins": [4, 6]}


class ThreadRecordingFlowDensity(FlowDensity):
    """FlowDensity that records the torch thread count and process id while it trains."""

    def _train(self, *args, **kwargs):
        # Called inside the estimator's thread limit, around the optimisation loop.
        self.train_threads_ = torch.get_num_threads()
        self.train_pid_ = os.getpid()
        return super()._train(*args, **kwargs)


def _threads_in_fit(estimator, X, y=None) -> float:
    return float(estimator.train_threads_)


def _pid_of_fit(estimator, X, y=None) -> float:
    return float(estimator.train_pid_)


SCORING = {
    "loglik": lambda est, X, y=None: est.score(X),
    "threads": _threads_in_fit,
    "pid": _pid_of_fit,
}


@pytest.fixture
def data() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(200, 2))


def _search(data: np.ndarray) -> GridSearchCV:
    search = GridSearchCV(
        ThreadRecordingFlowDensity(random_state=0, **TINY),
        GRID,
        cv=2,
        n_jobs=2,
        scoring=SCORING,
        refit="loglik",
        error_score="raise",
    )
    return search.fit(data)


def _test_scores(search: GridSearchCV, name: str) -> np.ndarray:
    keys = [k for k in search.cv_results_ if k.startswith("split") and k.endswith(f"_test_{name}")]
    return np.array([search.cv_results_[k] for k in keys]).ravel()


def test_grid_search_process_workers_use_one_torch_thread(data):
    # Let the workers start with two threads each, so that one thread inside the fit is
    # skflow's doing, not just loky's default limit for nested parallelism.
    with parallel_config(backend="loky", inner_max_num_threads=2):
        search = _search(data)
    assert np.all(np.isfinite(_test_scores(search, "loglik")))
    assert set(_test_scores(search, "threads")) == {1.0}
    pids = set(_test_scores(search, "pid"))
    assert os.getpid() not in pids, "the fits ran in the parent, not in worker processes"
    assert search.best_estimator_.train_threads_ == 1


@pytest.fixture(scope="module")
def dask_search() -> GridSearchCV:
    """The grid search run once on a two-worker dask.distributed cluster on loopback."""
    distributed = pytest.importorskip(
        "distributed", reason="dask.distributed is not installed (pip install skflow[dask])"
    )
    data = np.random.default_rng(0).normal(size=(200, 2))
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,  # worker threads in this process: starts in well under a second
            protocol="tcp",
            host="127.0.0.1",  # loopback only: nothing is exposed to the network
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        with parallel_config(backend="dask"):
            search = _search(data)
        assert len(client.scheduler_info()["workers"]) == 2
    return search


def test_grid_search_on_dask_local_cluster(dask_search):
    assert np.all(np.isfinite(_test_scores(dask_search, "loglik")))
    assert dask_search.best_params_["n_bins"] in GRID["n_bins"]
    assert np.isfinite(dask_search.best_score_)


def test_dask_workers_use_one_torch_thread(dask_search):
    assert set(_test_scores(dask_search, "threads")) == {1.0}


def test_fits_in_threads_equal_the_serial_fit():
    """Fits in threads (joblib's threading backend, dask with processes=False) once reseeded
    torch's global generator under each other: equal seeds gave different models. Dropout
    masks now come from each fit's own generator, and the initial weights are drawn one fit
    at a time."""
    from joblib import Parallel, delayed

    X = np.random.default_rng(0).normal(size=(400, 3))
    params = dict(TINY, max_iter=4, dropout=0.3, input_dropout=0.2, random_state=0)
    serial = FlowDensity(**params).fit(X).score_samples(X)
    before = torch.random.get_rng_state()

    def fit(_):
        return FlowDensity(**params).fit(X).score_samples(X)

    with parallel_config(backend="threading", n_jobs=4):
        threaded = Parallel()(delayed(fit)(i) for i in range(8))
    for scores in threaded:
        np.testing.assert_array_equal(scores, serial)
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_scoring_a_dask_array_block_by_block_on_a_local_cluster():
    """A table larger than one machine's memory is scored where its blocks live: map_blocks
    runs score_samples on each block of a dask.array (the user guide shows it)."""
    distributed = pytest.importorskip(
        "distributed", reason="dask.distributed is not installed (pip install skflow[dask])"
    )
    da = pytest.importorskip("dask.array")
    X = np.random.default_rng(0).normal(size=(3000, 3))
    est = FlowDensity(n_transforms=2, hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    est.fit(X[:500])
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                 protocol="tcp", host="127.0.0.1", dashboard_address=None)
        as cluster,
        distributed.Client(cluster),
    ):
        blocks = da.from_array(X, chunks=(700, 3))
        scores = blocks.map_blocks(est.score_samples, drop_axis=1, dtype=np.float64).compute()
    assert scores.shape == (3000,)
    # Rows are scored independently; only float32 rounding differs with the block size.
    np.testing.assert_allclose(scores, est.score_samples(X), rtol=1e-5, atol=1e-5)
