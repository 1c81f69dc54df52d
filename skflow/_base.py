"""What the skflow estimators share: parameters, input validation, devices, fitting, pickling."""

from __future__ import annotations

import copy
import os
import threading
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from scipy.special import logsumexp
from sklearn.base import BaseEstimator
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ._constraints import Count
from ._engine.chunking import MAX_CHUNK_ROWS, chunk_rows
from ._engine.device import cpu_copy, is_on, resolve_device, usable_device
from ._engine.persistence import plain_state, restored_state
from ._engine.threads import torch_threads
from ._engine.training import TrainingConfig, TrainingData, TrainingHistory, train_flow
from ._preprocessing import Preprocessor, cell_offsets
from ._random_streams import SEED_MAX, derived_seed, derived_seeds
from ._splitting import copy_groups, train_validation_split
from ._weights import positive_weight_rows
from .flows import COUPLINGS, MIXINGS, Flow, build_flow
from .flows.dropout import mask_generator
from .flows.transforms import reuse_mixing_matrices

_GLOBAL_RNG_LOCK = threading.Lock()
MAX_BINS = 512
MAX_TAIL_BOUND = 1000.0
# ``temperature`` of sample() and the oversamplers: the scale of the latent draws. 1 draws from
# the model; below 1 concentrates the draws near its modes (Glow's sampling temperature),
# trading diversity for typical rows. (The open interval refuses infinity and NaN too.)
TEMPERATURE_CONSTRAINT = Interval(Real, 0, None, closed="neither")
# ``latent_noise`` of the oversamplers: None draws new rows from the model; a scale >= 0 moves
# randomly chosen real rows of the class by that much Gaussian noise in the latent space (0
# repeats them). The interval refuses infinity and NaN.
LATENT_NOISE_CONSTRAINTS = [Interval(Real, 0, None, closed="left"), None]
# The default: on the oversampling benchmark (docs/benchmarks.md) rows moved by a quarter of
# the latent standard deviation kept a downstream classifier's ranking (average precision)
# where rows drawn from the model had cost it, at the same balanced accuracy.
DEFAULT_LATENT_NOISE = 0.25
# The default batch: about 40 steps per epoch (n_train // 40), at least 64 rows and at most
# 1024. Early stopping, the plateau schedule, the warm-up and the parameter average all count
# in epochs, so a data set of a few thousand rows needs enough steps per epoch for those clocks
# to mean anything: with the earlier floor of 256 rows, 1,200 rows got 5 steps per epoch, and
# smaller batches gave a better test likelihood on all six real density benchmark sets (cardio
# by 0.5 nats, digits by 2.0) for 1.5-2x the fit time. Above 10,240 rows nothing changed;
# there the largest batch keeps each epoch of a large data set to fewer, fuller steps.
# Measured in docs/benchmarks.md ("A smaller automatic batch on small data").
_AUTO_BATCH_MIN, _AUTO_BATCH_MAX, _AUTO_STEPS_PER_EPOCH = 64, 1024, 40
# With one or two features (the "low_dim" regime below: no dropout, so no mask noise to average
# over) a step costs about the same at 140 rows as at 512, so "auto" takes about 10 steps per
# epoch of at most 512 rows, at learning rate 3e-3. On the three 2-D benchmark sets (5,625
# training rows) over data seeds 1 and 2 that fitted 1.8-2.8x faster for a test NLL 0.0008
# nats better on average (worst +0.004); on seed 0, 0.002-0.007 worse. Batches of
# n_train // 10 uncapped (562 rows there) lost 0.02-0.03 nats, probably to the 5-row last
# batch of each epoch at the larger rate. Measured in docs/benchmarks.md ("Time to a good
# density").
_LOW_DIM_STEPS_PER_EPOCH, _LOW_DIM_BATCH_MAX = 10, 512
_LOW_DIM_LEARNING_RATE, _LEARNING_RATE = 3e-3, 1e-3
# "auto" spline bins and dropout. With one or two features every conditioner sees one input
# feature (or none): a smooth function of one variable that thousands of rows pin down, so
# dropout only blurs it, and finer splines add few parameters. With more features the
# conditioners see many inputs and over-fit within a few epochs: coarse splines and heavy
# dropout (4 bins, 0.5) gave a better test likelihood on 7 of the 8 benchmark sets with 5+
# features and on a 16-D synthetic set at 5,000 to 100,000 rows, but need about three times
# the epochs. Up to 10,000 rows that keeps a default fit within about a minute on two cores
# (10,000 x 16: 45 s; at 20,000 x 16 it took 98 s against 39 s for the lighter setting, since
# the principal-component initialisation of the first LU layer); above, an epoch is expensive
# and the lighter setting (8 bins, 0.2) converges faster.
# Conditional flows (FlowSampler with y) keep the lighter setting: with unweighted classes,
# rows generated for cardio's minority class under the heavy setting trained a classifier to
# 59% of its real-data score instead of 74% (probably because dropout also hides the
# condition from the conditioners; measured before balanced class weights became the default).
# Measured in docs/benchmarks.md ("Defaults for one or two features", "Heavier
# regularisation by default").
_LOW_DIM_MAX_FEATURES = 2
# "auto" tol: training stops once the best validation NLL has improved by less than 1e-3 nats
# per modelled feature over the last n_iter_no_change epochs (a window rule, see
# ``_engine.training``). Replayed on the validation curves of benchmarks/fit_cost.py, the
# earlier rule (stop after 10 epochs without a new best by 1e-4 nats) spent 15-40% of each fit
# on gains of at most 0.008 nats per feature. Measured in docs/benchmarks.md ("Time to a good
# density").
AUTO_TOL_PER_FEATURE = 1e-3
_SMALL_DATA_MAX_ROWS = 10_000
# (spline bins, dropout) of each "auto" regime.
_AUTO_REGULARISATION = {"low_dim": (16, 0.0), "heavy": (4, 0.5), "light": (8, 0.2)}
# "auto" input dropout: in the heavy regime with fewer than 200 rows per feature, a
# conditioner has many inputs and few rows to tell the informative ones from noise, and learns
# the noise. Dropping its inputs (0.3) improved the test likelihood on three seeds of the
# benchmark sets in that range: Waveform by 0.15-0.18 nats each time, satellite by 0.04-0.20,
# digits on average by 0.09 and cardio by 0.01 (both mixed). With more rows per feature the
# conditioners can learn real dependencies, and hiding inputs cost pendigits (336 rows per
# feature) 2.2 nats, annthyroid (889) 0.16 and the 10-D funnel (625) a threefold KL gap.
# Measured in docs/benchmarks.md ("Input dropout").
_INPUT_DROPOUT_MAX_ROWS_PER_FEATURE = 200
_AUTO_INPUT_DROPOUT = 0.3


def _auto_regime(n_features: int, n_samples: int, conditional: bool) -> str:
    """Which "auto" bins/dropout pair data of this shape get (see the comment above)."""
    if n_features <= _LOW_DIM_MAX_FEATURES:
        return "low_dim"
    if conditional or n_samples > _SMALL_DATA_MAX_ROWS:
        return "light"
    return "heavy"


def resolve_regularisation(
    n_bins: int | str,
    dropout: float | str,
    input_dropout: float | str,
    n_features: int,
    n_samples: int,
    conditional: bool = False,
) -> tuple[int, float, float]:
    """Spline bins, conditioner dropout and input dropout: each as given, or its "auto"
    choice for the data's shape (see the comments above)."""
    regime = _auto_regime(n_features, n_samples, conditional)
    auto_bins, auto_dropout = _AUTO_REGULARISATION[regime]
    few_rows = n_samples < _INPUT_DROPOUT_MAX_ROWS_PER_FEATURE * n_features
    auto_input_dropout = _AUTO_INPUT_DROPOUT if regime == "heavy" and few_rows else 0.0
    return (
        auto_bins if n_bins == "auto" else int(n_bins),
        auto_dropout if dropout == "auto" else float(dropout),
        auto_input_dropout if input_dropout == "auto" else float(input_dropout),
    )


# Parameters the fitted modules and preprocessing are built from; a warm start cannot change
# them (training parameters such as max_iter or learning_rate_init it can).
_ARCHITECTURE_PARAMS = (
    "coupling",
    "n_transforms",
    "hidden_layer_sizes",
    "n_bins",
    "tail_bound",
    "mixing",
    "dropout",
    "input_dropout",
    "discrete_features",
)


class BaseFlowEstimator(BaseEstimator):
    """Shared machinery of the flow estimators; not part of the public API.

    Subclasses list every parameter in their own ``__init__`` (scikit-learn reads the signature)
    and call :meth:`_fit_flow` from ``fit``.
    """

    # What fitting does with a constant column: "error" (a density estimator cannot model a
    # point mass) or "drop" (an outlier detector just scores the other columns).
    _constant_features: ClassVar[str] = "error"
    # What fitting does with a continuous column that is an exact affine function of others:
    # "error" (no density exists in all d dimensions) or "leave_out" (model the others and
    # rebuild it from the relation in generated rows).
    _dependent_features: ClassVar[str] = "error"

    _parameter_constraints: ClassVar[dict] = {
        "coupling": [StrOptions(set(COUPLINGS))],
        "n_transforms": [Count(1)],
        "hidden_layer_sizes": ["array-like", Count(1)],
        # Every bin is at least min_bin_size (1e-3) of the interval: 512 bins leave half of it
        # to learn; at 1,000 nothing is left.
        "n_bins": [StrOptions({"auto"}), Count(2, MAX_BINS)],
        # In standard deviations of the flow's inputs (about 3 to 12 is useful): far beyond,
        # float32 bins hold no resolution (at 1e15 every row fell in one value) and the
        # density no longer integrates to 1.
        "tail_bound": [Interval(Real, 0, MAX_TAIL_BOUND, closed="right")],
        "mixing": [StrOptions(set(MIXINGS))],
        "max_iter": [Count(1)],
        "batch_size": [StrOptions({"auto"}), Count(1)],
        "learning_rate_init": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "dropout": [StrOptions({"auto"}), Interval(Real, 0, 1, closed="left")],
        "input_dropout": [StrOptions({"auto"}), Interval(Real, 0, 1, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Count(1)],
        "tol": [StrOptions({"auto"}), Interval(Real, 0, None, closed="left")],
        "discrete_features": [StrOptions({"auto"}), "boolean", "array-like"],
        "device": [str, torch.device],
        "compile": ["boolean"],
        "n_jobs": [Count(None, -1), Count(1), None],  # joblib's meaning; 0 has none
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }

    # ------------------------------------------------------------------ input validation
    def _validate_X(self, X, reset: bool) -> np.ndarray:
        """Validate ``X`` at the boundary: dense, numeric, finite, float64, >= 2 rows on fit."""
        _check_integers_fit_float64(X)
        try:
            return validate_data(
                self,
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
            columns = _non_numeric_columns(X)
            named = f" (non-numeric column(s): {columns})" if columns else ""
            raise ValueError(
                f"{type(self).__name__} needs numeric X{named}; encode non-numeric columns "
                "first (e.g. with sklearn.preprocessing.OneHotEncoder). Original error: "
                f"{error}"
            ) from error

    def _validate_latent(self, Z) -> np.ndarray:
        """Validate latent points for ``inverse_transform`` (same width as X, finite)."""
        Z = check_array(Z, dtype=np.float64, accept_sparse=False)
        n_latent = int(np.sum(self.preprocessor_.keep_))
        if Z.shape[1] != n_latent:
            raise ValueError(
                f"Z has {Z.shape[1]} features, but {type(self).__name__} is expecting "
                f"{n_latent} features as input."
            )
        return Z

    def _resolved_hidden_sizes(self) -> tuple[int, ...]:
        sizes = (
            (self.hidden_layer_sizes,)
            if isinstance(self.hidden_layer_sizes, Integral)
            else tuple(self.hidden_layer_sizes)
        )
        # bool is an Integral to Python; True as a layer width is a mistake, not 1.
        if not all(isinstance(s, Integral) and not isinstance(s, bool) and s >= 1 for s in sizes):
            raise ValueError(
                f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}"
            )
        return tuple(int(s) for s in sizes)

    # ------------------------------------------------------------------ fitting
    def _fit_flow(
        self,
        X: np.ndarray,
        sample_weight=None,
        context: np.ndarray | None = None,
    ) -> None:
        """Preprocess ``X``, build (or reuse) the flow and train it; sets the fitted state."""
        hidden = self._resolved_hidden_sizes()
        device = resolve_device(self.device)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        n_rows_given = X.shape[0]
        X, context, sample_weight = positive_weight_rows(X, context, sample_weight)
        # The validation split draws from ``rng`` after these two seeds.
        rng = check_random_state(self.random_state)
        init_seed, order_seed = derived_seeds(rng, "initialisation", "batch_order")
        warm = self.warm_start and hasattr(self, "flow_")
        if warm:
            self._check_same_architecture()

        if not warm:
            self.preprocessor_ = Preprocessor(
                self.discrete_features, self._constant_features, self._dependent_features
            ).fit(X, sample_weight, weighted=X.shape[0] < n_rows_given)
            self.discrete_features_ = self.preprocessor_.discrete_columns()
            if self.verbose:
                print(self._discrete_columns_message())
        n_latent = int(np.sum(self.preprocessor_.keep_))
        train_idx, val_idx = self._split(X, rng)
        self._check_enough_rows(len(train_idx), val_idx, n_latent, n_rows_given - X.shape[0])

        if warm:
            # Copies: the fitted flow and history stay as they are until training has ended
            # (see ``atomic_fit``), so an interrupted warm fit leaves the previous model whole.
            flow = copy.deepcopy(self.flow_).to(device)
            history = copy.deepcopy(self._history_)
        else:
            flow = self._build(
                n_latent,
                X.shape[0],
                hidden,
                0 if context is None else context.shape[1],
                init_seed,
            ).to(device)
            history = TrainingHistory()

        order = train_idx if val_idx is None else np.concatenate([train_idx, val_idx])
        data = self._training_tensors(X, context, sample_weight, order, device)
        train = data.take(slice(0, len(train_idx)))
        validation = None if val_idx is None else data.take(slice(len(train_idx), None))
        if warm and history.resume is None:
            # A warm start with no saved optimisation state (the last fit had warm_start=False):
            # new batches and dropout masks, not a replay of the first fit's.
            order_seed = (order_seed + history.n_iter) % SEED_MAX
        # On the CPU whatever the device (see train_flow): same seed, same batches everywhere.
        generator = torch.Generator().manual_seed(order_seed)
        with torch_threads(self.n_jobs):
            history = self._train(flow, train, validation, generator, history)
        self.flow_ = flow
        self.device_ = device
        if not warm:
            self._architecture_ = self._architecture()
        self._history_ = history
        self.n_iter_ = history.n_iter
        self.loss_curve_ = list(history.loss_curve)
        self.validation_scores_ = (
            list(history.validation_scores) if validation is not None else None
        )
        self.best_validation_score_ = history.best_validation_score
        self.n_recoveries_ = history.n_recoveries

    def _discrete_columns_message(self) -> str:
        """One line saying which columns were taken as discrete, their cells, and why."""
        discrete = np.flatnonzero(self.discrete_features_)
        names = getattr(self, "feature_names_in_", None)
        if not len(discrete):
            return f"skflow: all {len(self.discrete_features_)} columns treated as continuous"
        steps = self.preprocessor_.step_[self.preprocessor_.step_ > 0]
        listed = ", ".join(
            f"{names[j] if names is not None else j} (step {step:.6g})"
            for j, step in zip(discrete, steps, strict=True)
        )
        why = (
            "their values lie on a regular grid and repeat"
            if isinstance(self.discrete_features, str)
            else "as discrete_features says"
        )
        return (
            f"skflow: {len(discrete)} of {len(self.discrete_features_)} columns treated as "
            f"discrete ({why}): {listed}. They are dequantised over their grid cells; "
            "score_samples stays a density in the units of X (the cell's probability divided "
            "by its width) and sample returns values on the grid. Pass "
            "discrete_features=False to treat every column as continuous."
        )

    def _check_enough_rows(
        self, n_train: int, val_idx, n_latent: int, n_zero_weight: int = 0
    ) -> None:
        """Refuse a fit with no more training rows than features.

        The rows then span at most a (rows - 1)-dimensional subspace: the data-initialised
        whitening scales the missing directions by ~1e6 and the fit diverges silently.
        """
        if n_train > n_latent:
            return
        held_out = (
            ""
            if val_idx is None
            else f" after holding out {len(val_idx)} for validation (early_stopping=True)"
        )
        if n_zero_weight:
            held_out += f" and leaving out {n_zero_weight} of zero sample_weight"
        raise ValueError(
            f"{type(self).__name__} needs more training rows than features: got "
            f"{n_train} row(s){held_out} for {n_latent} feature(s). A density in "
            f"{n_latent} dimensions cannot be estimated from so few points; reduce the "
            "number of features first (e.g. PCA in a Pipeline) or use more rows."
        )

    def _architecture(self) -> dict:
        """The parameters the flow and the preprocessing are built from, comparably written."""
        spec = {name: repr(getattr(self, name)) for name in _ARCHITECTURE_PARAMS}
        spec["hidden_layer_sizes"] = repr(self._resolved_hidden_sizes())
        return spec

    def _check_same_architecture(self) -> None:
        """Refuse a warm start whose parameters would need a different flow.

        A warm start continues the fitted modules; a changed ``n_transforms`` or dropout would
        otherwise be ignored without a word. Models pickled before this check have no record
        of their architecture and are not checked.
        """
        before = getattr(self, "_architecture_", None)
        if before is None:
            return
        now = self._architecture()
        changed = [
            f"{name} was {before[name]}, now {now[name]}"
            for name in now
            if before[name] != now[name]
        ]
        if changed:
            raise ValueError(
                "warm_start=True continues the fitted flow, which these parameters built and "
                f"cannot change: {'; '.join(changed)}. Set warm_start=False to fit a new flow."
            )

    def _training_tensors(self, X, context, weight, order, device) -> TrainingData:
        """Preprocessed rows ``X[order]`` (and their context, weights) as float32 tensors.

        Built chunk by chunk, so the one full-size copy of the data is the float32 one the
        flow trains on; the train and validation parts are later taken from it as views.
        """
        n_latent = int(np.sum(self.preprocessor_.keep_))
        x = np.empty((len(order), n_latent), dtype=np.float32)
        for start in range(0, len(order), MAX_CHUNK_ROWS):
            rows = order[start : start + MAX_CHUNK_ROWS]
            x[start : start + len(rows)] = self.preprocessor_.transform(X[rows])

        def tensor(array):
            if array is None:
                return None
            return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device)

        noise = self.preprocessor_.noise_width_ if self.preprocessor_.has_discrete_ else None
        return TrainingData(
            tensor(x),
            None if context is None else tensor(context[order]),
            None if weight is None else tensor(weight[order]),
            tensor(noise),
        )

    def _train(self, flow, train, validation, generator, history) -> TrainingHistory:
        device = train.x.device
        # Dropout draws from a stream seeded from the fit's seed, so the fit is reproducible
        # and the user's random streams are left exactly as they were.
        seed = int(generator.initial_seed())
        resumed = None if history.resume is None else history.resume.dropout_rng

        def train_with_dropout_stream() -> TrainingHistory:
            return train_flow(
                flow,
                train,
                validation,
                self._training_config(len(train), train.x.shape[1], chunk_rows(flow)),
                generator,
                nll_offset=-self.preprocessor_.log_jacobian_,
                history=history,
            )

        if device.type == "cuda":
            # torch's dropout on CUDA draws from the device's global generator: fork it.
            with torch.random.fork_rng(devices=[device]):
                _seed_cuda_generators(device, seed, resumed)
                trained = train_with_dropout_stream()
                state = _seed_cuda_generators(device)
        else:
            # On the CPU the masks draw from a generator of this fit's own (thread-safe).
            dropout_generator = torch.Generator().manual_seed(seed)
            if resumed is not None:
                dropout_generator.set_state(resumed)
            with mask_generator(dropout_generator):
                trained = train_with_dropout_stream()
            state = dropout_generator.get_state()
        if trained.resume is not None:  # a warm start continues the dropout stream too
            trained.resume.dropout_rng = state
        return trained

    def _split(self, X: np.ndarray, rng: np.random.RandomState):
        """Random train/validation indices (validation is ``None`` without early stopping).

        Copies of a row all go to the same side (see :mod:`skflow._splitting`). Data with
        discrete columns only repeat rows by nature, so there no rows count as copies.
        """
        n_rows = X.shape[0]
        if not self.early_stopping:
            return np.arange(n_rows), None
        n_val = int(np.clip(round(self.validation_fraction * n_rows), 1, n_rows - 1))
        kept = np.flatnonzero(self.preprocessor_.keep_)
        groups = copy_groups(X, kept) if np.any(self.preprocessor_.step_ == 0) else None
        return train_validation_split(n_rows, n_val, rng, groups)

    def _build(
        self, n_features: int, n_samples: int, hidden, context_features: int, seed: int
    ) -> Flow:
        """Build the flow on the CPU from a forked RNG: reproducible, global RNG untouched."""
        n_bins, dropout, input_dropout = resolve_regularisation(
            self.n_bins,
            self.dropout,
            self.input_dropout,
            n_features,
            n_samples,
            conditional=context_features > 0,
        )
        # torch's layers draw their initial weights from the global generator: seed it in a
        # fork, one fit at a time, so that fits in threads do not reseed it under each other.
        with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            generator = torch.Generator().manual_seed(seed)
            return build_flow(
                n_features,
                coupling=self.coupling,
                n_transforms=self.n_transforms,
                hidden_layer_sizes=hidden,
                n_bins=n_bins,
                tail_bound=self.tail_bound,
                mixing=self.mixing,
                context_features=context_features,
                dropout=dropout,
                input_dropout=input_dropout,
                generator=generator,
            )

    def _training_config(
        self, n_train: int, n_features: int, eval_chunk: int = MAX_CHUNK_ROWS
    ) -> TrainingConfig:
        """The optimisation settings, with the "auto" ones resolved for data of this shape."""
        low_dim = n_features <= _LOW_DIM_MAX_FEATURES
        if self.batch_size == "auto":
            steps, most = (
                (_LOW_DIM_STEPS_PER_EPOCH, _LOW_DIM_BATCH_MAX)
                if low_dim
                else (_AUTO_STEPS_PER_EPOCH, _AUTO_BATCH_MAX)
            )
            batch = int(np.clip(n_train // steps, _AUTO_BATCH_MIN, most))
        else:
            batch = int(self.batch_size)
        learning_rate = self.learning_rate_init
        if learning_rate == "auto":
            learning_rate = _LOW_DIM_LEARNING_RATE if low_dim else _LEARNING_RATE
        return TrainingConfig(
            max_iter=self.max_iter,
            batch_size=min(batch, n_train),
            learning_rate_init=float(learning_rate),
            weight_decay=self.weight_decay,
            early_stopping=self.early_stopping,
            n_iter_no_change=self.n_iter_no_change,
            tol=AUTO_TOL_PER_FEATURE * n_features if self.tol == "auto" else float(self.tol),
            verbose=int(self.verbose),
            eval_chunk=eval_chunk,
            compile=self.compile,
            keep_state=self.warm_start,
        )

    # ------------------------------------------------------------------ running the flow
    def _run(
        self,
        method: str,
        inputs: np.ndarray,
        context: np.ndarray | None = None,
        *,
        before=None,
        after=None,
        repeat: int = 1,
    ) -> np.ndarray:
        """Run ``flow_.<method>`` over ``inputs`` in chunks; return float64 numpy.

        Each chunk goes through ``before`` (numpy, e.g. the preprocessing), the flow and
        ``after`` (numpy, e.g. the inverse preprocessing) before the next one starts, so the
        memory used on top of the inputs and outputs is set by the chunk size, which follows
        scikit-learn's ``working_memory`` (see :func:`~skflow._engine.chunking.chunk_rows`).
        ``repeat``: ``before`` makes that many flow rows of each input row (their context
        rows are repeated to match), and ``after`` reduces them back to one.

        The flow runs in float32 on the model's device; rows whose result is not finite
        (inputs so far out that float32 overflows) are recomputed in float64 on the CPU, so
        far-away points get a very low but finite log-density instead of ``-inf`` or NaN.
        Rows that overflow even float64 are settled by :func:`_beyond_float64`.
        """
        check_is_fitted(self, "flow_")
        device = usable_device(self.device_)
        flow = self.flow_ if is_on(self.flow_, device) else self.flow_.to(device)
        # eval() sets the flag on every submodule through nn.Module.__setattr__ (~0.1 ms);
        # a fitted flow is already in evaluation mode, so only pay that when it is not.
        if any(module.training for module in flow.modules()):
            flow.eval()
        flow64 = None
        chunk = max(1, chunk_rows(flow) // repeat)
        results = []
        with torch_threads(self.n_jobs), reuse_mixing_matrices():
            for start in range(0, max(len(inputs), 1), chunk):
                rows = inputs[start : start + chunk]
                rows = rows if before is None else before(rows)
                ctx = None if context is None else context[start : start + chunk]
                if ctx is not None and repeat > 1:
                    ctx = np.repeat(ctx, repeat, axis=0)
                out = _call(flow, method, rows, ctx, device, torch.float32)
                bad = ~np.isfinite(out).reshape(len(out), -1).all(axis=1)
                if np.any(bad):
                    if flow64 is None:
                        flow64 = copy.deepcopy(cpu_copy(flow)).double()
                    out[bad] = _beyond_float64(
                        method,
                        rows[bad] if ctx is None else np.hstack([rows[bad], ctx[bad]]),
                        _call(
                            flow64,
                            method,
                            rows[bad],
                            None if ctx is None else ctx[bad],
                            torch.device("cpu"),
                            torch.float64,
                        ),
                    )
                results.append(out if after is None else after(out))
        return np.concatenate(results, axis=0)

    def _log_density(self, X: np.ndarray, context: np.ndarray | None = None) -> np.ndarray:
        """``log p(x)`` (given ``context``) of validated rows, in the units of X.

        With discrete columns it is the probability of each row's cell in those columns
        divided by the cell's volume (times the density of the continuous ones), so every
        column is scored as a density in the units of X: the mean of the flow's density over
        ``CELL_POINTS`` fixed points spread through the cell (a scrambled Sobol set). The
        density at the cell's centre alone overstated peaked cells:
        on two binary flags the four cells' probabilities summed to 1.20, and the test
        log-likelihood beat the true distribution's by 0.18 nats.
        """
        pre = self.preprocessor_
        if not pre.has_discrete_:
            return self._run("log_prob", X, context, before=pre.transform) + pre.log_jacobian_
        offsets = cell_offsets(int(np.sum(pre.step_ > 0)))
        n_points = len(offsets)

        def mean_over_cell(log_prob: np.ndarray) -> np.ndarray:
            return logsumexp(log_prob.reshape(-1, n_points), axis=1) - np.log(n_points)

        log_prob = self._run(
            "log_prob",
            X,
            context,
            before=lambda rows: pre.transform_cell_points(rows, offsets),
            after=mean_over_cell,
            repeat=n_points,
        )
        return log_prob + pre.log_jacobian_

    def _to_latent(self, X: np.ndarray, context: np.ndarray | None = None) -> np.ndarray:
        """Validated rows -> latent points."""
        return self._run("forward", X, context, before=self.preprocessor_.transform)

    def _from_latent(
        self, Z: np.ndarray, context: np.ndarray | None = None, temperature: float | None = None
    ) -> np.ndarray:
        """Latent points -> rows of all columns of X, in its units (discrete columns back on
        their grid, columns left out of the flow rebuilt: see ``Preprocessor.complete``).

        Raises a ValueError rather than returning rows that overflow even in float64, which
        only latent points absurdly far out produce (a ``temperature`` of 1e300, say).
        """
        pre = self.preprocessor_
        X = self._run("inverse", Z, context, after=lambda V: pre.complete(pre.inverse_transform(V)))
        overflowed = ~np.isfinite(X).all(axis=1)
        if np.any(overflowed):
            reach = float(np.abs(Z[overflowed]).max())
            far = 0.0 if context is None else float(np.abs(context[overflowed]).max())
            if far > _CONDITION_REACH:
                raise ValueError(
                    f"{int(overflowed.sum())} of {len(X)} rows overflow float64 when mapped "
                    f"back to data space: their conditions lie up to {far:.3g} standard "
                    "deviations from those seen in fit, beyond what the flow can extrapolate "
                    "to; pass conditions nearer the range of y the model was fitted on"
                )
            if temperature is None:
                cause = f"latent points as far out as |z| = {reach:.3g}"
                remedy = "pass latent points nearer the origin"
            else:
                cause = f"temperature={temperature!r} (latent draws up to |z| = {reach:.3g})"
                remedy = "use a smaller temperature"
            raise ValueError(
                f"{int(overflowed.sum())} of {len(X)} rows overflow float64 when mapped back "
                f"to data space: {cause} lie beyond what the flow can map back; {remedy}"
            )
        return X

    def _draw_rows(
        self,
        n_rows: int,
        random_state,
        temperature: float = 1.0,
        context: np.ndarray | None = None,
    ) -> np.ndarray:
        """``n_rows`` rows drawn from the model (given ``context``), in the units of X.

        The latent draws are made and mapped back ``SAMPLE_BLOCK_ROWS`` at a time into the
        output, so memory is the output plus one block whatever ``n_rows`` is; the blocks are
        fixed in size, so the rows a seed gives do not depend on the memory settings.
        """
        n_latent = int(np.sum(self.preprocessor_.keep_))
        out = output_array(n_rows, self.n_features_in_)
        generator = torch.Generator().manual_seed(derived_seed(random_state, "latent_draws"))
        for start in range(0, n_rows, SAMPLE_BLOCK_ROWS):
            stop = min(start + SAMPLE_BLOCK_ROWS, n_rows)
            latent = torch.randn(stop - start, n_latent, generator=generator, dtype=torch.float64)
            out[start:stop] = self._from_latent(
                (latent * temperature).numpy(),
                None if context is None else context[start:stop],
                temperature=temperature,
            )
        return out

    def _sample_latent(self, n_samples: int, random_state, temperature: float = 1.0) -> np.ndarray:
        generator = torch.Generator().manual_seed(derived_seed(random_state, "latent_draws"))
        n_latent = int(np.sum(self.preprocessor_.keep_))
        latent = torch.randn(n_samples, n_latent, generator=generator, dtype=torch.float64)
        return (latent * temperature).numpy()

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        # No torch object in the state (see ``_engine.persistence``): skops can save it, and a model
        # trained on a GPU loads and scores on a CPU-only machine. A copy: on Python >= 3.11
        # the inherited __getstate__ hands back the live __dict__.
        return plain_state(super().__getstate__())

    def __setstate__(self, state):
        super().__setstate__(restored_state(state))


# Encoded conditions further than this many standard deviations from those seen in fit are
# named as the cause when rows cannot be mapped back (rather than the latent points).
_CONDITION_REACH = 100.0

# Rows drawn per block by ``sample``: 65,536 rows of 64 features are 32 MiB of float64.
SAMPLE_BLOCK_ROWS = 2**16


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


def _check_integers_fit_float64(X) -> None:
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


def _non_numeric_columns(X) -> list:
    """Names of a DataFrame's columns that hold neither numbers nor booleans (else [])."""
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None or not hasattr(dtypes, "items"):
        return []
    names = []
    for name, dtype in dtypes.items():
        # A categorical column is as numeric as its categories.
        categories = getattr(dtype, "categories", None)
        kind = categories.dtype.kind if categories is not None else getattr(dtype, "kind", "O")
        if kind not in "biuf":
            names.append(name)
    return names


# Rows within this many standard deviations of the training mean get finite results in
# float64 (the tests score rows at 1e6); one nearer than that which still fails is a bug, not
# an overflow.
_FINITE_REACH = 1e6


def _beyond_float64(method: str, rows: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Settle the rows whose float64 result is still not finite (``out`` is changed in place).

    ``rows`` are the flow's inputs, standardised, with their (encoded) conditions beside them.
    Only rows absurdly far out get there (|x| of about 1e154 standard deviations or more,
    e.g. a fill value of 1e300, or a condition as far from those seen in fit): their
    log-density lies below -1.8e308, the most negative
    float64, so it is returned as ``-inf`` (never NaN, which ``inf - inf`` in the flow would
    otherwise give), and an outlier detector then calls them outliers. Their latent points
    cannot be represented at all, so ``transform`` refuses them; ``inverse`` results are left
    to the caller, which says which latent points were too far out.
    """
    overflowed = ~np.isfinite(out).reshape(len(out), -1).all(axis=1)
    if method == "inverse" or not np.any(overflowed):
        return out
    reach = np.abs(rows[overflowed]).max(axis=1)
    n_near = int(np.sum(reach < _FINITE_REACH))
    if n_near:
        raise RuntimeError(
            f"skflow: the flow's {method} is not finite in float64 for {n_near} row(s) within "
            f"{_FINITE_REACH:g} standard deviations of the mean; this is a bug, please report it"
        )
    if method == "log_prob":
        out[overflowed] = -np.inf
        return out
    raise ValueError(
        f"{int(overflowed.sum())} row(s) lie so far out (up to {float(reach.max()):.3g} "
        "standard deviations from the training data's mean) that their latent points "
        "overflow float64; such values (fill values like 1e300?) cannot be transformed"
    )


def _seed_cuda_generators(
    device: torch.device, seed: int | None = None, state: torch.Tensor | None = None
) -> torch.Tensor:
    """Seed the global generators (CUDA dropout draws from the device's), then restore the
    device's ``state`` if given; return that generator's state. Called inside ``fork_rng``,
    so the user's streams are untouched."""
    with torch.cuda.device(device):
        if seed is not None:
            torch.default_generator.manual_seed(seed)
            torch.cuda.manual_seed(seed)
        if state is not None:
            torch.cuda.set_rng_state(state)
        return torch.cuda.get_rng_state()


def _call(flow: Flow, method: str, rows: np.ndarray, context, device, dtype) -> np.ndarray:
    """``flow.<method>`` on one chunk of numpy rows, without autograd; float64 numpy out."""
    with torch.inference_mode():
        # torch.tensor copies: inputs may be read-only (a broadcast context, joblib memmaps).
        x = torch.tensor(rows, dtype=dtype, device=device)
        ctx = None if context is None else torch.tensor(context, dtype=dtype, device=device)
        if method == "log_prob":
            out = flow.log_prob(x, ctx)
        elif method == "forward":
            out = flow.forward(x, ctx)[0]
        else:
            out = flow.inverse(x, ctx)
        return out.to("cpu", torch.float64).numpy()
