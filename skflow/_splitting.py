"""The train / validation split, with every copy of a duplicated row on the same side."""

from __future__ import annotations

import numpy as np

# Equal rows are taken for copies of one row while there are at most this share of the rows
# of them. More equal rows than that are a point mass the data really have (on 23_mammography
# 29% of the rows are one row of zeros and ones), which a split by rows must see on both sides.
MAX_COPIES_SHARE = 0.01


def copy_groups(X: np.ndarray, columns: np.ndarray) -> np.ndarray | None:
    """Group index of each row: copies of one row share one, any other row is on its own.

    Rows equal on every one of ``columns`` are copies, unless there are more of them than
    ``MAX_COPIES_SHARE`` of the rows. None when there are no copies (or no columns).

    The key of a row is a weighted sum of its ``columns``, computed column by column so that
    equal rows get bit-equal keys. Weights are random in [1, 2) over each column's largest
    magnitude (no overflow at 1e300); two different rows whose keys happen to coincide are
    merely kept on the same side of the split, which costs nothing.
    """
    if columns.size == 0:
        return None
    weights = np.random.RandomState(0).uniform(1.0, 2.0, size=columns.size)
    key = np.zeros(X.shape[0])
    for weight, j in zip(weights, columns, strict=True):
        column = X[:, j]
        key += column * (weight / np.max(np.abs(column)))
    _, group, counts = np.unique(key, return_inverse=True, return_counts=True)
    group = group.reshape(-1)
    copies = (counts > 1) & (counts <= max(2, int(MAX_COPIES_SHARE * X.shape[0])))
    if not np.any(copies):
        return None
    # Rows of a point mass, like unique rows, get groups of their own.
    alone = ~copies[group]
    group = group.copy()
    group[alone] = len(counts) + np.arange(int(alone.sum()))
    return np.unique(group, return_inverse=True)[1].reshape(-1)


def train_validation_split(
    n_rows: int, n_validation: int, rng: np.random.RandomState, groups: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and validation row indices, about ``n_validation`` of them held out.

    Without ``groups`` it is a random split of the rows. With them, whole groups are held out
    in random order until at least ``n_validation`` rows are, and at least one group stays
    for training: copies of a training row among the validation rows would reward the
    memorising that early stopping is there to stop.
    """
    if groups is None:
        order = rng.permutation(n_rows)
        return np.sort(order[n_validation:]), np.sort(order[:n_validation])
    counts = np.bincount(groups)
    order = rng.permutation(len(counts))
    held = int(np.searchsorted(np.cumsum(counts[order]), n_validation)) + 1
    held_out = np.zeros(len(counts), dtype=bool)
    held_out[order[: min(held, len(counts) - 1)]] = True
    in_validation = held_out[groups]
    return np.flatnonzero(~in_validation), np.flatnonzero(in_validation)
