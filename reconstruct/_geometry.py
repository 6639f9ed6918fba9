"""Geometry of a rigid shape rotated in the box, for the placement kernels
(:mod:`reconstruct._placement`): its convex hull relative to the centre of mass, its
extents at an angle, on an angle grid and at the kinks, and their exact minima on the
grid's bins.

Geometry. A shape is given by its coordinates q_i relative to the centre of mass
(COM). Rotating it by theta gives x'_i = c q_ix - s q_iy, y'_i = s q_ix + c q_iy
(c = cos theta, s = sin theta). Its extents relative to the COM, xmin(theta) ..
ymax(theta), are support functions of the convex hull, so only hull vertices
matter. Each extent is piecewise sinusoidal in theta, non-negative in magnitude
(the COM lies inside the hull) and hence concave between its kinks, and its kinks
are the angles at which a hull edge is parallel to the corresponding side of the
box. So the minimum over an angular interval of the COM's lowest height
lo = -ymin, of the width w = xmax - xmin and of the height h = ymax - ymin lies at
the ends of the interval or at a kink inside it: :func:`_bin_minima` uses this to
bound the placement weight rigorously on each bin of an angle grid.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from reconstruct._kernels import JIT, _centroid, _convex_hull

TWO_PI = 2.0 * math.pi


@njit(**JIT)
def _hull_frame(x, y, hx, hy, order, hull):
    """COM-centred hull vertices of (x, y) (N,) into hx, hy; returns (nh, r_max, cx, cy)."""
    cx, cy = _centroid(x, y)
    nh = _convex_hull(x, y, order, hull, hx)  # hx: workspace until the hull is known
    rmax = 0.0
    for t in range(nh):
        hx[t] = x[hull[t]] - cx
        hy[t] = y[hull[t]] - cy
        rmax = max(rmax, math.hypot(hx[t], hy[t]))
    return nh, rmax, cx, cy


@njit(**JIT)
def _extents(hx, hy, nh, theta, ext):
    """ext = [xmin, xmax, ymin, ymax] of the hull rotated by theta (relative to the COM)."""
    c = math.cos(theta)
    s = math.sin(theta)
    xmin = 0.0
    xmax = 0.0
    ymin = 0.0
    ymax = 0.0
    for t in range(nh):
        xr = c * hx[t] - s * hy[t]
        yr = s * hx[t] + c * hy[t]
        if t == 0 or xr < xmin:
            xmin = xr
        if t == 0 or xr > xmax:
            xmax = xr
        if t == 0 or yr < ymin:
            ymin = yr
        if t == 0 or yr > ymax:
            ymax = yr
    ext[0] = xmin
    ext[1] = xmax
    ext[2] = ymin
    ext[3] = ymax


@njit(**JIT)
def _wrap(theta):
    """theta mod 2 pi in [0, 2 pi); for |theta| < 2 pi (atan2's range) without the
    division, with the same result as Python's ``%`` (including -0.0 -> 0.0)."""
    if 0.0 < theta < TWO_PI:
        return theta
    if -TWO_PI < theta < 0.0:
        t = theta + TWO_PI
        return t if t < TWO_PI else 0.0
    if theta == 0.0:
        return 0.0
    t = theta % TWO_PI
    return t if t < TWO_PI else 0.0


@njit(**JIT)
def _quarter_turn(theta, quarters):
    """theta + quarters pi / 2, wrapped into [0, 2 pi), for theta in [0, 2 pi)."""
    t = theta + quarters * (0.5 * math.pi)
    if t >= TWO_PI:
        t -= TWO_PI
    return t if t < TWO_PI else 0.0


@njit(**JIT)
def _kinks(hx, hy, nh, out, kcs):
    """Angles in [0, 2 pi) at which a hull edge is parallel to a side of the box (the
    kinks of the extents), and their cosines and sines in kcs (2, >= 4 nh); returns
    their number (4 per edge of non-zero length).

    The edge of outward unit normal n is at the bottom at theta_b = atan2(-n_x, -n_y)
    (the rotated normal (c n_x - s n_y, s n_x + c n_y) is (0, -1)), so cos theta_b =
    -n_y and sin theta_b = -n_x; it is on the right at theta_b + pi / 2, at the top at
    theta_b + pi and on the left at theta_b + 3 pi / 2, whose cosines and sines are
    those of theta_b permuted with signs. No trigonometric function but one atan2 per
    edge."""
    k = 0
    if nh < 2:
        return 0
    for t in range(nh):
        dx = hx[(t + 1) % nh] - hx[t]
        dy = hy[(t + 1) % nh] - hy[t]
        ln = math.hypot(dx, dy)
        if ln == 0.0:
            continue
        nx = dy / ln  # outward normal of a counter-clockwise edge
        ny = -dx / ln
        bottom = _wrap(math.atan2(-nx, -ny))
        out[k] = bottom  # edge at the bottom
        kcs[0, k] = -ny
        kcs[1, k] = -nx
        out[k + 1] = _quarter_turn(bottom, 2)  # edge at the top
        kcs[0, k + 1] = ny
        kcs[1, k + 1] = nx
        out[k + 2] = _quarter_turn(bottom, 1)  # edge on the right
        kcs[0, k + 2] = nx
        kcs[1, k + 2] = -ny
        out[k + 3] = _quarter_turn(bottom, 3)  # edge on the left
        kcs[0, k + 3] = -nx
        kcs[1, k + 3] = ny
        k += 4
    return k


@njit(**JIT)
def _angle_table(n_bins):
    """(2, n_bins + 1) cos and sin of the bin edges j * 2 pi / n_bins. For n_bins a
    multiple of 4 only the first quadrant is computed: the others follow by exact sign
    swaps (cos, sin of theta + pi / 2 are -sin, cos theta), so that the extents on the
    grid follow exactly from the first quadrant's (:func:`_grid_extents`)."""
    tab = np.empty((2, n_bins + 1))
    dth = TWO_PI / n_bins
    if n_bins % 4 != 0:
        for j in range(n_bins + 1):
            tab[0, j] = math.cos(j * dth)
            tab[1, j] = math.sin(j * dth)
        return tab
    q = n_bins // 4
    for j in range(q):
        c = math.cos(j * dth)
        s = math.sin(j * dth)
        tab[0, j] = c
        tab[1, j] = s
        tab[0, j + q] = -s
        tab[1, j + q] = c
        tab[0, j + 2 * q] = -c
        tab[1, j + 2 * q] = -s
        tab[0, j + 3 * q] = s
        tab[1, j + 3 * q] = -c
    tab[0, n_bins] = tab[0, 0]
    tab[1, n_bins] = tab[1, 0]
    return tab


@njit(**JIT)
def _quad_extents(hx, hy, nh, cos_a, sin_a, m, ext4):
    """ext4[:, j] = [xmin, xmax, ymin, ymax] of the hull (hx, hy) (nh,) rotated by the
    angle j with cos_a[j], sin_a[j] (the same values as :func:`_extents`), for j < m.
    Vertex-outer loops over contiguous angle arrays, which vectorise."""
    x0 = hx[0]
    y0 = hy[0]
    for j in range(m):
        xr = cos_a[j] * x0 - sin_a[j] * y0
        yr = sin_a[j] * x0 + cos_a[j] * y0
        ext4[0, j] = xr
        ext4[1, j] = xr
        ext4[2, j] = yr
        ext4[3, j] = yr
    for t in range(1, nh):
        xt = hx[t]
        yt = hy[t]
        for j in range(m):
            xr = cos_a[j] * xt - sin_a[j] * yt
            yr = sin_a[j] * xt + cos_a[j] * yt
            ext4[0, j] = min(ext4[0, j], xr)
            ext4[1, j] = max(ext4[1, j], xr)
            ext4[2, j] = min(ext4[2, j], yr)
            ext4[3, j] = max(ext4[3, j], yr)


@njit(**JIT)
def _grid_extents(hx, hy, nh, tab, n_bins, ymin, w, h, ext4):
    """ymin, width and height of the hull at every bin edge (tab: :func:`_angle_table`).
    For n_bins a multiple of 4, from the four extents of the first quadrant's angles:
    a quarter turn maps (x, y) to (-y, x), so at theta + pi / 2 [xmin, xmax, ymin,
    ymax] are [-ymax, -ymin, xmin, xmax] of theta, at + pi [-xmax, -xmin, -ymax,
    -ymin] and at + 3 pi / 2 [ymin, ymax, -xmax, -xmin]; with the table's exact sign
    swaps these are bit for bit the values computed directly, at a quarter of the
    cost. ext4 (4, >= n_bins / 4 + 1): workspace."""
    if n_bins % 4 != 0:
        _rotated_extents(hx, hy, nh, tab[0], tab[1], n_bins + 1, ymin, w, h, ext4[0])
        return
    q = n_bins // 4
    _quad_extents(hx, hy, nh, tab[0], tab[1], q, ext4)
    for j in range(q):
        ymin[j] = ext4[2, j]
        w[j] = ext4[1, j] - ext4[0, j]
        h[j] = ext4[3, j] - ext4[2, j]
    for j in range(q):
        ymin[j + q] = ext4[0, j]
        w[j + q] = ext4[3, j] - ext4[2, j]
        h[j + q] = ext4[1, j] - ext4[0, j]
    for j in range(q):
        ymin[j + 2 * q] = -ext4[3, j]
        w[j + 2 * q] = ext4[1, j] - ext4[0, j]
        h[j + 2 * q] = ext4[3, j] - ext4[2, j]
    for j in range(q):
        ymin[j + 3 * q] = -ext4[1, j]
        w[j + 3 * q] = ext4[3, j] - ext4[2, j]
        h[j + 3 * q] = ext4[1, j] - ext4[0, j]
    ymin[n_bins] = ymin[0]
    w[n_bins] = w[0]
    h[n_bins] = h[0]


@njit(**JIT)
def _kink_extents(hx, hy, nh, kcs, nk, kext, ext4, cs4):
    """kext (3, nk): ymin, width and height at the kinks of :func:`_kinks`, which come
    in fours per edge (bottom, top, right, left: the bottom angle plus 0, pi, pi / 2, 3
    pi / 2, with exactly sign-swapped cosines and sines), from the four extents at the
    bottom kinks (:func:`_grid_extents`' quarter-turn rules). ext4 (4, >= nk / 4), cs4
    (2, >= nk / 4): workspace."""
    g = nk // 4
    for i in range(g):
        cs4[0, i] = kcs[0, 4 * i]
        cs4[1, i] = kcs[1, 4 * i]
    _quad_extents(hx, hy, nh, cs4[0], cs4[1], g, ext4)
    for i in range(g):
        x0 = ext4[0, i]
        x1 = ext4[1, i]
        y0 = ext4[2, i]
        y1 = ext4[3, i]
        k = 4 * i
        kext[0, k] = y0  # bottom: theta
        kext[1, k] = x1 - x0
        kext[2, k] = y1 - y0
        kext[0, k + 1] = -y1  # top: + pi
        kext[1, k + 1] = x1 - x0
        kext[2, k + 1] = y1 - y0
        kext[0, k + 2] = x0  # right: + pi / 2
        kext[1, k + 2] = y1 - y0
        kext[2, k + 2] = x1 - x0
        kext[0, k + 3] = -x1  # left: + 3 pi / 2
        kext[1, k + 3] = y1 - y0
        kext[2, k + 3] = x1 - x0


@njit(**JIT)
def _rotated_extents(hx, hy, nh, cos_a, sin_a, m, lo, span_x, span_y, x_hi):
    """For the m angles with cos_a, sin_a (m,): lo = ymin, span_x = width, span_y =
    height of the hull (hx, hy) (nh,) rotated by each (the same values as
    :func:`_extents`: min and max of the rotated vertices). Vertex-outer loops over
    contiguous angle arrays, which vectorise; span_x, span_y hold the x minimum and
    the y maximum until the last pass; x_hi (>= m,): workspace."""
    x0 = hx[0]
    y0 = hy[0]
    for j in range(m):
        xr = cos_a[j] * x0 - sin_a[j] * y0
        yr = sin_a[j] * x0 + cos_a[j] * y0
        span_x[j] = xr  # x minimum for now
        lo[j] = yr
        span_y[j] = yr  # y maximum for now
    for j in range(m):
        x_hi[j] = span_x[j]
    for t in range(1, nh):
        xt = hx[t]
        yt = hy[t]
        for j in range(m):
            xr = cos_a[j] * xt - sin_a[j] * yt
            yr = sin_a[j] * xt + cos_a[j] * yt
            span_x[j] = min(span_x[j], xr)
            x_hi[j] = max(x_hi[j], xr)
            lo[j] = min(lo[j], yr)
            span_y[j] = max(span_y[j], yr)
    for j in range(m):
        span_x[j] = x_hi[j] - span_x[j]
        span_y[j] = span_y[j] - lo[j]


@njit(**JIT)
def _edge_extents(hx, hy, nh, tab, n_bins, ymin, xspan, yspan):
    """ymin, width and height of the hull at every bin edge (tab: :func:`_angle_table`).
    Vertex-outer loops, so that the inner loops over the angles vectorise; xspan and
    yspan hold the running x minimum and y maximum until the last step."""
    _grid_extents(hx, hy, nh, tab, n_bins, ymin, xspan, yspan,
                  np.empty((4, n_bins // 4 + n_bins + 2)))


@njit(**JIT)
def _bin_minima(hx, hy, nh, kinks, nk, tab, n_bins, edges, bins, kext, kcs, ext4, cs4):
    """edges (3, n_bins + 1): lo = -ymin, w, h at the bin edges j * 2 pi / n_bins;
    bins (n_bins, 3): their exact minima over each bin (the bin's ends and the kinks
    inside it); kext (3, >= nk): lo, w, h at each kink (for :func:`_interval_minima`).
    kcs (2, >= nk): the kinks' cosines and sines (:func:`_kinks`); ext4 (4, >=
    max(n_bins + 1, nk / 4)), cs4 (2, >= nk / 4): workspace."""
    _grid_extents(hx, hy, nh, tab, n_bins, edges[0], edges[1], edges[2], ext4)
    for j in range(n_bins + 1):
        edges[0, j] = -edges[0, j]
    for c in range(3):
        for j in range(n_bins):
            bins[j, c] = min(edges[c, j], edges[c, j + 1])
    _kink_extents(hx, hy, nh, kcs, nk, kext, ext4, cs4)
    dth = TWO_PI / n_bins
    for t in range(nk):
        kext[0, t] = -kext[0, t]
        j = min(int(kinks[t] / dth), n_bins - 1)
        bins[j, 0] = min(bins[j, 0], kext[0, t])
        bins[j, 1] = min(bins[j, 1], kext[1, t])
        bins[j, 2] = min(bins[j, 2], kext[2, t])
