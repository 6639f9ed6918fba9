"""``iforest``: an isolation forest on the flattened matrix (no VAE)."""

from __future__ import annotations

import numpy as np

from pipelines.anomaly.scores.base import Batch, FitData, Score


def fit(data: FitData):
    from sklearn.ensemble import IsolationForest

    return IsolationForest(n_estimators=data.cfg.iforest_trees, random_state=data.cfg.seed
                           ).fit(data.features)


def score(state, batch: Batch) -> np.ndarray:
    return -state.score_samples(batch.features)


SCORE = Score("iforest", "IForest", "#bcbd22",
              "isolation-forest anomaly score of the flattened matrix (no VAE).", score, fit,
              order=70)
