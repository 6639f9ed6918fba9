"""VAE architectures: the default pair VAE, conv VAE, the study's conv VAE, FC baselines.

Every model is a :class:`VAE` with the pytorch/examples interface

* ``encode(x) -> (mu_z, logvar_z)``, each (B, D);
* ``reparameterize(mu_z, logvar_z) -> z = mu_z + exp(logvar_z / 2) * eps``, eps ~ N(0, I)
  (Kingma & Welling 2014, "Auto-Encoding Variational Bayes", section 2.4);
* ``decode(z) -> x_hat`` with the shape of the input;
* ``forward(x) -> VAEOutput(x_hat, mu_z, logvar_z, z, logits)``.

Input shapes (from :func:`vae.data.make_inputs`): distance matrices (B, 1, N, N),
coordinates (B, N, 2), occupancy grids (B, 1, H, W). Models with a Bernoulli output
(occupancy grids) also return the pre-sigmoid ``logits`` so that the BCE is computed
stably; ``x_hat`` is then the pixel probability.

Architectures
-------------
``PairVAE`` (``arch="pair"``, the default on distance matrices): the conv encoder of
``ConvVAE`` by default (``encoder="mlp"``: an MLP with batch norm on the N(N-1)/2
upper-triangle distances); the decoder maps z to one embedding
e_i per particle slot and one small MLP g, shared by all pairs, gives

    D_ij = D_ji = d_max * sigmoid(g([e_i + e_j, |e_i - e_j|, (e_i - e_j)^2])),  D_ii = 0,

a plausible distance matrix by construction (see the class docstring).

``ConvVAE`` (``arch="conv"``, the default on occupancy grids): a conv over
non-overlapping 3x3 patches (stride 3: 30 -> 10, 32 channels), a 3x3 stride-2 conv
(10 -> 5, 64 channels), batch norm and ReLU after each, one linear layer to (mu_z,
logvar_z); the decoder mirrors it with transposed convs. On distance matrices the
decoder's raw output A becomes

    D = d_max * sigmoid((A + A^T) / 2) * (1 - I),

so every decoded matrix is symmetric, has a zero diagonal and 0 <= D_ij <= d_max
(d_max = box diagonal in input units, 1 with the study scaling): a plausible distance
matrix by construction. About 1.2 MMAC per sample forward, 58x less than the study's
68 MMAC; strided, non-overlapping first and last layers keep the CPU cost low.

``StudyConvVAE`` (``arch="study"``): the study's exact network (docs/reference.md section 1;
Keras defaults: "valid" padding in the encoder, "same" in the decoder, ReLU, Glorot-
uniform weights, zero biases). The padding follows from the study's 4.6 M parameters
and ~410 MFLOP per sample per training step (docs/reference.md section 4)::

    Conv2D(60, 3x3) -> Conv2D(50, 3x3) -> Flatten (50*26*26) -> Dense(40) x 2 (mu, logvar)
    Dense(50*30*30) -> ConvT(50, 3x3) -> ConvT(60, 3x3) -> ConvT(1, 3x3, sigmoid)

``CoordVAE`` (``arch="coord"``, in :mod:`vae.physical`): the conv encoder and a decoder
that places the N particles in 2D and outputs their distances, an exact Euclidean
distance matrix by construction.

``FCVAE`` (``arch="fc"``): fully connected encoder and mirrored decoder on flattened
inputs, the study's failed first attempts (on coordinates: 60 -> 45 -> 30 -> 15 ->
latent, sigmoid output), kept as ablation baselines.

On occupancy grids (``representation="grid"``) ``ConvVAE`` (patch 2) and ``FCVAE``
output Bernoulli logits and are trained with the binary cross-entropy.

Registry
--------
One module per architecture in this package (``pair``, ``conv``, ``study``, ``fc``,
``coord``, ``pair2d``), each defining ``ARCHITECTURE``, a :class:`Architecture` (name,
class, builder from a :class:`vae.config.RunConfig`, representations it takes, the
representations it is the default for, whether its decoder takes gamma, a description).
:data:`ARCHITECTURES` collects them; :func:`build_model` and the config's checks
(``model.arch``, ``DEFAULT_ARCH``) read it, so adding an architecture is one new module
here plus its test.
"""

from __future__ import annotations

import torch
from torch import nn

from mcsim.shared import discover
from vae.models.base import VAE, Architecture, VAEOutput
from vae.models.conv import ConvVAE
from vae.models.fc import FCVAE
from vae.models.pair import PairVAE
from vae.models.study import StudyConvVAE

__all__ = [
    "VAEOutput",
    "VAE",
    "Architecture",
    "ARCHITECTURES",
    "ConvVAE",
    "PairVAE",
    "StudyConvVAE",
    "FCVAE",
    "build_model",
    "count_parameters",
]


#: every architecture, by ``model.arch`` name, in listing order
ARCHITECTURES: dict[str, Architecture] = discover(__name__, "ARCHITECTURE", Architecture)


def build_model(cfg, n_particles: int, box: float, seed: int | None = None) -> VAE:
    """The model a config describes, for N particles in a box of side L (sigma).

    Weights are initialised from ``torch.manual_seed(seed)`` inside
    :func:`torch.random.fork_rng`, so the caller's global RNG state is left untouched
    (``seed=None`` uses ``cfg.train.seed``).
    """
    seed = cfg.train.seed if seed is None else seed
    arch = ARCHITECTURES[cfg.model.arch]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return arch.build(cfg, n_particles, box)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
