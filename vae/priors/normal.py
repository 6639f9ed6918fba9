"""``normal``: z ~ N(0, I), the training prior (:class:`StandardNormalPrior`)."""

from __future__ import annotations

import numpy as np

from vae.priors.base import LatentPrior, PriorSpec


class StandardNormalPrior(LatentPrior):
    """z ~ N(0, I): the prior the VAE was trained with. Independent of gamma (which
    is still checked against the trained gammas)."""

    name = "normal"

    def _fit(self, mu, logvar, gamma, *, validation, progress) -> None:
        self.fit_info = {"n_train": int(mu.shape[0])}

    def _sample(self, n, gamma, rng) -> np.ndarray:
        return rng.standard_normal((n, self.latent_dim))


PRIOR = PriorSpec("normal", StandardNormalPrior, label="N(0, I)",
                  description="z ~ N(0, I), the training prior", color="#7f7f7f", order=10)
