"""The interface of every latent prior (:class:`LatentPrior`: fit, sample, the gamma rule,
save), its errors, and :class:`PriorSpec`, a registry entry."""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mcsim.clitools import UserError, atomic_output

PRIOR_FORMAT = "ljvae-latent-prior"
PRIOR_VERSION = 1
_GAMMA_RTOL = 1e-9


class PriorError(UserError):
    """A prior that cannot do what was asked: unseen gamma, bad file, bad setting."""


class GammaInterpolationWarning(UserWarning):
    """A flow prior is sampled at a gamma between trained values (interpolated)."""


def _gamma_bits(gamma: float) -> int:
    return int(np.float64(gamma).view(np.uint64))


def _rng(seed: int, gamma: float | None) -> np.random.Generator:
    key = (0,) if gamma is None else (1, _gamma_bits(gamma))
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=key))


def _fmt_gammas(gammas: tuple[float, ...]) -> str:
    return ", ".join(f"{g:g}" for g in gammas)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise PriorError(f"seed: must be a non-negative integer, got {seed!r}")
    return int(seed)


class LatentPrior:
    """Base class: fit to an encoded training set, sample latent vectors, save/load.

    Subclasses set ``name`` and implement ``_fit``, ``_sample``, ``_arrays`` and
    ``_restore``. Public attributes after fitting:

    Attributes:
        latent_dim: D.
        gammas: trained gamma values, sorted ascending.
        counts: number of training configurations per trained gamma.
        fit_info: diagnostics of the fit (JSON-able).
        provenance: caller-supplied description of where the latents came from
            (checkpoint path and fingerprint, data fingerprint, split); saved with
            the prior.
    """

    name: ClassVar[str] = ""
    interpolates: ClassVar[bool] = False

    def __init__(self) -> None:
        self.latent_dim = 0
        self.gammas: tuple[float, ...] = ()
        self.counts: tuple[int, ...] = ()
        self.fit_info: dict[str, Any] = {}
        self.provenance: dict[str, Any] = {}

    # -- parameters -------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """The settings of this prior (constructor keyword arguments)."""
        return {}

    def __repr__(self) -> str:
        p = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({p})"

    @property
    def fitted(self) -> bool:
        return self.latent_dim > 0

    # -- fitting ----------------------------------------------------------------
    def fit(self, mu_z: np.ndarray, logvar_z: np.ndarray, gamma: np.ndarray, *,
            validation: tuple[np.ndarray, np.ndarray] | None = None,
            progress: bool = False) -> LatentPrior:
        """Fit to an encoded training set; returns ``self``.

        Args:
            mu_z: (M, D) latent means of the training configurations.
            logvar_z: (M, D) latent log-variances.
            gamma: (M,) field strength of each configuration.
            validation: optional (mu_z, gamma) of held-out configurations (used by
                the flow for model selection; ignored by the others).
            progress: show a progress bar where fitting takes a while.
        """
        mu = np.asarray(mu_z)
        lv = np.asarray(logvar_z)
        g = np.asarray(gamma, dtype=np.float64)
        if mu.ndim != 2 or mu.shape[0] == 0 or mu.shape[1] == 0:
            raise PriorError(f"mu_z: expected shape (M, D) with M, D >= 1, got {mu.shape}")
        if lv.shape != mu.shape:
            raise PriorError(f"logvar_z: shape {lv.shape} differs from mu_z {mu.shape}")
        if g.shape != (mu.shape[0],):
            raise PriorError(f"gamma: expected shape ({mu.shape[0]},), got {g.shape}")
        if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(lv)) and np.all(np.isfinite(g))):
            raise PriorError("mu_z, logvar_z, gamma: contain NaN or inf")
        values, counts = np.unique(g, return_counts=True)
        self.latent_dim = int(mu.shape[1])
        self.gammas = tuple(float(v) for v in values)
        self.counts = tuple(int(c) for c in counts)
        self.fit_info = {}
        self._fit(mu, lv, g, validation=validation, progress=progress)
        return self

    def _fit(self, mu, logvar, gamma, *, validation, progress) -> None:
        raise NotImplementedError

    def _group(self, gamma: np.ndarray, key: float) -> np.ndarray:
        return np.flatnonzero(gamma == key)

    # -- gamma rule ---------------------------------------------------------------
    def check_gamma(self, gamma: float | None) -> float | None:
        """The gamma to sample at, by the rule in the module docstring: None, a
        trained value, or (flow only) a value strictly inside the trained range.

        Raises:
            PriorError: gamma is not a finite number >= 0, or not allowed.
        """
        self._require_fitted()
        if gamma is None:
            return None
        try:
            g = float(gamma)
        except (TypeError, ValueError):
            raise PriorError(f"gamma: not a number: {gamma!r}") from None
        if not math.isfinite(g) or g < 0:
            raise PriorError(f"gamma: must be a finite number >= 0, got {gamma!r}")
        for t in self.gammas:
            if math.isclose(g, t, rel_tol=_GAMMA_RTOL, abs_tol=1e-12):
                return t
        lo, hi = self.gammas[0], self.gammas[-1]
        if self.interpolates and lo < g < hi:
            warnings.warn(f"gamma={g:g} was not trained (trained gammas: "
                          f"{_fmt_gammas(self.gammas)}); the {self.name} prior interpolates "
                          "its gamma context", GammaInterpolationWarning, stacklevel=3)
            return g
        rule = (f"; the {self.name} prior interpolates only inside [{lo:g}, {hi:g}]"
                if self.interpolates else f"; the {self.name} prior samples trained gammas only")
        raise PriorError(f"gamma={g:g} was not seen in training (trained gammas: "
                         f"{_fmt_gammas(self.gammas)}){rule}")

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise PriorError(f"{self.name} prior: not fitted (call fit or load)")

    # -- sampling -----------------------------------------------------------------
    def sample(self, n: int, gamma: float | None = None, seed: int = 0) -> np.ndarray:
        """Draw ``n`` latent vectors.

        Args:
            n: number of samples (>= 0).
            gamma: field strength to condition on, or None (see the gamma rule).
            seed: seed of this draw (same seed and gamma -> same output).

        Returns:
            (n, D) float64 latent vectors.
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise PriorError(f"n: must be a non-negative integer, got {n!r}")
        key = self.check_gamma(gamma)
        rng = _rng(_check_seed(seed), key)
        z = self._sample(int(n), key, rng)
        return np.ascontiguousarray(z, dtype=np.float64).reshape(int(n), self.latent_dim)

    def _sample(self, n: int, gamma: float | None, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _mixture_gammas(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n,) trained gammas drawn with the training frequencies (gamma=None)."""
        p = np.asarray(self.counts, dtype=np.float64)
        return np.asarray(self.gammas)[rng.choice(len(self.gammas), size=n, p=p / p.sum())]

    # -- files --------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        pass

    def meta(self) -> dict[str, Any]:
        """Everything but the arrays, as saved in the file's ``meta`` JSON."""
        return {
            "format": PRIOR_FORMAT,
            "format_version": PRIOR_VERSION,
            "name": self.name,
            "params": self.params(),
            "latent_dim": self.latent_dim,
            "gammas": list(self.gammas),
            "counts": list(self.counts),
            "fit_info": self.fit_info,
            "provenance": self.provenance,
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the fitted prior to an ``.npz`` file (atomically; see the module
        docstring). Refuses to replace an existing file unless ``overwrite``."""
        self._require_fitted()
        arrays = self._arrays()
        if "meta" in arrays:
            raise RuntimeError("array name 'meta' is reserved")
        meta = json.dumps(self.meta(), sort_keys=True)
        with atomic_output(path, overwrite) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, meta=np.array(meta), **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LatentPrior:
        """Read a prior written by :meth:`save` (any kind when called on the base
        class; a subclass checks that the file holds its kind)."""
        from vae.priors.io import load_prior

        prior = load_prior(path)
        if cls is not LatentPrior and not isinstance(prior, cls):
            raise PriorError(f"{path}: holds a {prior.name!r} prior, not {cls.name!r}")
        return prior


def _group_key(gamma: float | None) -> str:
    return "all" if gamma is None else repr(float(gamma))


@dataclass(frozen=True)
class PriorSpec:
    """Everything about one prior (an entry of :data:`vae.priors.PRIOR_SPECS`).

    Attributes:
        name: its name (``--prior``, ``generate.priors``, the report's rows).
        cls: the :class:`LatentPrior` subclass.
        label: a short label for figures and tables.
        description: one line for help texts.
        color: its colour in figures.
        settings: ``(keyword of cls, field of pipelines.generate.GenerateConfig,
            conversion)`` for each setting the generation config passes to it.
        seeded: whether it takes the run's ``seed`` (its fit is random).
        order: its place in reports (``PRIORS``).
    """

    name: str
    cls: type
    label: str = ""
    description: str = ""
    color: str | None = None
    settings: tuple[tuple[str, str, Callable[[Any], Any]], ...] = ()
    seeded: bool = False
    order: int = 0

    def params_from(self, cfg: Any) -> dict[str, Any]:
        """Keyword arguments of :func:`vae.priors.build_prior` from a config object
        that holds the settings' fields (and ``seed``, for a seeded prior)."""
        out = {kw: conv(getattr(cfg, fld)) for kw, fld, conv in self.settings}
        if self.seeded:
            out["seed"] = cfg.seed
        return out
