"""
New rows from a fitted flow: samples against the data
=====================================================

:meth:`FlowDensity.sample <skflow.FlowDensity.sample>` draws Gaussian latent points and maps them
back through the inverse of the flow. The data here are a skewed, heavy-tailed cloud whose
spread grows along it, the kind of shape that a Gaussian mixture needs many components for.
The left panel shows the training rows, the middle one as many rows drawn from the fitted
flow, and the right panel compares the distributions of one column on a logarithmic scale,
where a generator that misses the tails shows first.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skflow import FlowDensity

# The small max_iter below keeps the example fast; silence the warning that says so.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

rng = np.random.default_rng(0)
g = rng.normal(size=(3000, 2))
x1 = np.sinh(0.9 * g[:, 0] + 0.4)  # skewed, with heavy tails
x2 = 0.8 * x1 + (0.3 + 0.4 * np.abs(x1)) * g[:, 1]  # dependent on x1, spread growing with it
X = np.column_stack([x1, x2])

flow = FlowDensity(n_transforms=4, hidden_layer_sizes=(64, 64), max_iter=40, random_state=0)
flow.fit(X)
X_new = flow.sample(len(X), random_state=1)

# %%
# Draw the data, the samples and one column's distribution.

fig, axes = plt.subplots(1, 3, figsize=(13, 4.3), layout="constrained")
for ax, points, title, color in [
    (axes[0], X, f"training data ({len(X)} rows)", "tab:blue"),
    (axes[1], X_new, f"flow.sample({len(X_new)})", "tab:orange"),
]:
    ax.scatter(*points.T, s=2, alpha=0.5, color=color)
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$", xlim=(-5, 8), ylim=(-8, 12))

bins = np.linspace(-8, 12, 50)
axes[2].hist(X[:, 1], bins=bins, density=True, alpha=0.5, label="data", color="tab:blue")
axes[2].hist(
    X_new[:, 1],
    bins=bins,
    density=True,
    histtype="step",
    lw=2,
    label="samples",
    color="tab:orange",
)
axes[2].set_yscale("log")
axes[2].set(title="the $x_2$ column, log scale", xlabel="$x_2$", ylabel="density")
axes[2].legend()
plt.show()
