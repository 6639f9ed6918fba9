"""Judging generated sets against Monte Carlo: Wasserstein-1 and Jensen-Shannon distances
with bootstrap error bars, and the sampler's speed."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mcsim.config import SimConfig
from mcsim.observables import pair_distances
from reconstruct.metrics import energy_bin_edges


# ---------------------------------------------------------------------------------
# judging against Monte Carlo
@dataclass(frozen=True)
class Distance:
    """W1 and JS distances between two samples of one observable, with bootstrap
    errors (see the module docstring)."""

    w1: float
    w1_err: float
    js: float
    js_err: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _w1_hist(ca: np.ndarray, cb: np.ndarray, width: float) -> float:
    """W1 of two histograms on the same uniform grid: sum |CDF_a - CDF_b| * width."""
    fa = np.cumsum(ca) / ca.sum()
    fb = np.cumsum(cb) / cb.sum()
    return float(np.abs(fa - fb).sum() * width)


def _js_counts(p: np.ndarray, q: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(p.astype(np.float64), q.astype(np.float64), base=2.0))


def _per_config_counts(values: np.ndarray, edges: np.ndarray,
                       dtype: type = np.float64) -> np.ndarray:
    """(M, B) histogram counts of each row of values (M, K) on ``edges``; values
    outside go to the first / last bin (edges are chosen to cover them)."""
    m = values.shape[0]
    nb = edges.size - 1
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, nb - 1)
    flat = (np.arange(m)[:, None] * nb + idx).ravel()
    return np.bincount(flat, minlength=m * nb).reshape(m, nb).astype(dtype)


class _Observable:
    """Per-configuration values (pair distances or heights, pooled over particles) of
    several sets: exact W1 of the pooled samples; for bootstrap replicates, W1 from
    per-configuration histograms on a shared 1000-bin grid (replicate = weighted sum
    of rows), and JS on the coarse bins."""

    def __init__(self, sets: dict[str, np.ndarray], fine_lo: float, fine_hi: float,
                 coarse: np.ndarray, n_fine: int = 1000) -> None:
        self.values = {k: np.sort(v.ravel()) for k, v in sets.items()}
        lo = min(fine_lo, *(float(v[0]) for v in self.values.values() if v.size))
        hi = max(fine_hi, *(float(v[-1]) for v in self.values.values() if v.size))
        hi = hi + 1e-9 * max(1.0, abs(hi))
        self.fine = np.linspace(lo, hi, n_fine + 1)
        self.width = float(self.fine[1] - self.fine[0])
        self.coarse = np.concatenate([[-np.inf], coarse, [np.inf]])
        self.fine_counts = {k: _per_config_counts(v, self.fine, np.float32)
                            for k, v in sets.items()}
        self.coarse_counts = {k: _per_config_counts(v, self.coarse) for k, v in sets.items()}

    def exact(self, a: str, b: str) -> tuple[float, float]:
        """(W1 of the pooled samples (exact), JS on the coarse bins)."""
        from scipy.stats import wasserstein_distance

        w1 = float(wasserstein_distance(self.values[a], self.values[b]))
        return w1, _js_counts(self.coarse_counts[a].sum(0), self.coarse_counts[b].sum(0))

    def replicate(self, a: str, b: str, weights_a: np.ndarray, weights_b: np.ndarray
                  ) -> tuple[float, float]:
        """(binned W1, JS) for bootstrap weights (counts of each configuration)."""
        ha = weights_a.astype(np.float32) @ self.fine_counts[a]
        hb = weights_b.astype(np.float32) @ self.fine_counts[b]
        pa = weights_a @ self.coarse_counts[a]
        pb = weights_b @ self.coarse_counts[b]
        return _w1_hist(ha.astype(np.float64), hb.astype(np.float64), self.width), \
            _js_counts(pa, pb)


def compare_sets(sets: dict[str, dict[str, np.ndarray]], reference: str, box: float, *,
                 n_boot: int = 200, seed: int = 0) -> dict[str, dict[str, Distance]]:
    """Distances of every set to the reference set, for energy, p(r) and rho(y).

    Args:
        sets: name -> {"positions": (M, N, 2) sigma, "energy": (M,) epsilon}.
        reference: the name of the reference (MC) set.
        box: L, sigma.
        n_boot: bootstrap replicates (each set resampled independently).
        seed: bootstrap seed.

    Returns:
        name -> {"energy" | "pair_distance" | "height": :class:`Distance`} for every
        set except the reference.
    """
    from scipy.stats import wasserstein_distance

    ref = sets[reference]
    r_coarse = np.linspace(0.0, box * math.sqrt(2.0), 101)
    y_coarse = np.linspace(0.0, box, 41)
    pd = _Observable({k: pair_distances(v["positions"]) for k, v in sets.items()},
                     0.0, box * math.sqrt(2.0), r_coarse)
    hy = _Observable({k: v["positions"][..., 1] for k, v in sets.items()}, 0.0, box, y_coarse)
    e_ref = np.asarray(ref["energy"], np.float64)
    edges = energy_bin_edges(e_ref, 30)

    def e_dist(ea, eb) -> tuple[float, float]:
        ca = np.histogram(ea, edges)[0]
        cb = np.histogram(eb, edges)[0]
        return float(wasserstein_distance(ea, eb)), _js_counts(ca, cb)

    out: dict[str, dict[str, Distance]] = {}
    for k, v in sets.items():
        if k == reference:
            continue
        e = np.asarray(v["energy"], np.float64)
        m_a, m_b = e.size, e_ref.size
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0xB0,)))
        boots = np.empty((n_boot, 6))
        for r in range(n_boot):
            ia = rng.integers(0, m_a, m_a)
            ib = rng.integers(0, m_b, m_b)
            wa = np.bincount(ia, minlength=m_a).astype(np.float64)
            wb = np.bincount(ib, minlength=m_b).astype(np.float64)
            boots[r, 0:2] = e_dist(e[ia], e_ref[ib])
            boots[r, 2:4] = pd.replicate(k, reference, wa, wb)
            boots[r, 4:6] = hy.replicate(k, reference, wa, wb)
        err = boots.std(axis=0, ddof=1)
        full = (*e_dist(e, e_ref), *pd.exact(k, reference), *hy.exact(k, reference))
        out[k] = {
            "energy": Distance(full[0], float(err[0]), full[1], float(err[1])),
            "pair_distance": Distance(full[2], float(err[2]), full[3], float(err[3])),
            "height": Distance(full[4], float(err[4]), full[5], float(err[5])),
        }
    return out


def sampler_rate(sim: SimConfig, gamma: float, n: int, *, n_threads: int = 1,
                 seed: int | None = None) -> tuple[float, Any]:
    """Time ``n`` samples of the sampler with the protocol ``sim`` (after a short
    warm-up that compiles the kernels). Returns (configurations per second, Samples)."""
    from mcsim.sampler import sample

    s = sim if seed is None else sim.replace(seed=int(seed))
    sample(s.replace(sweeps=1, equil_sweeps=1), gamma, 1, n_threads=n_threads)  # compile
    t0 = time.perf_counter()
    out = sample(s, gamma, n, n_threads=n_threads)
    dt = time.perf_counter() - t0
    return (n / dt if dt > 0 else math.inf), out


