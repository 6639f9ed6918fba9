"""mcsim: Metropolis Monte Carlo for a 2D Lennard-Jones fluid in a walled box under gravity.

Layers: :mod:`mcsim.potentials` (pair potentials, energies), :mod:`mcsim.sampler`
(protocols over the numba kernels in :mod:`mcsim._kernels`), :mod:`mcsim.observables`
(density profile, g(r), equilibration check), :mod:`mcsim.io` (dataset files, XYZ),
:mod:`mcsim.reference` (equilibrium references and the equilibration verdict),
:mod:`mcsim.run` (chunked resumable runs), :mod:`mcsim.distribute` (Dask scale-out),
:mod:`mcsim.cli` (``simulate``).
"""

from mcsim.config import PROTOCOLS, SimConfig
from mcsim.io import Dataset, DatasetError, DatasetWriter, read_dataset, write_dataset, write_xyz
from mcsim.observables import (
    EquilibrationCheck,
    contact_densities,
    density_profile,
    equilibration_check,
    pair_distance_distribution,
    pair_distances,
    scan_sweeps,
    square_pair_pdf,
)
from mcsim.potentials import R_MIN, Potential, pair_energy, particle_energy, total_energy
from mcsim.reference import (
    EquilibriumReference,
    ReferenceSettings,
    Verdict,
    equilibration_verdict,
    equilibrium_reference,
    integrated_autocorr_time,
)
from mcsim.run import RunSummary, run_simulation
from mcsim.sampler import (
    Chain,
    IndependentRun,
    Samples,
    energies_at,
    energy_traces,
    sample,
    seed_states,
)

__all__ = [
    "PROTOCOLS",
    "SimConfig",
    "Dataset",
    "DatasetError",
    "DatasetWriter",
    "read_dataset",
    "write_dataset",
    "write_xyz",
    "EquilibrationCheck",
    "contact_densities",
    "density_profile",
    "equilibration_check",
    "pair_distance_distribution",
    "pair_distances",
    "scan_sweeps",
    "square_pair_pdf",
    "R_MIN",
    "Potential",
    "pair_energy",
    "particle_energy",
    "total_energy",
    "EquilibriumReference",
    "ReferenceSettings",
    "Verdict",
    "equilibration_verdict",
    "equilibrium_reference",
    "integrated_autocorr_time",
    "RunSummary",
    "run_simulation",
    "Chain",
    "IndependentRun",
    "Samples",
    "energies_at",
    "energy_traces",
    "sample",
    "seed_states",
]
