"""Anyone's configurations as anomaly data: an ljvae dataset file, or an ``.npy`` array of
positions with the side of the box they were drawn in, checked against the model.

* N must be the model's: a VAE of N particles has no input for another N, so a file
  with another N is refused.
* A box side L_file other than the model's L_model is *converted*: every position is
  multiplied by L_model / L_file, so that each configuration fills the model's box
  [0, L_model]^2. This is a similarity transformation: every distance is scaled by the
  same factor and the number density N / L^2 becomes the model's. The set is then
  compared with the training data at the model's density, not at its own; a warning
  says so, with the factor.

Positions are in units of sigma in the box [0, L]^2 (mcsim's walled box). Loading is
checked before any work: a wrong shape, NaN or inf, positions outside the box, or a
file that is not an ljvae dataset or a numeric ``.npy`` array give one
:class:`~mcsim.clitools.UserError` naming the data.

    spec = parse_set("hot=runs/hot.h5")
    data = load_positions(spec.path, n_particles=30, model_box=10.0, what="set hot")
    data.positions  # (M, 30, 2) sigma, in the model's box
    data.note       # "" or the conversion warning
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcsim.clitools import UserError
from mcsim.io import read_dataset, read_npy

__all__ = [
    "RESERVED_NAMES",
    "UserSet",
    "LoadedPositions",
    "parse_set",
    "check_set_names",
    "to_model_box",
    "load_positions",
    "is_npy",
]

#: names a user set may not take (keys of the in-distribution scores in ``scores.npz``)
RESERVED_NAMES = ("test", "val")


@dataclass(frozen=True)
class UserSet:
    """A user's data file that joins the anomaly table as one set.

    Attributes:
        name: the set's row label.
        path: an ljvae dataset file, or a ``.npy`` array (M, N, 2) / (N, 2) of positions.
        box: the box side L of ``.npy`` positions, sigma (dataset files carry their own;
            if given for one, it must agree).
    """

    name: str
    path: Path
    box: float | None = None


def parse_set(text: str, box: float | None = None) -> UserSet:
    """``NAME=FILE`` -> :class:`UserSet` (split at the first ``=``); ValueError if either
    part is empty."""
    name, sep, file = str(text).partition("=")
    name = name.strip()
    if not sep or not name or not file:
        raise ValueError(f"{text!r} is not NAME=FILE")
    return UserSet(name, Path(file), box)


def check_set_names(user_sets: Iterable[UserSet], taken: Iterable[str]) -> None:
    """Refuse (UserError) user-set names that repeat, contain ``/``, or clash with the
    names ``taken`` by other sets or with :data:`RESERVED_NAMES`."""
    seen = set(taken) | set(RESERVED_NAMES)
    for u in user_sets:
        if "/" in u.name:
            raise UserError(f"set {u.name!r}: a set name may not contain '/'")
        if u.name in seen:
            raise UserError(f"set {u.name!r}: the name is already taken (by another set, "
                            f"or reserved: {', '.join(RESERVED_NAMES)})")
        seen.add(u.name)


def to_model_box(positions: np.ndarray, box: float, model_box: float
                 ) -> tuple[np.ndarray, float]:
    """Positions (M, N, 2) in a box of side ``box`` rescaled into the model's box:
    (positions * model_box / box, the factor model_box / box); unchanged (factor 1) when
    the sides agree to 1e-9."""
    if not (math.isfinite(box) and box > 0):
        raise ValueError(f"box: must be a positive number, got {box!r}")
    if math.isclose(box, model_box, rel_tol=1e-9):
        return positions, 1.0
    f = float(model_box) / float(box)
    return positions * f, f


@dataclass(frozen=True)
class LoadedPositions:
    """A user's configurations, ready for the model.

    Attributes:
        positions: (M, N, 2) sigma, in the model's box (rescaled if ``factor`` != 1).
        n_total: configurations in the file (M may be fewer when a limit was asked).
        box: the file's box side L_file, sigma.
        factor: L_model / L_file applied to every position (1: same box).
        note: "" or the one-line conversion warning.
    """

    positions: np.ndarray
    n_total: int
    box: float
    factor: float
    note: str


def is_npy(path: Path) -> bool:
    """Whether ``path`` is an .npy array (by its magic bytes; by its suffix if unreadable)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(6) == b"\x93NUMPY"
    except OSError:
        return path.suffix.lower() == ".npy"


def load_positions(path: str | os.PathLike, *, n_particles: int, model_box: float,
                   box: float | None = None, limit: int | None = None,
                   what: str = "data") -> LoadedPositions:
    """Read configurations from an ljvae dataset file or an ``.npy`` array and bring them
    into the model's box (see the module docstring).

    Args:
        path: the file (``.npy`` is recognised by its magic bytes).
        n_particles, model_box: the model's N and L (sigma).
        box: the box side of ``.npy`` positions (required for them); for a dataset
            file, None or the file's own box.
        limit: keep only the first ``limit`` configurations.
        what: how messages name the data (e.g. ``set hot``, the CLI's flag).

    Raises:
        UserError: unreadable file, not a dataset or numeric array, wrong shape, N not
        the model's, NaN / inf, positions outside the box, a ``box`` missing or in
        conflict with the file's.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what}: {p}: no such file")
    if is_npy(p):
        if box is None:
            raise UserError(f"{what}: {p} is an .npy array of positions; give the side of "
                            "the box they were drawn in")
        arr = read_npy(p, what)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3 or arr.shape[2] != 2 or arr.shape[0] < 1:
            raise UserError(f"{what}: {p}: expected positions of shape (M, N, 2) or (N, 2), "
                            f"got {arr.shape}")
        file_box = float(box)
    else:
        ds = read_dataset(p)  # DatasetError is a UserError
        arr, file_box = ds.positions, ds.box
        if box is not None and not math.isclose(box, file_box, rel_tol=1e-9):
            raise UserError(f"{what}: {p} says its box is L={file_box:g}, not the L={box:g} "
                            "given")
        if len(arr) < 1:
            raise UserError(f"{what}: {p}: holds no configurations")
    n_total = int(arr.shape[0])
    if arr.shape[1] != n_particles:
        raise UserError(f"{what}: {p} has N={arr.shape[1]} particles but the model was "
                        f"trained on N={n_particles}")
    pos = np.asarray(arr[:limit] if limit is not None else arr, dtype=np.float64)
    if not np.isfinite(pos).all():
        bad = int((~np.isfinite(pos)).any(axis=(1, 2)).sum())
        raise UserError(f"{what}: {p}: {bad} configuration{'s' * (bad != 1)} hold NaN or "
                        "inf positions")
    tol = 1e-9 * file_box
    lo, hi = float(pos.min()), float(pos.max())
    if lo < -tol or hi > file_box + tol:
        raise UserError(f"{what}: {p}: positions span [{lo:.4g}, {hi:.4g}] sigma, outside "
                        f"the box [0, {file_box:g}]^2 (is the box side right?)")
    pos, factor = to_model_box(np.clip(pos, 0.0, file_box), file_box, model_box)
    note = ""
    if factor != 1.0:
        rho_file, rho_model = n_particles / file_box ** 2, n_particles / model_box ** 2
        note = (f"{what}: box L={file_box:g} differs from the model's L={model_box:g}; "
                f"positions rescaled by L_model/L_file = {factor:.4g} so each configuration "
                f"fills the model's box (all distances x{factor:.4g}, density N/L^2 "
                f"{rho_file:.4g} -> {rho_model:.4g}): the set is judged at the model's "
                "density, not its own")
    return LoadedPositions(pos, n_total, file_box, factor, note)
