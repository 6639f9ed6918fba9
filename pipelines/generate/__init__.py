"""Generation: new configurations from the latent space, judged against Monte Carlo.

Pipeline (one call of :func:`generate_configurations`)::

    z ~ prior(gamma)                (vae.priors: normal, pca, gmm, buffer, flow)
      -> decoder -> distance matrix (input units, times the length scale -> sigma)
      -> symmetrize -> Gram + top-two embedding -> placement  (reconstruct; thermal:
         the exact Boltzmann law of orientation, mirror and offsets given the shape)
      -> positions (n, N, 2) in the box, sigma

For a model whose decoder places the particles (``Architecture.places_particles``:
``coord``, ``pair2d``) the decoded slot positions go to the placement directly
(decoder -> positions, input units, times the length scale -> placement): the Gram
step would return them up to a rigid motion, which the placement's law does not see.

Each configuration carries its Euclidean-quality score (the Gram residual: spectral
weight outside the top two components, 0 for an exact 2D distance matrix) and
flags: ``overlap`` (a pair closer than ``overlap`` sigma, default 0.8) and
``outside`` (the body does not fit in the box, or a coordinate leaves [0, L]).
``unphysical = overlap | outside`` are counted and optionally rejected (redrawn
until n physical configurations are found; rejection is a selection, not a
correction: no configuration is moved). Generation itself relaxes nothing; the optional
:func:`mcsim.relax.relax_configurations` is a separate post-processing step (a short
Metropolis run, re-exported here).

Judging (:func:`run_generation`) for each trained gamma and prior, against a
held-out Monte Carlo reference set R of equal size n:

* R: the model's *test* split configurations of that gamma (first n in file
  order), or rows of ``mc_files`` at that gamma.
* Observables: total energy U (mcsim.total_energy with the training potential and
  field, every pair counted), the pooled pair-distance distribution p(r) (all pairs
  i < j), and the pooled height distribution of particles rho(y).
* Distances: Wasserstein-1 (exact, scipy, on the energies and on the pooled pair
  distances / heights) and Jensen-Shannon (base 2; energy on 30 equal-count bins
  of R with open outer bins, p(r) on 100 bins over [0, L sqrt 2] plus an overflow
  bin, rho(y) on 40 bins over [0, L] plus under/overflow bins). Error bars:
  standard deviation over ``n_boot`` bootstrap replicates resampling whole
  configurations of both sets independently (for p(r) and rho(y) the replicate
  W1 is computed from per-configuration histograms on a 1000-bin grid, which
  changes the spread of the replicates negligibly but not their cost).
* Floor: the same distances between R and a second, independent MC set F of the
  same size n: by default (``floor="sampler"``) F is simulated in the same run with
  the training data's own SimConfig and a different seed (``mc_seed``), which also
  times the sampler; ``floor="validation"`` uses the model's validation split of
  that gamma (n is then limited by its size). A perfect generator scores about
  the floor, so the report gives distance / floor ratios.
* Speed: configurations per second of generation (prior sample + decode +
  reconstruct + checks; energies are evaluation and not counted) against
  configurations per second of the sampler with the training protocol, on the
  same number of threads in the same run.

Outputs of :func:`run_generation` in ``out_dir``: ``generate.json`` (every number
and parameter), ``generate.md`` (the table), ``fig_gamma_<g>.png`` (one per gamma:
energy histogram, p(r), p(r) at short range, rho(y); MC and every prior),
``priors/<name>.npz`` (the fitted priors) and, with ``write_sets``,
``sets/<prior>_gamma_<g>.h5`` plus ``sets/mc_floor_gamma_<g>.h5``.

Modules: :mod:`~pipelines.generate.config` (settings), :mod:`~pipelines.generate.latents`
(the model's training latents and fitted priors), :mod:`~pipelines.generate.sampling`
(generation), :mod:`~pipelines.generate.judge`
(distances to MC), :mod:`~pipelines.generate.report`, :mod:`~pipelines.generate.plots`,
:mod:`~pipelines.generate.run` (the whole run) and :mod:`~pipelines.generate.cli`.
"""

from mcsim.relax import STREAM_RELAX, relax_configurations
from pipelines.generate.config import FLOORS, GenerateConfig
from pipelines.generate.judge import Distance, compare_sets, sampler_rate
from pipelines.generate.latents import (
    TrainingLatents,
    checkpoint_fingerprint,
    fit_priors,
    prior_provenance,
    sim_configs,
    training_latents,
)
from pipelines.generate.plots import plot_gamma_figure
from pipelines.generate.report import markdown_table
from pipelines.generate.run import run_generation
from pipelines.generate.sampling import (
    GeneratedSet,
    _process,
    check_decoder_precision,
    generate_configurations,
    model_temperature,
    write_generated,
)
from vae.checkpoint import latest_checkpoint

__all__ = [
    "FLOORS",
    "GenerateConfig",
    "GeneratedSet",
    "TrainingLatents",
    "Distance",
    "STREAM_RELAX",
    "checkpoint_fingerprint",
    "latest_checkpoint",
    "training_latents",
    "fit_priors",
    "prior_provenance",
    "sim_configs",
    "generate_configurations",
    "check_decoder_precision",
    "model_temperature",
    "write_generated",
    "relax_configurations",
    "compare_sets",
    "sampler_rate",
    "run_generation",
    "plot_gamma_figure",
    "markdown_table",
    "_process",
]
