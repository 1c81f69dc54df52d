"""Parameter constraints that scikit-learn's validation does not provide."""

from __future__ import annotations

from numbers import Integral, Real

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


MAX_BINS = 512
MAX_TAIL_BOUND = 1000.0
# ``temperature`` of sample() and the oversamplers: the scale of the latent draws. 1 draws from
# the model; below 1 concentrates the draws near its modes (Glow's sampling temperature),
# trading diversity for typical rows. (The open interval refuses infinity and NaN too.)
TEMPERATURE_CONSTRAINT = Interval(Real, 0, None, closed="neither")
# ``latent_noise`` of the oversamplers: None draws new rows from the model; a scale >= 0 moves
# randomly chosen real rows of the class by that much Gaussian noise in the latent space (0
# repeats them). The interval refuses infinity and NaN.
LATENT_NOISE_CONSTRAINTS = [Interval(Real, 0, None, closed="left"), None]
