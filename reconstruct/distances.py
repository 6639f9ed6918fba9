"""Distance matrices: computing them from coordinates, checking that an array is
one, and cleaning up decoded (approximate) ones.

A distance matrix of N particles is an (N, N) array with d_ij = |x_i - x_j| in
sigma: symmetric, non-negative, zero on the diagonal. Batches have shape (M, N, N).
"""

from __future__ import annotations

import numpy as np

from reconstruct import _kernels as K

__all__ = [
    "DEFAULT_RTOL",
    "distance_matrices",
    "check_distance_matrices",
    "symmetrize_distances",
]

# Relative tolerance (to the largest entry) on asymmetry, diagonal and negative
# entries. Loose enough for distances stored as float32 (eps ~ 6e-8), far below
# anything a physical length scale can resolve.
DEFAULT_RTOL = 1e-6


def distance_matrices(positions: np.ndarray) -> np.ndarray:
    """Pairwise distances d_ij = |x_i - x_j|.

    Args:
        positions: (N, 2) or (M, N, 2) coordinates, sigma.

    Returns:
        (N, N) or (M, N, N) distances, sigma, exactly symmetric with a zero diagonal.
    """
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim not in (2, 3) or pos.shape[-1] != 2:
        raise ValueError(f"positions: expected shape (N, 2) or (M, N, 2), got {pos.shape}")
    if not np.all(np.isfinite(pos)):
        raise ValueError("positions: contain NaN or inf")
    if pos.ndim == 2:
        return distance_matrices(pos[None])[0]
    out = np.empty(pos.shape[:2] + pos.shape[1:2])
    K._distance_matrices(np.ascontiguousarray(pos), out)
    return out


def check_distance_matrices(
    distances: np.ndarray, *, rtol: float = DEFAULT_RTOL, name: str = "distances"
) -> np.ndarray:
    """Validate distance matrices and return them as float64 (M, N, N).

    A single (N, N) matrix is returned as a batch of one. Accepted: finite,
    symmetric, non-negative entries with a zero diagonal, each up to ``rtol`` times
    the largest entry of its matrix (rounding, float32 storage). Decoded matrices
    that are further off should go through :func:`symmetrize_distances` first.

    Raises:
        ValueError: wrong shape or type, NaN/inf, asymmetric, negative entries or a
            non-zero diagonal; the message names the first offending matrix.
    """
    try:
        d = np.asarray(distances, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: not a numeric array") from None
    if d.ndim == 2:
        d = d[None]
    if d.ndim != 3 or d.shape[1] != d.shape[2] or d.shape[1] < 1:
        raise ValueError(
            f"{name}: expected shape (N, N) or (M, N, N) with N >= 1, got {np.shape(distances)}"
        )
    if d.shape[0] == 0:
        return d
    d = np.ascontiguousarray(d)
    defects = np.empty((d.shape[0], 5))
    K._distance_defects(d, defects)  # one pass: finite, scale, asymmetry, min, diagonal
    finite, scale, asym, low, diag = defects.T
    tol = np.full_like(scale, np.inf) if np.isinf(rtol) else rtol * scale
    checks = (
        (finite == 0.0, "contains NaN or inf"),
        (asym > tol, "is not symmetric"),
        (low < -tol, "has negative entries"),
        (diag > tol, "has a non-zero diagonal"),
    )
    # the Gram matrix sums N^2 squared distances: they must neither overflow nor
    # underflow in float64 (1e200 would turn into inf, 1e-200 into 0: one point)
    n = d.shape[1]
    hi = np.sqrt(np.finfo(np.float64).max) / (4.0 * n)
    lo = np.sqrt(np.finfo(np.float64).tiny)
    ok = finite != 0.0  # NaN/inf are reported below
    for mask, what in ((ok & (scale > hi), f"has entries above {hi:.3g} (too large to square "
                        "in float64)"),
                       (ok & (scale > 0) & (scale < lo), f"has all entries below {lo:.3g} "
                        "(too small to square in float64)")):
        if mask.any():
            raise ValueError(f"{name}: matrix {int(np.argmax(mask))} {what}")
    for mask, what in checks:
        if mask.any():
            extra = "" if what.startswith("contains") else (
                f" (relative tolerance {rtol:g}); not a distance matrix")
            raise ValueError(f"{name}: matrix {int(np.argmax(mask))} {what}{extra}")
    return d


def symmetrize_distances(distances: np.ndarray) -> np.ndarray:
    """Nearest symmetric, non-negative, zero-diagonal array: (D + D^T) / 2 with
    negative entries set to 0 and the diagonal set to 0.

    For approximate matrices (a VAE decoder's output). NaN/inf are not repaired.

    Args:
        distances: (N, N) or (M, N, N).

    Returns:
        An array of the same shape, float64.
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim not in (2, 3) or d.shape[-1] != d.shape[-2]:
        raise ValueError(f"distances: expected shape (N, N) or (M, N, N), got {d.shape}")
    out = 0.5 * (d + np.swapaxes(d, -1, -2))
    np.maximum(out, 0.0, out=out)
    idx = np.arange(d.shape[-1])
    out[..., idx, idx] = 0.0
    return out
