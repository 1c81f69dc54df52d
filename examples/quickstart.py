"""
Quick start: fit, score and sample with FlowDensity
===================================================

A normalizing flow learns the density of a two-moons data set: we fit it, compare its held-out
log-likelihood with a Gaussian mixture's, draw new rows and map data to the Gaussian latent space.
"""

import numpy as np
from sklearn.datasets import make_moons
from sklearn.mixture import GaussianMixture

from skflow import FlowDensity

X, _ = make_moons(n_samples=3000, noise=0.08, random_state=0)
X_train, X_test = X[:2000], X[2000:]

flow = FlowDensity(random_state=0).fit(X_train)
gmm = GaussianMixture(n_components=8, random_state=0).fit(X_train)

print(f"epochs trained          : {flow.n_iter_}")
print(f"held-out log-likelihood : flow {flow.score(X_test):.3f}")
print(f"                          GMM(8) {gmm.score(X_test):.3f}")

new_rows = flow.sample(5, random_state=0)
print("five samples:\n", np.round(new_rows, 3))

Z = flow.transform(X_test)
print(f"latent mean {Z.mean(0).round(2)}, latent std {Z.std(0).round(2)} (target: 0 and 1)")
print(f"round-trip error        : {np.abs(flow.inverse_transform(Z) - X_test).max():.1e}")
