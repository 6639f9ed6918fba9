"""The physical VAE: decoded matrices that are distance matrices of 2D configurations.

``CoordVAE`` (``arch="coord"``) keeps the design card's shape (a Conv2D encoder on
sorted distance matrices, a decoded sorted distance matrix, then ``reconstruct``), but
its decoder outputs one 2D position c_i per sort slot and returns their pairwise
distances

    D_ij = |c_i - c_j|   (input units),   D_ii = 0,

so every decoded matrix is symmetric, zero-diagonal and an exact 2D Euclidean distance
matrix by construction: the Gram step of :mod:`reconstruct` recovers c up to a rigid
motion at round-off (its residual is ~1e-7 in float32). With ``decoder_gamma`` the
decoder also receives the field gamma, D = D(z, gamma).

Loss terms that use the decoded configuration (added to the study's MSE + lambda KL by
:func:`vae.loss.vae_loss`; weights in :class:`vae.config.LossConfig`):

* :func:`overlap_penalty`: sum over pairs of relu(r0 - r_ij)^2 (r in sigma), a soft
  core that only acts below r0 (default 0.95 sigma; LJ pairs in the Monte Carlo data
  essentially never come closer than ~0.85 sigma at kT = 0.75).
* :func:`row_chamfer`: a permutation-invariant, frame-independent reconstruction term
  (seed 003: the Chamfer distance). Each particle i is described by its sorted row of
  distances to the other particles, a point in R^(N-1); the Chamfer distance between
  the N descriptor points of the decoded and of the true configuration,

      1/2 [ mean_i min_j |R^_i - R_j|^2 + mean_j min_i |R^_i - R_j|^2 ] / (N - 1),

  is unchanged when the slots of either configuration are permuted, so it does not
  average two particles whose sort order swaps between similar configurations.
* :func:`energy_loss`: the Lennard-Jones pair energy of the decoded configuration
  (:func:`soft_lj`, :func:`pair_energy_sum`; sigma = epsilon = 1), in one of the modes
  of :data:`vae.config.ENERGY_MODES`: ``match`` the error of the configuration's energy
  per particle against that of the true configuration (both computed the same way), in
  units of kT; ``particle`` the same per sort slot (each particle's energy
  e_i = sum_j u(r_ij)), both through the robust square rho(x) = 2 (sqrt(1 + x^2) - 1);
  ``boltzmann`` the Boltzmann-like beta * U / N of the decoded configuration alone.
  Only the pair part: the coord decoder's positions are in no box frame (the placement
  puts them in the box afterwards), so gamma * sum y has no meaning before placement.
* :func:`gravity_loss`: what the gravitational energy can mean for such positions. The
  decoded slot positions are brought onto the true configuration's (box frame, same
  sort order) by the best rigid motion, reflections included (:func:`align_rigid`,
  2D Procrustes in closed form), and the configuration's gravitational energy *above
  its lowest particle*, E_g = gamma sum_i (y_i - min_j y_j), is matched to the true
  one's: mean_b rho(beta (E^_g - E_g) / N) (rho as for the energy). It is the part of
  gamma sum y that the shape decides (the thermal placement adds a height offset that
  depends on the shape only through its extent), so it penalises decoded shapes that
  are too tall where the fluid lies flat on the floor.

* :func:`pair_distribution_loss` and :func:`height_distribution_loss`: terms on the
  *set* of configurations of a batch, not on each one. A decoder trained to
  reconstruct each configuration regresses to the conditional mean, and mean shapes
  are too compact and too ordered: the batch's pair-distance distribution p(r) and
  height profile rho(y) drift from the data's even when every configuration's energy
  matches. These terms are the 1D Wasserstein distance W1 between the batch's decoded
  and true pair distances (all pairs of the configurations of one gamma, sigma), and
  between their heights above the lowest particle (decoded positions aligned as for
  the gravity term), per gamma in the batch: the quantities the generation targets
  measure. In 1D, W1 between two equal-size samples is the mean absolute difference of
  their sorted values, differentiable through the sort. :func:`energy_distribution_loss`
  does the same for the configurations' pair energies per particle. Being a distance
  between finite samples, the value depends on the batch size (two samples of the same
  distribution are ~n^-1/2 apart), so training (batches of 128) and evaluation
  (batches of 1024) losses differ by that much even for a perfect decoder.
* :func:`box_loss`: the squared distance by which the decoded positions, aligned to the
  true ones, leave the box (a decoded shape wider than the box cannot be placed).
* :func:`placed_height_loss`: the batch's height profile rho(y) as the product makes it.
  The generated configurations are the decoded shapes put in the box by the thermal
  placement (:mod:`reconstruct.placement`), which draws each shape's orientation and
  height from its conditional Boltzmann law; their rho(y) depends on the shape through
  that law, which :func:`height_distribution_loss` (heights above the lowest particle,
  in the true configuration's frame) does not see. This term places the detached
  decoded shapes with that rule, keeps the drawn rotation theta and COM height y0, and
  recomputes the heights y_i = sin(theta) q_x + cos(theta) q_y + y0 (q: positions about
  their centroid) differentiably in the decoded positions; the loss is the W1 between
  these heights and the true box-frame heights, per gamma. The gradient moves the
  shape at a fixed placement, so it pulls particles up or down inside the drawn
  orientation; each step draws new placements (``seed``).

Denoising (seed 000) is done by the training loop (:mod:`vae.training`): the encoder
sees the distance matrix of positions displaced by N(0, s^2) per axis, the loss
compares with the clean matrix.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vae.config import ENERGY_MODES
from vae.models.base import VAE, VAEOutput, _conv_encoder, _down_sizes, _mlp
from vae.models.pair import PairVAE

__all__ = ["CoordVAE", "ProjectedPairVAE", "planar_coordinates", "pair_distance_matrix",
           "overlap_penalty", "row_chamfer", "sorted_rows", "ENERGY_MODES", "LJ_CUTOFF",
           "soft_lj", "pair_energy_sum", "particle_energies", "energy_loss", "align_rigid",
           "gravity_loss", "wasserstein_1d", "pair_distribution_loss",
           "height_distribution_loss", "energy_distribution_loss", "box_loss",
           "placed_height_loss", "thermal_profile", "thermal_profile_loss"]

#: The data's LJ cutoff, sigma (cut, not shifted; docs/reference.md section 1).
LJ_CUTOFF = 3.0


def pair_distance_matrix(coords: Tensor) -> Tensor:
    """(B, N, 2) positions -> (B, N, N) distances, exactly zero on the diagonal.

    The square root is taken of the squared distance clamped at 1e-12 so that the
    gradient stays finite for coincident points (and is masked on the diagonal)."""
    diff = coords[:, :, None, :] - coords[:, None, :, :]
    d2 = (diff * diff).sum(-1)
    n = coords.shape[1]
    off = ~torch.eye(n, dtype=torch.bool, device=coords.device)
    return torch.where(off, torch.sqrt(d2.clamp_min(1e-12)), torch.zeros_like(d2))


def overlap_penalty(d_sigma: Tensor, radius: float = 0.95) -> Tensor:
    """Mean over configurations of sum_{i<j} relu(radius - r_ij)^2, sigma^2.

    Args:
        d_sigma: (B, N, N) or (B, 1, N, N) distance matrices in sigma (zero diagonal).
        radius: r0, sigma.
    """
    d = d_sigma.reshape(d_sigma.shape[0], d_sigma.shape[-2], d_sigma.shape[-1])
    n = d.shape[-1]
    iu = torch.triu_indices(n, n, 1, device=d.device)
    v = d[:, iu[0], iu[1]]
    return F.relu(radius - v).pow(2).sum(1).mean()


def soft_lj(r: Tensor, r_clip: float = 0.9, cutoff: float | None = LJ_CUTOFF) -> Tensor:
    """Lennard-Jones pair energy with a linear core, epsilon, for distances r in sigma:

        u(r) = 4 (r^-12 - r^-6)                     r_clip <= r < cutoff
        u(r) = u(r_clip) + u'(r_clip) (r - r_clip)   r < r_clip
        u(r) = 0                                     r >= cutoff (cut, not shifted)

    with u'(r) = -48 r^-13 + 24 r^-7. Equal to :func:`mcsim.potentials.pair_energy` (lj,
    the same cutoff) above r_clip; below it the energy keeps rising with the slope at
    r_clip (u(0.9) = 6.6, u(0) = 131 for r_clip = 0.9), so value and gradient stay finite
    down to coincident points. The LJ branch is evaluated at max(r, r_clip), so no
    r^-12 of a tiny distance ever enters the graph.
    """
    rs = r.clamp_min(r_clip)
    inv6 = rs.pow(-6)
    u_lj = 4.0 * (inv6 * inv6 - inv6)
    c6 = r_clip ** -6.0
    u_c = 4.0 * (c6 * c6 - c6)
    du_c = (-48.0 * c6 * c6 + 24.0 * c6) / r_clip
    u = torch.where(r < r_clip, u_c + du_c * (r - r_clip), u_lj)
    if cutoff is not None:
        u = torch.where(r < cutoff, u, torch.zeros_like(u))
    return u


def _as_matrices(d: Tensor) -> Tensor:
    return d.reshape(d.shape[0], d.shape[-2], d.shape[-1])


def pair_energy_sum(d_sigma: Tensor, r_clip: float = 0.9,
                    cutoff: float | None = LJ_CUTOFF) -> Tensor:
    """Pair energy U_pair = sum_{i<j} u(r_ij) (:func:`soft_lj`) per configuration.

    Args:
        d_sigma: (B, N, N) or (B, 1, N, N) distance matrices, sigma.

    Returns:
        (B,) energies, epsilon.
    """
    d = _as_matrices(d_sigma)
    n = d.shape[-1]
    iu = torch.triu_indices(n, n, 1, device=d.device)
    return soft_lj(d[:, iu[0], iu[1]], r_clip, cutoff).sum(1)


def particle_energies(d_sigma: Tensor, r_clip: float = 0.9,
                      cutoff: float | None = LJ_CUTOFF) -> Tensor:
    """Each particle's pair energy e_i = sum_{j != i} u(r_ij) (:func:`soft_lj`), (B, N),
    epsilon; sum_i e_i = 2 U_pair. d_sigma as in :func:`pair_energy_sum`."""
    d = _as_matrices(d_sigma)
    n = d.shape[-1]
    off = ~torch.eye(n, dtype=torch.bool, device=d.device)
    return torch.where(off, soft_lj(d, r_clip, cutoff), torch.zeros_like(d)).sum(-1)


def _robust_square(x: Tensor) -> Tensor:
    """2 (sqrt(1 + x^2) - 1): x^2 for |x| << 1, 2 |x| for |x| >> 1 (the pseudo-Huber
    loss with delta = 1, scaled to x^2 at small x). The energy errors it takes are in kT
    per particle, where Monte Carlo configurations spread by ~0.3, so the quadratic part
    covers the physical range while a configuration decoded far off (a pair deep in the
    linear core costs ~100 epsilon) adds a bounded gradient, not a spike that derails
    training."""
    return 2.0 * (torch.sqrt(1.0 + x * x) - 1.0)


def energy_loss(d_hat_sigma: Tensor, d_sigma: Tensor, mode: str = "match", kt: float = 0.75,
                r_clip: float = 0.9) -> Tensor:
    """The energy term of the loss, a 0-d tensor (dimensionless: energies over N kT).

    With U^ and U the pair energies (:func:`pair_energy_sum`) of the decoded and of the
    true configuration, e^_i and e_i the particles' energies (:func:`particle_energies`),
    beta = 1 / kT:

    * ``match``:     mean_b rho(beta (U^_b - U_b) / N)
    * ``particle``:  mean_b mean_i rho(beta (e^_bi - e_bi)) / N  (slot by slot)
    * ``boltzmann``: mean_b beta U^_b / N  (d_sigma unused)

    with rho(x) = 2 (sqrt(1 + x^2) - 1) (:func:`_robust_square`: x^2 for small x).

    Args:
        d_hat_sigma, d_sigma: (B, [1,] N, N) decoded and true distance matrices, sigma.
        mode: one of :data:`ENERGY_MODES`.
        kt: the temperature kT of the data, epsilon.
        r_clip: the linear core's radius of :func:`soft_lj`, sigma.
    """
    n = d_hat_sigma.shape[-1]
    if mode == "boltzmann":
        return (pair_energy_sum(d_hat_sigma, r_clip) / (n * kt)).mean()
    if mode == "match":
        du = pair_energy_sum(d_hat_sigma, r_clip) - pair_energy_sum(d_sigma, r_clip)
        return _robust_square(du / (n * kt)).mean()
    if mode == "particle":
        de = particle_energies(d_hat_sigma, r_clip) - particle_energies(d_sigma, r_clip)
        return _robust_square(de / kt).mean() / n
    raise ValueError(f"mode: must be one of {', '.join(ENERGY_MODES)}, got {mode!r}")


def align_rigid(c_hat: Tensor, c: Tensor) -> Tensor:
    """c_hat moved by the rigid motion (rotation, or rotation and reflection, plus a
    translation) that minimises sum_i |R c^_i + t - c_i|^2 (2D orthogonal Procrustes).

    In 2D the optimum is closed-form: with a, b the centred point sets, the rotation
    angle is theta = atan2(sum_i a_i x b_i, sum_i a_i . b_i) (Kabsch 1976 in two
    dimensions); the reflection x -> -x is tried too and the better of the two kept.

    Args:
        c_hat, c: (B, N, 2) positions, any length unit.

    Returns:
        (B, N, 2) aligned c_hat, in c's frame (its centroid is c's).
    """
    centre = c.mean(1, keepdim=True)
    a, b = c_hat - c_hat.mean(1, keepdim=True), c - centre
    best, best_res = None, None
    for flip in (1.0, -1.0):
        ax, ay = flip * a[..., 0], a[..., 1]
        s_cos = (ax * b[..., 0] + ay * b[..., 1]).sum(1)
        s_sin = (ax * b[..., 1] - ay * b[..., 0]).sum(1)
        th = torch.atan2(s_sin, s_cos + 1e-12)[:, None]
        rot = torch.stack([th.cos() * ax - th.sin() * ay, th.sin() * ax + th.cos() * ay], -1)
        res = (rot - b).pow(2).sum((1, 2))
        if best is None:
            best, best_res = rot, res
        else:
            better = (res < best_res)[:, None, None]
            best = torch.where(better, rot, best)
    return best + centre


def _aligned(c_hat: Tensor, c: Tensor, done: bool) -> Tensor:
    """c_hat moved onto c (:func:`align_rigid`) unless the caller already did it (the
    loss aligns once for the gravity, box and height terms)."""
    return c_hat if done else align_rigid(c_hat, c)


def gravity_loss(c_hat_sigma: Tensor, c_sigma: Tensor, gamma: Tensor, kt: float = 0.75,
                 *, aligned: bool = False) -> Tensor:
    """mean_b rho(beta (E^_g,b - E_g,b) / N) with E_g = gamma sum_i (y_i - min_j y_j) of
    the decoded positions aligned to the true ones (:func:`align_rigid`; see the module
    docstring; rho as in :func:`energy_loss`). A 0-d tensor.

    Args:
        c_hat_sigma: (B, N, 2) decoded slot positions, sigma, any rigid frame.
        c_sigma: (B, N, 2) the true positions in the same sort order, sigma, box frame.
        gamma: (B,) or scalar field strengths.
        kt: kT, epsilon.
        aligned: c_hat_sigma is already :func:`align_rigid` (c_hat, c_sigma).
    """
    y_hat = _aligned(c_hat_sigma, c_sigma, aligned)[..., 1]
    y = c_sigma[..., 1]
    g = torch.as_tensor(gamma, dtype=y.dtype, device=y.device).reshape(-1)
    e_hat = (y_hat - y_hat.min(1, keepdim=True).values).sum(1)
    e = (y - y.min(1, keepdim=True).values).sum(1)
    return _robust_square(g * (e_hat - e) / (y.shape[1] * kt)).mean()


def box_loss(c_hat_sigma: Tensor, c_sigma: Tensor, box: float, *,
             aligned: bool = False) -> Tensor:
    """mean_b sum_i |c^_i - clip(c^_i, 0, L)|^2 (sigma^2) of the decoded positions
    aligned to the true ones (:func:`align_rigid`): how far the decoded shape, put where
    the true configuration lies, reaches out of the L x L box (zero inside). A shape
    wider than the box has no placement in it. A 0-d tensor.

    Args:
        c_hat_sigma: (B, N, 2) decoded slot positions, sigma, any rigid frame.
        c_sigma: (B, N, 2) the true positions in the same sort order, sigma, box frame.
        box: the box side L, sigma.
        aligned: c_hat_sigma is already :func:`align_rigid` (c_hat, c_sigma).
    """
    a = _aligned(c_hat_sigma, c_sigma, aligned)
    return (F.relu(-a).pow(2) + F.relu(a - float(box)).pow(2)).sum((1, 2)).mean()


def wasserstein_1d(a: Tensor, b: Tensor) -> Tensor:
    """W1 between the empirical distributions of two equal-size 1D samples (any shape,
    flattened): mean_k |a_(k) - b_(k)| over the sorted values. A 0-d tensor."""
    a, b = a.reshape(-1), b.reshape(-1)
    if a.numel() != b.numel():
        raise ValueError(f"wasserstein_1d: samples of equal size needed, got {a.numel()} "
                         f"and {b.numel()}")
    return (torch.sort(a).values - torch.sort(b).values).abs().mean()


def _per_gamma(values_hat: Tensor, values: Tensor, gamma: Tensor | float | None) -> Tensor:
    """W1 between values_hat[b] and values[b] pooled over the configurations b of each
    gamma in the batch, averaged with the groups' sizes as weights."""
    if gamma is None:
        return wasserstein_1d(values_hat, values)
    g = torch.as_tensor(gamma, device=values.device).reshape(-1)
    if g.numel() == 1:
        return wasserstein_1d(values_hat, values)
    total = values.new_zeros(())
    for gv in torch.unique(g):
        sel = g == gv
        total = total + sel.sum() * wasserstein_1d(values_hat[sel], values[sel])
    return total / g.numel()


def pair_distribution_loss(d_hat_sigma: Tensor, d_sigma: Tensor,
                           gamma: Tensor | float | None = None) -> Tensor:
    """W1 (sigma) between the pair distances r_ij (i < j) of the decoded and of the true
    configurations of the batch, per gamma (see the module docstring). A 0-d tensor.

    Args:
        d_hat_sigma, d_sigma: (B, [1,] N, N) decoded and true distance matrices, sigma.
        gamma: (B,) field strengths (None or a scalar: one group).
    """
    d_hat, d = _as_matrices(d_hat_sigma), _as_matrices(d_sigma)
    n = d.shape[-1]
    iu = torch.triu_indices(n, n, 1, device=d.device)
    return _per_gamma(d_hat[:, iu[0], iu[1]], d[:, iu[0], iu[1]], gamma)


def height_distribution_loss(c_hat_sigma: Tensor, c_sigma: Tensor,
                             gamma: Tensor | float | None = None, *,
                             aligned: bool = False) -> Tensor:
    """W1 (sigma) between the heights above the lowest particle, y_i - min_j y_j, of the
    decoded positions aligned to the true ones (:func:`align_rigid`) and of the true
    positions, pooled per gamma (see the module docstring). A 0-d tensor.

    Args:
        c_hat_sigma: (B, N, 2) decoded slot positions, sigma, any rigid frame.
        c_sigma: (B, N, 2) the true positions in the same sort order, sigma, box frame.
        gamma: (B,) field strengths (None or a scalar: one group).
        aligned: c_hat_sigma is already :func:`align_rigid` (c_hat, c_sigma).
    """
    y_hat = _aligned(c_hat_sigma, c_sigma, aligned)[..., 1]
    y = c_sigma[..., 1]
    return _per_gamma(y_hat - y_hat.min(1, keepdim=True).values,
                      y - y.min(1, keepdim=True).values, gamma)


def energy_distribution_loss(d_hat_sigma: Tensor, d_sigma: Tensor,
                             gamma: Tensor | float | None = None, r_clip: float = 0.9
                             ) -> Tensor:
    """W1 (epsilon per particle) between the pair energies per particle U_pair / N
    (:func:`pair_energy_sum`, the LJ continued linearly below ``r_clip``) of the batch's
    decoded and true configurations, per gamma: the spread of the energies, which the
    per-configuration match of :func:`energy_loss` lets shrink to their mean. A 0-d
    tensor.

    Args:
        d_hat_sigma, d_sigma: (B, [1,] N, N) decoded and true distance matrices, sigma.
        gamma: (B,) field strengths (None or a scalar: one group).
        r_clip: the linear core's radius of :func:`soft_lj`, sigma.
    """
    n = d_sigma.shape[-1]
    return _per_gamma(pair_energy_sum(d_hat_sigma, r_clip) / n,
                      pair_energy_sum(d_sigma, r_clip) / n, gamma)


def placed_height_loss(c_hat_sigma: Tensor, c_sigma: Tensor, gamma: Tensor | float,
                       box: float, kt: float = 0.75, *, seed: int = 0,
                       n_angles: int = 128, n_draws: int = 1) -> Tensor:
    """W1 (sigma) between the box-frame heights of the decoded shapes placed by the
    thermal rule and the true heights, pooled per gamma (see the module docstring). A
    0-d tensor; gradients flow to ``c_hat_sigma`` at the drawn placements.

    Args:
        c_hat_sigma: (B, N, 2) decoded slot positions, sigma, any rigid frame.
        c_sigma: (B, N, 2) the true positions, sigma, box frame.
        gamma: (B,) or scalar field strengths (the placement's law and the groups).
        box: the box side L, sigma.
        kt: kT of the placement's law, epsilon.
        seed: the placement's master seed (the training step passes a fresh one).
        n_angles: the placement's angle bins (any value draws the same law).
        n_draws: independent placements per shape; the loss is the mean of their W1
            (a gradient averaged over more orientations and heights per step).

    A shape that fits in no orientation is left unrotated, resting on the floor.
    """
    if n_draws > 1:  # independent streams of the same master seed (``start``)
        return torch.stack([_placed_height_draw(c_hat_sigma, c_sigma, gamma, box, kt, seed,
                                                n_angles, k) for k in range(n_draws)]).mean()
    return _placed_height_draw(c_hat_sigma, c_sigma, gamma, box, kt, seed, n_angles, 0)


def _placed_height_draw(c_hat_sigma: Tensor, c_sigma: Tensor, gamma: Tensor | float,
                        box: float, kt: float, seed: int, n_angles: int, draw: int
                        ) -> Tensor:
    """One draw of :func:`placed_height_loss`: placement streams start at draw * B."""
    from reconstruct.placement import place

    b = c_hat_sigma.shape[0]
    g = torch.as_tensor(gamma, dtype=c_hat_sigma.dtype).reshape(-1)
    g_np = np.broadcast_to(g.detach().cpu().double().numpy(), (b,)).copy()
    shapes = c_hat_sigma.detach().cpu().double().numpy()
    placed = place(shapes, float(box), "thermal", gamma=g_np, temperature=float(kt),
                   seed=int(seed), n_angles=int(n_angles), start=int(draw) * b)
    fits = torch.as_tensor(placed.fits, device=c_hat_sigma.device)
    theta = torch.as_tensor(np.where(placed.fits, placed.theta, 0.0),
                            dtype=c_hat_sigma.dtype, device=c_hat_sigma.device)
    y0 = torch.as_tensor(placed.com_height, dtype=c_hat_sigma.dtype,
                         device=c_hat_sigma.device)
    q = c_hat_sigma - c_hat_sigma.mean(1, keepdim=True)
    y_rot = torch.sin(theta)[:, None] * q[..., 0] + torch.cos(theta)[:, None] * q[..., 1]
    floor = y_rot - y_rot.min(1, keepdim=True).values  # unfitting shapes: on the floor
    y_hat = torch.where(fits[:, None], y_rot + y0[:, None], floor)
    return _per_gamma(y_hat, c_sigma[..., 1], gamma)


def thermal_profile(c_sigma: Tensor, gamma: Tensor | float, box: float, kt: float = 0.75,
                    n_angles: int = 128) -> Tensor:
    """The sorted heights above the lowest particle of each shape, averaged over the
    orientations theta_k = 2 pi k / n_angles with the thermal placement's weights
    p_k ~ (L - w_k)_+ exp(-b lo_k) E(b, L - h_k) (b = gamma N / kT; lo_k the centre of
    mass above the lowest particle, w_k, h_k the extents; :mod:`reconstruct.placement`):
    the height profile that placement gives the shape, less the centre of mass's free
    rise above the floor (mean ~ 1 / b). Orientations that do not fit get no weight
    (all of them, where none fits). (B, N), sigma; differentiable almost everywhere.

    Args:
        c_sigma: (B, N, 2) positions, sigma, any rigid frame.
        gamma: (B,) or scalar field strengths.
        box: the box side L, sigma.
        kt: kT of the placement's law, epsilon.
        n_angles: the angle grid.
    """
    bsz, n = c_sigma.shape[0], c_sigma.shape[1]
    q = c_sigma - c_sigma.mean(1, keepdim=True)
    th = torch.arange(n_angles, dtype=q.dtype, device=q.device) * (2 * math.pi / n_angles)
    c, s = torch.cos(th), torch.sin(th)
    x = c[None, :, None] * q[:, None, :, 0] - s[None, :, None] * q[:, None, :, 1]
    y = s[None, :, None] * q[:, None, :, 0] + c[None, :, None] * q[:, None, :, 1]
    ymin = y.min(2).values  # (B, K)
    w = x.max(2).values - x.min(2).values
    h = y.max(2).values - ymin
    g = torch.as_tensor(gamma, dtype=q.dtype, device=q.device).reshape(-1, 1)
    b = (g * n / kt).expand(bsz, 1)
    z = (box - h).clamp_min(1e-6)
    bz = b * z
    log_e = torch.where(bz > 1e-8, torch.log(-torch.expm1(-bz.clamp_min(1e-8))) - torch.log(
        b.clamp_min(1e-12)), torch.log(z))  # log E(b, z)
    fits = (w < box) & (h < box)
    logit = torch.log((box - w).clamp_min(1e-6)) + b * ymin + log_e  # -b lo = b ymin
    logit = torch.where(fits | ~fits.any(1, keepdim=True), logit, logit.new_tensor(-1e30))
    p = torch.softmax(logit, dim=1)  # (B, K)
    heights = torch.sort(y - ymin[..., None], dim=2).values  # (B, K, N)
    return (p[..., None] * heights).sum(1)


def thermal_profile_loss(c_hat_sigma: Tensor, c_sigma: Tensor, gamma: Tensor | float,
                         box: float, kt: float = 0.75, n_angles: int = 64) -> Tensor:
    """mean over the batch and the N sorted slots of (P^ - P)^2 (sigma^2), P the
    :func:`thermal_profile` of the decoded shape and of the true one: each decoded
    shape's height profile *as the thermal placement will put it*, in expectation over
    the orientations, against the true shape's under the same law, configuration by
    configuration (the gravity term compares in the true configuration's own
    orientation, which the placement does not use; the placed-height term compares the
    pooled heights of one random placement). A 0-d tensor. The loss passes the decoded
    shape aligned to the true one (:func:`align_rigid`): both then rest in the box
    frame, whose resting orientation (theta = 0) is on the grid; in an arbitrary frame
    the 64-angle grid misses the sharp peaks of the law at gamma >= 0.7 (squared error
    of the profile 0.03 sigma^2 at gamma 0.7 against 0.002 on the box frame, study
    data; the shapes' own variance 0.10). The grid of 64 angles (5.6 degrees) costs ~15
    ms per step of 128 configurations on one thread (128 angles: ~28 ms); the true
    profile is a constant (no gradient)."""
    with torch.no_grad():
        target = thermal_profile(c_sigma, gamma, box, kt, n_angles)
    return (thermal_profile(c_hat_sigma, gamma, box, kt, n_angles) - target).pow(2).mean()


def sorted_rows(d: Tensor) -> Tensor:
    """(B, [1,] N, N) distance matrices -> (B, N, N-1): each particle's distances to the
    others in ascending order (the row's smallest entry, the zero self-distance, is
    dropped). Permuting the slots permutes the rows only."""
    d = d.reshape(d.shape[0], d.shape[-2], d.shape[-1])
    return torch.sort(d, dim=-1).values[..., 1:]


def row_chamfer(d_hat: Tensor, d: Tensor) -> Tensor:
    """Symmetric Chamfer distance between the sorted-row descriptors of two batches of
    distance matrices, per entry (input units^2), averaged over the batch (see the module
    docstring)."""
    a, b = sorted_rows(d_hat), sorted_rows(d)
    cost = torch.cdist(a, b).pow(2) / a.shape[-1]  # (B, N, N)
    return 0.5 * (cost.min(dim=2).values.mean() + cost.min(dim=1).values.mean())


class CoordVAE(VAE):
    """VAE on (B, 1, N, N) sorted distance matrices whose decoder places the particles.

    Encoder: the conv encoder of :class:`vae.models.PairVAE` (the matrix zero-padded to a
    multiple of ``patch``, a ``patch`` x ``patch`` stride-``patch`` conv, then stride-2
    3x3 convs, batch norm and ReLU after each) and one linear layer to (mu_z, logvar_z).

    Decoder: [z, gamma] (gamma only with ``decoder_gamma``) -> the ``hidden`` ReLU
    layers -> Linear to 2N numbers, the positions c_i of the N sort slots (input units),
    -> D_ij = |c_i - c_j| (:func:`pair_distance_matrix`). The output bias starts at a
    uniform random layout of the slots in the box, sorted by the distance from the
    corner like the data, so the initial decoded matrix already has the data's scale.

    Args:
        n: particles N.
        latent_dim: D.
        hidden: decoder widths.
        box_units: the box side in input units (L / s), for the initial layout.
        decoder_gamma: feed gamma to the decoder (then ``decode`` needs it).
        channels, patch: the conv encoder.
    """

    def __init__(self, n: int, latent_dim: int = 40, hidden: tuple[int, ...] = (512, 512),
                 box_units: float = 1 / math.sqrt(2.0), decoder_gamma: bool = False,
                 channels: tuple[int, ...] = (32, 64), patch: int = 3) -> None:
        super().__init__(latent_dim)
        if n < 2:
            raise ValueError(f"arch coord needs N >= 2 particles, got {n}")
        self.n, self.needs_gamma = int(n), bool(decoder_gamma)
        ch = tuple(int(c) for c in channels)
        sizes = _down_sizes(self.n, int(patch), len(ch))
        self._pad = sizes[0] * int(patch) - self.n
        self.encoder = _conv_encoder(ch, int(patch))
        self.to_latent = nn.Linear(ch[-1] * sizes[-1] ** 2, 2 * latent_dim)
        hidden = tuple(int(h) for h in hidden)
        self.decoder = _mlp([latent_dim + int(self.needs_gamma), *hidden])
        self.to_coords = nn.Linear(hidden[-1], 2 * self.n)
        rng = np.random.default_rng(0)
        layout = rng.uniform(0.0, box_units, (self.n, 2))
        layout = layout[np.argsort((layout ** 2).sum(1), kind="stable")]
        with torch.no_grad():
            self.to_coords.weight.mul_(0.1)
            self.to_coords.bias.copy_(torch.as_tensor(layout.ravel(), dtype=torch.float32))

    def _encode_features(self, x: Tensor) -> Tensor:
        if self._pad:
            x = F.pad(x, (0, self._pad, 0, self._pad))
        return self.to_latent(self.encoder(x))

    def _gamma_column(self, z: Tensor, gamma: Tensor | float | None) -> Tensor:
        if gamma is None:
            raise ValueError("this model's decoder takes gamma (decoder_gamma=True); "
                             "pass gamma")
        g = torch.as_tensor(gamma, dtype=z.dtype, device=z.device).reshape(-1)
        if g.numel() == 1:
            g = g.expand(z.shape[0])
        if g.shape[0] != z.shape[0]:
            raise ValueError(f"gamma: expected {z.shape[0]} values, got {g.shape[0]}")
        return g[:, None]

    def decode_coords(self, z: Tensor, gamma: Tensor | float | None = None) -> Tensor:
        """Slot positions (B, N, 2) in input units for latents z (B, D)."""
        h = torch.cat([z, self._gamma_column(z, gamma)], 1) if self.needs_gamma else z
        return self.to_coords(self.decoder(h)).view(-1, self.n, 2)

    def bfloat16_decoder(self):
        """The decoder for inference with its hidden layers in bfloat16: a callable
        (z, gamma) -> slot positions (B, N, 2), float32, input units.

        The hidden Linear + ReLU layers run on bfloat16 copies of their weights and
        activations (bfloat16 products, float32 accumulation inside the matrix
        product); the output layer, whose bias holds the slot layout, runs in float32
        on the last activations converted back. Measured on a trained 256-wide
        decoder: positions within 0.002-0.003 sigma RMS (largest 0.04 sigma) of the
        float32 decoder; 1.9 x its rate on one thread of an AVX512-BF16 CPU (512-wide:
        2.7 x; ``benchmarks/bench_generation_speed.py``). The copies are made now:
        call again after changing the weights. Inference only (no gradients)."""
        layers = [m for m in self.decoder if isinstance(m, nn.Linear)]
        if len(layers) + sum(isinstance(m, nn.ReLU) for m in self.decoder) != len(self.decoder):
            raise ValueError("bfloat16_decoder: the decoder must be Linear + ReLU layers")
        with torch.no_grad():
            hidden = [(m.weight.detach().to(torch.bfloat16), m.bias.detach().to(torch.bfloat16))
                      for m in layers]
            w_out = self.to_coords.weight.detach().clone()
            b_out = self.to_coords.bias.detach().clone()

        def decode(z: Tensor, gamma: Tensor | float | None = None) -> Tensor:
            with torch.no_grad():
                h = torch.cat([z, self._gamma_column(z, gamma)], 1) if self.needs_gamma else z
                h = h.to(torch.bfloat16)
                for w, b in hidden:
                    h = F.linear(h, w, b).relu_()
                return F.linear(h.float(), w_out, b_out).view(-1, self.n, 2)

        return decode

    def _decode_raw(self, z: Tensor, gamma: Tensor | float | None = None) -> Tensor:
        return pair_distance_matrix(self.decode_coords(z, gamma)).unsqueeze(1)

    def decode(self, z: Tensor, gamma: Tensor | float | None = None) -> Tensor:
        """Decoded (B, 1, N, N) distance matrices; ``gamma`` (scalar or (B,)) is required
        when the decoder takes it and ignored otherwise."""
        return self._decode_raw(z, gamma)

    def forward(self, x: Tensor, *, sample: bool = True,
                generator: torch.Generator | None = None,
                gamma: Tensor | float | None = None) -> VAEOutput:
        mu_z, logvar_z = self.encode(x)
        z = self.reparameterize(mu_z, logvar_z, generator) if sample else mu_z
        c = self.decode_coords(z, gamma)
        return VAEOutput(pair_distance_matrix(c).unsqueeze(1), mu_z, logvar_z, z, None, c)


def _sqrtm_2x2(t: Tensor) -> Tensor:
    """Symmetric square root of (B, 2, 2) symmetric PSD matrices:
    sqrt(T) = (T + s I) / sqrt(tr T + 2 s), s = sqrt(det T) (Cayley-Hamilton)."""
    det = (t[:, 0, 0] * t[:, 1, 1] - t[:, 0, 1] * t[:, 1, 0]).clamp_min(1e-12)
    s = det.sqrt()
    eye = torch.eye(2, dtype=t.dtype, device=t.device)
    return (t + s[:, None, None] * eye) / (t[:, 0, 0] + t[:, 1, 1] + 2 * s
                                           ).clamp_min(1e-12).sqrt()[:, None, None]


def planar_coordinates(d: Tensor, start: Tensor, iterations: int = 8) -> Tensor:
    """2D coordinates X (B, N, 2) whose Gram matrix is the best rank-2 approximation of
    the double-centred Gram matrix G = -1/2 J (D o D) J of distance matrices d (B, N, N):
    ``iterations`` steps of orthogonal iteration from ``start`` (N, 2) give the top-two
    eigenspace Q, and X = Q (Q^T G Q)^(1/2). Differentiable (matmuls, QR, a 2x2 square
    root); for a 2D Euclidean d, |x_i - x_j| = d_ij up to round-off once Q has converged
    (the ratio of the third to the second eigenvalue per step)."""
    n = d.shape[-1]
    d2 = d * d
    g = -0.5 * (d2 - d2.mean(-1, keepdim=True) - d2.mean(-2, keepdim=True)
                + d2.mean((-1, -2), keepdim=True))
    q = start.to(d.dtype).expand(d.shape[0], n, 2)
    for _ in range(iterations):
        q, _ = torch.linalg.qr(g @ q)
    t = q.transpose(1, 2) @ g @ q
    t = 0.5 * (t + t.transpose(1, 2))
    return q @ _sqrtm_2x2(t)


class ProjectedPairVAE(PairVAE):
    """The ``pair`` VAE (:class:`vae.models.PairVAE`) with its decoded matrix projected
    onto the 2D Euclidean distance matrices: the pair decoder's matrix P (and, with
    ``decoder_gamma``, gamma appended to z before the decoder trunk) goes through
    :func:`planar_coordinates` (orthogonal iteration on its Gram matrix) to slot
    positions c, and the output is D_ij = |c_i - c_j|: exact 2D Euclidean by
    construction, while the decoder keeps the pair MLP's fast learning of the sorted
    matrices. Arguments: those of :class:`vae.models.PairVAE`, plus ``decoder_gamma``
    and ``iterations`` (orthogonal-iteration steps)."""

    def __init__(self, n: int, latent_dim: int = 40, *, decoder_gamma: bool = False,
                 iterations: int = 8, **kw) -> None:
        super().__init__(n, latent_dim, **kw)
        self.needs_gamma, self.iterations = bool(decoder_gamma), int(iterations)
        if self.needs_gamma:  # the trunk also takes gamma
            self.trunk = _mlp([latent_dim + 1, self.trunk[0].out_features])
        start = torch.as_tensor(np.random.default_rng(0).standard_normal((self.n, 2)),
                                dtype=torch.float32)
        self.register_buffer("start", torch.linalg.qr(start - start.mean(0))[0],
                             persistent=False)

    _gamma_column = CoordVAE._gamma_column

    def decode_coords(self, z: Tensor, gamma: Tensor | float | None = None) -> Tensor:
        """Slot positions (B, N, 2), input units, in an arbitrary rigid frame."""
        h = torch.cat([z, self._gamma_column(z, gamma)], 1) if self.needs_gamma else z
        p = PairVAE._decode_raw(self, h)[:, 0]
        return planar_coordinates(p, self.start, self.iterations)

    def _decode_raw(self, z: Tensor, gamma: Tensor | float | None = None) -> Tensor:
        return pair_distance_matrix(self.decode_coords(z, gamma)).unsqueeze(1)

    decode = CoordVAE.decode
    forward = CoordVAE.forward
