"""Time to a good density: default ``FlowDensity`` fits of this checkout against an earlier one.

For each data set (the density benchmark's splits: synthetic train / validation / test, real
tables 60 / 20 / 20) the script fits, in one run:

* ``current``: ``FlowDensity(random_state=0)`` from this checkout;
* ``baseline``: the same call from an earlier commit (``--baseline-ref``, checked out into a
  temporary git worktree and imported in a subprocess of its own);
* ``gmm``: the tuned GaussianMixture of ``benchmarks/baselines.py`` (its search included).

Flow arms run in separate processes at one torch thread each (the estimators' default), side by
side when ``--jobs 2``, so that both see the same machine load. Each reports the fit time, the
test NLL (mean ``-log p`` in the units of the data, nats) and the curve of its internal
validation NLL against wall time, which is plotted into ``docs/fit_cost.png``. The summary gives
the median and total speed-up and the mean NLL change per feature.

Examples
--------
``python benchmarks/fit_cost.py``: all data sets, both arms, GMM, plot.
``python benchmarks/fit_cost.py --datasets ring_2d 6_cardio --arms current``: this code only.
``python benchmarks/fit_cost.py --large``: the current defaults on 100,000 and 1,000,000 rows
(the baseline arm there would take hours; it is left out unless ``--arms`` names it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from benchmarks.common import machine, parse_param, utc_now, write_results  # noqa: E402
from benchmarks.density_quality import (  # noqa: E402
    ALL_DATASETS,
    SYNTHETIC_NAMES,
    real_splits,
    synthetic_splits,
)

DOCS_DIR = ROOT / "docs"
# The defaults of 2cd0b2b, with stop 30's first-contact fixes: on torch >= 2.14, 2cd0b2b itself
# never trains its tail layer (a clamp whose gradient is 0 at the start), which would make the
# old arm worse for a reason that has nothing to do with time.
DEFAULT_BASELINE_REF = "5ab98c0"
LARGE_SIZES = (100_000, 1_000_000)
LARGE_DIM = 16


# ----------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------


def splits(name: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows to fit on, test rows, true test log-density or None) of one data set."""
    if name.startswith("large_"):
        from benchmarks.datasets import make_warped_gauss_16d

        n = int(name.split("_")[1])
        X = make_warped_gauss_16d(n + 20_000, random_state=seed)
        return X[:n], X[n:], None
    if name in SYNTHETIC_NAMES:
        X_train, X_val, X_test, true_logp = synthetic_splits(name, 5000, 5000, seed)
        return np.vstack([X_train, X_val]), X_test, true_logp
    found = real_splits(name, seed)
    if found is None:
        raise FileNotFoundError(f"data set {name!r} not found (see ../shared/data/README)")
    X_train, X_val, X_test = found
    return np.vstack([X_train, X_val]), X_test, None


# ----------------------------------------------------------------------------------------
# One flow arm (runs in its own process, importing skflow from --code)
# ----------------------------------------------------------------------------------------


def fit_one(name: str, seed: int, flow_params: dict[str, Any]) -> dict[str, Any]:
    """Fit ``FlowDensity(random_state=0, **flow_params)`` on one data set, timing every epoch."""
    import warnings

    from skflow import FlowDensity

    X_fit, X_test, _ = splits(name, seed)
    stamps: list[float] = []
    if "callback" in FlowDensity().get_params():
        flow_params = {**flow_params, "callback": lambda info: stamps.append(time.perf_counter())}
        restore = None
    else:  # the baseline commit has no callback: time its epochs through its validation pass
        from skflow import _training

        evaluate = _training.evaluate_nll

        def stamped(*args, **kwargs):
            value = evaluate(*args, **kwargs)
            stamps.append(time.perf_counter())
            return value

        _training.evaluate_nll = stamped

        def restore():
            _training.evaluate_nll = evaluate

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            model = FlowDensity(random_state=0, **flow_params).fit(X_fit)
            fit_time = time.perf_counter() - t0
    finally:
        if restore is not None:
            restore()
    nll = float(-np.mean(model.score_samples(X_test)))
    # One stamp after each epoch (the old code's validation pass also stamps once before the
    # first epoch, hence the last len(scores)): the curve's points.
    scores = list(model.validation_scores_ or [])
    times = [s - t0 for s in stamps[-len(scores):]] if scores else []
    return {
        "fit_time": fit_time,
        "nll": nll,
        "n_iter": int(model.n_iter_),
        "d": int(X_fit.shape[1]),
        "n_fit": int(X_fit.shape[0]),
        "curve": [[t, -s] for t, s in zip(times, scores, strict=True)],
        "warnings": sorted({type(w.message).__name__ for w in caught}),
    }


def worker(args: argparse.Namespace) -> int:
    """``--worker``: fit every data set of ``--datasets`` and print one JSON line each."""
    flow_params = dict(args.flow_param)
    for name in args.datasets:
        result = fit_one(name, args.seed, flow_params)
        print("RESULT " + json.dumps({"dataset": name, **result}), flush=True)
    return 0


def run_arm(code: Path, datasets: list[str], seed: int, flow_params: list[str],
            label: str) -> dict[str, dict]:
    """Run :func:`worker` with skflow imported from ``code``; return its results by data set."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(code), str(ROOT)]),
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--seed", str(seed),
               "--datasets", *datasets]
    for param in flow_params:
        command += ["--flow-param", param]
    out: dict[str, dict] = {}
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as process:
        for line in process.stdout:
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
                out[result.pop("dataset")] = result
                print(f"  {label:8s} {list(out)[-1]:16s} fit {result['fit_time']:7.1f} s  "
                      f"NLL {result['nll']:9.3f}  epochs {result['n_iter']}", flush=True)
    if process.returncode:
        raise RuntimeError(f"the {label} arm failed (exit code {process.returncode})")
    return out


def baseline_checkout(ref: str, where: Path) -> Path:
    """A folder from which ``import skflow`` gives commit ``ref``'s package, and nothing else.

    The commit is checked out as a git worktree in ``where / "checkout"``; the folder returned
    holds only a link to its ``skflow``, so the benchmark helpers (and their data paths) still
    come from this checkout.
    """
    checkout = where / "checkout"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(checkout), ref],
                   check=True, capture_output=True)
    package = where / "package"
    package.mkdir()
    (package / "skflow").symlink_to(checkout / "skflow", target_is_directory=True)
    return package


def gmm_arm(datasets: list[str], seed: int) -> dict[str, dict]:
    """The tuned GaussianMixture on every data set (search on a 80 / 20 split of the fit rows)."""
    from benchmarks.baselines import fit_gmm

    out = {}
    for name in datasets:
        X_fit, X_test, _ = splits(name, seed)
        n_train = int(0.75 * X_fit.shape[0])  # the density benchmark's 60 / 20 of 80
        t0 = time.perf_counter()
        model = fit_gmm(X_fit[:n_train], X_fit[n_train:])
        fit_time = time.perf_counter() - t0
        out[name] = {"fit_time": fit_time, "nll": float(-np.mean(model.score_samples(X_test)))}
        print(f"  gmm      {name:16s} fit {fit_time:7.1f} s  NLL {out[name]['nll']:9.3f}",
              flush=True)
    return out


# ----------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------


def _cell(result: dict | None, key: str, spec: str) -> str:
    return "-" if not result or key not in result else format(result[key], spec)


def summary(results: dict[str, dict[str, dict]], datasets: list[str]) -> dict[str, Any]:
    """Median and total speed-up and the NLL change per feature, current against baseline."""
    pairs = [(results["baseline"][n], results["current"][n]) for n in datasets
             if n in results.get("baseline", {}) and n in results.get("current", {})]
    if not pairs:
        return {}
    speedups = [old["fit_time"] / new["fit_time"] for old, new in pairs]
    per_feature = [(new["nll"] - old["nll"]) / new["d"] for old, new in pairs]
    return {
        "n_datasets": len(pairs),
        "median_speedup": float(np.median(speedups)),
        "total_speedup": (sum(old["fit_time"] for old, _ in pairs)
                          / sum(new["fit_time"] for _, new in pairs)),
        "mean_nll_change_per_feature": float(np.mean(per_feature)),
        "worst_nll_change_per_feature": float(np.max(per_feature)),
    }


def markdown(results: dict[str, dict[str, dict]], datasets: list[str], config: dict) -> str:
    lines = [
        "# Time to a good density",
        "",
        f"Run {config['date']} on {config['machine']}; baseline = commit "
        f"`{config['baseline_ref']}` (the defaults of 2cd0b2b with its first-contact fixes); "
        f"flow params `{config['flow_params'] or 'defaults'}`; seed {config['seed']}; flow arms "
        f"at one torch thread each, {config['jobs']} at a time.",
        "",
        "Fit time in seconds (GMM: its whole component search); test NLL in nats in the units "
        "of the data (lower is better); speed-up = baseline time / current time.",
        "",
        "| dataset | d | n_fit | fit s baseline | fit s current | fit s GMM | speed-up | "
        "NLL baseline | NLL current | NLL GMM | epochs baseline | epochs current |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in datasets:
        old = results.get("baseline", {}).get(name)
        new = results.get("current", {}).get(name)
        gmm = results.get("gmm", {}).get(name)
        shape = new or old or {}
        speed = f"{old['fit_time'] / new['fit_time']:.1f}x" if old and new else "-"
        lines.append(
            f"| {name} | {shape.get('d', '-')} | {shape.get('n_fit', '-')} | "
            f"{_cell(old, 'fit_time', '.1f')} | {_cell(new, 'fit_time', '.1f')} | "
            f"{_cell(gmm, 'fit_time', '.1f')} | {speed} | {_cell(old, 'nll', '.3f')} | "
            f"{_cell(new, 'nll', '.3f')} | {_cell(gmm, 'nll', '.3f')} | "
            f"{_cell(old, 'n_iter', 'd')} | {_cell(new, 'n_iter', 'd')} |"
        )
    lines[3:3] = [f"The {arm} arm's results come from an earlier run: `{files}`.\n"
                  for arm, files in config.get("reused", {}).items()]
    s = config.get("summary") or {}
    if s:
        lines += [
            "",
            f"Over {s['n_datasets']} data sets: median speed-up **{s['median_speedup']:.1f}x**, "
            f"total {s['total_speedup']:.1f}x; test NLL change per feature (current - "
            f"baseline, positive = worse): mean {s['mean_nll_change_per_feature']:+.4f}, "
            f"worst {s['worst_nll_change_per_feature']:+.4f}.",
        ]
    warned = {arm: [n for n, r in results.get(arm, {}).items() if r.get("warnings")]
              for arm in ("baseline", "current")}
    for arm, names in warned.items():
        if names:
            lines.append(f"\n{arm}: warnings on {', '.join(names)} "
                         "(ConvergenceWarning = stopped at max_iter).")
    return "\n".join(lines) + "\n"


def plot_curves(results: dict[str, dict[str, dict]], datasets: list[str], path: Path) -> None:
    """Validation NLL against wall time during each fit, baseline and current, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    names = [n for n in datasets if any(n in results.get(a, {}) for a in ("baseline", "current"))]
    columns = 4
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        for arm, style in (("baseline", "C0"), ("current", "C3")):
            curve = results.get(arm, {}).get(name, {}).get("curve")
            if curve:
                t, nll = np.array(curve).T
                ax.plot(t, nll, color=style, label=arm)
        gmm = results.get("gmm", {}).get(name)
        if gmm:
            ax.axvline(gmm["fit_time"], color="grey", ls=":", label="GMM search time")
        ax.set_title(name, fontsize=9)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # no labels crowding a short log axis
        ax.set_xlabel("wall time (s)", fontsize=8)
        ax.set_ylabel("validation NLL", fontsize=8)
        low, high = np.percentile(np.concatenate(
            [np.array(results[a][name]["curve"])[:, 1] for a in ("baseline", "current")
             if results.get(a, {}).get(name, {}).get("curve")]), [0, 90])
        ax.set_ylim(low - 0.05 * (high - low + 1e-9), high)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


# ----------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                   help=f"subset of: {', '.join(ALL_DATASETS)} (default all)")
    p.add_argument("--large", action="store_true",
                   help="also large_100000 and large_1000000 (16-D warped Gaussian)")
    p.add_argument("--arms", nargs="+", choices=("baseline", "current", "gmm"),
                   default=None, help="default: all three (current and gmm only with --large)")
    p.add_argument("--baseline-ref", default=DEFAULT_BASELINE_REF)
    p.add_argument("--flow-param", action="append", default=[], metavar="KEY=VALUE",
                   help="FlowDensity keyword argument for the current arm (repeatable)")
    p.add_argument("--jobs", type=int, default=2, choices=(1, 2),
                   help="flow arms run side by side (2) or one after the other (1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="fit_cost")
    p.add_argument("--reuse", action="append", default=[], metavar="ARM=FILE",
                   help="take an arm's results from an earlier run's JSON instead of running "
                   "it (repeatable; the report names the files)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        args.flow_param = [parse_param(p) for p in args.flow_param]
        return worker(args)
    datasets = list(args.datasets or ALL_DATASETS)
    if args.large:
        datasets += [f"large_{n}" for n in LARGE_SIZES]
    arms = args.arms or (["current", "gmm"] if args.large else ["baseline", "current", "gmm"])
    results: dict[str, dict[str, dict]] = {}
    reused = dict(item.split("=", 1) for item in args.reuse)
    for arm, file in reused.items():
        for stem in file.split(","):
            earlier = json.loads(Path(stem).read_text())["results"].get(arm, {})
            results.setdefault(arm, {}).update(
                {n: r for n, r in earlier.items() if n in datasets})
    arms = [arm for arm in arms if arm not in reused]
    with tempfile.TemporaryDirectory(prefix="skflow-baseline-") as tmp:
        jobs = {}
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            if "baseline" in arms:
                code = baseline_checkout(args.baseline_ref, Path(tmp))
                jobs["baseline"] = pool.submit(run_arm, code, datasets, args.seed, [], "baseline")
            if "current" in arms:
                jobs["current"] = pool.submit(run_arm, ROOT, datasets, args.seed,
                                              args.flow_param, "current")
            for arm, job in jobs.items():
                results[arm] = {**results.get(arm, {}), **job.result()}
        if "baseline" in arms:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(Path(tmp) / "checkout")], check=False)
    if "gmm" in arms:
        results["gmm"] = gmm_arm(datasets, args.seed)
    results = {arm: {n: r[n] for n in datasets if n in r} for arm, r in results.items()}

    config = {
        "date": utc_now(),
        "machine": machine(),
        "baseline_ref": args.baseline_ref,
        "flow_params": " ".join(args.flow_param),
        "seed": args.seed,
        "jobs": args.jobs,
        "reused": reused,
        "summary": summary(results, datasets),
    }
    report = markdown(results, datasets, config)
    print(report)
    write_results(args.output, report, {"config": config, "results": results})
    if {"baseline", "current"} & set(results):
        plot_curves(results, datasets, DOCS_DIR / f"{args.output}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
