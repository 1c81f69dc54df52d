"""Held-out log-likelihood on heavy-tailed data: does the sinh-arcsinh tail layer do its job?

3-D Student-t data with 2 degrees of freedom (infinite variance): 3,000 rows to fit, 1,000 held
out, default ``FlowDensity`` with ``max_iter=60``, two seeds. Prints the held-out mean
log-likelihood beside the true density's and the fitted tail parameters ``delta`` (1 means the
layer does nothing; heavy tails want it well below 1). With torch 2.14's clamp gradient the layer
never moved from delta = 1 (issue 32). Example: ``python benchmarks/heavy_tails.py`` (about a
minute).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from skflow import FlowDensity  # noqa: E402
from skflow.flows import SinhArcsinh  # noqa: E402


def main() -> int:
    X = np.random.default_rng(0).standard_t(2.0, size=(4000, 3))
    train, test = X[:3000], X[3000:]
    true = stats.t(2.0).logpdf(test).sum(axis=1).mean()
    print(f"torch {torch.__version__}; true held-out log-likelihood {true:.4f}")
    for seed in (0, 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = FlowDensity(random_state=seed, max_iter=60).fit(train)
        (layer,) = [m for m in est.flow_.modules() if isinstance(m, SinhArcsinh)]
        delta = np.round(layer._delta().detach().numpy(), 3).tolist()
        print(f"seed {seed}: held-out {est.score(test):.4f}, epochs {est.n_iter_}, delta {delta}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
