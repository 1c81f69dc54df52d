"""Dropout whose mask is cut from raw random bits, for the conditioners' hidden layers.

On a CPU, ``torch.nn.functional.dropout`` draws one Bernoulli variate per element through the
floating-point sampler: on one thread it took 280 us forward for a 512 x 64 activation, about
as long as the hidden layer's matrix product, and with two hidden layers in each of the
couplings it was a third of a small flow's training step. Here one 64-bit draw from the
generator gives the random bits for four elements (16 bits each) and an integer comparison
turns them into the mask: 96 us forward and 154 us forward + backward against 280 and 318.
Elsewhere (CUDA, where dropout is one fused kernel already) torch's own dropout runs.

The drop probability is rounded to a multiple of 2**-16 (at most 7.7e-6 away from the one
asked for) and the kept elements are scaled by the reciprocal of the rounded keep probability,
so the layer stays unbiased: ``E[output] = input`` exactly.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from ._compiling import is_compiling

# The mask compares uniform 16-bit integers, in [-2**15, 2**15), with a threshold.
_LEVELS = 1 << 16
_LOWEST = -(1 << 15)


# The generator the masks of this thread draw from (see ``mask_generator``).
_thread = threading.local()


@contextmanager
def mask_generator(generator: torch.Generator | None) -> Iterator[None]:
    """Within the block, CPU dropout masks made in this thread draw from ``generator``.

    A fit gives its own seeded generator: seeding torch's global one instead made fits that
    run in threads (joblib's threading backend, dask with processes=False) reseed it under
    each other, so equal seeds gave different models. ``None`` is the global generator.
    """
    previous = getattr(_thread, "generator", None)
    _thread.generator = generator
    try:
        yield
    finally:
        _thread.generator = previous


def _scaled_keep_mask(like: torch.Tensor, threshold: int, scale: float) -> torch.Tensor:
    """``scale`` where an element is kept and 0 where it is dropped, shaped like ``like``."""
    n = like.numel()
    # Over the full int64 range every byte of the draw is uniform (``random_()`` without
    # bounds leaves the sign bit at zero, which would bias one 16-bit word in four).
    generator = getattr(_thread, "generator", None)
    bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), None, generator=generator)
    keep = bits.view(torch.int16)[:n].view(like.shape) >= threshold
    return keep.to(like.dtype) * scale


# The same mask as an opaque operator for ``torch.compile``. Traced as ordinary tensor code,
# the int16 view of the random words made inductor write a scalar loop, and its own random
# numbers (a Philox draw per element) made a compiled d = 2 training step slower than the
# eager one. As an operator it runs the eager kernels above. The compiler merges calls whose
# arguments are the same graph nodes (its list of random operators to leave alone is fixed),
# so each call is given a fresh ``empty_like`` tensor, which it never merges; the
# seeded-random tag keeps the operator from being re-run in the backward pass.
_custom_op = getattr(torch.library, "custom_op", None)
# Whether compiled graphs get the mask as an operator of their own (see below).
MASK_IN_GRAPH = _custom_op is not None and "tags" in inspect.signature(_custom_op).parameters


def _register_mask_operator():
    """The operator for compiled graphs.

    torch builds before 2.4 have no ``custom_op``, and up to 2.7 it takes no ``tags``,
    without which the compiler may recompute the mask for the backward pass (a fresh draw:
    wrong gradients); passing them there failed at import. On those builds the plain
    function runs outside the graph (a graph break on each side). Traced, it would not even
    compile on torch 2.2, whose graph code generator writes its ``random_`` overload as
    ``aten.random.from``, a syntax error.
    """
    if not MASK_IN_GRAPH:
        return torch._dynamo.disable(_scaled_keep_mask)

    @torch.library.custom_op(
        "skflow::scaled_keep_mask", mutates_args=(), tags=(torch.Tag.nondeterministic_seeded,)
    )
    def scaled_keep_mask(like: torch.Tensor, threshold: int, scale: float) -> torch.Tensor:
        return _scaled_keep_mask(like, threshold, scale)

    @scaled_keep_mask.register_fake
    def _(like: torch.Tensor, threshold: int, scale: float) -> torch.Tensor:
        return torch.empty_like(like)

    return scaled_keep_mask


_scaled_keep_mask_op = _register_mask_operator()


class BitDropout(nn.Module):
    """Inverted dropout with a mask made from 16 random bits per element.

    Drop-in for :class:`torch.nn.Dropout` (training mode only; the identity in evaluation
    mode). On the CPU it draws from the generator of ``mask_generator`` if one is set for
    the thread, else from the global one, like torch's dropout (which runs elsewhere), so
    ``torch.manual_seed`` makes it reproducible.

    Parameters
    ----------
    p : float
        Probability of zeroing an element, in [0, 1).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p!r}")
        self.p = float(p)
        dropped_levels = round(self.p * _LEVELS)
        # Elements whose 16-bit draw is at least this are kept.
        self.threshold = _LOWEST + dropped_levels
        self.scale = _LEVELS / (_LEVELS - dropped_levels)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == _LOWEST:
            return inputs
        if inputs.device.type != "cpu":
            return F.dropout(inputs, self.p, training=True)
        if is_compiling():
            mask = _scaled_keep_mask_op(torch.empty_like(inputs), self.threshold, self.scale)
        else:
            # The plain function: it skips the operator's few microseconds of dispatch. The
            # mask depends on the input's shape only, so no gradient flows into it.
            mask = _scaled_keep_mask(inputs.detach(), self.threshold, self.scale)
        return inputs * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"
