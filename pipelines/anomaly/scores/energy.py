"""``energy``: the physical check, min over training gammas g of |U_g(x) - <U_g>| / sd(U_g)."""

from __future__ import annotations

import numpy as np

from mcsim.potentials import Potential, total_energy
from pipelines.anomaly.scores.base import Batch, FitData, Score


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


def fit(data: FitData) -> EnergyReference:
    return EnergyReference(data.positions, data.gamma, data.cfg.training_potential())


def score(state: EnergyReference, batch: Batch) -> np.ndarray:
    return state.score(batch.positions)


SCORE = Score("energy", "energy", "#d62728",
              "min over training gammas g of |U_g(x) - <U_g>| / sd(U_g), U_g the energy under "
              "the training potential with field g (positions only, no VAE).", score, fit,
              order=80)
