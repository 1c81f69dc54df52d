"""
Gaussianizing features in a Pipeline
====================================

:class:`~skflow.FlowDensity` is also a transformer: ``transform`` maps each row to the latent
space, where the fitted model is a standard normal distribution, and ``inverse_transform`` maps
back exactly. That makes it a *joint* Gaussianizer that fits in a
:class:`~sklearn.pipeline.Pipeline`.

A per-column transform such as :class:`~sklearn.preprocessing.QuantileTransformer` makes every
marginal Gaussian but leaves the dependence between columns alone, so a curved cloud stays
curved (middle panel). Adding a flow after it removes the dependence as well (right panel):
the points fill a round standard-normal cloud, and the circles of radius 1, 2 and 3 hold about
39%, 86% and 99% of them, as they should for two independent N(0, 1) coordinates.

Because every step can be inverted, the same circles can be mapped back to the data (left
panel): they become the model's 39%, 86% and 99% probability regions.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import chi2
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import QuantileTransformer

from skflow import FlowDensity

# The small max_iter below keeps the example fast; silence the warning that says so.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

rng = np.random.default_rng(0)
a = rng.normal(size=3000)
X = np.column_stack([a, 0.6 * a**2 + 0.25 * rng.normal(size=3000) * np.exp(0.3 * a)])

pipe = make_pipeline(
    QuantileTransformer(output_distribution="normal", n_quantiles=500, random_state=0),
    FlowDensity(n_transforms=4, hidden_layer_sizes=(64, 64), max_iter=40, random_state=0),
)
pipe.fit(X)
X_marginal = pipe[0].transform(X)  # after the first step only
Z = pipe.transform(X)  # after both steps

# %%
# Draw the three stages, with latent circles of radius 1, 2, 3 mapped back through the pipeline.

angles = np.linspace(0, 2 * np.pi, 400)
radii = [1, 2, 3]
circles = [np.column_stack([r * np.cos(angles), r * np.sin(angles)]) for r in radii]
color = X[:, 0]  # colour every row by its original x1, to follow it through the maps

fig, axes = plt.subplots(1, 3, figsize=(14, 4.6), layout="constrained")
panels = [
    (X, "data", "$x_1$", "$x_2$"),
    (X_marginal, "QuantileTransformer(normal)", "$u_1$", "$u_2$"),
    (Z, "QuantileTransformer + FlowDensity", "$z_1$", "$z_2$"),
]
for ax, (points, title, xlabel, ylabel) in zip(axes, panels, strict=True):
    ax.scatter(*points.T, c=color, cmap="coolwarm", s=3, alpha=0.6)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
for r, circle in zip(radii, circles, strict=True):
    inside = np.mean(np.hypot(*Z.T) < r)
    label = f"r = {r}: {inside:.0%} inside (expected {chi2.cdf(r**2, df=2):.0%})"
    axes[2].plot(*circle.T, color="black", lw=1, label=label)
    axes[0].plot(*pipe.inverse_transform(circle).T, color="black", lw=1)
axes[2].set_aspect("equal")
axes[1].set_aspect("equal")
axes[2].legend(loc="upper right", fontsize=8)
axes[0].set_title("data, with the latent circles mapped back")
plt.show()
