"""Pair potentials and the three energy levels, against exact values and a slow reference."""

import math
import warnings

import numpy as np
import pytest
from scipy import integrate

from mcsim.potentials import Potential, pair_energy, particle_energy, total_energy


def u_reference(r, n=12.0, m=6.0, cutoff=None):
    """Obviously-correct pair energy 4 (r^-n - r^-m), cut at ``cutoff``."""
    r = np.asarray(r, dtype=float)
    u = 4.0 * (r ** (-n) - r ** (-m))
    return np.where(r < (cutoff if cutoff is not None else np.inf), u, 0.0)


def total_reference(pos, gamma, n=12.0, m=6.0, cutoff=None):
    e = 0.0
    for i in range(len(pos)):
        for j in range(i + 1, len(pos)):
            e += float(u_reference(np.linalg.norm(pos[i] - pos[j]), n, m, cutoff))
    return e + gamma * pos[:, 1].sum()


def test_lj_minimum_and_zero():
    lj = Potential("lj", cutoff=None)
    r_min = 2 ** (1 / 6)
    assert pair_energy(r_min, lj) == pytest.approx(-1.0, abs=1e-14)
    assert pair_energy(1.0, lj) == pytest.approx(0.0, abs=1e-14)
    # it is the minimum: neighbours are higher
    assert pair_energy(r_min * (1 + 1e-4), lj) > -1.0
    assert pair_energy(r_min * (1 - 1e-4), lj) > -1.0
    assert lj.r_min() == pytest.approx(r_min)


@pytest.mark.parametrize(("n", "m"), [(4.0, 2.0), (12.0, 6.0), (9.0, 3.0)])
def test_nm_minimum(n, m):
    pot = Potential("nm", n=n, m=m, cutoff=None)
    r0 = (n / m) ** (1 / (n - m))
    assert pot.r_min() == pytest.approx(r0)
    u0 = 4 * (r0**-n - r0**-m)
    assert pair_energy(r0, pot) == pytest.approx(u0, rel=1e-13)
    # central difference: truncation ~h^2 u'''/6 ~ 1e-9, rounding ~eps/h ~ 1e-10,
    # while a 1 % error in r0 would give |u'| ~ 0.1
    h = 1e-6
    grad = (pair_energy(r0 + h, pot) - pair_energy(r0 - h, pot)) / (2 * h)
    assert abs(grad) < 1e-6
    assert pair_energy(r0 * 1.01, pot) > u0 and pair_energy(r0 * 0.99, pot) > u0


def test_fake_potential_is_4_2():
    pot = Potential.parse("nm:4,2", cutoff=None)
    r = np.linspace(0.8, 5, 50)
    np.testing.assert_allclose(pair_energy(r, pot), 4 * (r**-4 - r**-2), rtol=1e-13)
    assert pot.spec == "nm:4,2"


def test_cutoff_is_plain_not_shifted():
    pot = Potential("lj", cutoff=3.0)
    assert pair_energy(2.999, pot) == pytest.approx(float(u_reference(2.999)), rel=1e-12)
    assert pair_energy(3.0, pot) == 0.0 and pair_energy(5.0, pot) == 0.0


def test_overlaps_stay_finite_without_warnings():
    pos = np.zeros((30, 2))  # every particle on the same point
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for spec in ("lj", "nm:4,2", "nm:48,47"):
            e = total_energy(pos, 0.4, Potential.parse(spec, None))
            assert np.isfinite(e) and e > 1e14  # 435 pairs, each capped at u(1e-3)
        assert np.all(np.isfinite(pair_energy([0.0, 1e-300, 1e-5], Potential())))


@pytest.mark.parametrize(
    ("temperature", "b2"), [(0.5, -5.986709), (1.0, -1.073474), (2.0, 0.350676)]
)
def test_second_virial_coefficient(temperature, b2):
    """B2 = -pi int (exp(-u/T) - 1) r dr of the full 2D LJ potential (docs/reference.md 2)."""
    lj = Potential("lj", cutoff=None)

    def f(r):
        return (math.exp(-float(pair_energy(r, lj)) / temperature) - 1.0) * r

    pts = [0.8, 1.0, 2 ** (1 / 6), 1.5, 3.0]
    val = -0.5e-6  # r < 1e-3: exp(-u/T) = 0 to double precision, integral of -r dr
    val += integrate.quad(f, 1e-3, 10.0, points=pts, limit=400, epsabs=1e-11)[0]
    val += integrate.quad(f, 10.0, 300.0, limit=400, epsabs=1e-11)[0]
    val += 300.0**-4 / temperature  # tail: exp(-u/T) - 1 ~ 4 r^-6 / T beyond 300
    assert -math.pi * val == pytest.approx(b2, abs=1e-6)  # reference has 6 decimals


@pytest.mark.parametrize("spec", ["lj", "nm:4,2", "ideal"])
@pytest.mark.parametrize("cutoff", [3.0, None])
def test_energy_levels_against_reference(spec, cutoff, rng):
    pot = Potential.parse(spec, cutoff)
    n, m = (pot.n, pot.m) if spec != "ideal" else (12.0, 6.0)
    pos = rng.uniform(0, 6, (3, 12, 2))
    gam = np.array([0.0, 0.4, 1.3])
    got = total_energy(pos, gam, pot)
    for k in range(3):
        ref = (total_reference(pos[k], gam[k], n, m, cutoff) if spec != "ideal"
               else gam[k] * pos[k, :, 1].sum())
        assert got[k] == pytest.approx(ref, rel=1e-12, abs=1e-12)
    # level 2 is consistent with level 3: U = 1/2 sum_i (e_i - gamma y_i) + gamma sum y
    g = 0.7
    e_i = np.array([particle_energy(pos[0], i, g, pot) for i in range(12)])
    pair_part = 0.5 * (e_i - g * pos[0, :, 1]).sum()
    assert pair_part + g * pos[0, :, 1].sum() == pytest.approx(
        total_energy(pos[0], g, pot), rel=1e-12, abs=1e-12)


def test_bad_potential_specs():
    for bad in ("foo", "nm:4", "nm:a,b", "nm:2,4"):
        with pytest.raises(ValueError):
            Potential.parse(bad)
    with pytest.raises(ValueError):
        Potential("lj", cutoff=-1.0)
    with pytest.raises(ValueError):
        total_energy(np.full((3, 2), np.nan), 0.1, Potential())


def test_pair_energy_of_non_contiguous_arrays():
    """A transposed or fancy-indexed array of distances gives the same energies as its
    contiguous copy (reshape of a non-contiguous array copies; nothing may be lost)."""
    lj = Potential("lj", cutoff=3.0)
    r = np.linspace(0.9, 3.5, 12).reshape(3, 4)
    expected = pair_energy(np.ascontiguousarray(r.T), lj)
    np.testing.assert_array_equal(pair_energy(r.T, lj), expected)
    np.testing.assert_array_equal(pair_energy(r[:, ::2], lj), pair_energy(r[:, ::2].copy(), lj))
    assert pair_energy(r.T, lj).shape == (4, 3)


def test_even_exponents_use_products_with_pow_accuracy():
    """n-m potentials with even exponents (the study's 4-2) multiply powers of 1/r^2
    instead of calling pow: same values to rounding, for even and odd exponents."""
    from mcsim import _kernels as K

    r = np.linspace(0.7, 6.0, 200)
    for n, m in ((4, 2), (12, 6), (48, 46), (5, 3), (7.5, 2.5)):
        pot = Potential("nm", n=n, m=m, cutoff=None)
        np.testing.assert_allclose(pair_energy(r, pot), u_reference(r, n, m), rtol=1e-13,
                                   atol=1e-300)
    for half in (0.0, 1.0, 2.0, 24.0, 1.5):
        assert K._inv_pow(1.7, half) == pytest.approx(1.7 ** -half, rel=1e-14)
