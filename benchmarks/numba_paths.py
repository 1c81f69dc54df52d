"""Does installing numba change the fitted model? Default fits with the fused kernels on and off.

``skflow.flows.spline_kernels`` runs the spline in fused numba loops when numba is installed,
and in torch code otherwise. Both compute the same formula, but round differently in float32;
over hundreds of optimiser steps such differences grow into different weights, and early
stopping may then stop at another epoch. This script fits default ``FlowDensity`` models with
the loops on and off, in one process, and reports per data set and seed the epochs run and the
held-out log-likelihood of each, so the user guide can say how much the two paths differ.

Data: the quickstart's two moons (2,000 rows to fit, 1,000 held out) over several seeds, and
the real tables of the density benchmark that fit in under a minute (Waveform; annthyroid with
``--full``). Example: ``python benchmarks/numba_paths.py --seeds 0 1 2`` (about 5 minutes).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import make_moons

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from benchmarks.density_quality import real_splits  # noqa: E402
from skflow import FlowDensity  # noqa: E402
from skflow.flows import spline_kernels  # noqa: E402


def moons(seed: int) -> tuple[np.ndarray, np.ndarray]:
    X, _ = make_moons(n_samples=3000, noise=0.08, random_state=seed)
    return X[:2000], X[2000:]


def real(name: str, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    splits = real_splits(name, seed)
    if splits is None:
        return None
    train, val, test = splits
    return np.concatenate([train, val]), test


def fit_both(X_fit: np.ndarray, X_test: np.ndarray) -> dict:
    """Epochs, held-out log-likelihood and seconds with the kernels on and off."""
    out = {}
    for enabled in (True, False):
        spline_kernels.ENABLED = enabled
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = FlowDensity(random_state=0).fit(X_fit)
        seconds = time.perf_counter() - start
        out[enabled] = (est.n_iter_, est.score(X_test), seconds)
    spline_kernels.ENABLED = spline_kernels.AVAILABLE
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--full", action="store_true", help="add annthyroid (about 4 minutes)")
    args = parser.parse_args(argv)
    if not spline_kernels.AVAILABLE:
        print("numba is not installed: nothing to compare (pip install 'skflow[numba]')")
        return 1
    cases = [(f"moons seed {seed}", moons(seed)) for seed in args.seeds]
    for name in ["41_Waveform"] + (["2_annthyroid"] if args.full else []):
        loaded = real(name, 0)
        if loaded is not None:
            cases.append((f"{name} seed 0", loaded))
    columns = ["data", "epochs numba / torch", "held-out log-lik. numba / torch"]
    columns += ["difference", "s numba / torch"]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|")
    for label, (X_fit, X_test) in cases:
        result = fit_both(X_fit, X_test)
        (e1, s1, t1), (e0, s0, t0) = result[True], result[False]
        print(
            f"| {label} | {e1} / {e0} | {s1:.4f} / {s0:.4f} | {s1 - s0:+.4f} | "
            f"{t1:.1f} / {t0:.1f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
