"""Numerical sanity checks of the synthetic datasets' exact log-densities.

For every synthetic dataset this verifies, independently of the code under test where
possible, that ``logpdf`` is a normalised density and that the sampler draws from it:

* 2-D sets: midpoint-rule integral of ``exp(logpdf)`` on a fine grid (must be 1 within
  1e-3), grid entropy vs the Monte-Carlo mean of ``-logpdf`` over samples, and a binned
  chi-square test of the sampler against the grid probabilities;
* funnel: ``logpdf`` vs a scipy.stats re-implementation, the analytic entropy vs the
  Monte-Carlo mean of ``-logpdf``, and an importance-sampling estimate of ``∫ p = 1``;
* warped Gaussian: forward/inverse round trip, the log-Jacobian vs finite differences,
  ``logpdf`` vs a scipy.stats re-implementation, the entropy (Gaussian entropy plus
  Gauss-Hermite ``E[log |det J|]``) vs Monte Carlo, and importance sampling of ``∫ p``.

It also loads the real datasets (skipping missing ADBench files) and checks that they
are finite and free of point masses after dequantisation.

Run ``python benchmarks/check_datasets.py``; it prints every check and exits with status
1 if any fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import stats
from sklearn.mixture import GaussianMixture

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from benchmarks import datasets as ds  # noqa: E402

N_MC = 400_000  # Monte-Carlo sample size; standard errors are printed with each check
N_SIGMA = 4.0  # a Monte-Carlo comparison passes if it is within this many standard errors

_results: list[tuple[str, str, bool, str]] = []


def record(dataset: str, check: str, ok: bool, detail: str) -> None:
    """Store and print one check's outcome."""
    _results.append((dataset, check, bool(ok), detail))
    print(f"  [{'PASS' if ok else 'FAIL'}] {check}: {detail}")


def mc_entropy(logpdf_values: np.ndarray) -> tuple[float, float]:
    """Monte-Carlo entropy estimate ``mean(-log p)`` and its standard error."""
    nll = -logpdf_values
    return float(nll.mean()), float(nll.std(ddof=1) / np.sqrt(nll.size))


def importance_normaliser(log_p: np.ndarray, log_q: np.ndarray) -> tuple[float, float, float]:
    """Estimate ``∫ p = E_q[p / q]`` with its standard error and effective sample size."""
    log_w = log_p - log_q
    w = np.exp(log_w - log_w.max())
    scale = np.exp(log_w.max())
    est = scale * w.mean()
    se = scale * w.std(ddof=1) / np.sqrt(w.size)
    ess = w.sum() ** 2 / np.sum(w**2)
    return float(est), float(se), float(ess)


def check_mc_entropy(name: str, reference: float, what: str, sample_logp: np.ndarray) -> float:
    """Compare a reference entropy with ``mean(-logpdf)`` over samples of the dataset."""
    h_mc, se = mc_entropy(sample_logp)
    diff = h_mc - reference
    # A constant log-density (checkerboard) has zero standard error: demand equality.
    ok = np.isfinite(h_mc) and abs(diff) <= max(N_SIGMA * se, 1e-9)
    in_se = f" = {diff / se:+.2f} SE" if se > 0 else ""
    record(
        name,
        "entropy",
        ok,
        f"{what} = {reference:.5f}, MC mean(-logpdf) = {h_mc:.5f} ± {se:.5f} "
        f"(diff {diff:+.5f}{in_se})",
    )
    return h_mc


# ----------------------------------------------------------------------------------------
# 2-D datasets
# ----------------------------------------------------------------------------------------


def check_2d(dataset: ds.SyntheticDataset, half_width: float, step: float = 0.01) -> None:
    """Grid normalisation, grid entropy vs MC, and chi-square test of the sampler."""
    name = dataset.name
    print(f"{name}:")
    # Midpoint grid; cell edges fall on multiples of `step`, hence on the checkerboard's
    # square edges, so the discontinuous density is integrated exactly.
    centres = np.arange(-half_width + step / 2, half_width, step)
    gx, gy = np.meshgrid(centres, centres, indexing="ij")
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    logp = dataset.logpdf(grid)
    p = np.exp(logp)
    cell = step**2
    total = p.sum() * cell
    record(name, "grid integral", abs(total - 1) < 1e-3, f"∫ exp(logpdf) = {total:.7f}")

    support = p > 0
    h_grid = float(-(p[support] * logp[support]).sum() * cell)
    samples = dataset.sample(N_MC, 1)
    check_mc_entropy(name, h_grid, "grid -∫ p log p", dataset.logpdf(samples))

    # Sampler vs density: counts in 0.5 x 0.5 bins against grid-integrated probabilities.
    bin_w = 0.5
    n_bins = round(2 * half_width / bin_w)
    edges = np.linspace(-half_width, half_width, n_bins + 1)
    prob = np.histogram2d(grid[:, 0], grid[:, 1], bins=[edges, edges], weights=p * cell)[0]
    counts = np.histogram2d(samples[:, 0], samples[:, 1], bins=[edges, edges])[0]
    expected = prob.ravel() * N_MC
    keep = expected >= 5  # the chi-square approximation needs enough expected counts
    obs = counts.ravel()[keep]
    exp_ = expected[keep] * obs.sum() / expected[keep].sum()
    stat = float(np.sum((obs - exp_) ** 2 / exp_))
    dof = int(keep.sum() - 1)
    p_value = float(stats.chi2.sf(stat, dof))
    outside = 1 - obs.sum() / N_MC
    record(
        name,
        "sampler chi-square",
        p_value > 1e-4 and outside < 1e-3,
        f"chi2 = {stat:.1f} on {dof} dof, p = {p_value:.3f}; "
        f"samples outside tested bins {outside:.2e}",
    )


# ----------------------------------------------------------------------------------------
# Funnel
# ----------------------------------------------------------------------------------------


def check_funnel() -> None:
    """Funnel: scipy re-implementation, analytic entropy, importance sampling."""
    name = "funnel_10d"
    print(f"{name}:")
    k = ds.FUNNEL_DIM - 1
    X = ds.make_funnel_10d(N_MC, 2)
    logp = ds.logpdf_funnel_10d(X)

    v, x = X[:, 0], X[:, 1:]
    ref = stats.norm.logpdf(v, 0, 3.0) + stats.norm.logpdf(x, 0, np.exp(v / 2)[:, None]).sum(1)
    err = float(np.max(np.abs(ref - logp) / (1 + np.abs(ref))))
    record(name, "vs scipy.stats", err < 1e-10, f"max relative difference {err:.1e}")

    # H = H(v) + E_v[H(x | v)] = 0.5 log(2πe 9) + k * (0.5 log(2πe) + 0.5 E[v]), E[v] = 0.
    h_exact = 0.5 * np.log(2 * np.pi * np.e * 9.0) + k * 0.5 * np.log(2 * np.pi * np.e)
    check_mc_entropy(name, float(h_exact), "analytic entropy", logp)

    # Proposal: v ~ N(0, 3.5^2), x_i | v ~ N(0, (1.5 e^{v/2})^2). Each factor of p / q is
    # bounded, so the weights have finite variance.
    rng = np.random.default_rng(3)
    vq = 3.5 * rng.standard_normal(N_MC)
    sq = 1.5 * np.exp(vq / 2)
    xq = rng.standard_normal((N_MC, k)) * sq[:, None]
    log_q = stats.norm.logpdf(vq, 0, 3.5) + stats.norm.logpdf(xq, 0, sq[:, None]).sum(1)
    est, se, ess = importance_normaliser(ds.logpdf_funnel_10d(np.column_stack([vq, xq])), log_q)
    record(
        name,
        "importance sampling",
        abs(est - 1) <= N_SIGMA * se and se < 0.02,
        f"∫ p = {est:.5f} ± {se:.5f} (ESS {ess:.0f} of {N_MC})",
    )


# ----------------------------------------------------------------------------------------
# Warped Gaussian
# ----------------------------------------------------------------------------------------


def check_warped() -> None:
    """Warped Gaussian: inverse, Jacobian, re-implementation, entropy, importance sampling."""
    name = "warped_gauss_16d"
    print(f"{name}:")
    d = ds.WARPED_DIM
    rng = np.random.default_rng(4)
    z = rng.standard_normal((20_000, d)) * 2.5  # wider than the data, to test the tails
    err = float(np.max(np.abs(ds.warp_inverse(ds.warp_forward(z)) - z)))
    record(name, "inverse round trip", err < 1e-8, f"max |z - inv(fwd(z))| = {err:.1e}")

    h = 1e-5
    fd = (ds.warp_forward(z + h) - ds.warp_forward(z - h)) / (2 * h)
    err = float(np.max(np.abs(np.log(fd) - ds.warp_log_derivative(z))))
    record(name, "log-Jacobian vs finite differences", err < 1e-6, f"max abs error {err:.1e}")

    X = ds.make_warped_gauss_16d(N_MC, 5)
    logp = ds.logpdf_warped_gauss_16d(X)
    zx = ds.warp_inverse(X)
    a, b = ds.WARPED_A, ds.WARPED_B
    ref = stats.multivariate_normal(np.zeros(d), ds.WARPED_COV).logpdf(zx[:20_000])
    ref -= np.log(np.cosh(a * zx[:20_000] + b)).sum(1)
    err = float(np.max(np.abs(ref - logp[:20_000])))
    record(name, "vs scipy.stats", err < 1e-9, f"max abs difference {err:.1e}")

    # H(Y) = H(Z) + sum_i E[log cosh(a_i z_i + b_i)], z_i ~ N(0, C_ii): the expectation is
    # one-dimensional per coordinate, so Gauss-Hermite quadrature gives it to ~1e-12.
    nodes, weights = np.polynomial.hermite_e.hermegauss(120)
    weights = weights / np.sqrt(2 * np.pi)
    sd = np.sqrt(np.diag(ds.WARPED_COV))
    e_logdet = sum(
        float(np.sum(weights * np.log(np.cosh(a[i] * sd[i] * nodes + b[i])))) for i in range(d)
    )
    h_z = 0.5 * np.linalg.slogdet(2 * np.pi * np.e * ds.WARPED_COV)[1]
    check_mc_entropy(
        name, float(h_z + e_logdet), f"H(Z) {h_z:.5f} + E[log|det J|] {e_logdet:.5f}", logp
    )

    # Importance sampling with a defensive mixture proposal fitted to a pilot sample:
    # q = 0.8 GMM(8 components) + 0.2 multivariate t (3 dof). The t part's polynomial
    # tails dominate the warped Gaussian's exp(-log^2 |y|) tails, which bounds p / q there;
    # the GMM part matches the skewed bulk so the effective sample size stays large.
    pilot = ds.make_warped_gauss_16d(50_000, 6)
    gmm = GaussianMixture(8, covariance_type="full", reg_covar=1e-4, random_state=0).fit(pilot)
    t_dist = stats.multivariate_t(pilot.mean(0), 2.0 * np.cov(pilot.T), df=3)
    rng = np.random.default_rng(9)
    n_t = int(rng.binomial(N_MC, 0.2))
    Y = np.vstack([gmm.sample(N_MC - n_t)[0], t_dist.rvs(n_t, random_state=rng)])
    log_q = np.logaddexp(np.log(0.8) + gmm.score_samples(Y), np.log(0.2) + t_dist.logpdf(Y))
    est, se, ess = importance_normaliser(ds.logpdf_warped_gauss_16d(Y), log_q)
    record(
        name,
        "importance sampling",
        abs(est - 1) <= N_SIGMA * se and se < 0.02,
        f"∫ p = {est:.5f} ± {se:.5f} (ESS {ess:.0f} of {N_MC})",
    )


def check_checkerboard_support() -> None:
    """Every checkerboard sample lies in the support, and the log-density is constant."""
    name = "checkerboard_2d"
    logp = ds.logpdf_checkerboard_2d(ds.make_checkerboard_2d(N_MC, 8))
    ok = bool(np.all(logp == -np.log(32.0)))
    record(name, "samples on support", ok, f"all logpdf == -log 32 = {-np.log(32.0):.6f}: {ok}")


def check_real() -> None:
    """Real datasets load as finite float64 arrays with no point mass left in any column."""
    print("real datasets:")
    for name in ds.REAL_DATASETS:
        loaded = ds.load_real(name)
        if loaded is None:
            continue  # load_real printed why; a missing optional file is not a failure
        X = loaded[0]
        top = max(np.unique(c, return_counts=True)[1].max() for c in X.T) / X.shape[0]
        ok = X.dtype == np.float64 and bool(np.all(np.isfinite(X))) and top < 0.01
        record(name, "loads", ok, f"shape {X.shape}, largest tie fraction {top:.4f}")


def main() -> int:
    """Run all checks; return 0 if they all pass, else 1."""
    check_2d(ds.get_synthetic("gauss_mix_2d"), half_width=9.0)
    check_2d(ds.get_synthetic("ring_2d"), half_width=6.0)
    check_2d(ds.get_synthetic("checkerboard_2d"), half_width=5.0)
    check_checkerboard_support()
    check_funnel()
    check_warped()
    check_real()
    n_fail = sum(not passed for _, _, passed, _ in _results)
    print(f"\n{len(_results) - n_fail}/{len(_results)} checks passed")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
