"""What the anomaly scores share: one deterministic VAE pass, the matrix features of the
baselines, the data a score is fitted on and the batch it scores, and :class:`Score`,
a registry entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vae.checkpoint import CheckpointError, TrainedVAE
from vae.likelihood import decoder_variance

__all__ = ["Score", "FitData", "Batch", "VAEPass", "vae_pass", "decoder_variance",
           "matrix_features"]


@dataclass(frozen=True)
class Score:
    """Everything about one anomaly score (an entry of
    :data:`pipelines.anomaly.scores.SCORE_INFO`).

    Attributes:
        name: its key (``anomaly.scores``, tables, ``scores.npz``).
        label: short label for tables and figures.
        color: its colour in figures.
        description: what it is, for the report.
        score: ``score(state, batch) -> (M,)`` (higher = more anomalous).
        fit: ``fit(data) -> state`` on training data (None: nothing to fit).
        order: its place in tables (``SCORES``).
    """

    name: str
    label: str
    color: str
    description: str
    score: Callable[[Any, Batch], np.ndarray]
    fit: Callable[[FitData], Any] | None = None
    order: int = 0


@dataclass
class FitData:
    """The training configurations a score is fitted on.

    Attributes:
        model: the trained VAE.
        vp: its pass over them.
        features: (M, F) :func:`matrix_features`.
        positions: (M, N, 2) sigma; ``gamma`` (M,).
        cfg: the :class:`pipelines.anomaly.config.AnomalyConfig`.
    """

    model: TrainedVAE
    vp: VAEPass
    features: np.ndarray
    positions: np.ndarray
    gamma: np.ndarray
    cfg: Any


@dataclass
class Batch:
    """Configurations to score: the model, its pass, the features, the positions; the
    network inputs ``x`` and, for scores that draw random numbers, the seed of this
    data (``seed``) and the index of its first configuration in it (``start``), so that
    configuration i uses the stream (seed, start + i) however the data are cut."""

    model: TrainedVAE
    vp: VAEPass
    features: np.ndarray
    positions: np.ndarray
    x: np.ndarray | None = None
    seed: int = 0
    start: int = 0


@dataclass
class VAEPass:
    """One deterministic pass of the VAE over inputs x (M, *input_shape).

    Attributes:
        mu_z, logvar_z: (M, D) posterior mean and log-variance.
        x_hat: (M, *input_shape) decode(mu_z), float32.
        recon: (M,) element-mean reconstruction error (MSE, or BCE for grids).
        kl: (M,) KL summed over latent dimensions, nats.
        gamma: (M,) the field strength the decoder was given, for decoders that take
            gamma (``model.needs_gamma``): per configuration the trained gamma whose
            decoding reconstructs it best, the model's own estimate (an anomaly set
            carries no trustworthy gamma: uniform or corrupted configurations have
            none); None for the other decoders.
    """

    mu_z: np.ndarray
    logvar_z: np.ndarray
    x_hat: np.ndarray
    recon: np.ndarray
    kl: np.ndarray
    gamma: np.ndarray | None = None


@torch.no_grad()
def vae_pass(model: TrainedVAE, x: np.ndarray, batch_size: int = 1024) -> VAEPass:
    """Encode, decode the mean, and per-configuration reconstruction error and KL.
    A decoder that takes gamma decodes at every trained gamma and keeps, per
    configuration, the decoding with the smallest reconstruction error
    (:attr:`VAEPass.gamma`)."""
    mu, lv = model.encode(x, batch_size)
    xf = np.asarray(x, dtype=np.float64).reshape(len(x), -1)

    def error(x_hat: np.ndarray) -> np.ndarray:
        xh = np.asarray(x_hat, dtype=np.float64).reshape(len(x), -1)
        if model.config.recon == "bce":
            p = np.clip(xh, 1e-7, 1 - 1e-7)
            return -(xf * np.log(p) + (1 - xf) * np.log1p(-p)).mean(axis=1)
        return ((xf - xh) ** 2).mean(axis=1)

    g_hat = None
    if model.model.needs_gamma:
        gammas = sorted(model.info.gammas)
        if not gammas:
            raise CheckpointError("this model's decoder takes gamma, but its checkpoint "
                                  "records no trained gamma")
        x_hat = model.decode(mu, batch_size, gamma=gammas[0])
        recon, g_hat = error(x_hat), np.full(len(x), float(gammas[0]))
        for g in gammas[1:]:
            xh = model.decode(mu, batch_size, gamma=g)
            r = error(xh)
            better = r < recon
            x_hat[better], recon[better], g_hat[better] = xh[better], r[better], g
    else:
        x_hat = model.decode(mu, batch_size)
        recon = error(x_hat)
    mu64, lv64 = mu.astype(np.float64), lv.astype(np.float64)
    kl = 0.5 * (mu64 ** 2 + np.exp(lv64) - 1.0 - lv64).sum(axis=1)
    return VAEPass(mu, lv, x_hat, recon, kl, g_hat)


def matrix_features(x: np.ndarray) -> np.ndarray:
    """Flattened features of inputs x for the baselines: for (M, 1, N, N) distance
    matrices the upper triangle (M, N(N-1)/2), else the flattened input (M, -1)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 4 and x.shape[1] == 1 and x.shape[2] == x.shape[3]:
        iu = np.triu_indices(x.shape[2], 1)
        return x[:, 0][:, iu[0], iu[1]]
    return x.reshape(len(x), -1)
