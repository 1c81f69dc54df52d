"""Parameter constraints that scikit-learn's validation does not provide."""

from __future__ import annotations

from numbers import Integral

from sklearn.utils._param_validation import Interval


class Count(Interval):
    """Integers in ``[low, high]`` (``high=None``: unbounded), refusing ``True`` and ``False``.

    bool is an Integral to Python and to scikit-learn's ``Interval``, so ``n_transforms=True``
    or ``sample(True)`` would pass as 1; written that way it is a mistake, not a count.
    """

    def __init__(self, low: int | None, high: int | None = None) -> None:
        # scikit-learn wants an unbounded end of an integer interval marked open.
        closed = {(False, False): "both", (True, False): "right", (False, True): "left"}
        super().__init__(Integral, low, high, closed=closed[low is None, high is None])

    def is_satisfied_by(self, val) -> bool:
        return not isinstance(val, bool) and super().is_satisfied_by(val)
