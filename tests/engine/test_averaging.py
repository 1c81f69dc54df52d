"""Parameter averaging: the arithmetic, the swap in and out, and that fits return the average."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import skflow._engine.training as training
from skflow import FlowDensity
from skflow._engine.averaging import ParameterAverage


def _module(value: float) -> torch.nn.Linear:
    layer = torch.nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.fill_(value)
        layer.bias.fill_(value)
    return layer


def _set(layer: torch.nn.Linear, value: float) -> None:
    with torch.no_grad():
        layer.weight.fill_(value)
        layer.bias.fill_(value)


def test_polynomial_decay_weights_until_the_span_then_exponential():
    layer = _module(0.0)
    average = ParameterAverage(layer, span=1000)
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    for value in values:
        _set(layer, value)
        average.update()
    # Iterate k (k = 0 is the starting point, 0.0) weighs in proportion to (k+1)(k+2)(k+3).
    iterates = np.arange(0, 6)
    cubic = iterates + 1.0
    cubic = cubic * (iterates + 2) * (iterates + 3)
    expected = float(np.sum(cubic * np.array([0.0, *values])) / cubic.sum())
    assert expected == pytest.approx(4.0)  # far closer to the last value than the mean 2.5
    with average.applied():
        assert torch.allclose(layer.weight, torch.full_like(layer.weight, expected))
    layer = _module(0.0)
    short = ParameterAverage(layer, span=2)
    for _ in range(40):
        _set(layer, 4.0)
        short.update()
    with short.applied():
        # An exponential average with weight 1/2 forgets the start geometrically.
        assert torch.allclose(layer.bias, torch.full_like(layer.bias, 4.0), atol=1e-6)


def test_applied_swaps_in_the_average_and_restores_the_live_weights():
    layer = _module(0.0)
    average = ParameterAverage(layer, span=10)
    _set(layer, 2.0)
    average.update()  # average = 0.2 * 0 + 0.8 * 2
    with average.applied():
        assert torch.allclose(layer.weight, torch.full_like(layer.weight, 1.6))
    assert torch.allclose(layer.weight, torch.full_like(layer.weight, 2.0))
    with pytest.raises(RuntimeError), average.applied():
        raise RuntimeError("the live weights must come back even on an error")
    assert torch.allclose(layer.weight, torch.full_like(layer.weight, 2.0))


def test_state_round_trip():
    layer = _module(0.0)
    average = ParameterAverage(layer, span=10)
    saved = average.state()
    _set(layer, 8.0)
    average.update()
    average.load_state(saved)
    _set(layer, 2.0)
    average.update()  # counts as the first update again: 0.2 * 0 + 0.8 * 2
    with average.applied():
        assert torch.allclose(layer.bias, torch.full_like(layer.bias, 1.6))


@pytest.mark.parametrize("early_stopping", [False, True])
def test_fit_returns_the_averaged_parameters(blobs_2d, monkeypatch, early_stopping):
    """The fitted flow holds an average (with early stopping, the best epoch's average, or the
    starting point), never the last step's live weights."""
    averages: list[ParameterAverage] = []

    class Recording(ParameterAverage):
        def __init__(self, module, span):
            super().__init__(module, span)
            self.live_after_last_step: list[torch.Tensor] = []
            self.evaluated = [[a.clone() for a in self._average]]  # the starting point
            averages.append(self)

        def update(self):
            super().update()
            self.live_after_last_step = [p.detach().clone() for p in self._live]

        def applied(self):
            self.evaluated.append([a.clone() for a in self._average])
            return super().applied()

    monkeypatch.setattr(training, "ParameterAverage", Recording)
    est = FlowDensity(
        n_transforms=2,
        hidden_layer_sizes=(16,),
        max_iter=4,
        n_iter_no_change=50,
        early_stopping=early_stopping,
        random_state=0,
    )
    with pytest.warns(Warning, match="max_iter"):
        est.fit(blobs_2d)
    (average,) = averages
    # Compared as one flat vector: training lays the parameters out in one tensor.
    fitted = torch.cat([p.detach().flatten() for p in est.flow_.parameters()])

    def flat(tensors):
        return torch.cat([t.flatten() for t in tensors])

    candidates = average.evaluated if early_stopping else [average._average]
    assert any(torch.equal(fitted, flat(candidate)) for candidate in candidates)
    assert not torch.equal(fitted, flat(average.live_after_last_step))
    assert np.isfinite(est.score_samples(blobs_2d)).all()
