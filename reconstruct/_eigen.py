"""The top-two eigendecomposition of one Gram matrix (private numba kernels, called by
the batch drivers of :mod:`reconstruct._kernels`).

Why not ``numpy.linalg.eigh``: for 30 x 30 matrices it runs at about 16,000
matrices/s on this machine (LAPACK ``dsyevd`` computes all 30 eigenvectors), which
alone is below the 20,000 configurations/s the pipeline needs. We need the whole
spectrum (for the quality scores) but only two eigenvectors, which is what the
classic route gives cheaply (Golub & Van Loan, *Matrix Computations*, 4th ed.):

1. Householder reduction to tridiagonal form, T = Q^T G Q (GVL Alg. 8.3.1);
2. all eigenvalues of T by the implicit QL algorithm with Wilkinson shifts
   (Bowdler, Martin, Reinsch & Wilkinson 1968, ``tql1``; Numerical Recipes ``tqli``);
3. the two eigenvectors of T by inverse iteration with the computed eigenvalues,
   tridiagonal LU with partial pivoting and tiny pivots replaced by eps ||T||, and
   Gram-Schmidt against the first vector (GVL Sec. 8.2.2; LAPACK ``dstein``);
4. back-transformation u = Q y with the stored Householder vectors.

Exact distance matrices (a dataset's own) give Gram matrices of rank two, for which
all of this is wasted: :func:`_embed_rank2` first runs two steps of subspace iteration
(GVL Sec. 8.2.4) on two vectors in the range of G and accepts the Rayleigh-Ritz result
only with a certificate, ||G - sum_c theta_c u_c u_c^T||_F <= RANK2_TOL ||G||_F
computed entry by entry, so that by Weyl's inequality every other eigenvalue of G lies
within that bound of zero (and is reported as 0). Otherwise, as for any decoded
matrix, the route above runs; the try costs eight matrix-vector products.

:func:`reconstruct.embedding.embed_gram` with ``method="lapack"`` is the slow,
obviously-correct reference (``numpy.linalg.eigh``) that the tests compare against.
"""

import math

import numpy as np
from numba import njit

from reconstruct._jit import EPS, JIT

# Rank-two certificate: ||G - G_2||_F / ||G||_F below which a Gram matrix counts as
# rank two (exact distances give ~1e-15; every eigenvalue then is exact to this).
RANK2_TOL = 1e-12
WORK_ROWS = 12  # rows of the (WORK_ROWS, N) scratch of _embed_one


@njit(**JIT)
def _tridiagonalize(a, d, e, beta, p):
    """Householder reduction of the symmetric a (N, N), destroyed, to T = Q^T a Q.

    On return d (N,) is the diagonal of T, e (N,) its subdiagonal (e[k] couples k
    and k+1, e[N-1] = 0), and Q = H_0 H_1 ... H_{N-3} with H_k = I - beta[k] v v^T,
    v = a[k, k+1:] (GVL Alg. 8.3.1). Only the lower triangle of a is read and
    updated (as LAPACK dsytd2 with uplo = 'L': symmetric matrix-vector product and
    rank-2 update on the lower triangle); v is kept in row k, whose upper part is
    not used by the lower storage, so that the inner loops run over contiguous
    memory. p (N,) is workspace.
    """
    n = a.shape[0]
    for k in range(n - 2):
        m0 = k + 1
        s = 0.0
        for i in range(m0 + 1, n):
            s += a[i, k] * a[i, k]
        x0 = a[m0, k]
        d[k] = a[k, k]
        if s == 0.0:  # already tridiagonal in this column
            beta[k] = 0.0
            e[k] = x0
            continue
        norm = math.sqrt(x0 * x0 + s)
        alpha = -norm if x0 >= 0.0 else norm
        a[k, m0] = x0 - alpha  # v = x - alpha e_1, stored in row k
        for i in range(m0 + 1, n):
            a[k, i] = a[i, k]
        b = 2.0 / (a[k, m0] * a[k, m0] + s)
        beta[k] = b
        e[k] = alpha
        # p = b A v (lower triangle only)
        for i in range(m0, n):
            p[i] = 0.0
        for i in range(m0, n):
            vi = a[k, i]
            t = a[i, i] * vi
            for j in range(m0, i):
                t += a[i, j] * a[k, j]
                p[j] += a[i, j] * vi
            p[i] += t
        pv = 0.0
        for i in range(m0, n):
            p[i] *= b
            pv += p[i] * a[k, i]
        # w = p - (b/2)(p.v) v ;  A <- A - v w^T - w v^T  (lower triangle)
        kk = 0.5 * b * pv
        for i in range(m0, n):
            p[i] -= kk * a[k, i]
        for i in range(m0, n):
            vi = a[k, i]
            wi = p[i]
            for j in range(m0, i + 1):
                a[i, j] -= vi * p[j] + wi * a[k, j]
    for k in range(max(n - 2, 0), n):
        d[k] = a[k, k]
    if n >= 2:
        e[n - 2] = a[n - 1, n - 2]
        beta[n - 2] = 0.0
    e[n - 1] = 0.0
    beta[n - 1] = 0.0


@njit(**JIT)
def _back_transform(a, beta, y):
    """y <- Q y with Q from :func:`_tridiagonalize` (vectors stored in the rows of a)."""
    n = a.shape[0]
    for k in range(n - 3, -1, -1):
        b = beta[k]
        if b == 0.0:
            continue
        s = 0.0
        for i in range(k + 1, n):
            s += a[k, i] * y[i]
        s *= b
        for i in range(k + 1, n):
            y[i] -= s * a[k, i]


@njit(**JIT)
def _tql_eigenvalues(d, e, tnorm):
    """All eigenvalues of the symmetric tridiagonal (d, e) by implicit QL with
    Wilkinson shifts (tql1 / NR tqli without vectors). d, e (N,) are overwritten;
    the eigenvalues end up in d (unsorted). Returns False if an eigenvalue took more
    than 60 iterations (never seen; the caller then falls back to LAPACK).

    Deflation is absolute, |e_m| <= eps ||T|| (tnorm = ||T||_inf): the eigenvalues
    are only ever accurate to eps ||T|| anyway, and this stops the iteration from
    resolving the rounding-level spectrum of exact low-rank Gram matrices.
    Entries must be O(1) (the callers scale G), so sqrt(f^2 + g^2) cannot overflow.
    """
    n = d.shape[0]
    tol = EPS * tnorm
    for l in range(n):
        it = 0
        while True:
            m = l
            while m < n - 1:
                dd = abs(d[m]) + abs(d[m + 1])
                if abs(e[m]) <= EPS * dd or abs(e[m]) <= tol:
                    break
                m += 1
            if m == l:
                break
            it += 1
            if it > 60:
                return False
            g = (d[l + 1] - d[l]) / (2.0 * e[l])
            r = math.sqrt(g * g + 1.0) if abs(g) < 1e150 else abs(g)
            g = d[m] - d[l] + e[l] / (g + (r if g >= 0.0 else -r))
            s = 1.0
            c = 1.0
            p = 0.0
            i = m - 1
            early = False
            while i >= l:
                f = s * e[i]
                b = c * e[i]
                r = math.sqrt(f * f + g * g)
                e[i + 1] = r
                if r == 0.0:  # underflow: split and restart
                    d[i + 1] -= p
                    e[m] = 0.0
                    early = True
                    break
                s = f / r
                c = g / r
                g = d[i + 1] - p
                r = (d[i] - g) * s + 2.0 * c * b
                p = s * r
                d[i + 1] = g + p
                g = c * r - b
                i -= 1
            if early:
                continue
            d[l] -= p
            e[l] = g
            e[m] = 0.0
    return True


@njit(**JIT)
def _inverse_iteration(d, e, lam, tnorm, y, prev, has_prev, u0, u1, u2, mult, swap):
    """Eigenvector y (N,) of the tridiagonal (d, e) for the eigenvalue ``lam`` by
    inverse iteration: LU of T - lam I with partial pivoting, pivots below
    eps ||T|| replaced by eps ||T||; y is orthogonalised against ``prev`` when
    ``has_prev`` (clusters of equal eigenvalues). y holds the start vector on entry."""
    n = d.shape[0]
    tiny = EPS * tnorm
    if tiny == 0.0:
        tiny = 1e-300
    # factorise T - lam I = P L U, U with two superdiagonals
    cd = d[0] - lam
    cs = e[0] if n > 1 else 0.0
    for k in range(n - 1):
        ek = e[k]
        dk1 = d[k + 1] - lam
        ek1 = e[k + 1] if k + 1 < n - 1 else 0.0
        if abs(cd) >= abs(ek):
            swap[k] = False
            if abs(cd) < tiny:
                cd = tiny
            mk = ek / cd
            u0[k] = cd
            u1[k] = cs
            u2[k] = 0.0
            cd = dk1 - mk * cs
            cs = ek1
        else:
            swap[k] = True
            mk = cd / ek
            u0[k] = ek
            u1[k] = dk1
            u2[k] = ek1
            cd = cs - mk * dk1
            cs = -mk * ek1
        mult[k] = mk
    if abs(cd) < tiny:
        cd = tiny
    u0[n - 1] = cd
    for _ in range(4):
        if has_prev:
            dot = 0.0
            for i in range(n):
                dot += y[i] * prev[i]
            for i in range(n):
                y[i] -= dot * prev[i]
        # forward: apply P and L^-1
        for k in range(n - 1):
            if swap[k]:
                t = y[k]
                y[k] = y[k + 1]
                y[k + 1] = t - mult[k] * y[k + 1]
            else:
                y[k + 1] -= mult[k] * y[k]
        # back substitution with U
        y[n - 1] /= u0[n - 1]
        if n >= 2:
            y[n - 2] = (y[n - 2] - u1[n - 2] * y[n - 1]) / u0[n - 2]
        for k in range(n - 3, -1, -1):
            y[k] = (y[k] - u1[k] * y[k + 1] - u2[k] * y[k + 2]) / u0[k]
        if has_prev:
            dot = 0.0
            for i in range(n):
                dot += y[i] * prev[i]
            for i in range(n):
                y[i] -= dot * prev[i]
        nrm = 0.0
        for i in range(n):
            nrm += y[i] * y[i]
        nrm = math.sqrt(nrm)
        if not (nrm > 0.0) or not math.isfinite(nrm):
            # start again from a unit vector orthogonal to prev
            for i in range(n):
                y[i] = 0.0
            j = 0
            if has_prev:
                best = 2.0
                for i in range(n):
                    if abs(prev[i]) < best:
                        best = abs(prev[i])
                        j = i
            y[j] = 1.0
            continue
        for i in range(n):
            y[i] /= nrm
        # residual ||T y - lam y|| / ||T||
        res = 0.0
        for i in range(n):
            t = (d[i] - lam) * y[i]
            if i > 0:
                t += e[i - 1] * y[i - 1]
            if i < n - 1:
                t += e[i] * y[i + 1]
            res += t * t
        if math.sqrt(res) <= 64.0 * EPS * tnorm:
            break


@njit(**JIT)
def _store_embedding(y, c, lam_c, coords):
    """coords[:, c] = sign * sqrt(max(lam_c, 0)) * y for the unit eigenvector y, with
    the sign that makes the largest component of y positive."""
    n = y.shape[0]
    big = 0
    for i in range(n):
        if abs(y[i]) > abs(y[big]):
            big = i
    sgn = -1.0 if y[big] < 0.0 else 1.0
    s = math.sqrt(lam_c) if lam_c > 0.0 else 0.0
    for i in range(n):
        coords[i, c] = sgn * s * y[i]


@njit(**JIT)
def _matvec2(g, a, b, ga, gb):
    """ga = g a, gb = g b for the symmetric g, as sums of its rows (contiguous inner
    loops without a reduction, which the compiler vectorises)."""
    n = g.shape[0]
    for i in range(n):
        ga[i] = 0.0
        gb[i] = 0.0
    for j in range(n):
        aj = a[j]
        bj = b[j]
        row = g[j]
        for i in range(n):
            ga[i] += row[i] * aj
            gb[i] += row[i] * bj


@njit(**JIT)
def _orthonormalize2(a, b):
    """Gram-Schmidt, twice, of the columns a, b (N,) in place; False if either is
    (numerically) dependent on what precedes it."""
    n = a.shape[0]
    na = 0.0
    for i in range(n):
        na += a[i] * a[i]
    na = math.sqrt(na)
    if not na > 0.0:
        return False
    nb0 = 0.0
    for i in range(n):
        a[i] /= na
        nb0 += b[i] * b[i]
    for _ in range(2):
        dot = 0.0
        for i in range(n):
            dot += a[i] * b[i]
        for i in range(n):
            b[i] -= dot * a[i]
    nb = 0.0
    for i in range(n):
        nb += b[i] * b[i]
    nb = math.sqrt(nb)
    if not nb > 1e-8 * math.sqrt(nb0):
        return False
    for i in range(n):
        b[i] /= nb
    return True


@njit(**JIT)
def _embed_rank2(g, coords, lam_out, work):
    """Top-two embedding of g (N, N) if g is of rank two to RANK2_TOL (not modified).

    Two steps of subspace iteration, Q <- orth(G Q), from G applied to two fixed
    generic vectors span the range of a rank-two G, with the components outside it
    damped to rounding; the Rayleigh quotient T = Q^T G Q (2 x 2) is diagonalised
    in closed form. The result is accepted only if the residual
    R = G - sum_c theta_c u_c u_c^T, computed entry by entry, has
    ||R||_F <= RANK2_TOL ||G||_F; lam_out then holds theta_1, theta_2 and N - 2
    zeros, descending (every other eigenvalue of G is within ||R||_2 of zero by
    Weyl's inequality). Returns False, with coords and lam_out unspecified, when the
    certificate fails (the caller takes the general route): G of another rank, a
    negative theta_1, collinear points.
    """
    n = g.shape[0]
    if n < 3:
        return False
    a = work[8]
    b = work[9]
    ga = work[10]
    gb = work[11]
    for j in range(n):  # ||G||_F^2 by columns (vectorised), then summed
        a[j] = 0.0
    for i in range(n):
        for j in range(n):
            a[j] += g[i, j] * g[i, j]
    fro2 = 0.0
    for j in range(n):
        fro2 += a[j]
    if fro2 == 0.0:
        return False
    gnorm = math.sqrt(fro2)
    for i in range(n):  # two fixed vectors with no special symmetry
        a[i] = 1.0 + 0.5 * math.sin(1.0 + 2.3 * i)
        b[i] = math.cos(0.4 + 1.7 * i)
    for _ in range(3):  # a, b <- orth(G a, G b): twice, then once more for T
        _matvec2(g, a, b, ga, gb)
        for i in range(n):
            a[i] = ga[i]
            b[i] = gb[i]
        if not _orthonormalize2(a, b):
            return False
    _matvec2(g, a, b, ga, gb)
    t00 = 0.0
    t01 = 0.0
    t10 = 0.0
    t11 = 0.0
    for i in range(n):
        t00 += a[i] * ga[i]
        t01 += a[i] * gb[i]
        t10 += b[i] * ga[i]
        t11 += b[i] * gb[i]
    t01 = 0.5 * (t01 + t10)
    # eigenpairs of the symmetric 2 x 2 T: rotation by phi, tan(2 phi) = 2 t01 / (t00 - t11)
    half = 0.5 * (t00 - t11)
    rad = math.sqrt(half * half + t01 * t01)
    mean = 0.5 * (t00 + t11)
    l1 = mean + rad
    l2 = mean - rad
    phi = 0.5 * math.atan2(t01, half) if rad > 0.0 else 0.0
    c = math.cos(phi)
    s = math.sin(phi)
    for i in range(n):  # Ritz vectors u1 = c a + s b (in ga), u2 = -s a + c b (in gb)
        ga[i] = c * a[i] + s * b[i]
        gb[i] = -s * a[i] + c * b[i]
    for j in range(n):  # certificate: ||G - l1 u1 u1^T - l2 u2 u2^T||_F^2, by columns
        a[j] = 0.0
    for i in range(n):
        p1 = l1 * ga[i]
        p2 = l2 * gb[i]
        for j in range(n):
            r = g[i, j] - p1 * ga[j] - p2 * gb[j]
            a[j] += r * r
    r2 = 0.0
    for j in range(n):
        r2 += a[j]
    if not (math.sqrt(r2) <= RANK2_TOL * gnorm and l1 > 0.0):
        return False
    lam_out[0] = l1
    for i in range(1, n):
        lam_out[i] = 0.0
    _store_embedding(ga, 0, l1, coords)
    if l2 >= 0.0:
        lam_out[1] = l2
        _store_embedding(gb, 1, l2, coords)
    else:  # the second largest eigenvalue is 0: its eigenvector does not matter
        lam_out[n - 1] = l2
        for i in range(n):
            coords[i, 1] = 0.0
    return True


@njit(**JIT)
def _embed_one(g, coords, lam_out, work):
    """Top-two eigen-embedding of the symmetric g (N, N) (destroyed).

    Writes coords (N, 2) = [sqrt(max(l1, 0)) u1, sqrt(max(l2, 0)) u2] and all
    eigenvalues to lam_out (N,), descending. Returns False if the QL iteration did
    not converge (the caller falls back to LAPACK). work: (WORK_ROWS, N) scratch.
    A certified rank-two g takes the short route :func:`_embed_rank2`.
    """
    if _embed_rank2(g, coords, lam_out, work):
        return True
    n = g.shape[0]
    d = work[0]
    e = work[1]
    beta = work[2]
    y = work[3]
    y1 = work[4]
    u0 = work[5]
    u1 = work[6]
    u2 = work[7]
    mult = work[8]
    swap = np.zeros(n, dtype=np.bool_)
    _tridiagonalize(g, d, e, beta, y)
    tnorm = 0.0
    for i in range(n):
        t = abs(d[i]) + (abs(e[i - 1]) if i > 0 else 0.0) + abs(e[i])
        if t > tnorm:
            tnorm = t
    dd = d.copy()
    ee = e.copy()
    ok = _tql_eigenvalues(dd, ee, tnorm)
    if not ok:
        return False
    lam = np.sort(dd)[::-1]
    for i in range(n):
        lam_out[i] = lam[i]
    ncomp = 2 if n >= 2 else 1
    for c in range(2):
        for i in range(n):
            coords[i, c] = 0.0
    for c in range(ncomp):
        # deterministic start vector with no special symmetry
        for i in range(n):
            y[i] = 1.0 + 0.5 * math.sin(1.0 + 2.3 * i + 0.7 * c)
        _inverse_iteration(d, e, lam[c], tnorm, y, y1, c == 1, u0, u1, u2, mult, swap)
        if c == 0:
            for i in range(n):
                y1[i] = y[i]
        _back_transform(g, beta, y)
        _store_embedding(y, c, lam[c], coords)  # largest component positive
    return True
