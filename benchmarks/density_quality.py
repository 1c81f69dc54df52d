"""Density-quality benchmark: ``FlowDensity`` against a tuned GMM and an exact KDE.

For each dataset the rows are split into train / validation / test:

* synthetic sets: ``--n-train`` rows for training, ``n_train // 4`` for validation and
  an independent test sample of ``--n-test`` rows;
* real sets: a 60 / 20 / 20 shuffle split with a fixed seed.

``FlowDensity(random_state=0, **flow_params)`` is fitted on train + validation (it holds
out its own validation rows internally). The GMM and KDE are tuned on train vs
validation; the KDE then refits on train + validation, the GMM keeps its validated
train fit (see ``benchmarks/baselines.py``). The
report gives the test NLL (mean ``-log p`` in nats, in the units of the data), and for
synthetic data the true entropy estimate (mean ``-log p_true`` on the test rows) and the
KL gap ``NLL - entropy``, plus fit times. Results go to ``benchmarks/results/`` as
Markdown and JSON.

Examples
--------
``python benchmarks/density_quality.py``: the full benchmark.
``python benchmarks/density_quality.py --quick``: a smoke run on small samples.
``python benchmarks/density_quality.py --datasets ring_2d digits --flow-param
n_transforms=8 --flow-param hidden_layer_sizes=128,128``: compare flow settings.
``python benchmarks/density_quality.py --timing``: fit time on 20,000 x 16 rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    # Appended, not prepended, so an installed skflow (or one on PYTHONPATH) wins.
    sys.path.append(str(ROOT))

from benchmarks.baselines import fit_gmm, fit_kde  # noqa: E402
from benchmarks.common import RESULTS_DIR, machine, parse_param, utc_now, write_results  # noqa: E402
from benchmarks.datasets import (  # noqa: E402
    REAL_DATASETS,
    SYNTHETIC_DATASETS,
    get_synthetic,
    load_real,
    make_warped_gauss_16d,
)

METHODS = ("flow", "gmm", "kde")
SYNTHETIC_NAMES = tuple(ds.name for ds in SYNTHETIC_DATASETS)
ALL_DATASETS = SYNTHETIC_NAMES + REAL_DATASETS


# ----------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", choices=ALL_DATASETS, default=list(ALL_DATASETS),
                   metavar="NAME", help=f"subset of: {', '.join(ALL_DATASETS)}")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--n-train", type=int, default=None,
                   help="synthetic training rows (default 5000; 1000 with --quick)")
    p.add_argument("--n-test", type=int, default=None,
                   help="synthetic test rows (default 5000; 1000 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: small synthetic samples, real sets capped at 1500 rows")
    p.add_argument("--flow-param", action="append", type=parse_param, default=[],
                   metavar="KEY=VALUE", help="FlowDensity keyword argument (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed of data sampling and splits")
    p.add_argument("--output", default=None,
                   help="results file stem in benchmarks/results (default density_quality, "
                   "or density_quality_quick with --quick)")
    p.add_argument("--timing", action="store_true",
                   help="only time FlowDensity on a 20,000 x 16 warped Gaussian sample")
    return p


# ----------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------


def synthetic_splits(
    name: str, n_train: int, n_test: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train, validation and test samples plus the true log-density of the test rows."""
    ds = get_synthetic(name)
    seeds = np.random.SeedSequence([seed, ALL_DATASETS.index(name)]).spawn(2)
    fit_rows = ds.sample(n_train + n_train // 4, np.random.default_rng(seeds[0]))
    X_test = ds.sample(n_test, np.random.default_rng(seeds[1]))
    return fit_rows[:n_train], fit_rows[n_train:], X_test, ds.logpdf(X_test)


def real_splits(
    name: str, seed: int, max_rows: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """60 / 20 / 20 shuffle split of a real dataset, or None if its file is missing."""
    loaded = load_real(name, random_state=seed)
    if loaded is None:
        return None
    X = loaded[0]
    order = np.random.default_rng(seed).permutation(X.shape[0])[:max_rows]
    n_train, n_val = int(0.6 * order.size), int(0.2 * order.size)
    return (X[order[:n_train]], X[order[n_train:n_train + n_val]],
            X[order[n_train + n_val:]])


# ----------------------------------------------------------------------------------------
# Methods
# ----------------------------------------------------------------------------------------


def make_flow(flow_params: dict[str, Any]) -> Any:
    """An unfitted ``FlowDensity(random_state=0, **flow_params)``."""
    from skflow import FlowDensity  # imported lazily so --methods gmm kde runs without it

    return FlowDensity(random_state=0, **flow_params)


def fit_flow(X_train: np.ndarray, X_val: np.ndarray, flow_params: dict[str, Any]) -> Any:
    """FlowDensity with ``flow_params`` (defaults if empty) fitted on train + validation."""
    return make_flow(flow_params).fit(np.vstack([X_train, X_val]))


def run_method(
    method: str, fit: Callable[[], Any], X_test: np.ndarray
) -> dict[str, Any]:
    """Fit, score the test rows and collect NLL, timings and chosen hyper-parameters."""
    t0 = time.perf_counter()
    try:
        model = fit()
        fit_time = time.perf_counter() - t0
        t1 = time.perf_counter()
        logp = np.asarray(model.score_samples(X_test), dtype=np.float64)
        score_time = time.perf_counter() - t1
    except Exception as exc:  # keep benchmarking the other methods and datasets
        print(f"    {method}: FAILED ({type(exc).__name__}: {exc})", flush=True)
        return {"error": f"{type(exc).__name__}: {exc}", "fit_time": time.perf_counter() - t0}
    out: dict[str, Any] = {
        "nll": float(-logp.mean()),
        "nll_se": float(logp.std(ddof=1) / np.sqrt(logp.size)),
        "n_nonfinite": int(np.sum(~np.isfinite(logp))),
        "fit_time": fit_time,
        "score_time": score_time,
    }
    if method == "flow":
        n_iter = getattr(model, "n_iter_", None)
        out["n_iter"] = None if n_iter is None else int(n_iter)
    elif method == "gmm":
        out["n_components"] = model.n_components
    elif method == "kde":
        out["bandwidth"] = model.bandwidth
    print(f"    {method}: NLL {out['nll']:.4f}  fit {fit_time:.1f}s", flush=True)
    return out


def benchmark_dataset(
    name: str, args: argparse.Namespace, flow_params: dict[str, Any]
) -> dict[str, Any] | None:
    """Run every selected method on one dataset; None if the data are unavailable."""
    true_logp = None
    if name in SYNTHETIC_NAMES:
        X_train, X_val, X_test, true_logp = synthetic_splits(
            name, args.n_train, args.n_test, args.seed
        )
    else:
        splits = real_splits(name, args.seed, max_rows=1500 if args.quick else None)
        if splits is None:
            return None
        X_train, X_val, X_test = splits
    row: dict[str, Any] = {
        "dataset": name,
        "dim": X_train.shape[1],
        "n_train": X_train.shape[0],
        "n_val": X_val.shape[0],
        "n_test": X_test.shape[0],
        "synthetic": true_logp is not None,
    }
    print(f"{name}: d={row['dim']} train={row['n_train']} val={row['n_val']} "
          f"test={row['n_test']}", flush=True)
    if true_logp is not None:
        row["entropy"] = float(-true_logp.mean())
        print(f"    true entropy estimate {row['entropy']:.4f}", flush=True)
    fits = {
        "flow": lambda: fit_flow(X_train, X_val, flow_params),
        "gmm": lambda: fit_gmm(X_train, X_val, random_state=0),
        "kde": lambda: fit_kde(X_train, X_val),
    }
    for method in args.methods:
        res = run_method(method, fits[method], X_test)
        if true_logp is not None and "nll" in res:
            res["kl_gap"] = res["nll"] - row["entropy"]
        row[method] = res
    return row


# ----------------------------------------------------------------------------------------
# Reporting
# ----------------------------------------------------------------------------------------


def _fmt(value: Any, spec: str = ".3f") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not np.isfinite(value):
        return "inf" if value > 0 else "-inf"
    return format(value, spec)


def markdown_report(rows: list[dict[str, Any]], methods: list[str], config: dict) -> str:
    """Two Markdown tables: test NLL / KL gap, then fit times and chosen settings."""
    # The config stores each value's repr; show them as the keyword arguments they were.
    params = ", ".join(f"{k}={v}" for k, v in config["flow_params"].items()) or "defaults"
    lines = [
        "# Density quality",
        "",
        f"Run {config['date']} on {config['machine']}; flow params: "
        f"`{params}`; seed {config.get('seed', 0)}; synthetic n_train={config['n_train']}, "
        f"n_test={config['n_test']}.",
        "",
        "Test NLL = mean -log p(x) over test rows, nats, in the data's units (lower is "
        "better; best in bold). For synthetic data, H = mean -log p_true(x) on the same "
        "test rows and KL = NLL - H (an estimate of KL(p_true || model)).",
        "",
        "The flow is fitted on train + validation (it splits off its own validation rows). "
        "GMM: full covariances, n_components chosen on validation, the validated train fit "
        "is kept. KDE: exact Gaussian KDE, per-feature bandwidth h * std_j with h chosen on "
        "validation, centres = train + validation.",
        "",
    ]
    head = ["dataset", "d", "n_fit", "n_test", "H"]
    head += [f"NLL {m}" for m in methods] + [f"KL {m}" for m in methods]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        nlls = {m: r[m].get("nll") for m in methods if m in r}
        finite = [v for v in nlls.values() if v is not None and np.isfinite(v)]
        best = min(finite) if finite else None
        cells = [r["dataset"], str(r["dim"]), str(r["n_train"] + r["n_val"]), str(r["n_test"]),
                 _fmt(r.get("entropy"))]
        for m in methods:
            text = _fmt(nlls.get(m)) if "error" not in r.get(m, {}) else "error"
            cells.append(f"**{text}**" if nlls.get(m) is not None and nlls[m] == best else text)
        cells += [_fmt(r.get(m, {}).get("kl_gap")) for m in methods]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Fit time (s, including the GMM/KDE hyper-parameter search) and chosen "
              "settings: flow epochs (`n_iter_`), GMM components, KDE bandwidth (h, in "
              "units of each feature's std).", ""]
    settings = [("flow", "flow epochs", "n_iter", "d"), ("gmm", "GMM k", "n_components", "d"),
                ("kde", "KDE h", "bandwidth", ".3g")]
    settings = [s for s in settings if s[0] in methods]
    head = ["dataset"] + [f"fit s {m}" for m in methods] + [s[1] for s in settings]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["dataset"]] + [_fmt(r.get(m, {}).get("fit_time"), ".1f") for m in methods]
        cells += [_fmt(r.get(m, {}).get(key), spec) for m, _, key, spec in settings]
        lines.append("| " + " | ".join(cells) + " |")
    errors = [(r["dataset"], m, r[m]["error"]) for r in rows for m in methods
              if "error" in r.get(m, {})]
    if errors:
        lines += ["", "Errors:", ""] + [f"- {d} / {m}: {e}" for d, m, e in errors]
    lines += ["", f"Total wall time: {config['wall_time']:.0f} s.", ""]
    return "\n".join(lines)


def run_timing(flow_params: dict[str, Any], seed: int) -> dict[str, Any]:
    """Fit FlowDensity on 20,000 x 16 warped-Gaussian rows and report the wall time."""
    X = make_warped_gauss_16d(20_000, seed)
    t0 = time.perf_counter()
    model = make_flow(flow_params).fit(X)
    wall = time.perf_counter() - t0
    X_test = make_warped_gauss_16d(5_000, seed + 1)
    ds = get_synthetic("warped_gauss_16d")
    nll = float(-np.mean(model.score_samples(X_test)))
    entropy = float(-np.mean(ds.logpdf(X_test)))
    n_iter = getattr(model, "n_iter_", None)
    out = {
        "n_rows": 20_000,
        "dim": 16,
        "fit_wall_s": wall,
        "n_iter": None if n_iter is None else int(n_iter),
        "test_nll": nll,
        "entropy": entropy,
        "kl_gap": nll - entropy,
        "flow_params": {k: repr(v) for k, v in flow_params.items()},
        "cpu_count": os.cpu_count(),
    }
    print(f"FlowDensity fit on 20000 x 16: {wall:.1f} s wall, n_iter_={out['n_iter']}, "
          f"test NLL {nll:.4f} (entropy {entropy:.4f}, KL gap {nll - entropy:.4f})")
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    flow_params = dict(args.flow_param)
    args.n_train = args.n_train or (1000 if args.quick else 5000)
    args.n_test = args.n_test or (1000 if args.quick else 5000)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    if args.timing:
        out = run_timing(flow_params, args.seed)
        (RESULTS_DIR / "timing.json").write_text(json.dumps(out, indent=2) + "\n")
        return 0

    t0 = time.perf_counter()
    rows = []
    for name in args.datasets:
        row = benchmark_dataset(name, args, flow_params)
        if row is not None:
            rows.append(row)
    config = {
        "date": utc_now(),
        "machine": machine(),
        "flow_params": {k: repr(v) for k, v in flow_params.items()},
        "n_train": args.n_train,
        "n_test": args.n_test,
        "seed": args.seed,
        "quick": args.quick,
        "methods": args.methods,
        "wall_time": time.perf_counter() - t0,
    }
    stem = args.output or ("density_quality_quick" if args.quick else "density_quality")
    report = markdown_report(rows, args.methods, config)
    print("\n" + report)
    write_results(stem, report, {"config": config, "results": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
