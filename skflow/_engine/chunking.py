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

from ..flows import Flow

# Above this many rows a chunk is no faster per row, only bigger.
MAX_CHUNK_ROWS = 65536
# On a CPU the fastest chunk keeps a layer's intermediates in cache. Scoring and sampling
# 20,000-100,000 rows on one thread (AMD EPYC, 2 MiB L2 per core, 32 MiB L3) ran 1.1-1.6x
# faster at d = 2-16 with chunks sized for 16 MiB of estimated intermediates than for 64 MiB
# (the estimate is generous, so the real working set is a few MiB), and as fast at d = 32-64;
# 12-32 MiB were within noise of 16, 4 MiB slower again from per-call overhead.
FAST_CHUNK_BYTES_CPU = 16 * 2**20
# An accelerator has no such cache cliff, only a fixed cost per chunk: the flow's few hundred
# kernel launches and two copies. On an H100 with 64 MiB chunks, score_samples on 20,000 rows
# ran at 0.79 / 0.29 / 0.10 of the bare flow on all rows at once for d = 2 / 16 / 64, i.e. 1 / 3
# / 10 chunks at about 6-7 ms each. So it gets scikit-learn's default working memory, 1 GiB:
# one chunk up to about 35,000 rows at d = 64.
FAST_CHUNK_BYTES_OTHER = 1024 * 2**20


def fast_chunk_bytes(device: torch.device) -> int:
    """The chunk budget (bytes of intermediates) that runs fastest on ``device``."""
    return FAST_CHUNK_BYTES_CPU if device.type == "cpu" else FAST_CHUNK_BYTES_OTHER


def chunk_rows(flow: Flow, dtype: torch.dtype = torch.float32) -> int:
    """Rows per chunk for ``flow``: within ``working_memory`` MiB and the device's fast size.

    Parameters
    ----------
    flow : Flow
        The flow to run; its :meth:`~skflow.flows.Flow.working_bytes_per_row` sets the cost and
        the device of its parameters the fast size (16 MiB on a CPU, 1 GiB elsewhere).
    dtype : torch.dtype, default=torch.float32
        Precision it runs in.

    Returns
    -------
    int
        At least 1 and at most ``MAX_CHUNK_ROWS``.
    """
    # A flow without parameters (e.g. only fixed permutations) is evaluated where it is built.
    reference = next(flow.parameters(), None)
    device = torch.device("cpu") if reference is None else reference.device
    budget = min(sklearn.get_config()["working_memory"] * 2**20, fast_chunk_bytes(device))
    return int(max(1, min(MAX_CHUNK_ROWS, budget // flow.working_bytes_per_row(dtype))))
