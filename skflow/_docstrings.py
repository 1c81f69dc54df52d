"""Docstring sections the flow estimators share (one text, so they cannot drift apart)."""

from __future__ import annotations

import inspect
import re
from typing import TypeVar

FLOW_PARAMETERS = """\
    coupling : {"spline", "affine", "additive"}, default="spline"
        Element-wise map of the coupling layers: a rational-quadratic spline (after a conditional
        affine step; the most expressive), an affine map (RealNVP) or a shift (NICE, volume
        preserving).
    n_transforms : int, default=8
        Number of coupling layers.
    hidden_layer_sizes : array-like of int, default=(128, 128)
        Hidden widths of each coupling's conditioner network.
    n_bins : int or "auto", default="auto"
        Number of spline bins (``coupling="spline"`` only). "auto" is 16 for data with one or
        two features (each coupling then transforms one variable, and finer splines cost
        almost nothing); with more features, 4 up to 10,000 rows (coarse splines over-fit
        less) and 8 above or when conditioned on ``y``. See ``dropout`` for why the two change
        together. At most 512: every bin keeps at least 0.1% of the interval.
    tail_bound : float, default=5.0
        The spline acts on ``[-tail_bound, tail_bound]`` (in standardised units) and is the
        identity outside. At most 1000: in float32 a wider interval leaves the bins no
        resolution.
    mixing : {"lu", "permutation", "none"}, default="lu"
        How features are mixed between couplings: a learned invertible linear map (LU
        parameterised; the first starts as a whitening onto the data's principal components,
        dealt to the coupling's two halves in turn, the later ones near the identity), a fixed
        random permutation, or nothing.
    max_iter : int, default=300
        Maximum number of epochs.
    batch_size : int or "auto", default="auto"
        Minibatch size; "auto" is ``n_train // 40`` clipped to [64, 1024] (about 40
        steps per epoch), and ``n_train // 10`` clipped to [64, 512] for one or two features;
        never more than the number of training rows.
    learning_rate_init : float or "auto", default="auto"
        AdamW step size, reached after a linear warm-up over the first 3 epochs (at most 500
        steps); it is halved when the monitored loss stalls. "auto" is 1e-3, and 3e-3 for one
        or two features (where "auto" batches are up to four times larger).
    weight_decay : float, default=1e-5
        Decoupled weight decay (AdamW).
    dropout : float or "auto", default="auto"
        Dropout probability in the conditioner networks during training. Flows over-fit within a
        few epochs on a few thousand rows; dropout is what lets them keep learning there.
        "auto" is 0 for data with one or two features, where each conditioner sees a single
        input feature and dropout only blurs what it learns. With more features it is 0.5 (and
        ``n_bins`` 4) up to 10,000 rows, and 0.2 (``n_bins`` 8) above: the heavier setting
        gives better densities but needs about three times the epochs, so on large data it
        is worth setting ``dropout=0.5, n_bins=4`` explicitly when fit time matters less. A
        flow conditioned on ``y`` (FlowSampler) gets the lighter setting: with the heavy one,
        its generated minority-class rows were worse training data for a classifier.
    input_dropout : float or "auto", default="auto"
        Dropout probability on the conditioners' input features (never on ``y``) during
        training, so no conditioner can lean on a single feature and what it would learn from
        noise directions is averaged out. "auto" is 0.3 where ``dropout`` "auto" is heavy
        (3+ features, up to 10,000 rows, no ``y``) and there are fewer than 200 rows per
        feature, 0 elsewhere. In that range it improved the test likelihood on three seeds of
        ADBench's Waveform (by 0.15-0.18 nats) and satellite (0.04-0.20), about evenly on
        cardio and digits; with more rows per feature it cost pendigits 2.2 nats and a 10-D
        funnel a threefold KL gap (``docs/design_notes.md``, "Input dropout"). Data with
        structure in a few directions and noise in the rest may want more; tune it with
        ``GridSearchCV``.
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows, stop when their log-likelihood stops
        improving and restore the best weights. Without it, the training loss is monitored.
    validation_fraction : float, default=0.1
        Fraction of rows held out for early stopping. Copies of a row (equal rows, at most 1%
        of them) are all held out or all kept, so none can reward memorising another.
    n_iter_no_change : int, default=10
        Window, in epochs, over which progress is judged for early stopping.
    tol : float or "auto", default=1e-4
        Training stops once the best monitored NLL (nats per row) has improved by less than
        ``tol`` over the last ``n_iter_no_change`` epochs. "auto" is 1e-3 nats per modelled
        feature, a gain below what density comparisons resolve; a small number such as 1e-4
        trains on while the curve still creeps down. The fit kept is the best validated one.
    discrete_features : "auto", bool or array-like, default="auto"
        Which columns are discrete and get dequantised. "auto" picks the columns whose values
        lie on a regular grid (integers, or multiples of a step such as 0.5) and repeat (at
        most half as many distinct values as rows); True / False: all / none; or a boolean
        mask or column indices. A discrete column's cell width is the smallest gap between
        its distinct training values; ``sample`` and ``inverse_transform`` return values on
        that grid. Either way ``score_samples`` is a log-density in the units of X: for a
        discrete column, the log of its cell's probability divided by the cell's width, so
        scores are comparable across settings and with other density estimators. The
        columns chosen are in ``discrete_features_`` (printed at fit with ``verbose=1``).
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, default="auto"
        Where to train: "auto" uses a GPU when CUDA is available, otherwise the CPU.
    compile : bool, default=False
        Run the training loss through ``torch.compile``, which fuses the flow's many small
        kernels into a few generated loops. On one CPU thread an epoch ran 1.2-1.6x faster
        (``docs/design_notes.md``, "compile=True"), but compiling takes 25-45 s the first time
        a process meets an architecture (less once torch's on-disk cache holds it; later fits
        of the same architecture in the process reuse it). It pays for fits longer than a
        few minutes and for repeated fits of one architecture (grid-search folds), not for
        a fit of half a minute. Results match ``compile=False`` to float rounding. If
        compilation fails (no C++ compiler, a compiler bug), the fit warns and trains
        uncompiled. With torch builds whose custom operators take no tags (before 2.8)
        the loss is compiled in pieces between the dropout masks, which later fits do not
        reuse, so it gains less.
    n_jobs : int or None, default=None
        Torch threads used while fitting and predicting on the CPU. None means 1, which is
        fastest for the small kernels of a flow and never oversubscribes the cores when
        scikit-learn, joblib or dask run several fits in parallel; -1 uses all cores. The
        process's thread setting is restored afterwards. 0 is refused (joblib gives it no
        meaning).
    random_state : int, RandomState instance or None, default=None
        Seeds weights, batch order and the validation split. The global torch RNG is untouched.
    verbose : int, default=0
        1 shows a progress bar with the training and validation NLL per epoch.
    warm_start : bool, default=False
        Continue training the current flow on the next ``fit`` instead of starting afresh.
        Training parameters (``max_iter``, ``learning_rate_init``, ...) may change between
        warm fits; those that build the flow or the preprocessing (``coupling``,
        ``n_transforms``, ``hidden_layer_sizes``, ``n_bins``, ``tail_bound``, ``mixing``,
        ``dropout``, ``input_dropout``, ``discrete_features``) may not, and a change is an
        error rather than silently ignored. The fitted estimator keeps where the optimisation
        stood (the last parameters, Adam's moments, the learning-rate schedule, the average,
        the early-stopping count and the random streams: about four copies of the weights),
        so ``fit`` called ten times with ``max_iter=2`` on the same data gives the model of one
        fit with ``max_iter=20``, to the bit. A changed ``learning_rate_init`` replaces the
        schedule's learning rate.
    callback : callable or None, default=None
        Called after every epoch of training as ``callback(info)``, with an
        :class:`~skflow.EpochInfo` (epoch, training loss, validation score, best validation
        score, learning rate, seconds elapsed, and ``score_samples`` to score rows of your own
        with this epoch's weights): to log progress, plot a learning curve, or stop on a
        budget. A true return value stops training after that epoch, and the fit ends as
        early stopping ends it (the best validated weights; with ``early_stopping=False`` the
        averaged weights of that epoch), without a ``ConvergenceWarning``.
        Like every parameter it is copied by ``clone`` (so each ``GridSearchCV`` candidate
        calls its own copy of a callable object), and it must be picklable for the estimator
        to be pickled."""

FLOW_ATTRIBUTES = """\
    flow_ : skflow.flows.Flow
        The trained PyTorch flow (acting on standardised data).
    preprocessor_ : object
        What is done to X before the flow: which columns are discrete (``step_ > 0``, their
        cell width), their grid origin, and the per-feature mean and scale. Its
        ``log_jacobian_`` is added to every log-density so that densities are in the units
        of X.
    discrete_features_ : ndarray of bool, shape (n_features_in_,)
        The columns treated as discrete (dequantised over their grid cells; their step is in
        ``preprocessor_.step_``). With ``discrete_features="auto"`` these are the columns
        whose values lie on a regular grid and repeat; ``verbose=1`` prints them at fit.
        Scores stay densities in the units of X for every column.
    device_ : torch.device
        The device the flow was trained on.
    n_iter_ : int
        Epochs run.
    loss_curve_ : list of float
        Training NLL per epoch (nats per row, in the units of X), of the live weights during
        the epoch.
    validation_scores_ : list of float or None
        Validation mean log-likelihood per epoch of the averaged weights (None without early
        stopping).
    best_validation_score_ : float or None
        Best validation mean log-likelihood; its (averaged) weights are the ones kept.
    n_recoveries_ : int
        Times training hit a non-finite loss and recovered by restoring the last good state
        and halving the learning rate.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names."""

_T = TypeVar("_T", bound=type)


def _with_defaults_of(cls: type, section: str) -> str:
    """``section`` with every ``name : type, default=...`` line showing ``cls``'s own default,
    so an estimator whose defaults differ (the detector's smaller flow) documents them right."""
    defaults = {
        name: param.default
        for name, param in inspect.signature(cls.__init__).parameters.items()
        if param.default is not inspect.Parameter.empty
    }

    def substitute(match: re.Match) -> str:
        name = match.group(1)
        if name not in defaults:
            return match.group(0)
        value = defaults[name]
        shown = f'"{value}"' if isinstance(value, str) else repr(value)
        return f"{match.group(1)} :{match.group(2)}default={shown}"

    return re.sub(
        r"^    (\w+) :(.*?)default=.*$",
        lambda m: "    " + substitute(m),
        section,
        flags=re.MULTILINE,
    )


def fill_flow_docs(cls: _T) -> _T:
    """Class decorator: put the shared sections where ``{flow_parameters}`` and
    ``{flow_attributes}`` stand alone on a line of the class docstring."""
    doc = cls.__doc__ or ""
    doc = doc.replace("    {flow_parameters}\n", _with_defaults_of(cls, FLOW_PARAMETERS) + "\n")
    cls.__doc__ = doc.replace("    {flow_attributes}\n", FLOW_ATTRIBUTES + "\n")
    return cls
