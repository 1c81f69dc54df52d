"""Whether torch.compile is tracing the code that is running now."""

from __future__ import annotations

import torch

# ``torch.compiler.is_compiling`` is new in torch 2.3; older builds only have dynamo's.
is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None) or (
    lambda: torch._dynamo.is_compiling()
)
