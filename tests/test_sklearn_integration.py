"""FlowDensity inside scikit-learn: pipelines, model selection, cloning and persistence."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from skflow import FlowDensity, FlowOutlierDetector, FlowSampler


def test_pipeline_with_scaler(blobs_2d, tiny_params):
    """A scaler in front changes only the units: the pipeline scores in the scaled units, which
    is the flow fitted on raw X plus the scaler's log-Jacobian, sum(log scale_)."""
    X = blobs_2d * [3.0, 0.5] + [10.0, -4.0]
    pipe = make_pipeline(StandardScaler(), FlowDensity(random_state=0, **tiny_params)).fit(X)
    raw = FlowDensity(random_state=0, **tiny_params).fit(X)
    scores = pipe.score_samples(X)
    expected = raw.score_samples(X) + np.log(pipe[0].scale_).sum()
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-4)
    assert pipe.score(X) == pytest.approx(scores.mean())


def test_gaussianizing_transform_feeds_the_next_step(blobs_2d, tiny_params):
    pipe = Pipeline(
        [("flow", FlowDensity(random_state=0, **tiny_params)), ("scale", StandardScaler())]
    )
    out = pipe.fit_transform(blobs_2d)
    assert out.shape == blobs_2d.shape and np.all(np.isfinite(out))


def test_grid_search_picks_by_held_out_likelihood(blobs_2d):
    search = GridSearchCV(
        FlowDensity(hidden_layer_sizes=(16,), max_iter=30, batch_size=64, random_state=0),
        {"n_transforms": [1, 3], "coupling": ["additive", "spline"]},
        cv=3,
    ).fit(blobs_2d)
    means = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(means))
    assert search.best_score_ == pytest.approx(means.max())
    # A volume-preserving single layer cannot beat splines on bimodal data.
    assert search.best_params_["coupling"] == "spline"


def test_cross_val_score(blobs_2d, tiny_params):
    """Each fold's score is the held-out mean log-likelihood of a fit on the other folds."""
    est = FlowDensity(random_state=0, **tiny_params)
    folds = KFold(3)
    scores = cross_val_score(est, blobs_2d, cv=folds)
    expected = [
        clone(est).fit(blobs_2d[train]).score_samples(blobs_2d[test]).mean()
        for train, test in folds.split(blobs_2d)
    ]
    np.testing.assert_allclose(scores, expected, rtol=1e-12)


def test_clone_keeps_params_and_drops_state(blobs_2d, tiny_params):
    est = FlowDensity(random_state=3, coupling="affine", **tiny_params).fit(blobs_2d)
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    assert not hasattr(copy, "flow_")


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_persistence_round_trip(dump, blobs_2d, tiny_params, tmp_path):
    est = FlowDensity(random_state=0, **tiny_params).fit(blobs_2d)
    path = tmp_path / "model.bin"
    if dump == "pickle":
        path.write_bytes(pickle.dumps(est))
        loaded = pickle.loads(path.read_bytes())
    else:
        joblib.dump(est, path)
        loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.score_samples(blobs_2d), est.score_samples(blobs_2d))
    np.testing.assert_array_equal(loaded.sample(5, random_state=1), est.sample(5, random_state=1))
    assert loaded.n_iter_ == est.n_iter_


def _torch_objects(value) -> list:
    """Every torch object inside ``value`` (dicts, lists, tuples, dataclasses, objects)."""
    if isinstance(value, torch.Tensor | torch.nn.Module | torch.device | torch.Generator):
        return [value]
    if isinstance(value, dict):
        return [found for item in value.values() for found in _torch_objects(item)]
    if isinstance(value, list | tuple):
        return [found for item in value for found in _torch_objects(item)]
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return _torch_objects(vars(value))
    return []


@pytest.mark.parametrize("warm_start", [False, True])
def test_pickled_state_holds_no_torch_object(blobs_2d, tiny_params, warm_start):
    """What is pickled is numpy and plain Python: it never refers to a GPU (a model trained on
    one loads on a CPU-only machine) and skops can save it."""
    est = FlowDensity(random_state=0, warm_start=warm_start, **tiny_params).fit(blobs_2d)
    state = est.__getstate__()
    assert _torch_objects(state) == []
    assert all(isinstance(w, np.ndarray) for w in state["flow_"]["weights"].values())
    if torch.cuda.is_available():
        gpu = FlowDensity(device="cuda", random_state=0, **tiny_params).fit(blobs_2d)
        assert _torch_objects(gpu.__getstate__()) == []
        assert next(gpu.flow_.parameters()).device.type == "cuda"  # the original stays put


SKOPS_TRUSTED = {
    "skflow._preprocessing.Preprocessor",
    "skflow._engine.training.TrainingHistory",
    "skflow._engine.training.TrainingState",  # only with warm_start=True
    "skflow._targets.TargetEncoding",  # FlowSampler and FlowOverSampler only
}


@pytest.mark.parametrize("estimator", [FlowDensity, FlowSampler, FlowOutlierDetector])
def test_skops_round_trip_scores_identical(estimator, tiny_params, tmp_path):
    """skops.io saves and loads every estimator; loading asks to trust only skflow's own
    classes (listed in the user guide), and scores are identical to the bit."""
    sio = pytest.importorskip("skops.io")
    X = np.random.default_rng(0).normal(size=(300, 3))
    y = np.repeat([0, 1], 150)
    est = estimator(random_state=0, warm_start=True, **tiny_params)
    fit_args = (X, y) if estimator is FlowSampler else (X,)
    est.fit(*fit_args)
    path = tmp_path / "model.skops"
    sio.dump(est, path)
    untrusted = set(sio.get_untrusted_types(file=path))
    assert untrusted - SKOPS_TRUSTED == {f"{estimator.__module__}.{estimator.__name__}"}
    loaded = sio.load(path, trusted=sorted(untrusted))
    np.testing.assert_array_equal(loaded.score_samples(X), est.score_samples(X))
    # A warm start continues from the loaded optimisation state exactly as from the original.
    loaded.fit(*fit_args)
    est.fit(*fit_args)
    np.testing.assert_array_equal(loaded.score_samples(X), est.score_samples(X))


def test_pickling_leaves_the_fitted_estimator_alone(blobs_2d, tiny_params):
    """``__getstate__`` edits a copy: on Python >= 3.11 the inherited one returns the live
    ``__dict__``, and swapping in the CPU copy there moved a GPU model off its GPU."""
    est = FlowDensity(random_state=0, **tiny_params).fit(blobs_2d)
    flow = est.flow_
    state = est.__getstate__()
    state["flow_"] = None
    assert est.flow_ is flow


def test_pandas_in_and_out(blobs_2d, tiny_params):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(blobs_2d, columns=["height", "weight"])
    est = FlowDensity(random_state=0, **tiny_params).set_output(transform="pandas").fit(frame)
    assert list(est.feature_names_in_) == ["height", "weight"]
    Z = est.transform(frame)
    assert isinstance(Z, pd.DataFrame)
    assert list(Z.columns) == ["flowdensity0", "flowdensity1"]
    assert list(est.get_feature_names_out()) == ["flowdensity0", "flowdensity1"]
    np.testing.assert_allclose(est.inverse_transform(Z), blobs_2d, atol=1e-4)
