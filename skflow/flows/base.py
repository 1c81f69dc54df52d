"""What a flow layer is: the contract every layer of :class:`~skflow.flows.Flow` keeps.

A layer is a :class:`Transform`: an ``nn.Module`` with

* ``forward(x, context=None) -> (z, logabsdet)``: the normalizing direction (data -> latent),
  ``logabsdet`` of shape ``(n_rows,)``, the log-absolute-determinant of the Jacobian of this
  layer at each row;
* ``inverse(z, context=None) -> x``: the exact inverse of ``forward`` (sampling);
* ``working_floats_per_row() -> int``: how many floats per row its widest intermediate needs
  when it runs without autograd (0 for layers whose intermediates are a few copies of the row);
  chunked scoring divides its memory budget by this.

``context`` is the conditioning vector of conditional flows (``None`` otherwise); a layer that
does not use it ignores it. A layer that initialises from data holds a boolean buffer
``initialized`` and, in ``forward``, calls its own ``_initialize`` on the first training-mode
batch while :func:`awaiting_init` says so; :meth:`Flow.initialize` runs that pass once before
training, and :meth:`Flow.remember_initialized` reads every such flag once afterwards.

Coupling layers transform half of the features with an element-wise map whose parameters a
network computes from the other half; an element map is an :class:`ElementMap`.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn


class Transform(nn.Module):
    """Base class of the invertible layers (see the module docstring for the contract)."""

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def working_floats_per_row(self) -> int:
        """Floats per row of the widest intermediate without autograd (see module docstring)."""
        return 0


class ElementMap(Protocol):
    """An element-wise invertible map whose ``n_params`` parameters per transformed value come
    from a coupling's conditioner, laid out ``(n_params, n_values)`` (one contiguous slab per
    parameter).

    ``forward(x, p) -> (y, logabsdet per value)`` and ``inverse(y, p) -> x``.
    """

    n_params: int

    def forward(self, x: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def inverse(self, z: torch.Tensor, p: torch.Tensor) -> torch.Tensor: ...


def awaiting_init(layer: nn.Module) -> bool:
    """Whether a data-initialised layer, in training mode, has yet to see its first batch.

    Reading the ``initialized`` buffer costs a device-to-host sync on a GPU; once it has been
    read as true the answer is remembered on the module, so steady-state training never syncs.
    """
    if not layer.training or getattr(layer, "_init_seen", False):
        return False
    if bool(layer.initialized):
        layer._init_seen = True
        return False
    return True


def soft_clamp(values: torch.Tensor, limit: float) -> torch.Tensor:
    """Smoothly bound ``values`` to ``(-limit, limit)``; close to the identity near zero."""
    return limit * torch.tanh(values / limit)
