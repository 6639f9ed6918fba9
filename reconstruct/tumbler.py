"""The gravitational tumbler: put a configuration known only up to rotation,
reflection and translation into the box, resting on the floor.

The study (seed 002, "turbo tumbler") lets the reconstructed body sit on the side
of its convex hull closest to the centre of mass. Rules, per configuration
(x_i, i = 1..N, equal masses, centre of mass c):

1. **Resting edge.** Among the edges of the convex hull, take the one whose
   supporting line is closest to c. Rotate so that this edge is horizontal with
   the body above it. Resting on an edge e puts c at height dist(c, line(e)), so
   this is the rigid placement (rotation + translation, with all y >= 0) of least
   gravitational energy gamma sum_i y_i = gamma N y_c: the support function of the
   hull seen from c is a concave cosine arc between consecutive edge normals, so
   its minimum over directions lies at an edge normal. Exact ties (symmetric
   hulls) go to the first edge counter-clockwise from the lexicographically
   smallest hull vertex of the input, which depends on the input frame.
2. **Reflection.** A mirror image rests the same way with the same energy, and a
   distance matrix cannot tell the two apart, so the choice must depend on the
   shape only. Rule: mirror x -> -x if the third central moment of x,
   m3 = sum_i (x_i - x_c)^3, is negative (so that m3 >= 0: the longer tail of the
   body points to +x). If |m3| <= 1e-9 sum_i |x_i - x_c|^3 (a mirror-symmetric
   profile) the sign of sum_i (x_i - x_c)(y_i - y_c) decides the same way (mirror
   if negative); if both vanish the body is mirror symmetric and nothing is done.
   The rule makes the output invariant under reflections of the input, and every
   metric in :mod:`reconstruct.metrics` is reflection-aware.
3. **Floor.** Translate vertically so that min_i y_i = 0 (the resting edge lies on
   the floor y = 0).
4. **Horizontal placement.** A distance matrix carries no horizontal position, so
   we centre the bounding box: x -> x + L/2 - (min x + max x)/2. The body then
   fits between the walls whenever its width is at most L.

Degenerate inputs: collinear points (and N = 2) lie flat on the floor along x,
coincident points (and N = 1) sit at (L/2, 0).

Nothing is clipped: a body wider or taller than the box is reported in ``fits``
(False) and its coordinates leave [0, L]; only rounding-level overshoots
(<= 1e-9 L) of a body that fits are clamped into the box.

``method="fast"`` is the numba kernel (monotone-chain hull); ``method="scipy"`` is
the slow, plain reference with :class:`scipy.spatial.ConvexHull`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reconstruct import _kernels as K
from reconstruct.hull import _hull_scipy_one

__all__ = [
    "TUMBLE_METHODS", "REFLECTION_RULE", "PLACEMENT_RULE", "Tumbled", "check_shapes", "tumble",
]

TUMBLE_METHODS = ("fast", "scipy")
REFLECTION_RULE = "m3x>=0,then cov(x,y)>=0"
PLACEMENT_RULE = "rest on hull edge nearest COM; floor y=0; bounding box centred in x"


@dataclass(frozen=True)
class Tumbled:
    """Configurations resting in the box.

    Attributes:
        positions: (M, N, 2) coordinates in the box [0, L]^2, sigma (may leave the box
            where ``fits`` is False).
        width, height: (M,) extent of each configuration, sigma.
        com_height: (M,) height of the centre of mass above the floor, sigma.
        edge: (M, 2) particle indices of the resting edge (left to right before any
            reflection).
        reflected: (M,) whether the mirror rule flipped x.
        fits: (M,) width <= L and height <= L (up to 1e-9 L).
        box: L, sigma.
        theta: (M,) rotation applied to the COM-centred input, radians, or None (this
            rule; :func:`reconstruct.placement.place` fills it).
        tries: (M,) rejection proposals of the thermal placement, or None.
    """

    positions: np.ndarray
    width: np.ndarray
    height: np.ndarray
    com_height: np.ndarray
    edge: np.ndarray
    reflected: np.ndarray
    fits: np.ndarray
    box: float
    theta: np.ndarray | None = None
    tries: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.positions.shape[0])


def _tumble_scipy_one(pts: np.ndarray, box: float) -> tuple[np.ndarray, list[float]]:
    """Reference implementation of the rules in the module docstring."""
    n = pts.shape[0]
    c = pts.mean(axis=0)
    hull = _hull_scipy_one(pts)
    if hull.size < 2:
        return np.column_stack([np.full(n, 0.5 * box), np.zeros(n)]), [0, 0, 0, hull[0],
                                                                        hull[0], 0]
    best, edge, u = math.inf, (0, 0), np.array([1.0, 0.0])
    for a, b in zip(hull, np.roll(hull, -1), strict=True):
        t = pts[b] - pts[a]
        ln = math.hypot(*t)
        if ln == 0.0:
            continue
        dist = abs(t[0] * (c[1] - pts[a, 1]) - t[1] * (c[0] - pts[a, 0])) / ln
        if dist < best:
            best, edge, u = dist, (a, b), t / ln
    rot = np.array([[u[0], u[1]], [-u[1], u[0]]])  # maps u to +x
    q = (pts - c) @ rot.T
    sq = q / np.abs(pts - c).max()  # moments in units of the size (no overflow)
    m3, a3 = np.sum(sq[:, 0] ** 3), np.sum(np.abs(sq[:, 0]) ** 3)
    mxy, axy = np.sum(sq[:, 0] * sq[:, 1]), np.sum(np.abs(sq[:, 0] * sq[:, 1]))
    if abs(m3) > K.MIRROR_TOL * a3:
        reflect = m3 < 0
    elif abs(mxy) > K.MIRROR_TOL * axy:
        reflect = mxy < 0
    else:
        reflect = False
    if reflect:
        q[:, 0] = -q[:, 0]
    lo, hi = q.min(axis=0), q.max(axis=0)
    width, height = hi - lo
    out = q + np.array([0.5 * box - 0.5 * (lo[0] + hi[0]), -lo[1]])
    slack = 1e-9 * box
    if width <= box + slack:
        out[:, 0] = np.clip(out[:, 0], 0.0, box)
    if height <= box + slack:
        out[:, 1] = np.minimum(out[:, 1], box)
    return out, [width, height, -lo[1], edge[0], edge[1], float(reflect)]


def check_shapes(coords: np.ndarray, box: float) -> tuple[np.ndarray, float]:
    """Validate shapes to place and the box: returns (coords as contiguous float64
    (M, N, 2), box as float). Raises ValueError naming the bad value."""
    if not isinstance(box, int | float | np.floating | np.integer) or not (
        0 < float(box) < math.inf
    ):
        raise ValueError(f"box: must be a positive number, got {box!r}")
    pos = np.asarray(coords, dtype=np.float64)
    if pos.ndim == 2:
        pos = pos[None]
    if pos.ndim != 3 or pos.shape[2] != 2 or pos.shape[1] < 1:
        raise ValueError(f"coords: expected shape (N, 2) or (M, N, 2), got {np.shape(coords)}")
    if not np.all(np.isfinite(pos)):
        raise ValueError("coords: contain NaN or inf")
    return np.ascontiguousarray(pos), float(box)


def tumble(coords: np.ndarray, box: float, method: str = "fast") -> Tumbled:
    """Rest configurations on the floor of the box (rules in the module docstring).

    Args:
        coords: (N, 2) or (M, N, 2) coordinates in any rigid frame, sigma (e.g.
            :attr:`reconstruct.embedding.Embedding.coords`).
        box: side L of the square box [0, L]^2, sigma.
        method: ``"fast"`` (numba) or ``"scipy"`` (reference).

    Returns:
        :class:`Tumbled` (a single configuration gives M = 1).
    """
    if method not in TUMBLE_METHODS:
        raise ValueError(f"method: unknown tumbler method {method!r} (fast or scipy)")
    pos, box = check_shapes(coords, box)
    m = pos.shape[0]
    out = np.empty_like(pos)
    info = np.empty((m, 6))
    if method == "scipy":
        for k in range(m):
            out[k], info[k] = _tumble_scipy_one(pos[k], box)
    else:
        K._tumble_batch(pos, box, out, info)
    slack = 1e-9 * box
    width, height = info[:, 0].copy(), info[:, 1].copy()
    return Tumbled(
        positions=out,
        width=width,
        height=height,
        com_height=info[:, 2].copy(),
        edge=info[:, 3:5].astype(np.int64),
        reflected=info[:, 5] > 0.5,
        fits=(width <= box + slack) & (height <= box + slack),
        box=box,
    )
