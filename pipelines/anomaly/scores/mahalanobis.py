"""``mahalanobis``: distance of the latent mean from the training latent means."""

from __future__ import annotations

import numpy as np

from pipelines.anomaly.scores.base import Batch, FitData, Score


def fit(data: FitData) -> tuple[np.ndarray, np.ndarray]:
    """(mean, pseudo-inverse covariance) of the training latent means."""
    mu = np.asarray(data.vp.mu_z, dtype=np.float64)
    cov = np.atleast_2d(np.cov(mu, rowvar=False))
    return mu.mean(axis=0), np.linalg.pinv(cov, hermitian=True)


def score(state, batch: Batch) -> np.ndarray:
    mean, prec = state
    d = np.asarray(batch.vp.mu_z, dtype=np.float64) - mean
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, prec, d), 0.0))


SCORE = Score("mahalanobis", "Mahalanobis", "#e377c2",
              "Mahalanobis distance of mu_z from the training latent means.", score, fit,
              order=40)
