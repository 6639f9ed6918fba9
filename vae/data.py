"""Data representations: from particle positions to network inputs.

Positions come from :mod:`mcsim.io` dataset files, shape (M, N, 2), in sigma, inside
the box [0, L]^2. Three representations (docs/reference.md section 1, seed 002 chapter 3):

* **distance matrices** (M, 1, N, N): particles sorted by a key, then
  d_ij = |r_i - r_j| / s with s the length scale (``study``: s = L*sqrt(2), so that
  0 <= d_ij <= 1; ``box``: s = L; ``none``: s = 1 sigma). This is the study's
  preprocessing (coordinates divided by L*sqrt(2), sorted by x^2 + y^2, scipy pdist).
* **coordinates** (M, N, 2): the sorted, scaled positions r_i / s.
* **occupancy grids** (M, 1, H, W): the box cut into square cells of side ``grid_cell``
  sigma; a pixel is 1 if a particle centre lies in the cell, else 0. Row 0 is the
  top of the box (largest y), column 0 the left wall (x = 0), as an image.

Also: merging several dataset files with consistency checks (:func:`load_data`), a
dataset fingerprint stored with every model, and a seeded train/validation/test split
stratified by gamma (:func:`stratified_split`).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mcsim.io import Dataset, DatasetError, read_dataset
from vae.config import SCALINGS, SORT_KEYS, DataConfig

__all__ = [
    "Split",
    "length_scale",
    "sort_particles",
    "distance_matrices",
    "coordinates",
    "occupancy_grids",
    "grid_shape",
    "make_inputs",
    "input_shape",
    "output_max",
    "stratified_split",
    "subsample_per_gamma",
    "load_data",
    "dataset_fingerprint",
]

_CHUNK = 4096  # configurations per chunk when building (M, N, N) arrays


def length_scale(scaling: str, box: float) -> float:
    """The length unit s of the inputs, in sigma: L*sqrt(2) (``study``), L (``box``) or 1."""
    if scaling not in SCALINGS:
        raise ValueError(f"scaling: must be one of {', '.join(SCALINGS)}, got {scaling!r}")
    if scaling == "study":
        return float(box) * math.sqrt(2.0)
    if scaling == "box":
        return float(box)
    return 1.0


def sort_particles(positions: np.ndarray, key: str) -> np.ndarray:
    """Reorder the particles of each configuration by a key (stable sort).

    Args:
        positions: (M, N, 2) or (N, 2) coordinates, sigma (any unit works).
        key: ``corner``: x^2 + y^2 (distance from the box corner (0, 0); the study's);
            ``height``: y; ``com``: distance from the configuration's centre of mass;
            ``none``: keep the order.

    Returns:
        Array of the same shape, particles sorted in ascending key order.
    """
    if key not in SORT_KEYS:
        raise ValueError(f"sort: must be one of {', '.join(SORT_KEYS)}, got {key!r}")
    pos = np.asarray(positions)
    single = pos.ndim == 2
    if single:
        pos = pos[None]
    if key == "none":
        out = pos.copy()
    else:
        if key == "corner":
            k = pos[..., 0] ** 2 + pos[..., 1] ** 2
        elif key == "height":
            k = pos[..., 1]
        else:  # com
            c = pos.mean(axis=1, keepdims=True)
            k = ((pos - c) ** 2).sum(axis=-1)
        idx = np.argsort(k, axis=1, kind="stable")
        out = np.take_along_axis(pos, idx[..., None], axis=1)
    return out[0] if single else out


def distance_matrices(positions: np.ndarray, box: float, sort: str = "corner",
                      scaling: str = "study") -> np.ndarray:
    """Sorted, scaled distance matrices.

    Args:
        positions: (M, N, 2) coordinates, sigma.
        box: box side L, sigma.
        sort: particle sort key (see :func:`sort_particles`).
        scaling: length scaling (see :func:`length_scale`).

    Returns:
        (M, N, N) float32 array d_ij = |r_i - r_j| / s: symmetric, zero diagonal.
    """
    pos = sort_particles(np.asarray(positions, dtype=np.float64), sort)
    s = length_scale(scaling, box)
    m, n, _ = pos.shape
    out = np.empty((m, n, n), dtype=np.float32)
    for a in range(0, m, _CHUNK):
        p = pos[a:a + _CHUNK] / s
        diff = p[:, :, None, :] - p[:, None, :, :]
        out[a:a + _CHUNK] = np.sqrt((diff ** 2).sum(axis=-1))
    return out


def coordinates(positions: np.ndarray, box: float, sort: str = "corner",
                scaling: str = "study") -> np.ndarray:
    """Sorted coordinates r_i / s, shape (M, N, 2), float32 (the study's FC input)."""
    pos = sort_particles(np.asarray(positions, dtype=np.float64), sort)
    return (pos / length_scale(scaling, box)).astype(np.float32)


def grid_shape(box: float, cell: float) -> tuple[int, int]:
    """(H, W) of the occupancy grid: ceil(L / cell) cells per side."""
    k = int(math.ceil(float(box) / float(cell) - 1e-9))
    return k, k


def occupancy_grids(positions: np.ndarray, box: float, cell: float = 0.5) -> np.ndarray:
    """Occupancy images, shape (M, H, W), float32 in {0, 1}.

    Pixel (row, col) covers x in [col*cell, (col+1)*cell), y in
    [L - (row+1)*cell, L - row*cell); it is 1 if any particle centre lies in it.
    Particles exactly on the upper walls are put in the last cell.
    """
    pos = np.asarray(positions, dtype=np.float64)
    h, w = grid_shape(box, cell)
    m = pos.shape[0]
    col = np.clip(np.floor(pos[..., 0] / cell).astype(np.int64), 0, w - 1)
    row_from_bottom = np.clip(np.floor(pos[..., 1] / cell).astype(np.int64), 0, h - 1)
    row = h - 1 - row_from_bottom
    out = np.zeros((m, h, w), dtype=np.float32)
    frame = np.broadcast_to(np.arange(m)[:, None], col.shape)
    out[frame, row, col] = 1.0
    return out


def make_inputs(positions: np.ndarray, box: float, cfg: DataConfig) -> np.ndarray:
    """Network inputs for a representation.

    Returns:
        float32 array: (M, 1, N, N) for ``distance``, (M, N, 2) for ``coords``,
        (M, 1, H, W) for ``grid``.
    """
    from vae.guard import check_inputs_memory  # here: vae.guard imports this module

    pos = np.asarray(positions)
    if pos.ndim == 3:
        check_inputs_memory(cfg, pos.shape[0], pos.shape[1], box)
    if cfg.representation == "distance":
        return distance_matrices(positions, box, cfg.sort, cfg.scaling)[:, None]
    if cfg.representation == "coords":
        return coordinates(positions, box, cfg.sort, cfg.scaling)
    return occupancy_grids(positions, box, cfg.grid_cell)[:, None]


def input_shape(cfg: DataConfig, n_particles: int, box: float) -> tuple[int, ...]:
    """Shape of one input (without the batch axis)."""
    if cfg.representation == "distance":
        return (1, n_particles, n_particles)
    if cfg.representation == "coords":
        return (n_particles, 2)
    return (1, *grid_shape(box, cfg.grid_cell))


def output_max(cfg: DataConfig, box: float) -> float:
    """Largest value an input can take: the box diagonal L*sqrt(2) / s for distances,
    L / s for coordinates, 1 for occupancy grids."""
    if cfg.representation == "distance":
        return float(box) * math.sqrt(2.0) / length_scale(cfg.scaling, box)
    if cfg.representation == "coords":
        return float(box) / length_scale(cfg.scaling, box)
    return 1.0


@dataclass(frozen=True)
class Split:
    """Indices of a train / validation / test split, each sorted, int64."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def stratified_split(gamma: np.ndarray, val_fraction: float = 0.1, test_fraction: float = 0.2,
                     seed: int = 0) -> Split:
    """Split configurations into train / validation / test, separately for each gamma.

    For each distinct gamma with n configurations, round(n * test_fraction) go to
    test and round(n * val_fraction) to validation (at least one each when n >= 3),
    chosen by a permutation from ``numpy.random.default_rng(seed)``; groups are
    visited in sorted gamma order, so the split depends only on (gamma, seed).

    Args:
        gamma: (M,) field strength of each configuration.

    Returns:
        :class:`Split` of sorted index arrays partitioning range(M).
    """
    g = np.asarray(gamma, dtype=np.float64)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for value in np.unique(g):
        idx = np.flatnonzero(g == value)
        idx = idx[rng.permutation(idx.size)]
        n = idx.size
        n_test = int(round(n * test_fraction))
        n_val = int(round(n * val_fraction))
        if n >= 3:
            n_test, n_val = max(n_test, 1), max(n_val, 1)
        n_test = min(n_test, n)
        n_val = min(n_val, n - n_test)
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test:n_test + n_val])
        parts["train"].append(idx[n_test + n_val:])

    def cat(xs):
        return np.sort(np.concatenate(xs)).astype(np.int64) if xs else np.zeros(0, np.int64)

    return Split(cat(parts["train"]), cat(parts["val"]), cat(parts["test"]))


def subsample_per_gamma(gamma: np.ndarray, max_per_gamma: int, seed: int = 0) -> np.ndarray:
    """Sorted indices keeping at most ``max_per_gamma`` configurations per gamma value,
    chosen at random with ``numpy.random.default_rng(seed)``."""
    g = np.asarray(gamma, dtype=np.float64)
    rng = np.random.default_rng(seed)
    keep = []
    for value in np.unique(g):
        idx = np.flatnonzero(g == value)
        if idx.size > max_per_gamma:
            idx = np.sort(rng.choice(idx, size=max_per_gamma, replace=False))
        keep.append(idx)
    return np.sort(np.concatenate(keep))


def load_data(paths: Sequence[str | os.PathLike]) -> Dataset:
    """Read and concatenate dataset files, checking that they can be trained on together.

    Raises:
        DatasetError: a file is missing or corrupt (from :func:`mcsim.io.read_dataset`),
            files disagree on N or on the box side, a file is empty, or gamma values
            are NaN.
    """
    if not paths:
        raise DatasetError("no dataset files given")
    sets = [read_dataset(p) for p in paths]
    first = sets[0]
    for ds in sets:
        if len(ds) == 0:
            raise DatasetError(f"{ds.path}: dataset is empty")
        if ds.n_particles != first.n_particles:
            raise DatasetError(f"the files mix particle numbers ({first.path}: N="
                               f"{first.n_particles}, {ds.path}: N={ds.n_particles})")
        if not math.isclose(ds.box, first.box, rel_tol=1e-12):
            raise DatasetError(f"the files mix box sides ({first.path}: L={first.box:g}, "
                               f"{ds.path}: L={ds.box:g})")
        if not np.all(np.isfinite(ds.gamma)):
            raise DatasetError(f"{ds.path}: gamma contains NaN or inf")
        if not np.all(np.isfinite(ds.positions)):  # read_dataset checks too; keep it local
            raise DatasetError(f"{ds.path}: positions contain NaN or inf")
    if len(sets) == 1:
        return first
    attrs = dict(first.attrs)
    attrs["files"] = [str(ds.path) for ds in sets]
    return Dataset(
        np.concatenate([ds.positions for ds in sets]),
        np.concatenate([ds.energy for ds in sets]),
        np.concatenate([ds.gamma for ds in sets]),
        np.concatenate([ds.acceptance for ds in sets]),
        attrs, {}, first.path,
    )


def dataset_fingerprint(positions: np.ndarray, gamma: np.ndarray) -> str:
    """SHA-256 (hex, first 16 digits) of the positions (float64) and gamma values, in order."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(positions, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(gamma, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]
