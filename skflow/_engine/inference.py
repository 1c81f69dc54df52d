"""Running a fitted flow over numpy rows without gradients: chunked, float64 out, and
settled where float32 (or even float64) overflows."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch

from ..flows import Flow
from ..flows.mixing import reuse_mixing_matrices
from .chunking import chunk_rows
from .device import cpu_copy, is_on

RowMap = Callable[[np.ndarray], np.ndarray]


def run_flow(
    flow: Flow,
    device: torch.device,
    method: str,
    inputs: np.ndarray,
    context: np.ndarray | None = None,
    *,
    before: RowMap | None = None,
    after: RowMap | None = None,
    repeat: int = 1,
) -> np.ndarray:
    """Run ``flow.<method>`` (``"log_prob"``, ``"forward"`` or ``"inverse"``) over ``inputs``
    in chunks on ``device`` (the flow is moved there); return float64 numpy.

    Each chunk goes through ``before`` (numpy, e.g. the preprocessing), the flow and
    ``after`` (numpy, e.g. the inverse preprocessing) before the next one starts, so the
    memory used on top of the inputs and outputs is set by the chunk size, which follows
    scikit-learn's ``working_memory`` (see :func:`~skflow._engine.chunking.chunk_rows`).
    ``repeat``: ``before`` makes that many flow rows of each input row (their context
    rows are repeated to match), and ``after`` reduces them back to one.

    The flow runs in float32; rows whose result is not finite (inputs so far out that
    float32 overflows) are recomputed in float64 on the CPU, so far-away points get a very
    low but finite log-density instead of ``-inf`` or NaN. Rows that overflow even float64
    are settled by :func:`_beyond_float64`.
    """
    if not is_on(flow, device):
        flow = flow.to(device)
    # eval() sets the flag on every submodule through nn.Module.__setattr__ (~0.1 ms);
    # a fitted flow is already in evaluation mode, so only pay that when it is not.
    if any(module.training for module in flow.modules()):
        flow.eval()
    flow64 = None
    chunk = max(1, chunk_rows(flow) // repeat)
    results = []
    with reuse_mixing_matrices():
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
