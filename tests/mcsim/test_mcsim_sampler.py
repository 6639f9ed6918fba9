"""Sampler physics against exact results, kernel vs slow reference, reproducibility."""

import math

import numpy as np
import pytest
from numba import njit
from scipy import integrate, stats

from mcsim import _kernels as K
from mcsim.config import SimConfig
from mcsim.observables import (
    equilibration_check,
    pair_distances,
    square_pair_pdf,
)
from mcsim.potentials import Potential, total_energy
from mcsim.sampler import Chain, sample, seed_states


# ------------------------------------------------------------ exact barometric law
def barometric_moments(b, h):
    """<y>, Var(y) and the 4th central moment of p(y) = b e^{-b y} / (1 - e^{-b h})."""
    z = -math.expm1(-b * h)

    def p(y):
        return b * math.exp(-b * y) / z

    mean = 1 / b - h / math.expm1(b * h)
    var = 1 / b**2 - h**2 * math.exp(b * h) / math.expm1(b * h) ** 2
    mu4 = integrate.quad(lambda y: (y - mean) ** 4 * p(y), 0, h)[0]
    return mean, var, mu4


def test_barometric_formula_matches_reference_examples():
    assert barometric_moments(0.1, 10)[:2] == pytest.approx((4.180233, 7.932641), abs=1e-6)
    assert barometric_moments(1.0, 10)[:2] == pytest.approx((0.999546, 0.995460), abs=1e-6)


@pytest.mark.parametrize("b", [0.1, 1.0])
def test_ideal_gas_in_field(b):
    """Ideal gas, H = L = 10: moments of y vs the exact barometric law (z-scores at a
    fixed seed), x uniform on [0, L] (Kolmogorov-Smirnov)."""
    t = 0.75
    cfg = SimConfig(n_particles=10, potential=Potential("ideal"), temperature=t,
                    delta=1.5, sweeps=600, seed=7)
    s = sample(cfg, b * t, 1500)
    y = s.positions[:, :, 1].ravel()
    x = s.positions[:, :, 0].ravel()
    n = y.size  # ideal-gas particles in independent samples are independent
    mean, var, mu4 = barometric_moments(b, 10.0)
    z_mean = (y.mean() - mean) / math.sqrt(var / n)
    z_var = (y.var(ddof=1) - var) / math.sqrt((mu4 - var**2) / n)
    assert abs(z_mean) < 4, z_mean
    assert abs(z_var) < 4, z_var
    assert stats.kstest(x, stats.uniform(0, 10).cdf).pvalue > 1e-4
    assert np.all((s.positions >= 0) & (s.positions <= 10))


def test_two_particles_distance_distribution_is_exact():
    """Two LJ particles in a walled box, no field: the pair-distance density is exactly
    p_box(r) exp(-u(r)/T) / Z (p_box: two uniform points in the square). Chi-square
    over bins with expected counts from quadrature."""
    t, box = 0.75, 4.0
    pot = Potential("lj", cutoff=None)
    cfg = SimConfig(n_particles=2, box=box, temperature=t, potential=pot, delta=1.0,
                    sweeps=300, seed=3)
    r = pair_distances(sample(cfg, 0.0, 20000).positions).ravel()

    def dens(x):
        return float(square_pair_pdf(np.array([x]), box)[0]) * math.exp(
            -float(total_energy(np.array([[0.0, 0.0], [x, 0.0]]), 0.0, pot)) / t)

    edges = np.concatenate([[0.0], np.linspace(0.9, 4.0, 26), [box * math.sqrt(2)]])
    mass = np.array([integrate.quad(dens, a, b, limit=200, points=[1.0, 1.12])[0]
                     for a, b in zip(edges[:-1], edges[1:], strict=True)])
    expected = r.size * mass / mass.sum()
    observed, _ = np.histogram(r, bins=edges)
    keep = expected > 5
    chi2 = float((((observed - expected) ** 2 / expected)[keep]).sum())
    dof = int(keep.sum()) - 1
    assert stats.chi2.sf(chi2, dof) > 1e-4, (chi2, dof)


# ------------------------------------------------------- kernel vs slow reference
def reference_sweep(x, y, rng, box, beta, gamma, delta, pot):
    """Obviously-correct sweep: recompute old and new energies of particle i."""
    n = len(x)

    def e_i(i, xi, yi):
        e = 0.0
        for j in range(n):
            if j != i:
                r2 = (x[j] - xi) ** 2 + (y[j] - yi) ** 2
                e += K._u_pair(r2, *pot.kernel_args())
        return e + gamma * yi

    for i in range(n):
        xn = x[i] + delta * (2 * K._uniform(rng) - 1)
        yn = y[i] + delta * (2 * K._uniform(rng) - 1)
        if not (0 <= xn <= box and 0 <= yn <= box):
            continue
        d_e = e_i(i, xn, yn) - e_i(i, x[i], y[i])
        if d_e <= 0 or K._uniform(rng) < math.exp(-beta * d_e):
            x[i], y[i] = xn, yn


@pytest.mark.parametrize("spec", ["lj", "nm:4,2"])
def test_fast_sweeps_match_reference(spec):
    pot = Potential.parse(spec, 3.0 if spec == "lj" else None)
    rng0 = seed_states(11, 0, 0.4, 0, 1)[0]
    x0 = np.random.default_rng(1).uniform(0, 6, 11)
    y0 = np.random.default_rng(2).uniform(0, 6, 11)
    xa, ya, rnga = x0.copy(), y0.copy(), rng0.copy()
    K._run_sweeps(xa, ya, rnga, 6.0, 1 / 0.75, 0.4, 0.3, 40, *pot.kernel_args(), np.empty(0))
    xb, yb, rngb = x0.copy(), y0.copy(), rng0.copy()
    for _ in range(40):
        reference_sweep(xb, yb, rngb, 6.0, 1 / 0.75, 0.4, 0.3, pot)
    np.testing.assert_allclose(xa, xb, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ya, yb, rtol=0, atol=1e-10)
    assert np.array_equal(rnga, rngb)  # same number of random draws


def test_incremental_bookkeeping_equals_recomputation():
    """After many accepted moves the cached pair matrix equals a fresh one, and the
    trace energy equals a full recomputation."""
    pot = Potential("lj", cutoff=3.0)
    npart, box, gamma = 30, 10.0, 0.4
    rng = seed_states(5, 0, gamma, 0, 1)[0].copy()
    x0 = np.empty(npart)
    y0 = np.empty(npart)
    K._random_start(x0, y0, rng, box)
    x, y = K._padded(x0, y0)
    e_pair = K._pair_matrix(x, y, npart, *pot.kernel_args())
    row = np.zeros(x.size)
    accepted = 0
    for _ in range(300):
        accepted += K._sweep(x, y, npart, e_pair, row, rng, box, 1 / 0.75, gamma, 0.2,
                             *pot.kernel_args())
    assert accepted > 3000
    fresh = K._pair_matrix(x, y, npart, *pot.kernel_args())
    np.testing.assert_allclose(e_pair, fresh, rtol=1e-12, atol=1e-12)
    cached_total = K._pair_sum(e_pair) + gamma * y[:npart].sum()
    pos = np.stack([x[:npart], y[:npart]], axis=1)
    assert cached_total == pytest.approx(total_energy(pos, gamma, pot), rel=1e-10)


def test_float32_bookkeeping_equals_recomputation():
    """The LJ sampler's float32 pair cache after many accepted moves equals a fresh
    float32 matrix of the final positions, and its energy a float64 recomputation."""
    pot = Potential("lj", cutoff=3.0)
    npart, box, gamma = 30, 10.0, 0.4
    rng = seed_states(6, 0, gamma, 0, 1)[0].copy()
    x0 = np.empty(npart)
    y0 = np.empty(npart)
    K._random_start(x0, y0, rng, box)
    x, y, x32, y32, e_pair, row, rc2f = K._setup_lj32(x0, y0, pot.kernel_args()[-1])
    accepted = 0
    for _ in range(300):
        accepted += K._sweep_lj32(x, y, x32, y32, npart, e_pair, row, rng, box, 1 / 0.75,
                                  gamma, 0.2, rc2f)
    assert accepted > 3000
    assert np.array_equal(x32, x.astype(np.float32)) and np.array_equal(y32, y.astype(np.float32))
    _, _, _, _, fresh, _, _ = K._setup_lj32(x[:npart], y[:npart], pot.kernel_args()[-1])
    np.testing.assert_allclose(e_pair, fresh, rtol=1e-6, atol=1e-6)
    pos = np.stack([x[:npart], y[:npart]], axis=1)
    cached_total = K._pair_sum_lj32(e_pair, npart) + gamma * y[:npart].sum()
    assert cached_total == pytest.approx(total_energy(pos, gamma, pot), abs=1e-4)


def test_metropolis_shortcut_decides_like_the_plain_exp_test():
    """u < exp(-x) with exp only where the bounds do not decide: the same decision as
    the plain test for random (x, u), and next to the boundary u = exp(-x) whenever u
    is more than 4 ulp away from it (closer, exp's own rounding decides either way)."""
    gen = np.random.default_rng(3)
    x = np.concatenate([10.0 ** gen.uniform(-12, 2, 200_000), gen.exponential(1.0, 200_000)])
    u = gen.integers(0, 2**53, x.size) * 2.0**-53  # the sampler's uniforms
    assert np.array_equal(_accept_all(x, u), u < np.exp(-x))
    # adversarial: u a few ulp either side of exp(-x)
    xs = np.repeat(10.0 ** np.linspace(-10, 1.5, 2000), 13)
    e = np.exp(-xs)
    k = np.tile(np.arange(-6, 7), 2000)
    ub = e + k * np.spacing(e)
    plain = ub < e
    far = np.abs(k) > 4
    assert np.array_equal(_accept_all(xs, ub)[far], plain[far])


def _accept_all(x, u):
    return _accept_all_kernel(np.ascontiguousarray(x), np.ascontiguousarray(u))


# not cached: numba does not notice changes in the inlined K._accept_uphill
@njit
def _accept_all_kernel(x, u):
    out = np.empty(x.shape[0], dtype=np.bool_)
    for k in range(x.shape[0]):
        out[k] = K._accept_uphill(x[k], u[k])
    return out


def test_sample_energy_is_full_recomputation():
    cfg = SimConfig(sweeps=200, seed=2)
    s = sample(cfg, 0.7, 20)
    np.testing.assert_allclose(s.energy, total_energy(s.positions, 0.7, cfg.potential),
                               rtol=1e-12)
    assert np.all((s.acceptance > 0) & (s.acceptance < 1))


# ------------------------------------------------------------------ reproducibility
def test_same_seed_same_samples_any_threads_and_ranges():
    cfg = SimConfig(sweeps=100, seed=42)
    a = sample(cfg, 0.4, 40, n_threads=1)
    b = sample(cfg, 0.4, 40, n_threads=2)
    c1 = sample(cfg, 0.4, 13, n_threads=2)
    c2 = sample(cfg, 0.4, 27, start=13, n_threads=1)
    assert np.array_equal(a.positions, b.positions)
    assert np.array_equal(a.positions, np.concatenate([c1.positions, c2.positions]))
    assert np.array_equal(a.energy, b.energy)
    other = sample(cfg.replace(seed=43), 0.4, 40)
    assert not np.array_equal(a.positions, other.positions)


def test_chain_in_chunks_equals_one_go():
    cfg = SimConfig(protocol="chain", equil_sweeps=200, sample_every=5, seed=1,
                    target_acceptance=0.4)
    whole = sample(cfg, 0.4, 30)
    ch = Chain(cfg, 0.4)
    parts = [ch.produce(10)]
    restored = Chain.from_state(cfg, 0.4, ch.state())
    parts += [restored.produce(20)]
    assert np.array_equal(whole.positions, np.concatenate([p.positions for p in parts]))
    assert restored.delta != cfg.delta  # tuned during equilibration, then frozen


def test_step_tuning_reaches_target():
    cfg = SimConfig(protocol="chain", equil_sweeps=2000, sample_every=10, seed=4,
                    target_acceptance=0.3)
    s = sample(cfg, 0.4, 100)
    assert s.acceptance.mean() == pytest.approx(0.3, abs=0.05)


def test_uniform_configurations():
    cfg = SimConfig(protocol="uniform", seed=9)
    s = sample(cfg, 0.4, 400)
    assert np.all(np.isnan(s.acceptance))
    x = s.positions.reshape(-1, 2)
    for k in range(2):
        assert stats.kstest(x[:, k], stats.uniform(0, 10).cdf).pvalue > 1e-4


# -------------------------------------------------------------------- equilibration
def test_study_protocol_is_not_equilibrated_at_gamma_01():
    """docs/reference.md 1: 2500 sweeps from a uniform start are not enough at gamma = 0.1."""
    chk = equilibration_check(SimConfig(seed=0), 0.1, sweeps=2500, n_samples=200)
    assert not chk.passed
    assert chk.drift_per_particle < -0.02  # energy still falling


def test_equilibrated_ideal_gas_passes_check():
    cfg = SimConfig(potential=Potential("ideal"), delta=1.5, sweeps=500, seed=0)
    chk = equilibration_check(cfg, 0.75, n_samples=300)
    assert chk.passed, chk
