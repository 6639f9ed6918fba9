"""Observables and equilibration diagnostics.

* :func:`density_profile`: number density rho(y) per unit area.
* :func:`pair_distance_distribution`: pair-distance density p(r) and the box-corrected
  g(r) = p(r) / p_uniform(r), where p_uniform is the exact distance density of two
  uniform points in the square (square line picking, :func:`square_pair_pdf`).
* :func:`contact_densities`: densities at the floor and ceiling, for the wall sum rule
  kT [rho(0+) - rho(H-)] = N gamma / W (docs/reference.md 2).
* :func:`equilibration_check`: is ``S`` sweeps from a uniform start enough?
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from mcsim.config import SimConfig
from mcsim.sampler import energies_at

__all__ = [
    "density_profile",
    "pair_distances",
    "square_pair_pdf",
    "pair_distance_distribution",
    "contact_densities",
    "EquilibrationCheck",
    "equilibration_check",
    "scan_sweeps",
]


def _positions(positions: np.ndarray) -> np.ndarray:
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim == 2:
        pos = pos[None]
    if pos.ndim != 3 or pos.shape[2] != 2:
        raise ValueError(f"positions: expected (N, 2) or (M, N, 2), got {pos.shape}")
    return pos


def density_profile(positions: np.ndarray, box: float, bins: int = 50
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Number density per unit area as a function of height.

    Args:
        positions: (M, N, 2) coordinates, sigma.
        box: box side L (the accessible width W = L).
        bins: number of equal bins on [0, L].

    Returns:
        (y, rho): bin centres (bins,) and rho(y) = <counts> / (W dy), so that
        integral rho(y) W dy = N.
    """
    pos = _positions(positions)
    edges = np.linspace(0.0, box, bins + 1)
    counts, _ = np.histogram(pos[:, :, 1].ravel(), bins=edges)
    dy = edges[1] - edges[0]
    rho = counts / (pos.shape[0] * box * dy)
    return 0.5 * (edges[1:] + edges[:-1]), rho


def pair_distances(positions: np.ndarray) -> np.ndarray:
    """All pair distances r_ij, i < j: shape (M, N(N-1)/2), sigma."""
    pos = _positions(positions)
    iu, ju = np.triu_indices(pos.shape[1], k=1)
    d = pos[:, iu, :] - pos[:, ju, :]
    return np.sqrt(np.einsum("mpk,mpk->mp", d, d))


def square_pair_pdf(r: np.ndarray, box: float) -> np.ndarray:
    """Density of the distance between two independent uniform points in a square of
    side ``box`` (square line picking; e.g. Weisstein, MathWorld "Square Line Picking").

    With s = r / L: f(s) = 2 s (pi - 4 s + s^2) for 0 <= s <= 1 and
    f(s) = 2 s (4 sqrt(s^2 - 1) - (s^2 + 2 - pi) - 4 arcsec(s)) for 1 < s <= sqrt 2;
    the density in r is f(r / L) / L.
    """
    s = np.asarray(r, dtype=np.float64) / box
    out = np.zeros_like(s)
    a = (s >= 0) & (s <= 1)
    out[a] = 2 * s[a] * (math.pi - 4 * s[a] + s[a] ** 2)
    b = (s > 1) & (s <= math.sqrt(2))
    sb = s[b]
    out[b] = 2 * sb * (4 * np.sqrt(sb**2 - 1) - (sb**2 + 2 - math.pi) - 4 * np.arccos(1 / sb))
    return np.clip(out, 0.0, None) / box


def pair_distance_distribution(positions: np.ndarray, box: float, bins: int = 100,
                               r_max: float | None = None
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair-distance density and box-corrected radial distribution.

    Returns:
        (r, p, g): bin centres, p(r) (normalised over [0, sqrt 2 L]: the fraction of
        pairs per unit distance), and g(r) = p(r) / p_uniform(r), which is 1 for an
        ideal gas in the same box with no field (NaN where p_uniform = 0).
    """
    d = pair_distances(positions).ravel()
    r_max = math.sqrt(2) * box if r_max is None else r_max
    edges = np.linspace(0.0, r_max, bins + 1)
    counts, _ = np.histogram(d, bins=edges)
    dr = edges[1] - edges[0]
    p = counts / (d.size * dr)
    # exact bin average of the uniform density (Simpson on each bin)
    lo, hi = edges[:-1], edges[1:]
    p_uni = (square_pair_pdf(lo, box) + 4 * square_pair_pdf(0.5 * (lo + hi), box)
             + square_pair_pdf(hi, box)) / 6
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(p_uni > 0, p / np.where(p_uni > 0, p_uni, 1.0), np.nan)
    return 0.5 * (lo + hi), p, g


def contact_densities(positions: np.ndarray, box: float, width: float = 0.05
                      ) -> tuple[float, float, float, float]:
    """Number densities per unit area at the floor and ceiling.

    Counts particles with y < ``width`` (floor) and y > L - ``width`` (ceiling),
    divided by (M L width). Returns (rho_floor, err_floor, rho_ceiling, err_ceiling);
    the errors are Poisson estimates assuming independent configurations. The layer
    average approaches the contact value as width -> 0 (bias O(width * d rho/dy)).
    """
    pos = _positions(positions)
    y = pos[:, :, 1]
    area = pos.shape[0] * box * width
    n_floor = np.count_nonzero(y < width)
    n_ceil = np.count_nonzero(y > box - width)
    return (n_floor / area, math.sqrt(n_floor) / area, n_ceil / area, math.sqrt(n_ceil) / area)


@dataclass(frozen=True)
class EquilibrationCheck:
    """Mean energy after S and 2S sweeps from uniform starts (paired samples).

    ``z`` is the paired difference in units of its standard error; ``passed`` is
    |z| < ``z_max``. ``drift_per_particle`` is (<E_2S> - <E_S>) / N.
    """

    gamma: float
    sweeps: int
    n_samples: int
    n_particles: int
    mean_s: float
    mean_2s: float
    diff: float
    stderr: float
    z: float
    drift_per_particle: float
    z_max: float
    passed: bool

    def verdict(self) -> str:
        word = "equilibrated" if self.passed else "NOT equilibrated"
        return (f"{word} at {self.sweeps} sweeps (gamma={self.gamma:g}): E/N "
                f"{self.mean_s / self.n_particles:.4f} -> "
                f"{self.mean_2s / self.n_particles:.4f} at {2 * self.sweeps} sweeps, "
                f"z = {self.z:+.1f}")

    def to_dict(self) -> dict:
        return asdict(self)


def equilibration_check(config: SimConfig, gamma: float, *, sweeps: int | None = None,
                        n_samples: int = 200, z_max: float = 3.0,
                        n_threads: int | None = None) -> EquilibrationCheck:
    """Test whether ``sweeps`` sweeps from a uniform random start reach equilibrium.

    Runs ``n_samples`` independent samples (a seed stream separate from the data) for
    2 S sweeps, recording the total energy after S and 2 S sweeps. If S suffices the
    paired difference E(2S) - E(S) has mean zero; the check fails when its mean is more
    than ``z_max`` standard errors from zero.

    Default S: ``config.sweeps`` (``independent``) or ``config.equil_sweeps`` (``chain``).
    """
    s = sweeps if sweeps is not None else (
        config.equil_sweeps if config.protocol == "chain" else config.sweeps)
    if s < 1 or n_samples < 2:
        raise ValueError("equilibration_check: need sweeps >= 1 and n_samples >= 2")
    e = energies_at(config, gamma, n_samples, [s, 2 * s], n_threads=n_threads)
    d = e[:, 1] - e[:, 0]
    diff = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n_samples))
    z = diff / se if se > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    npart = config.n_particles
    return EquilibrationCheck(
        gamma=float(gamma), sweeps=s, n_samples=n_samples, n_particles=npart,
        mean_s=float(e[:, 0].mean()), mean_2s=float(e[:, 1].mean()), diff=diff, stderr=se, z=z,
        drift_per_particle=diff / npart, z_max=z_max, passed=abs(z) < z_max,
    )


def scan_sweeps(config: SimConfig, gamma: float, *, start: int | None = None,
                max_sweeps: int = 80_000, n_samples: int = 200,
                n_threads: int | None = None) -> list[EquilibrationCheck]:
    """Equilibration checks at S, 2S, 4S, ... until one passes or S exceeds
    ``max_sweeps``. The first passing S is the recommended number of sweeps."""
    s = start or config.sweeps
    out = []
    while s <= max_sweeps:
        chk = equilibration_check(config, gamma, sweeps=s, n_samples=n_samples,
                                  n_threads=n_threads)
        out.append(chk)
        if chk.passed:
            break
        s *= 2
    return out
