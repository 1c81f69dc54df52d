"""Datasets for the density benchmarks.

Two kinds of data live here:

* **Synthetic** datasets with an exact, computable log-density. Each one is a pair
  ``make_<name>(n_samples, random_state) -> X`` and ``logpdf_<name>(X) -> log p``
  (float64, nats), collected in :data:`SYNTHETIC_DATASETS` as
  :class:`SyntheticDataset` records. ``benchmarks/check_datasets.py`` verifies that
  every ``logpdf`` is normalised and agrees with its sampler.
* **Real** datasets: scikit-learn's digits (dequantised) and the inliers of a few
  ADBench tables, prepared so that a continuous density exists (see
  :func:`prepare_density_columns`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.linalg import cholesky, solve_triangular
from scipy.special import logsumexp

RandomState = int | np.random.Generator | None

LOG_2PI = float(np.log(2.0 * np.pi))


def _rng(random_state: RandomState) -> np.random.Generator:
    return np.random.default_rng(random_state)


def _as_2d(X: np.ndarray, dim: int) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != dim:
        raise ValueError(f"expected an array of shape (n, {dim}), got {X.shape}")
    return X


# --------------------------------------------------------------------------------------
# Gaussian mixtures (shared by gauss_mix_2d and ring_2d)
# --------------------------------------------------------------------------------------


def _gaussian_logpdf(X: np.ndarray, mean: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """Log-density of N(mean, chol @ chol.T) at the rows of X, via a triangular solve."""
    white = solve_triangular(chol, (X - mean).T, lower=True)
    log_det = 2.0 * np.sum(np.log(np.diag(chol)))
    return -0.5 * (np.sum(white**2, axis=0) + log_det + X.shape[1] * LOG_2PI)


def _mixture_logpdf(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, chols: np.ndarray
) -> np.ndarray:
    comps = [
        np.log(w) + _gaussian_logpdf(X, m, c) for w, m, c in zip(weights, means, chols, strict=True)
    ]
    return logsumexp(np.stack(comps), axis=0)


def _mixture_sample(
    n: int, weights: np.ndarray, means: np.ndarray, chols: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    labels = rng.choice(len(weights), size=n, p=weights)
    eps = rng.standard_normal((n, means.shape[1]))
    # Row-wise chol[label] @ eps[i]; einsum avoids a Python loop over components.
    return means[labels] + np.einsum("nij,nj->ni", chols[labels], eps)


def _rotated_cov(std_major: float, std_minor: float, angle_deg: float) -> np.ndarray:
    t = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return rot @ np.diag([std_major**2, std_minor**2]) @ rot.T


# Four components with unequal weights, anisotropic and differently oriented covariances.
# Neighbouring means are 2-4 standard deviations apart along the joining line, so the
# modes are distinct but the mixture is not a set of isolated islands.
GAUSS_MIX_WEIGHTS = np.array([0.35, 0.25, 0.25, 0.15])
GAUSS_MIX_MEANS = np.array([[-2.0, -1.5], [2.0, -2.0], [0.0, 2.5], [3.0, 1.5]])
GAUSS_MIX_COVS = np.stack(
    [
        _rotated_cov(1.0, 0.3, 30.0),
        _rotated_cov(0.5, 0.5, 0.0),
        _rotated_cov(1.2, 0.4, -20.0),
        _rotated_cov(0.6, 0.3, 60.0),
    ]
)
_GAUSS_MIX_CHOLS = np.stack([cholesky(c, lower=True) for c in GAUSS_MIX_COVS])


def make_gauss_mix_2d(n_samples: int, random_state: RandomState = None) -> np.ndarray:
    """Sample a 4-component 2-D Gaussian mixture with distinct covariances.

    Parameters
    ----------
    n_samples : int
        Number of rows.
    random_state : int, Generator or None
        Seed or generator.

    Returns
    -------
    X : ndarray of shape (n_samples, 2)
    """
    return _mixture_sample(
        n_samples, GAUSS_MIX_WEIGHTS, GAUSS_MIX_MEANS, _GAUSS_MIX_CHOLS, _rng(random_state)
    )


def logpdf_gauss_mix_2d(X: np.ndarray) -> np.ndarray:
    """Exact log-density (nats) of :func:`make_gauss_mix_2d`."""
    return _mixture_logpdf(_as_2d(X, 2), GAUSS_MIX_WEIGHTS, GAUSS_MIX_MEANS, _GAUSS_MIX_CHOLS)


# Eight equal-weight isotropic components on a circle of radius 3; neighbouring means are
# 2 * 3 * sin(pi / 8) = 2.3 apart, i.e. 5.7 standard deviations.
RING_N_COMPONENTS = 8
RING_RADIUS = 3.0
RING_STD = 0.4
_RING_ANGLES = 2.0 * np.pi * np.arange(RING_N_COMPONENTS) / RING_N_COMPONENTS
RING_MEANS = RING_RADIUS * np.column_stack([np.cos(_RING_ANGLES), np.sin(_RING_ANGLES)])
RING_WEIGHTS = np.full(RING_N_COMPONENTS, 1.0 / RING_N_COMPONENTS)
_RING_CHOLS = np.stack([RING_STD * np.eye(2)] * RING_N_COMPONENTS)


def make_ring_2d(n_samples: int, random_state: RandomState = None) -> np.ndarray:
    """Sample eight isotropic Gaussians (std 0.4) evenly spaced on a circle of radius 3.

    Parameters
    ----------
    n_samples : int
        Number of rows.
    random_state : int, Generator or None
        Seed or generator.

    Returns
    -------
    X : ndarray of shape (n_samples, 2)
    """
    return _mixture_sample(n_samples, RING_WEIGHTS, RING_MEANS, _RING_CHOLS, _rng(random_state))


def logpdf_ring_2d(X: np.ndarray) -> np.ndarray:
    """Exact log-density (nats) of :func:`make_ring_2d`."""
    return _mixture_logpdf(_as_2d(X, 2), RING_WEIGHTS, RING_MEANS, _RING_CHOLS)


# --------------------------------------------------------------------------------------
# Checkerboard
# --------------------------------------------------------------------------------------

CHECKER_LOW, CHECKER_SIDE, CHECKER_N = -4.0, 2.0, 4  # a 4 x 4 board of 2 x 2 squares
# Black squares are those whose (column, row) indices have an even sum: 8 of the 16.
_CHECKER_BLACK = np.array(
    [(i, j) for i in range(CHECKER_N) for j in range(CHECKER_N) if (i + j) % 2 == 0]
)
CHECKER_AREA = len(_CHECKER_BLACK) * CHECKER_SIDE**2  # 32


def make_checkerboard_2d(n_samples: int, random_state: RandomState = None) -> np.ndarray:
    """Sample uniformly on the black squares of a 4 x 4 checkerboard covering [-4, 4)^2.

    Parameters
    ----------
    n_samples : int
        Number of rows.
    random_state : int, Generator or None
        Seed or generator.

    Returns
    -------
    X : ndarray of shape (n_samples, 2)
    """
    rng = _rng(random_state)
    squares = _CHECKER_BLACK[rng.integers(len(_CHECKER_BLACK), size=n_samples)]
    # Squares are half-open [a, a + 2), matching the floor() in the log-density.
    return CHECKER_LOW + CHECKER_SIDE * (squares + rng.random((n_samples, 2)))


def logpdf_checkerboard_2d(X: np.ndarray) -> np.ndarray:
    """Exact log-density of :func:`make_checkerboard_2d`: ``-log 32`` on black squares.

    Points off the support get ``-inf``.
    """
    X = _as_2d(X, 2)
    idx = np.floor((X - CHECKER_LOW) / CHECKER_SIDE)
    on_board = np.all((idx >= 0) & (idx < CHECKER_N), axis=1)
    black = np.sum(idx, axis=1) % 2 == 0
    out = np.full(X.shape[0], -np.inf)
    out[on_board & black] = -np.log(CHECKER_AREA)
    return out


# --------------------------------------------------------------------------------------
# Neal's funnel
# --------------------------------------------------------------------------------------

FUNNEL_DIM = 10
FUNNEL_V_STD = 3.0


def make_funnel_10d(n_samples: int, random_state: RandomState = None) -> np.ndarray:
    """Sample Neal's funnel: ``v ~ N(0, 3^2)``, ``x_i | v ~ N(0, exp(v))``, i = 1..9.

    Column 0 is ``v``.

    Parameters
    ----------
    n_samples : int
        Number of rows.
    random_state : int, Generator or None
        Seed or generator.

    Returns
    -------
    X : ndarray of shape (n_samples, 10)
    """
    rng = _rng(random_state)
    v = FUNNEL_V_STD * rng.standard_normal(n_samples)
    x = rng.standard_normal((n_samples, FUNNEL_DIM - 1)) * np.exp(0.5 * v)[:, None]
    return np.column_stack([v, x])


def logpdf_funnel_10d(X: np.ndarray) -> np.ndarray:
    """Exact log-density (nats) of :func:`make_funnel_10d`."""
    X = _as_2d(X, FUNNEL_DIM)
    v, x = X[:, 0], X[:, 1:]
    k = FUNNEL_DIM - 1
    log_pv = -0.5 * (v / FUNNEL_V_STD) ** 2 - np.log(FUNNEL_V_STD) - 0.5 * LOG_2PI
    # log N(x_i; 0, e^v) summed over i: the variance e^v gives -0.5 * v per coordinate.
    log_px = -0.5 * np.exp(-v) * np.sum(x**2, axis=1) - 0.5 * k * v - 0.5 * k * LOG_2PI
    return log_pv + log_px


# --------------------------------------------------------------------------------------
# Warped correlated Gaussian
# --------------------------------------------------------------------------------------

WARPED_DIM = 16
# z ~ N(0, C) with an AR(1) correlation C_ij = 0.7^|i-j|, then an elementwise skewed
# sinh warp y = (sinh(a z + b) - sinh(b)) / a. The warp is strictly increasing, has the
# closed-form inverse z = (asinh(a y + sinh b) - b) / a and dy/dz = cosh(a z + b), so
# log p(y) = log N(z(y); 0, C) - sum_i log cosh(a_i z_i + b_i). Larger a gives heavier
# (exponential) tails; b != 0 makes the marginal skewed.
WARPED_COV = 0.7 ** np.abs(np.subtract.outer(np.arange(WARPED_DIM), np.arange(WARPED_DIM)))
WARPED_A = 0.4 + 0.2 * (np.arange(WARPED_DIM) % 4)  # 0.4, 0.6, 0.8, 1.0, 0.4, ...
WARPED_B = np.resize([0.0, 0.6, -0.6], WARPED_DIM)
_WARPED_CHOL = cholesky(WARPED_COV, lower=True)


def _log_cosh(t: np.ndarray) -> np.ndarray:
    # log cosh t = |t| + log1p(exp(-2|t|)) - log 2, which never overflows.
    at = np.abs(t)
    return at + np.log1p(np.exp(-2.0 * at)) - np.log(2.0)


def warp_forward(z: np.ndarray) -> np.ndarray:
    """Elementwise warp ``y = (sinh(a z + b) - sinh(b)) / a`` of the warped Gaussian."""
    return (np.sinh(WARPED_A * z + WARPED_B) - np.sinh(WARPED_B)) / WARPED_A


def warp_inverse(y: np.ndarray) -> np.ndarray:
    """Closed-form inverse of :func:`warp_forward`."""
    return (np.arcsinh(WARPED_A * y + np.sinh(WARPED_B)) - WARPED_B) / WARPED_A


def warp_log_derivative(z: np.ndarray) -> np.ndarray:
    """Elementwise ``log dy/dz = log cosh(a z + b)`` of :func:`warp_forward`."""
    return _log_cosh(WARPED_A * z + WARPED_B)


def make_warped_gauss_16d(n_samples: int, random_state: RandomState = None) -> np.ndarray:
    """Sample a 16-D AR(1)-correlated Gaussian pushed through a skewed sinh warp.

    Parameters
    ----------
    n_samples : int
        Number of rows.
    random_state : int, Generator or None
        Seed or generator.

    Returns
    -------
    X : ndarray of shape (n_samples, 16)
    """
    z = _rng(random_state).standard_normal((n_samples, WARPED_DIM)) @ _WARPED_CHOL.T
    return warp_forward(z)


def logpdf_warped_gauss_16d(X: np.ndarray) -> np.ndarray:
    """Exact log-density (nats) of :func:`make_warped_gauss_16d` by change of variables."""
    z = warp_inverse(_as_2d(X, WARPED_DIM))
    log_base = _gaussian_logpdf(z, np.zeros(WARPED_DIM), _WARPED_CHOL)
    return log_base - np.sum(warp_log_derivative(z), axis=1)


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticDataset:
    """A synthetic dataset with a sampler and its exact log-density.

    Attributes
    ----------
    name : str
        Short identifier used on the command line.
    dim : int
        Number of features.
    sample : callable
        ``sample(n, rng) -> X`` with ``rng`` an int seed or ``numpy.random.Generator``.
    logpdf : callable
        ``logpdf(X) -> log p`` per row in nats (``-inf`` off the support).
    """

    name: str
    dim: int
    sample: Callable[[int, RandomState], np.ndarray]
    logpdf: Callable[[np.ndarray], np.ndarray]


SYNTHETIC_DATASETS: list[SyntheticDataset] = [
    SyntheticDataset("gauss_mix_2d", 2, make_gauss_mix_2d, logpdf_gauss_mix_2d),
    SyntheticDataset("ring_2d", 2, make_ring_2d, logpdf_ring_2d),
    SyntheticDataset("checkerboard_2d", 2, make_checkerboard_2d, logpdf_checkerboard_2d),
    SyntheticDataset("funnel_10d", FUNNEL_DIM, make_funnel_10d, logpdf_funnel_10d),
    SyntheticDataset(
        "warped_gauss_16d", WARPED_DIM, make_warped_gauss_16d, logpdf_warped_gauss_16d
    ),
]


def get_synthetic(name: str) -> SyntheticDataset:
    """Return the synthetic dataset called ``name``."""
    for ds in SYNTHETIC_DATASETS:
        if ds.name == name:
            return ds
    raise KeyError(f"unknown synthetic dataset {name!r}")


# --------------------------------------------------------------------------------------
# Real datasets
# --------------------------------------------------------------------------------------

ADBENCH_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "adbench"
ADBENCH_DATASETS = ("6_cardio", "28_pendigits", "30_satellite", "41_Waveform", "2_annthyroid")
REAL_DATASETS = ("digits", *ADBENCH_DATASETS)


def load_digits_dequantized(random_state: RandomState = 0) -> tuple[np.ndarray, str]:
    """scikit-learn's 8 x 8 digits with uniform dequantisation noise.

    The pixels are integers 0..16; adding ``U[0, 1)`` noise (fixed seed) turns the
    discrete distribution into a density in the same units, whose log-likelihood lower
    bounds the discrete one.

    Parameters
    ----------
    random_state : int, Generator or None
        Seed of the dequantisation noise.

    Returns
    -------
    X : ndarray of shape (1797, 64)
    name : str
        ``"digits"``.
    """
    from sklearn.datasets import load_digits

    X = load_digits().data.astype(np.float64)
    return X + _rng(random_state).random(X.shape), "digits"


def _lattice_step(col: np.ndarray, max_levels: int = 100_000) -> float | None:
    """Step of the evenly spaced grid holding every value of ``col``, else None."""
    values = np.unique(col)
    if values.size < 2:
        return None
    gaps = np.diff(values)
    step = gaps.min()
    if (values[-1] - values[0]) / step > max_levels:  # float noise, not a real grid
        return None
    ratio = gaps / step
    return float(step) if np.all(np.abs(ratio - np.round(ratio)) < 1e-6) else None


def prepare_density_columns(
    X: np.ndarray,
    random_state: RandomState = 0,
    near_constant: float = 0.99,
    atom_fraction: float = 0.001,
    atom_width: float = 0.05,
) -> tuple[np.ndarray, dict[str, list]]:
    """Make a tabular array suitable for continuous density estimation.

    A continuous density does not exist when a column has point masses, and a model can
    then drive its likelihood to infinity. Column by column:

    1. columns that are constant, or where one value holds at least ``near_constant`` of
       the rows, are **dropped**;
    2. columns whose values are all integers get ``U[0, 1)`` noise (dequantisation);
    3. other columns whose values all lie on an evenly spaced grid of step ``d`` (e.g.
       integer features that ADBench standardised, or values rounded to 2 decimals) get
       ``U[0, d)`` noise, the same dequantisation in the column's units;
    4. in the remaining columns, each value held by at least ``atom_fraction`` of the
       rows (default 0.1%; e.g. pendigits' 0/1 bounds, which hold up to 43% of a column,
       or cardio's standardised zeros) is an atom, and the rows at an atom get
       ``U[0, atom_width * std)`` noise. The width is a choice, not a property of the
       data: it caps how much likelihood a model can gain by fitting the spike.

    Noise uses a fixed seed, so the returned array is deterministic.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data (inliers only).
    random_state : int, Generator or None
        Seed of the noise.
    near_constant : float
        Fraction of rows at a single value above which a column is dropped.
    atom_fraction : float
        Fraction of rows at a single value above which that value counts as an atom.
    atom_width : float
        Width of the noise spreading an atom, in units of the column's standard deviation.

    Returns
    -------
    X_out : ndarray of shape (n_samples, n_kept)
    report : dict
        Column indices (of the input) under ``"dropped"``, ``"integer"``, ``"lattice"``
        and ``"atoms"``.
    """
    X = np.asarray(X, dtype=np.float64)
    rng = _rng(random_state)
    n = X.shape[0]
    report: dict[str, list] = {"dropped": [], "integer": [], "lattice": [], "atoms": []}
    columns = []
    for j in range(X.shape[1]):
        col = X[:, j].copy()
        values, counts = np.unique(col, return_counts=True)
        if counts.max() >= near_constant * n:
            report["dropped"].append(j)
            continue
        noise = rng.random(n)  # drawn for every kept column so seeds stay aligned
        step = _lattice_step(col)
        if np.all(col == np.round(col)):
            col += noise
            report["integer"].append(j)
        elif step is not None:
            col += step * noise
            report["lattice"].append(j)
        else:
            atoms = values[counts >= atom_fraction * n]
            if atoms.size:
                at_atom = np.isin(col, atoms)
                col[at_atom] += atom_width * col.std() * noise[at_atom]
                report["atoms"].append(j)
        columns.append(col)
    return np.column_stack(columns), report


def load_adbench_inliers(
    name: str, random_state: RandomState = 0, verbose: bool = True
) -> tuple[np.ndarray, str] | None:
    """Inliers (``y == 0``) of an ADBench table, prepared for density estimation.

    Reads ``../shared/data/adbench/<name>.npz`` relative to the repository root (keys
    ``X`` and ``y``, 1 = anomaly) and applies :func:`prepare_density_columns`: constant or
    near-constant columns are dropped, integer and grid-valued columns dequantised with
    uniform noise, and remaining point masses spread slightly.

    Parameters
    ----------
    name : str
        File stem, e.g. ``"6_cardio"``.
    random_state : int, Generator or None
        Seed of the dequantisation noise.
    verbose : bool
        Print which columns were changed, or that the file is missing.

    Returns
    -------
    (X, name) or None
        None when the file does not exist.
    """
    path = (ADBENCH_DIR / f"{name}.npz").resolve()
    if not path.exists():
        if verbose:
            print(f"[skip] {name}: {path} not found")
        return None
    with np.load(path, allow_pickle=False) as data:
        X = np.asarray(data["X"], dtype=np.float64)[np.asarray(data["y"]) == 0]
    X, report = prepare_density_columns(X, random_state=random_state)
    if verbose:
        changed = {k: v for k, v in report.items() if v}
        print(f"[data] {name}: {X.shape[0]} inliers x {X.shape[1]} features; columns {changed}")
    return X, name


def load_real(name: str, random_state: RandomState = 0) -> tuple[np.ndarray, str] | None:
    """Load a real dataset by name (``"digits"`` or an ADBench stem); None if missing."""
    if name == "digits":
        return load_digits_dequantized(random_state)
    if name in ADBENCH_DATASETS:
        return load_adbench_inliers(name, random_state)
    raise KeyError(f"unknown real dataset {name!r}")
