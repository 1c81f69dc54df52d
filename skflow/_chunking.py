"""How many rows to push through a flow at once when no gradient is needed.

Scoring, transforming, sampling and the validation passes of training all run in chunks. The
chunk is large, since per-call overhead dominates small ones, but never larger than
scikit-learn's ``working_memory`` setting allows, so the memory these operations use is set by
that setting rather than by the number of rows::

    with sklearn.config_context(working_memory=128):  # MiB
        est.score_samples(X)
"""

from __future__ import annotations

import sklearn
import torch

from .flows import Flow

# Above this many rows a chunk is no faster per row, only bigger.
MAX_CHUNK_ROWS = 65536
# Nor is a chunk whose intermediates outgrow this: scoring 100,000 rows on one CPU thread ran
# 1.0-2.8x faster with chunks of about this size (4,000-12,000 rows for d = 10-64) than with
# 65,536-row chunks, the larger the flow the larger the gain (caches), so it is the default
# budget even when ``working_memory`` allows more.
FAST_CHUNK_BYTES = 64 * 2**20


def chunk_rows(flow: Flow, dtype: torch.dtype = torch.float32) -> int:
    """Rows per chunk for ``flow``: within ``working_memory`` MiB and at most 64 MiB.

    Parameters
    ----------
    flow : Flow
        The flow to run; its :meth:`~skflow.flows.Flow.working_bytes_per_row` sets the cost.
    dtype : torch.dtype, default=torch.float32
        Precision it runs in.

    Returns
    -------
    int
        At least 1 and at most ``MAX_CHUNK_ROWS``.
    """
    budget = min(sklearn.get_config()["working_memory"] * 2**20, FAST_CHUNK_BYTES)
    return int(max(1, min(MAX_CHUNK_ROWS, budget // flow.working_bytes_per_row(dtype))))
