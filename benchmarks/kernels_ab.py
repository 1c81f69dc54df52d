"""A/B of the fused numba spline kernels: the speed benchmark's flow with them on and off.

For each dimension, two ``FlowDensity`` models with the speed benchmark's architecture (4 spline
couplings, 8 bins, hidden (64, 64), batch 512) are fitted once; then, round after round and
alternating between the two settings of ``skflow.flows.spline_kernels.ENABLED``, each is
trained for 2 more epochs (``warm_start``) on 10,000 rows, scores 20,000 rows and samples
20,000 rows. Each rate is the fastest of ``--rounds``. One torch thread. Also reported: the
largest difference between the two settings' ``score_samples`` on the same model.

Example: ``python benchmarks/kernels_ab.py`` (about 3 minutes).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from benchmarks.common import RESULTS_DIR, utc_now  # noqa: E402
from skflow import FlowDensity  # noqa: E402
from skflow.flows import spline_kernels  # noqa: E402

N_TRAIN, N_SCORE, EPOCHS = 10_000, 20_000, 2
PHASES = ("train", "score", "sample")


def _data(d: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[:, 1] += X[:, 0] ** 2  # some curvature, so the splines have work to do
    return X


def measure(d: int, rounds: int) -> dict:
    """Fastest rows/s per (setting, phase) and the largest score difference."""
    X, X_score = _data(d, N_TRAIN, 0), _data(d, N_SCORE, 1)
    models = {}
    for enabled in (True, False):
        spline_kernels.ENABLED = enabled
        models[enabled] = FlowDensity(
            n_transforms=4, hidden_layer_sizes=(64, 64), n_bins=8, batch_size=512,
            max_iter=1, early_stopping=False, random_state=0,
        ).fit(X)  # fmt: skip
        models[enabled].set_params(warm_start=True, max_iter=EPOCHS)
    rates = {(enabled, phase): 0.0 for enabled in (True, False) for phase in PHASES}
    for _ in range(rounds):
        for enabled in (True, False):
            spline_kernels.ENABLED = enabled
            model = models[enabled]
            for phase, rows, run in (
                ("train", N_TRAIN, lambda m=model: m.fit(X)),
                ("score", N_SCORE, lambda m=model: m.score_samples(X_score)),
                ("sample", N_SCORE, lambda m=model: m.sample(N_SCORE, random_state=0)),
            ):
                epochs_before = model.n_iter_
                start = time.perf_counter()
                run()
                elapsed = time.perf_counter() - start
                # Training rows are those of the epochs that ran: a warm fit continues the
                # stopping count, so it may stop before EPOCHS.
                rate = rows * max(1, model.n_iter_ - epochs_before) / elapsed
                rates[(enabled, phase)] = max(rates[(enabled, phase)], rate)
    scores = {}
    for enabled in (True, False):
        spline_kernels.ENABLED = enabled
        scores[enabled] = models[True].score_samples(X_score)
    spline_kernels.ENABLED = spline_kernels.AVAILABLE
    return {"rates": rates, "max_score_diff": float(np.abs(scores[True] - scores[False]).max())}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dims", type=int, nargs="+", default=[2, 16, 64])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--output", default="kernels_ab")
    args = p.parse_args(argv)
    if not spline_kernels.AVAILABLE:
        p.error('numba is not installed (pip install ".[numba]"): nothing to compare')
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # ConvergenceWarning: the fits stop at max_iter on purpose
    started = utc_now()
    t0 = time.perf_counter()
    lines = [
        "# Fused spline kernels on and off",
        "",
        f"Run {started}, torch {torch.__version__}; `python benchmarks/kernels_ab.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`.",
        "",
        "rows/s, fastest of the rounds; ratio = kernels on / off.",
        "",
        "| d | train on | train off | ratio | score on | score off | ratio | sample on | "
        "sample off | ratio | max score diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in args.dims:
        result = measure(d, args.rounds)
        rates = result["rates"]
        cells = [str(d)]
        for phase in PHASES:
            on, off = rates[(True, phase)], rates[(False, phase)]
            cells += [f"{on:,.0f}", f"{off:,.0f}", f"{on / off:.2f}"]
        cells.append(f"{result['max_score_diff']:.1e}")
        lines.append("| " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    lines += ["", f"{time.perf_counter() - t0:.0f} s in all.", ""]
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{args.output}.md"
    path.write_text("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
