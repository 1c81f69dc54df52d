"""Reading ``y`` for the conditional estimators: missing values, shape, classes or conditions."""

from __future__ import annotations

import numpy as np
from sklearn.utils.multiclass import type_of_target


def _is_missing(values: np.ndarray) -> np.ndarray:
    """Boolean mask of missing entries (NaN, None, pandas NA) in a 1-D or 2-D array."""
    if values.dtype.kind in "fc":
        return np.isnan(values)
    if values.dtype.kind == "O":
        flat = [
            v is None
            or (isinstance(v, float) and v != v)
            or type(v).__name__ in ("NAType", "NaTType")
            for v in values.ravel()
        ]
        return np.array(flat, dtype=bool).reshape(values.shape)
    return np.zeros(values.shape, dtype=bool)


def _as_target_array(y, n_rows: int | None, name: str = "y") -> np.ndarray:
    """``y`` as a numpy array (1-D or 2-D), checked for length and missing values."""
    if hasattr(y, "to_numpy"):  # pandas Series / DataFrame
        y = y.to_numpy()
    y = np.asarray(y)
    if y.ndim == 0 or y.ndim > 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got an array of shape {y.shape}")
    if n_rows is not None and y.shape[0] != n_rows:
        raise ValueError(
            f"{name} has {y.shape[0]} entries but X has {n_rows} rows; they must match"
        )
    missing = _is_missing(y)
    if np.any(missing):
        rows = np.flatnonzero(missing.reshape(len(y), -1).any(axis=1))
        raise ValueError(
            f"{name} contains missing values (NaN or None) at row(s) {rows[:10].tolist()}"
            f"{' ...' if len(rows) > 10 else ''}: drop those rows or impute {name} first"
        )
    if y.dtype.kind in "fc" and not np.all(np.isfinite(y)):
        raise ValueError(f"{name} contains infinite values")
    if y.dtype == object:
        is_text = np.array([isinstance(v, str | bytes) for v in y.ravel()])
        if is_text.any() and not is_text.all():
            raise ValueError(
                f"{name} mixes string and non-string labels (e.g. {y.ravel()[is_text][0]!r} "
                f"and {y.ravel()[~is_text][0]!r}); use one type for all labels"
            )
    return y


def _target_kind(y: np.ndarray) -> str:
    """Tell "classes" from "continuous" by the documented rule (see FlowSampler's ``fit``)."""
    if y.ndim == 2:
        if y.dtype.kind not in "biuf":
            raise ValueError(
                "a 2-D y holds continuous conditions (one per column) and must be numeric; "
                "pass class labels as a 1-D array"
            )
        return "continuous"
    kind = type_of_target(y)
    if kind in ("binary", "multiclass"):
        return "classes"
    if kind == "continuous":
        return "continuous"
    raise ValueError(f"Unknown label type: y of type {kind!r} is not supported")


# Rows used to look for columns of X that the conditions determine: an affine relation holds
# on every subset of the rows, so a sample finds it at a bounded cost.
_LEAK_CHECK_ROWS = 10_000
# Residual variance, relative to the column's, below which a column counts as determined
# (exact relations leave rounding only, around 1e-30; any noise leaves far more).
_LEAK_TOL = 1e-12


def check_conditions_not_in_X(X: np.ndarray, conditions: np.ndarray) -> None:
    """Refuse columns of ``X`` that are affine functions of the continuous ``conditions``.

    Given y, such a column is a point mass, which has no density: the fit diverges. It is a
    common leak (``y = df["age"]`` with ``X = df``, possibly rescaled in a Pipeline).

    Raises
    ------
    ValueError
        Naming the columns, if any.
    """
    rows = np.linspace(0, X.shape[0] - 1, min(X.shape[0], _LEAK_CHECK_ROWS)).astype(np.intp)
    x, c = X[rows], conditions[rows]
    if len(rows) <= c.shape[1] + 1:
        return  # too few rows to tell a relation from a coincidence
    design = np.c_[np.ones(len(rows)), (c - c.mean(axis=0)) / np.maximum(c.std(axis=0), 1e-300)]
    centred = x - x.mean(axis=0)
    scale = np.maximum(np.abs(centred).max(axis=0), 1e-300)
    centred = centred / scale
    coef = np.linalg.lstsq(design, centred, rcond=None)[0]
    residual = np.mean((centred - design @ coef) ** 2, axis=0)
    variance = np.mean(centred**2, axis=0)
    # Constant columns are left to the preprocessing, which has its own message for them.
    determined = (residual <= _LEAK_TOL * variance) & (variance > 0)
    if np.any(determined):
        raise ValueError(
            f"X column(s) {np.flatnonzero(determined).tolist()} are affine functions of y: "
            "given y they take a single value, which has no density, so p(x | y) cannot be "
            "fitted. Leave those columns out of X (or out of y), e.g. when y is a column of X."
        )
