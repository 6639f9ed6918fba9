"""Evaluation metrics: reflection-aware RMSD, distance error, energy distribution
distances with bootstrap errors, height profiles."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import orthogonal_procrustes
from scipy.stats import wasserstein_distance

from mcsim.potentials import Potential, pair_energy, total_energy
from reconstruct import (
    compare_energies,
    compare_energy_samples,
    distance_error,
    distance_matrices,
    energy_bin_edges,
    height_profile,
    js_distance,
    placement_rmsd,
    rmsd,
    rmsd_reference,
)

LJ = Potential("lj", cutoff=3.0)


def _clouds(seed: int, m: int = 5, n: int = 20) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 10.0, (m, n, 2))


def _rigid(x: np.ndarray, theta: float, shift, mirror: bool) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    y = x @ np.array([[c, -s], [s, c]]).T + np.asarray(shift)
    if mirror:
        y[..., 0] = -y[..., 0]
    return y


# ------------------------------------------------------------------------ RMSD
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), theta=st.floats(0, 2 * math.pi),
       mirror=st.booleans(), noise=st.sampled_from([0.0, 0.01, 1.0]))
def test_rmsd_matches_svd_reference_and_procrustes(seed, theta, mirror, noise):
    a = _clouds(seed)
    b = _rigid(a, theta, (3.0, -2.0), mirror)
    b = b + noise * np.random.default_rng(seed + 1).normal(size=b.shape)
    for refl in (True, False):
        np.testing.assert_allclose(rmsd(a, b, allow_reflection=refl),
                                   rmsd_reference(a, b, allow_reflection=refl), atol=1e-12)
    # scipy's orthogonal Procrustes (reflections allowed) on centred coordinates
    ac, bc = a[0] - a[0].mean(0), b[0] - b[0].mean(0)
    r, _ = orthogonal_procrustes(ac, bc)
    expect = np.sqrt(np.mean(np.sum((ac @ r - bc) ** 2, axis=1)))
    assert rmsd(a[:1], b[:1])[0] == pytest.approx(expect, abs=1e-12)


def test_rmsd_is_zero_for_rigid_copies_and_mirror_aware():
    a = _clouds(1)
    mirrored = _rigid(a, 0.7, (5, 5), True)
    assert rmsd(a, mirrored).max() < 1e-13
    assert rmsd(a, mirrored, allow_reflection=False).min() > 0.1
    assert rmsd(a, _rigid(a, 2.0, (-1, 3), False), allow_reflection=False).max() < 1e-13


def test_placement_rmsd():
    a = _clouds(2)
    shifted = a + np.array([2.5, 0.0])
    mirrored = a.copy()
    mirrored[..., 0] = 10.0 - mirrored[..., 0]
    assert placement_rmsd(a, shifted).max() < 1e-12
    assert placement_rmsd(a, mirrored).max() < 1e-12
    lifted = a + np.array([0.0, 0.3])
    np.testing.assert_allclose(placement_rmsd(a, lifted), 0.3)


def test_distance_error():
    a = _clouds(3, 2, 6)
    d = distance_matrices(a)
    rms, worst = distance_error(d, a)
    assert rms.max() < 1e-13 and worst.max() < 1e-13
    d2 = d.copy()
    d2[1, 0, 3] = d2[1, 3, 0] = d[1, 0, 3] + 0.6
    rms, worst = distance_error(d2, a)
    assert worst[1] == pytest.approx(0.6) and worst[0] < 1e-13
    assert rms[1] == pytest.approx(0.6 / math.sqrt(15))


# ---------------------------------------------------------------------- energy
def test_energy_bin_edges_have_equal_counts():
    x = np.random.default_rng(4).normal(size=3000)
    edges = energy_bin_edges(x, 30)
    assert edges[0] == -np.inf and edges[-1] == np.inf and len(edges) == 31
    counts = np.histogram(x, edges)[0]
    assert counts.min() >= 99 and counts.max() <= 101


def test_js_distance_bounds():
    rng = np.random.default_rng(5)
    a = rng.normal(size=2000)
    edges = energy_bin_edges(a, 20)
    assert js_distance(a, a, edges) == 0.0
    # all of the shifted sample falls in the open last bin, which also holds 1/20 of a
    p, q = np.full(20, 0.05), np.eye(20)[-1]
    mix = 0.5 * (p + q)
    jsd = 0.5 * (np.sum(p * np.log2(p / mix)) + np.log2(1.0 / mix[-1]))
    assert js_distance(a, a + 100.0, edges) == pytest.approx(np.sqrt(jsd), rel=1e-12)
    assert 0.0 < js_distance(a, a + 0.3, edges) < js_distance(a, a + 1.0, edges) < 1.0


def test_identical_configurations_compare_equal():
    x = _clouds(6, 50, 12)
    c = compare_energies(x, x.copy(), 0.5, LJ, n_boot=20)
    assert np.all(c.difference == 0.0)
    assert c.w1 == 0.0 and c.js == 0.0 and c.w1_err == 0.0 and c.js_err == 0.0
    np.testing.assert_array_equal(c.original, total_energy(x, 0.5, LJ))


def test_lifting_every_configuration_shifts_the_energy_by_gravity():
    """Raising all particles by h adds exactly gamma N h: W1 is that shift."""
    gamma, h, n = 0.7, 0.25, 12
    grid = np.stack(np.meshgrid(np.arange(4.0), np.arange(3.0)), -1).reshape(-1, 2) * 1.5
    x = grid + np.random.default_rng(7).uniform(-0.2, 0.2, (80, n, 2)) + 1.0
    c = compare_energies(x, x + np.array([0.0, h]), gamma, LJ, n_boot=50, seed=3)
    np.testing.assert_allclose(c.difference, gamma * n * h, rtol=1e-9)
    assert c.w1 == pytest.approx(gamma * n * h, rel=1e-9)
    assert c.w1 == pytest.approx(wasserstein_distance(c.original, c.reconstructed))


def test_close_pairs_are_never_skipped():
    """A reconstruction with an overlapping pair carries its full repulsion."""
    x = np.array([[[1.0, 1.0], [3.0, 1.0], [5.0, 1.0]]] * 4)
    y = x.copy()
    y[:, 1, 0] = 1.5  # particle 1 at r = 0.5 from particle 0
    c = compare_energies(x, y, 0.0, LJ, n_boot=5)
    u = pair_energy(np.array([0.5, 3.5, 2.0, 2.0, 4.0]), LJ)
    np.testing.assert_allclose(c.difference, (u[0] + u[1]) - (u[2] + u[3] + u[4]))
    assert c.difference[0] > 1e4


def test_bootstrap_is_seeded_and_its_error_is_sensible():
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 10, (300, 10, 2))
    y = x + rng.normal(0, 0.05, x.shape)
    a = compare_energies(x, y, 1.0, LJ, n_boot=100, seed=1)
    b = compare_energies(x, y, 1.0, LJ, n_boot=100, seed=1)
    c = compare_energies(x, y, 1.0, LJ, n_boot=100, seed=2)
    assert (a.w1_err, a.js_err) == (b.w1_err, b.js_err)
    assert a.w1_err != c.w1_err
    assert 0 < a.w1_err < a.w1 and 0 < a.js_err < 1


def test_compare_energies_rejects_mismatched_inputs():
    with pytest.raises(ValueError):
        compare_energies(_clouds(9, 3, 5), _clouds(9, 3, 6), 0.1, LJ)
    with pytest.raises(ValueError):
        compare_energies(_clouds(9, 3, 5), _clouds(9, 3, 5), 0.1, LJ, n_boot=1)


# ---------------------------------------------------------------- height rho(y)
def test_height_profile_of_uniform_points_is_flat_within_errors():
    box, n, m = 10.0, 20, 500
    x = np.random.default_rng(10).uniform(0, box, (m, n, 2))
    p = height_profile(x, box, n_bins=20)
    assert p.outside == 0.0
    assert np.sum(p.rho) * box * (box / 20) == pytest.approx(n)
    z = (p.rho - n / box**2) / p.rho_err
    assert np.all(np.abs(z) < 5)


def test_height_profile_agrees_with_mcsim_density_profile():
    from mcsim.observables import density_profile

    x = np.random.default_rng(12).uniform(0, 10.0, (50, 15, 2))
    y, rho = density_profile(x, 10.0, bins=25)
    p = height_profile(x, 10.0, n_bins=25)
    np.testing.assert_allclose(p.centers, y)
    np.testing.assert_allclose(p.rho, rho, rtol=1e-12)


def test_height_profile_barometric_law():
    """Heights drawn from p(y) ~ exp(-b y) on [0, H]: rho follows it within errors."""
    b, box, n, m = 0.8, 10.0, 10, 2000
    rng = np.random.default_rng(11)
    u = rng.uniform(size=(m, n))
    y = -np.log(1 - u * (1 - np.exp(-b * box))) / b
    x = np.stack([rng.uniform(0, box, (m, n)), y], -1)
    p = height_profile(x, box, n_bins=25)
    lo, hi = p.edges[:-1], p.edges[1:]
    dy = box / 25
    expect = n * (np.exp(-b * lo) - np.exp(-b * hi)) / (1 - np.exp(-b * box)) / (box * dy)
    z = (p.rho - expect) / np.maximum(p.rho_err, 1e-12)
    assert np.all(np.abs(z) < 5)


def test_height_profile_counts_particles_outside():
    x = np.array([[[1.0, 0.0], [2.0, 10.0], [3.0, 11.0], [4.0, -0.5]]])
    p = height_profile(x, 10.0, n_bins=10)
    assert p.outside == 2.0
    assert p.rho[0] == 0.1 and p.rho[-1] == 0.1  # one particle / (L dy = 10)


def test_evaluate_reconstruction_collects_what_its_inputs_allow():
    from reconstruct import evaluate_reconstruction, reconstruct_configurations

    grid = np.stack(np.meshgrid(np.arange(5.0), np.arange(2.0)), -1).reshape(-1, 2) * 1.2
    x = grid + np.random.default_rng(13).uniform(-0.1, 0.1, (30, 10, 2)) + [2.0, 0.0]
    x[..., 1] -= x[..., 1].min(axis=1, keepdims=True)  # resting on the floor
    d = distance_matrices(x)
    rec = reconstruct_configurations(d, 10.0, placement="edge")
    bare = evaluate_reconstruction(rec, d)
    assert bare.rmsd is None and bare.energy is None and bare.energies is None
    assert bare.distance_rms.max() < 1e-12
    full = evaluate_reconstruction(rec, d, original=x, gamma=1.0, potential=LJ, n_boot=20)
    assert full.rmsd.max() < 1e-12
    np.testing.assert_allclose(full.energy, total_energy(rec.positions, 1.0, LJ))
    # a flat-bottomed lattice resting on the floor is found in its own orientation
    assert np.median(full.placement_rmsd) < 0.1
    assert set(full.extra()) == {"distance_rms", "rmsd", "placement_rmsd", "energy_original"}
    assert {"energy_w1", "energy_js_err", "rmsd_median"} <= set(full.summary())
    nan = evaluate_reconstruction(rec, d, original=x, gamma=np.nan, potential=LJ)
    assert nan.energy is None and nan.energies is None and nan.rmsd is not None


def test_compare_energy_samples_equals_compare_energies_on_the_same_energies():
    rng = np.random.default_rng(9)
    x = rng.uniform(0, 10, (120, 10, 2))
    y = x + rng.normal(0, 0.1, x.shape)
    a = compare_energies(x, y, 0.4, LJ, n_bins=15, n_boot=40, seed=4)
    b = compare_energy_samples(total_energy(x, 0.4, LJ), total_energy(y, 0.4, LJ),
                               n_bins=15, n_boot=40, seed=4)
    assert a.summary() == b.summary()
    np.testing.assert_array_equal(a.edges, b.edges)
    with pytest.raises(ValueError):
        compare_energy_samples(np.zeros(5), np.zeros(6))
    with pytest.raises(ValueError):
        compare_energy_samples(np.zeros(5), np.zeros(5), n_boot=1)
