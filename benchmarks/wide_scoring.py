"""Scoring cost per row on a wide binary table: LU matrices built once per call or per chunk.

2,000 rows x 1,555 binary columns (10% ones), default ``FlowDensity`` fitted for one epoch, then
``score_samples`` of 20 rows twice: as skflow runs it (each LU layer's d x d matrix built once
per call, ``skflow.flows.mixing.reuse_mixing_matrices``) and with that reuse switched off,
so the matrices are rebuilt for every chunk of rows (each row is scored at 32 cell points, so a
chunk holds about one row at this width). Example: ``python benchmarks/wide_scoring.py``
(about 3 minutes on two cores, mostly the fit).
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from skflow import FlowDensity  # noqa: E402
from skflow.flows.mixing import LULinear  # noqa: E402


def main() -> int:
    X = (np.random.default_rng(0).random((2000, 1555)) < 0.1).astype(float)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = FlowDensity(max_iter=1, random_state=0).fit(X)
    print(f"fit, one epoch: {time.perf_counter() - start:.1f} s")
    rows = X[:20]
    start = time.perf_counter()
    reused = est.score_samples(rows)
    t_reused = time.perf_counter() - start
    LULinear._cached = lambda self, name, build: build()  # rebuild for every chunk
    start = time.perf_counter()
    rebuilt = est.score_samples(rows)
    t_rebuilt = time.perf_counter() - start
    print(
        f"score_samples, 20 rows: {t_reused / 20 * 1000:.0f} ms per row (matrices once per "
        f"call) vs {t_rebuilt / 20 * 1000:.0f} ms per row (per chunk): "
        f"{t_rebuilt / t_reused:.1f}x; identical scores: {np.array_equal(reused, rebuilt)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
