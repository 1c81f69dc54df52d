"""skflow: normalizing flows for scikit-learn."""

from ._density import FlowDensity

__version__ = "0.1.0"

__all__ = ["FlowDensity", "__version__"]
