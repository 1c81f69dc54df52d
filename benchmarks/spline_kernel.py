"""Micro-benchmark of the rational-quadratic spline kernel alone, skflow against zuko and nflows.

One spline application on ``--rows`` x ``--features`` points with ``--bins`` bins on [-5, 5]
(the shapes one coupling layer of the speed benchmark sees), parameters from a leaf tensor:

* ``train``: forward value and log-derivative, then backward of their sum to the inputs and
  the parameters (what one training step pays per coupling);
* ``inverse``: the inverse map under ``torch.inference_mode`` (what sampling pays).

Implementations: skflow's ``rational_quadratic_spline_params_first`` (the layout its couplings
produce: parameters first, closed-form backward), skflow's ``rational_quadratic_spline`` (the
conventional parameters-last layout, including the transposed copy it makes),
``zuko.transforms.MonotonicRQSTransform`` and nflows' ``unconstrained_rational_quadratic_spline``
(linear tails). One torch thread; the implementations are interleaved round by round and each
time is the best of ``--rounds`` rounds of ``--calls`` calls.

Example: ``python benchmarks/spline_kernel.py`` (about a minute).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from skflow.flows import (  # noqa: E402
    rational_quadratic_spline,
    rational_quadratic_spline_params_first,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BOUND = 5.0


def build_calls(rows: int, features: int, bins: int) -> dict[str, tuple[Callable, Callable]]:
    """Return ``name -> (train_step, inverse_call)`` closures over fixed random inputs."""
    gen = torch.Generator().manual_seed(0)
    n_params = 3 * bins - 1
    x = 2.0 * torch.randn(rows, features, generator=gen)
    raw = 0.5 * torch.randn(rows, features, n_params, generator=gen)
    calls: dict[str, tuple[Callable, Callable]] = {}

    x_first = x.T.contiguous()
    p_first = raw.permute(2, 1, 0).contiguous().requires_grad_(True)

    def first(inverse: bool):
        return rational_quadratic_spline_params_first(x_first, p_first, BOUND, inverse=inverse)

    calls["skflow (params first)"] = _pair(first, x_first, p_first)

    p_last = raw.clone().requires_grad_(True)

    def last(inverse: bool):
        return rational_quadratic_spline(x, p_last, BOUND, inverse=inverse)

    calls["skflow (params last)"] = _pair(last, x, p_last)

    try:
        from zuko.transforms import MonotonicRQSTransform
    except ImportError:
        print("zuko not installed: skipped", flush=True)
    else:
        p_zuko = raw.clone().requires_grad_(True)

        def zuko(inverse: bool):
            spline = MonotonicRQSTransform(
                p_zuko[..., :bins], p_zuko[..., bins : 2 * bins], p_zuko[..., 2 * bins :], BOUND
            )
            if inverse:
                return spline.inv(x), None
            return spline.call_and_ladj(x)

        calls["zuko"] = _pair(zuko, x, p_zuko)

    try:
        from nflows.transforms.splines.rational_quadratic import (
            unconstrained_rational_quadratic_spline,
        )
    except ImportError:
        print("nflows not installed: skipped", flush=True)
    else:
        p_nflows = raw.clone().requires_grad_(True)

        def nflows(inverse: bool):
            return unconstrained_rational_quadratic_spline(
                x, p_nflows[..., :bins], p_nflows[..., bins : 2 * bins],
                p_nflows[..., 2 * bins :], inverse=inverse, tails="linear", tail_bound=BOUND,
            )  # fmt: skip

        calls["nflows"] = _pair(nflows, x, p_nflows)
    return calls


def _pair(fn: Callable, x: torch.Tensor, params: torch.Tensor) -> tuple[Callable, Callable]:
    def train_step() -> None:
        params.grad = None
        y, logdet = fn(False)
        (y.sum() + logdet.sum()).backward()

    def inverse_call() -> None:
        with torch.inference_mode():
            fn(True)

    return train_step, inverse_call


def best_ms(fn: Callable, calls: int) -> float:
    for _ in range(5):
        fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e3


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=512)
    p.add_argument("--features", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--bins", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--output", default="spline_kernel")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()

    lines = [
        "# Spline kernel: one rational-quadratic spline, skflow against zuko and nflows",
        "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}, one "
        f"thread; `python benchmarks/spline_kernel.py` ({args.rows} rows, {args.bins} bins, "
        f"best of {args.rounds} rounds of {args.calls} calls, implementations interleaved).",
        "",
        "Milliseconds per call; `train` = forward + backward to inputs and parameters, "
        "`inverse` = inverse map under inference mode; ratio = peer / skflow (params first).",
        "",
        "| features | implementation | train ms | inverse ms | train ratio | inverse ratio |",
        "|---|---|---|---|---|---|",
    ]
    for features in args.features:
        calls = build_calls(args.rows, features, args.bins)
        best = {name: [float("inf"), float("inf")] for name in calls}
        for _ in range(args.rounds):
            for name, (train_step, inverse_call) in calls.items():
                best[name][0] = min(best[name][0], best_ms(train_step, args.calls))
                best[name][1] = min(best[name][1], best_ms(inverse_call, args.calls))
        ref_train, ref_inverse = best["skflow (params first)"]
        for name, (train_ms, inverse_ms) in best.items():
            print(f"features={features} {name}: train {train_ms:.3f} ms, inverse "
                  f"{inverse_ms:.3f} ms", flush=True)
            lines.append(
                f"| {features} | {name} | {train_ms:.3f} | {inverse_ms:.3f} | "
                f"{train_ms / ref_train:.2f} | {inverse_ms / ref_inverse:.2f} |"
            )
    lines += ["", f"{time.perf_counter() - started:.0f} s in all."]
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{args.output}.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
