"""Bad input is refused at the boundary with a message that names the problem."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from skflow import FlowDensity


@pytest.fixture
def fitted(blobs_2d, tiny_params):
    return FlowDensity(random_state=0, **tiny_params).fit(blobs_2d)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values(bad, blobs_2d, fitted, tiny_params):
    X = blobs_2d.copy()
    X[3, 1] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        FlowDensity(**tiny_params).fit(X)
    with pytest.raises(ValueError, match="NaN|infinity"):
        fitted.score_samples(X)


def test_sparse_input(blobs_2d, fitted, tiny_params):
    with pytest.raises(TypeError, match="[Ss]parse"):
        FlowDensity(**tiny_params).fit(sp.csr_matrix(blobs_2d))
    with pytest.raises(TypeError, match="[Ss]parse"):
        fitted.transform(sp.csr_matrix(blobs_2d))


def test_too_few_rows(tiny_params):
    with pytest.raises(ValueError, match="minimum of 2"):
        FlowDensity(**tiny_params).fit(np.array([[1.0, 2.0]]))


def test_wrong_width_at_predict_time(fitted):
    with pytest.raises(ValueError, match="3 features"):
        fitted.score_samples(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="3 features"):
        fitted.inverse_transform(np.zeros((4, 3)))


def test_non_numeric_data(tiny_params):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]})
    with pytest.raises(ValueError, match=r"numeric X \(non-numeric column\(s\): \['b'\]\)"):
        FlowDensity(**tiny_params).fit(frame)
    # Mixed frames fail inside pandas / numpy with messages that name no column, and a
    # datetime column with a TypeError; all get the same message, naming the culprits.
    mixed = pd.DataFrame(
        {
            "a": [1.0, 2.0, 3.0, 4.0],
            "n": pd.array([1, 2, 3, 4], dtype="Int64"),
            "c": pd.Categorical(["u", "v", "u", "v"]),
            "t": pd.date_range("2020-01-01", periods=4),
        }
    )
    with pytest.raises(ValueError, match=r"non-numeric column\(s\): \['c', 't'\]"):
        FlowDensity(**tiny_params).fit(mixed)
    with pytest.raises(ValueError, match=r"non-numeric column\(s\): \['t'\]"):
        FlowDensity(**tiny_params).fit(mixed[["a", "t"]])


def test_constant_column_names_it_and_the_fix(blobs_2d, tiny_params):
    X = np.c_[blobs_2d, np.full(len(blobs_2d), 3.0)]
    with pytest.raises(ValueError, match=r"constant.*\[2\].*VarianceThreshold"):
        FlowDensity(**tiny_params).fit(X)


def test_fewer_training_rows_than_features_is_refused(tiny_params):
    # 10 rows in 10-D used to fit silently to log-densities near -1e10 and an inverse that
    # no longer inverted the transform.
    X = np.random.default_rng(0).normal(size=(10, 10))
    with pytest.raises(
        ValueError, match=r"more training rows than features: got 9 row.*10 feature"
    ):
        FlowDensity(**tiny_params).fit(X)
    X = np.random.default_rng(0).normal(size=(55, 50))
    with pytest.raises(ValueError, match="holding out 6 for validation"):
        FlowDensity(**tiny_params).fit(X)
    # Without the validation split the same 55 rows are enough, and the map stays invertible.
    est = FlowDensity(early_stopping=False, random_state=0, **tiny_params).fit(X)
    assert np.all(np.isfinite(est.score_samples(X)))
    np.testing.assert_allclose(est.inverse_transform(est.transform(X)), X, atol=1e-3)


def test_column_constant_on_the_weighted_rows_is_refused(blobs_2d, tiny_params):
    X = np.c_[blobs_2d, np.random.default_rng(0).normal(size=len(blobs_2d))]
    half = len(X) // 2
    X[:half, 2] = 5.0
    weight = np.r_[np.ones(half), np.zeros(len(X) - half)]
    with pytest.raises(ValueError, match=r"constant.*\[2\].*non-zero weight"):
        FlowDensity(**tiny_params).fit(X, sample_weight=weight)


@pytest.mark.parametrize("c", [1e-13, 1e-200, 1e160, 1e300])
def test_tiny_but_varying_columns_are_not_constant(blobs_2d, tiny_params, c):
    """Constancy is judged relative to each column's magnitude, and the standardisation's
    squares are taken on rescaled columns (at 1e160 they once overflowed to a scale of inf,
    at 1e-200 underflowed to 0), so any scale can be fitted."""
    est = FlowDensity(random_state=0, **tiny_params).fit(c * blobs_2d)
    base = FlowDensity(random_state=0, **tiny_params).fit(blobs_2d)
    np.testing.assert_allclose(
        est.score_samples(c * blobs_2d),
        base.score_samples(blobs_2d) - blobs_2d.shape[1] * np.log(c),
        rtol=1e-6,
    )
    np.testing.assert_allclose(est.sample(50, random_state=0) / c, base.sample(50, random_state=0))


def test_equal_sample_weights_fit_the_unweighted_model(blobs_2d, tiny_params):
    base = FlowDensity(random_state=0, **tiny_params).fit(blobs_2d).score_samples(blobs_2d)
    for value in (1.0, 3.0):
        weight = np.full(len(blobs_2d), value)
        est = FlowDensity(random_state=0, **tiny_params).fit(blobs_2d, sample_weight=weight)
        np.testing.assert_array_equal(est.score_samples(blobs_2d), base)


def test_negative_sample_weight(blobs_2d, tiny_params):
    weight = np.ones(len(blobs_2d))
    weight[0] = -1.0
    with pytest.raises(ValueError, match="[Nn]egative"):
        FlowDensity(**tiny_params).fit(blobs_2d, sample_weight=weight)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("coupling", "cubic"),
        ("n_transforms", 0),
        ("mixing", "shuffle"),
        ("batch_size", 0),
        ("validation_fraction", 1.0),
        ("learning_rate_init", 0.0),
        ("hidden_layer_sizes", (8, 0)),
        ("hidden_layer_sizes", [True]),
        # bool is an int to Python: True is a mistake, not 1.
        ("n_transforms", True),
        ("max_iter", False),
        # No resolution left in the bins, or in float32 over such an interval.
        ("n_bins", 1000),
        ("tail_bound", 1e15),
        ("n_jobs", 0),
    ],
)
def test_bad_parameters(param, value, blobs_2d):
    with pytest.raises(ValueError, match=param):
        FlowDensity(**{param: value}).fit(blobs_2d)


def test_sample_needs_positive_count(fitted):
    for bad in (0, True, 2.0):
        with pytest.raises(ValueError, match="n_samples"):
            fitted.sample(bad)


def test_unfitted_estimator(blobs_2d):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        FlowDensity().score_samples(blobs_2d)
    with pytest.raises(NotFittedError):
        FlowDensity().sample(3)
