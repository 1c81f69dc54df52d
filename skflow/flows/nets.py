"""Conditioner networks: map the untouched features (and an optional context) to parameters."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .dropout import BitDropout


class Conditioner(nn.Module):
    """A multilayer perceptron whose output layer starts at zero.

    Starting the output at zero makes every coupling layer begin as the identity map, so a
    freshly built flow is exactly its base distribution composed with ActNorm: training starts
    from a sane density however deep the stack is.

    Parameters
    ----------
    in_features : int
        Number of input features (may be 0: the output is then a learned constant).
    out_features : int
        Number of parameters to produce per row.
    hidden_layer_sizes : sequence of int
        Widths of the hidden layers.
    context_features : int, default=0
        Width of an optional context vector concatenated to the input (conditional flows).
    dropout : float, default=0.0
        Dropout probability after each hidden activation (training only); regularises the
        conditioners, which over-fit quickly on a few thousand rows.
    input_dropout : float, default=0.0
        Dropout probability on the input features (not on the context) during training, so a
        conditioner cannot lean on any single feature of the kept half; what it then learns
        from noise directions of the data is averaged out.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_layer_sizes: Sequence[int] = (64, 64),
        context_features: int = 0,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_features = int(in_features)
        self.input_dropout = (
            BitDropout(input_dropout) if input_dropout > 0 and self.in_features else None
        )
        self.context_features = int(context_features)
        self.out_features = int(out_features)
        n_in = self.in_features + self.context_features
        # The widest hidden layer, for estimates of the working memory per row.
        self.widest_hidden = max((int(h) for h in hidden_layer_sizes), default=0)
        if n_in == 0:
            # Nothing to condition on (one feature, no context): parameters are plain weights.
            self.net = None
            self.constant = nn.Parameter(torch.zeros(self.out_features))
            return
        layers: list[nn.Module] = []
        width = n_in
        for hidden in hidden_layer_sizes:
            layers.append(nn.Linear(width, int(hidden)))
            # Dropout before the ReLU: the same values and gradients (the mask's scale is
            # positive, so the two commute), but under torch.compile the ReLU's backward then
            # reads its own saved output instead of a saved boolean mask, which inductor's
            # CPU loops store and load slowly (a d = 2 step: 8.4 -> 5.4 ms).
            if dropout > 0:
                layers.append(BitDropout(dropout))
            layers.append(nn.ReLU(inplace=True))
            width = int(hidden)
        last = nn.Linear(width, self.out_features)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        layers.append(last)
        self.net = nn.Sequential(*layers)
        self.constant = None

    def forward(
        self,
        inputs: torch.Tensor,
        context: torch.Tensor | None = None,
        *,
        transposed: bool = False,
    ) -> torch.Tensor:
        """Return parameters of shape ``(n_rows, out_features)``.

        With ``transposed=True`` the result is ``(out_features, n_rows)`` and contiguous, computed
        by the output layer as ``W @ h.T`` (the matrix product reads the transpose for free):
        element-wise maps then get each parameter as a contiguous slab, which is the layout the
        spline kernels run fastest in.
        """
        if self.net is None:
            if transposed:
                return self.constant.unsqueeze(1).expand(-1, inputs.shape[0])
            return self.constant.expand(inputs.shape[0], -1)
        if self.input_dropout is not None:
            inputs = self.input_dropout(inputs)
        if self.context_features:
            if context is None:
                raise ValueError("this conditioner was built for a context, but none was given")
            inputs = torch.cat([inputs, context], dim=-1) if self.in_features else context
        if not transposed:
            return self.net(inputs)
        *hidden, last = self.net
        for layer in hidden:
            inputs = layer(inputs)
        return torch.addmm(last.bias.unsqueeze(1), last.weight, inputs.T)
