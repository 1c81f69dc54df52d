"""One declaration of the shared flow parameters: signatures, defaults, constraints and docs of
the four estimators agree with ``BaseFlowEstimator.__init__``."""

from __future__ import annotations

import inspect
import re

import pytest

from skflow import FlowDensity, FlowOutlierDetector, FlowOverSampler, FlowSampler
from skflow._base import FLOW_PARAMETER_NAMES, BaseFlowEstimator

ESTIMATORS = (FlowDensity, FlowSampler, FlowOverSampler, FlowOutlierDetector)
# The documented differences from the shared defaults: the conditional estimators and the
# detector keep the count-based stopping tolerance, and the detector a smaller, shorter flow.
OTHER_DEFAULTS = {
    FlowSampler: {"tol": 1e-4},
    FlowOverSampler: {"tol": 1e-4},
    FlowOutlierDetector: {"tol": 1e-4, "n_transforms": 4, "hidden_layer_sizes": (64, 64),
                          "max_iter": 100},
}


def _parameters(cls) -> dict[str, inspect.Parameter]:
    return dict(list(inspect.signature(cls.__init__).parameters.items())[1:])


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_shared_parameters_have_the_shared_defaults_in_order(cls):
    shared = _parameters(BaseFlowEstimator)
    params = _parameters(cls)
    assert [name for name in params if name in shared] == list(FLOW_PARAMETER_NAMES)
    expected = {name: p.default for name, p in shared.items()} | OTHER_DEFAULTS.get(cls, {})
    assert {name: params[name].default for name in shared} == expected


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_every_parameter_is_keyword_only_and_validated(cls):
    params = _parameters(cls)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())
    assert set(params) == set(cls._parameter_constraints)
    for name in FLOW_PARAMETER_NAMES:
        assert cls._parameter_constraints[name] == BaseFlowEstimator._parameter_constraints[name]


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_a_positional_argument_is_refused_naming_its_keyword(cls):
    first = next(iter(_parameters(cls)))
    with pytest.raises(TypeError, match=rf"keyword only.*{cls.__name__}\({first}='x'\)"):
        cls("x")


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_the_docstring_documents_every_parameter_with_its_default(cls):
    documented = dict(re.findall(r"^    (\w+) : .*?default=(.*)$", cls.__doc__, re.MULTILINE))
    for name, param in _parameters(cls).items():
        assert name in documented, f"{cls.__name__}: {name} is not documented"
        shown = f'"{param.default}"' if isinstance(param.default, str) else repr(param.default)
        assert documented[name] == shown, (cls.__name__, name, documented[name], shown)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_a_misspelt_keyword_is_refused_naming_the_estimator_and_the_keyword_meant(cls):
    with pytest.raises(TypeError, match=rf"{cls.__name__} got an unexpected keyword argument "
                                        r"'n_transform'; did you mean 'n_transforms'\?"):
        cls(n_transform=3)
