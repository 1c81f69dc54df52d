"""FlowSampler: a conditional flow p(x | y) for synthetic rows, scores and a Bayes classifier.

About 700 lines, most of them the numpydoc of its thirteen public methods (fit, sample,
score_samples, score, predict_log_proba, predict_proba, predict, transform, fit_transform,
inverse_transform, fit_resample, ...), each short in code. Reading y is in ``_targets``
(``TargetEncoding``), making new rows for resampling in ``_resampling``.
"""

from __future__ import annotations

from numbers import Real
from typing import ClassVar

import numpy as np
from scipy.special import logsumexp
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import ClassifierTags, TransformerTags, check_random_state
from sklearn.utils._param_validation import StrOptions, validate_params
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from ._atomic import atomic_fit
from ._auto_defaults import DEFAULT_LATENT_NOISE
from ._base import BaseFlowEstimator, shared_flow_arguments
from ._constraints import LATENT_NOISE_CONSTRAINTS, TEMPERATURE_CONSTRAINT, Count
from ._docstrings import fill_flow_docs
from ._input_checks import check_output_fits
from ._random_streams import derived_seed
from ._resampling import (
    _check_generation,
    _oversampling_targets,
    _resampling_labels,
    check_restorable_columns,
    resample,
)
from ._targets import TargetEncoding, check_conditions_not_in_X


@fill_flow_docs
class FlowSampler(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseFlowEstimator):
    """Conditional density estimation and synthetic data with a normalizing flow: ``p(x | y)``.

    One flow models every class (or every value of a continuous condition): its first layer
    gives each condition its own per-feature location and scale (linear in the encoded ``y``)
    and its coupling layers' conditioner networks receive ``y`` as extra input, so the classes
    share the flow's parameters (and statistical strength) and differ through the
    conditioning. The
    architecture, training, preprocessing and parameters are those of
    :class:`~skflow.FlowDensity`.

    What ``y`` means is decided in :meth:`fit`:

    - ``y=None``: an unconditional flow, like ``FlowDensity`` (``sample`` returns ``(X, None)``).
    - a 1-D ``y`` that scikit-learn's ``type_of_target`` calls ``"binary"`` or ``"multiclass"``
      (integers, strings, booleans, or floats whose values are all whole numbers): **class
      labels**. They become ``classes_`` and a one-hot context, and their (weighted)
      frequencies ``class_prior_``.
    - a 1-D ``y`` that ``type_of_target`` calls ``"continuous"`` (floats, some with a
      fractional part), or any numeric 2-D ``y`` (one condition per column, a single column
      included): **continuous conditions**, standardised internally. So a whole-number
      condition (an age, a count) is continuous when passed as a column,
      ``y.reshape(-1, 1)``, and a set of class labels when passed 1-D.

    ``random_state`` also seeds the rows :meth:`fit_resample` generates; with ``warm_start``,
    ``y`` must be of the same kind (and classes) as in the first fit.

    A continuous column of X that is an exact affine function of others (the "redundant"
    features of ``make_classification``) is left out of the flow, with a warning naming it:
    scores are those of the other columns, and generated rows get it from the fitted relation.

    Parameters
    ----------
    {flow_parameters}
    class_weight : dict, "balanced", "auto" or None, default="auto"
        Weights of the classes in the training likelihood, multiplied into ``sample_weight``:
        a dict maps a label to its weight, "balanced" gives each class the same total weight
        (``n_samples / (n_classes * n_k)`` per row, as in scikit-learn's classifiers); both
        need class targets (an error otherwise). "auto" is "balanced" when ``y`` holds class
        labels and None (``sample_weight`` alone) for continuous conditions or no ``y``.
        Every ``p(x | k)`` is still fitted by maximum likelihood; the weights decide how the
        shared flow, its initialisation, the validation score and early stopping trade the
        classes off, so "balanced" gives small classes better conditional densities (for
        synthetic data, oversampling and ``predict``) at some cost to the large ones: on
        cardio (ADBench, 9.6% minority), a classifier trained only on generated rows reached
        88% of the real-data score on average over five splits with "balanced" and 74% with
        None (``docs/design_notes.md``). ``class_prior_``, the mixture density and labels drawn by
        ``sample`` use the unweighted (``sample_weight`` only) class frequencies.

    Attributes
    ----------
    target_type_ : {"classes", "continuous"} or None
        What ``y`` was taken to be in ``fit`` (None: no ``y``).
    classes_ : ndarray of shape (n_classes,)
        Class labels, sorted (class targets only).
    class_prior_ : ndarray of shape (n_classes,)
        Share of the (weighted) training rows in each class (class targets only).
    class_count_ : ndarray of shape (n_classes,)
        Training rows per class, unweighted (class targets only).
    n_conditions_ : int
        Width of the continuous condition vector (continuous targets only).
    condition_mean_, condition_scale_ : ndarray of shape (n_conditions_,)
        Standardisation of the conditions (continuous targets only).
    {flow_attributes}

    See Also
    --------
    FlowDensity : The unconditional density estimator.
    FlowOverSampler : ``fit_resample`` only, for imbalanced-learn's ``Pipeline``.

    Notes
    -----
    ``predict`` and ``predict_proba`` (class targets) apply Bayes' rule to the learned
    ``p(x | k)`` and ``class_prior_``: a *generative* classifier that comes for free with the
    model. It is calibrated only as far as the densities are right and is usually less
    accurate than a tuned discriminative classifier; use it as a check of the conditional
    model, not as a replacement for one. The estimator is tagged a classifier, so
    scikit-learn's probability scorers (``scoring="roc_auc"``) apply and cross-validation on
    labels is stratified; ``score`` stays the mean log-likelihood.

    A class with very few rows (even one) is accepted: it shares the flow with the other
    classes, so its conditional density is the shared shape moved and reshaped by the
    conditioning, which is about as much as a handful of rows can support.

    Examples
    --------
    >>> import numpy as np
    >>> from skflow import FlowSampler
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(-2, 1, size=(200, 2)), rng.normal(2, 1, size=(100, 2))]
    >>> y = np.r_[np.zeros(200, int), np.ones(100, int)]
    >>> est = FlowSampler(n_transforms=2, max_iter=5, random_state=0).fit(X, y)
    >>> X_new, y_new = est.sample(4, y=1, random_state=0)
    >>> X_new.shape, y_new.tolist()
    ((4, 2), [1, 1, 1, 1])
    >>> est.predict_proba(X[:3]).shape
    (3, 2)
    """

    # Columns determined by others (make_classification's redundant features) leave the flow
    # and are rebuilt in generated rows, so oversampling keeps the relation (see Preprocessor).
    _dependent_features: ClassVar[str] = "leave_out"

    _parameter_constraints: ClassVar[dict] = {
        **BaseFlowEstimator._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced", "auto"}), None],
    }

    def __init__(
        self,
        *,
        coupling: str = "spline",
        n_transforms: int = 8,
        hidden_layer_sizes=(128, 128),
        n_bins: int | str = "auto",
        tail_bound: float = 5.0,
        mixing: str = "lu",
        max_iter: int = 300,
        batch_size="auto",
        learning_rate_init: float | str = "auto",
        weight_decay: float = 1e-5,
        dropout: float | str = "auto",
        input_dropout: float | str = "auto",
        early_stopping: bool = True,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float | str = 1e-4,
        discrete_features="auto",
        device="auto",
        compile: bool = False,
        n_jobs: int | None = None,
        random_state=None,
        verbose: int = 0,
        warm_start: bool = False,
        callback=None,
        class_weight="auto",
    ) -> None:
        super().__init__(**shared_flow_arguments(locals()))
        self.class_weight = class_weight

    # ------------------------------------------------------------------ fitting
    @atomic_fit
    def fit(self, X, y=None, sample_weight=None):
        """Fit the conditional flow ``p(x | y)`` by maximum likelihood.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data: numeric, finite, at least 2 rows, no constant column.
        y : array-like of shape (n_samples,) or (n_samples, n_conditions), default=None
            Class labels or continuous conditions (see the class docstring for the rule that
            tells them apart), or None for an unconditional flow. No missing values.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights for the likelihood, the standardisation and the priors;
            only their ratios matter. Rows of weight zero are left out of the fit.

        Returns
        -------
        self : FlowSampler
            The fitted estimator.

        See Also
        --------
        score_samples : Log-density of each row.
        sample : Draw new rows from the learned density.

        Examples
        --------
        >>> import numpy as np
        >>> from skflow import FlowSampler
        >>> rng = np.random.default_rng(0)
        >>> X = np.r_[rng.normal(-2, 1, size=(150, 2)), rng.normal(2, 1, size=(50, 2))]
        >>> y = np.r_[np.zeros(150, int), np.ones(50, int)]
        >>> est = FlowSampler(n_transforms=2, hidden_layer_sizes=(16,), max_iter=3,
        ...                   random_state=0).fit(X, y)
        >>> est.target_type_, est.classes_.tolist()
        ('classes', [0, 1])
        """
        self._validate_params()
        warm = self.warm_start and hasattr(self, "flow_")
        X = self._validate_X(X, reset=not warm)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        previous = getattr(self, "_targets_", None) if warm else None
        targets, context = TargetEncoding.fit(y, X.shape[0], sample_weight, previous)
        weight = targets.training_weight(self.class_weight, y, X.shape[0], sample_weight)
        if targets.kind == "continuous":
            check_conditions_not_in_X(X, targets.conditions)
        for name in TargetEncoding.PUBLISHED.values():
            self.__dict__.pop(name, None)
        self._targets_ = targets
        self.__dict__.update(targets.fitted_attributes())
        self._fit_flow(X, sample_weight=weight, context=context)
        self._n_features_out = int(np.sum(self.preprocessor_.keep_))
        return self

    # ------------------------------------------------------------------ public API
    @validate_params(
        {
            "n_samples": [Count(1)],
            "y": ["array-like", Real, str, None, "boolean"],
            "random_state": ["random_state"],
            "temperature": [TEMPERATURE_CONSTRAINT],
        },
        prefer_skip_nested_validation=True,
    )
    def sample(self, n_samples: int = 1, *, y=None, random_state=None, temperature: float = 1.0):
        """Draw new rows and their targets.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows when ``y`` is None or a single label / condition.
        y : label, condition, array-like or None, default=None
            None: labels drawn from ``class_prior_`` (classes) or training conditions drawn
            at random, weighted by ``sample_weight`` (continuous). A single label (a scalar),
            or a single condition (a scalar, or a 1-D array of length ``n_conditions_`` > 1):
            ``n_samples`` rows of it. An array of labels (1-D) or conditions (one per row):
            one generated row per entry, and ``n_samples`` is ignored.
        random_state : int, RandomState instance or None, default=None
            Seed for the labels and the latent draws.
        temperature : float, default=1.0
            Standard deviation of the latent draws. 1 samples the learned ``p(x | y)``; a
            value below 1 keeps the rows nearer the modes of each condition's density (more
            typical, less diverse rows that no longer follow the density). One so large
            that rows overflow float64 raises a ValueError.

        Returns
        -------
        X_new : ndarray of shape (n_rows, n_features_in_), dtype float64
            Samples in the units of the training data.
        y_new : ndarray of shape (n_rows,) or (n_rows, n_conditions_), or None
            The label or condition of each row (None for an unconditional model).

        See Also
        --------
        score_samples : Log-density of each row.
        fit_resample : Fit, then add generated rows that rebalance the classes.

        Examples
        --------
        >>> import numpy as np
        >>> from skflow import FlowSampler
        >>> rng = np.random.default_rng(0)
        >>> X = np.r_[rng.normal(-2, 1, size=(150, 2)), rng.normal(2, 1, size=(50, 2))]
        >>> y = np.r_[np.zeros(150, int), np.ones(50, int)]
        >>> est = FlowSampler(n_transforms=2, hidden_layer_sizes=(16,), max_iter=3,
        ...                   random_state=0).fit(X, y)
        >>> X_new, y_new = est.sample(3, y=1, random_state=0)
        >>> X_new.shape, y_new.tolist()
        ((3, 2), [1, 1, 1])
        >>> est.sample(y=[0, 1, 1], random_state=0)[1].tolist()
        [0, 1, 1]
        """
        check_is_fitted(self, "flow_")
        # Refused before the targets, which would otherwise be allocated first.
        check_output_fits(n_samples, self.n_features_in_)
        rng = check_random_state(random_state)
        y_out, context = self._targets_.draw(n_samples, y, rng)
        n_rows = n_samples if context is None else len(context)
        return self._draw_rows(n_rows, rng, temperature, context), y_out

    def score_samples(self, X, y=None) -> np.ndarray:
        """Log-density of each row, ``log p(x | y)``, in nats, in the units of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to evaluate.
        y : array-like of shape (n_samples,) or (n_samples, n_conditions_), default=None
            The label or condition of each row. For class targets, None gives the marginal
            ``log p(x) = logsumexp_k [log p(x | k) + log class_prior_[k]]``; for continuous
            conditions y is required (the marginal has no closed form). Ignored when the
            model was fitted without y.

        Returns
        -------
        log_density : ndarray of shape (n_samples,), dtype float64
            ``log p(x | y)`` (or ``log p(x)``) per row; finite, or ``-inf`` where it is below
            float64's range (fill values such as 1e300), never NaN.

        See Also
        --------
        score : Mean log-likelihood.
        predict_proba : Class probabilities by Bayes' rule.

        Examples
        --------
        >>> import numpy as np
        >>> from skflow import FlowSampler
        >>> rng = np.random.default_rng(0)
        >>> X = np.r_[rng.normal(-2, 1, size=(150, 2)), rng.normal(2, 1, size=(50, 2))]
        >>> y = np.r_[np.zeros(150, int), np.ones(50, int)]
        >>> est = FlowSampler(n_transforms=2, hidden_layer_sizes=(16,), max_iter=3,
        ...                   random_state=0).fit(X, y)
        >>> est.score_samples(X[:3], y[:3]).shape
        (3,)
        >>> est.score_samples(X[:3]).shape
        (3,)
        """
        check_is_fitted(self, "flow_")
        X = self._validate_X(X, reset=False)
        if y is None and self.target_type_ == "classes":
            return logsumexp(self._joint_log_density(X), axis=1)
        return self._log_density(X, self._targets_.context_for(y, X.shape[0]))

    def score(self, X, y=None) -> float:
        """Mean of :meth:`score_samples` (higher is better; what ``GridSearchCV`` maximises).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to evaluate.
        y : array-like or None, default=None
            As in :meth:`score_samples`.

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
        >>> from skflow import FlowSampler
        >>> rng = np.random.default_rng(0)
        >>> X = np.r_[rng.normal(-2, 1, size=(150, 2)), rng.normal(2, 1, size=(50, 2))]
        >>> y = np.r_[np.zeros(150, int), np.ones(50, int)]
        >>> est = FlowSampler(n_transforms=2, hidden_layer_sizes=(16,), max_iter=3,
        ...                   random_state=0).fit(X, y)
        >>> score = est.score(X, y)
        >>> isinstance(score, float), bool(np.isfinite(score))
        (True, True)
        """
        return float(np.mean(self.score_samples(X, y)))

    def _joint_log_density(self, X: np.ndarray) -> np.ndarray:
        """``log p(x | k) + log pi_k`` for every validated row and class: (n_rows, n_classes)."""
        n_rows, n_classes = X.shape[0], len(self.classes_)
        # One pass per class over the same rows (a broadcast one-hot context, not a copy),
        # so memory stays that of one pass rather than n_classes copies of X.
        log_density = np.column_stack(
            [
                self._log_density(X, np.broadcast_to(one_hot, (n_rows, n_classes)))
                for one_hot in np.eye(n_classes)
            ]
        )
        with np.errstate(divide="ignore"):
            return log_density + np.log(self.class_prior_)

    def _has_classes(self) -> bool:
        # Before fit the methods exist (and raise NotFittedError); after a fit without class
        # labels they do not.
        return not hasattr(self, "flow_") or getattr(self, "target_type_", None) == "classes"

    @available_if(_has_classes)
    def predict_log_proba(self, X) -> np.ndarray:
        """Log of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to classify.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            ``log p(k | x)``; columns follow ``classes_``.

        See Also
        --------
        predict_proba : Class probabilities by Bayes' rule.
        predict : Most probable class of each row.

        Examples
        --------
        >>> import numpy as np
        >>> from skflow import FlowSampler
        >>> rng = np.random.default_rng(0)
        >>> X = np.r_[rng.normal(-2, 1, size=(150, 2)), rng.normal(2, 1, size=(50, 2))]
        >>> y = np.r_[np.zeros(150, int), np.ones(50, int)]
        >>> est = FlowSampler(n_transforms=2, hidden_layer_sizes=(16,), max_iter=3,
        ...                   random_state=0).fit(X, y)
        >>> log_proba = est.predict_log_proba(X[:3])
        >>> log_proba.shape, bool(np.all(log_proba <= 0))
        ((3, 2), True)
        """
        check_is_fitted(self, "flow_")
        joint = self._joint_log_density(self._validate_X(X, reset=False))
        unplaced = np.all(joint == -np.inf, axis=1)
        if np.any(unplaced):
            # Every class density underflowed (rows of about 1e154 standard deviations out):
            # Bayes' rule is 0 / 0 there, and no class can be named honestly.
            raise ValueError(
                f"{int(unplaced.sum())} row(s) (index {np.flatnonzero(unplaced)[:10].tolist()}) "
                "lie so far from the training data that every class gives them a log-density "
                "below float64's range (-1.8e308); their class probabilities are undefined. "
                "Fill values such as 1e300 are the usual cause."
            )
        return joint - logsumexp(joint, axis=1, keepdims=True)

    @available_if(_has_classes)
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities by Bayes' rule, ``p(k | x) ∝ p(x | k) class_prior_[k]``.

        A generative classifier: see the Notes of the class docstring.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to classify.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``.

        See Also
        --------
        predict_log_proba : Log of the class probabilities.
        predict : Most probable class of each row.

        Examples
        --------
        >>> import numpy as np
        >>> from skflow import FlowSampler
        >>> rng = np.random.default_rng(0)
        >>> X = np.r_[rng.normal(-2, 1, size=(150, 2)), rng.normal(2, 1, size=(50, 2))]
        >>> y = np.r_[np.zeros(150, int), np.ones(50, int)]
        >>> est = FlowSampler(n_transforms=2, hidden_layer_sizes=(16,), max_iter=3,
        ...                   random_state=0).fit(X, y)
        >>> proba = est.predict_proba(X[:3])
        >>> proba.shape, bool(np.allclose(proba.sum(axis=1), 1.0))
        ((3, 2), True)
        """
        return np.exp(self.predict_log_proba(X))

    @available_if(_has_classes)
    def predict(self, X) -> np.ndarray:
        """The most probable class of each row (Bayes' rule with the learned densities).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to classify.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Entries of ``classes_``.

        See Also
        --------
        predict_proba : Class probabilities by Bayes' rule.
        score_samples : Log-density of each row.

        Examples
        --------
        >>> import numpy as np
        >>> from skflow import FlowSampler
        >>> rng = np.random.default_rng(0)
        >>> X = np.r_[rng.normal(-2, 1, size=(150, 2)), rng.normal(2, 1, size=(50, 2))]
        >>> y = np.r_[np.zeros(150, int), np.ones(50, int)]
        >>> est = FlowSampler(n_transforms=2, hidden_layer_sizes=(16,), max_iter=3,
        ...                   random_state=0).fit(X, y)
        >>> est.predict([[-3.0, 0.0], [3.0, 0.0]]).tolist()
        [0, 1]
        """
        best = np.argmax(self.predict_log_proba(X), axis=1)
        return self.classes_[best]

    def transform(self, X, y=None) -> np.ndarray:
        """Map rows to the latent space of their condition, where the model is ``N(0, I)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to map.
        y : array-like of shape (n_samples,) or (n_samples, n_conditions_), default=None
            The label or condition of each row; required when the model was fitted with y,
            ignored when it was fitted without.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_features_in_)
            Latent coordinates; for data from the learned ``p(x | y)``, ``Z ~ N(0, I)``.

        See Also
        --------
        inverse_transform : Map latent points back to data space.
        fit_transform : Fit, then map the training rows to the latent space.

        Examples
        --------
        >>> import numpy as np
        >>> from skflow import FlowSampler
        >>> rng = np.random.default_rng(0)
        >>> X = np.r_[rng.normal(-2, 1, size=(150, 2)), rng.normal(2, 1, size=(50, 2))]
        >>> y = np.r_[np.zeros(150, int), np.ones(50, int)]
        >>> est = FlowSampler(n_transforms=2, hidden_layer_sizes=(16,), max_iter=3,
        ...                   random_state=0).fit(X, y)
        >>> est.transform(X[:4], y[:4]).shape
        (4, 2)
        """
        check_is_fitted(self, "flow_")
        X = self._validate_X(X, reset=False)
        return self._to_latent(X, self._targets_.context_for(y, X.shape[0]))

    def fit_transform(self, X, y=None, sample_weight=None) -> np.ndarray:
        """``fit(X, y, sample_weight)`` then ``transform(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like or None, default=None
            As in :meth:`fit`.
        sample_weight : array-like of shape (n_samples,), default=None
            As in :meth:`fit`.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_features_in_)
            Latent coordinates of ``X``.

        See Also
        --------
        fit : Fit the flow by maximum likelihood.
        transform : Map rows to the latent space.

        Examples
        --------
        >>> import numpy as np
        >>> from skflow import FlowSampler
        >>> rng = np.random.default_rng(0)
        >>> X = np.r_[rng.normal(-2, 1, size=(150, 2)), rng.normal(2, 1, size=(50, 2))]
        >>> y = np.r_[np.zeros(150, int), np.ones(50, int)]
        >>> est = FlowSampler(n_transforms=2, hidden_layer_sizes=(16,), max_iter=3, random_state=0)
        >>> est.fit_transform(X, y).shape
        (200, 2)
        """
        return self.fit(X, y, sample_weight=sample_weight).transform(X, y)

    def inverse_transform(self, Z, y=None) -> np.ndarray:
        """Map latent points back to data space under their condition.

        Parameters
        ----------
        Z : array-like of shape (n_samples, n_features_in_)
            Latent points.
        y : array-like of shape (n_samples,) or (n_samples, n_conditions_), default=None
            The label or condition of each row; required when the model was fitted with y,
            ignored when it was fitted without.

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
        >>> from skflow import FlowSampler
        >>> rng = np.random.default_rng(0)
        >>> X = np.r_[rng.normal(-2, 1, size=(150, 2)), rng.normal(2, 1, size=(50, 2))]
        >>> y = np.r_[np.zeros(150, int), np.ones(50, int)]
        >>> est = FlowSampler(n_transforms=2, hidden_layer_sizes=(16,), max_iter=3,
        ...                   random_state=0).fit(X, y)
        >>> Z = est.transform(X[:4], y[:4])
        >>> bool(np.allclose(est.inverse_transform(Z, y[:4]), X[:4], atol=1e-4))
        True
        """
        check_is_fitted(self, "flow_")
        Z = self._validate_latent(Z)
        return self._from_latent(Z, self._targets_.context_for(y, Z.shape[0]))

    @validate_params(
        {  # checked before the slow fit
            "temperature": [TEMPERATURE_CONSTRAINT],
            "latent_noise": LATENT_NOISE_CONSTRAINTS,
        },
        prefer_skip_nested_validation=True,
    )
    def fit_resample(
        self,
        X,
        y,
        *,
        sampling_strategy="auto",
        latent_noise: float | None = DEFAULT_LATENT_NOISE,
        temperature: float = 1.0,
    ):
        """Fit on ``(X, y)`` and return the rows plus generated rows that rebalance the classes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Class labels (at least 2 classes).
        sampling_strategy : float, str, dict or callable, default="auto"
            imbalanced-learn's over-sampling semantics: "minority", "not minority",
            "not majority" (= "auto") or "all" grow the chosen classes to the size of the
            largest one; a float (2 classes only) is the wanted ratio of minority to majority
            rows; a dict maps a class to its wanted number of rows; a callable takes y and
            returns such a dict.
        latent_noise : float or None, default=0.25
            How new rows are made. A number: each new row of class ``k`` starts from a real
            row of ``k`` chosen at random, is mapped to the latent space of ``k``, moved there
            by Gaussian noise of this standard deviation (the learned density is ``N(0, I)``
            in that space) and mapped back: a smoothed bootstrap whose noise follows the shape
            the flow learned for the class, so new rows stay near real ones and on the class's
            curved or clustered support. 0 repeats real rows (random oversampling). None:
            draw the new rows from the learned ``p(x | k)`` itself, like ``sample``. See
            ``docs/benchmarks.md`` for how the two compare downstream.
        temperature : float, default=1.0
            Standard deviation of the latent draws when ``latent_noise=None`` (see
            ``sample``): below 1 the rows stay nearer each class's modes. On the oversampling
            benchmark (three sets, four seeds, ``docs/design_notes.md``) 0.8 moved a downstream
            classifier's mean average precision from 0.863 to 0.866 and its balanced accuracy
            from 0.899 to 0.897: a small trade, so the default stays 1. Only for draws from
            the model: with ``latent_noise`` set, a temperature other than 1 is an error.

        Returns
        -------
        X_resampled : ndarray of shape (n_samples_new, n_features)
            The original rows followed by the generated ones (float dtype of X kept; lists and
            DataFrames come back as lists and DataFrames).
        y_resampled : ndarray of shape (n_samples_new,)
            Their labels.

        See Also
        --------
        sample : Draw new rows from the learned density.
        FlowOverSampler : The same oversampling as an imbalanced-learn pipeline step.

        Examples
        --------
        >>> import numpy as np
        >>> from skflow import FlowSampler
        >>> rng = np.random.default_rng(0)
        >>> X = np.r_[rng.normal(-2, 1, size=(150, 2)), rng.normal(2, 1, size=(50, 2))]
        >>> y = np.r_[np.zeros(150, int), np.ones(50, int)]
        >>> est = FlowSampler(n_transforms=2, hidden_layer_sizes=(16,), max_iter=3, random_state=0)
        >>> X_res, y_res = est.fit_resample(X, y)
        >>> X_res.shape, np.bincount(y_res).tolist()
        ((300, 2), [150, 150])
        """
        _check_generation(latent_noise, temperature)
        check_restorable_columns(X)
        X_in, y_in = X, y
        labels = _resampling_labels(y)
        # Decide the strategy before the (slow) fit, so a bad one fails at once.
        classes, counts = np.unique(labels, return_counts=True)
        targets = _oversampling_targets(sampling_strategy, classes, counts)
        self.fit(X, labels)
        if self.target_type_ != "classes":  # pragma: no cover - _resampling_labels ensures it
            raise ValueError("fit_resample needs class labels")
        self.sampling_strategy_ = targets
        seed = derived_seed(self.random_state, "generation")
        return resample(self, X_in, y_in, targets, seed, latent_noise, temperature)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        tags.classifier_tags = ClassifierTags()
        tags.transformer_tags = TransformerTags()
        return tags
