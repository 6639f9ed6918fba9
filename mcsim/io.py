"""The ljvae dataset format (HDF5) and extended-XYZ export.

One HDF5 file holds any number of configurations, possibly at several gamma values:

==================  ===========  ==================================================
dataset             shape        meaning
==================  ===========  ==================================================
``positions``       (M, N, 2)    coordinates in sigma, float64
``energy``          (M,)         total energy incl. gravity, epsilon
``gamma``           (M,)         field strength of each configuration
``acceptance``      (M,)         Metropolis acceptance (NaN where no MC was run)
``extra/<name>``    (M, ...)     optional per-configuration arrays (e.g. scores)
``diagnostics/*``   any          optional diagnostics (energy traces, checks)
==================  ===========  ==================================================

Root attributes: ``format = "ljvae-dataset"``, ``format_version``, ``complete``,
``ljvae_version``, ``created`` (UTC, ISO 8601), ``source`` (``mcsim``,
``reconstruct``, ...), ``n_particles``, ``box`` and, for sampler output, every
generation parameter plus ``config`` (the full :class:`mcsim.config.SimConfig` as
JSON), so that the file alone says how to regenerate it.

Files are written as ``<name>.partial`` and renamed when complete; a reader refuses
partial files, files that are not ljvae datasets, and inconsistent shapes.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mcsim.clitools import UserError, partial_path

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "DatasetError",
    "Dataset",
    "DatasetWriter",
    "read_dataset",
    "ATTR_SCHEMA",
    "ARRAY_SCHEMA",
    "check_attrs",
    "check_arrays",
    "write_dataset",
    "write_xyz",
    "read_npy",
    "package_version",
]

FORMAT = "ljvae-dataset"
FORMAT_VERSION = 1
_CORE = ("positions", "energy", "gamma", "acceptance")
# bookkeeping attributes the writer owns; dropped from user attrs (e.g. copied from a
# file that was read) so they never contradict the file being written
_RESERVED = ("format", "format_version", "complete", "n_done", "ljvae_version", "created",
             "n_particles")


class DatasetError(UserError):
    """A file that is missing, not an ljvae dataset, incomplete, or inconsistent."""


def package_version() -> str:
    try:
        return metadata.version("ljvae")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def _utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _attr_value(v: Any) -> Any:
    """Convert a Python value to something h5py stores as an attribute."""
    if v is None:
        return "none"
    if isinstance(v, dict | list | tuple) and not (
        isinstance(v, list | tuple) and v and all(isinstance(e, int | float) for e in v)
    ):
        return json.dumps(v)
    return v


def _py(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


@dataclass
class Dataset:
    """Arrays and metadata of one dataset file.

    Attributes:
        positions: (M, N, 2) float64, sigma.
        energy: (M,) total energy, epsilon.
        gamma: (M,) field strength.
        acceptance: (M,) acceptance rate (NaN where no MC was run).
        attrs: root attributes (generation parameters) as plain Python values.
        extra: optional per-configuration arrays, name -> (M, ...).
        path: the file it came from.
    """

    positions: np.ndarray
    energy: np.ndarray
    gamma: np.ndarray
    acceptance: np.ndarray
    attrs: dict[str, Any]
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    path: Path | None = None

    @property
    def n_particles(self) -> int:
        return int(self.positions.shape[1])

    @property
    def box(self) -> float:
        return float(self.attrs["box"])

    @property
    def gammas(self) -> np.ndarray:
        """The distinct gamma values, in order of first appearance."""
        _, idx = np.unique(self.gamma, return_index=True)
        return self.gamma[np.sort(idx)]

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    def select(self, mask: np.ndarray) -> Dataset:
        """A new Dataset with the configurations where ``mask`` (M,) is true/indexed."""
        return Dataset(
            self.positions[mask], self.energy[mask], self.gamma[mask], self.acceptance[mask],
            dict(self.attrs), {k: v[mask] for k, v in self.extra.items()}, self.path,
        )


def _check_open(path: Path) -> h5py.File:
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    if path.is_dir():
        raise DatasetError(f"{path}: is a directory, not a dataset file")
    try:
        return h5py.File(path, "r")
    except OSError:
        raise DatasetError(f"{path}: not an HDF5 file (corrupt or wrong format)") from None


# ------------------------------------------------------------------------- schema
# One schema for the file format, checked on read and on write: the type and range of
# every root attribute the format defines and of every dataset.
def _is_bool(v: Any) -> bool:
    return isinstance(v, bool | np.bool_)


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not _is_bool(v)


def _is_real(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not _is_bool(v)


def _is_str(v: Any) -> bool:
    return isinstance(v, str | bytes)


#: root attribute -> (required, check, what it must be)
ATTR_SCHEMA: dict[str, tuple[bool, Any, str]] = {
    "format": (True, lambda v: _py(v) == FORMAT, f"the string {FORMAT!r}"),
    "format_version": (True, lambda v: _is_int(v) and 1 <= v <= FORMAT_VERSION,
                       f"an integer in [1, {FORMAT_VERSION}]"),
    "complete": (True, _is_bool, "a boolean"),
    "n_done": (False, lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "n_particles": (True, lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "box": (True, lambda v: _is_real(v) and np.isfinite(v) and v > 0, "a positive number"),
    "temperature": (False, lambda v: _is_real(v) and np.isfinite(v) and v > 0,
                    "a positive number"),
    "source": (False, _is_str, "a string"),
    "ljvae_version": (False, _is_str, "a string"),
    "created": (False, _is_str, "a string"),
}
#: per-configuration dataset -> (allowed values, description); each is float, shape (M,)
#: except positions (M, N, 2)
ARRAY_SCHEMA: dict[str, tuple[Any, str]] = {
    "positions": (np.isfinite, "finite numbers (no NaN or inf)"),
    "energy": (lambda a: a != -np.inf, "a number, +inf (overlap) or NaN"),
    "gamma": (lambda a: np.isnan(a) | ((a >= 0) & np.isfinite(a)), ">= 0 or NaN (unknown)"),
    "acceptance": (lambda a: np.isnan(a) | ((a >= 0) & (a <= 1)), "in [0, 1] or NaN"),
}


def check_attrs(attrs: dict[str, Any], where: str, *, partial: bool = False) -> None:
    """Check root attributes against :data:`ATTR_SCHEMA` (required ones present unless
    ``partial``, every present one of the right type and range)."""
    for k, (required, ok, what) in ATTR_SCHEMA.items():
        if k not in attrs:
            if required and not partial:
                raise DatasetError(f"{where}: missing attribute {k!r}")
            continue
        v = attrs[k]
        if isinstance(v, np.ndarray) or not ok(v):
            raise DatasetError(f"{where}: attribute {k} must be {what}, got {_py(v)!r}")
    cfg = attrs.get("config")
    if cfg is not None and _py(attrs.get("source")) == "mcsim":
        from mcsim.config import SimConfig

        try:
            SimConfig.from_json(_py(cfg))
        except (ValueError, TypeError) as exc:
            raise DatasetError(f"{where}: attribute config is not a valid simulation "
                               f"config ({exc})") from None


def check_arrays(arrays: dict[str, np.ndarray], extra: dict[str, np.ndarray], where: str,
                 n_particles: int | None = None) -> None:
    """Check the per-configuration arrays against :data:`ARRAY_SCHEMA`: shapes agree,
    values in range; ``extra`` arrays are numeric with one row per configuration."""
    pos = arrays["positions"]
    if pos.ndim != 3 or pos.shape[2] != 2:
        raise DatasetError(f"{where}: positions must have shape (M, N, 2), got {pos.shape}")
    m = pos.shape[0]
    if n_particles is not None and pos.shape[1] != n_particles:
        raise DatasetError(f"{where}: n_particles={n_particles} but positions have "
                           f"{pos.shape[1]} particles")
    for k, (ok, what) in ARRAY_SCHEMA.items():
        a = arrays[k]
        if a.dtype.kind not in "iuf":
            raise DatasetError(f"{where}: {k} must be real numbers, got dtype {a.dtype}")
        if k != "positions" and a.shape != (m,):
            raise DatasetError(f"{where}: {k} has shape {a.shape}, expected ({m},)")
        bad = ~ok(np.asarray(a, np.float64))
        if bad.any():
            i = int(np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1) if bad.ndim > 1
                                   else bad)[0])
            raise DatasetError(f"{where}: {k} must be {what} (configuration {i} is not)")
    for k, v in extra.items():
        if v.dtype.kind not in "biuf":
            raise DatasetError(f"{where}: extra/{k} must be numeric, got dtype {v.dtype}")
        if v.shape[:1] != (m,):
            raise DatasetError(f"{where}: extra/{k} has {v.shape[:1] or 'no'} rows, "
                               f"expected {m}")


def _dataset(f: h5py.File, name: str, where: str) -> h5py.Dataset:
    obj = f.get(name)
    if obj is None:
        raise DatasetError(f"{where}: missing dataset {name!r}")
    if not isinstance(obj, h5py.Dataset):
        raise DatasetError(f"{where}: {name} must be a dataset, got a {type(obj).__name__}")
    return obj


def read_dataset(path: str | os.PathLike, *, allow_partial: bool = False) -> Dataset:
    """Read an ljvae dataset file, checked against the schema (:data:`ATTR_SCHEMA`,
    :data:`ARRAY_SCHEMA`).

    Raises:
        DatasetError: the file is missing, not HDF5, not an ljvae dataset, incomplete
            (unless ``allow_partial``), has an attribute of the wrong type or range,
            inconsistent shapes, or values out of range (NaN positions, ...).
    """
    from mcsim.clitools import check_memory

    p = Path(path)
    with _check_open(p) as f:
        if _py(f.attrs.get("format")) != FORMAT:
            raise DatasetError(f"{p}: not an ljvae dataset (no format={FORMAT!r} attribute)")
        version = f.attrs.get("format_version")
        if _is_int(version) and version > FORMAT_VERSION:
            raise DatasetError(f"{p}: format version {version} is newer than this ljvae")
        try:
            attrs_raw = dict(f.attrs.items())
        except (OSError, TypeError, ValueError) as exc:
            raise DatasetError(f"{p}: unreadable attributes ({exc})") from None
        check_attrs(attrs_raw, str(p))
        if not allow_partial and not attrs_raw["complete"]:
            raise DatasetError(f"{p}: incomplete dataset (interrupted run; use --resume)")
        dsets = {k: _dataset(f, k, str(p)) for k in _CORE}
        m_alloc = dsets["positions"].shape[0] if dsets["positions"].ndim else 0
        n_rows = int(attrs_raw.get("n_done", m_alloc))
        if n_rows > m_alloc or (attrs_raw["complete"] and n_rows != m_alloc):
            raise DatasetError(f"{p}: attribute n_done={n_rows} does not match the "
                               f"{m_alloc} configurations stored")
        extra_grp = f.get("extra")
        if extra_grp is not None and not isinstance(extra_grp, h5py.Group):
            raise DatasetError(f"{p}: extra must be a group of datasets, got a "
                               f"{type(extra_grp).__name__}")
        extra_ds = {}
        for k, v in (extra_grp or {}).items():
            if not isinstance(v, h5py.Dataset):
                raise DatasetError(f"{p}: extra/{k} must be a dataset, got a "
                                   f"{type(v).__name__}")
            extra_ds[k] = v
        nbytes = sum(d.size * d.dtype.itemsize for d in (*dsets.values(), *extra_ds.values()))
        check_memory(2 * nbytes, str(p))
        try:
            arrays = {k: d[:n_rows] if d.ndim else d[()] for k, d in dsets.items()}
            extra = {k: v[:n_rows] if v.ndim else v[()] for k, v in extra_ds.items()}
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{p}: corrupt dataset ({exc})") from None
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        extra = {k: np.asarray(v) for k, v in extra.items()}
        attrs = {k: _py(v) for k, v in attrs_raw.items()}
    check_arrays(arrays, extra, str(p), int(attrs["n_particles"]))
    return Dataset(np.asarray(arrays["positions"], np.float64),
                   np.asarray(arrays["energy"], np.float64),
                   np.asarray(arrays["gamma"], np.float64),
                   np.asarray(arrays["acceptance"], np.float64), attrs, extra, p)


class DatasetWriter:
    """Write a dataset of known size in chunks, resumably.

    The file lives at ``<path>.partial`` until :meth:`finish` marks it complete and
    renames it. Attribute ``n_done`` counts the rows written in order; a writer opened
    with ``resume=True`` on an existing partial file continues after them, provided the
    partial file's generation parameters (``attrs``) match.

    Args:
        path: final file name.
        n_total: number of configurations M the finished file will hold.
        n_particles: N.
        attrs: root attributes (generation parameters); must include ``box``.
        overwrite: replace an existing complete file at ``path``.
        resume: continue an existing ``<path>.partial``.
        extra: names and trailing shapes of optional per-configuration arrays.
    """

    def __init__(self, path: str | os.PathLike, n_total: int, n_particles: int,
                 attrs: dict[str, Any], *, overwrite: bool = False, resume: bool = False,
                 extra: dict[str, tuple[int, ...]] | None = None) -> None:
        self.path = Path(path)
        self.partial = partial_path(self.path)
        if self.path.exists() and not overwrite:
            raise UserError(f"--out: {self.path} exists (use --overwrite to replace it)")
        if self.path.is_dir():
            raise UserError(f"--out: {self.path} is a directory")
        if not _is_int(n_total) or n_total < 0 or not _is_int(n_particles) or n_particles < 1:
            raise ValueError(f"DatasetWriter: need n_total >= 0 and n_particles >= 1, got "
                             f"{n_total!r}, {n_particles!r}")
        if "box" not in attrs:
            raise ValueError("attrs: must include 'box'")
        attrs = {k: _attr_value(v) for k, v in attrs.items() if k not in _RESERVED}
        attrs.setdefault("source", "mcsim")
        try:
            check_attrs(attrs, "attrs", partial=True)
        except DatasetError as exc:
            raise ValueError(str(exc)) from None
        self._check_keys = sorted(attrs)
        if resume and self.partial.exists():
            self._file = self._reopen(attrs, n_total, n_particles)
        else:
            try:
                self._file = self._create(attrs, n_total, n_particles, extra or {})
            except (TypeError, ValueError, OverflowError) as exc:  # e.g. an unstorable attr
                self.partial.unlink(missing_ok=True)
                raise ValueError(f"attrs: cannot be stored in HDF5 ({exc})") from None

    def _create(self, attrs, n_total, n_particles, extra) -> h5py.File:
        from mcsim.clitools import ensure_parent

        ensure_parent(self.partial)
        f = h5py.File(self.partial, "w")
        try:
            self._fill(f, attrs, n_total, n_particles, extra)
        except BaseException:
            f.close()
            raise
        return f

    def _fill(self, f, attrs, n_total, n_particles, extra) -> None:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["complete"] = False
        f.attrs["n_done"] = 0
        f.attrs["ljvae_version"] = package_version()
        f.attrs["created"] = _utc_now()
        f.attrs["n_particles"] = n_particles
        for k, v in attrs.items():
            f.attrs[k] = v
        rows = max(1, min(n_total, 1024))
        f.create_dataset("positions", (n_total, n_particles, 2), np.float64,
                         chunks=(rows, n_particles, 2))
        for k in ("energy", "gamma", "acceptance"):
            f.create_dataset(k, (n_total,), np.float64)
        if extra:
            g = f.create_group("extra")
            for name, shape in extra.items():
                g.create_dataset(name, (n_total, *shape), np.float64)
        f.flush()

    def _reopen(self, attrs, n_total, n_particles) -> h5py.File:
        try:
            f = h5py.File(self.partial, "r+")
        except OSError:
            raise DatasetError(f"{self.partial}: corrupt partial file; delete it or drop "
                               "--resume") from None
        old = {k: _py(f.attrs.get(k)) for k in attrs}
        new = {k: _py(v) for k, v in attrs.items()}
        if f.attrs.get("format") != FORMAT or "positions" not in f:
            f.close()
            raise DatasetError(f"{self.partial}: not an ljvae partial dataset")
        n_done = f.attrs.get("n_done")
        if not _is_int(n_done) or not 0 <= n_done <= f["positions"].shape[0]:
            f.close()
            raise DatasetError(f"{self.partial}: corrupt partial file (n_done={_py(n_done)!r}); "
                               "delete it or use --overwrite")
        diff = [k for k in new if k != "created" and old[k] != new[k]]
        if diff or f["positions"].shape != (n_total, n_particles, 2):
            f.close()
            what = ", ".join(diff) if diff else "shape"
            raise UserError(f"--resume: {self.partial} was made with different parameters "
                            f"({what}); drop --resume or use --overwrite")
        return f

    @property
    def n_done(self) -> int:
        """Rows already written (in order)."""
        return int(self._file.attrs["n_done"])

    @property
    def file(self) -> h5py.File:
        """The open HDF5 file (for diagnostics groups and resumable state)."""
        return self._file

    def write(self, start: int, positions: np.ndarray, energy: np.ndarray,
              gamma: np.ndarray, acceptance: np.ndarray,
              extra: dict[str, np.ndarray] | None = None) -> None:
        """Write rows [start, start + len(positions)) and advance ``n_done``; rows must
        be written in order so that ``n_done`` always marks finished work."""
        if start != self.n_done:
            raise RuntimeError(f"rows must be written in order: start={start}, "
                               f"n_done={self.n_done}")
        stop = start + positions.shape[0]
        f = self._file
        if stop > f["positions"].shape[0]:
            raise RuntimeError(f"rows {start}..{stop} beyond the {f['positions'].shape[0]} "
                               "allocated")
        cols = {"positions": np.asarray(positions, np.float64), "energy": np.asarray(energy),
                "gamma": np.asarray(gamma), "acceptance": np.asarray(acceptance)}
        ex = {k: np.asarray(v) for k, v in (extra or {}).items()}
        try:
            check_arrays(cols, ex, "write", f["positions"].shape[1])
        except DatasetError as exc:
            raise ValueError(str(exc)) from None
        f["positions"][start:stop] = positions
        f["energy"][start:stop] = energy
        f["gamma"][start:stop] = gamma
        f["acceptance"][start:stop] = acceptance
        for name, arr in (extra or {}).items():
            f["extra"][name][start:stop] = arr
        f.attrs["n_done"] = stop
        f.flush()

    def rewind(self, n_done: int) -> None:
        """Forget rows from ``n_done`` on (they will be written again)."""
        if not 0 <= n_done <= self.n_done:
            raise RuntimeError(f"rewind: {n_done} outside [0, {self.n_done}]")
        self._file.attrs["n_done"] = n_done
        self._file.flush()

    def finish(self, extra_attrs: dict[str, Any] | None = None) -> Path:
        """Mark complete, close and rename to the final path."""
        f = self._file
        if self.n_done != f["positions"].shape[0]:
            raise RuntimeError(f"finish: {self.n_done} of {f['positions'].shape[0]} rows written")
        for k, v in (extra_attrs or {}).items():
            f.attrs[k] = _attr_value(v)
        f.attrs["complete"] = True
        f.close()
        os.replace(self.partial, self.path)
        return self.path

    def close(self) -> None:
        """Close without finishing: the partial file stays for ``--resume``."""
        if self._file.id.valid:
            self._file.close()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_dataset(path: str | os.PathLike, positions: np.ndarray, gamma: np.ndarray | float,
                  attrs: dict[str, Any], *, energy: np.ndarray | None = None,
                  acceptance: np.ndarray | None = None,
                  extra: dict[str, np.ndarray] | None = None,
                  overwrite: bool = False) -> Path:
    """Write a whole dataset in one go (atomically, via ``<path>.partial``).

    Args:
        positions: (M, N, 2) coordinates, sigma.
        gamma: scalar or (M,) field strengths.
        attrs: root attributes; must include ``box`` (and should say ``source``).
        energy: (M,) energies, or None to store NaN.
        acceptance: (M,) acceptance rates, or None to store NaN.
        extra: optional per-configuration arrays, name -> (M, ...).
    """
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 3 or pos.shape[2] != 2:
        raise ValueError(f"positions: expected shape (M, N, 2), got {pos.shape}")
    if "box" not in attrs:
        raise ValueError("attrs: must include 'box'")
    m = pos.shape[0]

    def col(v):
        a = np.full(m, np.nan) if v is None else np.broadcast_to(np.asarray(v, np.float64), (m,))
        return np.ascontiguousarray(a)

    extra = {k: np.asarray(v, np.float64) for k, v in (extra or {}).items()}
    try:  # the whole file is checked against the schema before anything is created
        check_arrays({"positions": pos, "energy": col(energy), "gamma": col(gamma),
                      "acceptance": col(acceptance)}, extra, "write_dataset")
    except DatasetError as exc:
        raise ValueError(str(exc)) from None
    w = DatasetWriter(path, m, pos.shape[1], attrs, overwrite=overwrite,
                      extra={k: v.shape[1:] for k, v in extra.items()})
    try:
        w.write(0, pos, col(energy), col(gamma), col(acceptance), extra)
        return w.finish()
    except BaseException:
        w.close()
        partial_path(Path(path)).unlink(missing_ok=True)
        raise


def write_xyz(path: str | os.PathLike, positions: np.ndarray, *, box: float,
              energy: np.ndarray | None = None, gamma: np.ndarray | None = None,
              overwrite: bool = False, element: str = "Ar") -> Path:
    """Export configurations to extended XYZ (one frame each; readable by ASE, OVITO).

    Each frame carries ``Lattice`` (the box, with a nominal z extent of 1 sigma),
    ``pbc="F F F"``, ``Properties=species:S:1:pos:R:3`` and, if given, ``energy`` and
    ``gamma``. Coordinates in sigma, z = 0.
    """
    from mcsim.clitools import atomic_output

    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim == 2:
        pos = pos[None]
    with atomic_output(path, overwrite) as tmp, open(tmp, "w") as fh:
        lattice = f'Lattice="{box:.10g} 0 0 0 {box:.10g} 0 0 0 1"'
        for k, frame in enumerate(pos):
            info = [lattice, "Properties=species:S:1:pos:R:3", 'pbc="F F F"']
            if energy is not None:
                info.append(f"energy={float(energy[k]):.12g}")
            if gamma is not None:
                info.append(f"gamma={float(gamma[k]):.12g}")
            lines = [str(frame.shape[0]), " ".join(info)]
            lines += [f"{element} {x:.10f} {y:.10f} 0.0000000000" for x, y in frame]
            fh.write("\n".join(lines) + "\n")
    return Path(path)


def read_npy(path: str | os.PathLike, what: str = "") -> np.ndarray:
    """A numeric ``.npy`` array, read without running code (no pickles), its size
    checked against memory before it is allocated.

    Raises:
        UserError: not a .npy file, holds Python objects or a non-numeric dtype,
        truncated, or too large for memory.
    """
    from mcsim.clitools import check_memory

    p = Path(path)
    where = f"{what}: {p}" if what else str(p)
    try:
        with open(p, "rb") as fh:
            try:
                version = np.lib.format.read_magic(fh)
                read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                        else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read(fh, max_header_size=1 << 20)
            except (ValueError, EOFError, SyntaxError, TypeError):
                raise UserError(f"{where}: not a .npy array (bad header)") from None
            offset = fh.tell()
    except OSError as exc:
        raise UserError(f"{where}: cannot read ({exc.strerror})") from None
    if dtype.hasobject:
        raise UserError(f"{where}: holds Python objects, not a numeric array")
    if dtype.kind not in "iuf":
        raise UserError(f"{where}: must hold real numbers, got dtype {dtype}")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if p.stat().st_size < offset + nbytes:
        raise UserError(f"{where}: truncated ({p.stat().st_size - offset} of {nbytes} data "
                        "bytes)")
    check_memory(2 * nbytes, where)
    try:
        return np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"{where}: cannot read as .npy ({exc})") from None
