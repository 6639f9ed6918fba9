"""``pca``: the study's PCA sampling done correctly (:class:`PCAGaussianPrior`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from vae.priors.base import LatentPrior, PriorError, PriorSpec, _group_key


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


def _same(v):
    return v


PRIOR = PriorSpec(
    "pca", PCAGaussianPrior, label="PCA Gaussian",
    description="Gaussian of the latent means per gamma (the study's PCA sampling, done "
    "correctly)", color="#9467bd",
    settings=(("n_components", "pca_components", _same), ("aggregate", "pca_aggregate", _same)),
    order=20)
