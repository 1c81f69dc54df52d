"""Pure-PyTorch normalizing flows (no scikit-learn import): usable on their own."""

from .base import ElementMap, Transform
from .coupling import ELEMENT_MAPS, AdditiveMap, AffineMap, Coupling, SplineMap
from .dropout import BitDropout
from .flow import COUPLINGS, MIXINGS, Flow, build_flow, flow_from_arrays, flow_to_arrays
from .mixing import MIXING_LAYERS, LULinear, Permutation
from .nets import Conditioner
from .normalisation import ActNorm, ContextAffine
from .splines import (
    affine_rational_quadratic_spline,
    rational_quadratic_spline,
    rational_quadratic_spline_params_first,
)
from .tails import SinhArcsinh

__all__ = [
    "COUPLINGS",
    "ELEMENT_MAPS",
    "MIXINGS",
    "MIXING_LAYERS",
    "ActNorm",
    "AdditiveMap",
    "AffineMap",
    "BitDropout",
    "Conditioner",
    "ContextAffine",
    "Coupling",
    "ElementMap",
    "Flow",
    "LULinear",
    "Permutation",
    "SinhArcsinh",
    "SplineMap",
    "Transform",
    "affine_rational_quadratic_spline",
    "build_flow",
    "flow_from_arrays",
    "flow_to_arrays",
    "rational_quadratic_spline",
    "rational_quadratic_spline_params_first",
]
