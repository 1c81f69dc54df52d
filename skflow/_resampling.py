"""Over-sampling with imbalanced-learn's semantics: how many rows per class, how the new rows are
made (drawn from the model or around real rows in its latent space), and the output."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import type_of_target

from ._input_checks import dtype_kind, non_numeric_columns
from ._targets import _as_target_array

_STRATEGIES = ("auto", "minority", "not minority", "not majority", "all")


def _oversampling_targets(strategy, classes: np.ndarray, counts: np.ndarray) -> dict:
    """Rows to generate per class under imbalanced-learn's ``sampling_strategy`` semantics.

    Ties between the largest (or smallest) classes go to the first of them in ``classes``.
    """
    if len(classes) < 2:
        raise ValueError(
            f"fit_resample needs at least 2 classes in y to balance, got {len(classes)} class"
        )
    stats = {c: int(n) for c, n in zip(classes.tolist(), counts.tolist(), strict=True)}
    majority = classes.tolist()[int(np.argmax(counts))]
    minority = classes.tolist()[int(np.argmin(counts))]
    n_max = int(counts.max())
    if callable(strategy):
        strategy = strategy(np.repeat(classes, counts))
    if isinstance(strategy, str):
        if strategy == "minority":
            chosen = [minority]
        elif strategy in ("auto", "not majority"):
            chosen = [c for c in stats if c != majority]
        elif strategy == "not minority":
            chosen = [c for c in stats if c != minority]
        elif strategy == "all":
            chosen = list(stats)
        else:
            raise ValueError(
                f"sampling_strategy {strategy!r} is not an over-sampling strategy; use one of "
                f"{_STRATEGIES}, a float or a dict"
            )
        return {c: n_max - stats[c] for c in chosen}
    if isinstance(strategy, dict):
        targets = {}
        for label, wanted in strategy.items():
            if label not in stats:
                raise ValueError(
                    f"sampling_strategy names class {label!r}, which is not present in y "
                    f"(classes: {list(stats)})"
                )
            if not isinstance(wanted, Integral) or wanted < stats[label]:
                raise ValueError(
                    f"sampling_strategy asks for {wanted!r} rows of class {label!r}, which has "
                    f"{stats[label]}: an over-sampler can only ask for at least as many rows "
                    "as there are (an integer)"
                )
            targets[label] = int(wanted) - stats[label]
        return targets
    if isinstance(strategy, Real) and not isinstance(strategy, bool):
        if len(classes) != 2:
            raise ValueError(
                "a float sampling_strategy (ratio of minority to majority rows) is only "
                f"defined for 2 classes, y has {len(classes)}; use a dict instead"
            )
        if not 0 < strategy <= 1:
            raise ValueError(f"a float sampling_strategy must be in (0, 1], got {strategy}")
        n_new = int(n_max * strategy - stats[minority])
        if n_new < 0:
            raise ValueError(
                f"sampling_strategy={strategy} asks for fewer minority rows "
                f"({int(n_max * strategy)}) than there are ({stats[minority]}); an "
                "over-sampler cannot remove rows: increase the ratio"
            )
        return {minority: n_new}
    raise ValueError(f"sampling_strategy {strategy!r} is not a string, float, dict or callable")


# ---------------------------------------------------------------------------------- FlowSampler


def _resampling_labels(y) -> np.ndarray:
    """Class labels for resampling: 1-D (or a column), or a one-vs-all indicator matrix."""
    if y is None:
        raise ValueError(
            "fit_resample requires y to be passed, but the target y is None: it needs class labels"
        )
    y = _as_target_array(y, None)
    kind = type_of_target(y)
    if kind == "multilabel-indicator":
        if np.any(y.sum(axis=1) != 1):
            raise ValueError(
                "Multilabel and multioutput targets are not supported: a 2-D y must be a "
                "one-vs-all encoding with a single 1 per row"
            )
        return y.argmax(axis=1)
    if kind not in ("binary", "multiclass"):
        raise ValueError(
            f"Unknown label type: fit_resample needs class labels, got y of type {kind!r}"
            + (
                ". Multilabel and multioutput targets are not supported."
                if kind.endswith("multioutput")
                else ""
            )
        )
    return y.ravel()


def _resampled_output(X_in, y_in, X_new: np.ndarray, labels: np.ndarray, classes: np.ndarray):
    """Original rows + generated rows, in the container types and dtypes of the input."""
    is_frame = hasattr(X_in, "iloc") and hasattr(X_in, "columns")
    X_arr = X_in.to_numpy() if is_frame else np.asarray(X_in)
    if not is_frame and X_arr.dtype.kind in "biu" and len(X_arr):
        # Integer or boolean arrays get integers back, within each column's range, as the
        # columns of a DataFrame do (see _frame_like).
        X_new = np.clip(np.round(X_new), X_arr.min(axis=0), X_arr.max(axis=0))
        dtype = X_arr.dtype
    else:
        dtype = X_arr.dtype if X_arr.dtype.kind == "f" else np.float64
    X_res = np.concatenate([X_arr.astype(dtype, copy=False), X_new.astype(dtype)], axis=0)

    y_arr = y_in.to_numpy() if hasattr(y_in, "to_numpy") else np.asarray(y_in)
    if y_arr.ndim == 2 and y_arr.shape[1] > 1:  # one-vs-all in, one-vs-all out
        new = (labels[:, None] == np.arange(y_arr.shape[1])[None, :]).astype(y_arr.dtype)
        y_res = np.concatenate([y_arr, new], axis=0)
    else:
        y_res = np.concatenate([y_arr.ravel(), labels.astype(y_arr.dtype, copy=False)])
        if y_arr.ndim == 2:
            y_res = y_res[:, None]

    if is_frame:
        X_res = _frame_like(X_in, X_res)
    elif isinstance(X_in, list):
        X_res = X_res.tolist()
    if hasattr(y_in, "to_frame") and hasattr(y_in, "name"):  # Series
        import pandas as pd

        y_res = pd.Series(y_res.ravel(), name=y_in.name, dtype=y_in.dtype)
    elif hasattr(y_in, "columns"):
        import pandas as pd

        y_res = pd.DataFrame(y_res, columns=y_in.columns).astype(y_in.dtypes.to_dict())
    elif isinstance(y_in, list):
        y_res = y_res.tolist()
    return X_res, y_res


def check_restorable_columns(X_in) -> None:
    """Refuse, before any fitting, a DataFrame column whose dtype generated rows cannot take.

    Generated values are floats; they go back into float, integer (rounded), boolean and
    numeric categorical columns (snapped to the nearest category), nullable or not.
    """
    if not hasattr(X_in, "iloc"):
        return
    unsupported = [f"{name!r} ({dtype})" for name, dtype in non_numeric_columns(X_in)]
    if unsupported:
        raise ValueError(
            "fit_resample returns the DataFrame's own dtypes, but generated rows cannot be "
            f"written into column(s) {', '.join(unsupported)}; encode them as numbers first"
        )


def _frame_like(X_in, values: np.ndarray):
    """``values`` (original rows then generated ones) as a DataFrame with X_in's dtypes.

    Generated values are floats: integer and boolean columns get them rounded and kept within
    the column's training range (so a uint8 cannot wrap around), categorical columns the
    nearest of their categories; a plain cast turned a generated 0.26 into NaN in a category
    column of 0.1, 0.25 and 1.7, and failed on nullable integers.
    """
    import pandas as pd

    n_original = len(X_in)
    parts = []
    for j, dtype in enumerate(X_in.dtypes):
        original = X_in.iloc[:, j].reset_index(drop=True)
        generated = values[n_original:, j]
        categories = getattr(dtype, "categories", None)
        if categories is not None:
            new = pd.Categorical(
                np.asarray(categories)[_nearest_level(categories, generated)],
                categories=categories,
                ordered=dtype.ordered,
            )
        elif dtype_kind(dtype) in "biu":
            numbers = original.to_numpy(dtype=np.float64)
            new = np.clip(np.round(generated), numbers.min(), numbers.max())
            new = new.astype(bool) if dtype_kind(dtype) == "b" else new
        else:
            new = generated
        parts.append(pd.concat([original, pd.Series(new).astype(dtype)], ignore_index=True))
    frame = pd.concat(parts, axis=1)
    frame.columns = X_in.columns
    return frame


def _nearest_level(categories, values: np.ndarray) -> np.ndarray:
    """Index into ``categories`` (numeric) of the category nearest each value."""
    levels = np.asarray(categories, dtype=np.float64)
    order = np.argsort(levels)
    ranked = levels[order]
    right = np.searchsorted(ranked, values).clip(1, max(len(ranked) - 1, 1))
    left = right - 1
    if len(ranked) > 1:
        nearer_left = np.abs(values - ranked[left]) <= np.abs(ranked[right] - values)
        right = np.where(nearer_left, left, right)
    else:
        right = np.zeros(len(values), dtype=np.intp)
    return order[right]


def _as_sampler_tags(tags):
    """imbalanced-learn's tags (with ``sampler_tags``) when it is installed, else ``tags``."""
    try:
        from imblearn.utils._tags import InputTags, SamplerTags, Tags
    except ImportError:
        return tags
    names = (
        "target_tags", "transformer_tags", "classifier_tags", "regressor_tags",
        "array_api_support", "no_validation", "non_deterministic", "requires_fit", "_skip_test",
    )  # fmt: skip
    fields = {name: getattr(tags, name) for name in names if hasattr(tags, name)}
    inputs = InputTags(dataframe=True)
    for name in ("two_d_array", "sparse", "allow_nan", "string", "categorical", "pairwise"):
        if hasattr(tags.input_tags, name):
            setattr(inputs, name, getattr(tags.input_tags, name))
    return Tags(estimator_type="sampler", sampler_tags=SamplerTags(), input_tags=inputs, **fields)


def resample(
    sampler, X_in, y_in, targets: dict, seed: int, latent_noise: float | None, temperature: float
):
    """The rows ``fit_resample`` returns: the original ones, then ``targets[k]`` new rows of
    each class ``k`` made by the fitted ``sampler`` (a :class:`FlowSampler`), in the
    containers and dtypes of ``X_in`` and ``y_in``.

    ``latent_noise`` None draws the new rows from the model at ``temperature``; a number
    makes them around real rows of the class (:func:`latent_bootstrap`). ``seed`` seeds
    whichever it is.
    """
    labels = np.concatenate(
        [np.full(n, label, dtype=sampler.classes_.dtype) for label, n in targets.items()]
        + [sampler.classes_[:0]]
    )
    X_new = np.empty((0, sampler.n_features_in_))
    if len(labels) and latent_noise is None:
        X_new, _ = sampler.sample(y=labels, random_state=seed, temperature=temperature)
    elif len(labels):
        X_new = latent_bootstrap(sampler, X_in, y_in, labels, seed, latent_noise)
    return _resampled_output(X_in, y_in, X_new, labels, sampler.classes_)

def latent_bootstrap(sampler, X_in, y_in, labels: np.ndarray, seed: int, noise: float):
    """New rows around real ones: one per entry of ``labels``, moved in the latent space.

    Each starts from a real row of its class drawn at random (with replacement) and gets
    ``noise`` times a standard Gaussian added to its latent code under that class.
    """
    X = sampler._validate_X(X_in, reset=False)
    y = _resampling_labels(y_in)
    rng = check_random_state(seed)
    anchors = np.empty(len(labels), dtype=np.intp)
    for label in np.unique(labels):
        slots = np.flatnonzero(labels == label)
        anchors[slots] = rng.choice(np.flatnonzero(y == label), size=len(slots))
    if noise == 0:
        # Random oversampling, as documented: the real rows themselves, not their float32
        # round trip through the flow (which is off by about 1e-7).
        return X[anchors]
    context = sampler._targets_.context_for(labels, len(labels))
    Z = sampler._to_latent(X[anchors], context)
    Z += sampler._sample_latent(len(labels), rng, noise)  # its scale argument is the noise
    return sampler._from_latent(Z, context)


def _check_generation(latent_noise: float | None, temperature: float) -> None:
    """``temperature`` scales draws from the model; it has no meaning with ``latent_noise``."""
    if latent_noise is not None and temperature != 1.0:
        raise ValueError(
            f"temperature={temperature} applies to rows drawn from the model, but "
            f"latent_noise={latent_noise} makes new rows around real ones instead; set "
            "latent_noise=None to use a temperature, or leave the temperature at 1"
        )
