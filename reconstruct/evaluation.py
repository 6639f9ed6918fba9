"""All evaluation metrics of a reconstruction in one call, for the CLI and for
pipelines that reconstruct decoded matrices.

Evaluation only: nothing here feeds back into the reconstruction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcsim.potentials import Potential, total_energy
from reconstruct.metrics import (
    EnergyComparison,
    HeightProfile,
    compare_energies,
    distance_error,
    height_profile,
    placement_rmsd,
    rmsd,
)
from reconstruct.pipeline import Reconstruction

__all__ = ["Evaluation", "evaluate_reconstruction"]


@dataclass(frozen=True)
class Evaluation:
    """Metrics of a reconstruction; fields are None where their inputs were missing.

    Attributes:
        distance_rms: (M,) RMS over pairs of |d_ij(positions) - d_ij(input)|, sigma:
            how well the configurations reproduce the input matrices (no originals
            needed).
        energy: (M,) energies of the reconstructed configurations, epsilon (needs
            gamma and a potential).
        rmsd: (M,) RMSD to the originals after optimal rigid alignment, mirror
            allowed, sigma.
        placement_rmsd: (M,) RMSD allowing only a horizontal shift and a mirror, sigma.
        energies: original vs reconstructed energy distributions (needs originals,
            gamma, a potential and M >= 2).
        profile: height profile rho(y) of the reconstructions.
        profile_original: height profile of the originals.
    """

    distance_rms: np.ndarray
    energy: np.ndarray | None
    rmsd: np.ndarray | None
    placement_rmsd: np.ndarray | None
    energies: EnergyComparison | None
    profile: HeightProfile
    profile_original: HeightProfile | None

    def extra(self) -> dict[str, np.ndarray]:
        """Per-configuration metrics, for ``extra/`` in a dataset."""
        out = {"distance_rms": self.distance_rms}
        if self.rmsd is not None:
            out["rmsd"] = self.rmsd
            out["placement_rmsd"] = self.placement_rmsd
        if self.energies is not None:
            out["energy_original"] = self.energies.original
        return out

    def summary(self) -> dict[str, float]:
        """Scalar results (medians, W1, JS with errors), for attributes and logs."""
        out = {"distance_rms_median": float(np.median(self.distance_rms))}
        if self.rmsd is not None:
            out["rmsd_median"] = float(np.median(self.rmsd))
            out["placement_rmsd_median"] = float(np.median(self.placement_rmsd))
        if self.energies is not None:
            out.update(self.energies.summary())
        return out


def evaluate_reconstruction(
    rec: Reconstruction,
    distances: np.ndarray,
    *,
    original: np.ndarray | None = None,
    gamma: float | np.ndarray | None = None,
    potential: Potential | None = None,
    n_bins: int = 30,
    n_boot: int = 200,
    seed: int = 0,
    profile_bins: int = 40,
) -> Evaluation:
    """Evaluate a reconstruction.

    Args:
        rec: the reconstruction.
        distances: (M, N, N) the matrices it was made from, sigma.
        original: (M, N, 2) the true configurations, or None.
        gamma: scalar or (M,) field strength, or None (no energies); NaN counts as
            missing.
        potential: pair potential for energies, or None (no energies).
        n_bins, n_boot, seed: Jensen-Shannon bins and bootstrap settings
            (:func:`reconstruct.metrics.compare_energies`).
        profile_bins: bins of rho(y) over [0, L].
    """
    box = rec.tumbled.box
    pos = rec.positions
    have_energy = (gamma is not None and potential is not None
                   and bool(np.all(np.isfinite(gamma))))
    energy = total_energy(pos, gamma, potential) if have_energy else None
    r = pr = comparison = prof_o = None
    if original is not None:
        r = rmsd(original, pos)
        pr = placement_rmsd(original, pos)
        prof_o = height_profile(original, box, profile_bins)
        if have_energy and pos.shape[0] >= 2:
            comparison = compare_energies(original, pos, gamma, potential, n_bins=n_bins,
                                          n_boot=n_boot, seed=seed)
    return Evaluation(
        distance_rms=distance_error(distances, pos)[0],
        energy=energy,
        rmsd=r,
        placement_rmsd=pr,
        energies=comparison,
        profile=height_profile(pos, box, profile_bins),
        profile_original=prof_o,
    )
