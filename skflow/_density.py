"""FlowDensity: a normalizing-flow density estimator and Gaussianizing transformer."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils._param_validation import validate_params
from sklearn.utils.validation import check_is_fitted

from ._atomic import atomic_fit
from ._base import BaseFlowEstimator
from ._constraints import TEMPERATURE_CONSTRAINT, Count
from ._docstrings import fill_flow_docs


@fill_flow_docs
class FlowDensity(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseFlowEstimator):
    """Density estimation with a normalizing flow of coupling layers.

    The flow is an invertible map ``f`` from data to a latent space where the points follow a
    standard normal; by the change of variables formula
    ``log p(x) = log N(f(x); 0, I) + log|det df/dx|``. It is trained by maximum likelihood with
    minibatch AdamW; the weights scored on a validation split and returned are a running
    average of the weights after each step, with early stopping and best-weight restore.

    Data are standardised first (the log-Jacobian is added back, so densities are in the units
    of X). The flow is initialised from the data: a per-feature sinh-arcsinh layer is fitted to
    make heavy-tailed marginals Gaussian, and the first linear layer whitens the data, so before
    the first gradient step the model is already the maximum-likelihood Gaussian (with
    heavy-tail correction); the coupling layers then learn what a Gaussian cannot. Early
    stopping compares every epoch with that starting point, so the fit returned is never worse
    than it on the validation rows.

    Discrete columns (binary flags, counts, values recorded on a grid) are dequantised: a value
    stands for the grid cell above it, training sees it moved uniformly within that cell, and
    scoring integrates the density over the cell, so repeated values cannot collect the
    unbounded density spikes a continuous model would put on them. ``score_samples`` stays a
    log-density in the units of X for every column: a discrete column contributes its cell's
    probability divided by the cell's width. ``discrete_features_`` says which columns were
    taken as discrete.

    Parameters
    ----------
    {flow_parameters}

    Attributes
    ----------
    {flow_attributes}

    See Also
    --------
    sklearn.neighbors.KernelDensity : Kernel density estimation.
    sklearn.mixture.GaussianMixture : Gaussian mixture density.

    Examples
    --------
    >>> import numpy as np
    >>> from skflow import FlowDensity
    >>> X = np.random.default_rng(0).normal(size=(500, 2))
    >>> est = FlowDensity(n_transforms=2, max_iter=5, random_state=0).fit(X)
    >>> est.score_samples(X[:3]).shape
    (3,)
    >>> est.sample(4, random_state=0).shape
    (4, 2)
    """

    @atomic_fit
    def fit(self, X, y=None, sample_weight=None):
        """Fit the flow to ``X`` by maximum likelihood.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data: numeric, finite, at least 2 rows, no constant column.
        y : None
            Ignored; present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights for the likelihood and the standardisation; only their
            ratios matter. Rows of weight zero are left out of the fit.

        Returns
        -------
        self : FlowDensity
            The fitted estimator.

        See Also
        --------
        score_samples : Log-density of each row.
        sample : Draw new rows from the learned density.

        Examples
        --------
        >>> import numpy as np
        >>> from skflow import FlowDensity
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> est = FlowDensity(n_transforms=2, hidden_layer_sizes=(16,), max_iter=3,
        ...                   random_state=0).fit(X)
        >>> est.n_features_in_
        2
        """
        self._validate_params()
        warm = self.warm_start and hasattr(self, "flow_")
        X = self._validate_X(X, reset=not warm)
        self._fit_flow(X, sample_weight=sample_weight)
        self._n_features_out = self.n_features_in_
        return self

    @atomic_fit
    def partial_fit(self, X, y=None, sample_weight=None):
        """Train for one pass (epoch) over the rows given, continuing the model so far.

        For data that do not fit in memory: call it once per chunk (rows of a Parquet file, the
        partitions of a ``dask.dataframe``), as many passes over the chunks as wanted. Memory
        is bounded by the chunk. The first call fixes the preprocessing from its rows (the
        standardisation, which columns are discrete and their grids, the data-dependent
        initialisation of the flow), so make it a random sample of the whole table, not its
        sorted beginning. Every row trains: there is no validation split, and
        ``early_stopping``, ``validation_fraction``, ``n_iter_no_change``, ``tol``,
        ``max_iter`` and ``warm_start`` are not used; the optimiser's state (Adam's moments,
        the learning-rate schedule, the parameter average) carries over from call to call, so
        ``partial_fit`` twice on the same rows gives the model of ``fit`` with ``max_iter=2``
        and ``early_stopping=False``. A later ``fit`` starts afresh unless ``warm_start=True``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training rows: numeric, finite, more rows than features.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights (see :meth:`fit`).

        Returns
        -------
        self : FlowDensity
            The estimator, trained one more epoch.

        See Also
        --------
        fit : Train on all rows at once, with early stopping.

        Examples
        --------
        >>> import numpy as np
        >>> from skflow import FlowDensity
        >>> rng = np.random.default_rng(0)
        >>> est = FlowDensity(n_transforms=2, hidden_layer_sizes=(16,), random_state=0)
        >>> for chunk in range(3):  # e.g. chunks read one after another from disk
        ...     est = est.partial_fit(rng.normal(size=(500, 2)))
        >>> est.n_iter_
        3
        """
        self._validate_params()
        first = not hasattr(self, "flow_")
        X = self._validate_X(X, reset=first)
        self._fit_flow(X, sample_weight=sample_weight, partial=True)
        self._n_features_out = self.n_features_in_
        return self

    def score_samples(self, X) -> np.ndarray:
        """Log-density of each row, in nats, in the units of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to evaluate.

        Returns
        -------
        log_density : ndarray of shape (n_samples,), dtype float64
            ``log p(x)`` per row; far-away rows get very low but finite values, and ``-inf``
            only where the log-density is below float64's range (fill values such as 1e300).

        See Also
        --------
        score : Mean log-likelihood.
        sample : Draw new rows from the learned density.

        Examples
        --------
        >>> import numpy as np
        >>> from skflow import FlowDensity
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> est = FlowDensity(n_transforms=2, hidden_layer_sizes=(16,), max_iter=3,
        ...                   random_state=0).fit(X)
        >>> log_density = est.score_samples(X[:3])
        >>> log_density.shape, log_density.dtype
        ((3,), dtype('float64'))
        """
        check_is_fitted(self, "flow_")
        return self._log_density(self._validate_X(X, reset=False))

    def score(self, X, y=None) -> float:
        """Mean log-likelihood of ``X`` (higher is better; what ``GridSearchCV`` maximises).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to evaluate.
        y : None
            Ignored.

        Returns
        -------
        score : float
            Mean of :meth:`score_samples`.

        See Also
        --------
        score_samples : Log-density of each row.

        Examples
        --------
        >>> import numpy as np
        >>> from skflow import FlowDensity
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> est = FlowDensity(n_transforms=2, hidden_layer_sizes=(16,), max_iter=3,
        ...                   random_state=0).fit(X)
        >>> score = est.score(X)
        >>> isinstance(score, float), bool(np.isfinite(score))
        (True, True)
        """
        return float(np.mean(self.score_samples(X)))

    @validate_params(
        {
            "n_samples": [Count(1)],
            "random_state": ["random_state"],
            "temperature": [TEMPERATURE_CONSTRAINT],
        },
        prefer_skip_nested_validation=True,
    )
    def sample(self, n_samples: int = 1, random_state=None, temperature: float = 1.0) -> np.ndarray:
        """Draw new rows from the learned density.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows.
        random_state : int, RandomState instance or None, default=None
            Seed for the latent draws.
        temperature : float, default=1.0
            Standard deviation of the latent draws. 1 samples the learned density; a value
            below 1 (0.7-0.9 is typical) keeps the rows nearer its modes, fewer in the tails,
            so they are more typical but less diverse, and no longer follow the density.
            A temperature so large that rows overflow float64 (1e300, say) raises a
            ValueError rather than returning infinite rows.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features_in_), dtype float64
            Samples in the units of the training data (always finite).

        See Also
        --------
        score_samples : Log-density of each row.
        inverse_transform : Map latent points back to data space.

        Examples
        --------
        >>> import numpy as np
        >>> from skflow import FlowDensity
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> est = FlowDensity(n_transforms=2, hidden_layer_sizes=(16,), max_iter=3,
        ...                   random_state=0).fit(X)
        >>> X_new = est.sample(5, random_state=0)
        >>> X_new.shape, bool(np.all(np.isfinite(X_new)))
        ((5, 2), True)
        """
        check_is_fitted(self, "flow_")
        return self._draw_rows(n_samples, random_state, temperature)

    def transform(self, X) -> np.ndarray:
        """Map rows to the latent space, where the model's density is a standard normal.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to map.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_features_in_)
            Latent coordinates; for data from the learned density, ``Z ~ N(0, I)``.

        See Also
        --------
        inverse_transform : Map latent points back to data space.
        score_samples : Log-density of each row.

        Examples
        --------
        >>> import numpy as np
        >>> from skflow import FlowDensity
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> est = FlowDensity(n_transforms=2, hidden_layer_sizes=(16,), max_iter=3,
        ...                   random_state=0).fit(X)
        >>> Z = est.transform(X[:4])
        >>> Z.shape
        (4, 2)
        """
        check_is_fitted(self, "flow_")
        return self._to_latent(self._validate_X(X, reset=False))

    def inverse_transform(self, X) -> np.ndarray:
        """Map latent points back to data space (the exact inverse of :meth:`transform`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)
            Latent points.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features_in_)
            Points in the units of the training data.

        See Also
        --------
        transform : Map rows to the latent space.
        sample : Draw new rows from the learned density.

        Examples
        --------
        >>> import numpy as np
        >>> from skflow import FlowDensity
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> est = FlowDensity(n_transforms=2, hidden_layer_sizes=(16,), max_iter=3,
        ...                   random_state=0).fit(X)
        >>> Z = est.transform(X[:4])
        >>> bool(np.allclose(est.inverse_transform(Z), X[:4], atol=1e-4))
        True
        """
        check_is_fitted(self, "flow_")
        return self._from_latent(self._validate_latent(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "density_estimator"
        return tags
