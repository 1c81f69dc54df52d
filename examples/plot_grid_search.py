"""
Tuning a flow with GridSearchCV
===============================

``FlowDensity.score`` is the mean log-likelihood of the rows it is given, so
:class:`~sklearn.model_selection.GridSearchCV` picks flow parameters by held-out likelihood
with no scoring function to write. Here a small grid compares the coupling family and the
number of coupling layers, with two-fold cross-validation, on 1,200 rows of 5-D data whose
columns are skewed, heavy-tailed and correlated (a correlated Gaussian pushed through
``sinh``).

Each point is the mean held-out log-likelihood of one setting (higher is better), the error
bar its spread over the two folds. For scale: the dashed line is a Gaussian mixture with its
number of components tuned the same way, and the dotted line is the exact log-likelihood of the
true density, which no model can beat on average. Real searches would use more rows and epochs,
and ``n_jobs`` to fit the settings in parallel.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV

from skflow import FlowDensity

# The small max_iter below keeps the example fast; silence the warning that says so.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

n_features, scale, shift = 5, 1.2, 0.5
rng = np.random.default_rng(0)
cov = 0.7 ** np.abs(np.subtract.outer(np.arange(n_features), np.arange(n_features)))
G = rng.multivariate_normal(np.zeros(n_features), cov, size=1200)
X = np.sinh(scale * G + shift)

# The true log-density, by the change of variables x = sinh(scale * g + shift).
log_jacobian = -np.log(scale) - 0.5 * np.log1p(X**2)
true_loglik = np.mean(multivariate_normal(cov=cov).logpdf(G) + log_jacobian.sum(axis=1))

flow = FlowDensity(hidden_layer_sizes=(64, 64), max_iter=25, random_state=0)
grid = {"coupling": ["affine", "spline"], "n_transforms": [2, 4]}
search = GridSearchCV(flow, grid, cv=2).fit(X)
print("best parameters:", search.best_params_)

gmm = GridSearchCV(GaussianMixture(random_state=0), {"n_components": [1, 2, 4, 8]}, cv=2).fit(X)

# %%
# One point per setting, with the references as horizontal lines.

results = search.cv_results_
labels = [
    f"{params['coupling']}\nn_transforms={params['n_transforms']}" for params in results["params"]
]
fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
ax.errorbar(
    np.arange(len(labels)),
    results["mean_test_score"],
    yerr=results["std_test_score"],
    fmt="o",
    ms=8,
    capsize=5,
    label="FlowDensity (mean ± std over folds)",
)
best = search.best_index_
ax.plot(best, results["mean_test_score"][best], "*", ms=18, color="tab:red", label="best setting")
n_components = gmm.best_params_["n_components"]
ax.axhline(gmm.best_score_, ls="--", color="gray", label=f"GaussianMixture({n_components})")
ax.axhline(true_loglik, ls=":", color="black", label="true density")
ax.set_xticks(np.arange(len(labels)), labels)
ax.set_xlim(-0.5, len(labels) - 0.5)
ax.set_xlabel("flow setting (coupling, number of coupling layers)")
ax.set_ylabel("held-out log-likelihood (nats per row)")
ax.set_title("GridSearchCV over FlowDensity parameters, cv=2")
ax.legend(loc="lower right", fontsize=9)
plt.show()
