"""The training loss through ``torch.compile``: the estimators' ``compile=True``.

A training step of a small flow is a few hundred small kernels, each paying a fixed dispatch
cost (at d = 2 the spline alone runs about 90 aten operations forward and 130 backward per
coupling). Inductor fuses the element-wise ones into a handful of generated loops. On one
CPU thread, the speed benchmark's flow (4 spline couplings, (64, 64) conditioners, 512-row
batches) took 2.8 ms per step compiled against 6.3 ms eager at d = 2, 6.4 against 12.0 ms at
d = 16 and 20 against 29 ms at d = 64. Compiling costs 25-45 s per architecture the first
time and a few seconds once inductor's on-disk cache holds it, so it pays on long fits only,
and it is off by default.

Only full-size batches run compiled (``dynamic=False``: one graph, no recompilation for the
last, shorter batch of an epoch, which runs eagerly). The compiled function is made once per
process, so every fit of the same architecture reuses the same graph, including the folds of
a grid search, and up to 64 architectures (candidates) keep their graphs. If compilation
fails (no C++ compiler, an unsupported Python, a compiler bug), the fit warns once and carries
on eagerly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from .._warnings import warn_at_caller

# Dynamo keeps at most ``recompile_limit`` (8) graphs per compiled function and runs the rest
# eagerly. Every architecture, batch size and dropout rate is a graph of its own here, so a
# grid search would soon stop compiling; the limit is raised while skflow's loss runs.
_GRAPHS_PER_PROCESS = 64


@functools.cache
def _limit_setting() -> str:
    """The name of dynamo's graph limit: ``cache_size_limit`` before torch 2.6.

    Looked up only when something is compiled: importing ``torch._dynamo`` takes about a
    second, which ``import skflow`` (and every joblib worker) would otherwise pay.
    """
    config = torch._dynamo.config
    return "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"


@functools.cache
def _compiled(loss: Callable) -> Callable:
    # One wrapper per loss function and process: dynamo keeps its graphs per wrapped function,
    # so a new wrapper per fit would compile every fit afresh.
    return torch.compile(loss, dynamic=False)


class TrainingLoss:
    """``loss(flow, batch)`` and its gradients, compiled for batches of ``batch_size`` rows if
    asked.

    Parameters
    ----------
    loss : callable
        ``loss(flow, batch) -> scalar tensor``, the eager training loss.
    batch_size : int
        The rows of a full batch; other batch sizes run eagerly.
    compile : bool
        Whether to use ``torch.compile`` at all.
    """

    def __init__(self, loss: Callable, batch_size: int, compile: bool) -> None:
        self.loss = loss
        self.batch_size = batch_size
        self.compiled: Callable | None = None
        if compile:
            try:
                # Built once and re-entered per step: making a new patch per step cost 16 us,
                # reusing it 4 us (the compiled d = 2 step is about 3 ms).
                self._graph_limit = torch._dynamo.config.patch(
                    _limit_setting(), _GRAPHS_PER_PROCESS
                )
                self.compiled = _compiled(loss)
            except RuntimeError as error:  # e.g. dynamo does not support this Python
                self._give_up(error)

    def value_and_grad(self, flow, batch, zero_grad: Callable[[], None]) -> torch.Tensor:
        """The loss of ``batch``, after ``zero_grad()`` and with its gradients accumulated.

        The backward pass is part of the call because torch may compile the backward graph
        only when it first runs (torch 2.2 does), and its compiler's failures then come out of
        ``backward()`` as whatever the compiler raised (an ``AssertionError`` in inductor's
        code generator, for one), not as dynamo's exceptions. So a failing compiled step is
        run again eagerly: if that works, the compiler was at fault and the fit warns and goes
        on eagerly; an error of the model or data is raised by the eager run itself.
        """
        zero_grad()
        if self.compiled is None or batch.x.shape[0] != self.batch_size:
            loss = self.loss(flow, batch)
            loss.backward()
            return loss
        try:
            with self._graph_limit:
                loss = self.compiled(flow, batch)
            loss.backward()
            return loss
        except Exception as compile_error:
            zero_grad()
            loss = self.loss(flow, batch)
            loss.backward()
            self._give_up(compile_error)
            return loss

    def _give_up(self, error: Exception) -> None:
        self.compiled = None
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        warn_at_caller(
            f"skflow: torch.compile failed ({type(error).__name__}: {first_line}); "
            "training continues without it (compile=False).",
            RuntimeWarning,
        )
