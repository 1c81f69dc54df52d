"""Discrete-column detection, dequantisation and the constant-column policy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from skflow import FlowDensity, FlowOutlierDetector
from skflow._preprocessing import Preprocessor, discrete_mask, grid_step

from .conftest import TINY


def test_grid_step_finds_integer_and_decimal_grids():
    rng = np.random.default_rng(0)
    assert grid_step(rng.integers(0, 5, size=200).astype(float)) == pytest.approx(1.0)
    # 0.1 steps carry float rounding (0.30000000000000004); still a grid.
    assert grid_step(np.round(rng.integers(0, 40, size=200) * 0.1, 10)) == pytest.approx(0.1)
    assert grid_step(np.array([0.0, 5.0, 10.0, 5.0])) == pytest.approx(5.0)
    assert grid_step(rng.normal(size=200)) is None
    assert grid_step(np.array([0.0, 1.0, 2.5])) is None
    assert grid_step(np.ones(5)) is None


def test_float32_data_get_the_same_grid_as_float64(tiny_params):
    """A 0.1-step rating rounded to float32 is off its grid by ~1e-5 steps; still a grid."""
    rng = np.random.default_rng(0)
    X = np.c_[rng.normal(size=400), np.round(rng.uniform(0, 10, 400), 1)]
    X32 = X.astype(np.float32)
    assert grid_step(X32[:, 1].astype(np.float64)) == pytest.approx(0.1, rel=1e-9)
    est64 = FlowDensity(random_state=0, **tiny_params).fit(X)
    est32 = FlowDensity(random_state=0, **tiny_params).fit(X32)
    np.testing.assert_allclose(est32.preprocessor_.step_, [0.0, 0.1], rtol=1e-9)
    # The same model: scores agree far below log(0.1), the error a wrong grid would make. Five
    # epochs at the 2-D learning rate (3e-3) carry the float32 rounding of the inputs into
    # the weights: up to 0.004 nats apart here.
    np.testing.assert_allclose(est32.score_samples(X32), est64.score_samples(X), atol=1e-2)
    # A grid too fine for float32 to resolve must be exact, as before.
    assert grid_step(1e6 + rng.integers(0, 50, size=200) * 1e-3) == pytest.approx(1e-3)
    assert (
        grid_step(1e6 + rng.integers(0, 50, size=200) * 1e-3 + rng.normal(size=200) * 1e-6) is None
    )


def test_auto_mask_needs_a_grid_and_repeats():
    rng = np.random.default_rng(0)
    n = 400
    X = np.column_stack(
        [
            rng.integers(0, 2, size=n),  # binary flag
            rng.poisson(3.0, size=n),  # counts
            rng.normal(size=n),  # continuous
            np.arange(n),  # integers, but all distinct: no spikes to prevent
        ]
    ).astype(float)
    assert discrete_mask(X, "auto").tolist() == [True, True, False, False]
    assert discrete_mask(X, True).all() and not discrete_mask(X, False).any()
    assert discrete_mask(X, [0, 2]).tolist() == [True, False, True, False]
    assert discrete_mask(X, np.array([False, True, False, False])).tolist() == [
        False,
        True,
        False,
        False,
    ]
    # Two rows of continuous data are always "on a grid" of their gap: not discrete.
    assert not discrete_mask(rng.normal(size=(2, 3)), "auto").any()


@pytest.mark.parametrize(
    ("spec", "message"),
    [([5], "out of range"), (np.array([True, False]), "one entry per feature"), ([0.5], "must")],
)
def test_bad_discrete_features_are_refused(spec, message):
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match=message):
        FlowDensity(discrete_features=spec, **TINY).fit(X)


def test_preprocessor_round_trip_and_log_jacobian():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 4, 300) * 0.5, rng.normal(3.0, 2.0, 300)])
    pre = Preprocessor().fit(X)
    np.testing.assert_allclose(pre.step_, [0.5, 0.0])
    # Grid values come back exactly; the continuous column to float precision.
    np.testing.assert_allclose(pre.inverse_transform(pre.transform(X)), X, atol=1e-12)
    # Standardisation only: a discrete column is scored as a density too (P(cell) / step).
    assert pre.log_jacobian_ == pytest.approx(-np.sum(np.log(pre.scale_)))
    # The dequantised variable's variance includes the uniform noise's step**2 / 12.
    assert pre.scale_[0] ** 2 == pytest.approx(np.var(X[:, 0]) + 0.25 / 12)


def test_constant_columns_dropped_only_when_asked():
    X = np.column_stack([np.random.default_rng(0).normal(size=50), np.full(50, 7.0)])
    with pytest.raises(ValueError, match=r"constant .* index \[1\]"):
        Preprocessor().fit(X)
    pre = Preprocessor(constant_features="drop").fit(X)
    assert pre.keep_.tolist() == [True, False]
    assert pre.transform(X).shape == (50, 1)
    with pytest.raises(ValueError, match="constant"):
        Preprocessor(constant_features="drop").fit(np.ones((10, 2)))


def test_counts_get_probabilities_that_sum_to_one():
    """On a count column score_samples is a log-probability: it sums to 1 over the integers
    and follows the Poisson pmf it was fitted to."""
    rng = np.random.default_rng(0)
    X = rng.poisson(4.0, size=(1500, 1)).astype(float)
    est = FlowDensity(n_transforms=2, hidden_layer_sizes=(16,), max_iter=25, random_state=0)
    est.fit(X)
    assert est.preprocessor_.step_.tolist() == [1.0]
    grid = np.arange(-30, 60, dtype=float)[:, None]
    mass = np.exp(est.score_samples(grid))
    assert mass.sum() == pytest.approx(1.0, abs=0.02)
    pmf = stats.poisson(4.0).pmf(np.arange(1, 9))
    np.testing.assert_allclose(mass[31:39], pmf, atol=0.02)
    # Samples are counts again, drawn with the probabilities that score_samples reports.
    draws = est.sample(4000, random_state=0)[:, 0]
    np.testing.assert_array_equal(draws, np.round(draws))
    assert draws.min() >= 0
    frequencies = np.bincount(draws.astype(int), minlength=9)[1:9] / len(draws)
    np.testing.assert_allclose(frequencies, mass[31:39], atol=0.02)


def test_flag_scores_are_the_probabilities_of_their_cells():
    """Two correlated flags: score_samples is the flow's density integrated over each cell
    (here by a 60 x 60 grid inside it). The density at the cell's centre alone once summed to
    1.20 over the four cells, and its test log-likelihood beat the true distribution's."""
    rng = np.random.default_rng(0)

    def draw(n):
        a = rng.random(n) < 0.3
        b = np.where(a, rng.random(n) < 0.8, rng.random(n) < 0.1)
        return np.column_stack([a, b]).astype(float)

    est = FlowDensity(n_transforms=2, hidden_layer_sizes=(16,), max_iter=30, random_state=0)
    with pytest.warns(Warning, match="max_iter"):
        est.fit(draw(2000))
    pre = est.preprocessor_
    cells = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    inside = (np.arange(60) + 0.5) / 60
    integral = []
    for cell in cells:
        points = cell + np.stack(np.meshgrid(inside, inside), axis=-1).reshape(-1, 2)
        log_density = est._run("log_prob", (points - pre.mean_) / pre.scale_)
        integral.append(np.exp(log_density - np.log(pre.scale_).sum()).mean())
    probabilities = np.exp(est.score_samples(cells))
    # The fixed points estimate the integral less well the more peaked the density is in the
    # cell: 0.012 off the grid's here at the 2-D default learning rate (3e-3), 0.003 at 1e-3;
    # the density at the centre was off by 0.2 in total.
    np.testing.assert_allclose(probabilities, integral, atol=0.02)
    assert probabilities.sum() <= 1.0
    X_test = draw(20000)
    true = np.log(np.array([0.63, 0.07, 0.06, 0.24]))[(2 * X_test[:, 0] + X_test[:, 1]).astype(int)]
    assert est.score(X_test) < true.mean()


def test_mixed_binary_and_continuous_likelihood():
    """A flag with P(1) = 0.3 next to an independent N(0, 1): the fitted model's mean
    log-likelihood on fresh rows is close to the true mixed (mass x density) one."""
    rng = np.random.default_rng(1)

    def draw(n):
        return np.column_stack([rng.random(n) < 0.3, rng.normal(size=n)]).astype(float)

    est = FlowDensity(n_transforms=3, hidden_layer_sizes=(32,), max_iter=30, random_state=0)
    est.fit(draw(2000))
    X_test = draw(4000)
    true = np.where(X_test[:, 0] == 1, np.log(0.3), np.log(0.7)) + stats.norm.logpdf(X_test[:, 1])
    assert est.score(X_test) == pytest.approx(true.mean(), abs=0.1)
    assert set(np.unique(est.sample(300, random_state=0)[:, 0])) <= {0.0, 1.0}


def test_scores_are_densities_whether_or_not_columns_are_discrete():
    """load_diabetes: "auto" takes 7 of its 10 standardised columns as discrete. Scores must
    stay log-densities in the units of X, within a few nats of the all-continuous fit's (when
    discrete columns were scored as probabilities they were 41 nats lower)."""
    X = load_diabetes().data
    params = dict(n_transforms=2, hidden_layer_sizes=(16,), max_iter=20, random_state=0)
    auto = FlowDensity(**params).fit(X)
    continuous = FlowDensity(discrete_features=False, **params).fit(X)
    assert auto.discrete_features_.sum() >= 5 and not continuous.discrete_features_.any()
    assert auto.score(X) == pytest.approx(continuous.score(X), abs=5.0)
    gmm = GaussianMixture(1, random_state=0).fit(X)
    assert auto.score(X) == pytest.approx(gmm.score(X), abs=15.0)


def test_a_discrete_column_scores_its_cell_probability_per_unit_of_x():
    """Step 0.5: exp(score) is P(cell) / 0.5, so 0.5 * exp(score) sums to 1 over the grid."""
    rng = np.random.default_rng(0)
    X = 0.5 * rng.poisson(3.0, size=(1500, 1)).astype(float)
    est = FlowDensity(n_transforms=2, hidden_layer_sizes=(16,), max_iter=25, random_state=0)
    est.fit(X)
    assert est.preprocessor_.step_.tolist() == [0.5]
    grid = 0.5 * np.arange(-30, 60, dtype=float)[:, None]
    assert (0.5 * np.exp(est.score_samples(grid))).sum() == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize(
    ("make", "group"),
    [
        (lambda b: np.column_stack([b[:, 0], b[:, 0], b[:, 2]]), "[0, 1]"),
        (lambda b: np.column_stack([b[:, 0], b[:, 0] + 0.01, b[:, 2]]), "[0, 1]"),
        (lambda b: np.column_stack([b[:, 0], b[:, 1], 2 * b[:, 0] - 3 * b[:, 1] + 5]), "[0, 1, 2]"),
    ],
)
def test_affinely_dependent_columns_are_refused_by_name(make, group):
    """A copy of a column (or an affine combination of others) puts the data on a surface:
    the 'density' was +12.98 per row for [b0, b0, b2], -4.8e10 with the copy moved by 0.01."""
    X = make(np.random.default_rng(0).normal(size=(300, 3)))
    with pytest.raises(ValueError, match=rf"exact affine functions .* columns \{group}"):
        FlowDensity(**TINY).fit(X)


def test_outlier_detector_leaves_out_a_dependent_column():
    b = np.random.default_rng(0).normal(size=(300, 3))
    X = np.column_stack([b[:, 0], b[:, 0] * 2 + 1, b[:, 2]])
    with pytest.warns(UserWarning, match=r"column\(s\) 1 \(an affine function of \[0\]\)"):
        det = FlowOutlierDetector(random_state=0, **TINY).fit(X)
    assert det.preprocessor_.keep_.tolist() == [True, False, True]
    reference = FlowOutlierDetector(random_state=0, **TINY).fit(X[:, [0, 2]])
    np.testing.assert_allclose(det.score_samples(X), reference.score_samples(X[:, [0, 2]]))


def test_discrete_copies_are_not_dependences():
    """Two equal flags are dequantised independently: a fine joint distribution."""
    rng = np.random.default_rng(0)
    flag = rng.integers(0, 2, 400).astype(float)
    X = np.column_stack([flag, flag, rng.normal(size=400)])
    est = FlowDensity(**TINY, random_state=0).fit(X)
    assert est.discrete_features_.tolist() == [True, True, False]


def test_integers_float64_cannot_hold_are_named_not_called_constant():
    X = np.column_stack([2**62 + np.arange(50, dtype=np.int64), np.arange(50, dtype=np.int64)])
    with pytest.raises(ValueError, match=r"beyond 2\*\*53 .* 0 \(50 distinct integers, 1 in"):
        FlowDensity(**TINY).fit(X)


def test_a_column_near_float64s_limit_fits():
    """Two values at +-1e308: the grid search's span overflowed to inf (a raw NaN error)."""
    rng = np.random.default_rng(0)
    X = np.c_[rng.normal(size=300), np.where(rng.random(300) < 0.5, -1e308, 1e308)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = FlowDensity(**TINY, random_state=0).fit(X)
    assert np.isfinite(est.score_samples(X[:5])).all()
    assert grid_step(np.array([-1e308, 1e308, 1e308])) is None  # a cell wider than float64
    assert grid_step(np.array([-4e307, 4e307, 0.0])) == pytest.approx(4e307)
