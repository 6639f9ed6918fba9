"""``mse``: the study's score, the element-mean (x - x_hat)^2 in input units (BCE per
pixel for occupancy-grid models)."""

from __future__ import annotations

import numpy as np

from pipelines.anomaly.scores.base import Batch, Score


def score(state, batch: Batch) -> np.ndarray:
    return batch.vp.recon


SCORE = Score("mse", "MSE", "#1f77b4",
              "mean squared error between the input matrix and decode(mu_z), input units "
              "(normalised distances); the study's score.", score, order=10)
