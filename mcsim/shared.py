"""What every ljvae package shares: value checks, JSON, atomic saving of figures and JSON,
thread limits, and registry discovery.

* Value checks (:func:`is_int`, :func:`is_number`, :func:`fail`, :func:`check_int`,
  :func:`check_number`, :func:`check_choice`) raise an error that names the setting and
  the bad value (``"n: must be a positive integer, got 0"``); each config class passes
  its own error type. Flag names (``--n``) belong to the CLI layer only.
* :func:`jsonable` turns NumPy scalars and arrays, tuples and paths into JSON types;
  :func:`write_json` writes it atomically.
* :func:`save_figure` writes a Matplotlib figure atomically and closes it.
* :func:`thread_limits` limits numba, BLAS/OpenMP (threadpoolctl) and, if asked, torch
  to ``n`` threads inside a ``with`` block and restores every count it changed.
* :func:`discover` collects the registry entries of a package whose modules each define
  one (architectures, priors, study stages).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import pkgutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "is_int",
    "is_number",
    "fail",
    "check_int",
    "check_number",
    "check_choice",
    "unknown_fields",
    "jsonable",
    "write_json",
    "save_figure",
    "thread_limits",
    "discover",
]


# ---------------------------------------------------------------- value checks

def is_int(v: Any) -> bool:
    """A Python integer that is not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A finite Python int or float that is not a bool."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def fail(name: str, why: str, value: Any, error: type[Exception] = ValueError) -> None:
    """Raise ``error("<name>: <why>, got <value!r>")``."""
    raise error(f"{name}: {why}, got {value!r}")


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None,
              error: type[Exception] = ValueError) -> None:
    """``value`` is an integer in [minimum, maximum] (no upper bound if None)."""
    if not is_int(value) or value < minimum or (maximum is not None and value > maximum):
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        if maximum is not None:
            what += f" <= {maximum}"
        fail(name, f"must be {what}", value, error)


def check_number(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False,
                 hi_open: bool = False, error: type[Exception] = ValueError) -> None:
    """``value`` is a finite number in the interval from ``lo`` to ``hi`` (each end
    closed unless ``lo_open`` / ``hi_open``)."""
    ok = is_number(value)
    if ok:
        ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        lb, rb = ("(" if lo_open else "["), (")" if hi_open else "]")
        fail(name, f"must be a number in {lb}{lo:g}, {hi:g}{rb}", value, error)


def unknown_fields(cls: type, d: Any, error: type[Exception] = ValueError,
                   what: str = "config", kind: str = "a JSON object") -> list[str]:
    """The keys of ``d`` that are not fields of dataclass ``cls`` (sorted); ``error``
    ``"<what>: must be <kind>, got <type>"`` if ``d`` is not a dict."""
    import dataclasses

    if not isinstance(d, dict):
        raise error(f"{what}: must be {kind}, got {type(d).__name__}")
    return sorted(set(d) - {f.name for f in dataclasses.fields(cls)})


def check_choice(name: str, value: Any, choices: Iterable[str],
                 error: type[Exception] = ValueError) -> None:
    """``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise error(f"{name}: must be one of {', '.join(choices)}, got {value!r}")


# ---------------------------------------------------------------- JSON and files

def jsonable(obj: Any, nonfinite: str = "null") -> Any:
    """``obj`` with NumPy scalars/arrays, tuples and paths turned into JSON types.

    Args:
        obj: dicts, lists, tuples, NumPy values, paths, JSON types.
        nonfinite: what a NaN or infinite float becomes: ``"null"`` (None), ``"str"``
            (``"nan"``, ``"inf"``, ``"-inf"``) or ``"keep"`` (the float: ``json`` then
            writes ``NaN`` / ``Infinity``, which Python's ``json`` reads back).
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v, nonfinite) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v, nonfinite) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), nonfinite)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        v = float(obj)
        if math.isfinite(v) or nonfinite == "keep":
            return v
        return None if nonfinite == "null" else str(v)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2,
               sort_keys: bool = True, nonfinite: str = "null", newline: bool = False) -> None:
    """Write ``jsonable(obj)`` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(jsonable(obj, nonfinite), indent=indent, sort_keys=sort_keys)
                       + ("\n" if newline else ""))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> None:
    """Save a Matplotlib figure as PNG atomically (temporary file, then rename; an
    existing file is replaced) and close it."""
    import matplotlib.pyplot as plt

    from mcsim.clitools import atomic_output

    try:
        with atomic_output(path, overwrite=True) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------- threads

@contextlib.contextmanager
def thread_limits(n: int | None, *, torch: bool = False) -> Iterator[None]:
    """Run the block on ``n`` threads: numba's parallel kernels
    (:func:`mcsim.sampler.threads`), BLAS / OpenMP pools (threadpoolctl) and, with
    ``torch``, torch's intra-op pool. Every count is restored on exit. ``n=None``
    changes nothing."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    from mcsim.sampler import threads

    old_torch = None
    if torch:
        import torch as _torch

        old_torch = _torch.get_num_threads()
        _torch.set_num_threads(n)
    try:
        with threads(n), threadpool_limits(limits=n):
            yield
    finally:
        if old_torch is not None:
            _torch.set_num_threads(old_torch)


# ---------------------------------------------------------------- registries

def discover(package: str, attr: str, kind: type) -> dict[str, Any]:
    """A registry in which each member is one module: the ``attr`` of every module of
    ``package`` (imported by name) that defines one of type ``kind``, by its ``name``,
    ordered by its ``order`` (then name)."""
    pkg = importlib.import_module(package)
    found = []
    for info in pkgutil.iter_modules(pkg.__path__):
        entry = getattr(importlib.import_module(f"{package}.{info.name}"), attr, None)
        if isinstance(entry, kind):
            found.append(entry)
    return {e.name: e for e in sorted(found, key=lambda e: (e.order, e.name))}
