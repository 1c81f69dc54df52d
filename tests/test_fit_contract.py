"""What every fit promises a user: atomic re-fits, warnings at the user's line, a progress bar
that says how it ended, bounded sampling and clear refusals of data a density cannot model."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import skflow._base
import skflow._engine.training
from skflow import FlowDensity, FlowOutlierDetector, FlowSampler

from .conftest import TINY

SMALL = dict(TINY, max_iter=3, random_state=0)
# Too few epochs for early stopping to end the fit: it ends at max_iter and warns.
UNCONVERGED = dict(SMALL, max_iter=2, n_iter_no_change=10)


def _gaussian(n: int = 300, d: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


class _Interrupt:
    """Raise KeyboardInterrupt on the n-th validation pass of the next fit (mid-training)."""

    def __init__(self, monkeypatch, after: int = 2) -> None:
        real = skflow._engine.training.evaluate_nll
        self.calls = 0

        def interrupted(*args, **kwargs):
            self.calls += 1
            if self.calls > after:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        monkeypatch.setattr(skflow._engine.training, "evaluate_nll", interrupted)


def _fitted_state(est) -> dict:
    state = {key: value for key, value in vars(est).items() if key.endswith("_")}
    state["flow_"] = {k: v.clone() for k, v in est.flow_.state_dict().items()}
    return state


@pytest.mark.parametrize("warm", [False, True])
@pytest.mark.parametrize("estimator", [FlowDensity, FlowOutlierDetector, FlowSampler])
def test_interrupted_refit_leaves_the_previous_model_intact(estimator, warm, monkeypatch):
    """A KeyboardInterrupt in the middle of a re-fit on rescaled data (and with fewer columns)
    must leave the fitted model exactly as it was: the same attributes, weights and scores."""
    X = _gaussian()
    # A window longer than the fits, so that the refit is still training when interrupted.
    est = estimator(warm_start=warm, **dict(SMALL, n_iter_no_change=10)).fit(X)
    before = _fitted_state(est)
    scores = est.score_samples(X)
    attributes = set(vars(est))
    new_X = X * 100 + 50 if warm else X[:, :2] * 100 + 50
    _Interrupt(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        est.fit(new_X)
    assert set(vars(est)) == attributes
    after = _fitted_state(est)
    for key, value in before.items():
        if key == "flow_":
            for name, tensor in value.items():
                assert np.array_equal(tensor.numpy(), after["flow_"][name].numpy()), name
        else:
            assert after[key] is value, key
    assert not any(module.training for module in est.flow_.modules())
    np.testing.assert_array_equal(est.score_samples(X), scores)


def test_interrupted_first_fit_leaves_the_estimator_unfitted(monkeypatch):
    est = FlowDensity(**SMALL)
    _Interrupt(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        est.fit(_gaussian())
    assert not [key for key in vars(est) if key.endswith("_")]


def test_convergence_warning_points_at_the_callers_line():
    X = _gaussian()
    with pytest.warns(ConvergenceWarning) as record:
        FlowDensity(**UNCONVERGED).fit(X)
    assert record[0].filename == __file__
    with pytest.warns(ConvergenceWarning) as record:
        FlowOutlierDetector(**UNCONVERGED).fit_predict(X)
    assert record[0].filename == __file__


def test_progress_bar_ends_and_says_why_training_stopped(capsys):
    """verbose=1: the bar ends at the epochs that ran (not at 14% of max_iter), and a line
    says training stopped early, after which epoch, and which epoch's weights were kept."""
    X = _gaussian(400, 2)
    est = FlowDensity(
        n_transforms=2, hidden_layer_sizes=(8,), max_iter=300, n_iter_no_change=2,
        tol=10.0, random_state=0, verbose=1,
    ).fit(X)  # fmt: skip
    assert est.n_iter_ < 300
    captured = capsys.readouterr()
    bar = captured.err.strip().splitlines()[-1].split("\r")[-1]
    assert "100%|" in bar and f"{est.n_iter_}/{est.n_iter_}" in bar
    summary = captured.out.strip().splitlines()[-1]
    assert f"stopped early after epoch {est.n_iter_} of max_iter=300" in summary
    assert "kept the initial Gaussian fit" in summary or "kept the averaged weights" in summary
    assert f"{-est.best_validation_score_:.4f}" in summary


def test_progress_summary_when_max_iter_ends_the_fit(capsys):
    with pytest.warns(ConvergenceWarning):
        FlowDensity(verbose=1, **UNCONVERGED).fit(_gaussian())
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("skflow: reached max_iter=2 epochs")


def test_verbose_fit_names_the_discrete_columns(capsys):
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=300), rng.integers(0, 5, 300)])
    est = FlowDensity(verbose=1, **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X)
    assert est.discrete_features_.tolist() == [False, True]
    assert "1 of 2 columns treated as discrete" in capsys.readouterr().out


def test_sample_draws_in_blocks_and_refuses_what_cannot_fit(monkeypatch):
    """sample(n) maps the latent draws back a fixed block at a time (memory = output + one
    block), the rows a seed gives do not depend on the block size, and a request larger than
    the machine is refused with its size before anything is allocated."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = FlowDensity(**SMALL).fit(_gaussian())
    widest = []
    real = est._from_latent

    def recording(Z, *args, **kwargs):
        widest.append(len(Z))
        return real(Z, *args, **kwargs)

    monkeypatch.setattr(skflow._base, "SAMPLE_BLOCK_ROWS", 100)
    monkeypatch.setattr(est, "_from_latent", recording)
    rows = est.sample(1050, random_state=0)
    assert rows.shape == (1050, 3) and max(widest) == 100 and len(widest) == 11
    monkeypatch.setattr(skflow._base, "SAMPLE_BLOCK_ROWS", 2**16)
    np.testing.assert_array_equal(est.sample(100, random_state=0), rows[:100])
    with pytest.raises(ValueError, match=r"1,000,000,000,000 requested rows .* GiB"):
        est.sample(10**12)


def test_sampler_refuses_an_oversized_request_before_drawing_targets():
    X, y = _gaussian(), np.repeat([0, 1], 150)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = FlowSampler(**SMALL).fit(X, y)
    with pytest.raises(ValueError, match="requested rows"):
        est.sample(10**12, y=1)


def test_pickled_model_survives_an_interrupted_refit(monkeypatch):
    """The atomic fit restores attributes; the model pickles and scores as before."""
    X = _gaussian()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = FlowDensity(**SMALL).fit(X)
    _Interrupt(monkeypatch, after=1)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X[:, :2])
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(est)).score_samples(X), est.score_samples(X)
    )
