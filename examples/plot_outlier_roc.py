"""
Outlier detection: FlowOutlierDetector against IsolationForest
==============================================================

:class:`~skflow.FlowOutlierDetector` scores each row by its log-density under a flow fitted to
the (unlabelled) training data: rare rows in empty regions get low scores. It has the shape of
:class:`~sklearn.ensemble.IsolationForest` (``fit``, ``score_samples``, ``decision_function``,
``predict``), so the two can be swapped and compared directly.

The data are the ADBench ``2_annthyroid`` table (thyroid tests, 6 features, 7% anomalies) when
a copy is found in ``../shared/data/adbench`` next to the repository, and otherwise a synthetic
table: a curved, correlated 4-D cloud of inliers with scattered anomalies. Both detectors are
fitted on a training split *with* its anomalies (labels unused) and the labels are used only to
draw the ROC curves on the test split.

The right panel shows where the flow's threshold falls. With ``contamination="auto"`` a row is
flagged when it lies outside the model's own 99% highest-density region, a cautious rule that
needs no guess about the data; pass ``contamination=0.07`` (the share of anomalies you expect)
to flag that share of the training rows instead. The ranking, and so the ROC curve, does not
depend on the threshold.
"""

import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import RocCurveDisplay, roc_auc_score
from sklearn.model_selection import train_test_split

from skflow import FlowOutlierDetector

# The small max_iter below keeps the example fast; silence the warning that says so.
warnings.filterwarnings("ignore", category=ConvergenceWarning)


def load_data(random_state=0):
    """ADBench 2_annthyroid if a local copy exists, else a synthetic table; returns X, y, name."""
    # Look next to the repository: from this file's location when run as a script, and from
    # the working directory upwards otherwise (sphinx-gallery runs examples without __file__).
    try:
        places = [Path(__file__).resolve().parents[2]]
    except NameError:
        places = []
    places += [Path.cwd(), *Path.cwd().parents]
    for place in places:
        path = place / "shared" / "data" / "adbench" / "2_annthyroid.npz"
        if path.exists():
            data = np.load(path)
            return data["X"], data["y"].astype(int), "ADBench 2_annthyroid"
    rng = np.random.default_rng(random_state)
    t = rng.normal(size=(5000, 1))
    inliers = np.hstack([t, t**2, np.sin(2 * t), 0.5 * t]) + 0.2 * rng.normal(size=(5000, 4))
    outliers = rng.uniform(-4, 4, size=(250, 4))
    X = np.vstack([inliers, outliers])
    y = np.r_[np.zeros(len(inliers), int), np.ones(len(outliers), int)]
    return X, y, "synthetic 4-D table"


X, y, name = load_data()
X_train, X_test, y_train, y_test = train_test_split(
    X, y, train_size=3000, test_size=2000, stratify=y, random_state=0
)

detectors = {
    "FlowOutlierDetector": FlowOutlierDetector(max_iter=30, random_state=0),
    "IsolationForest": IsolationForest(random_state=0),
}
# score_samples is high for normal rows; the ROC curve wants high for anomalies.
anomaly_scores = {
    label: -det.fit(X_train).score_samples(X_test) for label, det in detectors.items()
}

# %%
# ROC curves on the test split, and the flow's scores with its threshold.

fig, (ax_roc, ax_hist) = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained")
for label, score in anomaly_scores.items():
    RocCurveDisplay.from_predictions(y_test, score, name=label, ax=ax_roc)  # adds "(AUC = ...)"
    print(f"{label}: ROC AUC {roc_auc_score(y_test, score):.3f}")
ax_roc.plot([0, 1], [0, 1], ls=":", color="gray", label="chance")
ax_roc.set(
    title=f"{name}: {len(X_test)} test rows, {y_test.mean():.1%} anomalies",
    xlabel="false positive rate (inliers flagged)",
    ylabel="true positive rate (anomalies found)",
)
ax_roc.legend(loc="lower right")

flow = detectors["FlowOutlierDetector"]
log_density = flow.score_samples(X_test)
bins = np.linspace(np.percentile(log_density, 0.5), log_density.max(), 50)
ax_hist.hist(log_density[y_test == 0], bins=bins, alpha=0.6, density=True, label="inliers")
ax_hist.hist(log_density[y_test == 1], bins=bins, alpha=0.6, density=True, label="anomalies")
flagged = np.mean(flow.predict(X_test) == -1)
ax_hist.axvline(flow.offset_, color="black", ls="--", label=f"offset_ ({flagged:.1%} flagged)")
ax_hist.set(
    title="FlowOutlierDetector.score_samples on the test rows",
    xlabel="log-density (low = anomalous)",
    ylabel="share of rows (density)",
)
ax_hist.legend()
plt.show()
