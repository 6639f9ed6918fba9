"""Latent refinement: a better latent vector for one given configuration.

The encoder's mean mu_z(x) is an *amortised* guess: one network shared by all inputs,
trained to be good on average. For a decoder that places particles
(:mod:`vae.physical`) the gap shows in reconstructions: decode(mu_z) regresses towards
the mean configuration of its neighbourhood, so the energies of reconstructed test
sets are 10-15 % narrower than Monte Carlo's and each configuration's pair energy is
off by 3-4.6 epsilon rms (study data, gamma 0.4-1.0).

:func:`refine_latents` closes that gap the way semi-amortised inference does (Kim et
al. 2018, "Semi-Amortized Variational Autoencoders"; Marino et al. 2018, "Iterative
Amortized Inference"): starting from mu_z(x), each configuration's latent vector takes
``steps`` Adam steps down the model's own training loss for that configuration, the
decoder and the encoder's log-variance held fixed. The loss keeps the training
run's weights but only its *per-configuration* terms (:data:`LOCAL_TERMS`): the
reconstruction error, the KL term (which keeps z where the prior has mass), and the
overlap, energy, gravity, box and thermal-profile terms against that configuration.
The terms on the distribution of a batch (pair-distance, energy and height
distributions, the pooled placed heights) are switched off: a configuration's refined
latent then depends on that configuration only, not on which others share its batch.
The loss is summed over configurations (each one's gradient is its own loss's) and work
goes in chunks of :data:`CHUNK` configurations whatever the caller's batch: the same
inputs give identical outputs, and a configuration refined with other company differs
only by the float32 rounding of another batch shape (~1e-6; test).

Adam at a fixed step size does not lower every configuration's loss (study data, gamma
0.7, one model, 200 steps of 0.03: 0.20 % of them ended above their start, 1.25 % with
``match_slots``, whose assignment jumps): each configuration keeps its end point
only where its loss there, evaluated alone, is not above its loss at the start, so a
refined latent is never worse than mu_z by its own loss.

The result is still the model's output, decode(z*) with z* a latent vector: a
configuration the decoder can produce, judged by the same physics. It costs ``steps``
forward and backward passes per configuration: 37-69 ms per configuration for 200 steps
on one thread with the thermal-profile term, most of it that term (two jobs on 2 cores),
74-137 ms with ``match_slots``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

from vae.config import LossConfig
from vae.loss import vae_loss
from vae.models.base import VAEOutput
from vae.physical import pair_distance_matrix

__all__ = ["LOCAL_TERMS", "CHUNK", "local_loss_config", "refine_latents",
           "refine_for_positions", "configuration_losses"]

#: the per-configuration loss terms refinement keeps (LossConfig weight fields); the
#: batch-distribution terms (pr, energy_dist, height, placed_height) are set to zero
LOCAL_TERMS = ("overlap_weight", "energy_weight", "gravity_weight", "box_weight",
               "thermal_profile_weight", "chamfer_weight")
_BATCH_TERMS = ("pr_weight", "energy_dist_weight", "height_weight", "placed_height_weight")
#: configurations per refinement chunk (fixed: float32 results depend on batch shape)
CHUNK = 256
#: refinement limits accepted by :func:`refine_latents`
MAX_STEPS = 100_000


def local_loss_config(loss: LossConfig, match_slots: bool | None = None) -> LossConfig:
    """The run's loss with its batch-distribution terms switched off and no KL warm-up
    (:data:`LOCAL_TERMS` keep their weights); ``match_slots`` (None: the run's setting)
    compares decoded with true particles in matched order (:mod:`vae.matching`)."""
    ms = loss.match_slots if match_slots is None else bool(match_slots)
    return dataclasses.replace(loss, kl_warmup_epochs=0, match_slots=ms,
                               **{name: 0.0 for name in _BATCH_TERMS})


def refine_latents(model, x: np.ndarray, coords: np.ndarray, gamma: np.ndarray,
                   loss: LossConfig, *, scale: float, box: float, steps: int = 200,
                   lr: float = 0.03, recon: str = "mse",
                   match_slots: bool | None = None,
                   progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Refined latent vectors (M, D) float32 of configurations with inputs ``x``.

    Args:
        model: a :class:`vae.models.VAE` whose decoder places particles
            (``decode_coords``); its parameters are not changed.
        x: (M, 1, N, N) the model's inputs (sorted distance matrices, input units).
        coords: (M, N, 2) the true positions in the inputs' sort order, input units,
            box frame (:func:`vae.data.coordinates`).
        gamma: (M,) field strengths.
        loss: the run's :class:`LossConfig` (:func:`local_loss_config` is applied).
        scale: the input length unit in sigma; box: the box side L, sigma.
        steps: Adam steps per configuration (0: mu_z itself).
        lr: Adam's step size, in latent units.
        recon: the run's reconstruction error kind.
        match_slots: compare each decoded particle with the true one it is matched to
            (:func:`vae.matching.match_slots`) in the reconstruction error and the
            terms that pair particles, instead of slot by slot; None: the run's
            ``loss.match_slots``. About twice the time.
        progress: called with the number of configurations done after each chunk.

    Returns:
        (M, D) float32.
    """
    if not hasattr(model, "decode_coords"):
        raise ValueError("latent refinement needs a decoder that places particles "
                         "(arch 'coord' or 'pair2d')")
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) \
            or not 0 <= steps <= MAX_STEPS:
        raise ValueError(f"steps: must be an integer in [0, {MAX_STEPS}], got {steps!r}")
    if not (isinstance(lr, float | int) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr: must be a positive finite number, got {lr!r}")
    x = np.array(x, np.float32)  # copies: writable, contiguous
    coords = np.array(coords, np.float32)
    gamma = np.array(gamma, np.float32).reshape(-1)
    m = x.shape[0]
    if coords.shape[0] != m or gamma.shape[0] != m:
        raise ValueError(f"x, coords and gamma must hold the same number of configurations, "
                         f"got {m}, {coords.shape[0]}, {gamma.shape[0]}")
    if match_slots is not None and not isinstance(match_slots, bool):
        raise ValueError(f"match_slots: must be a bool or None, got {match_slots!r}")
    cfg = local_loss_config(loss, match_slots)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    keep = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    out = np.empty((m, model.latent_dim), np.float32)
    try:
        for a in range(0, m, CHUNK):
            sl = slice(a, min(m, a + CHUNK))
            out[sl] = _refine_chunk(model, cfg, recon, torch.as_tensor(x[sl], device=device),
                                    torch.as_tensor(coords[sl], device=device),
                                    torch.as_tensor(gamma[sl], device=device),
                                    scale, box, steps, lr)
            if progress is not None:
                progress(sl.stop)
    finally:
        for p, k in zip(model.parameters(), keep, strict=True):
            p.requires_grad_(k)
        model.train(was_training)
    return out


def _refine_chunk(model, cfg: LossConfig, recon: str, x, c, g, scale: float,
                  box: float, steps: int, lr: float) -> np.ndarray:
    with torch.no_grad():
        mu, logvar = model.encode(x)
    z = mu.clone().requires_grad_(True)
    if steps == 0:
        return z.detach().cpu().numpy()
    opt = torch.optim.Adam([z], lr=float(lr))
    b = x.shape[0]
    for _ in range(steps):
        coords = model.decode_coords(z, g)
        x_hat = pair_distance_matrix(coords).unsqueeze(1)  # what model.decode returns
        parts = vae_loss(VAEOutput(x_hat, z, logvar, z, None, coords), x, cfg, recon=recon,
                         scale=scale, coords=c, gamma=g, box=box)
        opt.zero_grad(set_to_none=True)
        (parts.total * b).backward()  # the sum of the configurations' own losses
        opt.step()
    z = z.detach()
    # Adam at a fixed step is not monotone: keep the start where the end is worse
    worse = configuration_losses(model, cfg, recon, x, c, g, z, logvar, scale, box) > \
        configuration_losses(model, cfg, recon, x, c, g, mu, logvar, scale, box)
    return torch.where(worse[:, None], mu, z).cpu().numpy()


@torch.no_grad()
def configuration_losses(model, cfg: LossConfig, recon: str, x, c, g, z, logvar,
                         scale: float, box: float) -> torch.Tensor:
    """(B,) each configuration's loss under ``cfg`` at latents z, one at a time (so
    that no term sees another configuration)."""
    coords = model.decode_coords(z, g)
    x_hat = pair_distance_matrix(coords).unsqueeze(1)
    out = torch.empty(z.shape[0], dtype=torch.float64)
    for k in range(z.shape[0]):
        s = slice(k, k + 1)
        out[k] = vae_loss(VAEOutput(x_hat[s], z[s], logvar[s], z[s], None, coords[s]), x[s],
                          cfg, recon=recon, scale=scale, coords=c[s], gamma=g[s],
                          box=box).total.item()
    return out


def refine_for_positions(tv, positions: np.ndarray, gamma: float | np.ndarray, *,
                         steps: int = 200, lr: float = 0.03,
                         match_slots: bool | None = None,
                         progress: Callable[[int], None] | None = None) -> np.ndarray:
    """:func:`refine_latents` for configurations (M, N, 2) in sigma of a
    :class:`vae.checkpoint.TrainedVAE`: its inputs, sort order, scaling and loss.
    ``gamma``: scalar or (M,)."""
    from vae.checkpoint import CheckpointError
    from vae.data import coordinates, length_scale

    if not tv.places_particles:
        raise CheckpointError(f"latent refinement needs an architecture that places "
                              f"particles; {tv.config.model.arch!r} does not")
    tv.require_distance("latent refinement")
    x = tv.inputs(positions, tv.info.box)
    cfg = tv.config
    c = coordinates(np.asarray(positions), tv.info.box, cfg.data.sort, cfg.data.scaling)
    g = np.broadcast_to(np.asarray(gamma, np.float32), (len(x),))
    return refine_latents(tv.model, x, c, g, cfg.loss,
                          scale=length_scale(cfg.data.scaling, tv.info.box),
                          box=tv.info.box, steps=steps, lr=lr, recon=cfg.recon,
                          match_slots=match_slots, progress=progress)
