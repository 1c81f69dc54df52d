"""skflow: normalizing flows for scikit-learn."""

from ._density import FlowDensity
from ._engine.training import EpochInfo
from ._outlier import FlowOutlierDetector
from ._oversampler import FlowOverSampler
from ._sampler import FlowSampler

__version__ = "0.1.0"

__all__ = [
    "EpochInfo",
    "FlowDensity",
    "FlowOutlierDetector",
    "FlowOverSampler",
    "FlowSampler",
    "__version__",
]
