"""Physicality checks of placed configurations: the closest pair and leaving the box.

For positions x (M, N, 2) in the box [0, L]^2 (sigma), per configuration

    r_min = min_{i < j} |x_i - x_j|        (inf for N < 2, NaN if a coordinate is
                                            not finite),
    outside = any coordinate outside [0, L] or not finite.

:func:`physical_checks` runs one numba pass (:func:`reconstruct._kernels._physical_checks`);
:func:`physical_checks_reference` is the slow, obviously correct NumPy version the
tests compare it with.
"""

from __future__ import annotations

import numpy as np

from reconstruct import _kernels as K

__all__ = ["physical_checks", "physical_checks_reference"]


def _as_positions(positions: np.ndarray, box: float) -> tuple[np.ndarray, float]:
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 3 or pos.shape[2] != 2:
        raise ValueError(f"positions: expected shape (M, N, 2), got {np.shape(positions)}")
    box = float(box)
    if not 0.0 < box < np.inf:
        raise ValueError(f"box: must be a positive finite number, got {box!r}")
    return np.ascontiguousarray(pos), box


def physical_checks(positions: np.ndarray, box: float) -> tuple[np.ndarray, np.ndarray]:
    """Closest pair distance and leaving the box, per configuration.

    Args:
        positions: (M, N, 2) coordinates, sigma.
        box: side L of the box [0, L]^2, sigma.

    Returns:
        (r_min (M,) float64 sigma, outside (M,) bool), as in the module docstring.
    """
    pos, box = _as_positions(positions, box)
    m = pos.shape[0]
    dmin = np.empty(m)
    outside = np.empty(m, dtype=np.bool_)
    K._physical_checks(pos, box, dmin, outside)
    return dmin, outside


def physical_checks_reference(positions: np.ndarray,
                              box: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`physical_checks` with NumPy: all pair distances, then their minimum."""
    pos, box = _as_positions(positions, box)
    m, n = pos.shape[0], pos.shape[1]
    if n < 2:
        dmin = np.full(m, np.inf)
    else:
        iu, ju = np.triu_indices(n, k=1)
        d = pos[:, iu, :] - pos[:, ju, :]
        dmin = np.sqrt((d * d).sum(axis=2)).min(axis=1)
    dmin = np.where(np.isfinite(pos).all(axis=(1, 2)), dmin, np.nan)
    inside = (pos >= 0.0) & (pos <= box)  # False for NaN
    return dmin, ~inside.all(axis=(1, 2))
