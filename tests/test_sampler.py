"""FlowSampler and FlowOverSampler: conditional densities, sampling, resampling, bad input."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning

from skflow import FlowDensity, FlowOverSampler, FlowSampler

# Three 2-D Gaussian classes with different means, shapes and sizes.
MEANS = [np.array([-2.0, 0.0]), np.array([2.0, 1.0]), np.array([0.0, -2.5])]
COVS = [
    np.array([[0.5, 0.3], [0.3, 0.6]]),
    np.array([[0.3, -0.1], [-0.1, 0.8]]),
    np.array([[1.0, 0.0], [0.0, 0.2]]),
]
SIZES = [1500, 1000, 500]
# Enough flow to fit these classes well in ~10 s on two slow cores (no dropout: 3,000 rows of
# a smooth density do not over-fit in 40 epochs).
MODEST = {
    "n_transforms": 3,
    "hidden_layer_sizes": (32,),
    "max_iter": 40,
    "learning_rate_init": 3e-3,
    "batch_size": 128,
    "dropout": 0.0,
}


def _classes(sizes=SIZES, seed=0):
    rng = np.random.default_rng(seed)
    X = np.concatenate(
        [rng.multivariate_normal(m, c, size=n) for m, c, n in zip(MEANS, COVS, sizes, strict=False)]
    )
    y = np.repeat(np.arange(len(sizes)), sizes)
    return X, y


def _true_log_density(X, k):
    return multivariate_normal(MEANS[k], COVS[k]).logpdf(X)


@pytest.fixture(scope="module")
def fitted():
    """A modest (not tiny) class-conditional flow on the three Gaussian classes."""
    X, y = _classes()
    est = FlowSampler(random_state=0, **MODEST)
    return est.fit(X, y), X, y


@pytest.fixture
def small():
    X, y = _classes(sizes=[200, 120, 80])
    return X, np.array(["a", "b", "c"])[y]


def test_per_class_kl_gap_is_small(fitted):
    """KL(p_k || model_k) estimated on fresh rows of each class: a few hundredths of a nat."""
    est, _, _ = fitted
    rng = np.random.default_rng(123)
    for k in range(3):
        X_k = rng.multivariate_normal(MEANS[k], COVS[k], size=4000)
        gap = np.mean(_true_log_density(X_k, k) - est.score_samples(X_k, np.full(4000, k)))
        assert gap < 0.08, f"class {k}: KL gap {gap:.3f} nats"


def test_mixture_score_is_logsumexp_of_class_densities(fitted):
    est, X, _ = fitted
    rows = X[::50]
    per_class = np.column_stack([est.score_samples(rows, np.full(len(rows), k)) for k in range(3)])
    expected = logsumexp(per_class + np.log(est.class_prior_), axis=1)
    # Equal up to float32 rounding of differently sized batches.
    np.testing.assert_allclose(est.score_samples(rows), expected, rtol=0, atol=1e-5)
    assert est.score(rows) == pytest.approx(expected.mean())
    np.testing.assert_allclose(est.class_prior_, np.array(SIZES) / sum(SIZES))


def test_bayes_rule_classifier(fitted):
    est, X, y = fitted
    proba = est.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.exp(est.predict_log_proba(X)), proba)
    # The classes overlap little: the Bayes classifier of the true densities is ~99% right.
    assert np.mean(est.predict(X) == y) > 0.97


def test_samples_follow_their_class(fitted):
    est, _, _ = fitted
    X_new, y_new = est.sample(3000, y=2, random_state=0)
    assert X_new.shape == (3000, 2) and np.all(y_new == 2)
    np.testing.assert_allclose(X_new.mean(axis=0), MEANS[2], atol=0.12)
    # Covariance entries of the 500-row class within 0.2 (its per-class KL gap, asserted
    # above, is the sharper measure).
    np.testing.assert_allclose(np.cov(X_new.T), COVS[2], atol=0.2)
    # Labels drawn from the priors when y is None.
    _, y_drawn = est.sample(6000, random_state=1)
    np.testing.assert_allclose(np.bincount(y_drawn) / 6000, est.class_prior_, atol=0.03)
    # An array of labels: one row per entry, in order.
    labels = np.array([0, 2, 1, 1])
    X_arr, y_arr = est.sample(y=labels, random_state=0)
    assert X_arr.shape == (4, 2)
    np.testing.assert_array_equal(y_arr, labels)


def test_transform_is_invertible_given_the_class(fitted):
    est, X, y = fitted
    Z = est.transform(X, y)
    np.testing.assert_allclose(est.inverse_transform(Z, y), X, atol=1e-4)
    # Each class is Gaussianised by its own conditional map.
    for k in range(3):
        np.testing.assert_allclose(Z[y == k].mean(axis=0), 0.0, atol=0.2)
        np.testing.assert_allclose(Z[y == k].std(axis=0), 1.0, atol=0.2)


def test_string_labels_reproducibility_and_pickle(small, tiny_params):
    X, y = small
    a = FlowSampler(random_state=3, **tiny_params).fit(X, y)
    b = FlowSampler(random_state=3, **tiny_params).fit(X, y)
    np.testing.assert_array_equal(a.classes_, ["a", "b", "c"])
    np.testing.assert_array_equal(a.score_samples(X, y), b.score_samples(X, y))
    Xa, ya = a.sample(50, random_state=9)
    Xb, yb = b.sample(50, random_state=9)
    np.testing.assert_array_equal(Xa, Xb)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(Xa, a.sample(50, random_state=10)[0])
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(c.predict_proba(X), a.predict_proba(X))
    np.testing.assert_array_equal(
        c.sample(5, y="b", random_state=0)[0], a.sample(5, y="b", random_state=0)[0]
    )


def test_sample_weight_sets_priors(small, tiny_params):
    X, y = small
    weight = np.where(y == "a", 2.0, 1.0)
    est = FlowSampler(random_state=0, **tiny_params).fit(X, y, sample_weight=weight)
    np.testing.assert_allclose(est.class_prior_, np.array([400, 120, 80]) / 600)


def test_zero_weight_rows_are_left_out_with_their_conditions(small, tiny_params):
    """Zero-weight rows leave the fit together with their labels: the model is the one
    fitted on the other rows (and their labels), to the bit."""
    X, y = small
    weight = np.ones(len(y))
    weight[::3] = 0.0
    kept = weight > 0
    params = dict(random_state=0, class_weight=None, **tiny_params)
    weighted = FlowSampler(**params).fit(X, y, sample_weight=weight)
    subset = FlowSampler(**params).fit(X[kept], y[kept])
    assert weighted.n_recoveries_ == 0
    np.testing.assert_array_equal(weighted.class_prior_, subset.class_prior_)
    np.testing.assert_array_equal(
        weighted.score_samples(X[:30], y[:30]), subset.score_samples(X[:30], y[:30])
    )


def test_class_probabilities_of_rows_beyond_float64_are_refused(small, tiny_params):
    """Every class scores a row of 1e300 -inf: Bayes' rule is 0 / 0 there, so predict_proba
    says so instead of returning NaN (and predict the first class)."""
    X, y = small
    est = FlowSampler(random_state=0, **tiny_params).fit(X, y)
    rows = np.array([[0.0, 0.0], [1e300, 0.0]])
    np.testing.assert_array_equal(est.score_samples(rows)[1], -np.inf)
    with pytest.raises(ValueError, match=r"1 row\(s\) \(index \[1\]\) lie so far"):
        est.predict(rows)
    assert np.isclose(est.predict_proba(rows[:1]).sum(), 1.0)


def _training_weights(monkeypatch, est, X, y, **fit_kwargs):
    """Fit ``est`` and return the row weights its training loop was given."""
    seen = {}
    original = FlowSampler._fit_flow

    def spy(self, X, sample_weight=None, context=None):
        seen["weight"] = sample_weight
        return original(self, X, sample_weight=sample_weight, context=context)

    monkeypatch.setattr(FlowSampler, "_fit_flow", spy)
    est.fit(X, y, **fit_kwargs)
    return seen["weight"]


def test_class_weight_weights_the_likelihood_not_the_priors(small, tiny_params, monkeypatch):
    X, y = small  # classes a, b, c with 200, 120, 80 rows
    est = FlowSampler(random_state=0, class_weight="balanced", **tiny_params)
    weight = _training_weights(monkeypatch, est, X, y)
    expected = {"a": 400 / (3 * 200), "b": 400 / (3 * 120), "c": 400 / (3 * 80)}
    np.testing.assert_allclose(weight, [expected[label] for label in y])
    for label in "abc":  # every class carries the same total weight
        assert weight[y == label].sum() == pytest.approx(400 / 3)
    np.testing.assert_allclose(est.class_prior_, [0.5, 0.3, 0.2])  # priors stay unweighted

    # A dict, multiplied into sample_weight; classes it leaves out keep weight 1.
    est = FlowSampler(random_state=0, class_weight={"c": 3.0}, **tiny_params)
    rows = np.where(y == "a", 2.0, 1.0)
    weight = _training_weights(monkeypatch, est, X, y, sample_weight=rows)
    np.testing.assert_allclose(weight, rows * np.where(y == "c", 3.0, 1.0))
    np.testing.assert_allclose(est.class_prior_, np.array([400, 120, 80]) / 600)

    # None trains on sample_weight alone.
    est = FlowSampler(random_state=0, class_weight=None, **tiny_params)
    assert _training_weights(monkeypatch, est, X, y) is None

    # "auto" (the default) is "balanced" for class labels ...
    est = FlowSampler(random_state=0, **tiny_params)
    assert est.get_params()["class_weight"] == "auto"
    np.testing.assert_allclose(
        _training_weights(monkeypatch, est, X, y), [expected[label] for label in y]
    )
    # ... and sample_weight alone for continuous conditions or no y.
    t = np.linspace(-1.0, 1.0, len(X))
    assert _training_weights(monkeypatch, est, X, t) is None
    assert _training_weights(monkeypatch, est, X, None) is None


def test_class_weight_needs_class_labels(tiny_params):
    X = np.random.default_rng(0).normal(size=(60, 2))
    est = FlowSampler(class_weight="balanced", **tiny_params)
    with pytest.raises(ValueError, match="class_weight needs class labels in y; got continuous"):
        est.fit(X, X[:, 0] * 0.37)
    with pytest.raises(ValueError, match="class_weight needs class labels in y; got no y"):
        est.fit(X)


def test_continuous_conditions():
    """p(x | t) for x = (t + noise, t^2 + noise): samples track the condition."""
    rng = np.random.default_rng(0)
    t = rng.uniform(-2, 2, 2000)
    X = np.column_stack([t + 0.2 * rng.normal(size=2000), t**2 + 0.2 * rng.normal(size=2000)])
    est = FlowSampler(random_state=0, **{**MODEST, "max_iter": 30}).fit(X, t)
    assert est.target_type_ == "continuous" and not hasattr(est, "classes_")
    assert not hasattr(est, "predict_proba")
    for value in (-1.5, 0.0, 1.0):
        X_new, t_new = est.sample(2000, y=value, random_state=0)
        assert np.all(t_new == value)
        np.testing.assert_allclose(X_new.mean(axis=0), [value, value**2], atol=0.12)
    # y=None resamples the training conditions; an array gives one row per condition.
    _, t_drawn = est.sample(10, random_state=0)
    assert np.all(np.isin(t_drawn, t))
    X_arr, t_arr = est.sample(y=[0.5, -0.5, 1.5], random_state=0)
    assert X_arr.shape == (3, 2) and t_arr.tolist() == [0.5, -0.5, 1.5]
    # Two conditions per row: a flat y must be one condition (two values), not three.
    two = FlowSampler(random_state=0, **{**MODEST, "max_iter": 2}).fit(X, np.c_[t, -t])
    assert two.sample(4, y=[0.5, -0.5], random_state=0)[1].tolist() == [[0.5, -0.5]] * 4
    with pytest.raises(ValueError, match="one condition of 2 values .* got 3 values"):
        two.sample(4, y=[0.5, -0.5, 1.5])
    # The conditional density is sharper at the right condition.
    assert est.score(X[:200], t[:200]) > est.score(X[:200], -t[:200]) + 1.0
    with pytest.raises(ValueError, match="pass the y of each row"):
        est.score_samples(X)


def test_conditions_on_any_scale_give_the_same_model(tiny_params):
    """Conditions at 1e160 once got a scale of inf (at 1e-200, the floor's scale of 1), which
    encoded every condition as 0: the fit silently became p(x), not p(x | y)."""
    rng = np.random.default_rng(0)
    t = rng.uniform(-2, 2, 600)
    X = np.c_[t + 0.2 * rng.normal(size=600), rng.normal(size=600)]
    base = FlowSampler(random_state=0, **tiny_params).fit(X, t)
    for c in (1e160, 1e-200):
        est = FlowSampler(random_state=0, **tiny_params).fit(X, t * c)
        np.testing.assert_allclose(est.condition_scale_ / c, base.condition_scale_, rtol=1e-12)
        np.testing.assert_allclose(est.score_samples(X, t * c), base.score_samples(X, t))


def test_a_column_determined_by_the_conditions_is_refused(tiny_params):
    """y = df["age"] with X = df: given y that column is a point mass, and the fit once
    'diverged' with advice about the learning rate. Rescaled or combined, it is the same."""
    rng = np.random.default_rng(0)
    t = rng.uniform(20, 70, size=(300, 2))
    X = rng.normal(size=(300, 2))
    est = FlowSampler(random_state=0, **tiny_params)
    for leaked in (t[:, 0], (t[:, 0] - 45) / 14.4, 3 * t[:, 0] - 2 * t[:, 1]):
        with pytest.raises(ValueError, match=r"X column\(s\) \[2\] are affine functions of y"):
            est.fit(np.c_[X, leaked], t)
    # A nonlinear function, or the same column with a little noise, has a density given y.
    est.fit(np.c_[X, t[:, 0] ** 2, t[:, 0] + 1e-3 * rng.normal(size=300)], t)


def test_classifier_metrics_and_stratified_splits(tiny_params):
    """Tagged a classifier, FlowSampler works with scikit-learn's probability scorers (roc_auc
    once gave NaN, as for a regressor) and gets stratified folds; its own score stays the
    log-likelihood that GridSearchCV maximises."""
    from sklearn.base import is_classifier
    from sklearn.model_selection import StratifiedKFold, check_cv, cross_val_score

    X, y = _classes(sizes=[150, 50])
    est = FlowSampler(random_state=0, **tiny_params)
    assert is_classifier(est)
    assert isinstance(check_cv(5, y, classifier=is_classifier(est)), StratifiedKFold)
    auc = cross_val_score(est, X, y, cv=3, scoring="roc_auc")
    assert np.all(auc > 0.9)
    log_loss = cross_val_score(est, X, y, cv=3, scoring="neg_log_loss")
    assert np.all(np.isfinite(log_loss)) and np.all(log_loss < 0)
    fitted = est.fit(X, y)
    assert fitted.score(X, y) == pytest.approx(np.mean(fitted.score_samples(X, y)))


def test_target_rule(tiny_params):
    """1-D whole numbers are classes; floats with fractions, or any 2-D y, are conditions."""
    X, y = _classes(sizes=[100, 100, 100])
    est = FlowSampler(random_state=0, **tiny_params)
    assert est.fit(X, y.astype(float)).target_type_ == "classes"
    assert est.fit(X, y.reshape(-1, 1)).target_type_ == "continuous"
    assert est.fit(X, y + 0.5 * (y == 1)).target_type_ == "continuous"
    assert est.fit(X, np.column_stack([y, -y])).n_conditions_ == 2
    assert est.fit(X).target_type_ is None
    X_new, y_new = est.sample(3, random_state=0)
    assert X_new.shape == (3, 2) and y_new is None


def test_a_class_with_one_row_is_accepted(tiny_params):
    X, y = _classes(sizes=[200, 100, 1])
    est = FlowSampler(random_state=0, **tiny_params).fit(X, y)
    assert est.class_count_.tolist() == [200, 100, 1]
    X_new, _ = est.sample(5, y=2, random_state=0)
    assert np.all(np.isfinite(X_new))


def test_bad_targets(small, tiny_params):
    X, y = small
    est = FlowSampler(random_state=0, **tiny_params)
    with pytest.raises(ValueError, match="y has 399 entries but X has 400 rows"):
        est.fit(X, y[:-1])
    y_nan = np.r_[np.zeros(399), np.nan]
    with pytest.raises(ValueError, match=r"missing values .* row\(s\) \[399\]"):
        est.fit(X, y_nan)
    y_none = y.astype(object)
    y_none[3] = None
    with pytest.raises(ValueError, match="missing values"):
        est.fit(X, y_none)
    est.fit(X, y)
    with pytest.raises(ValueError, match="not seen in fit: 'z'"):
        est.sample(3, y="z")
    with pytest.raises(ValueError, match="not seen in fit"):
        est.score_samples(X[:2], ["a", "q"])
    with pytest.raises(ValueError, match="y has 3 entries but X has 2 rows"):
        est.transform(X[:2], ["a", "b", "c"])
    with pytest.raises(ValueError, match="pass the y of each row"):
        est.inverse_transform(X[:2])


# ---------------------------------------------------------------------------------- resampling
def _imbalanced(sizes=(300, 60, 30)):
    X, y = _classes(sizes=list(sizes))
    return X, y


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("auto", [300, 300, 300]),
        ("not majority", [300, 300, 300]),
        ("minority", [300, 60, 300]),
        ("not minority", [300, 300, 30]),
        ("all", [300, 300, 300]),
        ({1: 100, 2: 50}, [300, 100, 50]),
        (lambda y: {2: 45}, [300, 60, 45]),
    ],
)
def test_fit_resample_counts(strategy, expected, tiny_params):
    X, y = _imbalanced()
    sampler = FlowOverSampler(sampling_strategy=strategy, random_state=0, **tiny_params)
    X_res, y_res = sampler.fit_resample(X, y)
    assert np.bincount(y_res).tolist() == expected
    # Original rows first, unchanged; generated rows carry the grown classes' labels.
    np.testing.assert_array_equal(X_res[: len(X)], X)
    np.testing.assert_array_equal(y_res[: len(y)], y)
    assert np.all(np.isfinite(X_res))


def test_fit_resample_float_ratio_and_errors(tiny_params):
    X, y = _imbalanced(sizes=(300, 60))
    _, y_res = FlowOverSampler(sampling_strategy=0.5, random_state=0, **tiny_params).fit_resample(
        X, y
    )
    assert np.bincount(y_res).tolist() == [300, 150]
    with pytest.raises(ValueError, match="increase the ratio"):
        FlowOverSampler(sampling_strategy=0.1, **tiny_params).fit_resample(X, y)
    with pytest.raises(ValueError, match="only ask for at least as many rows"):
        FlowOverSampler(sampling_strategy={1: 10}, **tiny_params).fit_resample(X, y)
    with pytest.raises(ValueError, match="not present in y"):
        FlowOverSampler(sampling_strategy={7: 100}, **tiny_params).fit_resample(X, y)
    X3, y3 = _imbalanced()
    with pytest.raises(ValueError, match="only defined for 2 classes"):
        FlowOverSampler(sampling_strategy=0.5, **tiny_params).fit_resample(X3, y3)
    with pytest.raises(ValueError, match="at least 2 classes"):
        FlowOverSampler(**tiny_params).fit_resample(X, np.zeros(len(X), int))
    with pytest.raises(ValueError, match="Unknown label type"):
        FlowOverSampler(**tiny_params).fit_resample(X, np.linspace(0, 1, len(X)))


def test_flow_sampler_refuses_a_bad_strategy_before_fitting(tiny_params, monkeypatch):
    """The check once came after the whole (slow) fit."""
    X, y = _imbalanced(sizes=(300, 60))

    def no_fit(*args, **kwargs):
        raise AssertionError("fit ran before the strategy was checked")

    monkeypatch.setattr(FlowSampler, "fit", no_fit)
    with pytest.raises(ValueError, match="'majority' is not an over-sampling strategy"):
        FlowSampler(**tiny_params).fit_resample(X, y, sampling_strategy="majority")


def test_fit_resample_is_reproducible(tiny_params):
    X, y = _imbalanced(sizes=(300, 60))
    a = FlowOverSampler(random_state=0, **tiny_params).fit_resample(X, y)
    b = FlowOverSampler(random_state=0, **tiny_params).fit_resample(X, y)
    c = FlowOverSampler(random_state=1, **tiny_params).fit_resample(X, y)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    assert np.all(a[1][len(X) :] == 1) and len(a[0]) == 600


def test_flow_sampler_fit_resample_matches_the_oversampler(small, tiny_params):
    X, y = small
    # The oversampler's class_weight defaults to "balanced", FlowSampler's "auto" is the same
    # for class labels.
    sampler = FlowSampler(random_state=0, **tiny_params)
    X1, y1 = sampler.fit_resample(X, y)
    X2, y2 = FlowOverSampler(random_state=0, **tiny_params).fit_resample(X, y)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert sorted(np.unique(y1, return_counts=True)[1].tolist()) == [200, 200, 200]
    X3, _ = FlowOverSampler(random_state=0, class_weight=None, **tiny_params).fit_resample(X, y)
    assert not np.allclose(X3[len(X) :], X2[len(X) :])  # the weighting changes the fit


def test_temperature_of_conditional_draws_and_oversampling(small, tiny_params):
    X, y = small
    sampler = FlowSampler(random_state=0, **tiny_params)
    X1, y1 = sampler.fit_resample(X, y, latent_noise=None, temperature=0.5)
    X_model, y_model = sampler.sample(500, random_state=3)
    X_cool, y_cool = sampler.sample(500, random_state=3, temperature=0.5)
    np.testing.assert_array_equal(y_cool, y_model)  # the labels are drawn as before
    np.testing.assert_allclose(
        sampler.transform(X_cool, y_cool), 0.5 * sampler.transform(X_model, y_model), atol=1e-4
    )
    # The oversampler passes its temperature on, and it changes the generated rows.
    X2, y2 = FlowOverSampler(
        random_state=0, latent_noise=None, temperature=0.5, **tiny_params
    ).fit_resample(X, y)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    X3, _ = FlowOverSampler(random_state=0, latent_noise=None, **tiny_params).fit_resample(X, y)
    assert not np.allclose(X3[len(X) :], X2[len(X) :])
    # A bad temperature is refused before the fit.
    with pytest.raises(ValueError, match="temperature"):
        FlowSampler(max_iter=10_000).fit_resample(X, y, temperature=0.0)
    with pytest.raises(ValueError, match="temperature"):
        FlowOverSampler(max_iter=10_000, temperature=-1.0).fit(X, y)
    # One that overflows float64 on the way back is refused, not returned as inf (this
    # flow's inverse does overflow for latent draws near 1e300).
    X_wide = np.random.default_rng(0).normal(size=(200, 3))
    wide = FlowSampler(random_state=0, **tiny_params).fit(X_wide, np.arange(200) % 2)
    with pytest.raises(ValueError, match="overflow float64.*smaller temperature"):
        wide.sample(20, random_state=3, temperature=1e300)


def test_latent_noise_moves_real_rows_of_the_class_in_latent_space(small, tiny_params):
    X, y = small
    sampler = FlowSampler(random_state=0, **tiny_params)
    generated = {}
    for noise in (0.0, 0.25, 0.5, None):
        X_res, y_res = sampler.fit_resample(X, y, latent_noise=noise)
        np.testing.assert_array_equal(X_res[: len(X)], X)
        assert sorted(np.unique(y_res, return_counts=True)[1].tolist()) == [200, 200, 200]
        generated[noise] = X_res[len(X) :], y_res[len(X) :]
    X0, y_new = generated[0.0]
    for noise in (0.25, 0.5):  # the same seed picks the same real rows and the same noise
        np.testing.assert_array_equal(generated[noise][1], y_new)
    # No noise: every new row is a real row of its own class (up to float32 round trips).
    for label in np.unique(y_new):
        real, new = X[y == label], X0[y_new == label]
        gaps = np.abs(new[:, None, :] - real[None, :, :]).max(axis=2).min(axis=1)
        assert gaps.max() < 1e-4
    # With noise: the real row plus noise * eps in the latent space of the class, so the
    # latent codes at 0.5 are twice as far from the real rows as those at 0.25.
    Z0 = sampler.transform(X0, y_new)
    Z25 = sampler.transform(generated[0.25][0], y_new)
    Z50 = sampler.transform(generated[0.5][0], y_new)
    np.testing.assert_allclose(Z50 - Z0, 2.0 * (Z25 - Z0), atol=1e-3)
    assert np.std(Z25 - Z0) == pytest.approx(0.25, rel=0.1)
    # Draws from the model (None) are other rows altogether.
    assert np.abs(generated[None][0] - X0).max() > 1.0


def test_latent_noise_is_validated_before_the_fit(small, tiny_params):
    X, y = small
    for bad in (-0.1, np.inf, np.nan, "large"):
        with pytest.raises(ValueError, match="latent_noise"):
            FlowSampler(max_iter=10_000).fit_resample(X, y, latent_noise=bad)
        with pytest.raises(ValueError, match="latent_noise"):
            FlowOverSampler(max_iter=10_000, latent_noise=bad).fit(X, y)
    # A temperature only scales draws from the model: with latent_noise it is an error.
    with pytest.raises(ValueError, match="latent_noise=None to use a temperature"):
        FlowSampler(max_iter=10_000).fit_resample(X, y, temperature=0.5)
    with pytest.raises(ValueError, match="latent_noise=None to use a temperature"):
        FlowOverSampler(max_iter=10_000, temperature=0.5).fit_resample(X, y)
    # The oversampler passes its latent_noise on.
    X1, _ = FlowSampler(random_state=0, **tiny_params).fit_resample(X, y, latent_noise=0.5)
    X2, _ = FlowOverSampler(random_state=0, latent_noise=0.5, **tiny_params).fit_resample(X, y)
    np.testing.assert_array_equal(X1, X2)


def test_oversampler_in_imblearn_pipeline_and_cross_validate(tiny_params):
    pipeline_module = pytest.importorskip("imblearn.pipeline")
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_validate
    from sklearn.preprocessing import StandardScaler

    X, y = _imbalanced(sizes=(400, 40))
    pipe = pipeline_module.Pipeline(
        [
            ("scale", StandardScaler()),
            ("flow", FlowOverSampler(random_state=0, **tiny_params)),
            ("clf", LogisticRegression()),
        ]
    )
    scores = cross_validate(
        pipe, X, y, cv=StratifiedKFold(3, shuffle=True, random_state=0),
        scoring="balanced_accuracy",
    )  # fmt: skip
    assert scores["test_score"].mean() > 0.75
    # FlowSampler itself has transform as well, which imbalanced-learn's Pipeline refuses.
    bad = pipeline_module.Pipeline(
        [("flow", FlowSampler(**tiny_params)), ("clf", LogisticRegression())]
    )
    with pytest.raises(TypeError, match="fit_resample"):
        bad.fit(X, y)


def test_a_real_data_classifier_recognises_generated_rows(fitted):
    """A classifier trained on real rows labels generated rows of class k as k about as often
    as real held-out rows of k (the minority class included)."""
    from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis

    est, X, y = fitted
    clf = QuadraticDiscriminantAnalysis().fit(X, y)
    X_held, y_held = _classes(seed=7)
    for k in range(3):
        real = np.mean(clf.predict(X_held[y_held == k]) == k)
        generated, _ = est.sample(2000, y=k, random_state=k)
        assert np.mean(clf.predict(generated) == k) == pytest.approx(real, abs=0.03), k


def test_sample_with_empty_y_is_refused(small, tiny_params):
    X, y = small
    est = FlowSampler(random_state=0, **tiny_params).fit(X, y)
    with pytest.raises(ValueError, match="y is empty"):
        est.sample(y=[])


def test_set_output_pandas_in_a_pipeline(small, tiny_params):
    pd = pytest.importorskip("pandas")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = small
    frame = pd.DataFrame(X, columns=["u", "v"], index=np.arange(len(X)) + 100)
    pipe = make_pipeline(StandardScaler(), FlowSampler(random_state=0, **tiny_params))
    Z = pipe.set_output(transform="pandas").fit_transform(frame, y)
    assert isinstance(Z, pd.DataFrame)
    assert list(Z.columns) == ["flowsampler0", "flowsampler1"]
    assert Z.index.equals(frame.index)
    est = pipe[-1]
    np.testing.assert_allclose(est.transform(pipe[0].transform(frame), y).to_numpy(), Z.to_numpy())


def test_oversampler_passes_dataframe_column_names_to_its_sampler(small, tiny_params):
    pd = pytest.importorskip("pandas")
    X, y = small
    frame = pd.DataFrame(X, columns=["u", "v"])
    with warnings.catch_warnings():
        # Before, the inner sampler saw a bare array and warned about feature names.
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)  # tiny flows stop at max_iter
        X_res, _ = FlowOverSampler(random_state=0, **tiny_params).fit_resample(frame, y)
        FlowOverSampler(latent_noise=0.1, random_state=0, **tiny_params).fit_resample(frame, y)
    assert isinstance(X_res, pd.DataFrame) and list(X_res.columns) == ["u", "v"]


def test_oversampled_frame_keeps_every_dtype_with_valid_values(tiny_params):
    """Generated rows go back into the DataFrame's own dtypes: a category column of floats off
    a regular grid gets only its categories (a plain cast gave NaN in every new row), nullable
    Int64 and uint8 columns get in-range integers (they raised a casting error after the fit)."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    n = 240
    frame = pd.DataFrame(
        {
            "level": pd.Categorical(rng.choice([0.1, 0.25, 1.7], n)),
            "count": pd.array(rng.integers(0, 30, n), dtype="Int64"),
            "byte": rng.integers(0, 256, n).astype(np.uint8),
            "flag": rng.random(n) < 0.4,
            "value": rng.normal(size=n).astype(np.float32),
        }
    )
    y = np.r_[np.zeros(180, int), np.ones(60, int)]
    for sampler in (
        FlowOverSampler(random_state=0, **tiny_params),
        FlowOverSampler(random_state=0, latent_noise=None, **tiny_params),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            X_res, y_res = sampler.fit_resample(frame, y)
        assert np.bincount(y_res).tolist() == [180, 180]
        assert X_res.dtypes.to_dict() == frame.dtypes.to_dict()
        new = X_res.iloc[n:]
        assert len(new) == 120 and not new.isna().any().any()
        assert set(new["level"]) <= {0.1, 0.25, 1.7}
        assert new["byte"].between(frame["byte"].min(), frame["byte"].max()).all()
        assert new["count"].between(0, 29).all()
        pd.testing.assert_frame_equal(X_res.iloc[:n], frame)


def test_unrestorable_columns_are_refused_before_the_fit(tiny_params, monkeypatch):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": np.arange(40.0), "when": pd.date_range("2026-01-01", periods=40)})
    monkeypatch.setattr(FlowSampler, "fit", lambda *a, **k: pytest.fail("fit ran"))
    with pytest.raises(ValueError, match=r"'when' \(datetime64"):
        FlowOverSampler(**tiny_params).fit_resample(frame, np.arange(40) % 2)


def test_far_away_conditions_score_minus_inf_and_are_named_when_sampling(tiny_params):
    """A condition that overflows float64 gives -inf like a far-away X row (it was reported as
    an internal bug), and sampling at it names the condition, not the temperature."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(300, 3)), rng.normal(size=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = FlowSampler(random_state=0, **tiny_params).fit(X, y)
    assert est.score_samples(X[:1], y=[1e200])[0] == -np.inf
    with pytest.raises(ValueError, match="conditions lie up to .* standard deviations"):
        est.sample(2, y=1e300, random_state=0)
    with pytest.raises(ValueError, match="conditions lie up to"):
        est.inverse_transform(np.zeros((1, 3)), y=[1e300])


def test_zero_latent_noise_repeats_real_rows_exactly(tiny_params):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = np.r_[np.zeros(240, int), np.ones(60, int)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        X_res, _ = FlowOverSampler(random_state=0, latent_noise=0, **tiny_params).fit_resample(X, y)
    new = X_res[300:]
    assert len(new) == 180
    assert all((X[y == 1] == row).all(axis=1).any() for row in new)


def test_integer_arrays_get_integers_in_range(tiny_params):
    rng = np.random.default_rng(0)
    X = np.c_[rng.integers(-5, 5, 200), rng.integers(0, 300, 200)]
    y = np.r_[np.zeros(150, int), np.ones(50, int)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        X_res, _ = FlowOverSampler(random_state=0, **tiny_params).fit_resample(X, y)
    assert X_res.dtype == X.dtype
    assert (X_res.min(axis=0) >= X.min(axis=0)).all() and (X_res.max(axis=0) <= X.max(axis=0)).all()


def test_refused_warm_refit_leaves_the_inner_sampler_as_it_was(tiny_params):
    X = np.random.default_rng(0).normal(size=(200, 2))
    y = np.r_[np.zeros(150, int), np.ones(50, int)]
    sampler = FlowOverSampler(random_state=0, warm_start=True, **tiny_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sampler.fit(X, y)
    params = sampler.sampler_.get_params()
    with pytest.raises(ValueError, match="warm_start=True continues the fitted flow"):
        sampler.set_params(n_transforms=5).fit(X, y)
    assert sampler.sampler_.get_params() == params


def test_mixed_label_types_are_refused_by_name(tiny_params):
    X = np.random.default_rng(0).normal(size=(100, 2))
    y = np.array([1 if i % 3 else "a" for i in range(100)], dtype=object)
    for est in (FlowSampler(**tiny_params), FlowOverSampler(**tiny_params)):
        with pytest.raises(ValueError, match="mixes string and non-string labels"):
            est.fit(X, y)


def test_redundant_columns_leave_the_flow_and_generated_rows_keep_the_relation(tiny_params):
    """make_classification's default redundant features are exact linear combinations of the
    informative ones: FlowDensity refuses them (no density exists in all dimensions), the
    samplers model the other columns, say so, and rebuild them in every generated row."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=400, n_features=6, n_informative=3, n_redundant=2,
                               weights=[0.8], random_state=0)  # fmt: skip
    with pytest.raises(ValueError, match="exact affine functions"):
        FlowDensity(**tiny_params).fit(X)
    sampler = FlowOverSampler(random_state=0, latent_noise=None, **tiny_params)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        X_res, y_res = sampler.fit_resample(X, y)
    assert any("left out of the model" in str(w.message) for w in record)
    assert np.bincount(y_res).tolist() == [np.bincount(y).max()] * 2
    pre = sampler.sampler_.preprocessor_
    assert (~pre.keep_).sum() == 2 and len(pre.relations_) == 2
    assert X_res.shape == (2 * np.bincount(y).max(), 6)
    design = np.c_[X, np.ones(len(X))]
    for column in np.flatnonzero(~pre.keep_):
        coef = np.linalg.lstsq(np.delete(design, column, axis=1), X[:, column], rcond=None)[0]
        new = np.c_[np.delete(X_res[len(X) :], column, axis=1), np.ones(len(X_res) - len(X))]
        np.testing.assert_allclose(new @ coef, X_res[len(X) :, column], atol=1e-8)
    assert np.isfinite(sampler.sampler_.predict_proba(X)).all()
