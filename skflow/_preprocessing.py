"""Standardisation that keeps track of its log-Jacobian, so densities stay in the units of X."""

from __future__ import annotations

import numpy as np

# A column whose spread is below this fraction of its magnitude is numerically constant.
_RELATIVE_CONSTANT_TOL = 1e-12


class Standardizer:
    """Per-feature ``(x - mean) / scale`` with the log-Jacobian of the map.

    A density learned on the standardised data is turned into a density on the original data by
    adding ``log_jacobian = -sum(log(scale))`` to every log-density. Zero-variance columns have no
    density (it would be a point mass), so they are refused with a message naming them.
    """

    def fit(self, X: np.ndarray, sample_weight: np.ndarray | None = None) -> Standardizer:
        """Compute (weighted) per-feature mean and standard deviation.

        Raises
        ------
        ValueError
            If a column is constant.
        """
        mean = np.average(X, axis=0, weights=sample_weight)
        var = np.average((X - mean) ** 2, axis=0, weights=sample_weight)
        scale = np.sqrt(var)
        constant = scale <= _RELATIVE_CONSTANT_TOL * np.maximum(np.abs(mean), 1.0)
        if np.any(constant):
            columns = np.flatnonzero(constant).tolist()
            raise ValueError(
                f"X has constant (zero-variance) column(s) at index {columns}: a continuous "
                "density is not defined on a constant column (it would be a point mass with "
                "infinite density). Drop those columns before fitting, for example with "
                "sklearn.feature_selection.VarianceThreshold() in a Pipeline."
            )
        self.mean_ = mean
        self.scale_ = scale
        self.log_jacobian_ = float(-np.sum(np.log(scale)))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardise ``X``."""
        return (X - self.mean_) / self.scale_

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        """Undo :meth:`transform`."""
        return X * self.scale_ + self.mean_
