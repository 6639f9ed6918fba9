"""``neg_elbo``: -ELBO in nats with the decoder likelihood implied by the training loss
(see :mod:`pipelines.anomaly.scores`)."""

from __future__ import annotations

import math

import numpy as np

from pipelines.anomaly.scores.base import Batch, Score, decoder_variance


def score(state, batch: Batch) -> np.ndarray:
    model, vp = batch.model, batch.vp
    p = int(np.prod(model.input_shape))
    if model.config.recon == "bce":
        return p * vp.recon + vp.kl
    s2 = decoder_variance(model)
    if math.isnan(s2):
        return np.full(vp.recon.shape, np.nan)
    return p * vp.recon / (2.0 * s2) + 0.5 * p * math.log(2.0 * math.pi * s2) + vp.kl


SCORE = Score("neg_elbo", "-ELBO", "#17becf",
              "-ELBO in nats with the Gaussian decoder variance implied by the training loss, "
              "s^2 = b P / (2 a D), at z = mu_z: SSE/(2 s^2) + P/2 log(2 pi s^2) + KL.", score,
              order=20)
