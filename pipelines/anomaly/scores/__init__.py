"""Anomaly scores per configuration (higher = more anomalous).

VAE scores (from one deterministic pass: z = mu_z(x), x_hat = decode(mu_z)):

* ``mse``: the study's score, mean over the P matrix elements of (x - x_hat)^2, in
  input units (normalised distances squared); BCE per pixel for occupancy-grid models.
* ``kl``: KL(q(z|x) || N(0, I)) summed over the D latent dimensions, nats
  (closed form, :func:`vae.loss.kl_standard_normal`).
* ``neg_elbo``: -ELBO in nats with the decoder likelihood *implied by the training
  loss*. Training minimised a R + b KL_mean with R the element-mean MSE and KL_mean
  the KL averaged over the D dimensions (:func:`vae.loss.kl_weight`); this is
  proportional to -ELBO for a Gaussian decoder N(x_hat, s^2 I) with
  s^2 = b P / (2 a D). So

      -ELBO(x) = SSE / (2 s^2) + (P / 2) log(2 pi s^2) + KL_sum,

  with SSE = P * mse, evaluated at z = mu_z (a plug-in for the expectation over q;
  deterministic, so scores are reproducible). For the study's lambda = 3.5e-4, P = 900,
  D = 40: s = 0.063 normalised units (0.89 sigma at L = 10). Grid models use the
  Bernoulli likelihood: -ELBO = P * BCE + KL_sum. Undefined (NaN) when b = 0.

Scores fitted on the model's *training split* (never on test data):

* ``mahalanobis``: sqrt((mu - m)^T C^-1 (mu - m)) of the latent mean, with m, C the
  mean and covariance of the training latent means (C^-1 a pseudo-inverse).
* ``ocsvm``: minus the decision function of a one-class SVM (RBF, gamma='scale') on
  training latent means.
* ``pca``: mean squared residual of the flattened matrix (upper triangle of the
  sorted distance matrix; other representations: the flattened input) outside the
  span of the leading principal components of the training matrices. No VAE.
* ``iforest``: minus the isolation-forest ``score_samples`` on the same features. No VAE.
* ``energy``: the physical check. U_g(x) = sum_{i<j} u(r_ij) + g sum_i y_i under the
  training potential (close pairs never skipped) at each training gamma g; the score
  is min_g |U_g(x) - <U_g>| / sd(U_g), mean and sd over the training configurations
  at gamma g: "how atypical is this energy for the most compatible training gamma"
  (two-sided: too-low energies, e.g. compressed configurations, are atypical too).
  Depends only on positions, so it cannot see missing-data sets.

Registry: one module per score in this package, each defining ``SCORE``, a
:class:`~pipelines.anomaly.scores.base.Score` (name, label, colour, description, its
``fit`` on the training data and its ``score``). :data:`SCORE_INFO` collects them in
table order; the anomaly test, its tables, figures and report read it. Adding a score
is one new module here plus its test.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mcsim.shared import discover
from pipelines.anomaly.scores.base import (
    Batch,
    FitData,
    Score,
    VAEPass,
    decoder_variance,
    matrix_features,
    vae_pass,
)
from pipelines.anomaly.scores.energy import EnergyReference

__all__ = [
    "SCORES",
    "SCORE_INFO",
    "SCORE_LABELS",
    "Score",
    "FitData",
    "Batch",
    "VAEPass",
    "vae_pass",
    "decoder_variance",
    "matrix_features",
    "EnergyReference",
    "fit_scores",
    "compute_scores",
]

#: every score, by name, in table order
SCORE_INFO: dict[str, Score] = discover(__name__, "SCORE", Score)
#: Score names, in table order.
SCORES = tuple(SCORE_INFO)
#: Short labels for tables and figures.
SCORE_LABELS = {s.name: s.label for s in SCORE_INFO.values()}


def fit_scores(data: FitData) -> dict[str, Any]:
    """Each score's fitted state (None for scores with nothing to fit), by name."""
    return {s.name: None if s.fit is None else s.fit(data) for s in SCORE_INFO.values()}


def compute_scores(states: dict[str, Any], batch: Batch) -> dict[str, np.ndarray]:
    """Every score of a batch (float64, (M,) each), in table order."""
    return {s.name: np.asarray(s.score(states[s.name], batch), dtype=np.float64)
            for s in SCORE_INFO.values()}
