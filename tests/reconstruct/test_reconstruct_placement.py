"""Placements of a shape in the box: the thermal rule against its exact conditional
law computed by quadrature (a brute-force reference over all particles, no hull, no
kinks), the lowest rule against a brute-force scan, reproducibility, and the
physics on Monte Carlo data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from reconstruct.placement import PLACEMENTS, place
from reconstruct.tumbler import tumble

BOX = 10.0
T = 0.75
N_PLACE = 40_000
P_MIN = 1e-4  # chi-square p-value below which the sampled law is rejected


def _blob(seed: int = 3) -> np.ndarray:
    """A compact 30-particle shape (about 5 x 3 sigma)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(30, 2)) * np.array([1.4, 0.8])


def _rod() -> np.ndarray:
    """An 11 sigma long, slightly bent shape: fits only in tilted orientations."""
    s = np.linspace(-5.5, 5.5, 30)
    return np.column_stack([s, 0.15 * s**2 / 5.5 + 0.3 * np.sin(3 * s)])


def _reference(q: np.ndarray, gamma: float, n_theta: int = 36_000):
    """theta grid (radians), weight f(theta) and, per theta, the COM's lowest height
    lo, the free height z = L - h: from every particle, by brute force."""
    th = (np.arange(n_theta) + 0.5) * 2 * np.pi / n_theta
    c, s = np.cos(th)[:, None], np.sin(th)[:, None]
    q = q - q.mean(axis=0)
    x = c * q[:, 0] - s * q[:, 1]
    y = s * q[:, 0] + c * q[:, 1]
    w = x.max(axis=1) - x.min(axis=1)
    h = y.max(axis=1) - y.min(axis=1)
    lo = -y.min(axis=1)
    z = np.clip(BOX - h, 0.0, None)
    b = gamma * q.shape[0] / T
    ez = z if b == 0 else -np.expm1(-b * z) / b
    f = np.clip(BOX - w, 0.0, None) * np.exp(-b * (lo - lo.min())) * ez
    return th, f, lo, z, b


def _chi2_p(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = probs / probs.sum() * counts.sum()
    keep = expected > 5
    chi2 = np.sum((counts[keep] - expected[keep]) ** 2 / expected[keep])
    return float(stats.chi2.sf(chi2, keep.sum() - 1))


def _placements(q, gamma, seed=11, **kw):
    return place(np.repeat(q[None], N_PLACE, axis=0), BOX, "thermal", gamma=gamma,
                 temperature=T, seed=seed, **kw)


@pytest.mark.parametrize("gamma", [0.0, 0.4, 1.0])
@pytest.mark.parametrize("shape", [_blob, _rod], ids=["blob", "rod"])
def test_thermal_theta_law(shape, gamma):
    q = shape()
    res = _placements(q, gamma)
    assert res.fits.all()
    assert np.all((res.positions >= 0) & (res.positions <= BOX))
    th, f, *_ = _reference(q, gamma)
    edges = np.linspace(0, 2 * np.pi, 91)
    counts, _ = np.histogram(res.theta, edges)
    probs = np.add.reduceat(f, np.searchsorted(th, edges[:-1]))
    assert _chi2_p(counts, probs) > P_MIN


@pytest.mark.parametrize("gamma", [0.0, 0.4])
@pytest.mark.parametrize("shape", [_blob, _rod], ids=["blob", "rod"])
def test_thermal_height_law(shape, gamma):
    """y0 (COM height): a mixture over theta of exponentials truncated to [lo, lo + z]."""
    q = shape()
    res = _placements(q, gamma, seed=12)
    th, f, lo, z, b = _reference(q, gamma, n_theta=7200)
    p_theta = f / f.sum()
    edges = np.linspace(res.com_height.min(), res.com_height.max(), 41)

    def cdf(y):  # P(y0 <= y), mixture over the theta grid
        t = np.clip(y - lo, 0.0, z)
        if b == 0:
            part = np.divide(t, z, out=np.zeros_like(t), where=z > 0)
        else:
            part = np.divide(np.expm1(-b * t), np.expm1(-b * z), out=np.zeros_like(t),
                             where=z > 0)
        return np.sum(p_theta * part)

    probs = np.diff([cdf(e) for e in edges])
    counts, _ = np.histogram(res.com_height, edges)
    assert _chi2_p(counts, probs) > P_MIN


def _far_placements(q, gamma, cut, share, seed=21, n_bins=128):
    """Thermal placements through the kernel with the far group's cut and share set."""
    from reconstruct import _placement as P
    pos = np.ascontiguousarray(np.repeat(q[None], N_PLACE, axis=0))
    b = np.full(N_PLACE, gamma * q.shape[0] / T)
    out, info = np.empty_like(pos), np.empty((N_PLACE, P.N_INFO))
    key = np.random.SeedSequence(seed).generate_state(2, np.uint64)
    P._thermal_batch(pos, BOX, b, n_bins, key[0], key[1], 0, out, info, cut, share)
    return out, info


@pytest.mark.parametrize(("shape", "gamma", "cut", "share"),
                         [(_blob, 0.4, 3.0, np.inf), (_blob, 1.0, 3.0, np.inf),
                          (_rod, 0.4, 4.0, None)], ids=["blob-0.4", "blob-1", "rod-fallback"])
def test_thermal_far_group_law(shape, gamma, cut, share):
    """The far bins, bounded together by one constant (``_bound_intervals``), with a
    cut low enough that they carry a sizeable share of the law: theta still follows
    the exact law, and a part of the accepted placements comes from the far group.
    For the rod (it fits in narrow tilted windows only) the constant bound would be
    far above the near bins' with that cut, so the default share turns the far group
    off: everything fits, the law holds, nothing comes from the far group."""
    from reconstruct import _placement as P
    q = shape()
    out, info = _far_placements(q, gamma, cut, P.FAR_SHARE if share is None else share)
    assert np.all(info[:, P.INFO_FITS] == 1.0)
    assert np.all((out >= 0) & (out <= BOX))
    th, f, *_ = _reference(q, gamma)
    edges = np.linspace(0, 2 * np.pi, 91)
    counts, _ = np.histogram(info[:, P.INFO_THETA], edges)
    probs = np.add.reduceat(f, np.searchsorted(th, edges[:-1]))
    assert _chi2_p(counts, probs) > P_MIN
    from_far = info[:, P.INFO_FAR].mean()
    if share is None:
        assert from_far == 0.0
    else:
        assert from_far > 0.01


def test_thermal_mirror_and_offsets():
    """Mirror images with probability 1/2; the COM's x offset uniform over the width
    that keeps the shape inside (checked through the COM's x on the free range)."""
    q = _blob()
    res = _placements(q, 0.4, seed=13)
    k = res.reflected.sum()
    assert abs(k - N_PLACE / 2) < 4 * np.sqrt(N_PLACE / 4)
    u = res.positions[:, :, 0].min(axis=1) / (BOX - res.width)  # uniform if x0 is
    assert stats.kstest(u, "uniform").pvalue > P_MIN


def test_thermal_reproducible_and_batch_invariant():
    rng = np.random.default_rng(5)
    q = rng.normal(size=(50, 30, 2)) * 1.5
    g = rng.uniform(0, 1, 50)
    a = place(q, BOX, gamma=g, temperature=T, seed=4)
    b = place(q, BOX, gamma=g, temperature=T, seed=4)
    assert np.array_equal(a.positions, b.positions)
    parts = [place(q[s:s + 7], BOX, gamma=g[s:s + 7], temperature=T, seed=4, start=s)
             for s in range(0, 50, 7)]
    assert np.array_equal(np.concatenate([p.positions for p in parts]), a.positions)
    c = place(q, BOX, gamma=g, temperature=T, seed=5)
    assert not np.array_equal(c.positions, a.positions)
    # the law does not depend on the input frame: rotating the input only shifts theta
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])
    d = place(q @ rot.T, BOX, gamma=g, temperature=T, seed=4)
    assert d.fits.all() and a.fits.all()


def test_shape_that_never_fits_is_flagged_not_clipped():
    q = np.column_stack([np.linspace(0, 15, 30), np.zeros(30)])  # 15 sigma rod
    for rule in ("thermal", "lowest"):
        res = place(q, BOX, rule, gamma=0.4, temperature=T)
        assert not res.fits[0]
        span = res.positions[0].max(axis=0) - res.positions[0].min(axis=0)
        assert span.max() == pytest.approx(15.0)


def test_lowest_is_the_least_energy_fitting_placement():
    rng = np.random.default_rng(8)
    shapes = [_blob(s) for s in range(10)] + [_rod(), rng.normal(size=(30, 2)) * [2.2, 1]]
    for q in shapes:
        res = place(q, BOX, "lowest")
        assert res.fits[0]
        p = res.positions[0]
        assert p.min() >= 0 and p.max() <= BOX
        assert p[:, 1].min() == pytest.approx(0.0, abs=1e-9)
        th, f, lo, z, _ = _reference(q, 0.0, n_theta=72_000)
        w_ok = f > 0  # orientations that fit (with some width to spare)
        assert res.com_height[0] <= lo[w_ok].min() + 1e-6
        edge = tumble(q, BOX)
        if edge.fits[0]:  # the study's rule is optimal when it fits
            assert res.com_height[0] == pytest.approx(edge.com_height[0], abs=1e-9)


def test_placement_errors():
    q = _blob()
    with pytest.raises(ValueError, match="placement"):
        place(q, BOX, "nope")
    with pytest.raises(ValueError, match="gamma and temperature"):
        place(q, BOX, "thermal")
    with pytest.raises(ValueError, match="gamma"):
        place(q, BOX, gamma=-1.0, temperature=T)
    with pytest.raises(ValueError, match="temperature"):
        place(q, BOX, gamma=1.0, temperature=0.0)
    with pytest.raises(ValueError, match="coords"):
        place(np.full((30, 2), np.nan), BOX, gamma=1.0, temperature=T)
    assert set(PLACEMENTS) == {"thermal", "lowest", "edge"}


def test_thermal_reconstructs_mc_heights():
    """Exact matrices of equilibrated MC data: given the shape, the original COM
    height and the thermal one follow the same conditional law, so their paired
    difference has mean zero (z-test on its own error bar); the lowest rule sits
    measurably low (the test can fail)."""
    from mcsim.sampler import SimConfig, sample
    from reconstruct import distance_matrices, embed_distances

    gamma = 1.0
    data = sample(SimConfig(sweeps=5000, seed=21), gamma, 300)
    emb = embed_distances(distance_matrices(data.positions))
    y_orig = data.positions[:, :, 1].mean(axis=1)
    thermal = place(emb.coords, BOX, gamma=gamma, temperature=0.75, seed=2)
    assert thermal.fits.all()
    diff = thermal.com_height - y_orig
    z = diff.mean() / (diff.std(ddof=1) / np.sqrt(diff.size))
    assert abs(z) < 4
    low = place(emb.coords, BOX, "lowest").com_height - y_orig
    assert low.mean() / (low.std(ddof=1) / np.sqrt(low.size)) < -6


@pytest.mark.parametrize("n_bins", [128, 12, 30])
def test_grid_and_kink_extents_follow_from_the_first_quadrant(n_bins):
    """The extents on the angle grid and at the kinks, derived from a quarter of the
    angles by quarter turns, equal those computed directly from every hull vertex at
    the same cosines and sines, bit for bit; and the table is cos, sin to rounding."""
    from reconstruct import _geometry as P
    tab = P._angle_table(n_bins)
    th = np.arange(n_bins + 1) * 2 * np.pi / n_bins
    assert np.allclose(tab, [np.cos(th), np.sin(th)], rtol=0, atol=1e-15)
    rng = np.random.default_rng(7)
    for _ in range(20):
        q = rng.normal(size=(30, 2)) * rng.uniform(0.5, 3.0, 2)
        x, y = q[:, 0].copy(), q[:, 1].copy()
        hx, hy = np.empty(61), np.empty(61)
        nh, *_ = P._hull_frame(x, y, hx, hy, np.empty(30, np.int64), np.empty(61, np.int64))
        derived = np.empty((3, n_bins + 1))
        P._grid_extents(hx, hy, nh, tab, n_bins, derived[0], derived[1], derived[2],
                        np.empty((4, n_bins + 64)))
        direct = np.empty((3, n_bins + 1))
        P._rotated_extents(hx, hy, nh, tab[0], tab[1], n_bins + 1, direct[0], direct[1],
                           direct[2], np.empty(n_bins + 1))
        assert np.array_equal(derived, direct)
        kinks, kcs = np.empty(8 * 30 + 4), np.empty((2, 8 * 30 + 4))
        nk = P._kinks(hx, hy, nh, kinks, kcs)
        kd, kx = np.empty((3, nk)), np.empty((3, nk))
        P._kink_extents(hx, hy, nh, kcs, nk, kd, np.empty((4, 64)), np.empty((2, 64)))
        P._rotated_extents(hx, hy, nh, np.ascontiguousarray(kcs[0, :nk]),
                           np.ascontiguousarray(kcs[1, :nk]), nk, kx[0], kx[1], kx[2],
                           np.empty(nk))
        assert np.array_equal(kd, kx)
        # and both are the extents of every particle (the hull is enough)
        c, s = np.cos(th)[:, None], np.sin(th)[:, None]
        qc = q - q.mean(axis=0)
        yr = s * qc[:, 0] + c * qc[:, 1]
        assert np.allclose(derived[0], yr.min(axis=1), atol=1e-12)
