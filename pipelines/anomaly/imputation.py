"""Missing distance-matrix entries filled in three ways, and the error inside the mask.

* ``vae``: the VAE's reconstruction decode(mu_z(x_masked)) of the masked input.
* ``mean``: the element-wise mean matrix of the training inputs (no use of the
  configuration at all beyond its particle order).
* ``edm``: Euclidean distance-matrix completion without learning, by alternating
  projections (e.g. Dattorro, "Convex Optimization & Euclidean Distance Geometry",
  ch. 7; Glunt, Hayden, Hong & Wells 1990): start from the mean of the known entries,
  then repeat

      G = -1/2 J D2 J                      (double centring, J = I - 11^T / N)
      G <- V diag(max(l, 0)) V^T           (nearest PSD matrix of rank <= 2)
      D2_ij <- G_ii + G_jj - 2 G_ij        (back to squared distances)
      D2_ij <- known value where known     (project onto the data)

  until the largest change of an unknown squared entry is below ``tol``. Exact for a
  configuration whose known entries pin it down (e.g. a 10x10 block of unknowns with
  their 20 x 10 distances to the other particles known). A matrix with no known
  off-diagonal entry (the full blackout) cannot be completed: NaN.

Masks are True where an entry is missing; the diagonal counts as known (it is 0). The
error is the RMSE over the masked off-diagonal entries, in the matrices' unit.
"""

from __future__ import annotations

import numpy as np

__all__ = ["IMPUTE_METHODS", "edm_complete", "masked_rmse"]

IMPUTE_METHODS = ("vae", "mean", "edm")


def _classical_mds(d2: np.ndarray, dim: int) -> np.ndarray:
    """(M, N, dim) coordinates from squared distances (M, N, N) by double centring and
    the top ``dim`` eigenpairs (negative eigenvalues clipped to 0)."""
    n = d2.shape[-1]
    j = np.eye(n) - 1.0 / n
    w, v = np.linalg.eigh(-0.5 * j @ d2 @ j)
    return v[:, :, -dim:] * np.sqrt(np.maximum(w[:, -dim:], 0.0))[:, None, :]


def _pair_dist(x: np.ndarray) -> np.ndarray:
    diff = x[:, :, None, :] - x[:, None, :, :]
    return np.sqrt((diff * diff).sum(axis=-1))


def edm_complete(d: np.ndarray, mask: np.ndarray, *, dim: int = 2, iters: int = 500,
                 tol: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Complete distance matrices with a rank-``dim`` embedding fitted to the known
    entries only (weighted SMACOF, see the module docstring).

    Args:
        d: (M, N, N) distance matrices; entries under ``mask`` are ignored.
        mask: (N, N) or (M, N, N) bool, True = unknown (the diagonal is known, 0).
        dim: embedding dimension (2 for the 2D fluid).
        iters: maximum majorization iterations.
        tol: stop a matrix when its relative stress decrease is below ``tol`` (or its
            stress is below tol^2 times the squared known distances).

    Returns:
        (completed distances (M, N, N) float64: known entries as given, unknown ones from
        the embedding; iterations used per matrix (M,)). A matrix in which some particle
        has no known distance at all is NaN.
    """
    d = np.asarray(d, dtype=np.float64)
    if d.ndim != 3 or d.shape[1] != d.shape[2]:
        raise ValueError(f"d: expected shape (M, N, N), got {d.shape}")
    m, n, _ = d.shape
    eye = np.eye(n, dtype=bool)
    unknown = np.broadcast_to(mask, d.shape) & ~eye
    w = (~unknown & ~eye).astype(np.float64)  # weights of the known pairs
    d_known = np.where(w > 0, d, 0.0)
    solvable = (w.sum(axis=2) > 0).all(axis=1)
    # start: classical MDS of the matrix with unknown entries at the mean known distance
    fill = d_known.sum(axis=(1, 2)) / np.maximum(w.sum(axis=(1, 2)), 1.0)
    d0 = np.where(w > 0, d_known, fill[:, None, None])
    d0[:, eye] = 0.0
    x = _classical_mds(d0 * d0, dim)
    # Guttman transform X <- V^+ B(X) X with V = diag(W 1) - W (de Leeuw 1977)
    vmat = -w.copy()
    vmat[:, eye] = w.sum(axis=2)
    vplus = np.linalg.pinv(vmat, hermitian=True)
    norm = (w * d_known ** 2).sum(axis=(1, 2))
    used = np.zeros(m, dtype=np.int64)
    active = np.flatnonzero(solvable & unknown.any(axis=(1, 2)))
    stress_old = np.full(m, np.inf)
    for it in range(1, iters + 1):
        if active.size == 0:
            break
        xa, wa, da = x[active], w[active], d_known[active]
        dist = _pair_dist(xa)
        stress = (wa * (dist - da) ** 2).sum(axis=(1, 2))
        ratio = np.divide(da, dist, out=np.zeros_like(dist), where=dist > 1e-12)
        b = -wa * ratio
        b[:, eye] = -b.sum(axis=2)
        x[active] = vplus[active] @ (b @ xa)
        used[active] = it
        old = stress_old[active]
        done = (np.isfinite(old) & ((old - stress) <= tol * old)) | (
            stress <= tol * tol * norm[active])
        stress_old[active] = stress
        active = active[~done]
    out = np.where(unknown, _pair_dist(x), d)
    out[~solvable] = np.nan
    return out, used


def masked_rmse(estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """RMSE over masked off-diagonal entries of (M, N, N) matrices (NaN if the estimate
    is NaN there)."""
    est = np.asarray(estimate, dtype=np.float64)
    tru = np.asarray(truth, dtype=np.float64)
    n = tru.shape[-1]
    sel = np.broadcast_to(mask, tru.shape) & ~np.eye(n, dtype=bool)
    if not sel.any():
        return float("nan")
    return float(np.sqrt(np.mean((est[sel] - tru[sel]) ** 2)))
