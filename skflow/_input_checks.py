"""Checks of what users pass in and ask for, made before any work, with errors that name
the problem: X's columns and values, and the size of a requested result."""

from __future__ import annotations

import os

import numpy as np
from sklearn.utils.validation import validate_data


def validate_X(estimator, X, reset: bool) -> np.ndarray:
    """``X`` checked and converted for ``estimator``: dense, numeric, finite, float64, at least
    two rows when fitting (``reset=True``); a non-numeric column is named in the error."""
    check_integers_fit_float64(X)
    try:
        return validate_data(
            estimator,
            X,
            reset=reset,
            dtype=np.float64,
            ensure_min_samples=2 if reset else 1,
            accept_sparse=False,
        )
    except (ValueError, TypeError) as error:
        # numpy and pandas word a failed cast in several ways (a DTypePromotionError, the
        # one datetime columns give, is a TypeError); none of them names the column.
        casting = ("could not convert", "argument must be", "Cannot cast", "DType")
        if isinstance(error, TypeError):
            # Only numpy's failed promotions (a DTypePromotionError; before numpy 1.25 a
            # plain TypeError saying so): other TypeErrors (a dict in an object array)
            # stay TypeErrors, as scikit-learn's estimator checks expect.
            casting = ("DTypePromotionError", "could not be promoted")
        if not any(phrase in f"{type(error).__name__}: {error}" for phrase in casting):
            raise
        columns = [name for name, _ in non_numeric_columns(X)]
        named = f" (non-numeric column(s): {columns})" if columns else ""
        raise ValueError(
            f"{type(estimator).__name__} needs numeric X{named}; encode non-numeric columns "
            "first (e.g. with sklearn.preprocessing.OneHotEncoder). Original error: "
            f"{error}"
        ) from error


def check_output_fits(n_rows: int, n_columns: int) -> None:
    """Refuse, naming its size, a float64 (n_rows, n_columns) result larger than the machine.

    ``sample(10**12)`` was a raw allocation error from deep inside torch; this says so before
    anything is done.
    """
    needed = float(n_rows) * n_columns * 8
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): numpy will say
        return
    if needed > physical:
        raise ValueError(
            f"the {n_rows:,} requested rows of {n_columns} float64 columns need "
            f"{needed / 2**30:,.1f} GiB, more than this machine's {physical / 2**30:,.1f} GiB "
            "of memory; draw fewer rows per call (calls with different random_state values "
            "give independent rows)"
        )


def output_array(n_rows: int, n_columns: int) -> np.ndarray:
    """An empty float64 (n_rows, n_columns) array, or a ValueError naming its size."""
    check_output_fits(n_rows, n_columns)
    try:
        return np.empty((n_rows, n_columns))
    except MemoryError as error:
        raise ValueError(
            f"the {n_rows:,} requested rows of {n_columns} float64 columns cannot be "
            "allocated; draw fewer rows per call"
        ) from error


# Integers up to 2**53 are exact in float64; beyond, neighbouring integers share a float.
_FLOAT64_EXACT_INTEGERS = 2**53


def check_integers_fit_float64(X) -> None:
    """Refuse integer columns whose distinct values float64 would merge.

    The flow computes in floating point, so every column is cast to float64; integers beyond
    2**53 (identifiers, nanosecond timestamps) lose their last digits, and distinct values
    would silently become equal (a column of them then looked constant).
    """
    # Only integer columns are looked at, so float data (every scoring call) pass at once.
    if hasattr(X, "dtypes") and hasattr(X, "columns"):
        integer = [name for name, dtype in X.dtypes.items() if getattr(dtype, "kind", "") in "iu"]
        columns = [(name, X[name].to_numpy()) for name in integer]
    elif isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype.kind in "iu":
        columns = list(enumerate(X.T))
    else:
        return
    merged = []
    for name, column in columns:
        try:
            as_float = column.astype(np.float64)
        except (TypeError, ValueError):  # missing values (pd.NA): validate_data names them
            continue
        if column.size == 0 or float(np.max(np.abs(as_float))) <= _FLOAT64_EXACT_INTEGERS:
            continue
        n_exact, n_float = len(np.unique(column)), len(np.unique(as_float))
        if n_float < n_exact:
            merged.append(f"{name!r} ({n_exact} distinct integers, {n_float} in float64)")
    if merged:
        raise ValueError(
            "X has integer column(s) with values beyond 2**53 that float64 cannot represent "
            f"exactly, so distinct values would become equal: {', '.join(merged)}. skflow "
            "models columns as floating-point numbers; drop identifier-like columns, or "
            "subtract an offset (e.g. the column's minimum) first."
        )


def non_numeric_columns(X) -> list[tuple]:
    """``(name, dtype)`` of each DataFrame column that holds neither numbers nor booleans
    (``[]`` for anything but a DataFrame). A categorical column is as numeric as its
    categories; nullable extension dtypes (``Int64``, ``boolean``) count as their numpy kind."""
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None or not hasattr(dtypes, "items"):
        return []
    found = []
    for name, dtype in dtypes.items():
        categories = getattr(dtype, "categories", None)
        kind = dtype_kind(categories.dtype if categories is not None else dtype)
        if kind not in "biuf":
            found.append((name, dtype))
    return found


def dtype_kind(dtype) -> str:
    """numpy's kind letter of a numpy or pandas extension dtype (nullable Int64: 'i')."""
    numpy_dtype = getattr(dtype, "numpy_dtype", dtype)
    return getattr(numpy_dtype, "kind", "O")
