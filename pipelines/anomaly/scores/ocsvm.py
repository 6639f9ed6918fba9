"""``ocsvm``: a one-class SVM (RBF, gamma='scale') on the training latent means."""

from __future__ import annotations

import numpy as np

from pipelines.anomaly.scores.base import Batch, FitData, Score


def fit(data: FitData):
    from sklearn.svm import OneClassSVM

    mu = np.asarray(data.vp.mu_z, dtype=np.float64)
    return OneClassSVM(kernel="rbf", gamma="scale", nu=data.cfg.ocsvm_nu).fit(mu)


def score(state, batch: Batch) -> np.ndarray:
    return -state.decision_function(np.asarray(batch.vp.mu_z, dtype=np.float64))


SCORE = Score("ocsvm", "1-SVM", "#8c564b",
              "minus the decision function of a one-class SVM (RBF) on training latent means.",
              score, fit, order=50)
