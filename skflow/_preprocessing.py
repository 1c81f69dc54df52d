"""What happens to X before the flow: discrete columns, constant columns, standardisation.

Every map here keeps track of its log-Jacobian, so the estimators can report log-densities in
the units of the user's X.

Discrete columns (binary flags, counts, ratings, values recorded on a grid) are dequantised:
a value ``x`` on a grid of step ``h`` stands for the cell ``[x, x + h)``, training sees
``x + h * u`` with fresh ``u ~ U(0, 1)`` every epoch, and scoring averages the learned density
over fixed points of the cell (:func:`cell_offsets`). So a discrete column contributes the
probability of its value's cell divided by ``h`` (the density of the dequantised variable, in
the units of X like a continuous column's), and no column can collect the unbounded density
spikes a continuous model puts on repeated values.
"""

from __future__ import annotations

import functools
from numbers import Integral

import numpy as np
import scipy.linalg
from scipy.stats import qmc

from ._warnings import warn_at_caller

# A column whose spread is below this fraction of its magnitude is numerically constant.
_RELATIVE_CONSTANT_TOL = 1e-12
# "auto" calls a column discrete only if its values repeat: at most this fraction of the rows
# are distinct values (two rows of continuous data are always "on a grid" of their gap).
_AUTO_MAX_DISTINCT_FRACTION = 0.5
# Values must sit on the grid to this fraction of its step (float rounding of 0.1-steps etc.).
_GRID_TOL = 1e-6
# ... widened by what float32 storage does to values of the column's magnitude, so the same
# data given as float32 or float64 get the same treatment (a 0.1-step rating up to 10 is off
# its grid by up to 1e-5 steps in float32), unless the grid is too fine for float32 to resolve.
_FLOAT32_EPS = float(np.finfo(np.float32).eps)
_MAX_GRID_TOL = 1e-2


def grid_step(column: np.ndarray) -> float | None:
    """The step of the regular grid the values lie on, or ``None`` if they lie on none.

    The candidate step is the smallest gap between distinct values, refined over the whole
    range; the values lie on the grid when every one is the smallest value plus an integer
    number of steps, to float32 precision.
    """
    return _grid_step_of(np.unique(column))


def _grid_step_of(values: np.ndarray) -> float | None:
    """:func:`grid_step` given the column's sorted distinct values.

    Callers that need the distinct values themselves compute them once and pass them here.
    """
    if len(values) < 2:
        return None
    # In the column's power-of-two unit, exactly as column_moments does, so that a span like
    # 1e308 - (-1e308) cannot overflow; dividing by a power of two changes no digit.
    unit = float(power_of_two_unit(np.array(max(abs(values[0]), abs(values[-1])))))
    step = _unit_grid_step(values / unit)
    if step is None or not np.isfinite(step * unit):  # a cell wider than float64 reaches
        return None
    return step * unit


def _unit_grid_step(values: np.ndarray) -> float | None:
    """:func:`_grid_step_of` for sorted distinct values of magnitude at most 1."""
    span = float(values[-1] - values[0])
    # One gap between rounded values is uncertain by the rounding; the whole range, divided
    # by the number of steps it spans, pins the step down far better.
    step = span / round(span / float(np.min(np.diff(values))))
    offsets = (values - values[0]) / step
    tol = _GRID_TOL + 4.0 * _FLOAT32_EPS * float(np.max(np.abs(values))) / step
    if tol > _MAX_GRID_TOL:
        tol = _GRID_TOL
    if np.max(np.abs(offsets - np.round(offsets))) > tol:
        return None
    return step


def _distinct_step(column: np.ndarray) -> float | None:
    """Cell width for a discrete column: its grid step, else the smallest gap between values."""
    values = np.unique(column)
    step = _grid_step_of(values)
    if step is not None:
        return step
    return None if len(values) < 2 else float(np.min(np.diff(values)))


def _is_auto_discrete(column: np.ndarray, max_distinct: float) -> bool:
    """The "auto" rule: few distinct values (they repeat), all on a regular grid."""
    values = np.unique(column)
    return len(values) <= max_distinct and _grid_step_of(values) is not None


def discrete_mask(X: np.ndarray, discrete_features) -> np.ndarray:
    """Resolve the ``discrete_features`` parameter to a boolean mask over the columns.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    discrete_features : "auto", bool or array-like of bool or int
        "auto" flags columns whose values lie on a regular grid and repeat (at most half as
        many distinct values as rows); True / False flag every / no column; an array gives a
        boolean mask or column indices.
    """
    n_rows, n_features = X.shape
    if isinstance(discrete_features, str):  # "auto", guaranteed by the parameter validation
        max_distinct = _AUTO_MAX_DISTINCT_FRACTION * n_rows
        return np.array(
            [_is_auto_discrete(X[:, j], max_distinct) for j in range(n_features)], dtype=bool
        )
    if isinstance(discrete_features, (bool, np.bool_)):
        return np.full(n_features, bool(discrete_features))
    spec = np.asarray(discrete_features)
    if spec.dtype == bool:
        if spec.shape != (n_features,):
            raise ValueError(
                f"discrete_features as a boolean mask must have one entry per feature "
                f"({n_features}), got shape {spec.shape}"
            )
        return spec.copy()
    if spec.ndim != 1 or not all(isinstance(i, Integral) for i in spec.tolist()):
        raise ValueError(
            "discrete_features must be 'auto', a bool, a boolean mask or an array of column "
            f"indices, got {discrete_features!r}"
        )
    if spec.size and (spec.min() < -n_features or spec.max() >= n_features):
        raise ValueError(
            f"discrete_features has column indices {spec.tolist()} out of range for "
            f"{n_features} features"
        )
    mask = np.zeros(n_features, dtype=bool)
    mask[spec] = True
    return mask


def power_of_two_unit(magnitude: np.ndarray) -> np.ndarray:
    """The power of two at or just below each magnitude (1 for 0).

    Values divided by it lie within [-2, 2]: their squares cannot overflow, and the division
    is exact. (The power just above overflows for magnitudes beyond 2**1023, about 9e307.)
    """
    unit = np.ldexp(0.5, np.frexp(magnitude)[1])
    return np.where(magnitude == 0, 1.0, unit)


def column_moments(
    columns: list[np.ndarray], weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted mean and variance of each column, safe from over- and underflow.

    Each column is first divided by the power of two just below its largest magnitude, so that
    squares neither overflow (values of 1e160) nor underflow (1e-200); a power of two divides
    exactly, so on ordinary data the moments are the same to the last bit.

    Returns
    -------
    unit, mean, variance : ndarray of shape (n_columns,)
        The powers of two, and the moments in those units: the column's mean is
        ``mean * unit`` and its variance ``variance * unit**2``.
    """
    unit = power_of_two_unit(np.array([np.max(np.abs(col)) for col in columns]))
    mean = np.array(
        [np.average(col / u, weights=weights) for col, u in zip(columns, unit, strict=True)]
    )
    variance = np.array(
        [
            np.average((col / u - m) ** 2, weights=weights)
            for col, u, m in zip(columns, unit, mean, strict=True)
        ]
    )
    return unit, mean, variance


# Rows used to look for exact affine dependences between continuous columns: an exact relation
# holds on every subset, so a sample finds it and keeps the check cheap on large data.
_DEPENDENCE_ROWS = 10_000
# A standardised column whose residual after regression on the others is below this fraction
# of its spread is an affine function of them: float32, which the flow runs in, cannot tell
# the data from a lower-dimensional set.
_DEPENDENCE_TOL = 1e-6


def _affinely_dependent_columns(X: np.ndarray, candidates: np.ndarray) -> list[list[int]]:
    """Groups of candidate columns (indices into X) in which the last is an affine function of
    the others; an empty list when there are none.

    Columns are taken in order, each regressed on the independent ones before it through an
    incremental Cholesky factor of their correlation matrix, so ``d`` columns cost one
    ``d x d`` Gram matrix and ``d`` triangular solves. With no more rows than columns every
    set of rows is dependent; that is the row-count check's to report, not this one's.
    """
    columns = np.flatnonzero(candidates)
    rows = X[:_DEPENDENCE_ROWS, columns]
    if len(columns) < 2 or rows.shape[0] <= len(columns) + 1:
        return []
    unit, mean, var = column_moments([rows[:, j] for j in range(len(columns))])
    standard = (rows / unit - mean) / np.sqrt(var)
    gram = standard.T @ standard / len(standard)
    kept: list[int] = []
    factor = np.zeros((0, 0))
    groups = []
    for j in range(len(columns)):
        cross = gram[kept, j]
        solved = scipy.linalg.solve_triangular(factor, cross, lower=True) if kept else cross
        residual_var = gram[j, j] - solved @ solved
        if residual_var < _DEPENDENCE_TOL**2:
            coef = scipy.linalg.solve_triangular(factor.T, solved, lower=False)
            involved = [int(columns[k]) for k, c in zip(kept, coef, strict=True) if abs(c) > 1e-3]
            groups.append([*involved, int(columns[j])])
            continue
        grown = np.zeros((len(kept) + 1, len(kept) + 1))
        grown[:-1, :-1] = factor
        grown[-1, :-1] = solved
        grown[-1, -1] = np.sqrt(residual_var)
        factor = grown
        kept.append(j)
    return groups


# Points per row at which the density is averaged over the row's discrete cells (a power of
# two, so that the Sobol set is balanced in every column).
CELL_POINTS = 32


@functools.cache
def cell_offsets(n_discrete: int) -> np.ndarray:
    """Fixed points in [0, 1)^n_discrete, shape (CELL_POINTS, n_discrete), spread evenly
    (a scrambled Sobol set with a fixed seed, so scores are deterministic)."""
    points = qmc.Sobol(n_discrete, scramble=True, seed=0).random(CELL_POINTS)
    points.setflags(write=False)
    return points


class Preprocessor:
    """Dequantise discrete columns, handle constant ones, standardise; track the log-Jacobian.

    Parameters
    ----------
    discrete_features : "auto", bool or array-like
        Which columns are discrete (see :func:`discrete_mask`).
    constant_features : {"error", "drop"}
        Constant columns carry no density (a point mass): refuse them with a message naming
        them, or leave them out of the model.
    dependent_features : {"error", "leave_out"}
        Continuous columns that are exact affine functions of others carry no density of their
        own either: refuse them by name, or leave them out of the flow with a warning and
        rebuild them from the fitted relation in :meth:`complete` (generated rows keep it).

    Attributes
    ----------
    keep_ : ndarray of bool, shape (n_features,)
        Columns the flow models (all of them unless constant columns are dropped).
    step_ : ndarray of shape (n_kept,)
        Dequantisation cell width per kept column; 0 for continuous columns.
    origin_, top_ : ndarray of shape (n_kept,)
        Smallest and largest training value per kept column (for discrete columns: the grid
        origin, and the range that generated values are kept in).
    mean_, scale_ : ndarray of shape (n_kept,)
        Standardisation of the (dequantised) kept columns.
    log_jacobian_ : float
        Added to the flow's log-density: ``-sum(log(scale_))``, which puts every column in the
        units of X (for a discrete column, the probability of its cell divided by the cell's
        width: the density of the dequantised variable).
    relations_ : list of (int, ndarray, ndarray, float)
        For each column left out as dependent: its index, the indices of the columns it is an
        affine function of, the coefficients and the intercept.
    fill_ : ndarray of shape (n_features,)
        The value each constant column had in training (used by :meth:`complete`).
    """

    def __init__(
        self,
        discrete_features="auto",
        constant_features: str = "error",
        dependent_features: str = "error",
    ) -> None:
        self.discrete_features = discrete_features
        self.constant_features = constant_features
        self.dependent_features = dependent_features

    def fit(
        self, X: np.ndarray, sample_weight: np.ndarray | None = None, weighted: bool = False
    ) -> Preprocessor:
        """Learn which columns are discrete or constant and how to standardise the rest.

        ``weighted`` says that ``X`` holds only the rows of non-zero weight of a weighted fit
        (whose weights may then be ``None``: all equal); it only words the errors.

        Raises
        ------
        ValueError
            If a column is constant and ``constant_features="error"``, or every column is
            constant.
        """
        discrete = discrete_mask(X, self.discrete_features)
        # Rows of zero weight do not count: a column constant on the rows the likelihood sees
        # would get a zero standardisation scale.
        counted = X if sample_weight is None else X[np.asarray(sample_weight) > 0]
        if counted.shape[0] == 0:
            raise ValueError("sample_weight is zero for every row; nothing to fit")
        high, low = counted.max(axis=0), counted.min(axis=0)
        magnitude = np.maximum(np.abs(high), np.abs(low))
        # Relative to the column's own magnitude, so that rescaling a column never changes
        # whether it counts as constant (only exact zeros are constant at magnitude 0).
        with np.errstate(over="ignore"):  # a range wider than float64's (+-1e308) is inf
            constant = high - low <= _RELATIVE_CONSTANT_TOL * magnitude
        if np.any(constant) and (self.constant_features == "error" or np.all(constant)):
            columns = np.flatnonzero(constant).tolist()
            among = (
                " (among the rows with non-zero weight)"
                if weighted or sample_weight is not None
                else ""
            )
            raise ValueError(
                f"X has constant (zero-variance) column(s) at index {columns}{among}: a "
                "continuous density is not defined on a constant column (it would be a point "
                "mass with infinite density). Drop those columns before fitting, for example "
                "with sklearn.feature_selection.VarianceThreshold() in a Pipeline."
            )
        self.keep_ = ~constant
        self.fill_ = np.where(constant, counted[0], 0.0)
        self.relations_ = []
        dependent = _affinely_dependent_columns(counted, self.keep_ & ~discrete)
        if dependent:
            if self.dependent_features == "error":
                raise ValueError(
                    "X has continuous columns that are exact affine functions of each other: "
                    + "; ".join(f"columns {group}" for group in dependent)
                    + ". The data then lie on a lower-dimensional surface, where a density is "
                    "not defined (it would be infinite on the surface and zero elsewhere). "
                    "Drop the redundant copies before fitting, e.g. keep one column of each "
                    "group."
                )
            # The last column of each group leaves the flow and is rebuilt from the others;
            # the user hears of it, since scores then ignore a row that breaks the relation.
            for group in dependent:
                self.keep_[group[-1]] = False
                sources = np.array(group[:-1])
                design = np.column_stack([counted[:, sources], np.ones(len(counted))])
                coef = np.linalg.lstsq(design, counted[:, group[-1]], rcond=None)[0]
                self.relations_.append((group[-1], sources, coef[:-1], float(coef[-1])))
            warn_at_caller(
                "skflow: column(s) "
                + ", ".join(
                    f"{group[-1]} (an affine function of {group[:-1]})" for group in dependent
                )
                + " are left out of the model: on the training rows they are determined by "
                "other columns, so they carry no density of their own. Scores are those of the "
                "other columns (a row that breaks the relation is not flagged for it), and "
                "generated rows get these columns from the relation.",
                UserWarning,
            )
        # Column by column, on views of X: a large X is never copied whole while fitting.
        columns = [X[:, j] for j in np.flatnonzero(self.keep_)]
        discrete = discrete[self.keep_]
        self.step_ = np.array(
            [
                _distinct_step(col) if is_discrete else 0.0
                for col, is_discrete in zip(columns, discrete, strict=True)
            ]
        )
        self.origin_ = np.array([col.min() for col in columns])
        self.top_ = np.array([col.max() for col in columns])
        # Moments of the dequantised variable x + step * u: the mean moves by step / 2 and
        # the variance grows by step**2 / 12 (independent uniform noise). In each column's
        # own power-of-two unit, so that a column at 1e160 or 1e-200 can be fitted.
        unit, raw_mean, var = column_moments(columns, sample_weight)
        step = self.step_ / unit
        self.mean_ = (raw_mean + step / 2) * unit
        self.scale_ = np.sqrt(var + step**2 / 12) * unit
        # The flow's density is that of the dequantised variable, so a discrete column
        # contributes P(cell) / width: a density in the units of X like any other column.
        self.log_jacobian_ = float(-np.sum(np.log(self.scale_)))
        return self

    def discrete_columns(self) -> np.ndarray:
        """Boolean mask over all columns of X: True where a column is treated as discrete."""
        mask = np.zeros(len(self.keep_), dtype=bool)
        mask[self.keep_] = self.step_ > 0
        return mask

    @property
    def noise_width_(self) -> np.ndarray:
        """Width of the uniform training noise per kept column, in standardised units."""
        return self.step_ / self.scale_

    @property
    def has_discrete_(self) -> bool:
        return bool(np.any(self.step_ > 0))

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Kept columns, discrete ones moved to their cell centres, standardised.

        Values near float64's limit may overflow to infinity here; the flow's callers turn
        such rows into a log-density of -inf or an error (``_beyond_float64``).
        """
        with np.errstate(over="ignore"):
            return (X[:, self.keep_] + self.step_ / 2 - self.mean_) / self.scale_

    def transform_cell_points(self, X: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Each row once per row of ``offsets``, its discrete columns moved there in their
        cells (an offset of 0.5 is the centre that :meth:`transform` uses), standardised.

        ``offsets`` has shape (n_points, n_discrete), in [0, 1); the result has
        ``len(X) * n_points`` rows, those of one input row together.
        """
        n_points = len(offsets)
        points = np.repeat(X[:, self.keep_], n_points, axis=0)
        discrete = self.step_ > 0
        points[:, discrete] += np.tile(offsets, (len(X), 1)) * self.step_[discrete]
        with np.errstate(over="ignore"):
            return (points - self.mean_) / self.scale_

    def complete(self, X_kept: np.ndarray) -> np.ndarray:
        """Rows of the kept columns, as rows of all columns of X.

        Columns left out as dependent are computed from their relation, constant ones get
        their training value.
        """
        if np.all(self.keep_):
            return X_kept
        X = np.empty((len(X_kept), len(self.keep_)))
        X[:, self.keep_] = X_kept
        X[:, ~self.keep_] = self.fill_[~self.keep_]
        for column, sources, coef, intercept in self.relations_:
            X[:, column] = X[:, sources] @ coef + intercept
        return X

    def inverse_transform(self, V: np.ndarray) -> np.ndarray:
        """Back to the kept columns of X; discrete columns snap to the grid cell they fall in.

        A discrete value outside the training range is clipped to it: a binary flag stays 0
        or 1 even where the model leaks a little mass beyond its two cells.
        """
        X = V * self.scale_ + self.mean_
        discrete = self.step_ > 0
        if np.any(discrete):
            step, origin = self.step_[discrete], self.origin_[discrete]
            snapped = origin + np.floor((X[:, discrete] - origin) / step) * step
            X[:, discrete] = np.clip(snapped, origin, self.top_[discrete])
        return X
