"""Shared fixtures: small data sets and a tiny, fast flow configuration."""

from __future__ import annotations

import numpy as np
import pytest

# A flow small enough that a fit takes well under a second on two slow cores.
TINY = {"n_transforms": 2, "hidden_layer_sizes": (16,), "max_iter": 5, "n_iter_no_change": 3}


@pytest.fixture
def tiny_params() -> dict:
    return dict(TINY)


@pytest.fixture
def blobs_2d() -> np.ndarray:
    """Two well-separated 2-D Gaussian blobs, 600 rows."""
    rng = np.random.default_rng(0)
    return np.concatenate(
        [rng.normal([-2.0, 0.0], 0.5, size=(300, 2)), rng.normal([2.0, 1.0], 0.7, size=(300, 2))]
    )
