"""Evaluation of reconstructions against the original configurations.

These metrics look at the answer; they are for evaluation only and are never used
to produce a reconstruction. All comparisons are reflection-aware, because a
distance matrix cannot distinguish a configuration from its mirror image.

* :func:`rmsd`: root-mean-square deviation after the optimal rigid alignment
  (translation + rotation, and reflection unless disabled), the orthogonal
  Procrustes / Kabsch problem (Kabsch 1976; Schoenemann 1966); slow SVD reference
  :func:`rmsd_reference`. In 2D the optimum has a closed form: with centred
  coordinates A, B (N, 2) and H = A^T B,

      min_R |A R - B|^2 = |A|^2 + |B|^2 - 2 (s_1 + s_2)     (R in O(2)),
      min_R |A R - B|^2 = |A|^2 + |B|^2 - 2 (s_1 + sign(det H) s_2)  (R in SO(2)),

  where s_1 >= s_2 >= 0 are the singular values of H and, for 2 x 2 matrices,
  (s_1 + s_2)^2 = |H|_F^2 + 2 |det H|.
* :func:`rmsd_unlabelled`: the same minimised over particle relabellings too, for
  configurations whose particles do not correspond one to one (a denoised
  configuration against the clean original): alternating optimal assignment
  (Hungarian algorithm, Kuhn 1955) and optimal rotation from several starts.
* :func:`placement_rmsd`: RMSD with only a horizontal shift and an optional mirror
  x -> -x allowed: whether the tumbler found the original orientation and height.
* :func:`distance_error`: RMS and maximum of |d_ij(reconstructed) - d_ij(input)|.
* :func:`compare_energies`: total energies (full potential, gravity included, no
  pair skipped: :func:`mcsim.potentials.total_energy`), per-sample differences and
  the distances between the two energy distributions, Wasserstein-1 and
  Jensen-Shannon, with paired bootstrap error bars.
* :func:`height_profile`: number density rho(y) along the height (per unit area,
  as :func:`mcsim.observables.density_profile`), with standard errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcsim.potentials import Potential, total_energy
from reconstruct.distances import distance_matrices

__all__ = [
    "rmsd",
    "rmsd_reference",
    "rmsd_unlabelled",
    "placement_rmsd",
    "distance_error",
    "energy_bin_edges",
    "js_distance",
    "EnergyComparison",
    "compare_energies",
    "compare_energy_samples",
    "HeightProfile",
    "height_profile",
]


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim not in (2, 3) or a.shape[-1] != 2:
        raise ValueError(
            f"positions: expected two arrays of equal shape (N, 2) or (M, N, 2), "
            f"got {a.shape} and {b.shape}"
        )
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("positions: contain NaN or inf")
    return (a[None], b[None]) if a.ndim == 2 else (a, b)


def rmsd(a: np.ndarray, b: np.ndarray, *, allow_reflection: bool = True) -> np.ndarray:
    """RMSD between configurations after optimal rigid alignment.

    In 2D the optimal rotation of the centred A onto the centred B is explicit:
    with P = sum_i a_i . b_i and Q = sum_i a_i x b_i (z-component), the angle is
    atan2(Q, P) (equivalent to Kabsch's SVD; the closed form for the minimum in the
    module docstring loses precision to cancellation, so the residual is summed
    explicitly). With reflections allowed, A mirrored (y -> -y) is aligned as well
    and the smaller RMSD is kept.

    Args:
        a, b: (N, 2) or (M, N, 2) coordinates, sigma, with matching particle labels.
        allow_reflection: align over O(2) (default) or only over rotations SO(2).

    Returns:
        (M,) RMSD, sigma: sqrt(min_{R, t} sum_i |R a_i + t - b_i|^2 / N).
    """
    a, b = _pair(a, b)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    best = np.full(a.shape[0], np.inf)
    for mirror in (False, True) if allow_reflection else (False,):
        ax, ay = a[..., 0], (-a[..., 1] if mirror else a[..., 1])
        p = np.sum(ax * b[..., 0] + ay * b[..., 1], axis=1)
        q = np.sum(ax * b[..., 1] - ay * b[..., 0], axis=1)
        theta = np.arctan2(q, p)
        c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
        rx, ry = c * ax - s * ay, s * ax + c * ay
        sq = np.mean((rx - b[..., 0]) ** 2 + (ry - b[..., 1]) ** 2, axis=1)
        best = np.minimum(best, sq)
    return np.sqrt(best)


def rmsd_reference(a: np.ndarray, b: np.ndarray, *, allow_reflection: bool = True) -> np.ndarray:
    """Slow reference for :func:`rmsd` with SVD (Kabsch 1976): R = U V^T from
    H = U S V^T, with the last column of U flipped when a proper rotation is
    required and det(U V^T) < 0."""
    a, b = _pair(a, b)
    out = np.empty(a.shape[0])
    for k in range(a.shape[0]):
        p = a[k] - a[k].mean(axis=0)
        q = b[k] - b[k].mean(axis=0)
        u, _, vt = np.linalg.svd(p.T @ q)
        if not allow_reflection and np.linalg.det(u @ vt) < 0:
            u[:, -1] = -u[:, -1]
        r = u @ vt
        out[k] = np.sqrt(np.mean(np.sum((p @ r - q) ** 2, axis=1)))
    return out


def _rotation_sq(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(angle, mean squared deviation) of the best rotation of centred a onto centred b
    (N, 2), labels as given."""
    p = float(np.sum(a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1]))
    q = float(np.sum(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]))
    t = float(np.arctan2(q, p))
    c, s = np.cos(t), np.sin(t)
    r = np.column_stack([c * a[:, 0] - s * a[:, 1], s * a[:, 0] + c * a[:, 1]])
    return t, float(np.mean(np.sum((r - b) ** 2, axis=1)))


def rmsd_unlabelled(a: np.ndarray, b: np.ndarray, *, allow_reflection: bool = True,
                    n_starts: int = 12, max_iter: int = 50) -> np.ndarray:
    """RMSD minimised over rigid motions and over relabellings of the particles.

    min over permutations P and R in O(2) (SO(2) without reflections) and t of
    sum_i |R a_P(i) + t - b_i|^2 / N, found by alternating the optimal assignment for
    a fixed rotation (``scipy.optimize.linear_sum_assignment`` on squared distances)
    and the optimal rotation for a fixed assignment, until the assignment repeats;
    started from the given labelling and from ``n_starts`` rotations of each mirror
    image. The centroids coincide at any optimum (they do not depend on labels). A
    local search: the result is an upper bound on the minimum, never above
    :func:`rmsd` with the given labels.

    Args:
        a, b: (N, 2) or (M, N, 2) coordinates, sigma.
        allow_reflection: align over O(2) (default) or SO(2).
        n_starts: start angles per mirror image.
        max_iter: alternations per start.

    Returns:
        (M,) RMSD, sigma.
    """
    from scipy.optimize import linear_sum_assignment

    a, b = _pair(a, b)
    out = np.empty(a.shape[0])
    angles = 2.0 * np.pi * np.arange(n_starts) / max(n_starts, 1)
    for k in range(a.shape[0]):
        bk = b[k] - b[k].mean(axis=0)
        best = float(rmsd(a[k], b[k], allow_reflection=allow_reflection)[0]) ** 2
        for mirror in (False, True) if allow_reflection else (False,):
            ak = a[k] - a[k].mean(axis=0)
            if mirror:
                ak = ak * np.array([1.0, -1.0])
            for t in angles:
                perm = None
                for _ in range(max_iter):
                    c, s = np.cos(t), np.sin(t)
                    r = np.column_stack([c * ak[:, 0] - s * ak[:, 1],
                                         s * ak[:, 0] + c * ak[:, 1]])
                    cost = np.sum((bk[:, None, :] - r[None, :, :]) ** 2, axis=2)
                    _, new = linear_sum_assignment(cost)  # b_i <- a_new[i]
                    if perm is not None and np.array_equal(new, perm):
                        break
                    perm = new
                    t, sq = _rotation_sq(ak[perm], bk)
                    best = min(best, sq)
        out[k] = np.sqrt(best)
    return out


def placement_rmsd(original: np.ndarray, reconstructed: np.ndarray) -> np.ndarray:
    """RMSD allowing only a horizontal shift and the mirror x -> -x.

    Vertical position and orientation are not aligned: this measures whether the
    reconstruction rests in the box as the original did (0 for the original itself
    after any horizontal shift or mirror).

    Args:
        original, reconstructed: (N, 2) or (M, N, 2) coordinates, sigma.

    Returns:
        (M,) sigma.
    """
    a, b = _pair(original, reconstructed)
    dy2 = np.mean((a[..., 1] - b[..., 1]) ** 2, axis=1)
    best = np.full(a.shape[0], np.inf)
    for sgn in (1.0, -1.0):
        dx = a[..., 0] - sgn * b[..., 0]
        best = np.minimum(best, np.var(dx, axis=1))  # optimal shift: mean(dx)
    return np.sqrt(best + dy2)


def distance_error(
    distances: np.ndarray, positions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Error of the distances of ``positions`` against the matrices ``distances``.

    Args:
        distances: (N, N) or (M, N, N) target distance matrices, sigma.
        positions: (N, 2) or (M, N, 2) reconstructed coordinates, sigma.

    Returns:
        (rms, max), each (M,), sigma: RMS over pairs i < j and the largest
        |d_ij(positions) - d_ij|.
    """
    d = np.asarray(distances, dtype=np.float64)
    d = d[None] if d.ndim == 2 else d
    pos = np.asarray(positions, dtype=np.float64)
    pos = pos[None] if pos.ndim == 2 else pos
    if pos.ndim != 3 or d.shape != pos.shape[:2] + pos.shape[1:2]:
        raise ValueError(f"distances: shape {d.shape} does not match positions {pos.shape}")
    m, n = d.shape[0], d.shape[1]
    rms, worst = np.zeros(m), np.zeros(m)
    if n < 2:
        return rms, worst
    iu = np.triu_indices(n, 1)
    for s in range(0, m, 4096):  # bounded temporaries for large M
        err = (distance_matrices(pos[s:s + 4096]) - d[s:s + 4096])[:, iu[0], iu[1]]
        rms[s:s + 4096] = np.sqrt(np.mean(err * err, axis=1))
        worst[s:s + 4096] = np.abs(err).max(axis=1)
    return rms, worst


def energy_bin_edges(reference: np.ndarray, n_bins: int = 30) -> np.ndarray:
    """Bin edges for the Jensen-Shannon distance: equal-count bins of the reference
    sample (its quantiles at k / n_bins), the outer edges opened to -inf and +inf so
    that every value of either sample is counted (reconstructions with overlapping
    particles have energies far above any original). Repeated quantiles (discrete
    samples) are merged, so there may be fewer than ``n_bins`` bins.

    Args:
        reference: (M,) sample (the original energies).
        n_bins: number of bins.

    Returns:
        (n_bins + 1,) or fewer increasing edges.
    """
    ref = np.asarray(reference, dtype=np.float64)
    if ref.ndim != 1 or ref.size == 0 or not np.all(np.isfinite(ref)):
        raise ValueError("reference: need a non-empty 1D array of finite values")
    if n_bins < 1:
        raise ValueError(f"n_bins: must be >= 1, got {n_bins}")
    inner = np.unique(np.quantile(ref, np.arange(1, n_bins) / n_bins))
    return np.concatenate([[-np.inf], inner, [np.inf]])


def js_distance(p_sample: np.ndarray, q_sample: np.ndarray, edges: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between the histograms of two
    samples on the given bin edges: sqrt(JSD), JSD = (KL(p|m) + KL(q|m)) / 2,
    m = (p + q) / 2 (Lin 1991; Endres & Schindelin 2003)."""
    from scipy.spatial.distance import jensenshannon  # scipy: import on use

    p = np.histogram(p_sample, bins=edges)[0].astype(np.float64)
    q = np.histogram(q_sample, bins=edges)[0].astype(np.float64)
    if p.sum() == 0 or q.sum() == 0:
        raise ValueError("js_distance: empty sample")
    return float(jensenshannon(p, q, base=2.0))


@dataclass(frozen=True)
class EnergyComparison:
    """Energies of originals and reconstructions and the distances between them.

    Attributes:
        original, reconstructed: (M,) total energies, epsilon.
        difference: (M,) reconstructed - original, epsilon.
        w1, w1_err: Wasserstein-1 distance of the two samples and its bootstrap
            standard error, epsilon.
        js, js_err: Jensen-Shannon distance (base 2) on ``edges`` and its error.
        w1_floor, js_floor: the same statistics between the original sample and a
            bootstrap resample of itself (mean over resamples): the value expected
            from finite sampling alone; a perfect reconstruction scores about this.
        edges: bin edges used for JS (see :func:`energy_bin_edges`).
        n_boot, seed: bootstrap settings.
    """

    original: np.ndarray
    reconstructed: np.ndarray
    difference: np.ndarray
    w1: float
    w1_err: float
    js: float
    js_err: float
    w1_floor: float
    js_floor: float
    edges: np.ndarray
    n_boot: int
    seed: int

    @property
    def median_abs_difference(self) -> float:
        return float(np.median(np.abs(self.difference)))

    def summary(self) -> dict[str, float]:
        """Scalar results as a flat dict (for file attributes and logs)."""
        return {
            "energy_median_abs_diff": self.median_abs_difference,
            "energy_w1": self.w1, "energy_w1_err": self.w1_err,
            "energy_w1_floor": self.w1_floor,
            "energy_js": self.js, "energy_js_err": self.js_err,
            "energy_js_floor": self.js_floor,
        }


def compare_energies(
    original: np.ndarray,
    reconstructed: np.ndarray,
    gamma: float | np.ndarray,
    potential: Potential,
    *,
    n_bins: int = 30,
    n_boot: int = 200,
    seed: int = 0,
) -> EnergyComparison:
    """Compare the energy distributions of original and reconstructed configurations.

    Energies are U = sum_{i<j} u(r_ij) + gamma sum_i y_i from
    :func:`mcsim.potentials.total_energy` (full potential, no pair skipped). Error
    bars: paired bootstrap over configurations (the same resampled indices for both
    samples, ``n_boot`` replicates, generator seeded with ``seed``), standard
    deviation of the statistic; bin edges stay fixed at those of the full sample.

    Args:
        original, reconstructed: (M, N, 2) coordinates, sigma, rows paired.
        gamma: scalar or (M,) field strength.
        potential: the pair potential.
        n_bins: number of equal-count JS bins (:func:`energy_bin_edges`).
        n_boot: bootstrap replicates (>= 2).
        seed: bootstrap seed.
    """
    a, b = _pair(original, reconstructed)
    if n_boot < 2:
        raise ValueError(f"n_boot: must be >= 2, got {n_boot}")
    e_a = np.asarray(total_energy(a, gamma, potential), dtype=np.float64)
    e_b = np.asarray(total_energy(b, gamma, potential), dtype=np.float64)
    return compare_energy_samples(e_a, e_b, n_bins=n_bins, n_boot=n_boot, seed=seed)


def compare_energy_samples(
    e_original: np.ndarray,
    e_reconstructed: np.ndarray,
    *,
    n_bins: int = 30,
    n_boot: int = 200,
    seed: int = 0,
) -> EnergyComparison:
    """:func:`compare_energies` for energies already computed (e.g. under another
    convention): W1 and JS with paired bootstrap errors and the finite-sample floor.

    Args:
        e_original, e_reconstructed: (M,) paired energies, epsilon; the originals
            must be finite (they fix the JS bins).
        n_bins, n_boot, seed: as in :func:`compare_energies`.
    """
    from scipy.stats import wasserstein_distance  # scipy.stats: import on use

    e_a = np.asarray(e_original, dtype=np.float64)
    e_b = np.asarray(e_reconstructed, dtype=np.float64)
    if e_a.ndim != 1 or e_a.shape != e_b.shape or e_a.size == 0:
        raise ValueError(f"energies: expected two 1D arrays of equal length, got "
                         f"{e_a.shape} and {e_b.shape}")
    if n_boot < 2:
        raise ValueError(f"n_boot: must be >= 2, got {n_boot}")
    edges = energy_bin_edges(e_a, n_bins)
    rng = np.random.default_rng(seed)
    m = e_a.size
    w1s, jss, w1f, jsf = (np.empty(n_boot) for _ in range(4))
    for r in range(n_boot):
        idx = rng.integers(0, m, m)
        w1s[r] = wasserstein_distance(e_a[idx], e_b[idx])
        jss[r] = js_distance(e_a[idx], e_b[idx], edges)
        w1f[r] = wasserstein_distance(e_a, e_a[idx])
        jsf[r] = js_distance(e_a, e_a[idx], edges)
    return EnergyComparison(
        original=e_a, reconstructed=e_b, difference=e_b - e_a,
        w1=float(wasserstein_distance(e_a, e_b)), w1_err=float(np.std(w1s, ddof=1)),
        js=js_distance(e_a, e_b, edges), js_err=float(np.std(jss, ddof=1)),
        w1_floor=float(np.mean(w1f)), js_floor=float(np.mean(jsf)),
        edges=edges, n_boot=int(n_boot), seed=int(seed),
    )


@dataclass(frozen=True)
class HeightProfile:
    """Number density along the height.

    Attributes:
        edges: (B + 1,) bin edges in y over [0, L], sigma.
        rho: (B,) number density per unit area, sigma^-2: <count in bin> / (L dy),
            the normalisation of :func:`mcsim.observables.density_profile`, so that
            sum(rho) L dy = N minus the particles outside [0, L].
        rho_err: (B,) standard error of rho over configurations.
        outside: mean number of particles per configuration with y outside [0, L].
    """

    edges: np.ndarray
    rho: np.ndarray
    rho_err: np.ndarray
    outside: float

    @property
    def centers(self) -> np.ndarray:
        return 0.5 * (self.edges[1:] + self.edges[:-1])


def height_profile(positions: np.ndarray, box: float, n_bins: int = 40) -> HeightProfile:
    """Height profile rho(y) = <number of particles with y in [y, y + dy)> / (L dy).

    Args:
        positions: (M, N, 2) coordinates in the box, sigma.
        box: L, sigma; bins cover [0, L] (the ceiling y = L is in the last bin).
        n_bins: number of equal bins.
    """
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim == 2:
        pos = pos[None]
    if pos.ndim != 3 or pos.shape[2] != 2 or pos.shape[0] == 0:
        raise ValueError(f"positions: expected shape (M, N, 2), got {np.shape(positions)}")
    if not (box > 0) or n_bins < 1:
        raise ValueError("height_profile: need box > 0 and n_bins >= 1")
    edges = np.linspace(0.0, float(box), n_bins + 1)
    dy = box / n_bins
    y = pos[..., 1]
    idx = np.floor(y / dy).astype(np.int64)
    idx[y == box] = n_bins - 1  # the ceiling belongs to the last bin
    inside = (idx >= 0) & (idx < n_bins)
    counts = np.zeros((pos.shape[0], n_bins))
    rows = np.broadcast_to(np.arange(pos.shape[0])[:, None], idx.shape)
    np.add.at(counts, (rows[inside], idx[inside]), 1.0)
    m = pos.shape[0]
    area = box * dy
    err = counts.std(axis=0, ddof=1) / np.sqrt(m) / area if m > 1 else np.zeros(n_bins)
    return HeightProfile(edges, counts.mean(axis=0) / area, err, float((~inside).sum() / m))
