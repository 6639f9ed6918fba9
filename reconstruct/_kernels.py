"""Private numba kernels of the reconstruction: Gram matrices, the batch drivers of
the top-two eigendecomposition (the eigensolver itself is :mod:`reconstruct._eigen`),
the convex hull and the tumbler.

Kernels take only arrays and scalars and do no validation; the public wrappers in
:mod:`reconstruct.gram`, :mod:`reconstruct.embedding`, :mod:`reconstruct.hull` and
:mod:`reconstruct.tumbler` validate inputs and call them. Numba options live in
:data:`JIT` / :data:`JIT_PARALLEL` (:mod:`reconstruct._jit`). Every batch kernel treats
each configuration on its own, so results do not depend on the number of threads.
"""

import math

import numpy as np
from numba import njit, prange

from reconstruct._eigen import (  # noqa: F401  (re-exported: kernels and tests use K.<name>)
    RANK2_TOL,
    WORK_ROWS,
    _back_transform,
    _embed_one,
    _embed_rank2,
    _inverse_iteration,
    _matvec2,
    _orthonormalize2,
    _store_embedding,
    _tql_eigenvalues,
    _tridiagonalize,
)
from reconstruct._jit import EPS, JIT, JIT_PARALLEL  # noqa: F401

# Gram variants (codes shared with reconstruct.gram).
GRAM_CENTERED = 0
GRAM_REFERENCE = 1

# Relative size below which a mirror-odd statistic counts as zero (reflection rule).
MIRROR_TOL = 1e-9


# ------------------------------------------------------------------- validation
@njit(**JIT)
def _distance_defects(dist, out):
    """One pass over each matrix dist[k] (N, N): out[k] = [all finite (1/0), largest
    |d_ij|, largest |d_ij - d_ji|, smallest d_ij, largest |d_ii|]."""
    m, n = dist.shape[0], dist.shape[1]
    for k in range(m):
        finite = 1.0
        big = 0.0
        asym = 0.0
        low = np.inf
        diag = 0.0
        for i in range(n):
            for j in range(n):
                v = dist[k, i, j]
                if not math.isfinite(v):
                    finite = 0.0
                big = max(big, abs(v))
                low = min(low, v)
                if j > i:
                    asym = max(asym, abs(v - dist[k, j, i]))
            diag = max(diag, abs(dist[k, i, i]))
        out[k, 0] = finite
        out[k, 1] = big
        out[k, 2] = asym
        out[k, 3] = low
        out[k, 4] = diag


@njit(**JIT)
def _distance_matrices(pos, out):
    """out[k] (N, N) = |x_i - x_j| of pos[k] (N, 2), exactly symmetric, zero diagonal."""
    m, n = pos.shape[0], pos.shape[1]
    for k in range(m):
        for i in range(n):
            out[k, i, i] = 0.0
            for j in range(i + 1, n):
                dx = pos[k, i, 0] - pos[k, j, 0]
                dy = pos[k, i, 1] - pos[k, j, 1]
                d = math.sqrt(dx * dx + dy * dy)
                out[k, i, j] = d
                out[k, j, i] = d


# --------------------------------------------------------------------------- Gram
@njit(**JIT)
def _gram_into(d, variant, ref, scale, g):
    """Fill g (N, N) with the Gram matrix of distances d (N, N) divided by ``scale``.

    centered:  g = -1/2 J D2 J, J = I - 11^T/N   (Torgerson 1952; Gower 1966)
    reference: g_ij = (d_ir^2 + d_jr^2 - d_ij^2) / 2  (particle r at the origin)
    """
    n = d.shape[0]
    inv = 1.0 / scale
    if variant == GRAM_REFERENCE:
        for i in range(n):
            a = d[i, ref] * inv
            for j in range(n):
                b = d[j, ref] * inv
                c = d[i, j] * inv
                g[i, j] = 0.5 * (a * a + b * b - c * c)
        return
    row = np.zeros(n)
    tot = 0.0
    for i in range(n):
        s = 0.0
        for j in range(n):
            c = d[i, j] * inv
            c2 = c * c
            g[i, j] = c2
            s += c2
        row[i] = s / n
        tot += s
    tot /= n * n
    for i in range(n):
        for j in range(n):
            g[i, j] = -0.5 * (g[i, j] - row[i] - row[j] + tot)


@njit(**JIT)
def _symmetrize(g):
    n = g.shape[0]
    for i in range(n):
        for j in range(i):
            v = 0.5 * (g[i, j] + g[j, i])
            g[i, j] = v
            g[j, i] = v



@njit(**JIT)
def _scores(lam, out_resid, out_neg):
    """Distance of a spectrum lam (N,), descending, from a 2D Euclidean one:
    (||G - G_2||_F / ||G||_F, sum|lam<0| / sum|lam|); both 0 for G = 0."""
    n = lam.shape[0]
    fro2 = 0.0
    out2 = 0.0
    neg = 0.0
    tot = 0.0
    for i in range(n):
        l2 = lam[i] * lam[i]
        fro2 += l2
        if i >= 2 or lam[i] < 0.0:
            out2 += l2
        tot += abs(lam[i])
        if lam[i] < 0.0:
            neg -= lam[i]
    r = math.sqrt(out2 / fro2) if fro2 > 0.0 else 0.0
    out_resid[0] = min(r, 1.0)
    out_neg[0] = neg / tot if tot > 0.0 else 0.0


@njit(**JIT_PARALLEL)
def _embed_distances_batch(dist, variant, ref, coords, lam, resid, neg, ok):
    """Gram matrix + top-two embedding of each distance matrix dist[k] (N, N).

    Distances are divided by their maximum before squaring (no overflow, scale-free
    tolerances) and coordinates/eigenvalues are scaled back. ok[k] is False where
    the QL iteration failed; those rows are recomputed by the caller with LAPACK.
    """
    m, n = dist.shape[0], dist.shape[1]
    for k in prange(m):
        g = np.empty((n, n))
        work = np.empty((WORK_ROWS, n))
        scale = 0.0
        for i in range(n):
            for j in range(n):
                if dist[k, i, j] > scale:
                    scale = dist[k, i, j]
        if scale == 0.0:
            scale = 1.0
        _gram_into(dist[k], variant, ref, scale, g)
        _symmetrize(g)
        ok[k] = _embed_one(g, coords[k], lam[k], work)
        _scores(lam[k], resid[k:k + 1], neg[k:k + 1])  # scale-free: before rescaling
        for i in range(n):
            coords[k, i, 0] *= scale
            coords[k, i, 1] *= scale
            lam[k, i] *= scale * scale


@njit(**JIT)
def _embed_gram_batch(gram, coords, lam, resid, neg, ok):
    """Top-two embedding of each symmetric Gram matrix gram[k] (N, N), scaled by its
    largest absolute entry. Serial: not on the hot path, and parallel kernels take
    several times longer to compile."""
    m, n = gram.shape[0], gram.shape[1]
    for k in range(m):
        g = np.empty((n, n))
        work = np.empty((WORK_ROWS, n))
        scale = 0.0
        for i in range(n):
            for j in range(n):
                if abs(gram[k, i, j]) > scale:
                    scale = abs(gram[k, i, j])
        if scale == 0.0:
            scale = 1.0
        for i in range(n):
            for j in range(n):
                g[i, j] = gram[k, i, j] / scale
        _symmetrize(g)
        ok[k] = _embed_one(g, coords[k], lam[k], work)
        _scores(lam[k], resid[k:k + 1], neg[k:k + 1])  # scale-free: before rescaling
        root = math.sqrt(scale)
        for i in range(n):
            coords[k, i, 0] *= root
            coords[k, i, 1] *= root
            lam[k, i] *= scale


# -------------------------------------------------------------------------- hull
@njit(**JIT)
def _cross(ox, oy, ax, ay, bx, by):
    return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)


@njit(**JIT)
def _interior_filter(x, y, order, work):
    """Akl-Toussaint heuristic (Akl & Toussaint 1978): write to order the indices of
    the points not strictly inside the polygon of the extreme points in the eight
    directions (0, -1), (1, -1), (1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1)
    (counter-clockwise, as the directions), in ascending index order; returns their
    number. Hull vertices are never inside it, so the hull of the survivors is the
    hull of all. A point is dropped only if it lies left of every edge by a margin of
    1e-12 of the squared extent (far above the cross products' rounding); nothing is
    dropped when the polygon has fewer than three distinct vertices. The cross products
    run edge-outer over the points, which vectorises. work (N,): workspace."""
    n = x.shape[0]
    e0 = e1 = e2 = e3 = e4 = e5 = e6 = e7 = 0
    v0 = v4 = y[0]  # the extreme values, kept in registers
    v2 = v6 = x[0]
    v1 = v5 = x[0] - y[0]
    v3 = v7 = x[0] + y[0]
    for i in range(1, n):
        xi = x[i]
        yi = y[i]
        d = xi - yi
        a = xi + yi
        if yi < v0:
            v0 = yi
            e0 = i
        if d > v1:
            v1 = d
            e1 = i
        if xi > v2:
            v2 = xi
            e2 = i
        if a > v3:
            v3 = a
            e3 = i
        if yi > v4:
            v4 = yi
            e4 = i
        if d < v5:
            v5 = d
            e5 = i
        if xi < v6:
            v6 = xi
            e6 = i
        if a < v7:
            v7 = a
            e7 = i
    ext = (e0, e1, e2, e3, e4, e5, e6, e7)
    span = max(v2 - v6, v4 - v0)
    margin = 1e-12 * span * span
    for i in range(n):
        work[i] = np.inf
    prev = e7  # the polygon's edges: between consecutive distinct extreme points
    edges = 0
    for e in ext:
        ax = x[prev]
        ay = y[prev]
        bx = x[e]
        by = y[e]
        if ax == bx and ay == by:
            continue
        edges += 1
        dx = bx - ax
        dy = by - ay
        for i in range(n):
            work[i] = min(work[i], dx * (y[i] - ay) - dy * (x[i] - ax))
        prev = e
    k = 0
    for i in range(n):
        if edges < 3 or not work[i] > margin:
            order[k] = i
            k += 1
    return k


@njit(**JIT)
def _convex_hull(x, y, order, hull, work):
    """Andrew's monotone chain (Andrew 1979), on the points that survive
    :func:`_interior_filter`. Writes the hull vertex indices in counter-clockwise
    order, starting from the lexicographically smallest point, to hull (2N,) and
    returns their number h. Collinear boundary points are dropped; h == 1 for
    coincident points, h == 2 for collinear ones. order (N,) int and work (N,) float
    are workspace.
    """
    n = _interior_filter(x, y, order, work)
    for i in range(1, n):  # insertion sort by (x, y)
        j = i
        oi = order[i]
        while j > 0:
            oj = order[j - 1]
            if x[oj] > x[oi] or (x[oj] == x[oi] and y[oj] > y[oi]):
                order[j] = oj
                j -= 1
            else:
                break
        order[j] = oi
    if n == 1:
        hull[0] = order[0]
        return 1
    k = 0
    for t in range(n):
        i = order[t]
        while k >= 2 and _cross(x[hull[k - 2]], y[hull[k - 2]], x[hull[k - 1]],
                                y[hull[k - 1]], x[i], y[i]) <= 0.0:
            k -= 1
        hull[k] = i
        k += 1
    lo = k + 1
    for t in range(n - 2, -1, -1):
        i = order[t]
        while k >= lo and _cross(x[hull[k - 2]], y[hull[k - 2]], x[hull[k - 1]],
                                 y[hull[k - 1]], x[i], y[i]) <= 0.0:
            k -= 1
        hull[k] = i
        k += 1
    h = k - 1
    if h == 2 and x[hull[0]] == x[hull[1]] and y[hull[0]] == y[hull[1]]:
        h = 1
    return h


@njit(**JIT)
def _convex_hull_batch(pos, hulls, counts):
    """Hull of each configuration pos[k] (N, 2) (serial; the tumbler has its own)."""
    m, n = pos.shape[0], pos.shape[1]
    order = np.empty(n, dtype=np.int64)
    work = np.empty(n)
    for k in range(m):
        x = pos[k, :, 0].copy()
        y = pos[k, :, 1].copy()
        counts[k] = _convex_hull(x, y, order, hulls[k], work)


# ----------------------------------------------------------------------- tumbler
@njit(**JIT)
def _centroid(x, y):
    """(mean x, mean y) of the N points (x, y), summed in index order."""
    n = x.shape[0]
    cx = 0.0
    cy = 0.0
    for i in range(n):
        cx += x[i]
        cy += y[i]
    return cx / n, cy / n


@njit(**JIT)
def _tumble_one(x, y, box, out, hull, order, info):
    """Rest the configuration (x, y) (N,) on the hull edge closest to its centre of
    mass; see :mod:`reconstruct.tumbler` for the rules. Writes out (N, 2) and
    info = [width, height, com_height, edge_a, edge_b, reflected]."""
    n = x.shape[0]
    cx, cy = _centroid(x, y)
    h = _convex_hull(x, y, order, hull, np.empty(n))
    # pick the edge whose supporting line is closest to the centre of mass
    best = np.inf
    ia = -1
    ib = -1
    ux = 1.0
    uy = 0.0
    if h >= 2:
        for t in range(h):
            a = hull[t]
            b = hull[(t + 1) % h]
            dx = x[b] - x[a]
            dy = y[b] - y[a]
            ln = math.hypot(dx, dy)
            if ln == 0.0:
                continue
            dist = abs(dx * (cy - y[a]) - dy * (cx - x[a])) / ln
            if dist < best:
                best = dist
                ia = a
                ib = b
                ux = dx / ln
                uy = dy / ln
    if ia < 0:  # all points coincide: a single point on the floor, mid-box
        for i in range(n):
            out[i, 0] = 0.5 * box
            out[i, 1] = 0.0
        info[0] = 0.0
        info[1] = 0.0
        info[2] = 0.0
        info[3] = hull[0]
        info[4] = hull[0]
        info[5] = 0.0
        return
    # rotate: edge direction -> +x, so the interior (left of a CCW edge) is above
    rmax = 0.0
    for i in range(n):
        rmax = max(rmax, abs(x[i] - cx), abs(y[i] - cy))
    inv = 1.0 / rmax  # moments in units of the size: no overflow at any scale
    m3 = 0.0
    a3 = 0.0
    mxy = 0.0
    axy = 0.0
    for i in range(n):
        px = x[i] - cx
        py = y[i] - cy
        rx = ux * px + uy * py
        ry = -uy * px + ux * py
        out[i, 0] = rx
        out[i, 1] = ry
        sx = rx * inv
        sy = ry * inv
        m3 += sx * sx * sx
        a3 += abs(sx * sx * sx)
        mxy += sx * sy
        axy += abs(sx * sy)
    # reflection rule: third moment of x >= 0, ties broken by cov(x, y) >= 0
    reflect = False
    if abs(m3) > MIRROR_TOL * a3:
        reflect = m3 < 0.0
    elif abs(mxy) > MIRROR_TOL * axy:
        reflect = mxy < 0.0
    xmin = np.inf
    xmax = -np.inf
    ymin = np.inf
    ymax = -np.inf
    for i in range(n):
        if reflect:
            out[i, 0] = -out[i, 0]
        xmin = min(xmin, out[i, 0])
        xmax = max(xmax, out[i, 0])
        ymin = min(ymin, out[i, 1])
        ymax = max(ymax, out[i, 1])
    width = xmax - xmin
    height = ymax - ymin
    shift_x = 0.5 * box - 0.5 * (xmin + xmax)
    slack = 1e-9 * box  # rounding-level overshoot that is clamped
    for i in range(n):
        px = out[i, 0] + shift_x
        py = out[i, 1] - ymin
        if width <= box + slack:
            px = min(max(px, 0.0), box)
        if height <= box + slack:
            py = min(py, box)
        out[i, 0] = px
        out[i, 1] = py
    info[0] = width
    info[1] = height
    info[2] = -ymin
    info[3] = ia
    info[4] = ib
    info[5] = 1.0 if reflect else 0.0


@njit(**JIT_PARALLEL)
def _tumble_batch(coords, box, out, info):
    """Tumble every configuration coords[k] (N, 2); info (M, 6) as in _tumble_one."""
    m, n = coords.shape[0], coords.shape[1]
    for k in prange(m):
        hull = np.empty(2 * n + 1, dtype=np.int64)
        order = np.empty(n, dtype=np.int64)
        x = coords[k, :, 0].copy()
        y = coords[k, :, 1].copy()
        _tumble_one(x, y, box, out[k], hull, order, info[k])


# ------------------------------------------------------------------------ checks
@njit(**JIT)
def _physical_checks(pos, box, dmin, outside):
    """One pass over each configuration pos[k] (N, 2): dmin[k] = its closest pair
    distance (inf for N < 2; NaN if a coordinate is not finite), outside[k] = a
    coordinate outside [0, box] or not finite (serial)."""
    m, n = pos.shape[0], pos.shape[1]
    for k in range(m):
        r2_min = np.inf
        out = False
        finite = True
        for i in range(n):
            xi = pos[k, i, 0]
            yi = pos[k, i, 1]
            if not (0.0 <= xi <= box and 0.0 <= yi <= box):
                out = True
                if not (math.isfinite(xi) and math.isfinite(yi)):
                    finite = False
            for j in range(i + 1, n):
                dx = pos[k, j, 0] - xi
                dy = pos[k, j, 1] - yi
                r2 = dx * dx + dy * dy
                if r2 < r2_min:
                    r2_min = r2
        dmin[k] = math.sqrt(r2_min) if finite else np.nan
        outside[k] = out
