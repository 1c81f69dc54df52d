"""Pure-PyTorch normalizing flows (no scikit-learn import): usable on their own."""

from .dropout import BitDropout
from .flow import COUPLINGS, MIXINGS, Flow, build_flow, flow_from_arrays, flow_to_arrays
from .nets import Conditioner
from .splines import (
    affine_rational_quadratic_spline,
    rational_quadratic_spline,
    rational_quadratic_spline_params_first,
)
from .transforms import (
    ActNorm,
    AdditiveMap,
    AffineMap,
    ContextAffine,
    Coupling,
    LULinear,
    Permutation,
    SinhArcsinh,
    SplineMap,
)

__all__ = [
    "COUPLINGS",
    "MIXINGS",
    "ActNorm",
    "AdditiveMap",
    "AffineMap",
    "BitDropout",
    "Conditioner",
    "ContextAffine",
    "Coupling",
    "Flow",
    "LULinear",
    "Permutation",
    "SinhArcsinh",
    "SplineMap",
    "affine_rational_quadratic_spline",
    "build_flow",
    "flow_from_arrays",
    "flow_to_arrays",
    "rational_quadratic_spline",
    "rational_quadratic_spline_params_first",
]
