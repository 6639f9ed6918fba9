"""Latent priors for generation: where to draw z from before decoding.

A VAE is trained with the prior N(0, I), but the encoded training set (the aggregate
posterior q(z) = (1/M) sum_i N(z; mu_i, diag sigma_i^2)) rarely fills it: decoding
z ~ N(0, I) gives configurations with the wrong frequencies (Otten et al. 2019, seed
000; Orzari et al. 2020, seed 003). Each prior below is fitted to the encoded
training set (mu_z, logvar_z, gamma) and can be conditioned on the field gamma:

* :class:`StandardNormalPrior` (``normal``): z ~ N(0, I), the training prior; no gamma
  dependence.
* :class:`PCAGaussianPrior` (``pca``): the study's PCA sampling done correctly. With
  the principal axes v_k and explained variances lambda_k of the latent means of one
  gamma, z = m + sum_{k <= K} sqrt(lambda_k) eps_k v_k, eps ~ N(0, I): the Gaussian
  fitted to the latent means (the study used lambda_k itself as the standard
  deviation). K = D (default) is the full-covariance Gaussian; K < D truncates to
  the leading components as the study did. With ``aggregate=True`` the covariance is
  that of the aggregate posterior instead, Cov[mu] + E[diag sigma^2] (law of total
  variance).
* :class:`GMMPrior` (``gmm``): a Gaussian mixture (scikit-learn ``GaussianMixture``,
  full covariances) fitted to the latent means of each gamma.
* :class:`DensityBuffer` (``buffer``): Otten et al.'s density buffer. Stores
  (mu_i, sigma_i, gamma_i) of every encoded training configuration; a draw picks an
  entry i uniformly among those of the requested gamma, then
  z ~ N(mu_i, (alpha sigma_i + smudge)^2). alpha = 1, smudge = 0 samples the
  aggregate posterior; alpha = smudge = 0 returns exactly the stored means.
* :class:`FlowPrior` (``flow``): a normalizing flow (zuko; Papamakarios et al. 2017
  MAF, or Durkan et al. 2019 NSF) fitted by maximum likelihood to the standardized
  latent means with gamma as context, p(z | gamma). The default is an affine coupling
  flow (zuko MAF with ``passes=2``, i.e. RealNVP-like, Dinh et al. 2017): sampling
  is one pass per transform, ~100x faster than a fully autoregressive flow in D = 40.

Gamma rule (every prior, :meth:`LatentPrior.check_gamma`):

* ``gamma=None`` samples the mixture over the trained gammas, weighted by how many
  training configurations each has (for ``normal``: N(0, I)).
* A trained gamma (equal up to a relative 1e-9) samples that gamma only.
* Any other gamma is refused with a one-line error listing the trained gammas,
  except for ``flow``, which interpolates its context strictly inside the trained
  range [min, max] with a :class:`GammaInterpolationWarning`; outside the range it
  refuses too. ``normal`` has no gamma dependence but follows the same rule, so no
  prior ever claims to generate at a field the model never saw.

Files (:meth:`LatentPrior.save`, :func:`load_prior`): one ``.npz`` holding plain
arrays and a JSON string ``meta`` (format, version, prior name, every parameter,
trained gammas and counts, fit diagnostics, caller provenance such as the checkpoint
fingerprint). Flow weights are stored as arrays of the state dict. Loading uses
``numpy.load(allow_pickle=False)``: no code is ever executed. Round trips are exact.

Randomness: ``sample(n, gamma, seed)`` draws from
``numpy.random.default_rng(SeedSequence(seed, spawn_key=(1, bits(gamma))))``
(``(0,)`` for gamma None), so a gamma's samples do not depend on which other gammas
are asked for. The flow seeds torch inside ``torch.random.fork_rng`` from that
generator; the global torch state is left untouched.

Registry: one module per prior in this package (``normal``, ``pca``, ``gmm``,
``buffer``, ``flow``), each defining ``PRIOR``, a :class:`PriorSpec` (name, class,
label, description, colour, the generation settings it takes, whether it is seeded).
:data:`PRIOR_SPECS` collects them in report order; :func:`build_prior`, the
``generate`` config, CLI and figures read it. Adding a prior is one new module here
plus its test (and, if it has settings of its own, their fields in
:class:`pipelines.generate.GenerateConfig`).
"""

from __future__ import annotations

from mcsim.shared import discover
from vae.priors.base import (
    PRIOR_FORMAT,
    GammaInterpolationWarning,
    LatentPrior,
    PriorError,
    PriorSpec,
)
from vae.priors.buffer import DensityBuffer
from vae.priors.flow import FLOW_KINDS, FlowPrior
from vae.priors.gmm import GMMPrior
from vae.priors.io import build_prior, load_prior
from vae.priors.normal import StandardNormalPrior
from vae.priors.pca import PCAGaussianPrior

__all__ = [
    "PRIORS",
    "PRIOR_SPECS",
    "PRIOR_FORMAT",
    "FLOW_KINDS",
    "PriorError",
    "PriorSpec",
    "GammaInterpolationWarning",
    "LatentPrior",
    "StandardNormalPrior",
    "PCAGaussianPrior",
    "GMMPrior",
    "DensityBuffer",
    "FlowPrior",
    "build_prior",
    "load_prior",
]


#: every prior, by name, in report order
PRIOR_SPECS: dict[str, PriorSpec] = discover(__name__, "PRIOR", PriorSpec)
#: Names of the priors, in the order they are reported.
PRIORS: tuple[str, ...] = tuple(PRIOR_SPECS)
