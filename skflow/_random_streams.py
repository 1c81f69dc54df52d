"""Independent, reproducible random streams derived from one ``random_state``.

Every random choice an estimator makes (initial weights, batch order, generated rows, the
detector's training subset ...) draws from a stream of its own, seeded from the estimator's
``random_state``, so that changing how much one stream consumes leaves the others alone. As
scikit-learn does, an int ``random_state`` gives the same seeds at every call, and a
``RandomState`` instance advances with each call.

A stream's seed is one draw of ``random_state``'s sequence of 31-bit integers, optionally
XOR-ed with a constant that sets it apart from another stream using the same draw. The
table below is the only place these positions are chosen; it reproduces the seeds of earlier
releases exactly, so a fixed ``random_state`` keeps giving the same models and rows.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

SEED_MAX = int(np.iinfo(np.int32).max)

# stream name -> (which draw of random_state's sequence, constant XOR-ed into it)
_STREAMS: dict[str, tuple[int, int]] = {
    # ``fit``: the flow's initial weights (and dropout masks), then the batch order; the
    # validation split continues the same sequence after these two draws.
    "initialisation": (0, 0),
    "batch_order": (1, 0),
    # FlowSampler.fit_resample: the generated rows, independent of the two streams of fit.
    "generation": (2, 0),
    # ``sample``: the latent draws of new rows (the only stream of that call).
    "latent_draws": (0, 0),
    # FlowOutlierDetector: its training subset (max_samples) and the model's own rows that
    # place the "auto" threshold; each XOR-ed apart from fit's first stream.
    "training_subset": (0, 0x2545F491),
    "threshold_rows": (0, 0x5F3759DF),
}


def derived_seeds(random_state, *streams: str) -> tuple[int, ...]:
    """Seeds (ints in ``[0, 2**31)``) of the named ``streams`` of ``random_state``.

    Parameters
    ----------
    random_state : int, RandomState instance or None
        As scikit-learn estimators take it. One call draws from it once (as many values as
        the furthest stream asked for needs), so asking for two streams in one call is not
        the same as two calls when ``random_state`` is a ``RandomState`` instance.
    *streams : str
        Names from the table above.

    Returns
    -------
    tuple of int
        One seed per stream, in the order asked.
    """
    unknown = [name for name in streams if name not in _STREAMS]
    if unknown:
        raise ValueError(f"unknown random stream(s) {unknown}; known: {sorted(_STREAMS)}")
    positions = [_STREAMS[name] for name in streams]
    n_draws = max(index for index, _ in positions) + 1
    draws = check_random_state(random_state).randint(SEED_MAX, size=n_draws)
    return tuple(int(draws[index]) ^ mask for index, mask in positions)


def derived_seed(random_state, stream: str) -> int:
    """The seed of one named stream of ``random_state`` (see :func:`derived_seeds`)."""
    return derived_seeds(random_state, stream)[0]
