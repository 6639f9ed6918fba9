"""``gmm``: a Gaussian mixture fitted to the latent means of each gamma (:class:`GMMPrior`)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from vae.priors.base import LatentPrior, PriorError, PriorSpec, _check_seed


class GMMPrior(LatentPrior):
    """A Gaussian mixture on the latent means of each trained gamma (scikit-learn
    ``GaussianMixture``, EM from k-means++ initialisation seeded by ``seed``).
    gamma=None samples the mixture of the per-gamma mixtures, weighted by the
    training counts. Sampling is done here (component by weight, then the Cholesky
    factor times N(0, I), one matrix product per component) from the generator of
    :meth:`sample`.

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
        # z = mu_c + L_c eps, one matrix product per component (the draws of comp and
        # eps are those of the per-sample form; only the summation order may differ)
        out = np.empty((n, self.latent_dim))
        order = np.argsort(comp, kind="stable")
        bounds = np.searchsorted(comp[order], np.arange(w.size + 1))
        for c in range(w.size):
            sel = order[bounds[c]:bounds[c + 1]]
            if sel.size:
                out[sel] = eps[sel] @ self._chol[i][c].T + self._means[i][c]
        return out

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


def _same(v):
    return v


PRIOR = PriorSpec(
    "gmm", GMMPrior, label="GMM", description="Gaussian mixture of the latent means per gamma",
    color="#2ca02c", settings=(("n_components", "gmm_components", _same),), seeded=True,
    order=30)
