"""A normalizing flow: a stack of invertible layers on top of a standard-normal base."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .base import Transform, awaiting_init
from .coupling import ELEMENT_MAPS, Coupling
from .mixing import MIXING_LAYERS
from .normalisation import ActNorm, ContextAffine
from .tails import SinhArcsinh

# The names the ``coupling`` and ``mixing`` parameters take (see the registries).
COUPLINGS = tuple(ELEMENT_MAPS)
MIXINGS = tuple(MIXING_LAYERS)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class Flow(nn.Module):
    """Composition of invertible layers with a standard-normal base density.

    Parameters
    ----------
    transforms : sequence of Transform
        Layers (see :mod:`skflow.flows.base` for what a layer implements), applied in order
        in the normalizing (data -> latent) direction.
    features : int
        Dimension of the data.
    """

    def __init__(self, transforms: Sequence[Transform], features: int) -> None:
        super().__init__()
        others = [type(layer).__name__ for layer in transforms if not isinstance(layer, Transform)]
        if others:
            raise TypeError(
                f"Flow layers must be skflow.flows.Transform subclasses (forward -> (z, "
                f"logabsdet), inverse, working_floats_per_row: see skflow.flows.base); got "
                f"{', '.join(others)}"
            )
        self.transforms = nn.ModuleList(transforms)
        self.features = int(features)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):
        """Map data to latent space; return ``(z, logabsdet)``."""
        logdet = x.new_zeros(x.shape[0])
        for layer in self.transforms:
            x, ld = layer(x, context)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Map latent points back to data space."""
        for layer in reversed(self.transforms):
            z = layer.inverse(z, context)
        return z

    @staticmethod
    def base_log_prob(z: torch.Tensor) -> torch.Tensor:
        """Log-density of the standard-normal base, summed over features."""
        return -0.5 * z.square().sum(dim=1) - z.shape[1] * _HALF_LOG_2PI

    def log_prob(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Exact ``log p(x)`` per row, by the change of variables formula."""
        z, logdet = self.forward(x, context)
        return self.base_log_prob(z) + logdet

    def sample(
        self,
        n_samples: int,
        context: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Draw ``n_samples`` rows (one per context row when a context is given)."""
        ref = next(self.parameters())
        z = torch.randn(
            n_samples, self.features, generator=generator, device=ref.device, dtype=ref.dtype
        )
        return self.inverse(z, context)

    def working_bytes_per_row(self, dtype: torch.dtype = torch.float32) -> int:
        """A generous estimate of the memory one row needs while the flow runs without autograd.

        Layers run one after another and free their intermediates, so the widest layer sets
        the peak; ``16 * features`` values cover the running output and log-determinant.
        Evaluation code divides its memory budget by this to choose how many rows to process
        at once.
        """
        widest = max((layer.working_floats_per_row() for layer in self.transforms), default=0)
        itemsize = torch.empty((), dtype=dtype).element_size()
        return itemsize * (widest + 16 * self.features)

    @torch.no_grad()
    def initialize(self, x: torch.Tensor, context: torch.Tensor | None = None) -> None:
        """Run one forward pass in training mode so every ActNorm initialises from data."""
        was_training = self.training
        self.train()
        self.forward(x, context)
        self.train(was_training)

    def remember_initialized(self) -> None:
        """Read every data-initialised layer's ``initialized`` flag now, once.

        Each layer remembers a true flag on itself, so that later forward passes skip the
        check: the check reads a tensor as a Python bool, which costs a device sync and, under
        ``torch.compile``, splits the graph at every such layer.
        """
        for module in self.modules():
            if hasattr(module, "initialized"):
                awaiting_init(module)


def build_flow(
    features: int,
    coupling: str = "spline",
    n_transforms: int = 4,
    hidden_layer_sizes: Sequence[int] = (64, 64),
    n_bins: int = 8,
    tail_bound: float = 5.0,
    mixing: str = "lu",
    actnorm: bool = True,
    context_features: int = 0,
    scale_limit: float = 5.0,
    tail_transform: bool = True,
    dropout: float = 0.0,
    input_dropout: float = 0.0,
    generator: torch.Generator | None = None,
) -> Flow:
    """Build a coupling flow.

    Each of the ``n_transforms`` blocks is ``[ActNorm] -> mixing -> coupling``, the coupling's
    kept half alternating from block to block; the first block has the tail transform after its
    ActNorm. Mixing is skipped for a single feature. With a context, the stack starts (on the
    data side) with a :class:`ContextAffine` layer, so each condition gets its own location and
    scale before the shared layers.

    Parameters
    ----------
    features : int
        Dimension of the data.
    coupling : {"additive", "affine", "spline"}, default="spline"
        Element-wise map of the coupling layers.
    n_transforms : int, default=4
        Number of coupling layers.
    hidden_layer_sizes : sequence of int, default=(64, 64)
        Conditioner widths.
    n_bins : int, default=8
        Spline bins (spline coupling only).
    tail_bound : float, default=5.0
        Spline interval half-width ``B``; identity outside ``[-B, B]``.
    mixing : {"lu", "permutation", "none"}, default="lu"
        Feature mixing between couplings: learned LU-parameterised linear map, fixed random
        permutation, or nothing (the alternating mask alone). The first LU layer initialises
        to a whitening onto the principal components, interleaved between the coupling's two
        halves, the later ones to a whitening of their (then already white) input.
    actnorm : bool, default=True
        Put a data-initialised ActNorm at the start of each block.
    context_features : int, default=0
        Width of an optional context vector given to every conditioner.
    scale_limit : float, default=5.0
        Soft bound on each affine log-scale.
    tail_transform : bool, default=True
        Start (on the data side) with a learned per-feature sinh-arcsinh map, so heavy or light
        tails can be made Gaussian; see :class:`SinhArcsinh`.
    dropout : float, default=0.0
        Dropout in the conditioners' hidden layers (active in training mode only).
    input_dropout : float, default=0.0
        Dropout on the conditioners' input features (active in training mode only).
    generator : torch.Generator, optional
        Source of randomness for permutations and the initial rotations.

    Returns
    -------
    Flow
    """
    spec = {
        "features": int(features),
        "coupling": coupling,
        "n_transforms": int(n_transforms),
        "hidden_layer_sizes": [int(size) for size in hidden_layer_sizes],
        "n_bins": int(n_bins),
        "tail_bound": float(tail_bound),
        "mixing": mixing,
        "actnorm": bool(actnorm),
        "context_features": int(context_features),
        "scale_limit": float(scale_limit),
        "tail_transform": bool(tail_transform),
        "dropout": float(dropout),
        "input_dropout": float(input_dropout),
    }
    if coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}")
    if mixing not in MIXINGS:
        raise ValueError(f"mixing must be one of {MIXINGS}, got {mixing!r}")
    element_map = ELEMENT_MAPS[coupling](n_bins, tail_bound, scale_limit)
    make_mixing = MIXING_LAYERS[mixing] if features > 1 else None
    layers: list[Transform] = []
    if context_features:
        layers.append(ContextAffine(features, context_features, scale_limit))
    for index in range(n_transforms):
        if actnorm:
            layers.append(ActNorm(features))
        if index == 0 and tail_transform:
            layers.append(SinhArcsinh(features))
        if make_mixing is not None:
            layers.append(make_mixing(features, generator, index))
        layers.append(
            Coupling(
                features,
                element_map,
                hidden_layer_sizes,
                index % 2,
                context_features,
                dropout,
                input_dropout,
            )
        )
    if actnorm:
        layers.append(ActNorm(features))
    flow = Flow(layers, features)
    # Plain Python values: with the weights, all that is needed to rebuild the flow
    # (``flow_to_arrays``), so a fitted model can be saved without pickled torch objects.
    flow.build_spec = spec
    return flow


def flow_to_arrays(flow: Flow) -> dict | None:
    """The flow as plain data: its ``build_flow`` arguments and its weights as numpy arrays.

    Returns None for a flow not made by :func:`build_flow` (it has no recipe to rebuild from).
    :func:`flow_from_arrays` gives back an equal flow, in evaluation mode, on the CPU.
    """
    spec = getattr(flow, "build_spec", None)
    if spec is None:
        return None
    weights = {
        name: tensor.detach().to("cpu", copy=True).numpy()
        for name, tensor in flow.state_dict().items()
    }
    return {"build_spec": dict(spec), "weights": weights}


def flow_from_arrays(data: dict) -> Flow:
    """Rebuild a flow saved by :func:`flow_to_arrays`."""
    # Building draws initial weights (then overwritten) from torch's global generator; a fork
    # leaves the caller's random streams as they were.
    with torch.random.fork_rng(devices=[]):
        flow = build_flow(**data["build_spec"], generator=torch.Generator().manual_seed(0))
    flow.load_state_dict({name: torch.from_numpy(value) for name, value in data["weights"].items()})
    return flow.eval()
