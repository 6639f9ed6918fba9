"""The model's likelihood of a configuration: the importance-weighted bound (IWAE).

A VAE defines p(x) = int p(x|z) p(z) dz with p(z) = N(0, I). The encoder's
q(z|x) = N(mu, diag sigma^2) serves as the importance distribution:

    log p(x) >= L_K(x) = E[ log (1/K) sum_k w_k ],   w_k = p(x|z_k) p(z_k) / q(z_k|x),
    z_k ~ q(z|x) independently                        (Burda, Grosse & Salakhutdinov 2016)

L_1 is the ELBO, L_K grows with K and tends to log p(x) as K -> infinity. The
estimate of L_K from one set of K draws is what this module returns, with its Monte
Carlo standard error (from the spread of the K log-weights via the delta method) and
the effective sample size of the weights, ESS = (sum w)^2 / sum w^2, which says how
far the bound is from converged (ESS close to 1: a few draws dominate).

The decoder likelihood is the one the training loss implies, as for the plug-in
``neg_elbo`` score of :mod:`pipelines.anomaly.scores.neg_elbo`: a loss a * MSE + b * mean KL
(element-mean MSE over P inputs, KL averaged over D latent dimensions) is
proportional to -ELBO for p(x|z) = N(x_hat(z), s^2 I) with s^2 = b P / (2 a D)
(:func:`decoder_variance`); grid models use the Bernoulli likelihood of their
pixels. Extra loss terms (overlap penalty, Chamfer) are not part of the likelihood.

Draws are seeded per configuration (the master seed and the configuration's index),
so results do not depend on the batch size or on which configurations are scored
together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from vae.checkpoint import TrainedVAE
from vae.loss import kl_weight

__all__ = ["IWAEResult", "decoder_variance", "iwae_bound", "iwae_from_log_weights"]

_LOG_2PI = math.log(2.0 * math.pi)


def decoder_variance(model: TrainedVAE) -> float:
    """s^2 = b P / (2 a D): the Gaussian decoder variance (input units^2) for which the
    training loss a * MSE + b * mean KL is proportional to -ELBO; NaN if b = 0."""
    a, b = kl_weight(model.config.loss)
    p = int(np.prod(model.input_shape))
    d = int(model.model.latent_dim)
    if b <= 0 or a <= 0:
        return math.nan
    return b * p / (2.0 * a * d)


@dataclass(frozen=True)
class IWAEResult:
    """Per-configuration importance-weighted bound.

    Attributes:
        bound: (M,) the estimate of L_K(x), nats (higher = more likely).
        stderr: (M,) its Monte Carlo standard error, nats.
        ess: (M,) effective sample size of the K importance weights, in [1, K].
        k: the number of draws K.
    """

    bound: np.ndarray
    stderr: np.ndarray
    ess: np.ndarray
    k: int

    @property
    def score(self) -> np.ndarray:
        """-L_K(x), nats: the anomaly score (higher = more anomalous)."""
        return -self.bound


def iwae_from_log_weights(log_w: np.ndarray) -> IWAEResult:
    """L_K, its standard error and the ESS from log-weights (M, K).

    With w_k = exp(log_w_k), L_K = log mean_k w_k; the standard error is that of the
    mean of the w_k (sample sd / sqrt K) carried through the log (delta method),
    sd(w) / (sqrt(K) mean(w)).
    """
    lw = np.asarray(log_w, dtype=np.float64)
    if lw.ndim != 2 or lw.shape[1] < 1:
        raise ValueError(f"log_w: expected shape (M, K), got {lw.shape}")
    k = lw.shape[1]
    top = lw.max(axis=1, keepdims=True)
    w = np.exp(lw - top)  # in (0, 1], the largest exactly 1
    mean = w.mean(axis=1)
    bound = top[:, 0] + np.log(mean)
    sd = w.std(axis=1, ddof=1) if k > 1 else np.full(len(w), np.nan)
    stderr = sd / (math.sqrt(k) * mean)
    ess = w.sum(axis=1) ** 2 / (w ** 2).sum(axis=1)
    return IWAEResult(bound, stderr, ess, k)


def _eps(seed: int, index: int, k: int, d: int) -> np.ndarray:
    """The K standard-normal draws (K, D) of configuration ``index`` under ``seed``."""
    return np.random.default_rng([int(seed), int(index)]).standard_normal((k, d))


@torch.no_grad()
def iwae_bound(model: TrainedVAE, x: np.ndarray, k: int = 64, *, seed: int = 0,
               gamma: float | np.ndarray | None = None, start: int = 0,
               batch_size: int = 4096) -> IWAEResult:
    """Importance-weighted bound L_K(x) of the model's log-likelihood for inputs x.

    Args:
        model: the trained VAE.
        x: (M, *input_shape) network inputs (:meth:`vae.checkpoint.TrainedVAE.inputs`).
        k: importance samples per configuration (K >= 1; K = 1 is the ELBO).
        seed: master seed of the draws; configuration i uses the stream
            (seed, start + i).
        gamma: field strengths (scalar or (M,)) for decoders that take them.
        start: index of x[0] in the full set (so that scoring in pieces gives the same
            draws as scoring at once).
        batch_size: latent vectors decoded per forward pass.

    Returns:
        :class:`IWAEResult`. Raises ValueError for a bad K and when the training loss
        implies no likelihood (KL weight 0).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: need an integer >= 1, got {k!r}")
    k = int(k)
    x = np.asarray(x, dtype=np.float32)
    m = len(x)
    mu, lv = model.encode(x)
    mu64, lv64 = mu.astype(np.float64), lv.astype(np.float64)
    d = mu.shape[1]
    bern = model.config.recon == "bce"
    if not bern:
        s2 = decoder_variance(model)
        if math.isnan(s2):
            raise ValueError("iwae: the training loss has KL weight 0, so it implies no "
                             "decoder likelihood")
    p = int(np.prod(model.input_shape))
    g = None if gamma is None else np.broadcast_to(np.asarray(gamma, np.float64), (m,))
    log_w = np.empty((m, k))
    per = max(1, batch_size // k)  # configurations per decoding pass
    for a in range(0, m, per):
        b = min(m, a + per)
        eps = np.stack([_eps(seed, start + i, k, d) for i in range(a, b)])  # (B, K, D)
        sd = np.exp(0.5 * lv64[a:b])[:, None, :]
        z = mu64[a:b, None, :] + sd * eps
        gz = None if g is None else np.repeat(g[a:b], k)
        xh = model.decode(z.reshape(-1, d).astype(np.float32), batch_size=len(z) * k,
                          gamma=gz).astype(np.float64).reshape(b - a, k, p)
        xf = x[a:b].reshape(b - a, 1, p).astype(np.float64)
        if bern:
            q = np.clip(xh, 1e-7, 1 - 1e-7)
            log_px = (xf * np.log(q) + (1 - xf) * np.log1p(-q)).sum(axis=2)
        else:
            log_px = -((xf - xh) ** 2).sum(axis=2) / (2.0 * s2) - 0.5 * p * (_LOG_2PI
                                                                             + math.log(s2))
        log_pz = -0.5 * (z ** 2).sum(axis=2) - 0.5 * d * _LOG_2PI
        log_qz = -0.5 * (eps ** 2 + lv64[a:b, None, :] + _LOG_2PI).sum(axis=2)
        log_w[a:b] = log_px + log_pz - log_qz
    return iwae_from_log_weights(log_w)
