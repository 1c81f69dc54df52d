"""Resolving the ``device`` parameter and moving fitted flows between devices."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import numpy as np
import torch

_CUDA_PATTERN = re.compile(r"^cuda(:\d+)?$")


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn the user's ``device`` into a usable :class:`torch.device`.

    ``"auto"`` picks the first GPU when CUDA is available and the CPU otherwise. Asking for CUDA
    on a machine without it is an error here, at ``fit`` time, rather than a crash later.

    Raises
    ------
    ValueError
        If the device string is not understood or the requested GPU is not available.
    """
    if isinstance(device, str):
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if device not in ("cpu", "cpu:0") and not _CUDA_PATTERN.match(device):
            raise ValueError(
                f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}"
            )
        device = torch.device(device)
    if device.type == "cpu":
        return torch.device("cpu")  # "cpu:0" is the same device; one spelling for comparisons
    if device.type != "cuda":
        raise ValueError(f"unsupported device type {device.type!r}; use 'cpu' or 'cuda'")
    if not torch.cuda.is_available():
        raise ValueError(
            f"device={str(device)!r} was requested but CUDA is not available on this machine "
            "(torch.cuda.is_available() is False); use device='cpu' or device='auto'"
        )
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(
            f"device={str(device)!r} was requested but only {torch.cuda.device_count()} "
            "CUDA device(s) are visible"
        )
    return device


def usable_device(trained_on: torch.device) -> torch.device:
    """The device to run a fitted model on: where it was trained if still there, else the CPU."""
    if trained_on.type == "cuda" and torch.cuda.is_available():
        index = trained_on.index or 0
        if index < torch.cuda.device_count():
            return trained_on
    return torch.device("cpu")


def is_on(module: torch.nn.Module, device: torch.device) -> bool:
    """Whether ``module``'s parameters already live on ``device``.

    ``Module.to`` walks every submodule and tensor even when nothing moves (about 0.3 ms for a
    4-block flow, 14% of a one-row ``score_samples``), so callers check this first. ``"cuda"``
    without an index matches any GPU the parameters are on.
    """
    reference = next(module.parameters(), None)
    if reference is None:
        return True
    here = reference.device
    return here.type == device.type and (device.index is None or here.index == device.index)


def cpu_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` whose tensors all live on the CPU; the original is left untouched."""
    if all(t.device.type == "cpu" for t in module.state_dict().values()):
        return module
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    return torch.load(buffer, map_location="cpu", weights_only=False)


def seed_cuda_generators(
    device: torch.device, seed: int | None = None, state: torch.Tensor | None = None
) -> torch.Tensor:
    """Seed the global generators (CUDA dropout draws from the device's), then restore the
    device's ``state`` if given; return that generator's state. Called inside ``fork_rng``,
    so the user's streams are untouched."""
    with torch.cuda.device(device):
        if seed is not None:
            torch.default_generator.manual_seed(seed)
            torch.cuda.manual_seed(seed)
        if state is not None:
            torch.cuda.set_rng_state(state)
        return torch.cuda.get_rng_state()


def map_tensors(value, convert: Callable):
    """``value`` with ``convert`` applied to every tensor and numpy array in it, through dicts,
    lists and tuples (an optimiser's state, a saved training state)."""
    if isinstance(value, torch.Tensor | np.ndarray):
        return convert(value)
    if isinstance(value, dict):
        return {key: map_tensors(item, convert) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(map_tensors(item, convert) for item in value)
    return value


def cpu_tensors(value):
    """``value`` with every tensor in it copied to the CPU (arrays and the rest as they are)."""
    return map_tensors(
        value, lambda item: item.detach().to("cpu", copy=True) if torch.is_tensor(item) else item
    )
