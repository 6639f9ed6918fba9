"""Distance matrices in, configurations resting in the box out, and writing them as
an ljvae dataset.

    distances (M, N, N) --gram + eigen-embedding--> coords (M, N, 2), any frame
                        --placement--> positions (M, N, 2) in [0, L]^2

The placement (:mod:`reconstruct.placement`) is ``thermal`` by default: the exact
conditional Boltzmann law of orientation, mirror image and offsets given the shape,
which needs the ensemble (gamma per configuration and the temperature).

Nothing here looks at original configurations: the output depends on the distance
matrices (and the box) only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mcsim.io import write_dataset
from reconstruct.distances import DEFAULT_RTOL
from reconstruct.embedding import Embedding, embed_distances
from reconstruct.placement import DEFAULT_N_ANGLES, DEFAULT_PLACEMENT, PLACEMENTS, place
from reconstruct.tumbler import REFLECTION_RULE, Tumbled

__all__ = ["Reconstruction", "reconstruct_configurations", "write_reconstruction"]


@dataclass(frozen=True)
class Reconstruction:
    """Result of :func:`reconstruct_configurations`.

    Attributes:
        embedding: the Gram/eigen step (coordinates in an arbitrary frame, spectrum,
            quality scores ``residual`` and ``negative``).
        tumbled: the placed configurations (``positions``, ``fits``, ...).
        method: eigensolver used (``fast`` or ``lapack``).
        placement: the placement rule (:data:`reconstruct.placement.PLACEMENTS`).
        placement_params: its parameters (temperature, seed, n_angles), for attributes.
    """

    embedding: Embedding
    tumbled: Tumbled
    method: str
    placement: str = "edge"
    placement_params: dict[str, Any] | None = None

    @property
    def positions(self) -> np.ndarray:
        """(M, N, 2) reconstructed configurations in the box, sigma."""
        return self.tumbled.positions

    @property
    def fits(self) -> np.ndarray:
        """(M,) whether each configuration fits in the box."""
        return self.tumbled.fits

    def __len__(self) -> int:
        return len(self.tumbled)

    def extra(self) -> dict[str, np.ndarray]:
        """Per-configuration diagnostics as float arrays, for ``extra/`` in a dataset."""
        e, t = self.embedding, self.tumbled
        return {
            "gram_residual": e.residual,
            "gram_negative": e.negative,
            "eigenvalues": e.eigenvalues,
            "fits": t.fits.astype(np.float64),
            "width": t.width,
            "height": t.height,
            "com_height": t.com_height,
            "resting_edge": t.edge.astype(np.float64),
            "reflected": t.reflected.astype(np.float64),
            **({} if t.theta is None else {"theta": t.theta}),
            **({} if t.tries is None else {"placement_tries": t.tries.astype(np.float64)}),
        }

    def attrs(self) -> dict[str, Any]:
        """The parameters of the reconstruction, for dataset attributes."""
        e, t = self.embedding, self.tumbled
        return {
            "source": "reconstruct",
            "box": t.box,
            "n_particles": int(t.positions.shape[1]),
            "gram_variant": e.variant,
            "gram_reference": int(e.reference),
            "eigensolver": self.method,
            "placement": self.placement,
            "placement_rule": PLACEMENTS[self.placement].description,
            **({"reflection_rule": REFLECTION_RULE} if self.placement != "thermal" else
               {"reflection_rule": "mirror image drawn with probability 1/2"}),
            **{f"placement_{k}": v for k, v in (self.placement_params or {}).items()},
            "n_not_fitting": int((~t.fits).sum()),
        }


def reconstruct_configurations(
    distances: np.ndarray,
    box: float,
    variant: str = "centered",
    reference: int = 0,
    *,
    method: str = "fast",
    rtol: float = DEFAULT_RTOL,
    placement: str = DEFAULT_PLACEMENT,
    gamma: float | np.ndarray | None = None,
    temperature: float | None = None,
    seed: int = 0,
    n_angles: int = DEFAULT_N_ANGLES,
    start: int = 0,
) -> Reconstruction:
    """Configurations in the box from distance matrices.

    Args:
        distances: (N, N) or (M, N, N) distance matrices, sigma (see
            :func:`reconstruct.distances.check_distance_matrices`; pass decoded
            matrices through :func:`reconstruct.distances.symmetrize_distances`).
        box: side L of the box, sigma.
        variant: Gram variant, ``"centered"`` or ``"reference"``.
        reference: the particle put at the origin by the ``"reference"`` variant.
        method: eigensolver, ``"fast"`` or ``"lapack"``.
        rtol: tolerance of the distance-matrix check.
        placement: ``"thermal"`` (default), ``"lowest"`` or ``"edge"``
            (:mod:`reconstruct.placement`).
        gamma: field strength, scalar or (M,) (thermal).
        temperature: k_B T, epsilon (thermal).
        seed: seed of the thermal placement.
        n_angles: angle bins of the placement.
        start: index of the first matrix in a larger set (keeps random streams when
            a set is reconstructed in batches).

    Returns:
        :class:`Reconstruction`.
    """
    emb = embed_distances(distances, variant, reference, method=method, rtol=rtol)
    placed = place(emb.coords, box, placement, gamma=gamma, temperature=temperature,
                   seed=seed, n_angles=n_angles, start=start)
    params: dict[str, Any] = {}
    if placement == "thermal":
        params = {"temperature": float(temperature), "seed": int(seed),
                  "n_angles": int(n_angles)}
    elif placement == "lowest":
        params = {"n_angles": int(n_angles)}
    return Reconstruction(emb, placed, method, placement, params)


def write_reconstruction(
    path: str | os.PathLike,
    rec: Reconstruction,
    *,
    gamma: float | np.ndarray = np.nan,
    energy: np.ndarray | None = None,
    attrs: dict[str, Any] | None = None,
    extra: dict[str, np.ndarray] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a reconstruction as an ljvae dataset (atomically).

    Args:
        path: output file.
        rec: the reconstruction.
        gamma: scalar or (M,) field strength of the configurations (NaN if unknown).
        energy: (M,) energies of the reconstructed configurations, or None (NaN).
        attrs: further attributes (input file, potential, ...); the reconstruction's
            own parameters (:meth:`Reconstruction.attrs`) take precedence.
        extra: further per-configuration arrays, merged with
            :meth:`Reconstruction.extra`.
        overwrite: replace an existing file.
    """
    all_attrs = {**(attrs or {}), **rec.attrs()}
    all_extra = {**rec.extra(), **(extra or {})}
    return write_dataset(path, rec.positions, gamma, all_attrs, energy=energy,
                         extra=all_extra, overwrite=overwrite)
