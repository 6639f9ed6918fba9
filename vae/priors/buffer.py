"""``buffer``: Otten et al.'s density buffer (:class:`DensityBuffer`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vae.priors.base import LatentPrior, PriorError, PriorSpec, _check_seed, _rng


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


PRIOR = PriorSpec(
    "buffer", DensityBuffer, label="density buffer",
    description="the encoded training set, z ~ N(mu_i, (alpha sigma_i + smudge)^2)",
    color="#d62728",
    settings=(("alpha", "buffer_alpha", float), ("smudge", "buffer_smudge", float)),
    order=40)
