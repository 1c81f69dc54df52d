"""Reading and encoding ``y`` for the conditional estimators: missing values, shape, classes or
conditions, and the context rows the flow is conditioned on (``TargetEncoding``)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import type_of_target

from ._preprocessing import column_moments


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


# Conditions with (almost) no spread relative to their magnitude keep scale 1: they carry no
# information and dividing by their spread would only amplify rounding noise.
_MIN_CONDITION_SCALE = 1e-12


class TargetEncoding:
    """What a conditional flow learned about ``y``, and how it turns ``y`` into context rows.

    ``kind`` is None (fitted without y), ``"classes"`` (labels, one-hot context) or
    ``"continuous"`` (numeric conditions, standardised). ``fit`` reads the training ``y``;
    ``context_for`` encodes the ``y`` given with rows of X; ``draw`` picks targets for new rows.
    The estimator publishes ``fitted_attributes()`` (``classes_``, ``class_prior_``, ...).
    """

    # Every fitted attribute an encoding can publish, with the name it gets on the estimator.
    PUBLISHED: ClassVar[dict[str, str]] = {
        "kind": "target_type_",
        "classes": "classes_",
        "class_count": "class_count_",
        "class_prior": "class_prior_",
        "n_conditions": "n_conditions_",
        "condition_mean": "condition_mean_",
        "condition_scale": "condition_scale_",
    }

    def __init__(self) -> None:
        self.kind: str | None = None
        self.classes = self.class_count = self.class_prior = None
        self.n_conditions: int | None = None
        self.condition_mean = self.condition_scale = None
        # The training conditions and their normalised weights (drawn from by ``draw``), and
        # whether y was 1-D (drawn conditions are then returned 1-D too).
        self.conditions = self.condition_weight = None
        self.condition_ndim: int | None = None

    @classmethod
    def fit(
        cls, y, n_rows: int, sample_weight, previous: TargetEncoding | None = None
    ) -> tuple[TargetEncoding, np.ndarray | None]:
        """Learn the encoding of the training ``y``; return it and the training context rows.

        ``previous`` is the encoding of the fit a warm start continues: ``y`` must then be of
        the same kind, with the same classes or number of conditions, and the conditions keep
        their earlier standardisation.
        """
        if y is not None:
            y = _as_target_array(y, n_rows)
        kind = None if y is None else _target_kind(y)
        if previous is not None and kind != previous.kind:
            raise ValueError(
                f"warm_start: the model was fitted with y of kind {previous.kind!r}, "
                f"now got {kind!r}; use warm_start=False to start afresh"
            )
        encoding = cls()
        encoding.kind = kind
        weight = np.ones(n_rows) if sample_weight is None else sample_weight
        if kind is None:
            return encoding, None
        if kind == "classes":
            return encoding, encoding._fit_classes(y.ravel(), weight, previous)
        return encoding, encoding._fit_conditions(y, n_rows, weight, previous)

    def _fit_classes(self, labels, weight, previous) -> np.ndarray:
        classes, index, counts = np.unique(labels, return_inverse=True, return_counts=True)
        if previous is not None and not np.array_equal(classes, previous.classes):
            raise ValueError(
                f"warm_start: y has classes {classes.tolist()}, the model was fitted with "
                f"{previous.classes.tolist()}"
            )
        mass = np.bincount(index, weights=weight, minlength=len(classes))
        if mass.sum() <= 0:
            raise ValueError("sample_weight sums to zero: there is nothing to fit")
        self.classes, self.class_count, self.class_prior = classes, counts, mass / mass.sum()
        return np.eye(len(classes))[index]

    def _fit_conditions(self, y, n_rows: int, weight, previous) -> np.ndarray:
        conditions = y.reshape(n_rows, -1).astype(np.float64)
        if previous is not None:
            if conditions.shape[1] != previous.n_conditions:
                raise ValueError(
                    f"warm_start: y has {conditions.shape[1]} condition(s), the model was "
                    f"fitted with {previous.n_conditions}"
                )
            self.n_conditions = previous.n_conditions
            self.condition_mean, self.condition_scale = (
                previous.condition_mean,
                previous.condition_scale,
            )
        else:
            # In each condition's own power-of-two unit: conditions at 1e160 once got a scale
            # of inf (1e-200: below the floor), which encoded every condition as 0 and
            # silently fitted p(x) instead of p(x | y).
            unit, mean, variance = column_moments(list(conditions.T), weight)
            spread = np.sqrt(variance)
            self.n_conditions = conditions.shape[1]
            self.condition_mean = mean * unit
            self.condition_scale = np.where(spread > _MIN_CONDITION_SCALE, spread * unit, 1.0)
        self.conditions = conditions
        self.condition_weight = weight / weight.sum()
        self.condition_ndim = y.ndim
        return self._encode_conditions(conditions)

    def fitted_attributes(self) -> dict:
        """The estimator's public fitted attributes for this encoding (those that apply)."""
        return {
            public: getattr(self, name)
            for name, public in self.PUBLISHED.items()
            if name == "kind" or getattr(self, name) is not None
        }

    def training_weight(self, class_weight, y, n_rows: int, sample_weight):
        """``sample_weight`` times the ``class_weight`` of each row's class (None: unweighted)."""
        if class_weight == "auto":
            # Balanced for class labels; nothing to balance for continuous conditions or no y.
            class_weight = "balanced" if self.kind == "classes" else None
        if class_weight is None:
            return sample_weight
        if self.kind != "classes":
            raise ValueError(
                "class_weight needs class labels in y; got "
                + ("no y" if self.kind is None else "continuous conditions")
                + ". Use sample_weight to weight rows instead."
            )
        weight = compute_sample_weight(class_weight, _as_target_array(y, n_rows).ravel())
        return weight if sample_weight is None else sample_weight * weight

    # ------------------------------------------------------------------ encoding y
    def _encode_conditions(self, conditions: np.ndarray) -> np.ndarray:
        return (conditions - self.condition_mean) / self.condition_scale

    def class_index(self, labels: np.ndarray) -> np.ndarray:
        """Each label's position in ``classes``; an unseen label is a ValueError naming it."""
        lookup = {c: i for i, c in enumerate(self.classes.tolist())}
        try:
            return np.array([lookup[v] for v in labels.tolist()], dtype=np.intp)
        except (KeyError, TypeError):
            unknown = sorted({repr(v) for v in labels.tolist() if v not in lookup})
            raise ValueError(
                f"y contains label(s) not seen in fit: {', '.join(unknown[:10])}; the known "
                f"classes are {self.classes.tolist()}"
            ) from None

    def context_for(self, y, n_rows: int) -> np.ndarray | None:
        """Context rows for ``y`` given with ``n_rows`` rows of X (one entry per row)."""
        if self.kind is None:  # fitted without y: y is ignored, as in FlowDensity
            return None
        if y is None:
            raise ValueError(
                f"this FlowSampler was fitted with y ({self.kind}): pass the y of each row"
            )
        y = _as_target_array(y, n_rows)
        if self.kind == "classes":
            if y.ndim != 1:
                raise ValueError(f"y must be 1-D class labels, got shape {y.shape}")
            return np.eye(len(self.classes))[self.class_index(y.ravel())]
        conditions = y.reshape(n_rows, -1)
        if conditions.shape[1] != self.n_conditions or conditions.dtype.kind not in "biuf":
            raise ValueError(
                f"y must be numeric with {self.n_conditions} condition(s) per row, got shape "
                f"{y.shape} and dtype {y.dtype}"
            )
        return self._encode_conditions(conditions.astype(np.float64))

    def draw(self, n_samples: int, y, rng: np.random.RandomState):
        """The targets to sample under: ``(y_out, context)`` (see ``FlowSampler.sample``)."""
        if self.kind is None:
            if y is not None:
                raise ValueError("this FlowSampler was fitted without y; pass y=None")
            return None, None
        if y is not None and np.size(y) == 0:
            # Consistent with n_samples >= 1: an empty request is a mistake, not zero rows.
            raise ValueError("y is empty: give at least one label or condition to sample under")
        if self.kind == "classes":
            if y is None:
                index = rng.choice(len(self.classes), size=n_samples, p=self.class_prior)
            else:
                labels = _as_target_array(np.atleast_1d(np.asarray(y)), None)
                if labels.ndim != 1:
                    raise ValueError(f"y must be a label or 1-D labels, got shape {labels.shape}")
                index = self.class_index(labels)
                if np.ndim(y) == 0:
                    index = np.repeat(index, n_samples)
            return self.classes[index], np.eye(len(self.classes))[index]
        if y is None:
            rows = rng.choice(len(self.conditions), size=n_samples, p=self.condition_weight)
            conditions = self.conditions[rows]
        else:
            conditions = self._given_conditions(n_samples, y)
        y_out = conditions[:, 0] if self.condition_ndim == 1 else conditions.copy()
        return y_out, self._encode_conditions(conditions)

    def _given_conditions(self, n_samples: int, y) -> np.ndarray:
        values = _as_target_array(np.atleast_1d(np.asarray(y)), None)
        if values.dtype.kind not in "biuf":
            raise ValueError(f"y must hold numeric conditions, got dtype {values.dtype}")
        values = values.astype(np.float64)
        if np.ndim(y) == 0 or (values.ndim == 1 and self.n_conditions > 1):
            # One condition: n_samples rows of it.
            if values.size not in (1, self.n_conditions):
                raise ValueError(
                    f"y must be one condition of {self.n_conditions} values or an array "
                    f"of shape (n, {self.n_conditions}), got {values.size} values"
                )
            values = np.broadcast_to(values, (n_samples, self.n_conditions))
        conditions = values.reshape(len(values), -1)
        if conditions.shape[1] != self.n_conditions:
            raise ValueError(
                f"y must hold conditions of width {self.n_conditions}, got shape {np.shape(y)}"
            )
        return conditions
