"""``pca``: PCA reconstruction error of the flattened matrix (no VAE)."""

from __future__ import annotations

import numpy as np

from pipelines.anomaly.scores.base import Batch, FitData, Score


def fit(data: FitData):
    from sklearn.decomposition import PCA

    feat = data.features
    k = int(min(data.cfg.pca_components, feat.shape[1], feat.shape[0] - 1))
    return PCA(n_components=k, random_state=data.cfg.seed).fit(feat)


def score(state, batch: Batch) -> np.ndarray:
    rec = state.inverse_transform(state.transform(batch.features))
    return ((batch.features - rec) ** 2).mean(axis=1)


SCORE = Score("pca", "PCA", "#ff7f0e",
              "PCA reconstruction error of the flattened sorted distance matrix (training "
              "PCA, no VAE).", score, fit, order=60)
