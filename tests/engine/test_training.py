"""The training loop: early stopping, recovery from divergence, warm start, progress, devices."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

import skflow._engine.training as training
from skflow import FlowDensity
from skflow._engine.device import is_on


def test_early_stopping_keeps_best_weights(blobs_2d):
    est = FlowDensity(
        n_transforms=2,
        hidden_layer_sizes=(16,),
        max_iter=200,
        n_iter_no_change=4,
        learning_rate_init=1e-2,
        random_state=0,
    ).fit(blobs_2d)
    assert est.n_iter_ < 200, "early stopping never triggered"
    assert len(est.validation_scores_) == len(est.loss_curve_) == est.n_iter_
    # The kept weights are the best epoch's, not the last one's (here training does improve on
    # the initial Gaussian, which is also a candidate).
    assert est.best_validation_score_ == pytest.approx(max(est.validation_scores_))
    assert est.validation_scores_[-1] <= est.best_validation_score_


def test_early_stopping_never_returns_worse_than_the_initial_gaussian(monkeypatch):
    """If every epoch makes validation worse, the initial (Gaussian) weights are kept."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3)) @ np.array([[1.0, 0.5, 0.2], [0.0, 1.0, 0.4], [0.0, 0.0, 1.0]])
    # A huge step size wrecks the model on every epoch.
    est = FlowDensity(
        n_transforms=2,
        hidden_layer_sizes=(16,),
        max_iter=6,
        n_iter_no_change=3,
        learning_rate_init=0.5,
        random_state=0,
    ).fit(X)
    initial = FlowDensity(
        n_transforms=2,
        hidden_layer_sizes=(16,),
        max_iter=1,
        learning_rate_init=1e-12,
        random_state=0,
    )
    with pytest.warns(Warning, match="max_iter"):
        initial.fit(X)
    assert est.best_validation_score_ > max(est.validation_scores_)
    np.testing.assert_allclose(est.score_samples(X), initial.score_samples(X), atol=1e-4)


def test_without_early_stopping_uses_all_rows_and_max_iter(blobs_2d):
    est = FlowDensity(
        n_transforms=2,
        hidden_layer_sizes=(16,),
        max_iter=6,
        n_iter_no_change=50,
        early_stopping=False,
        random_state=0,
    )
    with pytest.warns(Warning, match="max_iter"):
        est.fit(blobs_2d)
    assert est.n_iter_ == 6
    assert est.validation_scores_ is None and est.best_validation_score_ is None


def test_loss_curve_is_in_units_of_x(blobs_2d, tiny_params):
    est = FlowDensity(random_state=0, **tiny_params).fit(blobs_2d)
    scaled = FlowDensity(random_state=0, **tiny_params).fit(4.0 * blobs_2d)
    np.testing.assert_allclose(
        np.array(scaled.loss_curve_), np.array(est.loss_curve_) + 2 * np.log(4.0), atol=1e-6
    )


def test_recovers_from_non_finite_loss(blobs_2d, tiny_params, monkeypatch):
    """A NaN loss restores the last good state, halves the step size and carries on."""
    real = training.mean_nll
    calls = {"n": 0}

    def poisoned(flow, batch, *args):
        calls["n"] += 1
        loss = real(flow, batch, *args)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(training, "mean_nll", poisoned)
    est = FlowDensity(random_state=0, **tiny_params).fit(blobs_2d)
    assert est.n_recoveries_ == 1
    assert np.all(np.isfinite(est.score_samples(blobs_2d)))
    assert all(np.isfinite(est.loss_curve_))


def test_gives_up_after_repeated_divergence(blobs_2d, tiny_params, monkeypatch):
    monkeypatch.setattr(
        training,
        "mean_nll",
        lambda flow, batch, *args: training.Flow.log_prob(flow, batch.x).mean() * float("nan"),
    )
    with pytest.raises(RuntimeError, match="diverged"):
        FlowDensity(random_state=0, **tiny_params).fit(blobs_2d)


def test_warm_start_continues_training(blobs_2d, tiny_params):
    est = FlowDensity(random_state=0, warm_start=True, **tiny_params).fit(blobs_2d)
    first_iters, first_curve = est.n_iter_, list(est.loss_curve_)
    est.fit(blobs_2d)
    assert est.n_iter_ > first_iters
    assert est.loss_curve_[:first_iters] == first_curve
    # Continuing starts from the trained model, not from scratch.
    assert est.loss_curve_[first_iters] < first_curve[0]


@pytest.mark.parametrize(
    "params",
    [
        {},  # two features: no dropout
        {"dropout": 0.3, "n_features": 3},  # the dropout stream continues too
        {"early_stopping": False, "n_features": 3},  # the averaged fit, no validation
        {"discrete_features": [2], "n_features": 3},  # the same validation noise each run
    ],
)
def test_warm_fits_in_steps_equal_one_long_fit(params):
    """Ten warm fits of 2 epochs are one fit of 20 epochs, to the bit. Each warm fit once
    restarted Adam at the full learning rate on the same batch order; once one of them failed
    to improve, every later one returned the same model while n_iter_ kept growing."""
    params = dict(params)
    d = params.pop("n_features", 2)
    X = np.random.default_rng(0).normal(size=(400, d))
    X[:, d - 1] = np.round(X[:, d - 1]) if "discrete_features" in params else X[:, d - 1]
    common = dict(n_transforms=2, hidden_layer_sizes=(16,), n_iter_no_change=100, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        long = FlowDensity(max_iter=20, **common, **params).fit(X)
        steps = FlowDensity(max_iter=2, warm_start=True, **common, **params)
        for _ in range(10):
            steps.fit(X)
    assert steps.n_iter_ == 20
    assert steps.loss_curve_ == long.loss_curve_
    assert steps.validation_scores_ == long.validation_scores_
    np.testing.assert_array_equal(steps.score_samples(X), long.score_samples(X))
    # The saved state survives pickling: a reloaded model continues the same way.
    reloaded = pickle.loads(pickle.dumps(steps))
    np.testing.assert_array_equal(reloaded.fit(X).score_samples(X), steps.fit(X).score_samples(X))


# 600 rows in batches of 100 at learning rate 1e-2 without validation: the warm-up is the
# first 3 x 6 optimiser steps.
_WARMUP_CASE = dict(
    n_transforms=2,
    hidden_layer_sizes=(8,),
    max_iter=4,
    batch_size=100,
    learning_rate_init=1e-2,
    early_stopping=False,
    n_iter_no_change=50,
    random_state=0,
)


def _record_learning_rates(monkeypatch) -> list[float]:
    """The learning rate of every AdamW step from now on, in order."""
    rates = []
    real_step = torch.optim.AdamW.step

    def spy(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    return rates


def test_warm_start_without_a_saved_state_warms_up_again(blobs_2d, monkeypatch):
    """A first fit with warm_start=False keeps no optimiser state: the warm fit after it
    starts a fresh Adam, so it warms the learning rate up again."""
    est = FlowDensity(**_WARMUP_CASE)
    with pytest.warns(Warning, match="max_iter"):
        est.fit(blobs_2d)
    assert est._history_.resume is None
    rates = _record_learning_rates(monkeypatch)
    with pytest.warns(Warning, match="max_iter"):
        est.set_params(warm_start=True).fit(blobs_2d)
    warmup = 3 * 6
    np.testing.assert_allclose(rates[:warmup], 1e-2 * np.arange(1, warmup + 1) / warmup)
    assert est._history_.resume is not None


def test_warm_start_refuses_a_new_architecture(blobs_2d, tiny_params):
    est = FlowDensity(random_state=0, warm_start=True, **tiny_params).fit(blobs_2d)
    for name, value in [("n_transforms", 3), ("hidden_layer_sizes", (8, 8)), ("dropout", 0.2)]:
        warm = FlowDensity(random_state=0, warm_start=True, **tiny_params).fit(blobs_2d)
        with pytest.raises(ValueError, match=f"{name} was .*, now"):
            warm.set_params(**{name: value}).fit(blobs_2d)
    # Training parameters may change between warm fits; so may anything after a cold one.
    est.set_params(max_iter=2, learning_rate_init=1e-4).fit(blobs_2d)
    est.set_params(warm_start=False, n_transforms=3).fit(blobs_2d)
    est.set_params(warm_start=True).fit(blobs_2d)


def test_warm_start_rejects_new_width(blobs_2d, tiny_params):
    est = FlowDensity(random_state=0, warm_start=True, **tiny_params).fit(blobs_2d)
    with pytest.raises(ValueError, match="features"):
        est.fit(np.c_[blobs_2d, blobs_2d[:, :1]])


def test_verbose_shows_progress_and_quiet_is_silent(blobs_2d, tiny_params, capsys):
    FlowDensity(random_state=0, verbose=0, **tiny_params).fit(blobs_2d)
    quiet = capsys.readouterr()
    assert quiet.out == "" and quiet.err == ""
    FlowDensity(random_state=0, verbose=1, **tiny_params).fit(blobs_2d)
    err = capsys.readouterr().err
    assert "epoch" in err and "train_nll" in err and "val_nll" in err


def test_device_resolution(blobs_2d, tiny_params):
    est = FlowDensity(device="auto", random_state=0, **tiny_params).fit(blobs_2d)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert est.device_.type == expected
    est = FlowDensity(device=torch.device("cpu"), random_state=0, **tiny_params).fit(blobs_2d)
    assert est.device_ == torch.device("cpu")
    est = FlowDensity(device="cpu:0", random_state=0, **tiny_params).fit(blobs_2d)
    assert est.device_ == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be"):
        FlowDensity(device="tpu", **tiny_params).fit(blobs_2d)


def test_is_on_tells_where_a_module_lives_without_moving_it():
    layer = torch.nn.Linear(2, 2)
    assert is_on(layer, torch.device("cpu"))
    # Device objects need no GPU to exist; a CPU module is on none of them.
    assert not is_on(layer, torch.device("cuda"))
    assert not is_on(layer, torch.device("cuda", 1))
    assert is_on(torch.nn.ReLU(), torch.device("cuda"))  # nothing to move
    assert next(layer.parameters()).device.type == "cpu"


def test_scoring_does_not_move_a_flow_already_on_its_device(blobs_2d, tiny_params, monkeypatch):
    est = FlowDensity(device="cpu", random_state=0, **tiny_params).fit(blobs_2d)
    expected = est.score_samples(blobs_2d)

    def refuse(*args, **kwargs):
        raise AssertionError("Module.to was called on a flow already on its device")

    monkeypatch.setattr(est.flow_, "to", refuse)
    np.testing.assert_array_equal(est.score_samples(blobs_2d), expected)
    assert est.sample(3, random_state=0).shape == (3, blobs_2d.shape[1])
    # A flow someone left in training mode is still scored in evaluation mode.
    est.flow_.train()
    np.testing.assert_array_equal(est.score_samples(blobs_2d), expected)
    assert not any(module.training for module in est.flow_.modules())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_is_a_clear_error(blobs_2d, tiny_params):
    with pytest.raises(ValueError, match="CUDA is not available"):
        FlowDensity(device="cuda", **tiny_params).fit(blobs_2d)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(blobs_2d, tiny_params):
    cpu = FlowDensity(device="cpu", random_state=0, **tiny_params).fit(blobs_2d)
    gpu = FlowDensity(device="cuda", random_state=0, **tiny_params).fit(blobs_2d)
    assert gpu.device_.type == "cuda"
    # Same initial weights and (drawn on the CPU) the same batches; without dropout, training
    # differs only by float rounding on the two devices.
    np.testing.assert_allclose(gpu.score_samples(blobs_2d), cpu.score_samples(blobs_2d), atol=0.05)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_inference_matches_the_same_weights_on_cpu(blobs_2d, tiny_params):
    """One set of weights gives the same numbers on either device, to float32 rounding."""
    gpu = FlowDensity(device="cuda", random_state=0, **tiny_params).fit(blobs_2d)
    on_gpu = (
        gpu.score_samples(blobs_2d),
        gpu.transform(blobs_2d),
        gpu.sample(50, random_state=3),
    )
    assert next(gpu.flow_.parameters()).device.type == "cuda"
    gpu.device_ = torch.device("cpu")  # what a CPU-only machine sees after unpickling
    on_cpu = (
        gpu.score_samples(blobs_2d),
        gpu.transform(blobs_2d),
        gpu.sample(50, random_state=3),
    )
    assert next(gpu.flow_.parameters()).device.type == "cpu"
    for got, expected in zip(on_gpu, on_cpu, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_syncs_per_epoch_not_per_batch(blobs_2d, tiny_params):
    """Nothing is read back from the GPU per batch: a fit with 8x more batches per epoch makes
    exactly as many host syncs (each one would stall the GPU's queue)."""
    counts = []
    for batch_size in (16, 128):
        est = FlowDensity(
            device="cuda",
            random_state=0,
            batch_size=batch_size,
            **{**tiny_params, "max_iter": 3, "n_iter_no_change": 10},
        )
        est.fit(blobs_2d[:40])  # compile and cache the kernels outside the count
        previous = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with pytest.warns(UserWarning) as record:
                est.fit(blobs_2d)
        finally:
            torch.cuda.set_sync_debug_mode(previous)
        counts.append(sum("synchronizing" in str(w.message) for w in record))
        assert est.n_iter_ == 3
    assert counts[0] > 0, "the sync detector saw nothing (is the debug mode working?)"
    assert counts[0] == counts[1], f"host syncs grew with the number of batches: {counts}"


@pytest.mark.parametrize(("n_jobs", "expected"), [(None, 1), (2, 2)])
def test_n_jobs_sets_torch_threads_during_fit_and_restores(
    n_jobs, expected, blobs_2d, tiny_params, monkeypatch
):
    seen = []
    real = training.mean_nll

    def spy(flow, batch, *args):
        seen.append(torch.get_num_threads())
        return real(flow, batch, *args)

    monkeypatch.setattr(training, "mean_nll", spy)
    before = torch.get_num_threads()
    FlowDensity(n_jobs=n_jobs, random_state=0, **tiny_params).fit(blobs_2d)
    assert set(seen) == {expected}
    assert torch.get_num_threads() == before


def test_learning_rate_warms_up_then_holds(blobs_2d, monkeypatch):
    """Linear warm-up over the first 3 epochs, so the data-fitted start is not knocked away."""
    rates = _record_learning_rates(monkeypatch)
    est = FlowDensity(**_WARMUP_CASE)
    with pytest.warns(Warning, match="max_iter"):
        est.fit(blobs_2d)
    warmup = 3 * 6  # 600 rows in batches of 100, three epochs
    np.testing.assert_allclose(rates[:warmup], 1e-2 * np.arange(1, warmup + 1) / warmup)
    assert rates[warmup:] == [1e-2] * (len(rates) - warmup)


@pytest.mark.parametrize(
    ("n_train", "expected"), [(50, 50), (1000, 64), (5000, 125), (20000, 500), (10**6, 1024)]
)
def test_auto_batch_size_grows_with_data(n_train, expected):
    assert FlowDensity()._training_config(n_train, 16).batch_size == expected
    assert FlowDensity(batch_size=64)._training_config(n_train, 16).batch_size == min(64, n_train)


@pytest.mark.parametrize(
    ("n_features", "n_train", "batch", "learning_rate"),
    [(1, 4000, 400, 3e-3), (2, 5625, 512, 3e-3), (2, 300, 64, 3e-3), (2, 50, 50, 3e-3),
     (2, 10**6, 512, 3e-3), (3, 5625, 140, 1e-3), (16, 5625, 140, 1e-3)],
)
def test_auto_training_settings_for_one_or_two_features(n_features, n_train, batch,
                                                        learning_rate):
    """One or two features: about 10 steps per epoch of at most 512 rows at learning
    rate 3e-3; more: 40 at 1e-3.
    A number given for either is used as it is."""
    config = FlowDensity()._training_config(n_train, n_features)
    assert (config.batch_size, config.learning_rate_init) == (batch, learning_rate)
    given = FlowDensity(batch_size=100, learning_rate_init=1e-2)._training_config(n_train, 2)
    assert (given.batch_size, given.learning_rate_init) == (min(100, n_train), 1e-2)


def test_initialisation_uses_a_random_subset_of_sorted_data(monkeypatch):
    """Sorted data: initialising from the first rows would see only the low end."""
    monkeypatch.setattr(training, "INIT_ROWS", 200)
    X = np.sort(np.random.default_rng(0).normal(size=(2000, 2)), axis=0)
    est = FlowDensity(n_transforms=1, hidden_layer_sizes=(8,), max_iter=1, random_state=0)
    with pytest.warns(Warning, match="max_iter"):
        est.fit(X)
    first_actnorm = est.flow_.transforms[0]
    # The data are standardised before the flow, so a representative subset has mean ~0.
    assert np.abs(first_actnorm.loc.detach().cpu().numpy()).max() < 0.25


def test_adamw_is_fused_on_cpu_and_falls_back_to_foreach(monkeypatch):
    params = [torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.zeros(4))]
    # torch has a fused CPU AdamW from 2.4 on; skflow supports 2.2, which refuses it.
    try:
        torch.optim.AdamW(params, fused=True)
        torch_has_fused_cpu = True
    except (RuntimeError, ValueError):
        torch_has_fused_cpu = False
    optimizer = training._adamw(params, 1e-3, 0.01)
    assert bool(optimizer.defaults["fused"]) is torch_has_fused_cpu
    assert bool(optimizer.defaults["foreach"]) is not torch_has_fused_cpu
    assert optimizer.defaults["weight_decay"] == 0.01

    # A torch without a fused kernel for the device refuses fused=True: use foreach instead.
    real_adamw = torch.optim.AdamW

    def no_fused(*args, fused=None, **kwargs):
        if fused:
            raise RuntimeError("fused=True requires all the params to be on a supported device")
        return real_adamw(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", no_fused)
    optimizer = training._adamw(params, 1e-3, 0.0)
    assert optimizer.defaults["foreach"] is True and not optimizer.defaults["fused"]


def test_initialisation_rows_follow_the_sample_weights():
    x = torch.arange(20, dtype=torch.float32).unsqueeze(1)
    generator = torch.Generator().manual_seed(0)
    # Unweighted and small: every row, in order.
    unweighted = training._initialisation_rows(training.TrainingData(x), generator)
    assert torch.equal(unweighted.x, x)
    # Weighted: rows of weight zero never shape the initialisation, heavier rows more often.
    weight = torch.zeros(20)
    weight[:5] = 1.0
    weight[0] = 10.0
    drawn = training._initialisation_rows(training.TrainingData(x, weight=weight), generator)
    assert drawn.x.shape == (20, 1)
    assert set(drawn.x[:, 0].tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0}
    assert (drawn.x == 0.0).sum() > (drawn.x == 1.0).sum()


def _creeping_validation(monkeypatch, step: float) -> list[float]:
    """Make every validation pass report an NLL ``step`` lower than the one before."""
    reported: list[float] = []

    def creeping(*args, **kwargs):
        reported.append(1.0 - step * len(reported))
        return reported[-1]

    monkeypatch.setattr(training, "evaluate_nll", creeping)
    return reported


def test_window_rule_stops_a_curve_that_creeps_down_by_new_bests(blobs_2d, monkeypatch):
    """Every epoch a new best by 3e-4 nats. With the earlier default tol=1e-4 such a curve
    runs to max_iter (as it did under the earlier rule, which counted epochs without a new
    best); tol="auto" stops it at the first window whose total gain is below 1e-3 per feature."""
    params = dict(n_transforms=1, hidden_layer_sizes=(8,), max_iter=30, n_iter_no_change=5,
                  random_state=0)
    _creeping_validation(monkeypatch, 3e-4)
    # tol=1e-4 over a window: 5 epochs gain 1.5e-3 > 1e-4, so training runs to max_iter.
    with pytest.warns(ConvergenceWarning):
        FlowDensity(tol=1e-4, **params).fit(blobs_2d)
    _creeping_validation(monkeypatch, 3e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = FlowDensity(tol="auto", **params).fit(blobs_2d)
    # "auto" on 2 features is 2e-3 per window: the first full window (5 epochs) gains 1.5e-3.
    assert est.n_iter_ == 5
    # The last epoch was the best one reported, and its weights are the ones kept.
    assert est.best_validation_score_ == max(est.validation_scores_) == est.validation_scores_[-1]


def test_window_rule_keeps_the_best_validated_weights(blobs_2d):
    """The model returned is the one of the best validated epoch: a fit stopped by max_iter at
    that epoch (same seed, so the same epochs) hands back identical weights."""
    params = dict(n_transforms=2, hidden_layer_sizes=(16,), max_iter=200, n_iter_no_change=4,
                  learning_rate_init=1e-2, tol="auto", random_state=0)
    est = FlowDensity(**params).fit(blobs_2d)
    assert est.n_iter_ < 200
    best_epoch = int(np.argmax(est.validation_scores_)) + 1
    assert best_epoch < est.n_iter_, "the test needs a run that went on past its best epoch"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        at_best = FlowDensity(**dict(params, max_iter=best_epoch)).fit(blobs_2d)
    np.testing.assert_array_equal(est.score_samples(blobs_2d), at_best.score_samples(blobs_2d))


def test_callback_sees_every_epoch_as_the_fitted_curves_record_it(blobs_2d):
    seen = []
    est = FlowDensity(n_transforms=2, hidden_layer_sizes=(16,), max_iter=6, n_iter_no_change=10,
                      random_state=0, callback=seen.append)
    with pytest.warns(ConvergenceWarning):
        est.fit(blobs_2d)
    assert [info.epoch for info in seen] == list(range(1, 7))
    np.testing.assert_allclose([info.train_loss for info in seen], est.loss_curve_)
    np.testing.assert_allclose([info.validation_score for info in seen], est.validation_scores_)
    best_so_far = np.maximum.accumulate(est.validation_scores_)
    np.testing.assert_allclose([info.best_validation_score for info in seen], best_so_far)
    assert seen[-1].best_validation_score == pytest.approx(est.best_validation_score_)
    assert all(info.learning_rate > 0 for info in seen)
    elapsed = [info.elapsed for info in seen]
    assert elapsed == sorted(elapsed) and elapsed[0] > 0


def test_callback_returning_true_stops_training_without_a_warning(blobs_2d):
    def stop_at_third(info):
        return info.epoch == 3

    est = FlowDensity(n_transforms=2, hidden_layer_sizes=(16,), max_iter=50, random_state=0,
                      callback=stop_at_third)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est.fit(blobs_2d)
    assert est.n_iter_ == 3 and len(est.validation_scores_) == 3
    # The weights kept are the best validated ones, as after early stopping.
    assert est.best_validation_score_ == pytest.approx(max(est.validation_scores_))


def test_callback_scores_rows_with_each_epochs_weights_and_leaves_the_fit_alone():
    rng = np.random.default_rng(0)
    X = np.c_[rng.normal(size=(400, 3)), rng.integers(0, 4, 400)]  # dropout and a discrete column
    params = dict(n_transforms=2, hidden_layer_sizes=(16,), max_iter=4, early_stopping=False,
                  random_state=0)
    curve = []
    with pytest.warns(ConvergenceWarning):
        scored = FlowDensity(**params, callback=lambda info: curve.append(
            info.score_samples(X[:100]))).fit(X)
        plain = FlowDensity(**params).fit(X)
    assert len(curve) == 4 and not np.array_equal(curve[0], curve[-1])
    # Without early stopping the fit is the last epoch's averaged weights: what it scored.
    np.testing.assert_array_equal(curve[-1], scored.score_samples(X[:100]))
    np.testing.assert_array_equal(scored.score_samples(X), plain.score_samples(X))


def test_callback_must_be_callable(blobs_2d):
    with pytest.raises(ValueError, match="callback"):
        FlowDensity(callback="print").fit(blobs_2d)
