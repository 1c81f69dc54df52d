"""Scaling benchmark: fit + score time and peak memory against the number of rows (d = 10).

Each point runs in a fresh subprocess (one torch thread, one BLAS thread), which loads its
data, resets the process's peak resident set (``/proc/self/clear_refs``), fits and scores,
and reports wall-clock times and the peak memory added on top of the loaded data.

* ``flow``: ``FlowDensity(n_transforms=4, hidden_layer_sizes=(64, 64), max_iter=2)`` (a
  fixed, small number of epochs, so the times measure cost per row rather than convergence;
  early stopping, batch size "auto" and the rest at their defaults), then ``score_samples``
  on all n rows. ``--epochs`` sets another fixed number of epochs.
* ``gmm``: ``GaussianMixture(16, covariance_type="full")`` fitted and scored on n rows, the
  model a user would reach for when KernelDensity is too slow to score (``--no-gmm`` skips it).
* ``kde``: ``KernelDensity(bandwidth="scott")`` (a kd-tree) fitted on n rows; its
  ``score_samples`` cost grows with n per query row, so it scores ``min(n, 2000)`` rows and
  the time for all n rows is extrapolated linearly (marked in the report); once one point's
  measured scoring takes more than ``--kde-cap`` seconds, larger n are skipped.

Data: ``funnel_10d`` samples (synthetic, d = 10) at n = 1e3 ... 1e6, and the ADBench
``11_donors`` table (619,326 x 10, in ../shared/data/adbench), a 1e5-row subsample and in full.

Quality: on ``funnel_10d``, whose density is known, every flow and GMM point also reports the
KL gap on 20,000 independent test rows (their mean ``-log p_model`` minus their mean
``-log p_true``), so a time is never quoted without what it bought. KernelDensity is not
scored there: its scoring cost is the point of the comparison.

Memory: skflow scores, transforms, samples and validates in chunks of at most about 16 MiB
of intermediates on a CPU (1 GiB on a GPU), fewer if scikit-learn's ``working_memory`` setting
(``sklearn.set_config(working_memory=MiB)``, default 1024) is lower. The flow points run at
the default; ``--flow-memory`` repeats the two largest synthetic sizes with a smaller setting
(4 MiB) to show that the memory above the data follows the setting (plus the float32
training copy of the data, n * d * 4 bytes, and a few n-long index arrays), not n.

Examples
--------
``python benchmarks/scaling.py``: the full run (about 15 minutes on one core of an idle machine).
``python benchmarks/scaling.py --quick``: n up to 1e4.
``python benchmarks/scaling.py --epochs 10 --sizes 100000 1000000 --no-donors --no-kde
--flow-memory --output scaling_10_epochs``: what longer fits buy at the two largest sizes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from benchmarks.common import RESULTS_DIR, machine, utc_now  # noqa: E402
from benchmarks.datasets import ADBENCH_DIR, get_synthetic  # noqa: E402

DOCS_DIR = ROOT / "docs"
KDE_QUERY_ROWS = 2_000
TEST_ROWS = 20_000  # independent funnel_10d rows for the KL gap
FLOW_PARAMS = {"n_transforms": 4, "hidden_layer_sizes": (64, 64), "max_iter": 2,
               "device": "cpu", "random_state": 0}
GMM_COMPONENTS = 16


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="n up to 1e4 only")
    p.add_argument("--sizes", nargs="+", type=int, default=None,
                   help="synthetic sizes (default 1e3 1e4 1e5 1e6)")
    p.add_argument("--kde-cap", type=float, default=20.0,
                   help="no larger KDE points once one took this many seconds (measured)")
    p.add_argument("--no-donors", action="store_true", help="synthetic data only")
    p.add_argument("--epochs", type=int, default=FLOW_PARAMS["max_iter"],
                   help="fixed number of flow epochs (default 2)")
    p.add_argument("--no-gmm", action="store_true", help="skip the GaussianMixture points")
    p.add_argument("--no-kde", action="store_true", help="skip the KernelDensity points")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--output", default=None, help="results stem (default scaling)")
    p.add_argument("--flow-memory", nargs="*", type=float, default=[4.0],
                   help="working_memory (MiB) for extra flow runs at the two largest sizes")
    p.add_argument("--child", nargs=5, metavar=("METHOD", "DATA", "N", "WM", "EPOCHS"),
                   help=argparse.SUPPRESS)
    return p


# ----------------------------------------------------------------------------------------
# One point (child process)
# ----------------------------------------------------------------------------------------


def load(data: str, n: int) -> np.ndarray:
    if data == "funnel_10d":
        return get_synthetic("funnel_10d").sample(n, np.random.default_rng(0))
    X = np.load(ADBENCH_DIR / "11_donors.npz")["X"].astype(np.float64)
    if n < len(X):
        X = X[np.random.default_rng(0).choice(len(X), n, replace=False)]
    return X


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def kl_gap(model, data: str) -> float | None:
    """Mean -log p_model minus mean -log p_true on independent test rows (funnel_10d only)."""
    if data != "funnel_10d":
        return None
    funnel = get_synthetic("funnel_10d")
    X_test = funnel.sample(TEST_ROWS, np.random.default_rng(1))
    return float(funnel.logpdf(X_test).mean() - model.score_samples(X_test).mean())


def child(
    method: str,
    data: str,
    n: int,
    working_memory: float | None = None,
    epochs: int = FLOW_PARAMS["max_iter"],
) -> dict:
    import sklearn
    import torch
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    if working_memory is not None:
        sklearn.set_config(working_memory=working_memory)
    torch.set_num_threads(1)
    threadpool_limits(1)
    X = load(data, n)
    flow_params = {**FLOW_PARAMS, "max_iter": epochs}
    # Warm up the code path on a few rows so lazily loaded kernels are not charged to the run.
    if method == "flow":
        from skflow import FlowDensity

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            FlowDensity(**{**FLOW_PARAMS, "max_iter": 1}).fit(X[:300]).score_samples(X[:300])
    elif method == "gmm":
        GaussianMixture(2, max_iter=2).fit(X[:300]).score_samples(X[:300])
    else:
        from sklearn.neighbors import KernelDensity

        KernelDensity(bandwidth="scott").fit(X[:300]).score_samples(X[:300])
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before = _status_kib("VmRSS")
    out: dict = {"method": method, "data": data, "n": len(X), "d": X.shape[1],
                 "working_memory": sklearn.get_config()["working_memory"]}
    start = time.perf_counter()
    if method == "flow":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = FlowDensity(**flow_params).fit(X)
        out["fit_s"] = time.perf_counter() - start
        start = time.perf_counter()
        scores = model.score_samples(X)
        out["score_s"] = time.perf_counter() - start
        out["batch_size"] = model._training_config(int(0.9 * len(X)), X.shape[1]).batch_size
        from skflow._engine.chunking import chunk_rows

        out["chunk_rows"] = chunk_rows(model.flow_)
        out["epochs"] = model.n_iter_
    elif method == "gmm":
        model = GaussianMixture(GMM_COMPONENTS, covariance_type="full", random_state=0).fit(X)
        out["fit_s"] = time.perf_counter() - start
        start = time.perf_counter()
        scores = model.score_samples(X)
        out["score_s"] = time.perf_counter() - start
        out["epochs"] = model.n_iter_  # EM iterations
    else:
        model = KernelDensity(bandwidth="scott").fit(X)
        out["fit_s"] = time.perf_counter() - start
        query = X[:KDE_QUERY_ROWS]
        start = time.perf_counter()
        scores = model.score_samples(query)
        measured = time.perf_counter() - start
        out["measured_s"] = measured
        out["score_s"] = measured * len(X) / len(query)
        out["score_extrapolated"] = len(query) < len(X)
    out["finite"] = bool(np.isfinite(scores).all())
    out["peak_mib"] = (_status_kib("VmHWM") - before) / 1024
    out["data_mib"] = X.nbytes / 2**20
    if method != "kde":  # after the peak: the test rows are not part of fit + score
        out["kl"] = kl_gap(model, data)
    return out


def run_point(
    method: str,
    data: str,
    n: int,
    working_memory: float | None = None,
    epochs: int = FLOW_PARAMS["max_iter"],
) -> dict | None:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", method, data, str(n),
           "default" if working_memory is None else str(working_memory), str(epochs)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        print(f"{method} {data} n={n} failed: {result.stderr[-800:]}", flush=True)
        return None


# ----------------------------------------------------------------------------------------
# Report and plot
# ----------------------------------------------------------------------------------------


def write_report(results: dict, path: Path) -> None:
    epochs = results.get("epochs", FLOW_PARAMS["max_iter"])
    flow_params = {**FLOW_PARAMS, "max_iter": epochs}
    lines = [
        "# Scaling: fit + score time and peak memory against n (d = 10)",
        "",
        f"Run {results['started']} on {results['machine']}; `{results['command']}`; "
        f"{results['wall_s']:.0f} s in all. One torch thread, one BLAS thread, each point in "
        "a fresh process. Times are wall-clock on that machine; any other jobs "
        "running at the time inflate them.",
        "",
        f"Flow: `FlowDensity({', '.join(f'{k}={v!r}' for k, v in flow_params.items())})`, "
        f"i.e. a fixed {epochs} epochs (not a converged fit), then `score_samples` on all n "
        f"rows. GMM: `GaussianMixture({GMM_COMPONENTS}, covariance_type='full')`, fitted and "
        "scored on all n rows (`iters` = EM iterations). "
        "KDE: `KernelDensity(bandwidth='scott')` (kd-tree), scoring "
        f"{KDE_QUERY_ROWS} rows, time for all n rows extrapolated linearly (*). Peak memory: "
        "the largest resident set during fit + score minus the resident set with the data "
        "loaded (MiB).",
        "",
        "`working MiB` is scikit-learn's `working_memory` setting the run used; `chunk` the "
        "rows per evaluation chunk it gave; `float32 copy` the training copy of the data "
        "(n * d * 4 bytes), the one part of the flow's peak that grows with n. `KL`: on "
        f"funnel_10d, mean -log p_model minus mean -log p_true on {TEST_ROWS:,} independent "
        "test rows (nats; 0 is the true density).",
        "",
        "| data | n | method | fit s | score s | fit + score s | peak MiB | data MiB | "
        "float32 copy MiB | working MiB | batch | chunk | epochs / iters | KL |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["points"]:
        star = " *" if r.get("score_extrapolated") else ""
        lines.append(
            f"| {r['data']} | {r['n']:,} | {r['method']} | {r['fit_s']:.2f} | "
            f"{r['score_s']:.2f}{star} | {r['fit_s'] + r['score_s']:.1f}{star} | "
            f"{r['peak_mib']:.0f} | {r['data_mib']:.0f} | "
            f"{r['n'] * r['d'] * 4 / 2**20 if r['method'] == 'flow' else 0:.0f} | "
            f"{r.get('working_memory', 1024):g} | {r.get('batch_size', '-')} | "
            f"{r.get('chunk_rows', '-')} | {r.get('epochs', '-')} | "
            f"{'-' if r.get('kl') is None else format(r['kl'], '.3f')} |"
        )
    lines += ["", *results.get("notes", [])]
    path.write_text("\n".join(lines) + "\n")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m, ax_q) = plt.subplots(1, 3, figsize=(16, 4.2))
    epochs = results.get("epochs", FLOW_PARAMS["max_iter"])
    styles = {"flow": ("C0", f"skflow FlowDensity ({epochs} epochs)"),
              "gmm": ("C1", f"GaussianMixture({GMM_COMPONENTS})"),
              "kde": ("C3", "KernelDensity (kd-tree)")}
    for method, (color, label) in styles.items():
        for data, marker, ls in (("funnel_10d", "o", "-"), ("11_donors", "s", "--")):
            pts = sorted((r for r in results["points"]
                          if r["method"] == method and r["data"] == data
                          and r.get("working_memory", 1024) == 1024), key=lambda r: r["n"])
            if not pts:
                continue
            n = [r["n"] for r in pts]
            total = [r["fit_s"] + r["score_s"] for r in pts]
            ax_t.plot(n, total, marker=marker, ls=ls, color=color, label=f"{label}, {data}")
            for r, t in zip(pts, total, strict=True):
                if r.get("score_extrapolated"):
                    ax_t.plot(r["n"], t, marker=marker, color=color, mfc="white", ms=9)
            ax_m.plot(n, [max(r["peak_mib"], 0.5) for r in pts], marker=marker, ls=ls,
                      color=color, label=f"{label}, {data}")
            scored = [r for r in pts if r.get("kl") is not None]
            if scored:
                ax_q.plot([r["n"] for r in scored], [r["kl"] for r in scored], marker=marker,
                          ls=ls, color=color, label=f"{label}, {data}")
    limited = sorted((r for r in results["points"] if r.get("working_memory", 1024) != 1024),
                     key=lambda r: (r["working_memory"], r["n"]))
    for wm in sorted({r["working_memory"] for r in limited}):
        pts = [r for r in limited if r["working_memory"] == wm]
        ax_m.plot([r["n"] for r in pts], [max(r["peak_mib"], 0.5) for r in pts], marker="x",
                  ls=":", color="C2", label=f"skflow, working_memory={wm:g} MiB, funnel_10d")
    ax_t.set(xscale="log", yscale="log", xlabel="rows n (d = 10)",
             ylabel="fit + score time (s, 1 thread)",
             title="Time (open markers: KDE scoring extrapolated)")
    ax_m.set(xscale="log", yscale="log", xlabel="rows n (d = 10)",
             ylabel="peak memory above the data (MiB)", title="Peak memory")
    ax_q.set(xscale="log", yscale="log", xlabel="rows n (d = 10)",
             ylabel="KL gap on test rows (nats)", title="Quality (funnel_10d, true density known)")
    for ax in (ax_t, ax_m, ax_q):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.child:
        method, data, n, wm, epochs = args.child
        wm_value = None if wm == "default" else float(wm)
        print(json.dumps(child(method, data, int(n), wm_value, int(epochs))))
        return
    sizes = args.sizes or ([1000, 10_000] if args.quick else [1000, 10_000, 100_000, 1_000_000])
    datasets = [("funnel_10d", sizes)]
    if not args.no_donors and (ADBENCH_DIR / "11_donors.npz").exists():
        donors = [1000] if args.quick else [100_000, 619_326]
        datasets.append(("11_donors", donors))
    datasets_extra: list[tuple[int, float]] = []
    t0 = time.perf_counter()
    results: dict = {
        "started": utc_now(),
        "machine": machine(),
        "command": "python benchmarks/scaling.py" + (" " + " ".join(sys.argv[1:])
                                                     if argv is None and sys.argv[1:] else ""),
        "points": [], "notes": [], "epochs": args.epochs,
    }
    for wm in args.flow_memory:
        for n in sizes[-2:]:
            datasets_extra.append((n, wm))
    for data, ns in datasets:
        kde_on = not args.no_kde
        for n in ns:
            methods = ["flow"] + ([] if args.no_gmm else ["gmm"]) + (["kde"] if kde_on else [])
            for method in methods:
                r = run_point(method, data, n, epochs=args.epochs)
                if r is None:
                    continue
                results["points"].append(r)
                print(json.dumps(r), flush=True)
                if method == "kde" and r["measured_s"] > args.kde_cap:
                    kde_on = False
                    results["notes"].append(
                        f"KDE on {data} stopped after n = {n:,}: scoring {KDE_QUERY_ROWS} rows "
                        f"took {r['measured_s']:.0f} s (> {args.kde_cap:.0f} s); all n rows "
                        f"would take about {r['score_s']:.0f} s."
                    )
    for n, wm in datasets_extra:
        r = run_point("flow", "funnel_10d", n, wm, args.epochs)
        if r is not None:
            results["points"].append(r)
            print(json.dumps(r), flush=True)
    results["wall_s"] = time.perf_counter() - t0
    stem = args.output or ("scaling_quick" if args.quick else "scaling")
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{stem}.json").write_text(json.dumps(results, indent=1))
    write_report(results, RESULTS_DIR / f"{stem}.md")
    if not args.no_plot:
        plot(results, DOCS_DIR / f"{stem}.png")
    print(f"wrote {RESULTS_DIR / stem}.md ({results['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
