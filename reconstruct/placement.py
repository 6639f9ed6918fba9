"""Placements: put a shape, known only up to rotation, reflection and translation,
into the walled box [0, L]^2 under the field gamma * y.

A distance matrix fixes the shape; the rigid-body degrees of freedom (angle theta,
mirror s, offsets x0, y0 of the centre of mass) are what a placement chooses. In
the ensemble the sampler draws from, p(x) ~ exp(-[U_pair(x) + gamma sum_i y_i] / T)
with every particle centre in [0, L], and U_pair depends on the shape only, so

    p(theta, s, x0, y0 | shape) ~ exp(-gamma N y0 / T) * 1[all particles inside],

with uniform measure on theta in [0, 2 pi), on both mirror images (the box and
the field are mirror symmetric, so the mirror image of a configuration is exactly
as likely) and on the offsets. Three rules:

``thermal`` (default)
    Draws (theta, s, x0, y0) from that conditional law, exactly: the weight of an
    orientation after integrating out the offsets,
    f(theta) = (L - w) exp(-b lo) (1 - exp(-b (L - h))) / b, b = gamma N / T
    (w, h: width and height of the rotated shape, lo: its COM height when its
    lowest particle touches the floor), is sampled by rejection from a rigorous
    piecewise-constant bound on a grid of ``n_angles`` bins (see
    :mod:`reconstruct._placement`); then x0 is uniform over the positions that keep
    the shape inside, y0 - lo is exponential with rate b truncated at the ceiling,
    and the mirror image is taken with probability 1/2. gamma = 0 gives uniform
    orientations and positions. If the shapes are drawn from the equilibrium
    distribution, the placed configurations are distributed exactly like the
    Monte Carlo data. Seeded per configuration index: the same seed gives the same
    placements whatever the batching or thread count.
``lowest``
    The study's rule made physical: the least gravitational energy placement among
    the orientations that fit in the box, resting on the floor, its bounding box
    centred horizontally, and the study tumbler's mirror rule. Without walls this
    is the hull edge nearest the COM; with them, a boundary of the fitting
    orientations when that edge does not fit.
``edge``
    The study's tumbler as first built (:func:`reconstruct.tumbler.tumble`): rest
    on the hull edge nearest the COM, ignoring the walls.

A shape that fits in no orientation is flagged (``fits`` False) and placed by the
``edge`` rule, never clipped. ``thermal`` and ``lowest`` find every shape that fits
in a window of orientations wider than the grid's bins (2 pi / ``n_angles``);
``thermal`` also flags a shape whose fitting orientations carry less than about
1e-5 of its bound (a window far narrower than a bin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reconstruct import _placement as P
from reconstruct.tumbler import PLACEMENT_RULE, Tumbled, check_shapes, tumble

__all__ = ["PLACEMENTS", "DEFAULT_PLACEMENT", "DEFAULT_N_ANGLES", "Placement", "place"]

DEFAULT_N_ANGLES = 128  # chosen by measurement: fastest over gamma 0.1-3 (benchmarks)


@dataclass(frozen=True)
class Placement:
    """One placement rule: its name, a one-line description and whether it needs the
    ensemble (gamma, temperature) and a seed."""

    name: str
    description: str
    thermal: bool


PLACEMENTS: dict[str, Placement] = {
    p.name: p
    for p in (
        Placement("thermal", "exact conditional Boltzmann law of (theta, mirror, x0, y0) "
                  "given the shape: exp(-gamma N y_com / T), all particles inside", True),
        Placement("lowest", "least gravitational energy among orientations that fit in "
                  "the box; on the floor; bounding box centred; mirror rule", False),
        Placement("edge", PLACEMENT_RULE + " (ignores the walls)", False),
    )
}
DEFAULT_PLACEMENT = "thermal"


def _per_config(value, m: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(m, float(arr))
    if arr.shape != (m,):
        raise ValueError(f"{name}: expected a scalar or shape ({m},), got {np.shape(value)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: must be finite")
    return arr


def place(
    coords: np.ndarray,
    box: float,
    placement: str = DEFAULT_PLACEMENT,
    *,
    gamma: float | np.ndarray | None = None,
    temperature: float | None = None,
    seed: int = 0,
    n_angles: int = DEFAULT_N_ANGLES,
    start: int = 0,
) -> Tumbled:
    """Place shapes in the box by a rule of :data:`PLACEMENTS` (module docstring).

    Args:
        coords: (N, 2) or (M, N, 2) coordinates in any rigid frame, sigma.
        box: side L of the square box [0, L]^2, sigma.
        placement: ``"thermal"``, ``"lowest"`` or ``"edge"``.
        gamma: field strength, scalar or (M,), >= 0 (thermal only).
        temperature: k_B T in epsilon, > 0 (thermal only).
        seed: master seed (thermal only).
        n_angles: angle bins of the bound (thermal) or the feasibility scan (lowest);
            the thermal law is exact for any value, more bins accept more proposals.
        start: index of coords[0] in a larger set (batches keep their random streams).

    Returns:
        :class:`reconstruct.tumbler.Tumbled`; ``theta`` holds the rotation applied to
        the COM-centred input (NaN where it does not fit), ``reflected`` the mirror,
        ``com_height`` the COM height y0, ``edge`` is (-1, -1) for thermal and lowest,
        ``tries`` the rejection proposals (thermal).
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"placement: unknown rule {placement!r} "
                         f"(one of {', '.join(PLACEMENTS)})")
    if placement == "edge":
        return tumble(coords, box)
    pos, box = check_shapes(coords, box)
    if isinstance(n_angles, bool) or not isinstance(n_angles, int | np.integer) or not (
        8 <= n_angles <= 1 << 16
    ):
        raise ValueError(f"n_angles: must be an integer in [8, 65536], got {n_angles!r}")
    if isinstance(start, bool) or not isinstance(start, int | np.integer) or start < 0:
        raise ValueError(f"start: must be a non-negative integer, got {start!r}")
    m, n = pos.shape[0], pos.shape[1]
    out = np.empty_like(pos)
    info = np.empty((m, P.N_INFO))
    if placement == "thermal":
        if gamma is None or temperature is None:
            raise ValueError("thermal placement needs the ensemble: gamma and temperature "
                             "(or use placement 'lowest')")
        g = _per_config(gamma, m, "gamma")
        if np.any(g < 0):
            raise ValueError("gamma: must be >= 0")
        if not isinstance(temperature, int | float | np.floating | np.integer) or not (
            0 < float(temperature) < math.inf
        ):
            raise ValueError(f"temperature: must be a positive number, got {temperature!r}")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
        key = np.random.SeedSequence(int(seed)).generate_state(2, np.uint64)
        b = g * n / float(temperature)
        P._thermal_batch(pos, box, b, int(n_angles), key[0], key[1], int(start), out, info)
    else:
        P._lowest_batch(pos, box, int(n_angles), out, info)
    fits = info[:, P.INFO_FITS] > 0.5
    return Tumbled(
        positions=out,
        width=info[:, P.INFO_WIDTH].copy(),
        height=info[:, P.INFO_HEIGHT].copy(),
        com_height=info[:, P.INFO_COM].copy(),
        edge=np.full((m, 2), -1, dtype=np.int64),
        reflected=info[:, P.INFO_MIRROR] > 0.5,
        fits=fits,
        box=box,
        theta=info[:, P.INFO_THETA].copy(),
        tries=info[:, P.INFO_TRIES].astype(np.int64),
    )
