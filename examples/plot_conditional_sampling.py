"""
Class-conditional sampling and oversampling
===========================================

:class:`~skflow.FlowSampler` learns p(x | y) with a single flow whose layers see the class
label, so the classes share what they have in common and each still gets its own shape.
``sample(n, y=label)`` then draws rows of the class you ask for (top row of the figure).

:class:`~skflow.FlowOverSampler` uses the same model to rebalance a data set:
``fit_resample(X, y)`` returns the original rows plus generated rows of the smaller classes, in
the manner of imbalanced-learn's samplers (bottom row). The generated rows come from the
learned class density, so they follow the curve of the minority moon rather than filling the
space between its points; with 150 rows and 30 epochs they are more diffuse than the real
class, and more rows or epochs sharpen them. Whether oversampling helps a given classifier is
an empirical question: see the sampler results on the benchmarks page.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_moons
from sklearn.exceptions import ConvergenceWarning

from skflow import FlowOverSampler, FlowSampler

# The small max_iter below keeps the example fast; silence the warning that says so.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

rng = np.random.default_rng(0)
X_moons, y_moons = make_moons(n_samples=1600, noise=0.08, random_state=0)
blob = rng.normal([2.2, 1.2], [0.15, 0.25], size=(400, 2))
X = np.vstack([X_moons, blob])
y = np.r_[y_moons, np.full(len(blob), 2)]
names = np.array(["upper moon", "lower moon", "blob"])
colors = np.array(["tab:blue", "tab:orange", "tab:green"])

params = {"n_transforms": 4, "hidden_layer_sizes": (64, 64), "max_iter": 30, "random_state": 0}
sampler = FlowSampler(**params).fit(X, y)
X_new = {label: sampler.sample(300, y=label, random_state=label)[0] for label in (0, 1, 2)}

# %%
# An imbalanced two-class version: all of the upper moon, 150 rows of the lower one.

minority = np.flatnonzero(y_moons == 1)[:150]
keep = np.r_[np.flatnonzero(y_moons == 0), minority]
X_imb, y_imb = X_moons[keep], y_moons[keep]
X_res, y_res = FlowOverSampler(**params).fit_resample(X_imb, y_imb)
X_generated, y_generated = X_res[len(X_imb) :], y_res[len(X_imb) :]

# %%
# Four panels: data, class-conditional samples, imbalanced data, and after oversampling.

fig, axes = plt.subplots(2, 2, figsize=(11, 8.5), sharex=True, sharey=True, layout="constrained")
for label in (0, 1, 2):
    rows = y == label
    axes[0, 0].scatter(*X[rows].T, s=3, color=colors[label], label=f"{names[label]} ({rows.sum()})")
    axes[0, 1].scatter(*X_new[label].T, s=3, color=colors[label], label=f"sample(300, y={label})")
axes[0, 0].set_title("training data: three classes")
axes[0, 1].set_title("FlowSampler: 300 rows of each class")

axes[1, 1].scatter(
    *X_generated.T,
    s=8,
    marker="x",
    lw=0.6,
    color="tab:red",
    label=f"generated {names[y_generated[0]]} ({len(X_generated)})",
)
for label in (0, 1):
    rows = y_imb == label
    for ax in axes[1]:
        ax.scatter(*X_imb[rows].T, s=3, color=colors[label], label=f"{names[label]} ({rows.sum()})")
axes[1, 0].set_title("imbalanced data")
axes[1, 1].set_title("FlowOverSampler().fit_resample: classes balanced")
for ax in axes.ravel():
    ax.legend(loc="lower left", fontsize=8, markerscale=3)
for ax in axes[1]:
    ax.set_xlabel("$x_1$")
for ax in axes[:, 0]:
    ax.set_ylabel("$x_2$")
plt.show()
