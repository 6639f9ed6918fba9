"""reconstruct: configurations from distance matrices, and honest metrics.

A distance matrix (exact, or decoded by a VAE) becomes a configuration resting in the
box without ever looking at the original (the study, seed 002, aligned its
reconstructions to the ground truth instead):

    distances (M, N, N) -> Gram matrix (:mod:`reconstruct.gram`)
        -> top-two eigen-embedding + quality scores (:mod:`reconstruct.embedding`)
        -> gravitational tumbler (:mod:`reconstruct.tumbler`, hull in
           :mod:`reconstruct.hull`) -> positions (M, N, 2) in [0, L]^2

    >>> rec = reconstruct_configurations(distances, box=10.0)      # doctest: +SKIP
    >>> rec.positions, rec.fits, rec.embedding.residual            # doctest: +SKIP
    >>> write_reconstruction("rec.h5", rec, gamma=1.0)              # doctest: +SKIP

Evaluation against originals (reflection-aware RMSD, distance error, energies with
gravity and every pair, W1 / Jensen-Shannon with bootstrap errors, rho(y)) lives in
:mod:`reconstruct.metrics`, all of it in one call in :mod:`reconstruct.evaluation`.
Figures: :mod:`reconstruct.plotting` (not imported here, to keep matplotlib out of
the import). The ``reconstruct`` command: :mod:`reconstruct.cli`. Numba kernels:
:mod:`reconstruct._kernels`.
"""

from reconstruct.checks import physical_checks, physical_checks_reference
from reconstruct.distances import (
    DEFAULT_RTOL,
    check_distance_matrices,
    distance_matrices,
    symmetrize_distances,
)
from reconstruct.embedding import EMBED_METHODS, Embedding, embed_distances, embed_gram
from reconstruct.evaluation import Evaluation, evaluate_reconstruction
from reconstruct.gram import GRAM_VARIANTS, check_variant, gram_matrices
from reconstruct.hull import HULL_METHODS, convex_hull
from reconstruct.metrics import (
    EnergyComparison,
    HeightProfile,
    compare_energies,
    compare_energy_samples,
    distance_error,
    energy_bin_edges,
    height_profile,
    js_distance,
    placement_rmsd,
    rmsd,
    rmsd_reference,
    rmsd_unlabelled,
)
from reconstruct.pipeline import Reconstruction, reconstruct_configurations, write_reconstruction
from reconstruct.tumbler import (
    PLACEMENT_RULE,
    REFLECTION_RULE,
    TUMBLE_METHODS,
    Tumbled,
    tumble,
)

__all__ = [
    "physical_checks",
    "physical_checks_reference",
    "DEFAULT_RTOL",
    "check_distance_matrices",
    "distance_matrices",
    "symmetrize_distances",
    "EMBED_METHODS",
    "Embedding",
    "embed_distances",
    "embed_gram",
    "Evaluation",
    "evaluate_reconstruction",
    "GRAM_VARIANTS",
    "check_variant",
    "gram_matrices",
    "HULL_METHODS",
    "convex_hull",
    "EnergyComparison",
    "HeightProfile",
    "compare_energies",
    "compare_energy_samples",
    "distance_error",
    "energy_bin_edges",
    "height_profile",
    "js_distance",
    "placement_rmsd",
    "rmsd",
    "rmsd_reference",
    "rmsd_unlabelled",
    "Reconstruction",
    "reconstruct_configurations",
    "write_reconstruction",
    "PLACEMENT_RULE",
    "REFLECTION_RULE",
    "TUMBLE_METHODS",
    "Tumbled",
    "tumble",
]
