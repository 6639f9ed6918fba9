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
* ``iwae``: -L_K(x) in nats, the importance-weighted bound of the model's
  log-likelihood with K = ``iwae_k`` draws from q(z|x) (:func:`vae.likelihood.iwae_bound`,
  Burda et al. 2016), with the same decoder likelihood as ``neg_elbo``. L_1 is the
  ELBO and L_K -> log p(x) as K grows, so this is the model's likelihood, where
  ``neg_elbo`` is a plug-in at z = mu_z. The draws are seeded per configuration from the
  test's seed, so reruns give identical scores. Undefined (NaN) when b = 0.

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mcsim.potentials import Potential, total_energy
from vae.checkpoint import TrainedVAE
from vae.likelihood import decoder_variance, iwae_bound

__all__ = [
    "SCORES",
    "SCORE_INFO",
    "Score",
    "SCORE_LABELS",
    "VAEPass",
    "vae_pass",
    "decoder_variance",
    "vae_scores",
    "iwae_score",
    "matrix_features",
    "ScoreModels",
    "EnergyReference",
]

@dataclass(frozen=True)
class Score:
    """Everything about one anomaly score (an entry of :data:`SCORE_INFO`).

    Attributes:
        name: its key (``anomaly.scores``, tables, ``scores.npz``).
        label: short label for tables and figures.
        color: its colour in figures.
        description: what it is, for the report.
    """

    name: str
    label: str
    color: str
    description: str


#: every score, in table order (computed by :class:`ScoreModels`, :func:`vae_scores`
#: and :class:`EnergyReference`)
SCORE_INFO: dict[str, Score] = {s.name: s for s in (
    Score('mse', 'MSE', '#1f77b4',
          "mean squared error between the input matrix and decode(mu_z), input units "
          "(normalised distances); the study's score."),
    Score('neg_elbo', '-ELBO', '#17becf',
          "-ELBO in nats with the Gaussian decoder variance implied by the training loss, "
          "s^2 = b P / (2 a D), at z = mu_z: SSE/(2 s^2) + P/2 log(2 pi s^2) + KL."),
    Score('iwae', '-IWAE', '#2ca02c',
          "minus the importance-weighted bound L_K of the model's log-likelihood, nats "
          "(K draws from q(z|x), the decoder likelihood of -ELBO; L_1 = ELBO, "
          "L_K -> log p(x) as K grows)."),
    Score('kl', 'KL', '#9467bd',
          "KL(q(z|x) || N(0, I)) summed over latent dimensions, nats."),
    Score('mahalanobis', 'Mahalanobis', '#e377c2',
          "Mahalanobis distance of mu_z from the training latent means."),
    Score('ocsvm', '1-SVM', '#8c564b',
          "minus the decision function of a one-class SVM (RBF) on training latent means."),
    Score('pca', 'PCA', '#ff7f0e',
          "PCA reconstruction error of the flattened sorted distance matrix (training PCA, "
          "no VAE)."),
    Score('iforest', 'IForest', '#bcbd22',
          "isolation-forest anomaly score of the flattened matrix (no VAE)."),
    Score('energy', 'energy', '#d62728',
          "min over training gammas g of |U_g(x) - <U_g>| / sd(U_g), U_g the energy under "
          "the training potential with field g (positions only, no VAE)."),
)}
#: Score names, in table order.
SCORES = tuple(SCORE_INFO)
#: Short labels for tables and figures.
SCORE_LABELS = {s.name: s.label for s in SCORE_INFO.values()}


@dataclass
class VAEPass:
    """One deterministic pass of the VAE over inputs x (M, *input_shape).

    Attributes:
        mu_z, logvar_z: (M, D) posterior mean and log-variance.
        x_hat: (M, *input_shape) decode(mu_z), float32.
        recon: (M,) element-mean reconstruction error (MSE, or BCE for grids).
        kl: (M,) KL summed over latent dimensions, nats.
    """

    mu_z: np.ndarray
    logvar_z: np.ndarray
    x_hat: np.ndarray
    recon: np.ndarray
    kl: np.ndarray


@torch.no_grad()
def vae_pass(model: TrainedVAE, x: np.ndarray, batch_size: int = 1024) -> VAEPass:
    """Encode, decode the mean, and per-configuration reconstruction error and KL."""
    mu, lv = model.encode(x, batch_size)
    x_hat = model.decode(mu, batch_size)
    xf = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    xh = np.asarray(x_hat, dtype=np.float64).reshape(len(x), -1)
    if model.config.recon == "bce":
        p = np.clip(xh, 1e-7, 1 - 1e-7)
        recon = -(xf * np.log(p) + (1 - xf) * np.log1p(-p)).mean(axis=1)
    else:
        recon = ((xf - xh) ** 2).mean(axis=1)
    mu64, lv64 = mu.astype(np.float64), lv.astype(np.float64)
    kl = 0.5 * (mu64 ** 2 + np.exp(lv64) - 1.0 - lv64).sum(axis=1)
    return VAEPass(mu, lv, x_hat, recon, kl)


def vae_scores(model: TrainedVAE, vp: VAEPass) -> dict[str, np.ndarray]:
    """``mse``, ``kl`` and ``neg_elbo`` (see the module docstring) from a pass."""
    p = int(np.prod(model.input_shape))
    if model.config.recon == "bce":
        nelbo = p * vp.recon + vp.kl
    else:
        s2 = decoder_variance(model)
        if math.isnan(s2):
            nelbo = np.full(vp.recon.shape, np.nan)
        else:
            nelbo = p * vp.recon / (2.0 * s2) + 0.5 * p * math.log(2.0 * math.pi * s2) + vp.kl
    return {"mse": vp.recon, "kl": vp.kl, "neg_elbo": nelbo}


def iwae_score(model: TrainedVAE, x: np.ndarray, k: int, *, seed: int,
               start: int = 0) -> np.ndarray:
    """``iwae``: (M,) -L_K(x) in nats for inputs x (M, *input_shape), K = ``k`` draws per
    configuration, configuration i drawn from the stream (seed, start + i)
    (:func:`vae.likelihood.iwae_bound`); NaN when the training loss implies no decoder
    likelihood (KL weight 0)."""
    if model.config.recon != "bce" and math.isnan(decoder_variance(model)):
        return np.full(len(x), np.nan)
    return iwae_bound(model, x, k, seed=seed, start=start).score


def matrix_features(x: np.ndarray) -> np.ndarray:
    """Flattened features of inputs x for the baselines: for (M, 1, N, N) distance
    matrices the upper triangle (M, N(N-1)/2), else the flattened input (M, -1)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 4 and x.shape[1] == 1 and x.shape[2] == x.shape[3]:
        iu = np.triu_indices(x.shape[2], 1)
        return x[:, 0][:, iu[0], iu[1]]
    return x.reshape(len(x), -1)


class ScoreModels:
    """Mahalanobis, one-class SVM, PCA and isolation forest, fitted on training data.

    Args:
        mu_train: (M, D) latent means of training configurations.
        feat_train: (M, F) :func:`matrix_features` of the same configurations.
        pca_components, ocsvm_nu, iforest_trees: model settings.
        seed: random_state of the isolation forest.
    """

    def __init__(self, mu_train: np.ndarray, feat_train: np.ndarray, *,
                 pca_components: int = 10, ocsvm_nu: float = 0.05, iforest_trees: int = 200,
                 seed: int = 0) -> None:
        from sklearn.decomposition import PCA
        from sklearn.ensemble import IsolationForest
        from sklearn.svm import OneClassSVM

        mu = np.asarray(mu_train, dtype=np.float64)
        self.mean = mu.mean(axis=0)
        cov = np.atleast_2d(np.cov(mu, rowvar=False))
        self.prec = np.linalg.pinv(cov, hermitian=True)
        self.ocsvm = OneClassSVM(kernel="rbf", gamma="scale", nu=ocsvm_nu).fit(mu)
        k = int(min(pca_components, feat_train.shape[1], feat_train.shape[0] - 1))
        self.pca = PCA(n_components=k, random_state=seed).fit(feat_train)
        self.iforest = IsolationForest(n_estimators=iforest_trees, random_state=seed
                                       ).fit(feat_train)

    def mahalanobis(self, mu: np.ndarray) -> np.ndarray:
        d = np.asarray(mu, dtype=np.float64) - self.mean
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, self.prec, d), 0.0))

    def scores(self, mu: np.ndarray, feat: np.ndarray) -> dict[str, np.ndarray]:
        """``mahalanobis``, ``ocsvm``, ``pca``, ``iforest`` for latent means (M, D) and
        features (M, F)."""
        mu = np.asarray(mu, dtype=np.float64)
        rec = self.pca.inverse_transform(self.pca.transform(feat))
        return {
            "mahalanobis": self.mahalanobis(mu),
            "ocsvm": -self.ocsvm.decision_function(mu),
            "pca": ((feat - rec) ** 2).mean(axis=1),
            "iforest": -self.iforest.score_samples(feat),
        }


class EnergyReference:
    """The ``energy`` score: per training gamma, the mean and sd of U_g over training
    configurations at that gamma.

    Args:
        positions: (M, N, 2) training configurations, sigma.
        gamma: (M,) their field strengths.
        potential: the training pair potential.
    """

    def __init__(self, positions: np.ndarray, gamma: np.ndarray, potential: Potential) -> None:
        self.potential = potential
        self.gammas = np.unique(np.asarray(gamma, dtype=np.float64))
        self.mean = np.empty(self.gammas.size)
        self.sd = np.empty(self.gammas.size)
        for i, g in enumerate(self.gammas):
            u = total_energy(positions[gamma == g], g, potential)
            self.mean[i], self.sd[i] = float(np.mean(u)), float(np.std(u, ddof=1))
        if np.any(~(self.sd > 0)):
            raise ValueError("energy: need >= 2 distinct training energies per gamma")

    def energies(self, positions: np.ndarray) -> np.ndarray:
        """(M, G) energies U_g of each configuration at each training gamma, epsilon."""
        return np.stack([total_energy(positions, g, self.potential) for g in self.gammas], 1)

    def score(self, positions: np.ndarray) -> np.ndarray:
        """(M,) min_g |U_g - <U_g>| / sd(U_g)."""
        z = np.abs(self.energies(positions) - self.mean) / self.sd
        return z.min(axis=1)
