"""The VAE loss: reconstruction + weighted KL, returned with all its parts.

For q(z|x) = N(mu, diag sigma^2) and the prior p(z) = N(0, I) the KL divergence has the
closed form (Kingma & Welling 2014, "Auto-Encoding Variational Bayes", appendix B;
seed 002 chapter 1)

    KL(q || p) = sum_j 1/2 (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2).

The study reduced both terms by their mean (docs/reference.md section 1): the reconstruction
error is averaged over batch and matrix elements, the KL over batch *and latent
dimensions*, and the loss was

    L = MSE + lambda * mean KL,   lambda = 3.5e-4          (``form="lambda"``)

The beta-VAE form (1 - beta) * MSE + beta * mean KL is accepted as an alternative
(``form="beta"``). Occupancy grids use the binary cross-entropy instead of the MSE.
The KL weight can be ramped up linearly over the first epochs (KL warm-up).

On distance matrices two more terms can be added (:mod:`vae.physical`): the overlap
penalty of the decoded configuration, the Chamfer distance between sorted distance
rows, the LJ energy term, the gravity term and the batch's pair-distance and height
distributions (``LossConfig.overlap_weight``, ``chamfer_weight``, ``energy_weight``,
``gravity_weight``, ``pr_weight``, ``height_weight``, ``energy_dist_weight``,
``box_weight``, ``placed_height_weight``, ``thermal_profile_weight``);
``recon`` stays the MSE. With ``LossConfig.match_slots`` the optimised reconstruction
error and every term that pairs decoded with true particles see the decoded particles
matched to the true ones (:func:`vae.matching.match_slots`), while ``recon`` reports the
sorted-matrix MSE as decoded.
"""

from __future__ import annotations

from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor

from vae.config import LossConfig
from vae.matching import match_slots, permute_slots
from vae.models import VAEOutput
from vae.physical import (
    align_rigid,
    box_loss,
    energy_distribution_loss,
    energy_loss,
    gravity_loss,
    height_distribution_loss,
    overlap_penalty,
    pair_distance_matrix,
    pair_distribution_loss,
    placed_height_loss,
    row_chamfer,
    thermal_profile_loss,
)

__all__ = ["LossParts", "kl_standard_normal", "kl_weight", "reconstruction_error", "vae_loss"]


class LossParts(NamedTuple):
    """All parts of the loss of one batch (0-d tensors).

    Attributes:
        total: the optimised loss, a * recon + b * kl (+ the weighted overlap, Chamfer
            and energy terms).
        recon: mean reconstruction error (MSE in input units^2, or BCE in nats/pixel).
        kl: mean KL per latent dimension and sample, nats.
        kl_weight: b, the weight the KL entered ``total`` with (after warm-up).
    """

    total: Tensor
    recon: Tensor
    kl: Tensor
    kl_weight: float


def kl_standard_normal(mu_z: Tensor, logvar_z: Tensor) -> Tensor:
    """Elementwise KL(N(mu, exp(logvar)) || N(0, 1)) = 1/2 (mu^2 + exp(logvar) - 1 - logvar).

    Kingma & Welling 2014, appendix B. Args and result: (B, D) tensors, nats.
    """
    return 0.5 * (mu_z.pow(2) + logvar_z.exp() - 1.0 - logvar_z)


def kl_weight(cfg: LossConfig, epoch: int | None = None) -> tuple[float, float]:
    """(reconstruction weight a, KL weight b) at a 1-based ``epoch`` (None: no warm-up).

    ``lambda`` form: a = 1, b = lambda; ``beta`` form: a = 1 - beta, b = beta; with a
    warm-up of W epochs b is multiplied by min(1, epoch / W).
    """
    a, b = (1.0, cfg.weight) if cfg.form == "lambda" else (1.0 - cfg.weight, cfg.weight)
    if cfg.kl_warmup_epochs > 0 and epoch is not None:
        b *= min(1.0, epoch / cfg.kl_warmup_epochs)
    return a, b


def reconstruction_error(out: VAEOutput, x: Tensor, kind: str = "mse") -> Tensor:
    """Mean reconstruction error over batch and elements: MSE, or BCE (computed from the
    logits when the model provides them)."""
    if kind == "mse":
        return F.mse_loss(out.x_hat, x)
    if kind == "bce":
        if out.logits is not None:
            return F.binary_cross_entropy_with_logits(out.logits, x)
        return F.binary_cross_entropy(out.x_hat.clamp(1e-7, 1 - 1e-7), x)
    raise ValueError(f"kind: must be 'mse' or 'bce', got {kind!r}")


def vae_loss(out: VAEOutput, x: Tensor, cfg: LossConfig, *, recon: str = "mse",
             epoch: int | None = None, scale: float = 1.0, coords: Tensor | None = None,
             gamma: Tensor | None = None, box: float | None = None,
             placement_seed: int = 0) -> LossParts:
    """The loss of a batch.

    Args:
        out: the model's output for ``x``.
        x: the batch, shape of ``out.x_hat``.
        cfg: loss settings (form, weight, warm-up).
        recon: ``mse`` or ``bce``.
        epoch: 1-based epoch, for the KL warm-up (None: full weight).
        scale: the input length unit in sigma (for the overlap, energy and gravity terms).
        coords: (B, N, 2) true positions in the sort order of ``x``, input units, box
            frame (for the gravity, box and height terms).
        gamma: (B,) field strengths (for the gravity and the per-gamma batch terms).
        box: the box side L, sigma (for the box and placed-height terms).
        placement_seed: the thermal placement's seed of the placed-height term.
    """
    a, b = kl_weight(cfg, epoch)
    r = reconstruction_error(out, x, recon)
    kl = kl_standard_normal(out.mu_z, out.logvar_z).mean()
    r_opt = r  # the optimised reconstruction error
    if cfg.match_slots:  # decoded particles in the order of the true ones they match
        if out.coords is None or coords is None:
            raise ValueError("match_slots needs decoded positions (out.coords) and the "
                             "true positions (coords)")
        c_m = permute_slots(out.coords, match_slots(out.coords, coords))
        out = out._replace(x_hat=pair_distance_matrix(c_m).unsqueeze(1), coords=c_m)
        r_opt = reconstruction_error(out, x, recon)
    total = a * r_opt + b * kl
    if cfg.overlap_weight > 0:
        total = total + cfg.overlap_weight * overlap_penalty(out.x_hat * scale,
                                                             cfg.overlap_radius)
    if cfg.chamfer_weight > 0:
        total = total + cfg.chamfer_weight * row_chamfer(out.x_hat, x)
    if cfg.energy_weight > 0:  # input units -> sigma
        total = total + cfg.energy_weight * energy_loss(
            out.x_hat * scale, x * scale, cfg.energy_mode, cfg.energy_kt, cfg.energy_clip)
    placed_terms = {name for name, w in (("gravity", cfg.gravity_weight),
                                         ("box", cfg.box_weight),
                                         ("height", cfg.height_weight),
                                         ("placed height", cfg.placed_height_weight),
                                         ("thermal profile", cfg.thermal_profile_weight))
                    if w > 0}
    if placed_terms:
        missing = [what for what, absent in (
            ("decoded positions (out.coords)", out.coords is None),
            ("the true positions (coords)", coords is None),
            ("gamma", bool(placed_terms & {"gravity", "placed height", "thermal profile"})
             and gamma is None),
            ("the box", bool(placed_terms & {"box", "placed height", "thermal profile"})
             and box is None))
            if absent]
        if missing:
            raise ValueError(f"the {' and '.join(sorted(placed_terms))} term(s) need "
                             f"{', '.join(missing)}")
        c_true = coords * scale
    if placed_terms & {"gravity", "box", "height", "thermal profile"}:  # aligned once
        c_hat = align_rigid(out.coords * scale, c_true)
    if cfg.gravity_weight > 0:
        total = total + cfg.gravity_weight * gravity_loss(c_hat, c_true, gamma,
                                                          cfg.energy_kt, aligned=True)
    if cfg.pr_weight > 0:
        total = total + cfg.pr_weight * pair_distribution_loss(out.x_hat * scale, x * scale,
                                                               gamma)
    if cfg.energy_dist_weight > 0:
        total = total + cfg.energy_dist_weight * energy_distribution_loss(
            out.x_hat * scale, x * scale, gamma, cfg.energy_clip)
    if cfg.box_weight > 0:
        total = total + cfg.box_weight * box_loss(c_hat, c_true, box, aligned=True)
    if cfg.height_weight > 0:
        total = total + cfg.height_weight * height_distribution_loss(c_hat, c_true, gamma,
                                                                     aligned=True)
    if cfg.placed_height_weight > 0:
        total = total + cfg.placed_height_weight * placed_height_loss(
            out.coords * scale, c_true, gamma, box, cfg.energy_kt, seed=placement_seed,
            n_draws=cfg.placed_height_draws)
    if cfg.thermal_profile_weight > 0:
        total = total + cfg.thermal_profile_weight * thermal_profile_loss(
            c_hat, c_true, gamma, box, cfg.energy_kt)
    return LossParts(total, r, kl, b)

