"""Every flow test starts from the same global RNG state and leaves it as it was."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated_global_rng():
    """``nn.Linear`` draws its initial weights from the global RNG: make every test reproducible
    whatever ran before it, and leave the global state as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield
