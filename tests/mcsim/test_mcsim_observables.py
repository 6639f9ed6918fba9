"""Observables: exact normalisations, and the wall sum rule on the study's system."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from mcsim.config import SimConfig
from mcsim.observables import (
    contact_densities,
    density_profile,
    pair_distance_distribution,
    pair_distances,
    square_pair_pdf,
)
from mcsim.sampler import sample


def test_square_pair_pdf_is_the_uniform_distance_law():
    box = 3.0
    total = integrate.quad(lambda r: square_pair_pdf(np.array([r]), box)[0], 0,
                           box * math.sqrt(2), points=[box])[0]
    assert total == pytest.approx(1.0, abs=1e-10)
    mean = integrate.quad(lambda r: r * square_pair_pdf(np.array([r]), box)[0], 0,
                          box * math.sqrt(2), points=[box])[0]
    # mean distance of two uniform points in the unit square (Weisstein): 0.521405...
    assert mean / box == pytest.approx(0.5214054331647207, abs=1e-9)
    pts = np.random.default_rng(0).uniform(0, box, (20000, 2, 2))
    d = pair_distances(pts).ravel()

    def cdf(r):
        return np.array([integrate.quad(lambda t: square_pair_pdf(np.array([t]), box)[0],
                                        0, x, points=[min(box, x)])[0] for x in np.atleast_1d(r)])

    grid = np.linspace(0, box * math.sqrt(2), 400)
    cdf_grid = cdf(grid)
    assert stats.kstest(d, lambda r: np.interp(r, grid, cdf_grid)).pvalue > 1e-3


def test_uniform_points_have_flat_g_and_density():
    pos = np.random.default_rng(1).uniform(0, 10, (4000, 10, 2))
    _, _, g = pair_distance_distribution(pos, 10.0, bins=20, r_max=10.0)
    assert np.all(np.abs(g - 1) < 0.08)
    y, rho = density_profile(pos, 10.0, bins=10)
    assert np.sum(rho) * (y[1] - y[0]) * 10.0 == pytest.approx(10.0)  # integrates to N
    assert np.all(np.abs(rho - 0.1) < 0.01)


@pytest.mark.slow
def test_wall_sum_rule_lj_in_field():
    """kT [rho(0+) - rho(H-)] = N gamma / W for any pair interaction (docs/reference.md 2),
    here on the study's system (N = 30, L = 10, T = 0.75, LJ cut at 3) at gamma = 1.
    The contact density is extrapolated linearly from layers of width w and 2w; the
    tolerance is 4 standard errors (Poisson counts, propagated)."""
    cfg = SimConfig(sweeps=4000, seed=11)
    gamma, w = 1.0, 0.04
    pos = sample(cfg, gamma, 3000).positions
    f1, _, c1, _ = contact_densities(pos, 10.0, w)
    f2, _, c2, _ = contact_densities(pos, 10.0, 2 * w)
    # layer average over [0, w] = rho0 + rho' w / 2 + O(w^2): extrapolate to contact
    floor, ceiling = 2 * f1 - f2, 2 * c1 - c2
    # error: with n1 counts in [0, w] and n2 in [w, 2w], 2 f1 - f2 = (3 n1 - n2) / (2 A w)
    y = pos[:, :, 1]
    area = pos.shape[0] * cfg.box * w
    var = 0.0
    for inner, outer in (((y < w), (y >= w) & (y < 2 * w)),
                         ((y > 10 - w), (y <= 10 - w) & (y > 10 - 2 * w))):
        var += (9 * inner.sum() + outer.sum()) / (2 * area) ** 2
    lhs = cfg.temperature * (floor - ceiling)
    rhs = cfg.n_particles * gamma / cfg.box
    err = cfg.temperature * math.sqrt(var)
    assert abs(lhs - rhs) < 4 * err, (lhs, rhs, err)
