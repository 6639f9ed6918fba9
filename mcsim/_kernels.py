"""Private numba kernels of the Metropolis sampler.

Kernels take only arrays and scalars; the public wrappers in :mod:`mcsim.potentials`
and :mod:`mcsim.sampler` validate inputs and call them. Numba options live in
:data:`JIT` / :data:`JIT_PARALLEL`.

Units: reduced, sigma = epsilon = k_B = 1.

Overlaps. A uniform random start can put two particles almost on top of each other.
Pair distances are clamped from below at ``R_MIN`` (1e-3 sigma): a closer pair is
evaluated at ``R_MIN``, where the LJ energy is ~4e36 epsilon. That is finite for every
supported potential (exponents <= 48 give at most 1e144 per pair), so no sum
overflows to inf, no NaN can appear and no floating-point warning is raised, while
such a pair is still many orders of magnitude above any thermal energy: it is never
skipped, only capped. Metropolis accepts downhill moves without calling ``exp`` and
``exp(-beta dE)`` of a huge ``dE`` is exactly 0, so overlapping starts relax at once.

Random numbers. Each sample (or chain) owns a xoshiro256+ generator whose 256-bit
state is derived from the master seed by :class:`numpy.random.SeedSequence` in the
Python wrapper, so a sample's trajectory depends only on its own state and never on
which thread runs it.
"""

import numpy as np
from numba import njit, prange

# Pair distances below R_MIN (sigma) are evaluated at R_MIN; see module docstring.
R_MIN = 1e-3
R2_MIN = R_MIN * R_MIN

# Potential kind codes shared with mcsim.potentials.
KIND_IDEAL = 0
KIND_LJ = 1
KIND_NM = 2

# Reassociation lets LLVM vectorise the sums over the 29 neighbours; nnan/ninf are
# left out on purpose so that the compiler keeps IEEE semantics for large values.
_FASTMATH = {"reassoc", "contract", "arcp", "nsz"}
JIT = {"cache": True, "nogil": True, "fastmath": _FASTMATH, "error_model": "numpy"}
JIT_PARALLEL = {**JIT, "parallel": True}
# Tiny helpers of the trial-move loop are inlined at numba IR level, so that they can
# never remain calls inside it. (numba's cache does not notice edits of a helper that
# a cached function in another file inlines or calls: clear that file's cache.)
JIT_INLINE = {**JIT, "inline": "always"}

_U64_11 = np.uint64(11)
_U64_17 = np.uint64(17)
_U64_45 = np.uint64(45)
_U64_19 = np.uint64(19)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2^-53


# --------------------------------------------------------------------------- RNG
@njit(**JIT)
def _next_u64(s):
    """xoshiro256+ step (Blackman & Vigna 2018); ``s`` is a uint64[4] state, updated."""
    result = s[0] + s[3]
    t = s[1] << _U64_17
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = (s[3] << _U64_45) | (s[3] >> _U64_19)
    return result


@njit(**JIT)
def _uniform(s):
    """Uniform double in [0, 1) from the top 53 bits of a xoshiro256+ draw."""
    return np.float64(_next_u64(s) >> _U64_11) * _TWO_M53


# ------------------------------------------------------------- Metropolis test
_SIXTH = 1.0 / 6.0


@njit(**JIT_INLINE)
def _accept_uphill(x, u):
    """``u < exp(-x)`` for x > 0 and u in [0, 1), evaluating ``exp`` only when two bounds
    do not already decide: for x >= 0, e^x >= 1 + x + x^2/2 + x^3/6, so
    u (1 + x + x^2/2 + x^3/6) >= 1 means u >= exp(-x) (reject), and
    exp(-x) >= 1 - x + x^2/2 - x^3/6 (alternating Taylor series), so u below that
    accepts. The bounds lie strictly on their side of exp(-x) except where they touch
    it to within double rounding (x < ~1e-4), so the decision is that of the plain
    test up to the last-ulp rounding that ``exp`` itself has."""
    if u * (1.0 + x * (1.0 + x * (0.5 + x * _SIXTH))) >= 1.0:
        return False
    if u < 1.0 - x * (1.0 - x * (0.5 - x * _SIXTH)):
        return True
    return u < np.exp(-x)


@njit(**JIT_INLINE)
def _metropolis(d_e, beta, rng):
    """Accept a move with energy change ``d_e`` with probability min(1, exp(-beta d_e)):
    downhill moves without a random draw, uphill ones with one uniform draw u and
    u < exp(-beta d_e) (:func:`_accept_uphill`, which mostly avoids the ``exp``)."""
    if d_e <= 0.0:
        return True
    return _accept_uphill(beta * d_e, _uniform(rng))


# ----------------------------------------------------------- level 1: pair energy
@njit(**JIT)
def _u_lj(r2, rc2):
    """4 (r^-12 - r^-6) for squared distance r2, 0 beyond the cutoff (rc2 = r_c^2)."""
    r2c = max(r2, R2_MIN)
    inv6 = 1.0 / (r2c * r2c * r2c)
    u = 4.0 * inv6 * (inv6 - 1.0)
    return u if r2 < rc2 else 0.0


@njit(**JIT)
def _inv_pow(r2c, half):
    """r2c^-half: products of 1/r2c for whole ``half`` (even exponents, e.g. the study's
    4-2 potential: ~20x faster than ``pow``), ``pow`` otherwise."""
    if half == np.floor(half):
        inv = 1.0 / r2c
        out = 1.0
        for _ in range(int(half)):
            out *= inv
        return out
    return r2c ** (-half)


@njit(**JIT)
def _u_nm(r2, n, m, rc2):
    """4 (r^-n - r^-m) for squared distance r2, 0 beyond the cutoff."""
    r2c = max(r2, R2_MIN)
    u = 4.0 * (_inv_pow(r2c, 0.5 * n) - _inv_pow(r2c, 0.5 * m))
    return u if r2 < rc2 else 0.0


@njit(**JIT)
def _u_pair(r2, kind, n, m, rc2):
    """Pair energy for squared distance ``r2`` and potential ``kind``."""
    if kind == KIND_LJ:
        return _u_lj(r2, rc2)
    if kind == KIND_NM:
        return _u_nm(r2, n, m, rc2)
    return 0.0


# ------------------------------------------------------ level 2: one particle
@njit(**JIT)
def _fill_row(xi, yi, i, x, y, npart, kind, n, m, rc2, row):
    """row[j] = u(|r_i - r_j|) for a particle at (xi, yi) with index i; row[i] = 0.

    ``x``, ``y`` may be padded beyond the ``npart`` real particles (see ``_padded``);
    padding entries of ``row`` are set to 0. One branch per potential outside the
    loop, so each loop is a straight vectorisable pass over all (padded) entries.
    """
    npad = x.shape[0]
    if kind == KIND_LJ:
        for j in range(npad):
            dx = x[j] - xi
            dy = y[j] - yi
            row[j] = _u_lj(dx * dx + dy * dy, rc2)
    elif kind == KIND_NM:
        for j in range(npad):
            dx = x[j] - xi
            dy = y[j] - yi
            row[j] = _u_nm(dx * dx + dy * dy, n, m, rc2)
    else:
        for j in range(npad):
            row[j] = 0.0
    row[i] = 0.0
    for j in range(npart, npad):
        row[j] = 0.0


@njit(**JIT)
def _particle_energy(x, y, i, gamma, kind, n, m, rc2):
    """Energy of particle i: sum_j u(r_ij) + gamma * y_i."""
    npart = x.shape[0]
    e = 0.0
    for j in range(npart):
        if j != i:
            dx = x[j] - x[i]
            dy = y[j] - y[i]
            e += _u_pair(dx * dx + dy * dy, kind, n, m, rc2)
    return e + gamma * y[i]


# ----------------------------------------------------------------- level 3: total
@njit(**JIT)
def _total_energy(x, y, gamma, kind, n, m, rc2):
    """sum_{i<j} u(r_ij) + gamma * sum_i y_i."""
    npart = x.shape[0]
    e = 0.0
    for i in range(npart):
        for j in range(i + 1, npart):
            dx = x[j] - x[i]
            dy = y[j] - y[i]
            e += _u_pair(dx * dx + dy * dy, kind, n, m, rc2)
        e += gamma * y[i]
    return e


@njit(**JIT_PARALLEL)
def _total_energy_batch(pos, gammas, kind, n, m, rc2, out):
    """out[k] = total energy of pos[k] (shape (N, 2)) in field gammas[k]."""
    for k in prange(pos.shape[0]):
        out[k] = _total_energy(pos[k, :, 0], pos[k, :, 1], gammas[k], kind, n, m, rc2)


# Arrays inside the sampler are padded to a multiple of _PAD entries with ghost
# particles far outside the box, so the loops over neighbours run in whole SIMD
# vectors with no scalar remainder; ghost entries of every row are forced to 0.
_PAD = 8
_GHOST = 1.0e6  # sigma


@njit(**JIT)
def _padded(x0, y0):
    """Copies of x0, y0 (N,) padded with ghosts to a multiple of _PAD entries."""
    npart = x0.shape[0]
    npad = ((npart + _PAD - 1) // _PAD) * _PAD
    x = np.full(npad, _GHOST)
    y = np.full(npad, _GHOST)
    x[:npart] = x0
    y[:npart] = y0
    return x, y


@njit(**JIT)
def _pair_matrix(x, y, npart, kind, n, m, rc2):
    """Pair-energy matrix (npad, npad) of padded positions: zero diagonal, zero ghosts."""
    npad = x.shape[0]
    e_pair = np.zeros((npad, npad))
    for i in range(npart):
        _fill_row(x[i], y[i], i, x, y, npart, kind, n, m, rc2, e_pair[i])
    return e_pair


@njit(**JIT)
def _pair_sum(e_pair):
    """sum_{i<j} e_pair[i, j] of a symmetric matrix with zero diagonal."""
    return 0.5 * e_pair.sum()


# --------------------------------------------------------------------- sampling
@njit(**JIT)
def _sweep(x, y, npart, e_pair, row, rng, box, beta, gamma, delta, kind, n, m, rc2):
    """One sequential Metropolis sweep (particles 0..npart-1 in order).

    Each trial displaces one particle by U(-delta, delta) per axis; a move that leaves
    [0, box]^2 is rejected. Only the N - 1 new pair terms are computed: the old ones
    are read from the cached matrix ``e_pair``, which is updated on acceptance.
    ``x``, ``y``, ``e_pair`` and ``row`` are padded (see ``_padded``).

    Returns the number of accepted moves.
    """
    npad = x.shape[0]
    accepted = 0
    for i in range(npart):
        xn = x[i] + delta * (2.0 * _uniform(rng) - 1.0)
        yn = y[i] + delta * (2.0 * _uniform(rng) - 1.0)
        if xn < 0.0 or xn > box or yn < 0.0 or yn > box:
            continue
        _fill_row(xn, yn, i, x, y, npart, kind, n, m, rc2, row)
        d_e = 0.0
        e_old = e_pair[i]
        for j in range(npad):
            d_e += row[j] - e_old[j]
        d_e += gamma * (yn - y[i])
        if _metropolis(d_e, beta, rng):
            x[i] = xn
            y[i] = yn
            for j in range(npad):
                e_pair[i, j] = row[j]
                e_pair[j, i] = row[j]
            accepted += 1
    return accepted


@njit(**JIT)
def _random_start(x, y, rng, box):
    """Uniform random positions in [0, box]^2 (x then y for each particle)."""
    for i in range(x.shape[0]):
        x[i] = box * _uniform(rng)
        y[i] = box * _uniform(rng)


@njit(**JIT)
def _run_sweeps(x0, y0, rng, box, beta, gamma, delta, sweeps, kind, n, m, rc2, trace):
    """Run ``sweeps`` sweeps on configuration (x0, y0), updated in place.

    If ``trace`` is non-empty, store the total energy after each sweep. Returns the
    number of accepted moves.
    """
    if kind == KIND_LJ and x0.shape[0] <= _F32_MAX_N:
        return _run_sweeps_lj32(x0, y0, rng, box, beta, gamma, delta, sweeps, rc2, trace)
    npart = x0.shape[0]
    x, y = _padded(x0, y0)
    e_pair = _pair_matrix(x, y, npart, kind, n, m, rc2)
    row = np.zeros(x.shape[0])
    accepted = 0
    record = trace.shape[0] > 0
    for s in range(sweeps):
        accepted += _sweep(x, y, npart, e_pair, row, rng, box, beta, gamma, delta, kind, n, m,
                           rc2)
        if record:
            trace[s] = _pair_sum(e_pair) + gamma * y[:npart].sum()
    x0[:] = x[:npart]
    y0[:] = y[:npart]
    return accepted


# ------------------------------------------------- single-precision LJ pair terms
# For the LJ potential the pair terms of a trial move are computed and cached in
# float32 (twice the SIMD width); positions, the field term and every stored energy
# stay float64. The largest cached term, 4 R_MIN^-12 = 4e36, and a sum of N - 1 of
# them stay below the float32 limit (3.4e38) for N <= 80, so no inf or NaN can occur;
# the relative rounding of a Metropolis energy change is ~1e-7, far below anything
# the acceptance test can resolve statistically.
_F32_MAX_N = 80


@njit(**JIT)
def _fill_row_lj32(xi, yi, i, x, y, npart, rc2, row):
    """float32 version of :func:`_fill_row` for LJ: row[j] = u(|r_i - r_j|)."""
    r2min = np.float32(R2_MIN)
    four = np.float32(4.0)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for j in range(x.shape[0]):
        dx = x[j] - xi
        dy = y[j] - yi
        r2 = dx * dx + dy * dy
        r2c = max(r2, r2min)
        inv6 = one / (r2c * r2c * r2c)
        u = four * inv6 * (inv6 - one)
        row[j] = u if r2 < rc2 else zero
    row[i] = zero
    for j in range(npart, x.shape[0]):
        row[j] = zero


@njit(**JIT)
def _sweep_lj32(x, y, x32, y32, npart, e_pair, row, rng, box, beta, gamma, delta, rc2):
    """:func:`_sweep` for LJ with float32 pair terms (``x32``, ``y32``, ``e_pair`` and
    ``row`` float32; ``x``, ``y`` the float64 positions, kept in step). Same random
    draws and decisions as :func:`_sweep` up to the float32 rounding of the energy
    change.

    The new pair terms (:func:`_fill_row_lj32`) and the energy change against the
    cached row are one pass over the padded entries, with masks instead of fix-ups
    (written out here: as a separate, not inlined function it measured ~30 % slower).
    """
    npad = x.shape[0]
    r2min = np.float32(R2_MIN)
    four = np.float32(4.0)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    accepted = 0
    for i in range(npart):
        xn = x[i] + delta * (2.0 * _uniform(rng) - 1.0)
        yn = y[i] + delta * (2.0 * _uniform(rng) - 1.0)
        if xn < 0.0 or xn > box or yn < 0.0 or yn > box:
            continue
        xf = np.float32(xn)
        yf = np.float32(yn)
        e_old = e_pair[i]
        d_pair = zero
        for j in range(npad):
            dx = x32[j] - xf
            dy = y32[j] - yf
            r2 = dx * dx + dy * dy
            r2c = max(r2, r2min)
            inv6 = one / (r2c * r2c * r2c)
            u = four * inv6 * (inv6 - one)
            u = u if (r2 < rc2 and j != i and j < npart) else zero
            row[j] = u
            d_pair += u - e_old[j]
        d_e = np.float64(d_pair) + gamma * (yn - y[i])
        if _metropolis(d_e, beta, rng):
            x[i] = xn
            y[i] = yn
            x32[i] = xf
            y32[i] = yf
            for j in range(npad):
                e_pair[i, j] = row[j]
                e_pair[j, i] = row[j]
            accepted += 1
    return accepted


@njit(**JIT)
def _setup_lj32(x0, y0, rc2):
    """Padded float64 positions, their float32 copies, the float32 pair matrix, a
    float32 scratch row and the float32 cutoff for the LJ32 sweeps of (x0, y0) (N,)."""
    npart = x0.shape[0]
    x, y = _padded(x0, y0)
    x32 = x.astype(np.float32)
    y32 = y.astype(np.float32)
    npad = x.shape[0]
    rc2f = np.float32(min(rc2, 1e30))
    e_pair = np.zeros((npad, npad), dtype=np.float32)
    for i in range(npart):
        _fill_row_lj32(x32[i], y32[i], i, x32, y32, npart, rc2f, e_pair[i])
    row = np.zeros(npad, dtype=np.float32)
    return x, y, x32, y32, e_pair, row, rc2f


@njit(**JIT)
def _pair_sum_lj32(e_pair, npart):
    """sum_{i<j} e_pair[i, j] of the float32 cache, accumulated in float64."""
    e = 0.0
    for i in range(npart):
        for j in range(i + 1, npart):
            e += e_pair[i, j]
    return e


@njit(**JIT)
def _run_sweeps_lj32(x0, y0, rng, box, beta, gamma, delta, sweeps, rc2, trace):
    """:func:`_run_sweeps` for LJ with float32 pair terms (same random draws)."""
    npart = x0.shape[0]
    x, y, x32, y32, e_pair, row, rc2f = _setup_lj32(x0, y0, rc2)
    accepted = 0
    record = trace.shape[0] > 0
    for s in range(sweeps):
        accepted += _sweep_lj32(x, y, x32, y32, npart, e_pair, row, rng, box, beta, gamma,
                                delta, rc2f)
        if record:
            trace[s] = _pair_sum_lj32(e_pair, npart) + gamma * y[:npart].sum()
    x0[:] = x[:npart]
    y0[:] = y[:npart]
    return accepted


@njit(**JIT)
def _one_independent(rng, npart, box, beta, gamma, delta, sweeps, kind, n, m, rc2, pos, start):
    """One independent sample, run ``sweeps`` sweeps in place from ``pos`` (N, 2) (if
    ``start``: first a uniform random start) with rng state ``rng`` (updated). Returns
    (total energy, number of accepted moves)."""
    no_trace = np.empty(0)
    x = np.empty(npart)
    y = np.empty(npart)
    if start:
        _random_start(x, y, rng, box)
    else:
        x[:] = pos[:, 0]
        y[:] = pos[:, 1]
    acc = _run_sweeps(x, y, rng, box, beta, gamma, delta, sweeps, kind, n, m, rc2, no_trace)
    pos[:, 0] = x
    pos[:, 1] = y
    return _total_energy(x, y, gamma, kind, n, m, rc2), acc


@njit(**JIT_PARALLEL)
def _run_independent(states, npart, box, beta, gamma, delta, sweeps, kind, n, m, rc2,
                     pos_out, energy_out, acc_out, start):
    """Independent protocol: sample k runs ``sweeps`` sweeps with rng ``states[k]``
    (uint64[4], left at its final state) from a uniform start (``start``) or from
    ``pos_out[k]`` (continuing, e.g. S -> 2S: the result equals one 2S run), and
    stores its final configuration, energy and number of accepted moves (acc_out)."""
    for k in prange(states.shape[0]):
        energy_out[k], acc_out[k] = _one_independent(states[k], npart, box, beta, gamma,
                                                     delta, sweeps, kind, n, m, rc2,
                                                     pos_out[k], start)


@njit(**JIT)
def _run_independent_serial(states, npart, box, beta, gamma, delta, sweeps, kind, n, m,
                            rc2, pos_out, energy_out, acc_out, start):
    """:func:`_run_independent` on the calling thread only (for task schedulers that run
    several tasks in one process); same results."""
    for k in range(states.shape[0]):
        energy_out[k], acc_out[k] = _one_independent(states[k], npart, box, beta, gamma,
                                                     delta, sweeps, kind, n, m, rc2,
                                                     pos_out[k], start)


@njit(**JIT_PARALLEL)
def _run_checkpoints(states, npart, box, beta, gamma, delta, checkpoints, kind, n, m, rc2,
                     energy_out):
    """Independent samples whose total energy is recorded after each sweep count in
    ``checkpoints`` (increasing); energy_out has shape (M, len(checkpoints))."""
    no_trace = np.empty(0)
    for k in prange(states.shape[0]):
        rng = states[k].copy()
        x = np.empty(npart)
        y = np.empty(npart)
        _random_start(x, y, rng, box)
        done = 0
        for c in range(checkpoints.shape[0]):
            _run_sweeps(x, y, rng, box, beta, gamma, delta, checkpoints[c] - done, kind, n, m,
                        rc2, no_trace)
            done = checkpoints[c]
            energy_out[k, c] = _total_energy(x, y, gamma, kind, n, m, rc2)


@njit(**JIT)
def _run_trace(rng, npart, box, beta, gamma, delta, kind, n, m, rc2, trace):
    """One independent sample from a uniform start, total energy after every sweep."""
    x = np.empty(npart)
    y = np.empty(npart)
    _random_start(x, y, rng, box)
    _run_sweeps(x, y, rng, box, beta, gamma, delta, trace.shape[0], kind, n, m, rc2, trace)


@njit(**JIT)
def _chain_equilibrate(x, y, rng, box, beta, gamma, delta, sweeps, target, kind, n, m, rc2):
    """Equilibrate a chain in place; if 0 < target < 1, tune delta every 50 sweeps toward
    acceptance ``target`` (delta *= clip(acc / target, 0.5, 2), bounded to
    [1e-3, box / 2]). Returns the final (frozen) delta."""
    npart = x.shape[0]
    no_trace = np.empty(0)
    block = 50
    done = 0
    while done < sweeps:
        todo = min(block, sweeps - done)
        acc = _run_sweeps(x, y, rng, box, beta, gamma, delta, todo, kind, n, m, rc2, no_trace)
        done += todo
        if 0.0 < target < 1.0:
            rate = acc / (todo * npart)
            factor = min(max(rate / target, 0.5), 2.0)
            delta = min(max(delta * factor, 1e-3), 0.5 * box)
    return delta


@njit(**JIT)
def _chain_produce(x, y, rng, box, beta, gamma, delta, every, kind, n, m, rc2, pos_out,
                   energy_out, acc_out):
    """Continue a chain in place, storing a sample every ``every`` sweeps into the
    len(pos_out) rows of the outputs (acceptance over each ``every``-sweep block)."""
    npart = x.shape[0]
    no_trace = np.empty(0)
    for k in range(pos_out.shape[0]):
        acc = _run_sweeps(x, y, rng, box, beta, gamma, delta, every, kind, n, m, rc2, no_trace)
        pos_out[k, :, 0] = x
        pos_out[k, :, 1] = y
        energy_out[k] = _total_energy(x, y, gamma, kind, n, m, rc2)
        acc_out[k] = acc / (every * npart)


@njit(**JIT)
def _uniform_one(rng, npart, box, gamma, kind, n, m, rc2, pos):
    """Uniform random configuration into ``pos`` (N, 2); returns its total energy."""
    x = np.empty(npart)
    y = np.empty(npart)
    _random_start(x, y, rng, box)
    pos[:, 0] = x
    pos[:, 1] = y
    return _total_energy(x, y, gamma, kind, n, m, rc2)


@njit(**JIT_PARALLEL)
def _uniform_configs(states, npart, box, gamma, kind, n, m, rc2, pos_out, energy_out):
    """Uniform random configurations (no Monte Carlo) and their energies."""
    for k in prange(states.shape[0]):
        energy_out[k] = _uniform_one(states[k].copy(), npart, box, gamma, kind, n, m, rc2,
                                     pos_out[k])


@njit(**JIT)
def _uniform_configs_serial(states, npart, box, gamma, kind, n, m, rc2, pos_out, energy_out):
    """:func:`_uniform_configs` on the calling thread only; same results."""
    for k in range(states.shape[0]):
        energy_out[k] = _uniform_one(states[k].copy(), npart, box, gamma, kind, n, m, rc2,
                                     pos_out[k])


@njit(**JIT)
def _reference_records(x0, y0, rng, box, beta, gamma, delta, every, kind, n, m, rc2, e_out,
                       y_out, y2_out):
    """Continue a chain from (x0, y0) (N,), recording after every ``every`` sweeps
    (len(e_out) records) the total energy (from the cached pair matrix), the mean
    height and the mean squared height. float64 pair terms (any potential)."""
    npart = x0.shape[0]
    x, y = _padded(x0, y0)
    e_pair = _pair_matrix(x, y, npart, kind, n, m, rc2)
    row = np.zeros(x.shape[0])
    for k in range(e_out.shape[0]):
        for _ in range(every):
            _sweep(x, y, npart, e_pair, row, rng, box, beta, gamma, delta, kind, n, m, rc2)
        yr = y[:npart]
        e_out[k] = _pair_sum(e_pair) + gamma * yr.sum()
        y_out[k] = yr.mean()
        y2_out[k] = (yr * yr).mean()


@njit(**JIT)
def _reference_records_lj32(x0, y0, rng, box, beta, gamma, delta, every, rc2, e_out, y_out,
                            y2_out):
    """:func:`_reference_records` with the float32 LJ pair terms of the sampler."""
    npart = x0.shape[0]
    x, y, x32, y32, e_pair, row, rc2f = _setup_lj32(x0, y0, rc2)
    for k in range(e_out.shape[0]):
        for _ in range(every):
            _sweep_lj32(x, y, x32, y32, npart, e_pair, row, rng, box, beta, gamma, delta,
                        rc2f)
        yr = y[:npart]
        e_out[k] = _pair_sum_lj32(e_pair, npart) + gamma * yr.sum()
        y_out[k] = yr.mean()
        y2_out[k] = (yr * yr).mean()


@njit(**JIT_PARALLEL)
def _reference_chains(states, npart, box, beta, gamma, delta, burn, every, kind, n, m, rc2,
                      e_out, y_out, y2_out):
    """Equilibrium reference: chain c starts uniform from rng ``states[c]``, runs ``burn``
    sweeps, then records after every ``every`` sweeps (e_out.shape[1] records) its total
    energy (from the cached pair matrix), mean height (1/N) sum_i y_i and mean squared
    height (1/N) sum_i y_i^2. The same sweep kernels as the sampler (float32 pair terms
    for LJ)."""
    no_trace = np.empty(0)
    for c in prange(states.shape[0]):
        rng = states[c].copy()
        x0 = np.empty(npart)
        y0 = np.empty(npart)
        _random_start(x0, y0, rng, box)
        _run_sweeps(x0, y0, rng, box, beta, gamma, delta, burn, kind, n, m, rc2, no_trace)
        if kind == KIND_LJ and npart <= _F32_MAX_N:
            _reference_records_lj32(x0, y0, rng, box, beta, gamma, delta, every, rc2,
                                    e_out[c], y_out[c], y2_out[c])
        else:
            _reference_records(x0, y0, rng, box, beta, gamma, delta, every, kind, n, m, rc2,
                               e_out[c], y_out[c], y2_out[c])
