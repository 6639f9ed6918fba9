"""Numba kernels of the placements in :mod:`reconstruct.placement`.

Private: arrays and scalars in, arrays out; the public wrappers validate.

Geometry (the hull, the extents and their minima on the bins of an angle grid):
:mod:`reconstruct._geometry`.

Thermal placement (exact rejection sampling). With b = gamma N / T, the weight of
an orientation after integrating the offsets out is

    f(theta) = (L - w)_+ * exp(-b lo) * E(b, L - h),
    E(b, z) = int_0^z exp(-b t) dt = -expm1(-b z) / b   (z for b = 0, 0 for z <= 0),

the x offset being uniform over the L - w that keep the shape inside and the COM
height lo + t with t ~ exp(-b t) on [0, L - h]. On a bin [theta_j, theta_j+1]
each factor is bounded by its value at the bin's minimum of w, lo or h, which
gives U_j >= f on the bin; drawing a bin with probability |bin_j| U_j / sum, theta
uniform in it, and accepting with probability f(theta) / U_j samples f exactly,
whatever the grid (the grid only sets the acceptance rate). Bins that straddle the
edge of a window of fitting orientations are halved (:func:`_bound_intervals`) so
that the bound does not take the low COM of the orientations that do not fit. Bins
whose lowest COM lies more than ``FAR_CUT`` / b above the lowest of the fitting ones
share one constant bound, L exp(-FAR_CUT) E(b, L), which spares their exponentials.

Cost (one thread, N = 30, 128 bins, about 9-12 hull vertices; study data at gamma 0.7,
one other single-thread job on the 2 cores): some 3.1 microseconds per configuration
(4.3 before stop 27's two changes, measured the same way), of which the hull 0.5 (0.9
before the Akl-Toussaint pre-filter of :func:`reconstruct._kernels._convex_hull`),
the frame 0.14, the kinks 0.3 (one atan2 per hull edge: their cosines and sines are
the edge normal's components), the extents at the 129 bin edges and the ~40 kinks 0.7
(vertex-outer loops that vectorise, over a quarter of the angles only: the rest follow
by exact quarter turns, which saved 6-7 % of the placement with bit-identical results;
:mod:`reconstruct._geometry`), the bound 0.8 (1.6 before the far bins of
:func:`_bound_intervals` were bounded together: an exponential per bin was most of
it) and the proposals with the final placement 0.65 (3.2 proposals on average). At
gamma 0.1 (no far bins; the halving at the edges of the fitting windows, 12 extents
per configuration, and 128 pairs of exponentials) the bound is 2.4 and the placement
4.7 (4.9 before).

Tried and not adopted (stop 24): an exact bound with no grid, from rotating calipers
(between consecutive kinks the four extreme vertices are fixed, so lo, w and h are
single sinusoids; the windows where w or h exceed L are solved in closed form; lo lies
above its chord on each piece, so exp(-b chord) x constants bounds f and is sampled
by inversion). Same law and 1.2-1.6 proposals per placement instead of 1.5-4.5, but
5.0-5.8 microseconds instead of 4.8-5.5 (idle machine, gamma 0.1-1.0): the scalar
work on ~35 caliper intervals costs more than the vectorised grid.

Random numbers: one xoshiro256+ stream per configuration, keyed by the master
seed and the configuration's index (splitmix64), so results do not depend on
batching or thread count.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from mcsim._kernels import _uniform
from reconstruct._geometry import (
    TWO_PI,
    _angle_table,
    _bin_minima,
    _edge_extents,
    _extents,
    _hull_frame,
    _kinks,
)
from reconstruct._kernels import JIT, JIT_PARALLEL, MIRROR_TOL, _tumble_one

MAX_TRIES = 100_000  # rejection proposals per configuration before giving up
BISECT_STEPS = 60  # bisection steps on a feasibility boundary (lowest placement)
REFINE_DEPTH = 8  # halvings of an angle bin that straddles a fitting window's edge
CHUNK = 256  # configurations per workspace in the batch kernels
LOOSE = 1.0  # halve an angle interval while b (lo_max - lo_min) exceeds this ...
NEGLIGIBLE = 25.0  # ... unless its weight is below exp(-NEGLIGIBLE) of the largest
REFINE_SHARE = 0.02  # a bin straddling a window's edge is halved if it has this share
FAR_CUT = 30.0  # bins whose COM lies more than this / b above the lowest are bounded ...
FAR_SHARE = 1e-6  # ... together, unless that bound exceeds this share of the others'

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_U30 = np.uint64(30)
_U27 = np.uint64(27)
_U31 = np.uint64(31)

# info columns written by the kernels
INFO_THETA, INFO_WIDTH, INFO_HEIGHT, INFO_COM, INFO_MIRROR, INFO_FITS, INFO_TRIES = range(7)
INFO_FAR = 7  # thermal: 1 if the accepted orientation was proposed by the far group
N_INFO = 8


# --------------------------------------------------------------------------- RNG
@njit(**JIT)
def _splitmix64(x):
    """One splitmix64 output for state x (Steele, Lea & Flood 2014)."""
    z = x + _GOLDEN
    z = (z ^ (z >> _U30)) * _MIX1
    z = (z ^ (z >> _U27)) * _MIX2
    return z ^ (z >> _U31)


@njit(**JIT)
def _seed_state(key0, key1, index, s):
    """xoshiro256+ state s (uint64[4]) of configuration ``index`` under key (key0, key1)."""
    x = key0 ^ _splitmix64(key1 + np.uint64(index) * _GOLDEN)
    for t in range(4):
        x = x + _GOLDEN
        s[t] = _splitmix64(x)
    if s[0] == 0 and s[1] == 0 and s[2] == 0 and s[3] == 0:
        s[0] = _GOLDEN


@njit(**JIT)
def _height_integral(b, z):
    """E(b, z) = int_0^z exp(-b t) dt for b >= 0 (0 for z <= 0)."""
    if z <= 0.0:
        return 0.0
    bz = b * z
    if bz == 0.0:
        return z
    if bz > 40.0:  # -expm1(-bz) == 1 to double precision
        return 1.0 / b
    return -math.expm1(-bz) / b


@njit(**JIT)
def _weight(lo, w, h, lo_ref, box, b):
    """Placement weight f = (L - w)_+ exp(-b (lo - lo_ref)) E(b, L - h)."""
    if w >= box or h >= box:
        return 0.0
    e = b * (lo - lo_ref)
    if e > 700.0:
        return 0.0
    return (box - w) * math.exp(-e) * _height_integral(b, box - h)


@njit(**JIT)
def _sample_height(b, z, u):
    """t in [0, z] with density proportional to exp(-b t), from a uniform u in [0, 1)."""
    if z <= 0.0:
        return 0.0
    bz = b * z
    if bz == 0.0:
        return u * z
    t = -math.log1p(u * math.expm1(-bz)) / b
    return min(max(t, 0.0), z)


@njit(**JIT)
def _write_placed(x, y, cx, cy, theta, x0, y0, mirror, box, out):
    """out (N, 2) = R(theta) (q - c) + (x0, y0), mirrored x -> L - x if asked;
    rounding-level overshoots (the shape fits) are clamped into [0, L]."""
    c = math.cos(theta)
    s = math.sin(theta)
    for i in range(x.shape[0]):
        qx = x[i] - cx
        qy = y[i] - cy
        px = c * qx - s * qy + x0
        py = s * qx + c * qy + y0
        if mirror:
            px = box - px
        out[i, 0] = min(max(px, 0.0), box)
        out[i, 1] = min(max(py, 0.0), box)


@njit(**JIT)
def _no_fit(x, y, box, out, hull, order, info, tumble_info):
    """A shape that fits in no orientation: the study's rule, flagged, not clipped."""
    _tumble_one(x, y, box, out, hull, order, tumble_info)
    info[INFO_THETA] = np.nan
    info[INFO_WIDTH] = tumble_info[0]
    info[INFO_HEIGHT] = tumble_info[1]
    info[INFO_COM] = tumble_info[2]
    info[INFO_MIRROR] = tumble_info[5]
    info[INFO_FITS] = 0.0


# ------------------------------------------------------------------------ thermal
@njit(**JIT)
def _interval_minima(kinks, kext, near, m, a, b, lo_a, w_a, h_a, lo_b, w_b, h_b, out):
    """out = [min lo, min w, min h] over [a, b] (exact: the ends and the kinks inside;
    kext: lo, w, h at the kinks, from ``_bin_minima``; near[:m]: the indices of
    the kinks that may lie in [a, b], ascending)."""
    lo = min(lo_a, lo_b)
    w = min(w_a, w_b)
    h = min(h_a, h_b)
    for q in range(m):
        t = near[q]
        if a < kinks[t] < b:
            lo = min(lo, kext[0, t])
            w = min(w, kext[1, t])
            h = min(h, kext[2, t])
    out[0] = lo
    out[1] = w
    out[2] = h


@njit(**JIT)
def _bound_intervals(hx, hy, nh, rmax, kinks, kext, nk, n_bins, box, b, edges, bins, iv,
                     stack, depth, near, ext, tmp, wbin, far, far_cut, far_share):
    """Angle intervals that may hold fitting orientations, with the exact minima of lo,
    w and h on each and the bound they give: iv[i] = [start, end, lo_min, w_min,
    h_min, U], U = :func:`_weight` of the minima relative to lo_ref; and the far bins,
    bounded together by one constant. Returns (the number of intervals, lo_ref, the
    number of far bins, their bound u_far), lo_ref being the lowest COM height among
    bins that may fit.

    Far bins. A bin whose lowest COM height lies more than far_cut / b above lo_ref
    has f <= L exp(-far_cut) E(b, L) = u_far on the whole bin (L - w <= L, L - h <= L),
    whether or not it fits; such bins (their indices in far[:n_far]) are not bounded
    one by one, which saves an exponential each, unless their total bound n_far
    2 pi / n_bins u_far exceeds far_share times that of the other bins (then they
    are bounded as the rest and n_far = 0). The proposal draws the far group with
    probability proportional to its total bound, then a far bin uniformly and theta
    uniformly in it (:func:`_thermal_one`). With far_cut = 30 and the study's data, 74 /
    109 / 116 of 128 bins are far at gamma 0.4 / 0.7 / 1.0 (none at 0.1), the far
    group draws 2e-10 to 5e-10 of the proposals on average (3e-7 at most), and the
    fallback is taken for 0.1 % of the configurations at gamma 0.4, none above.

    The infeasibility g = max(w, h) - L, Lipschitz with constant 2 r_max (r_max: the
    hull's largest distance from the COM), proves an interval [a, b] empty of fitting
    orientations when (g(a) + g(b)) / 2 > r_max (b - a): such intervals are dropped.
    A bin whose ends both fit is kept whole. A bin with an end that does not fit, and
    more than ``REFINE_SHARE`` of the bound, is halved (down to ``REFINE_DEPTH``
    levels; otherwise kept whole) so that the bound hugs the edges of the
    windows of fitting orientations instead of taking the low COM of orientations
    that do not fit; its halves are halved further while the COM height varies by
    more than ``LOOSE`` / b over them and their weight is not negligible (the weight
    often peaks steeply at a window's edge). Any interval is a valid (rigorous) bound;
    the halving only raises the acceptance rate.
    edges (3, n_bins + 1): lo, w, h at the bin edges; bins (n_bins, 3): their minima;
    kext (3, nk): lo, w, h at the kinks; stack (2 REFINE_DEPTH + 2, 8), depth
    (2 REFINE_DEPTH + 2,) int64, near (nk,) int64, tmp (3,), wbin (n_bins,) and far
    (n_bins,) int64: workspace.
    """
    dth = TWO_PI / n_bins
    cap = iv.shape[0]
    count = 0
    lo_est = np.inf  # lowest COM among bins that may fit
    for j in range(n_bins):
        if bins[j, 1] < box and bins[j, 2] < box:
            lo_est = min(lo_est, bins[j, 0])
    n_far = 0
    total = 0.0  # bound of the near bins kept whole, for the refinement decision
    for j in range(n_bins):
        if b * (bins[j, 0] - lo_est) > far_cut:  # False for b = 0 or no fitting bin
            far[n_far] = j
            n_far += 1
            wbin[j] = -1.0  # marks a far bin
        else:
            wbin[j] = _weight(bins[j, 0], bins[j, 1], bins[j, 2], lo_est, box, b)
            total += wbin[j]
    u_far = 0.0
    for phase in range(2):  # 0: the near bins; 1: the far ones if their bound is not small
        if phase == 1:
            if n_far == 0:
                break
            u_far = box * math.exp(-far_cut) * _height_integral(b, box)
            near_mass = 0.0
            for i in range(count):
                near_mass += (iv[i, 1] - iv[i, 0]) * iv[i, 5]
            if not n_far * dth * u_far > far_share * near_mass:
                break
            for q in range(n_far):  # bound them one by one, as the rest
                j = far[q]
                wbin[j] = _weight(bins[j, 0], bins[j, 1], bins[j, 2], lo_est, box, b)
        for q in range(n_bins if phase == 0 else n_far):
            j = q if phase == 0 else far[q]
            if wbin[j] < 0.0:
                continue  # a far bin, in phase 0
            ga = max(edges[1, j], edges[2, j]) - box
            gb = max(edges[1, j + 1], edges[2, j + 1]) - box
            whole = ga <= 0.0 and gb <= 0.0 or wbin[j] <= REFINE_SHARE * total
            if whole and not 0.5 * (ga + gb) > rmax * dth:
                iv[count, 0] = j * dth
                iv[count, 1] = (j + 1) * dth
                iv[count, 2] = bins[j, 0]
                iv[count, 3] = bins[j, 1]
                iv[count, 4] = bins[j, 2]
                iv[count, 5] = wbin[j]
                count += 1
                continue
            if 0.5 * (ga + gb) > rmax * dth:
                continue  # no orientation in this bin fits
            m_near = 0  # the kinks that may lie in the bin (every halving stays inside it)
            lo_bin = (j - 0.5) * dth
            hi_bin = (j + 1.5) * dth
            for t in range(nk):
                if lo_bin < kinks[t] < hi_bin:
                    near[m_near] = t
                    m_near += 1
            sp = 0  # depth-first halving: [a, b, lo_a, w_a, h_a, lo_b, w_b, h_b], depth
            stack[0, 0] = j * dth
            stack[0, 1] = (j + 1) * dth
            for c in range(3):
                stack[0, 2 + c] = edges[c, j]
                stack[0, 5 + c] = edges[c, j + 1]
            depth[0] = 0
            sp = 1
            while sp > 0:
                sp -= 1
                ta = stack[sp, 0]  # not a, b: b is the field parameter
                tb = stack[sp, 1]
                la, wa, ha = stack[sp, 2], stack[sp, 3], stack[sp, 4]
                lb, wb, hb = stack[sp, 5], stack[sp, 6], stack[sp, 7]
                d = depth[sp]
                mid = 0.5 * (ta + tb)
                _extents(hx, hy, nh, mid, ext)
                lm = -ext[2]
                wm = ext[1] - ext[0]
                hm = ext[3] - ext[2]
                for half in range(2):
                    if half == 0:
                        s0, s1, l0, w0, h0, l1, w1, h1 = ta, mid, la, wa, ha, lm, wm, hm
                    else:
                        s0, s1, l0, w0, h0, l1, w1, h1 = mid, tb, lm, wm, hm, lb, wb, hb
                    g0 = max(w0, h0) - box
                    g1 = max(w1, h1) - box
                    if g0 > 0.0 and g1 > 0.0 and 0.5 * (g0 + g1) > rmax * (s1 - s0):
                        continue
                    _interval_minima(kinks, kext, near, m_near, s0, s1, l0, w0, h0, l1, w1, h1,
                                     tmp)
                    tight = (b * (max(l0, l1) - tmp[0]) <= LOOSE
                             or b * (tmp[0] - lo_est) > NEGLIGIBLE)
                    done = g0 <= 0.0 and g1 <= 0.0 and tight
                    if done or d + 1 >= REFINE_DEPTH or count + sp + 2 >= cap:
                        if count < cap:
                            iv[count, 0] = s0
                            iv[count, 1] = s1
                            iv[count, 2] = tmp[0]
                            iv[count, 3] = tmp[1]
                            iv[count, 4] = tmp[2]
                            iv[count, 5] = _weight(tmp[0], tmp[1], tmp[2], lo_est, box, b)
                            count += 1
                        continue
                    stack[sp, 0] = s0
                    stack[sp, 1] = s1
                    stack[sp, 2] = l0
                    stack[sp, 3] = w0
                    stack[sp, 4] = h0
                    stack[sp, 5] = l1
                    stack[sp, 6] = w1
                    stack[sp, 7] = h1
                    depth[sp] = d + 1
                    sp += 1
        if phase == 1:
            n_far = 0
            u_far = 0.0
    return count, lo_est, n_far, u_far


@njit(**JIT)
def _thermal_one(x, y, box, b, tab, n_bins, state, out, info, ws, far_cut, far_share):
    """Draw one placement of the shape (x, y) (N,) from its conditional Boltzmann
    distribution; info as INFO_*. ws: the arrays of :func:`_workspace`; far_cut,
    far_share: see :func:`_bound_intervals`."""
    (hx, hy, kinks, edges, bins, iv, cum, stack, ext, tmp, tinfo, hull, order, wbin, kext,
     kcs, ext4, depth, near, cs4, far) = ws
    nh, rmax, cx, cy = _hull_frame(x, y, hx, hy, order, hull)
    nk = _kinks(hx, hy, nh, kinks, kcs)
    _bin_minima(hx, hy, nh, kinks, nk, tab, n_bins, edges, bins, kext, kcs, ext4, cs4)
    count, lo_ref, n_far, u_far = _bound_intervals(
        hx, hy, nh, rmax, kinks, kext, nk, n_bins, box, b, edges, bins, iv, stack, depth,
        near, ext, tmp, wbin, far, far_cut, far_share)
    near_total = 0.0  # proposal: interval i with probability (length x bound), theta
    for i in range(count):  # uniform; the far group with (its length x u_far)
        near_total += (iv[i, 1] - iv[i, 0]) * iv[i, 5]
        cum[i] = near_total
    dth = TWO_PI / n_bins
    total = near_total + n_far * dth * u_far
    info[INFO_TRIES] = 0.0
    info[INFO_FAR] = 0.0
    if not total > 0.0:
        _no_fit(x, y, box, out, hull, order, info, tinfo)
        return
    theta = 0.0
    accepted = False
    tries = 0
    from_far = False
    while tries < MAX_TRIES:
        tries += 1
        target = _uniform(state) * total
        from_far = not target < near_total
        if not from_far:
            lo_j = 0
            hi_j = count - 1
            while lo_j < hi_j:  # first interval with cum > target
                mid = (lo_j + hi_j) // 2
                if cum[mid] > target:
                    hi_j = mid
                else:
                    lo_j = mid + 1
            j = lo_j
            bound = iv[j, 5]
            theta = iv[j, 0] + _uniform(state) * (iv[j, 1] - iv[j, 0])
        else:  # a far bin, uniformly
            q = min(int((target - near_total) / (total - near_total) * n_far), n_far - 1)
            bound = u_far
            theta = (far[q] + _uniform(state)) * dth
        _extents(hx, hy, nh, theta, ext)
        f = _weight(-ext[2], ext[1] - ext[0], ext[3] - ext[2], lo_ref, box, b)
        if _uniform(state) * bound < f:
            accepted = True
            break
    info[INFO_TRIES] = tries
    info[INFO_FAR] = 1.0 if accepted and from_far else 0.0
    if not accepted:  # the fitting orientations carry a vanishing share of the bound
        _no_fit(x, y, box, out, hull, order, info, tinfo)
        return
    w = ext[1] - ext[0]
    h = ext[3] - ext[2]
    x0 = -ext[0] + _uniform(state) * (box - w)  # COM position, uniform inside
    y0 = -ext[2] + _sample_height(b, box - h, _uniform(state))
    mirror = _uniform(state) < 0.5
    _write_placed(x, y, cx, cy, theta, x0, y0, mirror, box, out)
    info[INFO_THETA] = theta
    info[INFO_WIDTH] = w
    info[INFO_HEIGHT] = h
    info[INFO_COM] = y0
    info[INFO_MIRROR] = 1.0 if mirror else 0.0
    info[INFO_FITS] = 1.0


@njit(**JIT)
def _workspace(n, n_bins):
    """Arrays of one thermal placement for N particles (reused across configurations)."""
    cap = 8 * n_bins + 16 * REFINE_DEPTH * 8
    return (np.empty(2 * n + 1), np.empty(2 * n + 1), np.empty(8 * n + 4),
            np.empty((3, n_bins + 1)), np.empty((n_bins, 3)), np.empty((cap, 6)),
            np.empty(cap), np.empty((2 * REFINE_DEPTH + 2, 8)), np.empty(4), np.empty(3),
            np.empty(6), np.empty(2 * n + 1, dtype=np.int64), np.empty(n, dtype=np.int64),
            np.empty(n_bins), np.empty((3, 8 * n + 4)), np.empty((2, 8 * n + 4)),
            np.empty((4, max(n_bins + 1, 2 * n + 2))),
            np.empty(2 * REFINE_DEPTH + 2, dtype=np.int64), np.empty(8 * n + 4, dtype=np.int64),
            np.empty((2, 2 * n + 2)), np.empty(n_bins, dtype=np.int64))


@njit(**JIT_PARALLEL)
def _thermal_batch(coords, box, b, n_bins, key0, key1, start, out, info, far_cut=FAR_CUT,
                   far_share=FAR_SHARE):
    """Thermal placement of every coords[k] (N, 2) with b[k] = gamma N / T; the random
    stream of configuration k is keyed by start + k. Work is split in chunks of
    ``CHUNK`` configurations (one workspace each); results do not depend on it."""
    m, n = coords.shape[0], coords.shape[1]
    tab = _angle_table(n_bins)
    n_chunks = (m + CHUNK - 1) // CHUNK
    for c in prange(n_chunks):
        ws = _workspace(n, n_bins)
        state = np.empty(4, dtype=np.uint64)
        x = np.empty(n)
        y = np.empty(n)
        for k in range(c * CHUNK, min(m, (c + 1) * CHUNK)):
            _seed_state(key0, key1, start + k, state)
            for i in range(n):
                x[i] = coords[k, i, 0]
                y[i] = coords[k, i, 1]
            _thermal_one(x, y, box, b[k], tab, n_bins, state, out[k], info[k], ws, far_cut,
                         far_share)


# ------------------------------------------------------------------------- lowest
@njit(**JIT)
def _infeasibility(ext, box):
    """max(w - L, h - L): <= 0 where the orientation fits in the box."""
    return max(ext[1] - ext[0], ext[3] - ext[2]) - box


@njit(**JIT)
def _lowest_one(x, y, box, tab, n_bins, out, info, ws_f, ws_i):
    """Least gravitational energy placement among the orientations that fit: the COM
    height lo(theta) is concave between the bottom kinks, so its minimum over the
    feasible set lies at a feasible bottom kink or at a boundary of the feasible set
    (sign changes on the grid of bin edges, refined by bisection). Rests on the
    floor, bounding box centred, mirror rule of the study's tumbler."""
    n = x.shape[0]
    info[INFO_TRIES] = 0.0  # no proposals (also where the shape does not fit)
    info[INFO_FAR] = 0.0
    hx = ws_f[0:2 * n + 1]
    hy = ws_f[2 * n + 1:4 * n + 2]
    kinks = ws_f[4 * n + 2:12 * n + 6]
    ext = ws_f[12 * n + 6:12 * n + 10]
    tinfo = ws_f[12 * n + 10:12 * n + 16]
    base = 12 * n + 16
    ymin = ws_f[base:base + n_bins + 1]
    xspan = ws_f[base + n_bins + 1:base + 2 * n_bins + 2]
    yspan = ws_f[base + 2 * n_bins + 2:base + 3 * n_bins + 3]
    hull = ws_i[0:2 * n + 1]
    order = ws_i[2 * n + 1:3 * n + 1]
    nh, rmax, cx, cy = _hull_frame(x, y, hx, hy, order, hull)
    nk = _kinks(hx, hy, nh, kinks, np.empty((2, kinks.shape[0])))
    slack = 1e-9 * box
    best = np.inf
    best_theta = 0.0
    for t in range(0, nk, 4):  # bottom kinks: every 4th entry
        _extents(hx, hy, nh, kinks[t], ext)
        if _infeasibility(ext, box) <= slack and -ext[2] < best:
            best = -ext[2]
            best_theta = kinks[t]
    _edge_extents(hx, hy, nh, tab, n_bins, ymin, xspan, yspan)
    if nk == 0 and max(xspan[0], yspan[0]) <= box + slack:  # a point-like hull
        best = -ymin[0]
    dth = TWO_PI / n_bins
    for j in range(n_bins):
        ok_a = max(xspan[j], yspan[j]) <= box
        if ok_a == (max(xspan[j + 1], yspan[j + 1]) <= box):
            continue
        a = j * dth  # bisect to the boundary, keep the feasible end
        c = a + dth
        for _ in range(BISECT_STEPS):
            mid = 0.5 * (a + c)
            _extents(hx, hy, nh, mid, ext)
            if (_infeasibility(ext, box) <= 0.0) == ok_a:
                a = mid
            else:
                c = mid
        edge = a if ok_a else c
        _extents(hx, hy, nh, edge, ext)
        if _infeasibility(ext, box) <= slack and -ext[2] < best:
            best = -ext[2]
            best_theta = edge
    if best == np.inf:
        _no_fit(x, y, box, out, hull, order, info, tinfo)
        return
    # rotate, mirror rule (third moment of x, then cov(x, y)), rest on the floor
    c = math.cos(best_theta)
    s = math.sin(best_theta)
    m3 = 0.0
    a3 = 0.0
    mxy = 0.0
    axy = 0.0
    inv = 1.0 / rmax if rmax > 0.0 else 0.0
    for i in range(n):
        qx = x[i] - cx
        qy = y[i] - cy
        sx = (c * qx - s * qy) * inv
        sy = (s * qx + c * qy) * inv
        m3 += sx * sx * sx
        a3 += abs(sx * sx * sx)
        mxy += sx * sy
        axy += abs(sx * sy)
    mirror = False
    if abs(m3) > MIRROR_TOL * a3:
        mirror = m3 < 0.0
    elif abs(mxy) > MIRROR_TOL * axy:
        mirror = mxy < 0.0
    _extents(hx, hy, nh, best_theta, ext)
    x0 = 0.5 * box - 0.5 * (ext[0] + ext[1])  # bounding box centred (kept by the mirror)
    _write_placed(x, y, cx, cy, best_theta, x0, -ext[2], mirror, box, out)
    info[INFO_THETA] = best_theta
    info[INFO_WIDTH] = ext[1] - ext[0]
    info[INFO_HEIGHT] = ext[3] - ext[2]
    info[INFO_COM] = -ext[2]
    info[INFO_MIRROR] = 1.0 if mirror else 0.0
    info[INFO_FITS] = 1.0
    info[INFO_TRIES] = 0.0


@njit(**JIT_PARALLEL)
def _lowest_batch(coords, box, n_bins, out, info):
    """Lowest fitting placement of every coords[k] (N, 2)."""
    m, n = coords.shape[0], coords.shape[1]
    tab = _angle_table(n_bins)
    for k in prange(m):
        ws_f = np.empty(12 * n + 16 + 3 * n_bins + 3)
        ws_i = np.empty(3 * n + 1, dtype=np.int64)
        x = coords[k, :, 0].copy()
        y = coords[k, :, 1].copy()
        _lowest_one(x, y, box, tab, n_bins, out[k], info[k], ws_f, ws_i)
