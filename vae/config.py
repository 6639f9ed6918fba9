"""Settings of a VAE run: plain dataclasses with a lossless JSON round trip.

A :class:`RunConfig` holds everything needed to rebuild a model and its inputs from a
checkpoint alone: the data representation (:class:`DataConfig`), the architecture
(:class:`ModelConfig`), the loss (:class:`LossConfig`) and the optimisation
(:class:`TrainConfig`). Every config validates eagerly (in ``__post_init__``) and the
error names the bad field, e.g. ``model.latent_dim: must be a positive integer, got 0``.
Configs have no side effects; the CLI only fills them in and calls :func:`vae.training.train`.

The study's choices (docs/reference.md section 1) are available by name:
``DataConfig(sort="corner", scaling="study")`` (the defaults), ``ModelConfig(arch="study")``,
``LossConfig(form="lambda", weight=3.5e-4)`` (the default), ``TrainConfig(lr=1e-3,
batch_size=128)`` (the defaults).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from mcsim.clitools import UserError
from mcsim.shared import check_choice, check_int, check_number, fail, unknown_fields

__all__ = [
    "ConfigError",
    "REPRESENTATIONS",
    "SORT_KEYS",
    "SCALINGS",
    "LOSS_FORMS",
    "LR_SCHEDULES",
    "SELECTIONS",
    "ENERGY_MODES",
    "DataConfig",
    "ModelConfig",
    "LossConfig",
    "TrainConfig",
    "RunConfig",
]

#: Input representations: sorted distance matrices (N, N), coordinates (N, 2), occupancy grids.
REPRESENTATIONS = ("distance", "coords", "grid")
#: Particle sort keys: distance from the box corner (0, 0) (the study's), height y,
#: distance from the centre of mass, or the file's order.
SORT_KEYS = ("corner", "height", "com", "none")
#: Length scalings: divide by L*sqrt(2) (the study's), by L, or keep sigma units.
SCALINGS = ("study", "box", "none")
#: Loss forms: ``lambda``: recon + w KL (study); ``beta``: (1 - w) recon + w KL.
LOSS_FORMS = ("lambda", "beta")
#: Modes of the LJ energy term of the decoded configuration (vae.physical.energy_loss).
ENERGY_MODES = ("match", "particle", "boltzmann")
#: Learning-rate schedules.
LR_SCHEDULES = ("none", "plateau", "cosine")
#: What picks the kept epoch (TrainConfig.select; :mod:`vae.selection`).
SELECTIONS = ("loss", "physics")


def _architectures():
    """The architecture registry (:data:`vae.models.ARCHITECTURES`), imported on first use
    so that this module does not import torch."""
    from vae.models import ARCHITECTURES

    return ARCHITECTURES


def _arch_for(representation: str) -> tuple[str, ...]:
    """The architectures that take ``representation``."""
    return tuple(a.name for a in _architectures().values()
                 if representation in a.representations)


def __getattr__(name: str):
    # ARCHS: every architecture (vae.models, one module each: the default pair-decoder
    # VAE, conv VAE, the study's conv VAE, fully connected baseline, the physical VAEs);
    # DEFAULT_ARCH: the architecture each representation gets when none is named.
    if name == "ARCHS":
        return tuple(_architectures())
    if name == "DEFAULT_ARCH":
        return {rep: a.name for a in _architectures().values() for rep in a.default_for}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ConfigError(UserError, ValueError):
    """An invalid setting; the message starts with the dotted name of the field."""


def _fail(name: str, msg: str, value: Any) -> None:
    fail(name, msg, value, ConfigError)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    check_choice(name, value, choices, ConfigError)


#: Largest layer size a config may ask for (latent dimension, widths, channels): far
#: above any useful model, far below sizes that exhaust memory while building one.
MAX_SIZE = 1 << 16


def _check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    check_int(name, value, minimum, maximum, ConfigError)


def _check_float(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False,
                 hi_open: bool = False) -> None:
    check_number(name, value, lo, hi, lo_open=lo_open, hi_open=hi_open, error=ConfigError)


def _tuple_of_ints(name: str, value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        _fail(name, "must be a list of positive integers or null", value)
    out = tuple(value)
    if not out:
        _fail(name, "must not be empty", value)
    if len(out) > 64:
        _fail(name, "must have at most 64 entries", value)
    for v in out:
        _check_int(name, v, 1, MAX_SIZE)
    return out


def _from_dict(cls, d: Any, prefix: str):
    unknown = unknown_fields(cls, d, ConfigError, prefix)
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}: unknown setting")
    return cls(**d)


@dataclass
class DataConfig:
    """How dataset files become network inputs.

    Attributes:
        representation: ``distance`` (sorted distance matrices, (1, N, N)), ``coords``
            (sorted coordinates, (N, 2)) or ``grid`` (occupancy images, (1, H, W)).
        sort: particle order: ``corner`` (x^2 + y^2, the study's), ``height`` (y),
            ``com`` (distance from the centre of mass) or ``none``.
        scaling: length unit of the inputs: ``study`` (L*sqrt(2), so every distance is
            in [0, 1]), ``box`` (L) or ``none`` (sigma).
        grid_cell: occupancy-grid cell side, sigma. The default 0.5 sigma has a cell
            diagonal of 0.71 sigma, below the closest LJ approach (~0.9 sigma), so a
            cell holds at most one particle in liquid configurations.
        val_fraction, test_fraction: split fractions per gamma value.
        split_seed: seed of the stratified split.
        max_per_gamma: keep at most this many configurations per gamma (seeded by
            ``split_seed``; None keeps all). Used by ``--quick`` and benchmarks.
    """

    representation: str = "distance"
    sort: str = "corner"
    scaling: str = "study"
    grid_cell: float = 0.5
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    split_seed: int = 0
    max_per_gamma: int | None = None

    def __post_init__(self) -> None:
        _check_choice("data.representation", self.representation, REPRESENTATIONS)
        _check_choice("data.sort", self.sort, SORT_KEYS)
        _check_choice("data.scaling", self.scaling, SCALINGS)
        _check_float("data.grid_cell", self.grid_cell, 0.0, math.inf, lo_open=True,
                     hi_open=True)
        _check_float("data.val_fraction", self.val_fraction, 0.0, 0.5, lo_open=True)
        _check_float("data.test_fraction", self.test_fraction, 0.0, 0.5, lo_open=True)
        _check_int("data.split_seed", self.split_seed, 0)
        if self.max_per_gamma is not None:
            _check_int("data.max_per_gamma", self.max_per_gamma, 3)


@dataclass
class ModelConfig:
    """Architecture.

    Attributes:
        arch: ``pair`` (default: Conv2D encoder, decoder predicting each distance from
            a pair of particle embeddings; distance matrices only),
            ``conv`` (strided conv encoder, mirrored transposed-conv decoder; also for
            occupancy grids), ``study`` (the study's exact Conv2D VAE, distance matrices
            only) or ``fc`` (fully connected, the study's failed first attempts). The
            ``pair`` and ``conv`` decoders output symmetric, zero-diagonal, non-negative
            matrices by construction.
        latent_dim: dimension of the latent space (study: 40).
        channels: conv channels per encoder level (``conv``, ``pair``; default (32, 64)).
        patch: side of the non-overlapping patches of the first conv layer (default
            3 for distance matrices, 2 for occupancy grids).
        hidden: hidden widths of the ``fc`` encoder, mirrored in the decoder (default:
            the study's (45, 30, 15) on coordinates, (512, 128) on matrices and grids);
            of the ``pair`` MLP encoder (default (1024, 512); the ``pair`` decoder trunk
            takes the last width with either encoder).
        encoder: ``pair`` encoder, ``conv`` (default) or ``mlp`` (on the upper triangle).
        embed_dim: size k of a particle embedding in the ``pair`` decoder (default 16).
        pair_hidden: hidden widths of the ``pair`` decoder's pair MLP (default (32, 32)).
        decoder_gamma: ``coord``, ``pair2d``: the decoder also takes the field gamma.

    ``coord`` (:class:`vae.physical.CoordVAE`): the conv encoder; the decoder (widths
    ``hidden``, default (512, 512)) outputs 2D slot positions and their distances.
    ``pair2d`` (:class:`vae.physical.ProjectedPairVAE`): the ``pair`` VAE whose decoded
    matrix is projected onto 2D Euclidean distance matrices (same settings as ``pair``).
    """

    arch: str = "pair"
    latent_dim: int = 40
    channels: tuple[int, ...] | None = None
    patch: int | None = None
    hidden: tuple[int, ...] | None = None
    embed_dim: int | None = None
    pair_hidden: tuple[int, ...] | None = None
    encoder: str | None = None
    decoder_gamma: bool = False

    def __post_init__(self) -> None:
        archs = _architectures()
        _check_choice("model.arch", self.arch, tuple(archs))
        if not isinstance(self.decoder_gamma, bool):
            _fail("model.decoder_gamma", "must be true or false", self.decoder_gamma)
        gamma_archs = [a.name for a in archs.values() if a.takes_gamma]
        if self.decoder_gamma and self.arch not in gamma_archs:
            _fail("model.decoder_gamma", f"only the {' and '.join(gamma_archs)} archs take "
                  "gamma", self.arch)
        _check_int("model.latent_dim", self.latent_dim, 1, MAX_SIZE)
        self.channels = _tuple_of_ints("model.channels", self.channels)
        self.hidden = _tuple_of_ints("model.hidden", self.hidden)
        if self.patch is not None:
            _check_int("model.patch", self.patch, 1, MAX_SIZE)
        if self.embed_dim is not None:
            _check_int("model.embed_dim", self.embed_dim, 1, MAX_SIZE)
        self.pair_hidden = _tuple_of_ints("model.pair_hidden", self.pair_hidden)
        if self.encoder is not None:
            _check_choice("model.encoder", self.encoder, ("conv", "mlp"))


@dataclass
class LossConfig:
    """Loss = reconstruction + KL, both mean-reduced (as in the study).

    ``form="lambda"``: L = R + w * KL (study: w = lambda = 3.5e-4);
    ``form="beta"``:   L = (1 - w) R + w KL (w = beta in [0, 1]).
    R is the mean squared error (``distance``, ``coords``) or the binary cross-entropy
    (``grid``) per element; KL is the closed-form KL(q(z|x) || N(0, I)) averaged over
    the batch and the latent dimensions.

    Physics and permutation-invariant terms (distance matrices; :mod:`vae.physical`),
    added to the total: ``overlap_weight`` * the overlap penalty sum relu(r0 - r_ij)^2
    (sigma^2, r0 = ``overlap_radius``) of the decoded matrix, ``chamfer_weight`` * the
    Chamfer distance between sorted distance rows (input units^2), ``energy_weight`` *
    the LJ energy term of the decoded configuration (:func:`vae.physical.energy_loss`:
    ``energy_mode`` ``match`` (robust squared error of beta U_pair / N against the
    true configuration's), ``particle`` (the same slot by slot) or ``boltzmann``
    (beta U_pair / N); the LJ continued linearly below ``energy_clip`` sigma;
    ``energy_kt`` = kT of the data, epsilon), ``gravity_weight`` * the gravitational
    energy above the lowest particle of the decoded positions aligned to the true ones,
    matched like the pair energy (:func:`vae.physical.gravity_loss`; decoders that place
    particles only), ``pr_weight`` * the W1 (sigma) between the batch's decoded and true
    pair distances and ``height_weight`` * that between their heights above the lowest
    particle, per gamma (:func:`vae.physical.pair_distribution_loss`,
    :func:`vae.physical.height_distribution_loss`; the height term needs a decoder that
    places particles); ``energy_dist_weight`` * the W1 between their pair energies per
    particle (:func:`vae.physical.energy_distribution_loss`); ``box_weight`` * how far
    the decoded positions, aligned to the true ones, leave the box
    (:func:`vae.physical.box_loss`, sigma^2; decoders that place particles);
    ``placed_height_weight`` * the W1 (sigma) between the box-frame heights of the
    decoded shapes put in the box by the thermal placement (at kT = ``energy_kt``) and
    the true heights, per gamma (:func:`vae.physical.placed_height_loss`; decoders that
    place particles), averaged over ``placed_height_draws`` independent placements per
    shape; ``thermal_profile_weight`` * the mean squared difference (sigma^2) between
    the decoded and the true shape's sorted heights above the lowest particle averaged
    over orientations with the thermal placement's weights, configuration by
    configuration (:func:`vae.physical.thermal_profile_loss`; decoders that place
    particles). ``denoise``: the encoder sees positions displaced by
    N(0, denoise^2) per axis (sigma), the loss compares with the clean matrix (training
    only).

    Attributes:
        form: ``lambda`` or ``beta``.
        weight: lambda or beta.
        kl_warmup_epochs: multiply the KL weight by min(1, epoch / kl_warmup_epochs)
            (epochs counted from 1); 0 disables the warm-up.
        overlap_weight, overlap_radius, chamfer_weight, denoise: see above (0 = off).
        energy_weight, energy_mode, energy_clip, energy_kt: the energy term (weight
            0 = off).
        gravity_weight: the gravity term (0 = off; uses ``energy_kt``).
        pr_weight, height_weight, energy_dist_weight: the batch distribution terms
            (0 = off).
        box_weight: the box term (0 = off).
        placed_height_weight: the placed-height term (0 = off).
        placed_height_draws: placements per shape of that term (>= 1).
        thermal_profile_weight: the thermal-profile term (0 = off).
        match_slots: compare the decoded particles with the true ones they are matched
            to (:func:`vae.matching.match_slots`: rigid alignment and optimal
            assignment) instead of slot by slot, in the optimised reconstruction error
            and every term that pairs decoded and true particles; ``recon`` stays the
            sorted-matrix MSE as decoded (decoders that place particles).
    """

    form: str = "lambda"
    weight: float = 3.5e-4
    kl_warmup_epochs: int = 0
    overlap_weight: float = 0.0
    overlap_radius: float = 0.95
    chamfer_weight: float = 0.0
    denoise: float = 0.0
    energy_weight: float = 0.0
    energy_mode: str = "match"
    energy_clip: float = 0.9
    energy_kt: float = 0.75
    gravity_weight: float = 0.0
    pr_weight: float = 0.0
    height_weight: float = 0.0
    energy_dist_weight: float = 0.0
    box_weight: float = 0.0
    placed_height_weight: float = 0.0
    placed_height_draws: int = 1
    thermal_profile_weight: float = 0.0
    match_slots: bool = False

    def __post_init__(self) -> None:
        _check_choice("loss.form", self.form, LOSS_FORMS)
        hi = 1.0 if self.form == "beta" else math.inf
        _check_float("loss.weight", self.weight, 0.0, hi, hi_open=self.form != "beta")
        _check_int("loss.kl_warmup_epochs", self.kl_warmup_epochs, 0)
        _check_int("loss.placed_height_draws", self.placed_height_draws, 1, 1024)
        for name in ("overlap_weight", "chamfer_weight", "denoise", "energy_weight",
                     "gravity_weight", "pr_weight", "height_weight",
                     "energy_dist_weight", "box_weight", "placed_height_weight",
                     "thermal_profile_weight"):
            _check_float(f"loss.{name}", getattr(self, name), 0.0, math.inf, hi_open=True)
        _check_float("loss.overlap_radius", self.overlap_radius, 0.0, math.inf,
                     lo_open=True, hi_open=True)
        _check_choice("loss.energy_mode", self.energy_mode, ENERGY_MODES)
        if not isinstance(self.match_slots, bool):
            _fail("loss.match_slots", "must be true or false", self.match_slots)
        _check_float("loss.energy_clip", self.energy_clip, 0.0, math.inf, lo_open=True,
                     hi_open=True)
        _check_float("loss.energy_kt", self.energy_kt, 0.0, math.inf, lo_open=True,
                     hi_open=True)


@dataclass
class TrainConfig:
    """Optimisation.

    Attributes:
        epochs: maximum number of epochs.
        batch_size: minibatch size (study: 128).
        lr: Adam learning rate (study: 1e-3).
        patience: stop after this many epochs without a validation-loss improvement
            larger than ``min_delta`` (0 disables early stopping).
        min_delta: smallest improvement that counts, in loss units.
        lr_schedule: ``none``, ``plateau`` (halve the LR after patience/2 stale
            epochs) or ``cosine`` (cosine decay to lr/100 over ``epochs``).
        seed: seed of weight initialisation, shuffling and reparameterisation noise.
        device: ``cpu`` or ``cuda``.
        grad_clip: rescale each step's gradient to at most this global L2 norm
            (``torch.nn.utils.clip_grad_norm_``); 0 = off.
        ema: decay d of an exponential moving average of the weights, updated after
            every step (w_ema <- d w_ema + (1 - d) w); validation, early stopping,
            ``best.pt`` and the returned model use the averaged weights (Polyak
            averaging; measured worse than none on the physical VAE, see
            vae/README.md); 0 = off.
        select: what picks ``best.pt``: ``loss`` (the validation loss) or ``physics``
            (the physics score of :mod:`vae.selection`: energy, p(r) and rho(y) W1 of
            thermally placed decodings of the validation set against its Monte Carlo
            configurations; needs a distance representation and data files that record
            their simulation). With ``physics``, early stopping waits ``patience`` epochs
            without an improvement of either the score or the loss.
        mirror: probability with which each training configuration is replaced, in each
            step, by its mirror image x -> L - x (re-sorted and re-encoded like the
            data): the box's walls and the field are symmetric under it, so it is a
            configuration of the same ensemble; validation and test data are never
            mirrored. Holds a second copy of the training inputs in memory. 0 = off.
    """

    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    patience: int = 10
    min_delta: float = 0.0
    lr_schedule: str = "none"
    seed: int = 0
    device: str = "cpu"
    grad_clip: float = 0.0
    ema: float = 0.0
    select: str = "loss"
    mirror: float = 0.0

    def __post_init__(self) -> None:
        _check_int("train.epochs", self.epochs, 1)
        _check_int("train.batch_size", self.batch_size, 1)
        _check_float("train.lr", self.lr, 0.0, math.inf, lo_open=True, hi_open=True)
        _check_int("train.patience", self.patience, 0)
        _check_float("train.min_delta", self.min_delta, 0.0, math.inf, hi_open=True)
        _check_choice("train.lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _check_int("train.seed", self.seed, 0)
        _check_choice("train.device", self.device, ("cpu", "cuda"))
        _check_float("train.grad_clip", self.grad_clip, 0.0, math.inf, hi_open=True)
        _check_float("train.ema", self.ema, 0.0, 1.0, hi_open=True)
        _check_choice("train.select", self.select, SELECTIONS)
        _check_float("train.mirror", self.mirror, 0.0, 1.0)


@dataclass
class RunConfig:
    """All settings of one training run (saved in every checkpoint)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        for name, cls in (("data", DataConfig), ("model", ModelConfig), ("loss", LossConfig),
                          ("train", TrainConfig)):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name}: must be a {cls.__name__}, got "
                                  f"{type(getattr(self, name)).__name__}")
        ok = _arch_for(self.data.representation)
        if self.model.arch not in ok:
            raise ConfigError(f"model.arch: {self.model.arch!r} does not take the "
                              f"{self.data.representation!r} representation (use "
                              f"{' or '.join(ok)})")
        lo = self.loss
        for name in ("gravity_weight", "height_weight", "box_weight",
                     "placed_height_weight", "thermal_profile_weight", "match_slots"):
            if getattr(lo, name) and not _architectures()[self.model.arch].places_particles:
                placing = [a.name for a in _architectures().values() if a.places_particles]
                raise ConfigError(f"loss.{name}: needs a decoder that places particles "
                                  f"({' or '.join(placing)}), got {self.model.arch!r}")
        if (lo.overlap_weight or lo.chamfer_weight or lo.denoise or lo.energy_weight
                or lo.pr_weight or lo.energy_dist_weight) and \
                self.data.representation != "distance":
            raise ConfigError("loss: the overlap, Chamfer, energy, p(r) and denoising terms "
                              "need the distance representation, got "
                              f"{self.data.representation!r}")
        if self.train.select == "physics" and self.data.representation != "distance":
            raise ConfigError("train.select: 'physics' needs the distance representation, "
                              f"got {self.data.representation!r}")

    @property
    def recon(self) -> str:
        """Reconstruction loss: ``bce`` for occupancy grids, ``mse`` otherwise."""
        return "bce" if self.data.representation == "grid" else "mse"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for sub in d.values():  # tuples -> lists, so that JSON round trips compare equal
            for k, v in sub.items():
                if isinstance(v, tuple):
                    sub[k] = list(v)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Any) -> RunConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"config: must be a JSON object, got {type(d).__name__}")
        unknown = sorted(set(d) - {"data", "model", "loss", "train"})
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown config section")
        return cls(
            data=_from_dict(DataConfig, d.get("data", {}), "data"),
            model=_from_dict(ModelConfig, d.get("model", {}), "model"),
            loss=_from_dict(LossConfig, d.get("loss", {}), "loss"),
            train=_from_dict(TrainConfig, d.get("train", {}), "train"),
        )

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_dict(d)
