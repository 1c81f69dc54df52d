"""FlowSampler quality: train-on-synthetic / test-on-real, and oversampling of imbalanced data.

1. **TSTR.** Stratified 70/30 split. A ``HistGradientBoostingClassifier`` is trained (a) on the
   real training rows and (b) only on FlowSampler rows with the same class counts; both are
   scored by balanced accuracy on the real held-out rows. Target: (b) >= 90% of (a). The
   per-class check: the classifier trained on real rows labels generated rows of class k as k
   about as often as real held-out rows of k (per-class recall, generated vs real).
2. **Oversampling.** ADBench tables as imbalanced binary tasks (y = anomaly label). 5-fold
   stratified CV of ``StandardScaler -> sampler -> classifier`` with no resampling,
   RandomOverSampler, SMOTE and FlowOverSampler (plus two ablations of its defaults, which
   ``--no-ablations`` leaves out, and with ``--model-draws`` the same fitted flows drawing the
   new rows from the model instead of around real rows);
   balanced accuracy and average precision. ``--seed`` moves the folds and the flows' seeds,
   and ``--combine`` pools the oversampling results of runs with different seeds.

Run (from the repository root; single torch thread, be kind to shared machines)::

    nice python -m benchmarks.sampler_quality --out benchmarks/results/sampler_quality

Flow size, epochs and data sets are command-line options; see ``--help``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.preprocessing import StandardScaler

from skflow import FlowOverSampler, FlowSampler
from skflow._resampling import _oversampling_targets

from .datasets import ADBENCH_DIR


def _load(name: str):
    if name == "wine":
        d = load_wine()
        return d.data, d.target
    if name == "breast_cancer":
        d = load_breast_cancer()
        return d.data, d.target
    if name == "digits":
        d = load_digits()
        return d.data, d.target
    path = (ADBENCH_DIR / f"{name}.npz").resolve()
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        X, y = np.asarray(data["X"], np.float64), np.asarray(data["y"]).astype(int)
    # A constant column carries nothing to learn (and a density cannot model it).
    keep = np.ptp(X, axis=0) > 0
    return X[:, keep], y


def _flow_params(args) -> dict:
    return {
        "n_transforms": args.n_transforms,
        "hidden_layer_sizes": tuple(args.hidden),
        "max_iter": args.max_iter,
        "random_state": args.seed,
    }


def tstr(name: str, args) -> dict | None:
    data = _load(name)
    if data is None:
        print(f"[skip] {name}: not found")
        return None
    X, y = data
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=args.seed
    )
    t0 = time.perf_counter()
    flow = FlowSampler(**_flow_params(args)).fit(X_tr, y_tr)
    fit_s = time.perf_counter() - t0
    # Same class counts as the real training rows: one generated row per real label.
    X_syn, y_syn = flow.sample(y=y_tr, random_state=1)
    real = HistGradientBoostingClassifier(random_state=0).fit(X_tr, y_tr)
    syn = HistGradientBoostingClassifier(random_state=0).fit(X_syn, y_syn)
    score_real = balanced_accuracy_score(y_te, real.predict(X_te))
    score_syn = balanced_accuracy_score(y_te, syn.predict(X_te))
    # Per-class recall of the real-data classifier: generated rows vs real held-out rows.
    pred_gen, pred_te = real.predict(X_syn), real.predict(X_te)
    recall_gen = {str(k): float(np.mean(pred_gen[y_syn == k] == k)) for k in np.unique(y)}
    recall_real = {str(k): float(np.mean(pred_te[y_te == k] == k)) for k in np.unique(y)}
    gen_bayes = balanced_accuracy_score(y_te, flow.predict(X_te))
    # Ablation: the same flow without the default ("auto" = "balanced") class weights.
    unweighted = FlowSampler(class_weight=None, **_flow_params(args)).fit(X_tr, y_tr)
    X_unw, y_unw = unweighted.sample(y=y_tr, random_state=1)
    syn_unw = HistGradientBoostingClassifier(random_state=0).fit(X_unw, y_unw)
    score_unw = balanced_accuracy_score(y_te, syn_unw.predict(X_te))
    bayes_unw = balanced_accuracy_score(y_te, unweighted.predict(X_te))
    row = {
        "dataset": name,
        "shape": list(X.shape),
        "n_classes": len(np.unique(y)),
        "real": score_real,
        "synthetic": score_syn,
        "ratio": score_syn / score_real,
        "flow_bayes": gen_bayes,
        "unweighted_ratio": score_unw / score_real,
        "unweighted_bayes": bayes_unw,
        "recall_generated": recall_gen,
        "recall_real_heldout": recall_real,
        "fit_s": fit_s,
        "n_iter": flow.n_iter_,
    }
    print(
        f"[tstr] {name}: real {score_real:.3f} synthetic {score_syn:.3f} "
        f"({row['ratio']:.0%}) flow-bayes {gen_bayes:.3f}  fit {fit_s:.0f}s",
        flush=True,
    )
    return row


# Fitted FlowSamplers by (data, labels, parameters other than how rows are generated): the
# default FlowOverSampler and its model-draw variant fit the very same flow on each split (same
# data, same seed), so the variant reuses that fit and only the generated rows differ.
_FITS: dict[tuple, FlowSampler] = {}


class _SharedFitOverSampler(FlowOverSampler):
    """FlowOverSampler whose flow fit is shared with any other one on the same split."""

    def fit(self, X, y):
        params = self.get_params()
        del params["latent_noise"], params["temperature"]
        X_arr, y_arr = np.ascontiguousarray(X), np.ascontiguousarray(y)
        key = (
            hashlib.sha1(X_arr.tobytes()).hexdigest(),
            hashlib.sha1(y_arr.tobytes()).hexdigest(),
            repr(sorted(params.items())),
        )
        if key not in _FITS:
            super().fit(X, y)
            _FITS[key] = self.sampler_
            return self
        self.sampler_ = _FITS[key]
        self.classes_ = self.sampler_.classes_
        self.n_features_in_ = X_arr.shape[1]
        self.sampling_strategy_ = _oversampling_targets(
            self.sampling_strategy, self.classes_, self.sampler_.class_count_
        )
        return self


def _resamplers(args):
    from imblearn.over_sampling import SMOTE, RandomOverSampler

    samplers = {
        "none": None,
        "random": RandomOverSampler(random_state=0),
        "smote": SMOTE(random_state=0),
        "flow": _SharedFitOverSampler(**_flow_params(args)),
    }
    if args.model_draws:
        samplers["flow_model"] = _SharedFitOverSampler(latent_noise=None, **_flow_params(args))
    if args.ablations:
        # The oversampler without its default class_weight="balanced", and with its latent
        # draws cooled to a temperature of 0.8.
        samplers["flow_unweighted"] = FlowOverSampler(class_weight=None, **_flow_params(args))
        samplers["flow_cool"] = FlowOverSampler(
            latent_noise=None, temperature=0.8, **_flow_params(args)
        )
    return samplers


def _classifier(kind: str):
    if kind == "hgb":
        return HistGradientBoostingClassifier(random_state=0)
    return LogisticRegression(max_iter=2000)


def oversampling(name: str, args) -> dict | None:
    from imblearn.pipeline import make_pipeline

    data = _load(name)
    if data is None:
        print(f"[skip] {name}: not found")
        return None
    X, y = data
    scores: dict[str, dict[str, list[float]]] = {}
    cv = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    t0 = time.perf_counter()
    for method, sampler in _resamplers(args).items():
        bal, ap = [], []
        for train, test in cv.split(X, y):
            steps = [StandardScaler()] + ([sampler] if sampler is not None else [])
            model = make_pipeline(*steps, _classifier(args.classifier)).fit(X[train], y[train])
            bal.append(balanced_accuracy_score(y[test], model.predict(X[test])))
            ap.append(average_precision_score(y[test], model.predict_proba(X[test])[:, 1]))
        scores[method] = {"balanced_accuracy": bal, "average_precision": ap}
    elapsed = time.perf_counter() - t0
    summary = " ".join(
        f"{m} {np.mean(s['balanced_accuracy']):.3f}/{np.mean(s['average_precision']):.3f}"
        for m, s in scores.items()
    )
    print(f"[over] {name} {X.shape} ({elapsed:.0f}s) bal-acc/AP: {summary}", flush=True)
    return {
        "dataset": name,
        "seed": args.seed,
        "shape": list(X.shape),
        "anomaly_rate": float(y.mean()),
        **scores,
    }


# Columns of the oversampling tables; the best of the first four is in bold, the last two are
# ablations of FlowOverSampler's defaults.
_OVER_METHODS = {
    "none": "none",
    "random": "RandomOverSampler",
    "smote": "SMOTE",
    "flow": "FlowOverSampler",
    "flow_model": "FlowOverSampler, latent_noise=None (draws from the model)",
    "flow_unweighted": "FlowOverSampler, class_weight=None",
    "flow_cool": "FlowOverSampler, latent_noise=None, temperature=0.8",
}
_METRICS = ("balanced_accuracy", "average_precision")


def _oversampling_table(records: list[dict]) -> list[str]:
    """Markdown rows: one per (dataset, seed) record, then the mean over all records."""
    methods = [m for m in _OVER_METHODS if all(m in r for r in records)]
    ranked = methods[:4]
    seeds = sorted({r.get("seed", 0) for r in records})
    ablations = (
        "; the later columns are variants of FlowOverSampler's defaults"
        if len(methods) > len(ranked)
        else ""
    )
    lines = [
        "Balanced accuracy / average precision, mean over folds (best per row in bold among "
        f"the first four{ablations}). Seeds: {seeds}.",
        "",
        "| dataset | seed | shape | anomalies | "
        + " | ".join(_OVER_METHODS[m] for m in methods)
        + " |",
        "|---|---|---|---|" + "---|" * len(methods),
    ]
    means = {m: {metric: [] for metric in _METRICS} for m in methods}
    for r in records:
        best = {metric: max(np.mean(r[m][metric]) for m in ranked) for metric in _METRICS}
        cells = []
        for m in methods:
            parts = []
            for metric in _METRICS:
                v = float(np.mean(r[m][metric]))
                means[m][metric].append(v)
                bold = m in ranked and v >= best[metric] - 1e-12
                parts.append(f"**{v:.3f}**" if bold else f"{v:.3f}")
            cells.append(" / ".join(parts))
        lines.append(
            f"| {r['dataset']} | {r.get('seed', 0)} | {r['shape'][0]} x {r['shape'][1]} | "
            f"{r['anomaly_rate']:.1%} | " + " | ".join(cells) + " |"
        )
    avg = " | ".join(
        " / ".join(f"{np.mean(means[m][metric]):.4f}" for metric in _METRICS) for m in methods
    )
    lines.append(f"| **mean** | | | | {avg} |")
    return lines


def _paired_differences(records: list[dict]) -> list[str]:
    """Markdown rows: FlowOverSampler minus each other method, with a standard error.

    Within a dataset the methods share every CV split, so the difference is taken per split
    (seed and fold) and its standard error comes from the spread of those differences; the
    mean over datasets then has the standard error ``sqrt(sum of squares) / n_datasets``.
    """
    others = [
        m for m in ("none", "random", "smote", "flow_model") if all(m in r for r in records)
    ]
    by_dataset: dict[str, list[dict]] = {}
    for r in records:
        by_dataset.setdefault(r["dataset"], []).append(r)
    lines = [
        "FlowOverSampler minus each method, mean over datasets +- one standard error (from the "
        "per-split differences within each dataset; splits: seeds x folds):",
        "",
        "| metric | " + " | ".join(f"minus {_OVER_METHODS[m]}" for m in others) + " |",
        "|---|" + "---|" * len(others),
    ]
    for metric in _METRICS:
        cells = []
        for other in others:
            means, variances = [], []
            for runs in by_dataset.values():
                diffs = np.concatenate(
                    [np.subtract(r["flow"][metric], r[other][metric]) for r in runs]
                )
                means.append(diffs.mean())
                variances.append(diffs.var(ddof=1) / diffs.size if diffs.size > 1 else np.nan)
            se = np.sqrt(np.sum(variances)) / len(means)
            cells.append(f"{np.mean(means):+.4f} +- {se:.4f}")
        lines.append(f"| {metric.replace('_', ' ')} | " + " | ".join(cells) + " |")
    return lines


def _markdown(results: dict, args) -> str:
    lines = [
        "# FlowSampler quality",
        "",
        f"Command: `{args.command}`",
        "",
        f"Flow: n_transforms={args.n_transforms}, hidden_layer_sizes={tuple(args.hidden)}, "
        f"max_iter={args.max_iter}, other parameters at their defaults (class_weight 'auto', "
        f"i.e. 'balanced' for class labels); random_state={args.seed}, also the seed of the "
        "TSTR split.",
        "",
        "## Train on synthetic, test on real (balanced accuracy on a 30% real held-out split)",
        "",
        "| dataset | shape | classes | HGB on real | HGB on FlowSampler rows | ratio | "
        "FlowSampler.predict | flow fit (s) | ratio, class_weight=None | "
        "predict, class_weight=None |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["tstr"]:
        lines.append(
            f"| {r['dataset']} | {r['shape'][0]} x {r['shape'][1]} | {r['n_classes']} | "
            f"{r['real']:.3f} | {r['synthetic']:.3f} | {r['ratio']:.0%} | {r['flow_bayes']:.3f} "
            f"| {r['fit_s']:.0f} | {r['unweighted_ratio']:.0%} | {r['unweighted_bayes']:.3f} |"
        )
    lines += [
        "",
        "Per-class check: recall of the classifier trained on real rows, on generated rows of "
        "class k vs on real held-out rows of class k.",
        "",
        "| dataset | class: generated / real held-out |",
        "|---|---|",
    ]
    for r in results["tstr"]:
        cells = ", ".join(
            f"{k}: {r['recall_generated'][k]:.2f} / {r['recall_real_heldout'][k]:.2f}"
            for k in r["recall_generated"]
        )
        lines.append(f"| {r['dataset']} | {cells} |")
    if results["oversampling"]:
        lines += [
            "",
            f"## Oversampling ({args.folds}-fold stratified CV, StandardScaler -> sampler -> "
            f"{'HistGradientBoosting' if args.classifier == 'hgb' else 'LogisticRegression'})",
            "",
            *_oversampling_table(results["oversampling"]),
        ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tstr", nargs="*", default=["wine", "breast_cancer", "6_cardio"])
    parser.add_argument(
        "--oversampling", nargs="*", default=["6_cardio", "29_Pima", "38_thyroid", "40_vowels"]
    )
    parser.add_argument("--n-transforms", type=int, default=8)
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    parser.add_argument("--max-iter", type=int, default=300)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the flows, the TSTR split and the CV folds"
    )
    parser.add_argument(
        "--combine",
        nargs="+",
        metavar="JSON",
        help="only pool the oversampling results of earlier runs (one per seed) into --out.md",
    )
    parser.add_argument("--classifier", choices=["logreg", "hgb"], default="logreg")
    parser.add_argument(
        "--no-ablations",
        dest="ablations",
        action="store_false",
        help="oversampling: leave out the class_weight=None and temperature=0.8 columns "
        "(a third of the flow fits; for runs of the full-size default flow)",
    )
    parser.add_argument(
        "--model-draws",
        action="store_true",
        help="oversampling: add FlowOverSampler(latent_noise=None), new rows drawn from the "
        "model, reusing the default's flow fit on each split",
    )
    parser.add_argument("--out", default="benchmarks/results/sampler_quality")
    args = parser.parse_args(argv)
    import sys

    args.command = "python -m benchmarks.sampler_quality " + " ".join(sys.argv[1:])
    warnings.filterwarnings("ignore", category=UserWarning)
    from sklearn.exceptions import ConvergenceWarning

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    if args.combine:
        _combine(args)
        return
    results = {
        "tstr": [r for r in (tstr(n, args) for n in args.tstr) if r],
        "oversampling": [r for r in (oversampling(n, args) for n in args.oversampling) if r],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    out.with_suffix(".md").write_text(_markdown(results, args))
    print(_markdown(results, args))


def _combine(args) -> None:
    """Pool the oversampling records of several runs (different ``--seed``) in one table."""
    records = []
    for path in args.combine:
        records += json.loads(Path(path).read_text())["oversampling"]
    text = "\n".join(
        [
            "# FlowSampler oversampling, pooled over seeds",
            "",
            f"Command: `{args.command}`, pooling the runs in {', '.join(args.combine)}.",
            "",
            *_oversampling_table(records),
            "",
            *_paired_differences(records),
        ]
    )
    Path(args.out).with_suffix(".md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
