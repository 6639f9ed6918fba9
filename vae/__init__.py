"""vae: variational autoencoders on Monte Carlo configurations of the 2D LJ fluid.

One concept per module:

* :mod:`vae.config`: run settings (dataclasses with JSON round trip);
* :mod:`vae.data`: representations (sorted distance matrices, coordinates, occupancy
  grids), dataset merging, fingerprint, stratified split;
* :mod:`vae.models`: the default pair VAE, the conv VAE, the study's conv VAE, FC baselines;
* :mod:`vae.physical`: the coord VAE (decoded matrices are exact 2D distance matrices),
  overlap penalty, sorted-row Chamfer term;
* :mod:`vae.loss`: reconstruction + KL (closed form), with all parts returned;
* :mod:`vae.training`: training loop, checkpoints every epoch, resume, history;
* :mod:`vae.checkpoint`: safe (weights-only) checkpoints and :class:`TrainedVAE`;
* :mod:`vae.latent`: PCA, t-SNE, KL ranking, traversals, decoded origin, gamma probe;
* :mod:`vae.sweep`: latent dimension x KL weight sweeps;
* :mod:`vae.cli`: the ``train-vae`` command.

Nothing runs at import time.
"""

from vae.checkpoint import (
    CheckpointError,
    DataInfo,
    TrainedVAE,
    latest_checkpoint,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from vae.config import (
    ConfigError,
    DataConfig,
    LossConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)
from vae.data import (
    Split,
    coordinates,
    dataset_fingerprint,
    distance_matrices,
    load_data,
    make_inputs,
    occupancy_grids,
    sort_particles,
    stratified_split,
)
from vae.latent import (
    GammaProbe,
    LatentPCA,
    active_dimensions,
    analyze,
    decode_origin,
    encode_latent,
    gamma_probe,
    kl_per_dimension,
    latent_pca,
    latent_traversal,
    latent_tsne,
)
from vae.loss import LossParts, kl_standard_normal, vae_loss
from vae.models import FCVAE, VAE, ConvVAE, PairVAE, StudyConvVAE, VAEOutput, build_model
from vae.physical import CoordVAE
from vae.sweep import run_sweep
from vae.training import PreparedData, TrainResult, prepare_data, set_seed, train

__all__ = [
    "CoordVAE",
    "CheckpointError",
    "DataInfo",
    "TrainedVAE",
    "latest_checkpoint",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
    "ConfigError",
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
    "Split",
    "coordinates",
    "dataset_fingerprint",
    "distance_matrices",
    "load_data",
    "make_inputs",
    "occupancy_grids",
    "sort_particles",
    "stratified_split",
    "GammaProbe",
    "LatentPCA",
    "active_dimensions",
    "analyze",
    "decode_origin",
    "encode_latent",
    "gamma_probe",
    "kl_per_dimension",
    "latent_pca",
    "latent_traversal",
    "latent_tsne",
    "LossParts",
    "kl_standard_normal",
    "vae_loss",
    "FCVAE",
    "VAE",
    "ConvVAE",
    "PairVAE",
    "StudyConvVAE",
    "VAEOutput",
    "build_model",
    "run_sweep",
    "PreparedData",
    "TrainResult",
    "prepare_data",
    "set_seed",
    "train",
]
