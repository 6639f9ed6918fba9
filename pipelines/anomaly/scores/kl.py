"""``kl``: KL(q(z|x) || N(0, I)) summed over the latent dimensions, nats."""

from __future__ import annotations

import numpy as np

from pipelines.anomaly.scores.base import Batch, Score


def score(state, batch: Batch) -> np.ndarray:
    return batch.vp.kl


SCORE = Score("kl", "KL", "#9467bd",
              "KL(q(z|x) || N(0, I)) summed over latent dimensions, nats.", score, order=30)
