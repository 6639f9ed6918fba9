"""Convex hulls of planar point sets, batched.

``method="fast"``: Andrew's monotone chain (Andrew 1979, *Inf. Proc. Lett.* 9, 216)
in numba, O(N log N) per configuration (insertion sort, fine for N ~ 30), after the
Akl-Toussaint pre-filter (Akl & Toussaint 1978, *Inf. Proc. Lett.* 7, 219): points
strictly inside the polygon of the extreme points in eight directions cannot be
hull vertices and are dropped before the sort (about 10 of 30 survive on the study's
configurations; 0.91 -> 0.50 microseconds per hull, one thread).
``method="scipy"``: :class:`scipy.spatial.ConvexHull` (Qhull), the reference,
with the cases Qhull rejects (fewer than 3 points, collinear or coincident points)
handled explicitly.

Both return, per configuration, the hull vertex indices in counter-clockwise order
starting from the lexicographically smallest vertex (smallest x, then smallest y),
without collinear boundary points. Degenerate sets: coincident points give one
index, collinear ones the two end points.
"""

from __future__ import annotations

import numpy as np

from reconstruct import _kernels as K

__all__ = ["HULL_METHODS", "convex_hull"]

HULL_METHODS = ("fast", "scipy")


def _as_points(points: np.ndarray) -> tuple[np.ndarray, bool]:
    pos = np.asarray(points, dtype=np.float64)
    single = pos.ndim == 2
    if single:
        pos = pos[None]
    if pos.ndim != 3 or pos.shape[2] != 2 or pos.shape[1] < 1:
        raise ValueError(f"points: expected shape (N, 2) or (M, N, 2), got {np.shape(points)}")
    if not np.all(np.isfinite(pos)):
        raise ValueError("points: contain NaN or inf")
    return np.ascontiguousarray(pos), single


def _rotate_to_start(idx: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Rotate a cyclic vertex list to start at the lexicographically smallest point."""
    keys = np.lexsort((pts[idx, 1], pts[idx, 0]))
    return np.roll(idx, -int(keys[0]))


def _hull_scipy_one(pts: np.ndarray) -> np.ndarray:
    n = pts.shape[0]
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    first, last = order[0], order[-1]
    if np.all(pts == pts[first]):
        return np.array([first])
    if n >= 3:
        from scipy.spatial import ConvexHull, QhullError  # the slow reference only

        try:
            hull = ConvexHull(pts)
        except QhullError:
            pass  # collinear (or numerically flat): fall through
        else:
            return _rotate_to_start(np.asarray(hull.vertices), pts)
    # collinear: the two end points along the line (the lexicographic extremes)
    return np.array([first, last])


def convex_hull(points: np.ndarray, method: str = "fast") -> list[np.ndarray] | np.ndarray:
    """Convex hull vertex indices, counter-clockwise.

    Args:
        points: (N, 2) or (M, N, 2) coordinates.
        method: ``"fast"`` (numba monotone chain) or ``"scipy"`` (Qhull).

    Returns:
        One int array of hull indices for a single configuration, else a list of M.
    """
    if method not in HULL_METHODS:
        raise ValueError(f"method: unknown hull method {method!r} (fast or scipy)")
    pos, single = _as_points(points)
    if method == "scipy":
        out = [_hull_scipy_one(p) for p in pos]
    else:
        m, n = pos.shape[0], pos.shape[1]
        hulls = np.empty((m, 2 * n + 1), dtype=np.int64)
        counts = np.empty(m, dtype=np.int64)
        K._convex_hull_batch(pos, hulls, counts)
        out = [hulls[k, :counts[k]].copy() for k in range(m)]
    return out[0] if single else out
