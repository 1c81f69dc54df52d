"""
Reading the training curves
===========================

A fitted estimator keeps its history: ``loss_curve_`` is the training negative log-likelihood
after each epoch and ``validation_scores_`` the mean log-likelihood of the held-out validation
rows (``validation_fraction`` of the data, 10% by default). Both are in nats per row, in the
units of X, so the two curves can share one axis once the validation score is negated.

On small data a flow over-fits quickly: the training loss keeps falling while the validation
loss turns and rises, and the gap between the two curves is what the model has memorised about
its training rows. The left panel fits 500 rows without dropout, the right panel the same rows
with ``dropout=0.5`` (what the default ``dropout="auto"`` picks for three or more features and
up to 10,000 rows), which keeps the curves together but learns more slowly. (With dropout the
training loss is measured with dropout active, which is why it is not below the validation
loss.) Early stopping, on by default, keeps the weights of the best validation epoch, marked by
the dotted line; it is switched off here in effect (``n_iter_no_change`` equal to
``max_iter``) so that the whole curve is drawn.

Read the best epochs, not only the gaps: here the run with dropout also reaches the lower
validation loss (about 1.64 nats at its best epoch against 1.70 without, when this was
written), but only near the end of its 150 epochs, while the run without dropout is best
around epoch 40. Earlier versions of skflow, whose first mixing layer started as a random
rotation, had it the other way round on this cloud (1.63 against 1.76), so compare settings by
cross-validation, not by one curve: the jagged validation curve is what 150 validation rows
look like.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skflow import FlowDensity

# Both fits run to max_iter on purpose (the whole curve is drawn); silence the warning.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

rng = np.random.default_rng(0)
# A curved, heteroscedastic 3-D cloud: few rows for a flow of this size.
t = rng.normal(size=500)
X = np.column_stack(
    [t, 0.5 * t**2 + 0.3 * rng.normal(size=500), np.sin(2 * t) + 0.2 * rng.normal(size=500)]
)

settings = {"dropout=0 (over-fits)": 0.0, "dropout=0.5 (the default here)": 0.5}
fits = {}
for title, dropout in settings.items():
    fits[title] = FlowDensity(
        n_transforms=4,
        hidden_layer_sizes=(64, 64),
        dropout=dropout,
        validation_fraction=0.3,  # more validation rows: a smoother validation curve
        batch_size=50,
        max_iter=150,
        n_iter_no_change=150,  # let it run on past the best epoch, to see the whole curve
        learning_rate_init=3e-3,
        random_state=0,
    ).fit(X)

# %%
# Plot both curves per fit, as negative log-likelihoods (lower is better).

fig, axes = plt.subplots(1, 2, figsize=(12, 4.3), sharey=True, layout="constrained")
for ax, (title, est) in zip(axes, fits.items(), strict=True):
    epochs = np.arange(1, len(est.loss_curve_) + 1)
    ax.plot(epochs, est.loss_curve_, label="training loss (loss_curve_)")
    validation_loss = -np.asarray(est.validation_scores_)
    ax.plot(epochs, validation_loss, label="validation loss (-validation_scores_)")
    best = int(np.argmax(est.validation_scores_)) + 1
    ax.axvline(best, color="gray", ls=":", label=f"best validation epoch ({best})")
    ax.set(title=title, xlabel="epoch", ylabel="negative log-likelihood (nats per row)")
    ax.legend()
plt.show()
