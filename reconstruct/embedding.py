"""Planar coordinates from Gram matrices: the top-two eigen-embedding and how far a
matrix is from a 2D Euclidean one.

With G = U diag(lambda) U^T, eigenvalues in descending order, the coordinates are

    X = [sqrt(max(lambda_1, 0)) u_1, sqrt(max(lambda_2, 0)) u_2]     (N, 2),

the best rank-2 positive semi-definite approximation G_2 = X X^T of G in the
Frobenius norm (Eckart & Young 1936). X is determined up to an orthogonal
transformation (rotation or reflection) of the plane, which the tumbler fixes.
The sign of each u_a is chosen so that its largest component is positive.

Quality scores (0 for an exact 2D distance matrix, per matrix):

* ``residual`` = ||G - G_2||_F / ||G||_F = sqrt(sum of lambda_i^2 over the
  components not kept, i.e. i > 2 or lambda_i < 0) / sqrt(sum lambda_i^2),
  in [0, 1]: the share of spectral weight outside the top two components;
* ``negative`` = sum_{lambda_i < 0} |lambda_i| / sum_i |lambda_i|, in [0, 1]:
  the non-Euclidean part. By Schoenberg's criterion (Schoenberg 1935; Young &
  Householder 1938) the centred G is positive semi-definite iff D is Euclidean in
  some dimension, so this is 0 for any exact distance matrix.

Both are 0 by definition for G = 0 (all particles at one point). Degenerate inputs
give finite results: collinear points (and N = 2) a second coordinate column of
zeros, coincident points all-zero coordinates.

``method="fast"`` runs the numba kernel of :mod:`reconstruct._kernels`: a certified
rank-two route for exact matrices (subspace iteration; eigenvalues other than the top
two are then below 1e-12 ||G||_F and reported as 0), else tridiagonalisation, QL
eigenvalues and inverse iteration for two eigenvectors;
``method="lapack"`` the reference with ``numpy.linalg.eigh`` (batched).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reconstruct import _kernels as K
from reconstruct.distances import DEFAULT_RTOL, check_distance_matrices
from reconstruct.gram import check_variant, gram_matrices

__all__ = ["EMBED_METHODS", "Embedding", "embed_gram", "embed_distances"]

EMBED_METHODS = ("fast", "lapack")
_CHUNK = 4096  # matrices per numpy.linalg.eigh call (bounds temporary memory)


@dataclass(frozen=True)
class Embedding:
    """Top-two eigen-embedding of a batch of Gram matrices.

    Attributes:
        coords: (M, N, 2) coordinates, sigma, in an arbitrary orientation; origin at
            the centroid (``centered``) or at the reference particle (``reference``).
        eigenvalues: (M, N) all eigenvalues of G, descending, sigma^2.
        residual: (M,) ||G - G_2||_F / ||G||_F, see the module docstring.
        negative: (M,) share of |spectrum| in negative eigenvalues.
        variant: the Gram variant (``centered``, ``reference`` or ``gram`` when the
            Gram matrices were given directly).
        reference: the reference particle (``reference`` variant), else -1.
    """

    coords: np.ndarray
    eigenvalues: np.ndarray
    residual: np.ndarray
    negative: np.ndarray
    variant: str
    reference: int = -1

    def __len__(self) -> int:
        return int(self.coords.shape[0])


def _check_method(method: str) -> None:
    if method not in EMBED_METHODS:
        raise ValueError(f"method: unknown eigensolver {method!r} (fast or lapack)")


def _embed_lapack(g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reference: numpy.linalg.eigh on (M, N, N) symmetric g, same conventions."""
    m, n = g.shape[0], g.shape[1]
    coords = np.zeros((m, n, 2))
    lam = np.empty((m, n))
    for s in range(0, m, _CHUNK):
        gs = g[s:s + _CHUNK]
        scale = np.abs(gs).max(axis=(1, 2))
        scale[scale == 0] = 1.0
        w, v = np.linalg.eigh(gs / scale[:, None, None])
        w, v = w[:, ::-1], v[:, :, ::-1]
        lam[s:s + _CHUNK] = w * scale[:, None]
        for c in range(min(2, n)):
            u = v[:, :, c]
            big = np.abs(u).argmax(axis=1)
            sgn = np.where(np.take_along_axis(u, big[:, None], 1)[:, 0] < 0, -1.0, 1.0)
            root = np.sqrt(np.clip(w[:, c] * scale, 0.0, None))
            coords[s:s + _CHUNK, :, c] = u * (sgn * root)[:, None]
    resid = np.empty(m)
    neg = np.empty(m)
    for k in range(m):
        K._scores(lam[k], resid[k:k + 1], neg[k:k + 1])
    return coords, lam, resid, neg


def _finish_fast(g_fallback, coords, lam, resid, neg, ok) -> None:
    """Redo, with LAPACK, the rare rows where the QL iteration did not converge."""
    if not ok.all():
        idx = np.flatnonzero(~ok)
        c, l_, r, n_ = _embed_lapack(g_fallback(idx))
        coords[idx], lam[idx], resid[idx], neg[idx] = c, l_, r, n_


def embed_gram(gram: np.ndarray, method: str = "fast") -> Embedding:
    """Top-two eigen-embedding of Gram matrices.

    Args:
        gram: (N, N) or (M, N, N) symmetric matrices, sigma^2 (finite; asymmetry up
            to rounding is averaged out).
        method: ``"fast"`` (numba kernel) or ``"lapack"`` (numpy.linalg.eigh).

    Returns:
        :class:`Embedding` with ``variant="gram"``; a single matrix gives M = 1.
    """
    _check_method(method)
    g = np.asarray(gram, dtype=np.float64)
    if g.ndim == 2:
        g = g[None]
    if g.ndim != 3 or g.shape[1] != g.shape[2] or g.shape[1] < 1:
        raise ValueError(f"gram: expected shape (N, N) or (M, N, N), got {np.shape(gram)}")
    if not np.all(np.isfinite(g)):
        raise ValueError("gram: contains NaN or inf")
    g = np.ascontiguousarray(g)
    if method == "lapack":
        coords, lam, resid, neg = _embed_lapack(0.5 * (g + np.swapaxes(g, 1, 2)))
        return Embedding(coords, lam, resid, neg, "gram")
    m, n = g.shape[0], g.shape[1]
    coords, lam = np.empty((m, n, 2)), np.empty((m, n))
    resid, neg, ok = np.empty(m), np.empty(m), np.empty(m, dtype=np.bool_)
    K._embed_gram_batch(g, coords, lam, resid, neg, ok)
    _finish_fast(lambda idx: 0.5 * (g[idx] + np.swapaxes(g[idx], 1, 2)),
                 coords, lam, resid, neg, ok)
    return Embedding(coords, lam, resid, neg, "gram")


def embed_distances(
    distances: np.ndarray,
    variant: str = "centered",
    reference: int = 0,
    *,
    method: str = "fast",
    rtol: float = DEFAULT_RTOL,
) -> Embedding:
    """Planar coordinates from distance matrices (Gram step + eigen-embedding).

    Args:
        distances: (N, N) or (M, N, N) distance matrices, sigma; validated with
            :func:`reconstruct.distances.check_distance_matrices` (``rtol``).
        variant: Gram variant, ``"centered"`` (classical MDS) or ``"reference"``.
        reference: particle at the origin for the ``"reference"`` variant.
        method: ``"fast"`` (numba kernel) or ``"lapack"`` (numpy.linalg.eigh).

    Returns:
        :class:`Embedding`; a single matrix gives M = 1. For an exact distance
        matrix the coordinates reproduce it to rounding (~1e-13 sigma for N = 30,
        L = 10).
    """
    _check_method(method)
    d = check_distance_matrices(distances, rtol=rtol)
    code = check_variant(variant, reference, d.shape[1])
    ref = int(reference) if variant == "reference" else -1
    if method == "lapack":
        coords, lam, resid, neg = _embed_lapack(gram_matrices(d, variant, reference, rtol=rtol))
        return Embedding(coords, lam, resid, neg, variant, ref)
    d = np.ascontiguousarray(d)
    m, n = d.shape[0], d.shape[1]
    coords, lam = np.empty((m, n, 2)), np.empty((m, n))
    resid, neg, ok = np.empty(m), np.empty(m), np.empty(m, dtype=np.bool_)
    K._embed_distances_batch(d, code, max(ref, 0), coords, lam, resid, neg, ok)
    _finish_fast(lambda idx: gram_matrices(d[idx], variant, reference, rtol=np.inf),
                 coords, lam, resid, neg, ok)
    return Embedding(coords, lam, resid, neg, variant, ref)
