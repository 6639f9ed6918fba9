"""Gram matrices from distance matrices, the first step of the reconstruction.

For points x_i in the plane, d_ij^2 = |x_i|^2 + |x_j|^2 - 2 x_i . x_j, so inner
products follow from distances once an origin is fixed (study seed 002, "Gram
matrices"). Two origins are offered:

* ``"reference"``: particle r at the origin (the study's slide, r = 0 there),

      g_ij = (d_ir^2 + d_jr^2 - d_ij^2) / 2 ;

* ``"centered"``: the centroid at the origin, classical multidimensional scaling
  (what the study's code used; Torgerson 1952, Gower 1966),

      G = -1/2 J D2 J,   J = I - 1 1^T / N,   D2 = (d_ij^2).

For an exact 2D distance matrix both are positive semi-definite of rank <= 2 and
G = X X^T for the coordinates X (N, 2) in the chosen origin; for approximate
matrices the centred form spreads the error over all particles, the reference form
puts particle r exactly at the origin and loads its row with the error.

These functions return the matrices for inspection; :mod:`reconstruct.embedding`
computes the same matrices inside its fused kernel.
"""

from __future__ import annotations

import numpy as np

from reconstruct._kernels import GRAM_CENTERED, GRAM_REFERENCE
from reconstruct.distances import DEFAULT_RTOL, check_distance_matrices

__all__ = ["GRAM_VARIANTS", "gram_matrices", "check_variant"]

GRAM_VARIANTS = ("centered", "reference")
_CODES = {"centered": GRAM_CENTERED, "reference": GRAM_REFERENCE}


def check_variant(variant: str, reference: int, n_particles: int) -> int:
    """Validate a Gram variant name and reference index; return the kernel code."""
    if variant not in _CODES:
        raise ValueError(f"variant: unknown Gram variant {variant!r} (centered or reference)")
    if not isinstance(reference, int | np.integer) or not 0 <= reference < max(n_particles, 1):
        raise ValueError(
            f"reference: particle index {reference!r} out of range for N={n_particles}"
        )
    return _CODES[variant]


def gram_matrices(
    distances: np.ndarray,
    variant: str = "centered",
    reference: int = 0,
    *,
    rtol: float = DEFAULT_RTOL,
) -> np.ndarray:
    """Gram matrices of distance matrices.

    Args:
        distances: (N, N) or (M, N, N) distance matrices, sigma (validated with
            :func:`reconstruct.distances.check_distance_matrices`).
        variant: ``"centered"`` (classical MDS) or ``"reference"``.
        reference: index r of the particle put at the origin (``"reference"`` only).
        rtol: tolerance of the distance-matrix check.

    Returns:
        (N, N) or (M, N, N) Gram matrices, sigma^2.
    """
    single = np.ndim(distances) == 2
    d = check_distance_matrices(distances, rtol=rtol)
    check_variant(variant, reference, d.shape[1])
    d2 = np.square(d)
    if variant == "reference":
        r2 = d2[:, :, reference]
        g = 0.5 * (r2[:, :, None] + r2[:, None, :] - d2)
    else:
        row = d2.mean(axis=2)
        tot = row.mean(axis=1)
        g = -0.5 * (d2 - row[:, :, None] - row[:, None, :] + tot[:, None, None])
    g = 0.5 * (g + np.swapaxes(g, 1, 2))
    return g[0] if single else g
