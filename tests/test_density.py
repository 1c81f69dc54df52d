"""FlowDensity: the numbers that make a density estimator trustworthy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.integrate import trapezoid  # np.trapezoid needs numpy >= 2; skflow allows 1.24
from sklearn.exceptions import ConvergenceWarning

from skflow import FlowDensity
from skflow.flows import COUPLINGS, MIXINGS


def _bimodal_1d(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(-2.0, 0.5, n // 2), rng.normal(1.5, 1.0, n - n // 2)])[
        :, None
    ]


def test_density_integrates_to_one_1d():
    est = FlowDensity(n_transforms=3, hidden_layer_sizes=(32,), max_iter=40, random_state=0)
    est.fit(_bimodal_1d(2000))
    grid = np.linspace(-12.0, 12.0, 20001)[:, None]
    mass = trapezoid(np.exp(est.score_samples(grid)), grid[:, 0])
    assert mass == pytest.approx(1.0, abs=0.01)


def test_density_integrates_to_one_2d(blobs_2d):
    est = FlowDensity(n_transforms=3, hidden_layer_sizes=(32,), max_iter=30, random_state=0)
    est.fit(blobs_2d)
    axis = np.linspace(-9.0, 9.0, 361)
    xx, yy = np.meshgrid(axis, axis)
    density = np.exp(est.score_samples(np.c_[xx.ravel(), yy.ravel()])).reshape(xx.shape)
    mass = trapezoid(trapezoid(density, axis, axis=1), axis)
    assert mass == pytest.approx(1.0, abs=0.01)


def test_rescaling_shifts_log_density_by_log_jacobian(blobs_2d, tiny_params):
    """Densities are in the units of X: p_{cX}(c x) = p_X(x) / c^d."""
    d = blobs_2d.shape[1]
    base = FlowDensity(random_state=0, **tiny_params).fit(blobs_2d).score_samples(blobs_2d)
    # Scaling by 2 is exact in floating point, so the standardised data and hence the whole fit
    # are bit-identical: the shift must be exact.
    doubled = FlowDensity(random_state=0, **tiny_params).fit(2 * blobs_2d)
    np.testing.assert_allclose(
        doubled.score_samples(2 * blobs_2d), base - d * np.log(2.0), rtol=0, atol=1e-9
    )
    # Any other factor changes the data by rounding only.
    c = 1000.0
    scaled = FlowDensity(random_state=0, **tiny_params).fit(c * blobs_2d)
    np.testing.assert_allclose(
        scaled.score_samples(c * blobs_2d), base - d * np.log(c), rtol=0, atol=1e-3
    )


def test_nll_matches_known_entropy():
    """On a correlated Gaussian the held-out NLL approaches the true entropy."""
    rng = np.random.default_rng(1)
    cov = np.array([[2.0, 1.2], [1.2, 1.0]])
    X = rng.multivariate_normal([1.0, -3.0], cov, size=4000)
    X_test = rng.multivariate_normal([1.0, -3.0], cov, size=4000)
    entropy = 0.5 * np.log(np.linalg.det(2 * np.pi * np.e * cov))
    est = FlowDensity(n_transforms=2, hidden_layer_sizes=(32,), max_iter=30, random_state=0)
    nll = -est.fit(X).score(X_test)
    assert nll == pytest.approx(entropy, abs=0.05)


def test_transform_is_invertible_and_gaussianizes(blobs_2d):
    est = FlowDensity(n_transforms=3, hidden_layer_sizes=(32,), max_iter=40, random_state=0)
    Z = est.fit(blobs_2d).transform(blobs_2d)
    np.testing.assert_allclose(est.inverse_transform(Z), blobs_2d, atol=1e-4)
    # The latent of a good fit is close to standard normal even though the data are bimodal.
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=0.15)
    np.testing.assert_allclose(Z.std(axis=0), 1.0, atol=0.15)


def test_score_is_mean_of_score_samples(blobs_2d, tiny_params):
    est = FlowDensity(random_state=0, **tiny_params).fit(blobs_2d)
    assert est.score(blobs_2d) == pytest.approx(est.score_samples(blobs_2d).mean())
    assert est.score_samples(blobs_2d).dtype == np.float64


@pytest.mark.parametrize("coupling", COUPLINGS)
@pytest.mark.parametrize("mixing", MIXINGS)
def test_every_architecture_learns(coupling, mixing, blobs_2d):
    """Every coupling/mixing combination improves on the initial (Gaussian) fit."""
    est = FlowDensity(
        coupling=coupling,
        mixing=mixing,
        n_transforms=2,
        hidden_layer_sizes=(16,),
        max_iter=15,
        random_state=0,
    ).fit(blobs_2d)
    assert np.all(np.isfinite(est.score_samples(blobs_2d)))
    assert est.loss_curve_[-1] < est.loss_curve_[0]


def _built_architecture(est) -> tuple[set[int], set[float], set[float]]:
    """The spline bin counts, hidden-layer and input dropout probabilities inside a fitted
    estimator's flow."""
    from skflow.flows import BitDropout, SplineMap
    from skflow.flows.nets import Conditioner

    bins = {
        m.element_map.n_bins
        for m in est.flow_.modules()
        if isinstance(getattr(m, "element_map", None), SplineMap)
    }
    conditioners = [m for m in est.flow_.modules() if isinstance(m, Conditioner)]
    inputs = {c.input_dropout.p for c in conditioners if c.input_dropout is not None}
    hidden = {
        m.p for c in conditioners if c.net is not None for m in c.net if isinstance(m, BitDropout)
    }
    return bins, hidden, inputs


@pytest.mark.parametrize(
    "estimator", ["FlowDensity", "FlowSampler", "FlowOutlierDetector"], ids=str
)
@pytest.mark.parametrize(
    ("n_features", "n_rows", "bins", "drops", "input_drops"),
    [
        (1, 200, {16}, set(), set()),
        (2, 200, {16}, set(), set()),
        (2, 10_001, {16}, set(), set()),
        (3, 200, {4}, {0.5}, {0.3}),
        (3, 600, {4}, {0.5}, set()),
        (6, 1_199, {4}, {0.5}, {0.3}),
        (6, 10_000, {4}, {0.5}, set()),
        (6, 10_001, {8}, {0.2}, set()),
        (60, 10_000, {4}, {0.5}, {0.3}),
        (60, 10_001, {8}, {0.2}, set()),
    ],
)
def test_auto_bins_and_dropout_follow_the_shape_of_the_data(
    estimator, n_features, n_rows, bins, drops, input_drops
):
    """Up to two features: 16 bins and no dropout. From three: 4 bins and dropout 0.5 up to
    10,000 rows, 8 bins and dropout 0.2 above. Input dropout 0.3 only with the heavy setting
    and fewer than 200 rows per feature."""
    import skflow

    X = np.random.default_rng(0).normal(size=(n_rows, n_features))
    est = getattr(skflow, estimator)(
        n_transforms=2, hidden_layer_sizes=(8,), max_iter=1, early_stopping=False, random_state=0
    ).fit(X)
    params = est.get_params()
    assert params["n_bins"] == params["dropout"] == params["input_dropout"] == "auto"
    assert _built_architecture(est) == (bins, drops, input_drops)


@pytest.mark.parametrize("estimator", ["FlowSampler", "FlowOverSampler"], ids=str)
def test_auto_keeps_light_regularisation_for_conditional_flows(estimator):
    """A flow conditioned on y keeps 8 bins, dropout 0.2 and no input dropout on small data
    (here 33 rows per feature): heavy dropout also hides the condition from the conditioners."""
    import skflow

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6))
    y = np.repeat([0, 1], [150, 50])
    est = getattr(skflow, estimator)(
        n_transforms=2, hidden_layer_sizes=(8,), max_iter=1, early_stopping=False, random_state=0
    )
    if estimator == "FlowOverSampler":
        est.fit_resample(X, y)
        est = est.sampler_
    else:
        est.fit(X, y)
    assert _built_architecture(est) == ({8}, {0.2}, set())


def test_explicit_bins_and_dropout_override_auto():
    X = np.random.default_rng(0).normal(size=(200, 2))
    est = FlowDensity(
        n_transforms=2,
        hidden_layer_sizes=(8,),
        n_bins=5,
        dropout=0.1,
        input_dropout=0.05,
        max_iter=1,
        random_state=0,
    ).fit(X)
    assert _built_architecture(est) == ({5}, {0.1}, {0.05})


@pytest.mark.parametrize("n_features", [1, 3])
def test_one_and_odd_features(n_features, tiny_params):
    rng = np.random.default_rng(0)
    X = rng.gamma(2.0, size=(300, n_features))
    est = FlowDensity(random_state=0, **tiny_params).fit(X)
    assert est.score_samples(X).shape == (300,)
    assert est.sample(5, random_state=0).shape == (5, n_features)
    np.testing.assert_allclose(est.inverse_transform(est.transform(X)), X, atol=1e-4)


def test_sample_is_finite_reproducible_and_in_units(blobs_2d):
    est = FlowDensity(n_transforms=3, hidden_layer_sizes=(32,), max_iter=30, random_state=0)
    est.fit(1000.0 * blobs_2d)
    draws = est.sample(20000, random_state=3)
    assert draws.shape == (20000, 2) and draws.dtype == np.float64
    assert np.all(np.isfinite(draws))
    np.testing.assert_array_equal(draws, est.sample(20000, random_state=3))
    assert not np.array_equal(draws, est.sample(20000, random_state=4))
    # Samples follow the data: same per-feature means and spreads (units of X).
    np.testing.assert_allclose(draws.mean(0), 1000.0 * blobs_2d.mean(0), atol=150.0)
    np.testing.assert_allclose(draws.std(0), 1000.0 * blobs_2d.std(0), rtol=0.1)


def test_temperature_scales_the_latent_draws(blobs_2d, tiny_params):
    est = FlowDensity(random_state=0, **tiny_params).fit(blobs_2d)
    z_model = est.transform(est.sample(2000, random_state=5))
    cooled = est.sample(2000, random_state=5, temperature=0.5)
    # The same latent draws, halved: the cooled rows are the model's rows pulled to its modes.
    np.testing.assert_allclose(est.transform(cooled), 0.5 * z_model, atol=1e-4)
    assert (
        est.score_samples(cooled).mean()
        > est.score_samples(est.sample(2000, random_state=5)).mean()
    )
    for bad in (0, -1.0, np.nan, np.inf, "hot"):
        with pytest.raises(ValueError, match="temperature"):
            est.sample(3, temperature=bad)


def test_far_away_points_get_finite_low_density(blobs_2d, tiny_params):
    est = FlowDensity(random_state=0, **tiny_params).fit(blobs_2d)
    far = np.array([[1e6, 1e6], [-1e6, 0.0], [0.0, 1e6]])
    scores = est.score_samples(far)
    assert np.all(np.isfinite(scores))
    assert scores.max() < est.score_samples(blobs_2d).min()
    # Latent points far in the tails still map back to finite data.
    assert np.all(np.isfinite(est.inverse_transform(np.full((2, 2), 1e4))))


def test_latent_points_beyond_float64_are_refused_not_returned_as_inf(tiny_params):
    X = np.random.default_rng(0).normal(size=(200, 3))
    est = FlowDensity(random_state=0, **tiny_params).fit(X)
    assert np.all(np.isfinite(est.sample(50, random_state=0, temperature=1e100)))
    # This flow's inverse overflows float64 for latent points near 1e300 (a flow whose tail
    # layers compress may not; then nothing needs refusing).
    with pytest.raises(ValueError, match=r"temperature=1e\+300 .*use a smaller temperature"):
        est.sample(50, random_state=0, temperature=1e300)
    far = np.zeros((3, 3))
    far[0, 0], far[2, 1] = 1e300, -1e300
    with pytest.raises(ValueError, match=r"2 of 3 rows overflow float64.*nearer the origin"):
        est.inverse_transform(far)


def test_rows_beyond_float64_score_minus_inf_never_nan(tiny_params):
    """A fill value such as 1e300 or float64's max has a log-density below -1.8e308: the
    scores say -inf (once NaN, from inf - inf inside the flow), transform refuses them, and
    rows up to 1e150 stay finite."""
    X = np.random.default_rng(0).normal(size=(200, 3))
    est = FlowDensity(random_state=0, **tiny_params).fit(X)
    huge = np.finfo(np.float64).max
    rows = np.array([[1e150, 0, 0], [1e300, 0, 0], [huge, huge, huge], [-huge, 0, 1], [0, 0, 0]])
    scores = est.score_samples(rows)
    assert not np.any(np.isnan(scores))
    assert np.isfinite(scores[0]) and scores[:4].max() < -1e10
    # Whether a row overflows depends on how the fitted tails grow; this fit's do for some.
    assert np.any(scores == -np.inf)
    assert np.isfinite(scores[4])
    assert est.score(rows) == -np.inf
    with pytest.raises(ValueError, match=r"row\(s\) lie so far out.*overflow float64"):
        est.transform(rows)
    assert np.all(np.isfinite(est.transform(rows[[0, 4]])))


def test_same_seed_same_result_and_global_rng_untouched(blobs_2d, tiny_params):
    before = torch.random.get_rng_state().clone()
    a = FlowDensity(random_state=7, **tiny_params).fit(blobs_2d)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = FlowDensity(random_state=7, **tiny_params).fit(blobs_2d)
    c = FlowDensity(random_state=8, **tiny_params).fit(blobs_2d)
    np.testing.assert_array_equal(a.score_samples(blobs_2d), b.score_samples(blobs_2d))
    assert not np.allclose(a.score_samples(blobs_2d), c.score_samples(blobs_2d))


def test_sample_weight_zero_removes_rows():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0.0, 1.0, (400, 2)), rng.normal(8.0, 1.0, (400, 2))])
    weight = np.r_[np.ones(400), np.zeros(400)]
    params = {
        "n_transforms": 2,
        "hidden_layer_sizes": (16,),
        "max_iter": 25,
        "random_state": 0,
        "dropout": 0.0,
    }
    weighted = FlowDensity(**params).fit(X, sample_weight=weight)
    only_first = FlowDensity(**params).fit(X[:400])
    unweighted = FlowDensity(**params).fit(X)
    probe = np.array([[0.0, 0.0], [8.0, 8.0]])
    # Rows of weight zero are left out: the fit is the one on the other rows, to the bit.
    np.testing.assert_array_equal(weighted.score_samples(probe), only_first.score_samples(probe))
    kept, dropped = weighted.score_samples(probe)
    assert dropped < kept - 10.0
    # Without weights both clusters carry half the mass.
    assert unweighted.score_samples(probe)[1] > kept - 2.0


@pytest.mark.parametrize("n_positive", [6, 60])
def test_mostly_zero_sample_weights_fit_without_recoveries(tiny_params, n_positive):
    """A weight mask selecting a few rows once gave all-zero minibatches (loss 0 / 0), which
    the divergence recovery 'repaired' by halving the learning rate, or a ZeroDivisionError
    on an all-zero validation split."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 2))
    weight = np.zeros(600)
    weight[rng.choice(600, n_positive, replace=False)] = rng.uniform(0.5, 2.0, n_positive)
    est = FlowDensity(random_state=0, **tiny_params).fit(X, sample_weight=weight)
    assert est.n_recoveries_ == 0
    assert np.isfinite(est.best_validation_score_)
    kept = weight > 0
    subset = FlowDensity(random_state=0, **tiny_params).fit(X[kept], sample_weight=weight[kept])
    np.testing.assert_array_equal(est.score_samples(X[:20]), subset.score_samples(X[:20]))


def test_sample_weight_scale_does_not_matter(blobs_2d, tiny_params):
    """The likelihood is invariant to the weights' scale; float32 training must be too."""
    weight = np.random.default_rng(0).uniform(0.1, 1.0, len(blobs_2d))
    base = FlowDensity(random_state=0, **tiny_params).fit(blobs_2d, sample_weight=weight)
    for factor in (1e-50, 1e40):
        est = FlowDensity(random_state=0, **tiny_params).fit(
            blobs_2d, sample_weight=weight * factor
        )
        assert est.n_recoveries_ == 0
        np.testing.assert_allclose(
            est.score_samples(blobs_2d), base.score_samples(blobs_2d), rtol=1e-5, atol=1e-5
        )


def test_fewer_than_two_positive_weights_is_refused(blobs_2d, tiny_params):
    weight = np.zeros(len(blobs_2d))
    weight[3] = 1.0
    with pytest.raises(ValueError, match="sample_weight has 1 positive entry out of 600"):
        FlowDensity(**tiny_params).fit(blobs_2d, sample_weight=weight)


def test_initial_flow_is_the_full_covariance_gaussian():
    """Before any gradient step the flow is the maximum-likelihood Gaussian (whitening init)."""
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(0)
    cov = 0.9 ** np.abs(np.subtract.outer(np.arange(6), np.arange(6)))
    X = rng.multivariate_normal(np.arange(6.0), cov, size=3000)
    est = FlowDensity(max_iter=1, learning_rate_init=1e-9, random_state=0)
    with pytest.warns(Warning, match="max_iter"):
        est.fit(X)
    gaussian = multivariate_normal(X.mean(0), np.cov(X.T)).logpdf(X).mean()
    # Without the whitening init (random rotation + ActNorm) it is ~1.1 nats worse here.
    assert est.score(X) == pytest.approx(gaussian, abs=0.05)


def test_light_tails_do_not_make_walls():
    """Rows just outside the range of bounded training data keep a sane density."""
    rng = np.random.default_rng(0)
    X = rng.uniform(0.0, 1.0, size=(2000, 2))
    est = FlowDensity(n_transforms=2, hidden_layer_sizes=(16,), max_iter=20, random_state=0)
    est.fit(X)
    outside = est.score_samples(np.array([[1.1, 0.5], [0.5, -0.1], [1.2, 1.2]]))
    assert np.all(np.isfinite(outside)) and outside.min() > -30.0


def test_heavy_tails_move_the_tail_layer_away_from_the_identity():
    """Student-t(2) data: the fitted sinh-arcsinh layer compresses the tails (delta well below
    1 in every feature). On torch 2.14 a clamp's zero gradient at delta = 1 kept it there."""
    from skflow.flows import SinhArcsinh

    X = np.random.default_rng(0).standard_t(2.0, size=(2000, 3))
    est = FlowDensity(n_transforms=2, hidden_layer_sizes=(16,), max_iter=2, random_state=0)
    with pytest.warns(Warning, match="max_iter"):
        est.fit(X)
    (layer,) = [m for m in est.flow_.modules() if isinstance(m, SinhArcsinh)]
    assert torch.all(layer._delta() < 0.8)


def test_partial_fit_twice_is_fit_for_two_epochs_without_early_stopping():
    """Each call is one epoch over the rows given, with the optimiser state carried over: the
    same model, to the bit, as fit(max_iter=2, early_stopping=False), and no warning."""
    rng = np.random.default_rng(0)
    X = np.c_[rng.normal(size=(600, 3)), rng.integers(0, 3, 600)]
    params = dict(n_transforms=2, hidden_layer_sizes=(16,), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        streamed = FlowDensity(**params).partial_fit(X).partial_fit(X)
    with pytest.warns(ConvergenceWarning):
        whole = FlowDensity(**params, max_iter=2, early_stopping=False).fit(X)
    assert streamed.n_iter_ == 2 and streamed.validation_scores_ is None
    np.testing.assert_array_equal(streamed.score_samples(X), whole.score_samples(X))
    assert streamed.get_params() == FlowDensity(**params).get_params()


def test_partial_fit_on_chunks_learns_the_table_and_keeps_the_first_preprocessing():
    rng = np.random.default_rng(1)
    X = np.r_[rng.normal(-2.0, 0.5, size=(3000, 2)), rng.normal(2.0, 0.7, size=(3000, 2))]
    X = X[rng.permutation(len(X))]
    train, test = X[:5000], X[5000:]
    est = FlowDensity(n_transforms=2, hidden_layer_sizes=(16,), random_state=0)
    start = None
    for _ in range(4):
        for chunk in np.array_split(train, 10):
            est.partial_fit(chunk)
            if start is None:
                start, mean = est.score(test), est.preprocessor_.mean_.copy()
    assert est.n_iter_ == 40
    np.testing.assert_array_equal(est.preprocessor_.mean_, mean)
    # Streaming four passes over ten chunks comes within 0.1 nats of fitting all rows at
    # once (measured: -2.516 against -2.488) and far above the first chunk's model.
    with pytest.warns(ConvergenceWarning):
        whole = FlowDensity(n_transforms=2, hidden_layer_sizes=(16,), max_iter=20,
                            random_state=0).fit(train)
    assert est.score(test) > max(start + 0.05, whole.score(test) - 0.1)
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(train[:, :1])
