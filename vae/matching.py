"""Matching decoded particles to true ones (``LossConfig.match_slots``).

A decoder that places particles (:mod:`vae.physical`) outputs one position per *sort
slot*, and the data's sort (by the distance from the box corner) is a convention, not
physics: two particles at nearly the same distance swap slots between similar
configurations, and a decoder compared slot by slot is pulled to put one particle half
way between the two places. :func:`match_slots` pairs each true particle with a decoded
one without using the slot order, and :func:`permute_slots` puts the decoded particles
in that order, so that losses and metrics (``vae.training.matched_mse``) compare the
configurations, not their slot labels.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from vae.physical import align_rigid

__all__ = ["match_slots", "permute_slots"]

#: The eight maps of one principal-axis frame onto another (axis signs, axis swap).
_FRAME_MAPS = torch.tensor([[[sx, 0.0], [0.0, sy]] for sx in (1.0, -1.0) for sy in (1.0, -1.0)]
                           + [[[0.0, sx], [sy, 0.0]] for sx in (1.0, -1.0) for sy in (1.0, -1.0)],
                           dtype=torch.float64)


def _principal_coordinates(c: Tensor) -> Tensor:
    """(B, N, 2) positions about their centroid in their principal-axis frame."""
    a = c - c.mean(1, keepdim=True)
    _, axes = torch.linalg.eigh(a.transpose(1, 2) @ a)
    return a @ axes


def _square_distances(a: Tensor, b: Tensor) -> Tensor:
    """|a_i - b_j|^2 for (..., N, 2) and (..., M, 2) positions, (..., N, M)."""
    d2 = a.pow(2).sum(-1).unsqueeze(-1) + b.pow(2).sum(-1).unsqueeze(-2) \
        - 2.0 * a @ b.transpose(-1, -2)
    return d2.clamp_min(0.0)


def _assign(cost: np.ndarray) -> np.ndarray:
    """(B, N, N) costs -> (B, N): for each column j the row assigned to it."""
    from scipy.optimize import linear_sum_assignment

    out = np.empty(cost.shape[:2], dtype=np.int64)
    for k in range(cost.shape[0]):
        rows, cols = linear_sum_assignment(cost[k])
        out[k, cols] = rows
    return out


@torch.no_grad()
def match_slots(c_hat: Tensor, c: Tensor, rounds: int = 3) -> Tensor:
    """The assignment of decoded slots to true particles: (B, N) indices ``perm`` such
    that ``c_hat[b, perm[b, j]]`` is the decoded particle matched to true particle j.

    The decoded positions are matched to the true ones without using the slot order
    (module docstring): both sets are put in their principal-axis frames, the one of the
    eight maps between the frames (axis signs and swap: rotations and reflections)
    with the smallest Chamfer distance is kept, the points are assigned by the
    Hungarian algorithm on squared distances (``scipy.optimize.linear_sum_assignment``),
    and then ``rounds`` times the best rigid motion for that assignment
    (:func:`align_rigid`) and a new assignment. The result depends on the slot order
    of neither set (property test). No gradient flows through it; the loss compares
    ``c_hat`` gathered by it (:func:`permute_slots`).

    Args:
        c_hat, c: (B, N, 2) decoded and true positions, any common length unit.
        rounds: alignment / assignment rounds after the first assignment (>= 0).
    """
    ch, ct = c_hat.detach().double(), c.detach().double()
    pa, pb = _principal_coordinates(ch), _principal_coordinates(ct)
    cand = torch.einsum("bnk,mkl->bmnl", pa, _FRAME_MAPS.to(pa.device))  # (B, 8, N, 2)
    d2 = _square_distances(cand, pb.unsqueeze(1))  # (B, 8, N, N)
    chamfer = d2.min(3).values.sum(2) + d2.min(2).values.sum(2)
    best = chamfer.argmin(1)
    cost = d2[torch.arange(len(best)), best]
    perm = torch.as_tensor(_assign(cost.cpu().numpy()), device=c_hat.device)
    for _ in range(rounds):
        aligned = align_rigid(permute_slots(ch, perm), ct)
        new = torch.as_tensor(_assign(_square_distances(aligned, ct).cpu().numpy()),
                              device=c_hat.device)
        new_perm = torch.gather(perm, 1, new)
        if torch.equal(new_perm, perm):
            break
        perm = new_perm
    return perm


def permute_slots(c: Tensor, perm: Tensor) -> Tensor:
    """(B, N, 2) positions reordered so that slot j holds ``c[b, perm[b, j]]``."""
    return torch.gather(c, 1, perm.unsqueeze(-1).expand(-1, -1, c.shape[-1]))
