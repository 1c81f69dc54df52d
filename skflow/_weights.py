"""Sample weights as the training loop can use them: positive, and on a float32-safe scale."""

from __future__ import annotations

import numpy as np


def positive_weight_rows(
    X: np.ndarray, context: np.ndarray | None, sample_weight: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Keep the rows the weighted likelihood sees, with weights rescaled to at most 1.

    A row of weight zero contributes nothing to the likelihood, but kept in the training set
    it can fill a whole minibatch or the validation split, whose weighted mean is then 0 / 0.
    Dropping those rows makes a fit with zero weights the fit on the other rows. Weights are
    divided by their largest value because the loop runs in float32: weights of 1e-50 or
    1e40 are valid but would underflow or overflow there. A weight that is still below
    float32's range after that (under about 1e-45 of the largest) counts as zero.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Validated rows.
    context : ndarray of shape (n_samples, n_context) or None
        Conditioning values of the rows, if any.
    sample_weight : ndarray of shape (n_samples,) or None
        Validated non-negative weights (``_check_sample_weight``), or None.

    Returns
    -------
    X, context, sample_weight
        The rows of positive weight; ``sample_weight`` is None when the kept weights are all
        equal, since they then define the unweighted likelihood (and the unweighted fit).

    Raises
    ------
    ValueError
        If fewer than two rows have a positive weight.
    """
    if sample_weight is None:
        return X, context, None
    largest = float(np.max(sample_weight))
    scaled = sample_weight / largest if largest > 0 else sample_weight
    positive = scaled.astype(np.float32) > 0
    n_positive = int(np.sum(positive))
    if n_positive < 2:
        raise ValueError(
            f"sample_weight has {n_positive} positive entr{'y' if n_positive == 1 else 'ies'} "
            f"out of {len(sample_weight)}: a density needs at least two rows of positive "
            "weight (rows of weight zero are left out of the fit)"
        )
    if not np.all(positive):
        X = X[positive]
        context = None if context is None else context[positive]
        scaled = scaled[positive]
    if np.all(scaled == scaled[0]):
        # Equal weights define the unweighted likelihood; dropping them makes the fit identical
        # to the unweighted one (weighted initialisation rows are drawn with replacement, so
        # it would otherwise start elsewhere).
        return X, context, None
    return X, context, scaled
