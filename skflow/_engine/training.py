"""Maximum-likelihood training loop for a :class:`~skflow.flows.Flow`.

The data sit on the device as one tensor and every epoch indexes it with a fresh permutation:
no DataLoader and no per-batch host/device traffic. Per epoch a GPU fit copies one index
vector over (the batch order, drawn on the CPU so that every device sees the same batches) and
syncs with the host once, to read the epoch's loss.

About 550 lines: the loop (warm-up, plateau schedule, averaging, the window stopping rule,
recovery from non-finite losses, warm-start state) is one function whose steps share their
state, plus the records it fills (``TrainingConfig``, ``TrainingState``, ``TrainingHistory``,
``EpochInfo``); the pieces that stand alone are modules of their own (``averaging``,
``flat_parameters``, ``compiled_loss``, ``chunking``).
"""

from __future__ import annotations

import copy
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from sklearn.exceptions import ConvergenceWarning
from tqdm.auto import tqdm

from .._warnings import warn_at_caller
from ..flows import Flow
from .averaging import ParameterAverage
from .chunking import MAX_CHUNK_ROWS
from .compiled_loss import TrainingLoss
from .device import cpu_tensors
from .flat_parameters import FlatParameters

# How many times a non-finite loss may be recovered from before giving up.
MAX_RECOVERIES = 8
# Gradient-norm clipping: coupling flows occasionally see huge gradients from rows in the tails.
MAX_GRAD_NORM = 10.0
# Rows used for the data-dependent initialisation of the flow.
INIT_ROWS = 8192
# Learning-rate warm-up: over the first few epochs, and never longer than this many steps.
WARMUP_EPOCHS = 3
WARMUP_MAX_STEPS = 500
# Parameter averaging (see ``_averaging``): time constant in epochs, and at most this many steps
# so that a large data set, whose epochs are long, is not averaged over its early epochs.
AVERAGE_EPOCHS = 4
AVERAGE_MAX_STEPS = 1000


@dataclass
class TrainingConfig:
    """Optimisation settings, already validated by the estimator."""

    max_iter: int
    batch_size: int
    learning_rate_init: float
    weight_decay: float
    early_stopping: bool
    n_iter_no_change: int  # the window, in epochs, over which progress is judged
    tol: float  # the least improvement of the best monitored NLL over that window
    verbose: int = 0
    eval_chunk: int = MAX_CHUNK_ROWS  # rows per validation chunk (see ``_chunking``)
    compile: bool = False  # full-size batches' loss through torch.compile (``_compiled_loss``)
    keep_state: bool = False  # leave a TrainingState in the history for the next (warm) run
    callback: Callable[[EpochInfo], object] | None = None  # after each epoch; truthy: stop
    warn_unconverged: bool = True  # a ConvergenceWarning when max_iter ends the run


@dataclass(frozen=True)
class EpochInfo:
    """What the estimators' ``callback`` is given after each epoch of training.

    Losses and scores are per row, in nats, in the units of X, as in ``loss_curve_`` and
    ``validation_scores_``.

    Attributes
    ----------
    epoch : int
        Epochs trained so far, counting those of earlier warm-started fits (``n_iter_``).
    train_loss : float
        Mean negative log-likelihood of the epoch's training batches.
    validation_score : float or None
        Mean log-likelihood of the validation rows under the (averaged) weights of this epoch;
        None with ``early_stopping=False``.
    best_validation_score : float or None
        The best validation score so far, whose weights the fit returns.
    learning_rate : float
        The optimiser's step size at the end of the epoch.
    elapsed : float
        Seconds since this ``fit``'s training loop started (validation included).
    score_samples : callable
        ``score_samples(X, ...)`` of the estimator, as if the fit ended at this epoch with
        this epoch's (averaged) weights: log-densities of new rows, in the units of X, for a
        learning curve on rows of your own. Valid only during the callback.

    Examples
    --------
    >>> import numpy as np
    >>> from skflow import FlowDensity
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> epochs = []
    >>> def three_epochs(info):
    ...     epochs.append(info.epoch)
    ...     return info.epoch == 3  # a true value stops training after this epoch
    >>> est = FlowDensity(n_transforms=2, hidden_layer_sizes=(16,), random_state=0,
    ...                   callback=three_epochs).fit(X)
    >>> epochs, est.n_iter_, len(est.validation_scores_)
    ([1, 2, 3], 3, 3)
    """

    epoch: int
    train_loss: float
    validation_score: float | None
    best_validation_score: float | None
    learning_rate: float
    elapsed: float
    score_samples: Callable[..., Any] | None = None


@dataclass
class TrainingState:
    """Where an optimisation stopped, so that a warm-started run continues it.

    A fit hands back its best (or averaged) parameters, but the optimisation itself was at
    ``live``, with Adam's moments, the plateau schedule's learning rate, the average and the
    random streams where they were. A warm run that started again from the handed-back
    parameters with a fresh optimiser, full learning rate and the same batch order replayed
    the same epochs: once one of them failed to improve, every later warm fit returned the
    same model. All tensors are on the CPU (the state is pickled with the estimator).
    """

    live: torch.Tensor
    optimizer: dict
    scheduler: dict
    average: tuple[list[torch.Tensor], int]
    learning_rate_init: float
    step: int
    recent_best: list[float]  # the best monitored NLL before and after each epoch of the window
    order_rng: torch.Tensor
    noise_rng: torch.Tensor
    validation_rng: torch.Tensor  # the noise stream before the validation rows' draw
    dropout_rng: torch.Tensor | None = None  # set by the estimator, which owns that stream


@dataclass
class TrainingHistory:
    """What a training run leaves behind; losses are in nats per row, in the units of X."""

    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] = field(default_factory=list)
    best_validation_score: float | None = None
    n_iter: int = 0
    n_recoveries: int = 0
    converged: bool = False
    resume: TrainingState | None = None


@dataclass
class TrainingData:
    """Tensors on the training device (context, weights and noise are optional).

    ``noise`` is the per-feature width of the uniform dequantisation noise (0 for continuous
    features): the rows of discrete features sit at their cell centres and every draw moves
    them uniformly within their cell.
    """

    x: torch.Tensor
    context: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    noise: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def take(self, index: torch.Tensor | slice) -> TrainingData:
        return TrainingData(
            self.x[index],
            None if self.context is None else self.context[index],
            None if self.weight is None else self.weight[index],
            self.noise,
        )

    def dequantized(self, generator: torch.Generator) -> TrainingData:
        """A copy with fresh uniform noise inside each discrete cell (itself if none)."""
        if self.noise is None:
            return self
        u = torch.rand(self.x.shape, generator=generator, device=self.x.device)
        return TrainingData(self.x + (u - 0.5) * self.noise, self.context, self.weight, None)


def mean_nll(flow: Flow, batch: TrainingData) -> torch.Tensor:
    """Weighted mean negative log-likelihood of a batch (in the flow's own units)."""
    log_prob = flow.log_prob(batch.x, batch.context)
    if batch.weight is None:
        return -log_prob.mean()
    return -(log_prob * batch.weight).sum() / batch.weight.sum()


@torch.inference_mode()
def evaluate_nll(flow: Flow, data: TrainingData, chunk: int = MAX_CHUNK_ROWS) -> float:
    """Mean NLL of ``data`` in evaluation mode, ``chunk`` rows at a time to bound memory."""
    was_training = flow.training
    flow.eval()
    total = torch.zeros((), dtype=torch.float64, device=data.x.device)
    weight_sum = 0.0
    for start in range(0, len(data), chunk):
        part = data.take(slice(start, start + chunk))
        log_prob = flow.log_prob(part.x, part.context).double()
        if part.weight is None:
            total += log_prob.sum()
            weight_sum += len(part)
        else:
            total += (log_prob * part.weight).sum()
            weight_sum += float(part.weight.sum())
    flow.train(was_training)
    return -float(total) / weight_sum


def _snapshot(flat: FlatParameters, optimizer: torch.optim.Optimizer) -> tuple[torch.Tensor, dict]:
    return flat.state(), copy.deepcopy(optimizer.state_dict())


def _resume(
    resume: TrainingState,
    flat: FlatParameters,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau,
    average: ParameterAverage,
    config: TrainingConfig,
) -> tuple[int, list[float]]:
    """Put the optimisation back where ``resume`` left it; return (step, recent best NLLs).

    A ``learning_rate_init`` changed since then is a request for that step size: it replaces
    the schedule's learning rate, whose plateau count starts again.
    """
    device = flat.values.device
    flat.load_state(resume.live.to(device))
    optimizer.load_state_dict(resume.optimizer)  # moves the moments to the parameters' device
    if resume.learning_rate_init == config.learning_rate_init:
        scheduler.load_state_dict(resume.scheduler)
    else:
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate_init
    values, updates = resume.average
    average.load_state(([v.to(device) for v in values], updates))
    return resume.step, list(resume.recent_best)


def _adamw(params: list[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with the fused kernel where torch has one for the device, else the multi-tensor one.

    The fused update is one kernel over all parameters: on one CPU thread it took 0.34 ms per
    step for a d = 16 flow's 48 tensors against 1.27 ms for ``foreach=True`` (the default
    Python loop is slower still). Older torch builds have no fused CPU kernel and refuse it.
    """
    if all(p.device.type in ("cpu", "cuda") for p in params):
        try:
            return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, ValueError):
            pass
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=True)


def _initialisation_rows(train: TrainingData, generator: torch.Generator) -> TrainingData:
    """The rows the data-dependent initialisation (ActNorm, whitening, tails) looks at.

    A random subset of at most ``INIT_ROWS`` rows: the first rows of a sorted data set would
    describe only part of it. With sample weights the rows are drawn in proportion to their
    weights (with replacement), so the starting Gaussian is the weighted one and rows of
    weight zero, which the fit must ignore, do not shape it.
    """
    n_rows = len(train)
    if n_rows <= INIT_ROWS and train.weight is None:
        return train
    # A generator of its own, so the batch order does not depend on whether this ran; on the
    # CPU like the batch order's, so every device picks the same rows.
    init_generator = torch.Generator().manual_seed(generator.initial_seed() + 1)
    if train.weight is None:
        subset = torch.randperm(n_rows, generator=init_generator)[:INIT_ROWS]
        return train.take(subset.to(train.x.device))
    # Inverse-CDF draws (torch.multinomial refuses more than 2**24 categories, i.e. rows).
    cumulative = train.weight.double().cumsum(0)
    uniform = torch.rand(min(n_rows, INIT_ROWS), generator=init_generator, dtype=torch.float64)
    subset = torch.searchsorted(cumulative, uniform.to(cumulative) * cumulative[-1], right=True)
    return train.take(subset.clamp_(max=n_rows - 1))


def train_flow(
    flow: Flow,
    train: TrainingData,
    validation: TrainingData | None,
    config: TrainingConfig,
    generator: torch.Generator,
    nll_offset: float = 0.0,
    history: TrainingHistory | None = None,
) -> TrainingHistory:
    """Fit ``flow`` by minibatch AdamW on the negative log-likelihood.

    Parameters
    ----------
    flow : Flow
        The model, already on the device of ``train``; ActNorm layers still uninitialised are
        initialised from the training data first.
    train, validation : TrainingData
        Training rows and, for early stopping, held-out rows (``None`` to monitor training loss).
    config : TrainingConfig
        Optimisation settings.
    generator : torch.Generator
        CPU random source for the batch order and the initialisation rows. Drawing these on
        the CPU whatever the device means a GPU fit sees the same batches as a CPU fit with the
        same seed (one index copy per epoch); the dequantisation noise comes from a generator
        on the data's device seeded alike (the same one, on a CPU).
    nll_offset : float, default=0.0
        Added to every reported NLL so the history is in the units of the user's X
        (minus the log-Jacobian of the preprocessing).
    history : TrainingHistory, optional
        A previous run's history to extend (``warm_start``).

    Returns
    -------
    TrainingHistory
    """
    history = history if history is not None else TrainingHistory()
    history.converged = False

    device = train.x.device
    noise_generator = generator
    if device != generator.device:
        noise_generator = torch.Generator(device=device).manual_seed(generator.initial_seed())
    if not history.n_iter:
        init = _initialisation_rows(train, generator).dequantized(noise_generator)
        flow.initialize(init.x, init.context)
    flow.train()
    flow.remember_initialized()
    # One flat tensor for the parameters and one for the gradients during this run: zeroing,
    # clipping, the optimiser step, the average and the snapshots are then one kernel each.
    flat = FlatParameters(flow)
    try:
        return _optimise(
            flow, flat, train, validation, config, (generator, noise_generator), nll_offset, history
        )
    finally:
        flat.release()


def _optimise(
    flow: Flow,
    flat: FlatParameters,
    train: TrainingData,
    validation: TrainingData | None,
    config: TrainingConfig,
    generators: tuple[torch.Generator, torch.Generator],
    nll_offset: float,
    history: TrainingHistory,
) -> TrainingHistory:
    """The epochs of :func:`train_flow`, on a flow whose parameters ``flat`` holds.

    ``generators`` is (batch order, on the CPU; dequantisation noise, on the data's device).
    """
    order_generator, noise_generator = generators
    n_rows = len(train)
    batch_size = min(config.batch_size, n_rows)
    loss_of = TrainingLoss(mean_nll, batch_size, config.compile)
    optimizer = _adamw([flat.parameter], config.learning_rate_init, config.weight_decay)
    # Halve the step size when the monitored loss stalls for a third of the stopping window,
    # judged at the window's rate of least progress per epoch.
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        factor=0.5,
        patience=max(1, config.n_iter_no_change // 3),
        threshold=config.tol / config.n_iter_no_change,
        threshold_mode="abs",
    )
    resume, history.resume = history.resume, None
    if resume is not None:
        noise_generator.set_state(resume.validation_rng)
    validation_rng = noise_generator.get_state()
    if validation is not None:
        # One fixed noise draw, so that epochs are compared on the same validation rows (and a
        # warm run draws it again from the same state: the same rows it was compared on).
        validation = validation.dequantized(noise_generator)
    if resume is not None:
        order_generator.set_state(resume.order_rng)
        noise_generator.set_state(resume.noise_rng)
    steps_per_epoch = math.ceil(n_rows / batch_size)
    # Validation, early stopping and the returned fit all use the averaged parameters.
    average = ParameterAverage(
        [flat.values], min(AVERAGE_EPOCHS * steps_per_epoch, AVERAGE_MAX_STEPS)
    )
    best_state = flat.state()
    # The freshly initialised flow is already a full-covariance Gaussian fit (a warm-started
    # one, the previous fit's result); scoring it first means early stopping can never hand
    # back something worse on the validation rows.
    best_loss = (
        math.inf if validation is None else evaluate_nll(flow, validation, config.eval_chunk)
    )
    if not math.isfinite(best_loss):
        best_loss = math.inf
    # Warm the learning rate up linearly: the initial flow is already a good (Gaussian, tail
    # corrected) fit, and Adam's first full-size steps, which move every weight by about the
    # learning rate at once, knocked it into a worse region it did not always recover from.
    # A warm run without a saved state has a fresh Adam too, so it warms up again.
    warmup_steps = min(WARMUP_MAX_STEPS, WARMUP_EPOCHS * steps_per_epoch)
    step = 0
    # The best monitored NLL before the window and after each epoch in it: training stops once
    # the window's total improvement falls below tol. A curve that still creeps down by tiny
    # steps, each a new best, is flat by this measure; a count of epochs without any new best
    # let such curves run on to max_iter for gains far below what the fit is judged by.
    recent_best = deque([best_loss], maxlen=config.n_iter_no_change + 1)
    if resume is not None:
        step, previous = _resume(resume, flat, optimizer, scheduler, average, config)
        # The window goes on where it stopped, re-anchored at the weights handed back: on the
        # same data that shift is zero; on new data it keeps the earlier epochs' progress
        # without comparing NLLs of different rows.
        shift = best_loss - previous[-1]
        shift = shift if math.isfinite(shift) else 0.0
        recent_best = deque([v + shift for v in previous], maxlen=config.n_iter_no_change + 1)
    good_state = (*_snapshot(flat, optimizer), average.state())

    progress = tqdm(total=config.max_iter, disable=config.verbose <= 0, desc="skflow", unit="epoch")
    epochs_done = 0
    stopped_on_request = False
    started = time.perf_counter()
    start_epoch = history.n_iter
    best_epoch = start_epoch  # the weights the run started from, until an epoch beats them
    while epochs_done < config.max_iter:
        order = torch.randperm(n_rows, generator=order_generator).to(train.x.device)
        epoch_loss = torch.zeros((), device=train.x.device)
        for start in range(0, n_rows, batch_size):
            batch = train.take(order[start : start + batch_size]).dequantized(noise_generator)
            loss = loss_of.value_and_grad(flow, batch, flat.zero_grad)
            if step < warmup_steps:
                for group in optimizer.param_groups:
                    group["lr"] = config.learning_rate_init * (step + 1) / warmup_steps
            step += 1
            flat.clip_grad_norm_(MAX_GRAD_NORM)
            optimizer.step()
            average.update()
            epoch_loss += loss.detach() * batch.x.shape[0]
        train_loss = float(epoch_loss) / n_rows

        if not math.isfinite(train_loss) or not flat.all_finite():
            # Diverged somewhere in this epoch: go back to the last good state, step more gently.
            history.n_recoveries += 1
            if history.n_recoveries > MAX_RECOVERIES:
                raise RuntimeError(
                    f"training diverged (non-finite loss) {history.n_recoveries} times even after "
                    "lowering the learning rate; try a smaller learning_rate_init, a larger "
                    "batch_size or coupling='affine'"
                )
            flat.load_state(good_state[0])
            optimizer.load_state_dict(good_state[1])
            average.load_state(good_state[2])
            for group in optimizer.param_groups:
                group["lr"] *= 0.5
            continue  # redo the epoch; it does not count towards max_iter

        good_state = (*_snapshot(flat, optimizer), average.state())
        epochs_done += 1
        progress.update()
        history.n_iter += 1
        history.loss_curve.append(train_loss + nll_offset)
        if validation is not None:
            with average.applied():
                monitored = evaluate_nll(flow, validation, config.eval_chunk)
                if monitored < best_loss:
                    best_state = flat.state()
            history.validation_scores.append(-(monitored + nll_offset))
        else:
            monitored = train_loss
        if step >= warmup_steps:
            scheduler.step(monitored)

        if monitored < best_loss:
            best_loss = monitored
            best_epoch = history.n_iter
        recent_best.append(best_loss)
        progress.set_postfix(
            train_nll=f"{train_loss + nll_offset:.4f}",
            val_nll="-" if validation is None else f"{monitored + nll_offset:.4f}",
        )
        if config.callback is not None:
            info = EpochInfo(
                epoch=history.n_iter,
                train_loss=train_loss + nll_offset,
                validation_score=None if validation is None else -(monitored + nll_offset),
                best_validation_score=None if validation is None else -(best_loss + nll_offset),
                learning_rate=float(optimizer.param_groups[0]["lr"]),
                elapsed=time.perf_counter() - started,
            )
            # Under the averaged weights, which the epoch is judged by, and back in training
            # mode afterwards (scoring puts the flow in evaluation mode).
            with average.applied():
                stopped_on_request = bool(config.callback(info))
            flow.train()
        window_full = len(recent_best) == recent_best.maxlen
        # Written so that a window of infinite losses (inf - inf is NaN) counts as flat.
        if window_full and not recent_best[0] - best_loss >= config.tol:
            history.converged = True
            break
        if stopped_on_request:
            break
    if not progress.disable:
        # A bar left at 14% when early stopping ends the fit looks like a crash: end it at the
        # epochs that ran and say why training stopped and which weights were kept.
        progress.total = epochs_done
        progress.refresh()
        progress.close()
        kept = (start_epoch, best_epoch, best_loss + nll_offset, validation is not None)
        print(_stopping_summary(history, config, stopped_on_request, *kept), flush=True)

    if config.keep_state:
        history.resume = TrainingState(
            live=cpu_tensors(flat.values),
            optimizer=cpu_tensors(optimizer.state_dict()),
            scheduler=scheduler.state_dict(),
            average=cpu_tensors(average.state()),
            learning_rate_init=config.learning_rate_init,
            step=step,
            recent_best=list(recent_best),
            order_rng=order_generator.get_state(),
            noise_rng=noise_generator.get_state(),
            validation_rng=validation_rng,
        )
    if validation is not None:
        flat.load_state(best_state)
        history.best_validation_score = -(best_loss + nll_offset)
    else:
        average.write_to_module()
    flow.eval()
    if config.warn_unconverged and not (history.converged or stopped_on_request):
        warn_at_caller(
            f"skflow: training stopped at max_iter={config.max_iter} epochs before the "
            "monitored loss stopped improving; consider increasing max_iter.",
            ConvergenceWarning,
        )
    return history


def _stopping_summary(
    history: TrainingHistory,
    config: TrainingConfig,
    stopped_on_request: bool,
    start_epoch: int,
    best_epoch: int,
    best_nll: float,
    validated: bool,
) -> str:
    """The line printed under the progress bar: why the run ended and what it kept."""
    if history.converged:
        monitored = "validation NLL" if validated else "training NLL"
        why = (
            f"stopped early after epoch {history.n_iter} of max_iter={config.max_iter}: the "
            f"best {monitored} improved by less than tol={config.tol:g} over the last "
            f"{config.n_iter_no_change} epochs"
        )
    elif stopped_on_request:
        why = f"stopped by the callback after epoch {history.n_iter}"
    else:
        why = f"reached max_iter={config.max_iter} epochs (epoch {history.n_iter})"
    if not validated:
        return f"skflow: {why}; kept the averaged weights of the last epoch."
    if best_epoch == start_epoch:
        kept = (
            "the initial Gaussian fit (no epoch improved on it)"
            if start_epoch == 0
            else f"the weights this fit started from (epoch {start_epoch})"
        )
    else:
        kept = f"the averaged weights of epoch {best_epoch}"
    return f"skflow: {why}; kept {kept}, validation NLL {best_nll:.4f}."
