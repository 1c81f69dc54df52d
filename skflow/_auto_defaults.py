"""The "auto" defaults of the estimators, each beside the measurement that chose it.

Every "auto" parameter resolves here, from the shape of the data (rows, modelled features,
whether the flow is conditional): batch size, learning rate, stopping tolerance, spline bins,
dropout and input dropout. The comments give the evidence; the sections of
``docs/design_notes.md`` they name hold the tables and the commands that reproduce them.
"""

from __future__ import annotations

import numpy as np

# The default: on the oversampling benchmark (docs/design_notes.md) rows moved by a quarter of
# the latent standard deviation kept a downstream classifier's ranking (average precision)
# where rows drawn from the model had cost it, at the same balanced accuracy.
DEFAULT_LATENT_NOISE = 0.25
# The default batch: about 40 steps per epoch (n_train // 40), at least 64 rows and at most
# 1024. Early stopping, the plateau schedule, the warm-up and the parameter average all count
# in epochs, so a data set of a few thousand rows needs enough steps per epoch for those clocks
# to mean anything: with the earlier floor of 256 rows, 1,200 rows got 5 steps per epoch, and
# smaller batches gave a better test likelihood on all six real density benchmark sets (cardio
# by 0.5 nats, digits by 2.0) for 1.5-2x the fit time. Above 10,240 rows nothing changed;
# there the largest batch keeps each epoch of a large data set to fewer, fuller steps.
# Measured in docs/design_notes.md ("A smaller automatic batch on small data").
_AUTO_BATCH_MIN, _AUTO_BATCH_MAX, _AUTO_STEPS_PER_EPOCH = 64, 1024, 40
# With one or two features (the "low_dim" regime below: no dropout, so no mask noise to average
# over) a step costs about the same at 140 rows as at 512, so "auto" takes about 10 steps per
# epoch of at most 512 rows, at learning rate 3e-3. On the three 2-D benchmark sets (5,625
# training rows) over data seeds 1 and 2 that fitted 1.8-2.8x faster for a test NLL 0.0008
# nats better on average (worst +0.004); on seed 0, 0.002-0.007 worse. Batches of
# n_train // 10 uncapped (562 rows there) lost 0.02-0.03 nats, probably to the 5-row last
# batch of each epoch at the larger rate. Measured in docs/design_notes.md ("Time to a good
# density").
_LOW_DIM_STEPS_PER_EPOCH, _LOW_DIM_BATCH_MAX = 10, 512
_LOW_DIM_LEARNING_RATE, _LEARNING_RATE = 3e-3, 1e-3
# "auto" spline bins and dropout. With one or two features every conditioner sees one input
# feature (or none): a smooth function of one variable that thousands of rows pin down, so
# dropout only blurs it, and finer splines add few parameters. With more features the
# conditioners see many inputs and over-fit within a few epochs: coarse splines and heavy
# dropout (4 bins, 0.5) gave a better test likelihood on 7 of the 8 benchmark sets with 5+
# features and on a 16-D synthetic set at 5,000 to 100,000 rows, but need about three times
# the epochs. Up to 10,000 rows that keeps a default fit within about a minute on two cores
# (10,000 x 16: 45 s; at 20,000 x 16 it took 98 s against 39 s for the lighter setting, since
# the principal-component initialisation of the first LU layer); above, an epoch is expensive
# and the lighter setting (8 bins, 0.2) converges faster.
# Conditional flows (FlowSampler with y) keep the lighter setting: with unweighted classes,
# rows generated for cardio's minority class under the heavy setting trained a classifier to
# 59% of its real-data score instead of 74% (probably because dropout also hides the
# condition from the conditioners; measured before balanced class weights became the default).
# Measured in docs/design_notes.md ("Defaults for one or two features", "Heavier
# regularisation by default").
_LOW_DIM_MAX_FEATURES = 2
# "auto" tol: training stops once the best validation NLL has improved by less than 1e-3 nats
# per modelled feature over the last n_iter_no_change epochs (a window rule, see
# ``_engine.training``). Replayed on the validation curves of benchmarks/fit_cost.py, the
# earlier rule (stop after 10 epochs without a new best by 1e-4 nats) spent 15-40% of each fit
# on gains of at most 0.008 nats per feature. Measured in docs/design_notes.md ("Time to a good
# density").
AUTO_TOL_PER_FEATURE = 1e-3
_SMALL_DATA_MAX_ROWS = 10_000
# (spline bins, dropout) of each "auto" regime.
_AUTO_REGULARISATION = {"low_dim": (16, 0.0), "heavy": (4, 0.5), "light": (8, 0.2)}
# "auto" input dropout: in the heavy regime with fewer than 200 rows per feature, a
# conditioner has many inputs and few rows to tell the informative ones from noise, and learns
# the noise. Dropping its inputs (0.3) improved the test likelihood on three seeds of the
# benchmark sets in that range: Waveform by 0.15-0.18 nats each time, satellite by 0.04-0.20,
# digits on average by 0.09 and cardio by 0.01 (both mixed). With more rows per feature the
# conditioners can learn real dependencies, and hiding inputs cost pendigits (336 rows per
# feature) 2.2 nats, annthyroid (889) 0.16 and the 10-D funnel (625) a threefold KL gap.
# Measured in docs/design_notes.md ("Input dropout").
_INPUT_DROPOUT_MAX_ROWS_PER_FEATURE = 200
_AUTO_INPUT_DROPOUT = 0.3


def _auto_regime(n_features: int, n_samples: int, conditional: bool) -> str:
    """Which "auto" bins/dropout pair data of this shape get (see the comment above)."""
    if n_features <= _LOW_DIM_MAX_FEATURES:
        return "low_dim"
    if conditional or n_samples > _SMALL_DATA_MAX_ROWS:
        return "light"
    return "heavy"


def resolve_regularisation(
    n_bins: int | str,
    dropout: float | str,
    input_dropout: float | str,
    n_features: int,
    n_samples: int,
    conditional: bool = False,
) -> tuple[int, float, float]:
    """Spline bins, conditioner dropout and input dropout: each as given, or its "auto"
    choice for the data's shape (see the comments above)."""
    regime = _auto_regime(n_features, n_samples, conditional)
    auto_bins, auto_dropout = _AUTO_REGULARISATION[regime]
    few_rows = n_samples < _INPUT_DROPOUT_MAX_ROWS_PER_FEATURE * n_features
    auto_input_dropout = _AUTO_INPUT_DROPOUT if regime == "heavy" and few_rows else 0.0
    return (
        auto_bins if n_bins == "auto" else int(n_bins),
        auto_dropout if dropout == "auto" else float(dropout),
        auto_input_dropout if input_dropout == "auto" else float(input_dropout),
    )


def auto_batch_size(n_train: int, n_features: int) -> int:
    """The "auto" minibatch size for ``n_train`` training rows of ``n_features`` modelled
    features (before clipping to ``n_train``; see the comments above)."""
    if n_features <= _LOW_DIM_MAX_FEATURES:
        steps, most = _LOW_DIM_STEPS_PER_EPOCH, _LOW_DIM_BATCH_MAX
    else:
        steps, most = _AUTO_STEPS_PER_EPOCH, _AUTO_BATCH_MAX
    return int(np.clip(n_train // steps, _AUTO_BATCH_MIN, most))


def auto_learning_rate(n_features: int) -> float:
    """The "auto" AdamW step size (see the comments above)."""
    return _LOW_DIM_LEARNING_RATE if n_features <= _LOW_DIM_MAX_FEATURES else _LEARNING_RATE


def auto_tol(n_features: int) -> float:
    """``FlowDensity``'s "auto" stopping tolerance: ``AUTO_TOL_PER_FEATURE`` per feature."""
    return AUTO_TOL_PER_FEATURE * n_features
