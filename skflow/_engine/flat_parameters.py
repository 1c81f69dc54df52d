"""One contiguous buffer for all of a module's parameters, and one for their gradients.

A coupling flow has about 50 parameter tensors, most of them small. Every per-step chore that
visits each of them (zeroing the gradients, clipping their norm, the optimiser update, the
parameter average, the per-epoch snapshot) then costs about 50 kernel launches, and on a CPU
with a small flow those launches, not arithmetic, are what a training step spends its time on.
Laying the parameters out as views of one flat tensor, with gradients that autograd
accumulates in place into views of a second one, makes each chore one kernel on one tensor.

The layout lasts for one training run: :meth:`FlatParameters.release` gives every parameter
its own storage again, so that a fitted model pickles, copies and loads like any other.
"""

from __future__ import annotations

import torch
from torch import nn


class FlatParameters:
    """Make the trainable parameters of ``module`` views of one flat tensor while training.

    Parameters
    ----------
    module : torch.nn.Module
        Its parameters must share one dtype and one device (a flow built by
        :func:`~skflow.flows.build_flow` does).

    Attributes
    ----------
    parameter : torch.nn.Parameter
        The flat tensor, with ``grad`` the flat gradient: hand it to the optimiser instead of the
        module's parameters. Each of the module's trainable parameters is a view of it.
    """

    def __init__(self, module: nn.Module) -> None:
        self._parameters = [p for p in module.parameters() if p.requires_grad]
        if not self._parameters:
            raise ValueError("the module has no trainable parameters")
        first = self._parameters[0]
        if any(p.dtype != first.dtype or p.device != first.device for p in self._parameters):
            raise ValueError("all parameters must share one dtype and one device to be flattened")
        total = sum(p.numel() for p in self._parameters)
        values = torch.empty(total, dtype=first.dtype, device=first.device)
        grad = torch.zeros_like(values)
        offset = 0
        with torch.no_grad():
            for p in self._parameters:
                size = p.numel()
                view = values[offset : offset + size].view_as(p)
                view.copy_(p)
                p.data = view
                # A defined gradient is accumulated into in place (outside create_graph), so
                # after every backward pass the flat tensor holds the whole gradient.
                p.grad = grad[offset : offset + size].view_as(p)
                offset += size
        self.parameter = nn.Parameter(values)
        self.parameter.grad = grad

    @property
    def values(self) -> torch.Tensor:
        """The flat parameter values (a plain tensor sharing the parameters' storage)."""
        return self.parameter.detach()

    @property
    def grad(self) -> torch.Tensor:
        """The flat gradient."""
        return self.parameter.grad

    def zero_grad(self) -> None:
        """Zero every gradient in one kernel (the views stay in place for the next backward)."""
        self.grad.zero_()

    @torch.no_grad()
    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Scale the gradient down to at most ``max_norm`` in Euclidean norm; return the norm.

        Like :func:`torch.nn.utils.clip_grad_norm_` over all parameters, without a host sync.
        """
        norm = torch.linalg.vector_norm(self.grad)
        self.grad.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))
        return norm

    def all_finite(self) -> bool:
        """Whether every parameter value is finite (one reduction, one host sync)."""
        return bool(torch.isfinite(self.values).all())

    def state(self) -> torch.Tensor:
        """A copy of the parameter values (buffers are not included: training leaves them)."""
        return self.values.clone()

    @torch.no_grad()
    def load_state(self, state: torch.Tensor) -> None:
        """Write values from :meth:`state` back into the parameters."""
        self.values.copy_(state)

    def release(self) -> None:
        """Give every parameter its own storage again and drop the gradients."""
        with torch.no_grad():
            for p in self._parameters:
                p.data = p.data.clone()
                p.grad = None
        self.parameter.grad = None
