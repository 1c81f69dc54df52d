"""A fitted estimator's state as plain Python and numpy: pickle it, or save it with skops.

``skops.io`` refuses torch objects ("Cannot directly construct TensorBase"), and a pickle of
them can only be loaded by running whatever code it names. So the state an estimator hands to
``pickle`` and ``skops`` holds no torch object: the flow travels as its ``build_flow``
arguments and its weights as numpy arrays, the device as its name, and a warm start's saved
optimisation state with its tensors as arrays. Loading rebuilds the torch objects, so scores
are identical to the bit.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch

from ..flows import flow_from_arrays, flow_to_arrays
from .device import cpu_copy, map_tensors


def plain_state(state: dict) -> dict:
    """``state`` (an estimator's ``__dict__`` copy) with its torch objects made plain."""
    state = dict(state)
    if "flow_" in state:
        saved = flow_to_arrays(state["flow_"])
        # A flow not built by build_flow has no recipe: it is pickled as a module, moved to
        # the CPU so that a model trained on a GPU loads on a machine without one.
        state["flow_"] = saved if saved is not None else cpu_copy(state["flow_"])
    if isinstance(state.get("device_"), torch.device):
        state["device_"] = str(state["device_"])
    history = state.get("_history_")
    if history is not None and history.resume is not None:
        history = copy.copy(history)
        history.resume = dataclasses.replace(
            history.resume, **map_tensors(_fields(history.resume), _to_array)
        )
        state["_history_"] = history
    return state


def restored_state(state: dict) -> dict:
    """The inverse of :func:`plain_state` (states pickled with torch objects pass unchanged)."""
    state = dict(state)
    if isinstance(state.get("flow_"), dict):
        state["flow_"] = flow_from_arrays(state["flow_"])
    if isinstance(state.get("device_"), str):
        state["device_"] = torch.device(state["device_"])
    history = state.get("_history_")
    if history is not None and history.resume is not None:
        history.resume = dataclasses.replace(
            history.resume, **map_tensors(_fields(history.resume), _to_tensor)
        )
    return state


def _fields(instance) -> dict:
    return {field.name: getattr(instance, field.name) for field in dataclasses.fields(instance)}


def _to_array(value):
    return value.detach().to("cpu", copy=True).numpy() if isinstance(value, torch.Tensor) else value


def _to_tensor(value):
    # Everything array-like in the saved optimisation state was a tensor.
    return torch.from_numpy(np.array(value)) if isinstance(value, np.ndarray) else value
