"""Torch thread limits, so that flows never oversubscribe the cores.

Coupling flows run many small kernels; with several intra-op threads each kernel pays for
thread wake-ups, and when other processes (``GridSearchCV(n_jobs=2)``, a second fit) share the
cores, spinning OpenMP threads slow every kernel down by an order of magnitude. So the
estimators use ``n_jobs`` threads (one by default, as scikit-learn's ``n_jobs=None``) while they
run, and give the process its previous setting back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from joblib import effective_n_jobs


@contextmanager
def torch_threads(n_jobs: int | None) -> Iterator[int]:
    """Run the block with one torch intra-op thread for ``n_jobs=None``, otherwise
    ``effective_n_jobs(n_jobs)`` (-1: all cores)."""
    # None is always one thread: joblib's effective_n_jobs(None) is the size of the active
    # backend (a dask cluster's total thread count), and every fit in that cluster would
    # then run that many threads at once.
    wanted = 1 if n_jobs is None else max(1, int(effective_n_jobs(n_jobs)))
    previous = torch.get_num_threads()
    if wanted != previous:
        torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
