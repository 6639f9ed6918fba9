"""Building a prior by name and reading a saved one (:func:`build_prior`, :func:`load_prior`)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vae.priors.base import PRIOR_FORMAT, PRIOR_VERSION, LatentPrior, PriorError


def build_prior(name: str, **params: Any) -> LatentPrior:
    """An unfitted prior by name (one of :data:`vae.priors.PRIORS`) with its settings.

    Raises:
        PriorError: unknown name or setting, or an invalid value.
    """
    from vae.priors import PRIOR_SPECS

    if name not in PRIOR_SPECS:
        raise PriorError(f"prior: unknown prior {name!r} (one of {', '.join(PRIOR_SPECS)})")
    cls = PRIOR_SPECS[name].cls
    import inspect

    allowed = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise PriorError(f"{name} prior: unknown setting {unknown[0]!r} "
                         f"(allowed: {', '.join(sorted(allowed)) or 'none'})")
    return cls(**params)


@contextlib.contextmanager
def _open_npz(path: Path) -> Iterator[Any]:
    if not path.is_file():
        raise PriorError(f"{path}: no such prior file")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        why = ("it holds pickled Python objects, which are never loaded" if "pickle" in
               str(exc) else str(exc).splitlines()[0][:120])
        raise PriorError(f"{path}: not a prior file ({why})") from None
    if not hasattr(data, "files"):
        raise PriorError(f"{path}: not a prior file (not an .npz archive)")
    with data:
        yield data


def load_prior(path: str | os.PathLike) -> LatentPrior:
    """Read a prior written by :meth:`LatentPrior.save` without executing any code
    (``numpy.load(allow_pickle=False)``; flow weights are plain arrays).

    Raises:
        PriorError: missing file, not a prior file, newer format, or inconsistent.
    """
    p = Path(path)
    with _open_npz(p) as data:
        try:
            meta = json.loads(str(data["meta"]))
            arrays = {k: data[k] for k in data.files if k != "meta"}
        except (KeyError, ValueError, OSError) as exc:
            raise PriorError(f"{p}: not a prior file ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != PRIOR_FORMAT:
        raise PriorError(f"{p}: not an ljvae latent prior")
    if int(meta.get("format_version", 0)) > PRIOR_VERSION:
        raise PriorError(f"{p}: prior format {meta['format_version']} is newer than this ljvae")
    try:
        prior = build_prior(meta["name"], **meta["params"])
        prior.latent_dim = int(meta["latent_dim"])
        prior.gammas = tuple(float(g) for g in meta["gammas"])
        prior.counts = tuple(int(c) for c in meta["counts"])
        prior.fit_info = meta.get("fit_info", {})
        prior.provenance = meta.get("provenance", {})
        prior._restore(arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise PriorError(f"{p}: inconsistent prior file ({type(exc).__name__}: {exc})") from None
    if prior.latent_dim < 1 or not prior.gammas:
        raise PriorError(f"{p}: inconsistent prior file (no latent dimension or gammas)")
    return prior

