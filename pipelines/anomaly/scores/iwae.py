"""``iwae``: -L_K(x) in nats, the importance-weighted bound of the model's log-likelihood
with K = ``AnomalyConfig.iwae_k`` draws from q(z|x) (:func:`vae.likelihood.iwae_bound`,
Burda et al. 2016), with the same decoder likelihood as ``neg_elbo``. L_1 is the ELBO
and L_K -> log p(x) as K grows, so this is the model's likelihood, where ``neg_elbo``
is a plug-in at z = mu_z. The draws are seeded per configuration from the test's seed
(``Batch.seed``, ``Batch.start``), so reruns give identical scores. Undefined (NaN)
when the KL weight is 0. A decoder that takes gamma is given the configuration's
estimated gamma (:attr:`pipelines.anomaly.scores.base.VAEPass.gamma`)."""

from __future__ import annotations

import math

import numpy as np

from pipelines.anomaly.scores.base import Batch, FitData, Score
from vae.likelihood import decoder_variance, iwae_bound


def fit(data: FitData) -> int:
    """Nothing is fitted: the state is K."""
    return int(data.cfg.iwae_k)


def score(k: int, batch: Batch) -> np.ndarray:
    model = batch.model
    if batch.x is None:
        raise ValueError("iwae: the batch carries no network inputs")
    if model.config.recon != "bce" and math.isnan(decoder_variance(model)):
        return np.full(len(batch.x), np.nan)
    return iwae_bound(model, batch.x, k, seed=batch.seed, start=batch.start,
                      gamma=batch.vp.gamma).score


SCORE = Score("iwae", "-IWAE", "#2ca02c",
              "minus the importance-weighted bound L_K of the model's log-likelihood, nats "
              "(K draws from q(z|x), the decoder likelihood of -ELBO; L_1 = ELBO, "
              "L_K -> log p(x) as K grows).", score, fit, order=25)
