"""mcsim: Metropolis Monte Carlo for a 2D Lennard-Jones fluid in a walled box under gravity."""

from mcsim.io import Dataset, DatasetError, DatasetWriter, read_dataset, write_dataset, write_xyz
from mcsim.potentials import R_MIN, Potential, pair_energy, particle_energy, total_energy

__all__ = [
    "Dataset",
    "DatasetError",
    "DatasetWriter",
    "read_dataset",
    "write_dataset",
    "write_xyz",
    "R_MIN",
    "Potential",
    "pair_energy",
    "particle_energy",
    "total_energy",
]
