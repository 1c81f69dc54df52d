"""Shared fixtures: small data sets and a tiny, fast flow configuration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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


@pytest.fixture(autouse=True, scope="session")
def _single_torch_thread():
    """The raw-torch tests run tiny tensors, for which intra-op threads only add synchronisation
    overhead (and on a busy 2-core machine make each kernel ~10x slower); the estimators limit
    their own threads through ``n_jobs``."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


def pytest_report_header(config) -> str:
    """The versions under test, at the top of every run (CI runs the newest and the oldest)."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("torch", "numpy", "scipy", "scikit-learn", "pandas", "numba", "imbalanced-learn"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return "skflow under " + ", ".join(found)
