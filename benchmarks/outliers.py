"""Anomaly-detection benchmark: ``FlowOutlierDetector`` against classic detectors.

Protocol (ADBench's unsupervised setting, see ``../shared/data/README.md``): for each of
the fifteen ADBench tables and each seed, a stratified 70/30 split with that seed; every
method is fitted on the training part (anomalies included, labels unused) and the anomaly
score of the test rows (``-score_samples``, or pyod's ``decision_function``) is evaluated
by ROC AUC and average precision. Reported numbers are means over the seeds.

Methods: ``flow`` (``FlowOutlierDetector(random_state=seed, **flow_params)``), ``iforest``
(``IsolationForest``), ``lof`` (``LocalOutlierFactor(novelty=True)``), ``ocsvm``
(``OneClassSVM``, gamma="scale"), ``kde`` (exact Gaussian KDE, bandwidth chosen on a
validation split, ``benchmarks/baselines.py``), ``gmm`` (full-covariance mixture,
n_components chosen on a validation split) and, if pyod is installed, ``ecod`` and ``knn``.
All methods except the flow and the isolation forest see standardised data with the
training set's constant columns dropped. OCSVM, KDE, LOF, KNN and GMM train on a random subset
of at most ``TRAIN_CAPS`` training rows (only 11_donors and 5_campaign are affected);
the flow and the other methods train on all rows.

Examples
--------
``python benchmarks/outliers.py``: everything (15 datasets, 3 seeds).
``python benchmarks/outliers.py --quick --datasets 6_cardio 29_Pima``: smoke run.
``python benchmarks/outliers.py --methods flow --flow-param max_iter=50``: the flow alone.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import LocalOutlierFactor
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # appended so an installed skflow wins

from benchmarks.baselines import fit_gmm, fit_kde  # noqa: E402
from benchmarks.common import RESULTS_DIR, machine, parse_param, utc_now  # noqa: E402
from benchmarks.datasets import ADBENCH_DIR  # noqa: E402

DATASETS = ("2_annthyroid", "5_campaign", "6_cardio", "11_donors", "20_letter",
            "23_mammography", "27_PageBlocks", "28_pendigits", "29_Pima", "30_satellite",
            "32_shuttle", "38_thyroid", "40_vowels", "41_Waveform", "45_wine")
METHODS = ("flow", "iforest", "lof", "ocsvm", "kde", "gmm", "ecod", "knn")
PYOD_METHODS = ("ecod", "knn")
# Training-row caps of the methods whose fit (or exact scoring) is superlinear in n, and of
# the GMM, whose search over up to 32 full-covariance components is too slow on donors.
TRAIN_CAPS = {"ocsvm": 10_000, "kde": 10_000, "lof": 50_000, "knn": 50_000, "gmm": 50_000}
KDE_GRID = tuple(np.logspace(-2.0, 0.5, 16))  # bandwidth, in units of each feature's std
VAL_FRACTION = 0.2  # share of the training rows used to choose the KDE / GMM setting
SCORE_CHUNK = 20_000  # test rows scored per call (bounded memory); not for flow and ECOD


def pyod_status() -> str | None:
    """None if pyod's ECOD and KNN import, else the reason they are skipped."""
    try:
        from pyod.models.ecod import ECOD  # noqa: F401
        from pyod.models.knn import KNN  # noqa: F401
    except Exception as exc:
        return f"pyod not available ({type(exc).__name__}: {exc})"
    return None


def load_split(name: str, seed: int) -> tuple[np.ndarray, ...] | None:
    """Stratified 70/30 split (X_train, X_test, y_test) of one dataset; None if missing."""
    path = ADBENCH_DIR / f"{name}.npz"
    if not path.exists():
        return None
    data = np.load(path)
    X, y = np.asarray(data["X"], dtype=np.float64), np.asarray(data["y"]).astype(int)
    X_train, X_test, _, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=seed)
    return X_train, X_test, y_test


def _standardizer(X_train: np.ndarray):
    """``X -> Z``: drop the training set's constant columns, then standardise."""
    keep = np.ptp(X_train, axis=0) > 0
    scaler = StandardScaler().fit(X_train[:, keep])

    def transform(X: np.ndarray) -> np.ndarray:
        return scaler.transform(X[:, keep])

    return transform


def _identity(X: np.ndarray) -> np.ndarray:
    return X


def _val_split(Z: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random (fit, validation) split of the training rows for hyper-parameter choice."""
    order = np.random.default_rng(seed).permutation(Z.shape[0])
    n_val = max(1, int(VAL_FRACTION * Z.shape[0]))
    return Z[order[n_val:]], Z[order[:n_val]]


def fit_method(method: str, X: np.ndarray, seed: int,
               flow_params: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """Fit one method on the training rows ``X``.

    Returns ``(model, transform, info)``: the model scores ``transform(X_test)``, and
    ``info`` holds the chosen hyper-parameters.
    """
    if method == "flow":
        from skflow import FlowOutlierDetector  # lazily: baselines run without it

        model = FlowOutlierDetector(random_state=seed, **flow_params).fit(X)
        n_iter = getattr(model, "n_iter_", None)
        return model, _identity, {"n_iter": None if n_iter is None else int(n_iter)}
    if method == "iforest":
        return IsolationForest(random_state=seed).fit(X), _identity, {}
    transform = _standardizer(X)
    Z = transform(X)
    if method == "lof":
        return LocalOutlierFactor(novelty=True).fit(Z), transform, {}
    if method == "ocsvm":
        return OneClassSVM(gamma="scale").fit(Z), transform, {}
    if method == "kde":
        model = fit_kde(*_val_split(Z, seed), bandwidths=KDE_GRID)  # refits on all rows
        return model, transform, {"bandwidth": model.bandwidth}
    if method == "gmm":
        model = fit_gmm(*_val_split(Z, seed), random_state=seed)
        return model, transform, {"n_components": model.n_components}
    if method == "ecod":
        from pyod.models.ecod import ECOD

        return ECOD().fit(Z), transform, {}
    if method == "knn":
        from pyod.models.knn import KNN

        return KNN().fit(Z), transform, {}
    raise ValueError(f"unknown method {method!r}")


def anomaly_scores(method: str, model: Any, transform: Any, X: np.ndarray) -> np.ndarray:
    """Anomaly score of each row of ``X`` (higher = more anomalous)."""
    if method in PYOD_METHODS:
        score = model.decision_function  # pyod: already higher = more anomalous
    else:
        def score(T: np.ndarray) -> np.ndarray:
            return -np.asarray(model.score_samples(T), dtype=np.float64)
    # ECOD ranks the test rows together with the training rows: score them in one call.
    step = X.shape[0] if method in ("flow", "ecod") else SCORE_CHUNK
    parts = [score(transform(X[i:i + step])) for i in range(0, X.shape[0], step)]
    return np.concatenate(parts).astype(np.float64)


def metrics(y: np.ndarray, s: np.ndarray) -> dict[str, Any]:
    """ROC AUC and AP of anomaly scores ``s``, with the count of non-finite scores.

    ``+inf`` (zero density) ranks most anomalous and ``-inf`` most normal; a NaN is
    counted in ``n_nan`` and ranked most normal, so it can only lower the scores.
    """
    n_nan, n_inf = int(np.isnan(s).sum()), int(np.isinf(s).sum())
    finite = s[np.isfinite(s)]
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    s = np.where(np.isnan(s) | (s == -np.inf), lo - 1.0, np.where(s == np.inf, hi + 1.0, s))
    return {"auc": float(roc_auc_score(y, s)), "ap": float(average_precision_score(y, s)),
            "n_nan": n_nan, "n_inf": n_inf}


def run_one(method: str, X_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
            seed: int, args: argparse.Namespace, flow_params: dict[str, Any]) -> dict:
    """Fit, score and evaluate one method on one split; failures are recorded, not raised."""
    cap = TRAIN_CAPS.get(method)
    if cap is not None and X_train.shape[0] > cap:  # seeded random subset of the rows
        X_train = X_train[np.random.default_rng(seed).permutation(X_train.shape[0])[:cap]]
    out: dict[str, Any] = {"n_train": int(X_train.shape[0])}
    t0 = time.perf_counter()
    try:
        model, transform, info = fit_method(method, X_train, seed, flow_params)
        out["fit_time"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        s = anomaly_scores(method, model, transform, X_test)
        out["score_time"] = time.perf_counter() - t1
        out.update(metrics(y_test, s), **info)
    except Exception as exc:  # keep going with the other methods and datasets
        out["error"] = f"{type(exc).__name__}: {exc}"
        out.setdefault("fit_time", time.perf_counter() - t0)
        print(f"    {method:8s} FAILED {out['error']}", flush=True)
        return out
    nan = f"  NaN scores: {out['n_nan']}" if out["n_nan"] else ""
    print(f"    {method:8s} AUC {out['auc']:.4f}  AP {out['ap']:.4f}  fit {out['fit_time']:7.1f}s"
          f"  score {out['score_time']:6.1f}s  (n_train {out['n_train']}){nan}", flush=True)
    return out


def run_dataset(name: str, args: argparse.Namespace, flow_params: dict[str, Any]) -> dict | None:
    """All selected methods and seeds on one dataset, with per-method seed means."""
    row: dict[str, Any] = {"dataset": name, "runs": {m: [] for m in args.methods}}
    for seed in args.seeds:
        split = load_split(name, seed)
        if split is None:
            print(f"{name}: file missing in {ADBENCH_DIR}, skipped", flush=True)
            return None
        X_train, X_test, y_test = split
        if args.max_train_rows and X_train.shape[0] > args.max_train_rows:
            keep = np.random.default_rng(seed).permutation(X_train.shape[0])
            X_train = X_train[keep[:args.max_train_rows]]
        row.update(n_train=int(X_train.shape[0]), n_test=int(X_test.shape[0]),
                   dim=int(X_train.shape[1]), anomaly_rate=float(y_test.mean()))
        print(f"{name} seed {seed}: train {X_train.shape[0]} x {X_train.shape[1]}, "
              f"test {X_test.shape[0]} ({100 * y_test.mean():.1f}% anomalies)", flush=True)
        for method in args.methods:
            row["runs"][method].append(
                {"seed": seed, **run_one(method, X_train, X_test, y_test, seed, args,
                                         flow_params)})
    row["summary"] = {m: summarize(runs) for m, runs in row["runs"].items()}
    return row


def summarize(runs: list[dict]) -> dict[str, Any]:
    """Seed means of one method on one dataset; failed if any seed failed."""
    errors = [r["error"] for r in runs if "error" in r]
    out: dict[str, Any] = {
        "fit_time": float(sum(r.get("fit_time", 0.0) for r in runs)),
        "score_time": float(sum(r.get("score_time", 0.0) for r in runs)),
        "n_nan": int(sum(r.get("n_nan", 0) for r in runs)),
        "n_train": max(r["n_train"] for r in runs),
    }
    if errors:
        return {**out, "error": errors[0]}
    for key in ("auc", "ap"):
        vals = [r[key] for r in runs]
        out[key], out[f"{key}_std"] = float(np.mean(vals)), float(np.std(vals))
    return out


def mean_ranks(rows: list[dict], methods: list[str]) -> dict[str, float]:
    """ROC AUC rank per dataset (1 = best, ties averaged, failures last), averaged."""
    ranks = []
    for r in rows:
        auc = [r["summary"][m].get("auc", -np.inf) for m in methods]
        ranks.append(rankdata(-np.round(auc, 4)))  # AUC equal to 4 decimals = a tie
    return dict(zip(methods, np.mean(ranks, axis=0), strict=True)) if ranks else {}


def _table(rows: list[dict], methods: list[str], key: str) -> list[str]:
    """Markdown table of one metric: datasets as rows, methods as columns, best in bold."""
    lines = ["| dataset | n_train | d | anom. | " + " | ".join(methods) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(methods)]
    for r in rows:
        vals = {m: r["summary"][m].get(key) for m in methods}
        best = max((round(v, 3) for v in vals.values() if v is not None), default=None)
        cells = []
        for m in methods:
            s, v = r["summary"][m], vals[m]
            text = "failed" if v is None else f"{v:.3f}"
            text = f"**{text}**" if v is not None and round(v, 3) == best else text
            text += "†" if s["n_nan"] else ""
            text += "*" if s["n_train"] < r["n_train"] else ""
            cells.append(text)
        lines.append(f"| {r['dataset']} | {r['n_train']} | {r['dim']} | "
                     f"{100 * r['anomaly_rate']:.1f}% | " + " | ".join(cells) + " |")
    return lines


def markdown_report(rows: list[dict], methods: list[str], config: dict[str, Any]) -> str:
    """Per-dataset ROC AUC and AP tables, then a summary of means, ranks and times."""
    lines = [
        "# Anomaly detection on ADBench tables", "",
        f"{config['date']}; {config['machine']}.", "",
        f"Command: `{config['command']}`", "",
        f"Protocol: stratified 70/30 split per seed (seeds {config['seeds']}), fit on the "
        "training part (anomalies included, labels unused), metrics of the test rows' anomaly "
        "score; mean over seeds. Flow parameters: "
        f"`{config['flow_params'] or 'defaults'}`."
        + (f" All training parts capped at {config['max_train_rows']} rows."
           if config["max_train_rows"] else ""), "",
        "## ROC AUC", "", *_table(rows, methods, "auc"), "",
        "## Average precision", "", *_table(rows, methods, "ap"), "",
        "## Summary", "",
        "Mean rank: rank of the mean ROC AUC among the methods on each dataset (1 = best, "
        "ties averaged, a failed method ranks last), averaged over datasets. Times are "
        "totals over all datasets and seeds, in seconds.", "",
        "| method | mean ROC AUC | mean AP | mean rank | fit s | score s | failed | NaN |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ranks = mean_ranks(rows, methods)
    for m in methods:
        sums = [r["summary"][m] for r in rows]
        ok = [s for s in sums if "error" not in s]
        mean = {k: f"{np.mean([s[k] for s in ok]):.3f}" if ok else "-" for k in ("auc", "ap")}
        partial = f" ({len(ok)}/{len(sums)})" if len(ok) < len(sums) else ""
        lines.append(
            f"| {m} | {mean['auc']}{partial} | {mean['ap']}{partial} | {ranks[m]:.2f} | "
            f"{sum(s['fit_time'] for s in sums):.1f} | {sum(s['score_time'] for s in sums):.1f} "
            f"| {len(sums) - len(ok)} | {sum(s['n_nan'] for s in sums)} |")
    caps = ", ".join(f"{m} {c:,}" for m, c in TRAIN_CAPS.items() if m in methods)
    lines += ["", (f"\\* trained on a random subset of the training rows (caps: {caps}); "
                   "the other methods train on all rows. " if caps else "")
              + ("flow: FlowOutlierDetector's default max_samples trains it on at most 50,000 "
                 "random training rows (only 11_donors is larger); every test row is scored. "
                 if "flow" in methods else "")
              + f"Methods other than flow and ECOD score in chunks of {SCORE_CHUNK:,} test rows. "
              "† some anomaly scores were NaN (ranked most "
              "normal; counts in the JSON). Baselines other than iforest and flow see "
              "standardised data without the training set's constant columns. KDE: exact "
              "Gaussian KDE, bandwidth from a 16-value grid (0.01 to 3.2 std) chosen on a "
              "20% validation split, then refit on all training rows; GMM: n_components "
              "chosen on the same split."]
    if config.get("skipped"):
        lines += ["", f"Skipped: {config['skipped']}."]
    errors = [f"- {r['dataset']} / {m}: {r['summary'][m]['error']}" for r in rows
              for m in methods if "error" in r["summary"][m]]
    if errors:
        lines += ["", "Failures:", "", *errors]
    lines += ["", f"Wall time: {config['wall_time']:.0f} s.", ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS),
                   metavar="NAME", help=f"subset of: {', '.join(DATASETS)}")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--flow-param", action="append", type=parse_param, default=[],
                   metavar="KEY=VALUE", help="FlowOutlierDetector keyword argument (repeatable)")
    p.add_argument("--max-train-rows", type=int, default=None,
                   help="random subset of the training part for every method (quick runs)")
    p.add_argument("--output", default=None, help="results file stem in benchmarks/results "
                   "(default outliers, or outliers_quick with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: seed 0 only, training parts capped at 2000 rows")
    p.add_argument("--combine", nargs="+", metavar="STEM", default=None,
                   help="no fitting: merge the JSON results of earlier runs (stems in "
                   "benchmarks/results, same seeds) into one report written to --output")
    return p


def combine(stems: list[str], output: str) -> int:
    """Merge runs of different methods on the same datasets and seeds into one report."""
    loaded = [json.loads((RESULTS_DIR / f"{stem}.json").read_text()) for stem in stems]
    # A method may come from several runs (e.g. the flow on different datasets).
    methods = list(dict.fromkeys(m for run in loaded for m in run["config"]["methods"]))
    by_name: dict[str, dict] = {}
    for run in loaded:
        if run["config"]["seeds"] != loaded[0]["config"]["seeds"]:
            raise SystemExit(f"--combine: runs used different seeds: {stems}")
        for row in run["results"]:
            merged = by_name.setdefault(row["dataset"], {**row, "runs": {}, "summary": {}})
            merged["runs"].update(row["runs"])
            merged["summary"].update(row["summary"])
    rows = [r for r in by_name.values() if all(m in r["summary"] for m in methods)]
    config = {**loaded[0]["config"], "methods": methods,
              "command": " + ".join(run["config"]["command"] for run in loaded),
              "flow_params": next((run["config"]["flow_params"] for run in loaded
                                   if "flow" in run["config"]["methods"]), {}),
              "wall_time": sum(run["config"]["wall_time"] for run in loaded)}
    report = markdown_report(rows, methods, config)
    (RESULTS_DIR / f"{output}.md").write_text(report)
    print(report)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    if args.combine:
        return combine(args.combine, args.output or "outliers")
    flow_params = dict(args.flow_param)
    if args.quick:
        args.seeds = [0]
        args.max_train_rows = min(args.max_train_rows or 2000, 2000)
    skipped = []
    reason = pyod_status()
    if reason is not None and any(m in PYOD_METHODS for m in args.methods):
        print(f"skipping ecod and knn: {reason}", flush=True)
        skipped.append(f"ecod, knn: {reason}")
        args.methods = [m for m in args.methods if m not in PYOD_METHODS]
    stem = args.output or ("outliers_quick" if args.quick else "outliers")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "date": utc_now(),
        "machine": f"{machine()}, {platform.platform()}",
        "command": shlex.join(["python", "benchmarks/outliers.py", *sys.argv[1:]])
        if argv is None else shlex.join(["python", "benchmarks/outliers.py", *argv]),
        "flow_params": {k: repr(v) for k, v in flow_params.items()},
        "seeds": args.seeds, "methods": args.methods, "max_train_rows": args.max_train_rows,
        "train_caps": TRAIN_CAPS, "kde_grid": list(KDE_GRID), "skipped": "; ".join(skipped),
    }
    t0 = time.perf_counter()
    rows: list[dict] = []
    for name in args.datasets:
        row = run_dataset(name, args, flow_params)
        if row is None:
            continue
        rows.append(row)
        config["wall_time"] = time.perf_counter() - t0  # saved after every dataset
        (RESULTS_DIR / f"{stem}.json").write_text(
            json.dumps({"config": config, "results": rows}, indent=2) + "\n")
        (RESULTS_DIR / f"{stem}.md").write_text(markdown_report(rows, args.methods, config))
    if rows:
        print("\n" + markdown_report(rows, args.methods, config))
        print(f"wrote {RESULTS_DIR / stem}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
