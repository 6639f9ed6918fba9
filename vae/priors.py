"""Latent priors for generation: where to draw z from before decoding.

A VAE is trained with the prior N(0, I), but the encoded training set (the aggregate
posterior q(z) = (1/M) sum_i N(z; mu_i, diag sigma_i^2)) rarely fills it: decoding
z ~ N(0, I) gives configurations with the wrong frequencies (Otten et al. 2019, seed
000; Orzari et al. 2020, seed 003). Each prior below is fitted to the encoded
training set (mu_z, logvar_z, gamma) and can be conditioned on the field gamma:

* :class:`StandardNormalPrior` (``normal``): z ~ N(0, I), the training prior; no gamma
  dependence.
* :class:`PCAGaussianPrior` (``pca``): the study's PCA sampling done correctly. With
  the principal axes v_k and explained variances lambda_k of the latent means of one
  gamma, z = m + sum_{k <= K} sqrt(lambda_k) eps_k v_k, eps ~ N(0, I): the Gaussian
  fitted to the latent means (the study used lambda_k itself as the standard
  deviation). K = D (default) is the full-covariance Gaussian; K < D truncates to
  the leading components as the study did. With ``aggregate=True`` the covariance is
  that of the aggregate posterior instead, Cov[mu] + E[diag sigma^2] (law of total
  variance).
* :class:`GMMPrior` (``gmm``): a Gaussian mixture (scikit-learn ``GaussianMixture``,
  full covariances) fitted to the latent means of each gamma.
* :class:`DensityBuffer` (``buffer``): Otten et al.'s density buffer. Stores
  (mu_i, sigma_i, gamma_i) of every encoded training configuration; a draw picks an
  entry i uniformly among those of the requested gamma, then
  z ~ N(mu_i, (alpha sigma_i + smudge)^2). alpha = 1, smudge = 0 samples the
  aggregate posterior; alpha = smudge = 0 returns exactly the stored means.
* :class:`FlowPrior` (``flow``): a normalizing flow (zuko; Papamakarios et al. 2017
  MAF, or Durkan et al. 2019 NSF) fitted by maximum likelihood to the standardized
  latent means with gamma as context, p(z | gamma). The default is an affine coupling
  flow (zuko MAF with ``passes=2``, i.e. RealNVP-like, Dinh et al. 2017): sampling
  is one pass per transform, ~100x faster than a fully autoregressive flow in D = 40.

Gamma rule (every prior, :meth:`LatentPrior.check_gamma`):

* ``gamma=None`` samples the mixture over the trained gammas, weighted by how many
  training configurations each has (for ``normal``: N(0, I)).
* A trained gamma (equal up to a relative 1e-9) samples that gamma only.
* Any other gamma is refused with a one-line error listing the trained gammas,
  except for ``flow``, which interpolates its context strictly inside the trained
  range [min, max] with a :class:`GammaInterpolationWarning`; outside the range it
  refuses too. ``normal`` has no gamma dependence but follows the same rule, so no
  prior ever claims to generate at a field the model never saw.

Files (:meth:`LatentPrior.save`, :func:`load_prior`): one ``.npz`` holding plain
arrays and a JSON string ``meta`` (format, version, prior name, every parameter,
trained gammas and counts, fit diagnostics, caller provenance such as the checkpoint
fingerprint). Flow weights are stored as arrays of the state dict. Loading uses
``numpy.load(allow_pickle=False)``: no code is ever executed. Round trips are exact.

Randomness: ``sample(n, gamma, seed)`` draws from
``numpy.random.default_rng(SeedSequence(seed, spawn_key=(1, bits(gamma))))``
(``(0,)`` for gamma None), so a gamma's samples do not depend on which other gammas
are asked for. The flow seeds torch inside ``torch.random.fork_rng`` from that
generator; the global torch state is left untouched.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mcsim.clitools import UserError, atomic_output

__all__ = [
    "PRIORS",
    "PRIOR_FORMAT",
    "PriorError",
    "GammaInterpolationWarning",
    "LatentPrior",
    "StandardNormalPrior",
    "PCAGaussianPrior",
    "GMMPrior",
    "DensityBuffer",
    "FlowPrior",
    "build_prior",
    "load_prior",
]

#: Names of the priors, in the order they are reported.
PRIORS = ("normal", "pca", "gmm", "buffer", "flow")
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
        prior = load_prior(path)
        if cls is not LatentPrior and not isinstance(prior, cls):
            raise PriorError(f"{path}: holds a {prior.name!r} prior, not {cls.name!r}")
        return prior


# ---------------------------------------------------------------------------------
class StandardNormalPrior(LatentPrior):
    """z ~ N(0, I): the prior the VAE was trained with. Independent of gamma (which
    is still checked against the trained gammas)."""

    name = "normal"

    def _fit(self, mu, logvar, gamma, *, validation, progress) -> None:
        self.fit_info = {"n_train": int(mu.shape[0])}

    def _sample(self, n, gamma, rng) -> np.ndarray:
        return rng.standard_normal((n, self.latent_dim))


# ---------------------------------------------------------------------------------
def _group_key(gamma: float | None) -> str:
    return "all" if gamma is None else repr(float(gamma))


class PCAGaussianPrior(LatentPrior):
    """The Gaussian fitted to the latent means, sampled along its principal axes:
    z = m + sum_{k<=K} sqrt(lambda_k) eps_k v_k (module docstring), one Gaussian per
    trained gamma and one for all gammas together (gamma=None).

    Args:
        n_components: K, leading components kept (None: all D, the full Gaussian).
        aggregate: add E[sigma^2] to the covariance (the aggregate posterior's
            covariance) instead of the covariance of the means alone.
    """

    name = "pca"

    def __init__(self, n_components: int | None = None, aggregate: bool = False) -> None:
        super().__init__()
        if n_components is not None and (isinstance(n_components, bool) or not isinstance(
                n_components, int) or n_components < 1):
            raise PriorError(f"n_components: must be a positive integer or None, "
                             f"got {n_components!r}")
        if not isinstance(aggregate, bool):
            raise PriorError(f"aggregate: must be true or false, got {aggregate!r}")
        self.n_components = n_components
        self.aggregate = aggregate
        self._mean: dict[str, np.ndarray] = {}
        self._axes: dict[str, np.ndarray] = {}
        self._scale: dict[str, np.ndarray] = {}

    def params(self) -> dict[str, Any]:
        return {"n_components": self.n_components, "aggregate": self.aggregate}

    def _fit_one(self, key: str, mu: np.ndarray, logvar: np.ndarray) -> None:
        x = mu.astype(np.float64)
        m = x.mean(axis=0)
        cov = np.cov(x, rowvar=False, ddof=1) if x.shape[0] > 1 else np.zeros((x.shape[1],) * 2)
        cov = np.atleast_2d(cov)
        if self.aggregate:
            cov = cov + np.diag(np.exp(logvar.astype(np.float64)).mean(axis=0))
        lam, vec = np.linalg.eigh(cov)
        order = np.argsort(lam)[::-1]
        lam, vec = np.clip(lam[order], 0.0, None), vec[:, order]
        k = min(self.n_components or x.shape[1], x.shape[1])
        self._mean[key] = m
        self._axes[key] = np.ascontiguousarray(vec[:, :k].T)  # (K, D) principal axes
        self._scale[key] = np.sqrt(lam[:k])  # standard deviations along them
        total = float(lam.sum())
        self.fit_info[key] = {
            "n": int(x.shape[0]),
            "explained_variance_ratio_kept": float(lam[:k].sum() / total) if total > 0 else 1.0,
            "pc1_pc2_ratio": float(lam[:2].sum() / total) if total > 0 else 1.0,
        }

    def _fit(self, mu, logvar, gamma, *, validation, progress) -> None:
        self._mean, self._axes, self._scale = {}, {}, {}
        self._fit_one("all", mu, logvar)
        for g in self.gammas:
            idx = self._group(gamma, g)
            self._fit_one(_group_key(g), mu[idx], logvar[idx])

    def _sample(self, n, gamma, rng) -> np.ndarray:
        key = _group_key(gamma)
        scale = self._scale[key]
        eps = rng.standard_normal((n, scale.size))
        return self._mean[key] + (eps * scale) @ self._axes[key]

    def _arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for key in self._mean:
            out[f"{key}/mean"] = self._mean[key]
            out[f"{key}/axes"] = self._axes[key]
            out[f"{key}/scale"] = self._scale[key]
        return out

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        for key in ["all"] + [_group_key(g) for g in self.gammas]:
            self._mean[key] = arrays[f"{key}/mean"]
            self._axes[key] = arrays[f"{key}/axes"]
            self._scale[key] = arrays[f"{key}/scale"]


# ---------------------------------------------------------------------------------
class GMMPrior(LatentPrior):
    """A Gaussian mixture on the latent means of each trained gamma (scikit-learn
    ``GaussianMixture``, EM from k-means++ initialisation seeded by ``seed``).
    gamma=None samples the mixture of the per-gamma mixtures, weighted by the
    training counts. Sampling is done here (component by weight, then the Cholesky
    factor times N(0, I)) from the generator of :meth:`sample`.

    Args:
        n_components: mixture components per gamma (at most the number of points).
        covariance_type: ``full`` or ``diag``.
        seed: seed of the EM initialisation.
        max_iter: EM iterations.
        reg_covar: added to the covariance diagonals (scikit-learn's regulariser).
    """

    name = "gmm"

    def __init__(self, n_components: int = 10, covariance_type: str = "full", seed: int = 0,
                 max_iter: int = 200, reg_covar: float = 1e-6) -> None:
        super().__init__()
        if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
            raise PriorError(f"n_components: must be a positive integer, got {n_components!r}")
        if covariance_type not in ("full", "diag"):
            raise PriorError(f"covariance_type: must be full or diag, got {covariance_type!r}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise PriorError(f"max_iter: must be a positive integer, got {max_iter!r}")
        if not isinstance(reg_covar, int | float) or not reg_covar >= 0:
            raise PriorError(f"reg_covar: must be a number >= 0, got {reg_covar!r}")
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.seed = _check_seed(seed)
        self.max_iter = max_iter
        self.reg_covar = float(reg_covar)
        self._weights: list[np.ndarray] = []
        self._means: list[np.ndarray] = []
        self._chol: list[np.ndarray] = []

    def params(self) -> dict[str, Any]:
        return {"n_components": self.n_components, "covariance_type": self.covariance_type,
                "seed": self.seed, "max_iter": self.max_iter, "reg_covar": self.reg_covar}

    def _fit(self, mu, logvar, gamma, *, validation, progress) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture

        self._weights, self._means, self._chol = [], [], []
        info = []
        for g in self.gammas:
            x = mu[self._group(gamma, g)].astype(np.float64)
            k = min(self.n_components, x.shape[0])
            gm = GaussianMixture(k, covariance_type=self.covariance_type,
                                 max_iter=self.max_iter, reg_covar=self.reg_covar,
                                 random_state=self.seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # recorded below
                gm.fit(x)
            cov = gm.covariances_
            if self.covariance_type == "diag":
                chol = np.sqrt(cov)[:, :, None] * np.eye(x.shape[1])[None]
            else:
                chol = np.linalg.cholesky(cov)
            self._weights.append(np.asarray(gm.weights_, np.float64))
            self._means.append(np.asarray(gm.means_, np.float64))
            self._chol.append(np.ascontiguousarray(chol, np.float64))
            info.append({"gamma": g, "n": int(x.shape[0]), "components": k,
                         "converged": bool(gm.converged_), "n_iter": int(gm.n_iter_),
                         "mean_log_likelihood": float(gm.score(x))})
        self.fit_info = {"per_gamma": info}

    def _sample_gamma(self, i: int, n: int, rng: np.random.Generator) -> np.ndarray:
        w = self._weights[i]
        comp = rng.choice(w.size, size=n, p=w / w.sum())
        eps = rng.standard_normal((n, self.latent_dim))
        return self._means[i][comp] + np.einsum("nij,nj->ni", self._chol[i][comp], eps)

    def _sample(self, n, gamma, rng) -> np.ndarray:
        if gamma is not None:
            return self._sample_gamma(self.gammas.index(gamma), n, rng)
        which = rng.choice(len(self.gammas), size=n,
                           p=np.asarray(self.counts, np.float64) / sum(self.counts))
        out = np.empty((n, self.latent_dim))
        for i in range(len(self.gammas)):
            sel = np.flatnonzero(which == i)
            out[sel] = self._sample_gamma(i, sel.size, rng)
        return out

    def _arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for i in range(len(self.gammas)):
            out[f"{i}/weights"] = self._weights[i]
            out[f"{i}/means"] = self._means[i]
            out[f"{i}/chol"] = self._chol[i]
        return out

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        n = len(self.gammas)
        self._weights = [arrays[f"{i}/weights"] for i in range(n)]
        self._means = [arrays[f"{i}/means"] for i in range(n)]
        self._chol = [arrays[f"{i}/chol"] for i in range(n)]


# ---------------------------------------------------------------------------------
class DensityBuffer(LatentPrior):
    """Otten et al.'s density buffer (seed 000): the encoded training set itself.

    Stores mu_i and sigma_i = exp(logvar_i / 2) (float32, as encoded) and gamma_i. A
    draw at gamma picks i uniformly among the entries of that gamma (all entries for
    gamma=None), then z = mu_i + (alpha sigma_i + smudge) eps, eps ~ N(0, I).
    With alpha = smudge = 0 the stored means are returned exactly.

    Args:
        alpha: scale of the encoder's own spread sigma_i (1: the aggregate posterior).
        smudge: extra isotropic spread, latent units.
    """

    name = "buffer"

    def __init__(self, alpha: float = 1.0, smudge: float = 0.0) -> None:
        super().__init__()
        for k, v in (("alpha", alpha), ("smudge", smudge)):
            if isinstance(v, bool) or not isinstance(v, int | float) or not (
                    math.isfinite(v) and v >= 0):
                raise PriorError(f"{k}: must be a finite number >= 0, got {v!r}")
        self.alpha = float(alpha)
        self.smudge = float(smudge)
        self.mu = np.zeros((0, 0), np.float32)
        self.sigma = np.zeros((0, 0), np.float32)
        self.gamma = np.zeros(0)

    def params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "smudge": self.smudge}

    def _fit(self, mu, logvar, gamma, *, validation, progress) -> None:
        self.mu = np.ascontiguousarray(mu, dtype=np.float32)
        self.sigma = np.exp(0.5 * np.asarray(logvar, np.float64)).astype(np.float32)
        self.gamma = np.ascontiguousarray(gamma, dtype=np.float64)
        self.fit_info = {"n_entries": int(mu.shape[0]),
                         "mean_sigma": float(self.sigma.mean())}

    def draw(self, n: int, gamma: float | None = None, seed: int = 0
             ) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`sample`, also returning the buffer entries drawn: (z (n, D),
        idx (n,) rows of ``mu`` / ``sigma`` / ``gamma``)."""
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise PriorError(f"n: must be a non-negative integer, got {n!r}")
        key = self.check_gamma(gamma)
        rng = _rng(_check_seed(seed), key)
        return self._draw(int(n), key, rng)

    def _draw(self, n, gamma, rng) -> tuple[np.ndarray, np.ndarray]:
        pool = np.arange(self.gamma.size) if gamma is None else np.flatnonzero(
            self.gamma == gamma)
        idx = pool[rng.integers(0, pool.size, size=n)]
        z = self.mu[idx].astype(np.float64)
        if self.alpha != 0.0 or self.smudge != 0.0:
            spread = self.alpha * self.sigma[idx].astype(np.float64) + self.smudge
            z = z + spread * rng.standard_normal(z.shape)
        return z, idx

    def _sample(self, n, gamma, rng) -> np.ndarray:
        return self._draw(n, gamma, rng)[0]

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"mu": self.mu, "sigma": self.sigma, "gamma": self.gamma}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.mu, self.sigma, self.gamma = arrays["mu"], arrays["sigma"], arrays["gamma"]


# ---------------------------------------------------------------------------------
FLOW_KINDS = ("maf", "nsf")


class FlowPrior(LatentPrior):
    """A normalizing flow p(z | gamma) on the latent means (zuko).

    The latent means are standardized per dimension (training mean and standard
    deviation, stored) and the context is the standardized gamma. Training: Adam,
    mini-batches shuffled by a seeded torch generator, negative log-likelihood; the
    state with the lowest validation loss is kept (``validation`` given to
    :meth:`fit`, else a seeded 10 % of the training points is held out), with early
    stopping after ``patience`` epochs without improvement.

    Args:
        kind: ``maf`` (affine autoregressive / coupling) or ``nsf`` (rational-quadratic
            spline, Durkan et al. 2019).
        transforms: number of transforms.
        hidden: hidden widths of each transform's network.
        passes: 2 (default) makes each transform a coupling layer (one pass to
            sample); None a fully autoregressive one (D passes to sample).
        bins: spline bins (``nsf``).
        epochs, batch_size, lr, patience: optimisation.
        seed: seed of the initialisation, shuffling and held-out split.
    """

    name = "flow"
    interpolates = True

    def __init__(self, kind: str = "maf", transforms: int = 6, hidden: tuple[int, ...] = (128, 128),
                 passes: int | None = 2, bins: int = 8, epochs: int = 60, batch_size: int = 512,
                 lr: float = 1e-3, patience: int = 8, seed: int = 0) -> None:
        super().__init__()
        if kind not in FLOW_KINDS:
            raise PriorError(f"kind: must be one of {', '.join(FLOW_KINDS)}, got {kind!r}")
        ints = {"transforms": transforms, "bins": bins, "epochs": epochs,
                "batch_size": batch_size}
        for k, v in ints.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise PriorError(f"{k}: must be a positive integer, got {v!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise PriorError(f"patience: must be an integer >= 0, got {patience!r}")
        if passes is not None and (isinstance(passes, bool) or not isinstance(passes, int)
                                   or passes < 2):
            raise PriorError(f"passes: must be an integer >= 2 or None, got {passes!r}")
        try:
            hidden = tuple(int(h) for h in hidden)
        except (TypeError, ValueError):
            raise PriorError(f"hidden: must be a list of positive integers, got {hidden!r}"
                             ) from None
        if not hidden or min(hidden) < 1:
            raise PriorError(f"hidden: must be a list of positive integers, got {hidden!r}")
        if not isinstance(lr, int | float) or not (math.isfinite(lr) and lr > 0):
            raise PriorError(f"lr: must be a positive number, got {lr!r}")
        self.kind, self.transforms, self.hidden = kind, transforms, hidden
        self.passes, self.bins = passes, bins
        self.epochs, self.batch_size, self.lr = epochs, batch_size, float(lr)
        self.patience, self.seed = patience, _check_seed(seed)
        self.flow = None
        self.z_mean = np.zeros(0)
        self.z_std = np.zeros(0)
        self.g_mean = 0.0
        self.g_std = 1.0

    def params(self) -> dict[str, Any]:
        return {"kind": self.kind, "transforms": self.transforms, "hidden": list(self.hidden),
                "passes": self.passes, "bins": self.bins, "epochs": self.epochs,
                "batch_size": self.batch_size, "lr": self.lr, "patience": self.patience,
                "seed": self.seed}

    def _build(self):
        import torch
        import zuko

        kw: dict[str, Any] = {"transforms": self.transforms, "hidden_features": self.hidden}
        if self.passes is not None:
            kw["passes"] = self.passes
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            if self.kind == "nsf":
                return zuko.flows.NSF(self.latent_dim, 1, bins=self.bins, **kw)
            return zuko.flows.MAF(self.latent_dim, 1, **kw)

    def _standardize(self, mu: np.ndarray, gamma: np.ndarray):
        import torch

        x = (np.asarray(mu, np.float64) - self.z_mean) / self.z_std
        c = (np.asarray(gamma, np.float64) - self.g_mean) / self.g_std
        return (torch.as_tensor(x, dtype=torch.float32),
                torch.as_tensor(c[:, None], dtype=torch.float32))

    def _fit(self, mu, logvar, gamma, *, validation, progress) -> None:
        import torch
        from tqdm.auto import tqdm

        mu = np.asarray(mu, np.float64)
        if validation is None:
            rng = np.random.default_rng(self.seed)
            perm = rng.permutation(mu.shape[0])
            n_val = max(1, mu.shape[0] // 10) if mu.shape[0] > 1 else 0
            val_idx, tr_idx = perm[:n_val], perm[n_val:]
            mu_val, g_val = mu[val_idx], gamma[val_idx]
            mu, gamma = mu[tr_idx], gamma[tr_idx]
        else:
            mu_val = np.asarray(validation[0], np.float64)
            g_val = np.asarray(validation[1], np.float64)
        self.z_mean = mu.mean(axis=0)
        self.z_std = mu.std(axis=0)
        self.z_std[self.z_std == 0] = 1.0
        gam = np.asarray(self.gammas)
        self.g_mean = float(gam.mean())
        self.g_std = float(gam.std()) if gam.size > 1 and gam.std() > 0 else 1.0
        x, c = self._standardize(mu, gamma)
        xv, cv = self._standardize(mu_val, g_val) if len(mu_val) else (None, None)
        flow = self._build()
        opt = torch.optim.Adam(flow.parameters(), lr=self.lr)
        gen = torch.Generator().manual_seed(self.seed)
        best, best_state, best_epoch, history = math.inf, None, 0, []

        def nll(xb, cb) -> float:
            with torch.no_grad():
                return float(-flow(cb).log_prob(xb).mean())

        bar = tqdm(range(1, self.epochs + 1), desc="fit flow prior", unit="epoch",
                   disable=not progress, dynamic_ncols=True)
        for epoch in bar:
            flow.train()
            perm = torch.randperm(x.shape[0], generator=gen)
            total = 0.0
            for a in range(0, x.shape[0], self.batch_size):
                b = perm[a:a + self.batch_size]
                loss = -flow(c[b]).log_prob(x[b]).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * b.numel()
            flow.eval()
            train_nll = total / x.shape[0]
            val_nll = nll(xv, cv) if xv is not None else train_nll
            history.append({"epoch": epoch, "train_nll": train_nll, "val_nll": val_nll})
            bar.set_postfix_str(f"val nll {val_nll:.3f}")
            if val_nll < best:
                best, best_epoch = val_nll, epoch
                best_state = {k: v.detach().clone() for k, v in flow.state_dict().items()}
            elif self.patience and epoch - best_epoch >= self.patience:
                break
        if best_state is not None:
            flow.load_state_dict(best_state)
        flow.eval()
        self.flow = flow
        self.fit_info = {"best_epoch": best_epoch, "best_val_nll": best,
                         "epochs_run": len(history), "history": history,
                         "n_train": int(x.shape[0]), "n_val": int(len(mu_val)),
                         "n_parameters": int(sum(p.numel() for p in flow.parameters()))}

    def log_prob(self, z: np.ndarray, gamma: np.ndarray | float) -> np.ndarray:
        """log p(z | gamma) (M,) in the latent space's own units (the Jacobian of the
        standardization included)."""
        import torch

        self._require_fitted()
        z = np.asarray(z, np.float64)
        g = np.broadcast_to(np.asarray(gamma, np.float64), (z.shape[0],))
        x, c = self._standardize(z, g)
        with torch.no_grad():
            lp = self.flow(c).log_prob(x).double().numpy()
        return lp - float(np.log(self.z_std).sum())

    def _sample(self, n, gamma, rng) -> np.ndarray:
        import torch

        g = np.full(n, gamma, np.float64) if gamma is not None else self._mixture_gammas(n, rng)
        torch_seed = int(rng.integers(0, 2**62))
        _, c = self._standardize(np.zeros((n, self.latent_dim)), g)
        out = np.empty((n, self.latent_dim))
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(torch_seed)
            for a in range(0, n, 8192):
                cb = c[a:a + 8192]
                out[a:a + cb.shape[0]] = self.flow(cb).sample().double().numpy()
        return out * self.z_std + self.z_mean

    def _arrays(self) -> dict[str, np.ndarray]:
        out = {"z_mean": self.z_mean, "z_std": self.z_std,
               "g_norm": np.array([self.g_mean, self.g_std])}
        for k, v in self.flow.state_dict().items():
            out[f"flow/{k}"] = v.detach().cpu().numpy()
        return out

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        import torch

        self.z_mean, self.z_std = arrays["z_mean"], arrays["z_std"]
        self.g_mean, self.g_std = (float(v) for v in arrays["g_norm"])
        flow = self._build()
        state = {k[5:]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                 if k.startswith("flow/")}
        try:
            flow.load_state_dict(state)
        except RuntimeError as exc:
            raise PriorError(f"flow weights do not match the saved settings "
                             f"({str(exc).splitlines()[0]})") from None
        flow.eval()
        self.flow = flow

    @property
    def fitted(self) -> bool:
        return self.latent_dim > 0 and self.flow is not None


# ---------------------------------------------------------------------------------
_CLASSES: dict[str, type[LatentPrior]] = {
    "normal": StandardNormalPrior,
    "pca": PCAGaussianPrior,
    "gmm": GMMPrior,
    "buffer": DensityBuffer,
    "flow": FlowPrior,
}


def build_prior(name: str, **params: Any) -> LatentPrior:
    """An unfitted prior by name (one of :data:`PRIORS`) with its settings.

    Raises:
        PriorError: unknown name or setting, or an invalid value.
    """
    if name not in _CLASSES:
        raise PriorError(f"prior: unknown prior {name!r} (one of {', '.join(PRIORS)})")
    cls = _CLASSES[name]
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

