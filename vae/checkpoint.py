"""Checkpoints: weights + full config + dataset description, loaded without running code.

A checkpoint is a ``torch.save`` file holding only tensors, numbers and strings:

==================  ========================================================
key                 content
==================  ========================================================
``format``          ``"ljvae-vae-checkpoint"``; ``format_version``
``config``          the :class:`vae.config.RunConfig` as JSON
``data_info``       :class:`DataInfo` as JSON: N, L, dataset fingerprint, files,
                    gamma values, split sizes
``model``           the model's ``state_dict``
``split``           int64 index tensors ``train``, ``val``, ``test``
``epoch``           the last finished epoch (1-based)
``history``         JSON list of per-epoch records
``train_state``     optimiser / scheduler state, RNG states, early-stopping state
                    (``last.pt`` only; needed by ``--resume``)
==================  ========================================================

It is read with ``torch.load(weights_only=True)``, which refuses pickled code, so a
checkpoint alone rebuilds the model (:func:`load_model`) and turns new positions into
inputs with the saved representation, sort key and scaling (:class:`TrainedVAE`);
data with another N, box, or input shape is rejected.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcsim.clitools import UserError, atomic_output
from vae.config import ConfigError, RunConfig
from vae.data import Split, input_shape, length_scale, make_inputs
from vae.models import ARCHITECTURES, VAE, build_model

__all__ = [
    "CHECKPOINT_FORMAT",
    "DECODER_PRECISIONS",
    "CheckpointError",
    "DataInfo",
    "Checkpoint",
    "TrainedVAE",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
    "latest_checkpoint",
    "default_checkpoint",
    "announce_checkpoint",
    "is_sweep_member",
]

CHECKPOINT_FORMAT = "ljvae-vae-checkpoint"
CHECKPOINT_VERSION = 1
#: Precisions of :meth:`TrainedVAE.decode_positions`: ``bfloat16`` runs the hidden
#: layers of the decoder in bfloat16 and its output layer in float32.
DECODER_PRECISIONS = ("float32", "bfloat16")
#: Largest particle number a checkpoint may describe (the guard's first line; the
#: model's memory is estimated before it is built).
MAX_PARTICLES = 100_000


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable, or does not fit the data."""


@dataclass
class DataInfo:
    """What a model was trained on.

    Attributes:
        n_particles: N.
        box: box side L, sigma.
        fingerprint: :func:`vae.data.dataset_fingerprint` of the (subsampled) data.
        files: the dataset files, as given.
        gammas: distinct gamma values.
        n_configs: number of configurations (after subsampling).
    """

    n_particles: int
    box: float
    fingerprint: str
    files: list[str] = field(default_factory=list)
    gammas: list[float] = field(default_factory=list)
    n_configs: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DataInfo:
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ValueError(f"data_info: must be a JSON object, got {type(d).__name__}")
        unknown = sorted(set(d) - {f for f in cls.__dataclass_fields__})
        if unknown:
            raise ValueError(f"data_info.{unknown[0]}: unknown field")
        info = cls(**d)
        info.validate()
        return info

    def validate(self) -> None:
        """Type and range of every field (a crafted checkpoint must not get further)."""
        from mcsim.shared import is_int
        from mcsim.shared import is_number as is_num

        checks = (
            ("n_particles", is_int(self.n_particles) and 2 <= self.n_particles <= MAX_PARTICLES,
             f"an integer in [2, {MAX_PARTICLES}]"),
            ("box", is_num(self.box) and self.box > 0, "a positive number"),
            ("fingerprint", isinstance(self.fingerprint, str), "a string"),
            ("files", isinstance(self.files, list)
             and all(isinstance(f, str) for f in self.files), "a list of file names"),
            ("gammas", isinstance(self.gammas, list)
             and all(is_num(g) and g >= 0 for g in self.gammas), "a list of numbers >= 0"),
            ("n_configs", is_int(self.n_configs) and self.n_configs >= 0, "an integer >= 0"),
        )
        for name, ok, what in checks:
            if not ok:
                raise ValueError(f"data_info.{name}: must be {what}, got "
                                 f"{getattr(self, name)!r}")


@dataclass
class Checkpoint:
    """A loaded checkpoint (see the module docstring); ``train_state`` is None for
    ``best.pt``."""

    config: RunConfig
    info: DataInfo
    state_dict: dict[str, torch.Tensor]
    split: Split
    epoch: int
    history: list[dict[str, Any]]
    train_state: dict[str, Any] | None
    path: Path | None = None


def save_checkpoint(path: str | os.PathLike, model: VAE, config: RunConfig, info: DataInfo,
                    split: Split, *, epoch: int, history: list[dict[str, Any]],
                    train_state: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically (a temporary file renamed into place), so an
    interruption never leaves a half-written checkpoint."""
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "config": config.to_json(),
        "data_info": info.to_json(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "split": {k: torch.as_tensor(getattr(split, k), dtype=torch.int64)
                  for k in ("train", "val", "test")},
        "epoch": int(epoch),
        "history": json.dumps(history),
    }
    if train_state is not None:
        payload["train_state"] = train_state
    with atomic_output(path, overwrite=True) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> Checkpoint:
    """Read a checkpoint with ``torch.load(weights_only=True)`` (no code is executed).

    Raises:
        CheckpointError: missing or unreadable file, or not an ljvae VAE checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint")
    try:
        d = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # any unpickling failure means a bad file
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "weights only" in msg.lower() or "weights_only" in msg:
            msg = ("not a torch file of tensors; pickled Python objects are never loaded")
        raise CheckpointError(f"{p}: not a loadable checkpoint ({msg[:200]})") from None
    if not isinstance(d, dict) or d.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{p}: not an ljvae VAE checkpoint")
    _check_payload(d, p)
    try:
        config = RunConfig.from_json(d["config"])
        info = DataInfo.from_json(d["data_info"])
        split = Split(*(d["split"][k].numpy().astype(np.int64) for k in ("train", "val", "test")))
        history = json.loads(d["history"])
        epoch = int(d["epoch"])
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"{p}: incomplete or inconsistent checkpoint ({exc})") from None
    if not isinstance(history, list):
        raise CheckpointError(f"{p}: history must be a JSON list")
    for name, idx in (("train", split.train), ("val", split.val), ("test", split.test)):
        if idx.size and (idx.min() < 0 or (info.n_configs and idx.max() >= info.n_configs)):
            raise CheckpointError(f"{p}: split.{name} indexes outside the "
                                  f"{info.n_configs} configurations")
    return Checkpoint(config, info, d["model"], split, epoch, history, d.get("train_state"), p)


def _check_payload(d: dict, p: Path) -> None:
    """Types of the checkpoint's top-level entries (see the module docstring)."""
    v = d.get("format_version")
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise CheckpointError(f"{p}: format_version must be a positive integer, got {v!r}")
    if v > CHECKPOINT_VERSION:
        raise CheckpointError(f"{p}: checkpoint format {v} is newer than this ljvae")
    want = {"config": str, "data_info": str, "history": str, "model": dict, "split": dict,
            "epoch": int}
    for k, t in want.items():
        if k not in d:
            raise CheckpointError(f"{p}: incomplete checkpoint (no {k!r})")
        if not isinstance(d[k], t) or isinstance(d[k], bool):
            pre = "weights do not match the saved architecture: " if k == "model" else ""
            raise CheckpointError(f"{p}: {pre}{k} must be a {t.__name__}, got "
                                  f"{type(d[k]).__name__}")
    if d["epoch"] < 0:
        raise CheckpointError(f"{p}: epoch must be >= 0, got {d['epoch']}")
    if not all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in d["model"].items()):
        raise CheckpointError(f"{p}: weights do not match the saved architecture: model "
                              "must map parameter names to tensors")
    for k in ("train", "val", "test"):
        t = d["split"].get(k)
        if not isinstance(t, torch.Tensor) or t.ndim != 1 or t.dtype.is_floating_point:
            raise CheckpointError(f"{p}: split.{k} must be a 1-D integer tensor")
    if "train_state" in d and not isinstance(d["train_state"], dict):
        raise CheckpointError(f"{p}: train_state must be a dict")


class TrainedVAE:
    """A model with everything needed to use it on new data.

    Attributes:
        model: the :class:`vae.models.VAE`, in eval mode.
        config: its :class:`RunConfig`.
        info: its :class:`DataInfo`.
        split: the train/val/test split of the training data.
    """

    def __init__(self, model: VAE, config: RunConfig, info: DataInfo, split: Split,
                 epoch: int = 0) -> None:
        self.model, self.config, self.info, self.split, self.epoch = (
            model.eval(), config, info, split, epoch)
        self._bfloat16 = None  # the bfloat16 decoder, made on first use

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input: (1, N, N), (N, 2) or (1, H, W)."""
        return input_shape(self.config.data, self.info.n_particles, self.info.box)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def check_positions(self, positions: np.ndarray, box: float | None = None) -> None:
        """Reject positions (M, N, 2) whose N or box differ from the training data's."""
        pos = np.asarray(positions)
        if pos.ndim != 3 or pos.shape[2] != 2:
            raise CheckpointError(f"positions: expected shape (M, N, 2), got {pos.shape}")
        if pos.shape[1] != self.info.n_particles:
            raise CheckpointError(f"data has N={pos.shape[1]} particles but the model was "
                                  f"trained on N={self.info.n_particles}")
        if box is not None and not np.isclose(box, self.info.box, rtol=1e-9):
            raise CheckpointError(f"data has box L={box:g} but the model was trained on "
                                  f"L={self.info.box:g}")
        if not np.all(np.isfinite(pos)):
            raise CheckpointError("positions contain NaN or inf")

    def inputs(self, positions: np.ndarray, box: float | None = None) -> np.ndarray:
        """Network inputs for positions (M, N, 2) in sigma, with the saved representation,
        sort key and scaling (float32)."""
        self.check_positions(positions, box)
        return make_inputs(positions, self.info.box, self.config.data)

    def check_inputs(self, x: np.ndarray | torch.Tensor) -> None:
        """Reject inputs whose shape is not this model's representation, or that contain
        NaN or inf."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise CheckpointError(
                f"inputs have shape {tuple(x.shape[1:])} per configuration, but the model "
                f"takes {self.config.data.representation!r} inputs of shape "
                f"{self.input_shape} (N={self.info.n_particles})")
        finite = torch.isfinite(x).all() if isinstance(x, torch.Tensor) else np.isfinite(x).all()
        if not finite:
            raise CheckpointError("inputs contain NaN or inf")

    @torch.no_grad()
    def encode(self, x: np.ndarray, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """(mu_z, logvar_z), each (M, D) float32, for inputs ``x`` (see :meth:`inputs`)."""
        self.check_inputs(x)
        mus, lvs = [], []
        for a in range(0, len(x), batch_size):
            xb = torch.as_tensor(np.asarray(x[a:a + batch_size]), device=self.device)
            mu, lv = self.model.encode(xb)
            mus.append(mu.cpu().numpy())
            lvs.append(lv.cpu().numpy())
        d = self.model.latent_dim
        if not mus:
            return np.zeros((0, d), np.float32), np.zeros((0, d), np.float32)
        return np.concatenate(mus), np.concatenate(lvs)

    def _latents_and_gamma(self, z: np.ndarray, gamma: float | np.ndarray | None
                           ) -> tuple[np.ndarray, np.ndarray | None]:
        """Checked latent vectors (M, D) as contiguous float32 and, for decoders that take
        the field, gamma broadcast to (M,) float32 (None for the others)."""
        z = np.ascontiguousarray(z, dtype=np.float32)
        d = self.model.latent_dim
        if z.ndim != 2 or z.shape[1] != d:
            raise CheckpointError(f"latent vectors: expected shape (M, {d}), got {z.shape}")
        if not np.isfinite(z).all():
            raise CheckpointError("latent vectors contain NaN or inf")
        if not self.model.needs_gamma:
            return z, None
        if gamma is None:
            raise CheckpointError("this model's decoder takes gamma: give the field "
                                  "strength of the configurations")
        return z, np.array(np.broadcast_to(np.asarray(gamma, np.float32), (len(z),)))

    @torch.no_grad()
    def decode(self, z: np.ndarray, batch_size: int = 1024,
               gamma: float | np.ndarray | None = None) -> np.ndarray:
        """Decoded inputs for latent vectors z (M, D): (M, *input_shape), float32.
        ``gamma`` (scalar or (M,)) is required by decoders that take the field
        (``model.needs_gamma``) and ignored by the others."""
        z, g = self._latents_and_gamma(z, gamma)
        out = [self.model.decode(torch.as_tensor(z[a:a + batch_size], device=self.device),
                                 None if g is None else torch.as_tensor(g[a:a + batch_size]))
               .cpu().numpy() for a in range(0, len(z), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, *self.input_shape), np.float32)

    def reconstruct(self, x: np.ndarray, batch_size: int = 1024,
                    gamma: float | np.ndarray | None = None) -> np.ndarray:
        """Deterministic reconstruction decode(mu_z(x)) of inputs x (``gamma``: see
        :meth:`decode`)."""
        mu, _ = self.encode(x, batch_size)
        return self.decode(mu, batch_size, gamma)

    # -- seams shared by the pipelines (anomaly, generate, the study's stages) --------

    def require_distance(self, what: str = "this step") -> None:
        """Raise a CheckpointError unless the model takes distance matrices."""
        rep = self.config.data.representation
        if rep != "distance":
            raise CheckpointError(f"{what} needs a distance-matrix model; this one takes "
                                  f"{rep!r} inputs")

    def training_data(self, files: list[str | os.PathLike] | None = None):
        """The model's training data re-read with its saved data settings and verified.

        Args:
            files: the data files (default: the files the checkpoint names).

        Returns:
            The :class:`vae.training.PreparedData` (positions, inputs, split), whose
            fingerprint equals the one recorded at training.

        Raises:
            CheckpointError: no files, or files whose data differ from the training data.
        """
        from vae.training import prepare_data

        names = [str(f) for f in (self.info.files if files is None else files)]
        if not names:
            raise CheckpointError("the checkpoint names no training data files")
        data = prepare_data(self.config, names)
        if data.info.fingerprint != self.info.fingerprint:
            raise CheckpointError(
                f"data {', '.join(names)} differ from what the model was trained on "
                f"(fingerprint {data.info.fingerprint} != {self.info.fingerprint})")
        return data

    @property
    def places_particles(self) -> bool:
        """Whether the model's decoder outputs slot positions
        (:attr:`vae.models.Architecture.places_particles`), so that
        :meth:`decode_positions` applies."""
        return ARCHITECTURES[self.config.model.arch].places_particles

    @property
    def decoder_precisions(self) -> tuple[str, ...]:
        """The :data:`DECODER_PRECISIONS` :meth:`decode_positions` offers for this model
        (``bfloat16`` needs a decoder with ``bfloat16_decoder``: arch ``coord``)."""
        if self.places_particles and hasattr(self.model, "bfloat16_decoder"):
            return DECODER_PRECISIONS
        return ("float32",)

    @torch.inference_mode()
    def decode_positions(self, z: np.ndarray, batch_size: int = 256,
                         gamma: float | np.ndarray | None = None,
                         precision: str = "float32") -> np.ndarray:
        """Decoded slot positions in sigma for latent vectors z (M, D), for models whose
        decoder places the particles (:attr:`places_particles`): ``model.decode_coords``
        (input units, an arbitrary rigid frame) times the length scale; (M, N, 2)
        float64. Their distances are what :meth:`decode_distances` returns (up to
        float32 rounding), so the Gram embedding of those would give these positions up
        to a rigid motion. ``gamma``: see :meth:`decode`; batches of ``batch_size``
        (torch's float32 results depend on the batch shape, so keep it fixed for
        reproducible output; 256 is the fastest on one thread for 512-wide layers).
        ``precision`` (:data:`DECODER_PRECISIONS`): ``float32``, or ``bfloat16`` for the
        hidden layers in bfloat16 and the output layer in float32
        (:meth:`vae.physical.CoordVAE.bfloat16_decoder`, made on first use and kept:
        a TrainedVAE's weights do not change; faster on CPUs with bfloat16
        instructions, positions within 1-3e-3 sigma RMS of float32)."""
        if precision not in DECODER_PRECISIONS:
            raise CheckpointError(f"decoder precision: must be one of "
                                  f"{', '.join(DECODER_PRECISIONS)}, got {precision!r}")
        if not self.places_particles:
            raise CheckpointError(f"decoding to positions needs an architecture that places "
                                  f"particles; {self.config.model.arch!r} does not")
        self.require_distance("decoding to positions")
        if precision not in self.decoder_precisions:
            raise CheckpointError(f"decoder precision {precision}: arch "
                                  f"{self.config.model.arch!r} offers only "
                                  f"{', '.join(self.decoder_precisions)}")
        z, g = self._latents_and_gamma(z, gamma)
        scale = length_scale(self.config.data.scaling, self.info.box)  # input units -> sigma
        n = self.info.n_particles
        out = np.empty((len(z), n, 2))
        zt = torch.from_numpy(z).to(self.device)
        gt = None if g is None else torch.from_numpy(g).to(self.device)
        decode = self.model.decode_coords
        if precision == "bfloat16":
            if self._bfloat16 is None:
                self._bfloat16 = self.model.bfloat16_decoder()
            decode = self._bfloat16
        for a in range(0, len(z), batch_size):
            c = decode(zt[a:a + batch_size], None if gt is None else gt[a:a + batch_size])
            np.multiply(c.cpu().numpy(), scale, out=out[a:a + batch_size])
        return out

    def decode_distances(self, z: np.ndarray, batch_size: int = 1024,
                         gamma: float | np.ndarray | None = None) -> np.ndarray:
        """Decoded distance matrices in sigma for latent vectors z (M, D): the decoder's
        output (input units) times the length scale, symmetrized with a zero diagonal
        (:func:`reconstruct.distances.symmetrize_distances`); (M, N, N) float64.
        ``gamma``: see :meth:`decode`."""
        from reconstruct.distances import symmetrize_distances

        self.require_distance("decoding to distances")
        scale = length_scale(self.config.data.scaling, self.info.box)  # input units -> sigma
        dec = self.decode(z, batch_size, gamma)
        return symmetrize_distances(dec[:, 0].astype(np.float64) * scale)


def load_model(path: str | os.PathLike, device: str = "cpu") -> TrainedVAE:
    """Rebuild the trained model from a checkpoint file alone."""
    from vae.guard import check_model_memory

    ck = load_checkpoint(path, map_location=device)
    try:
        check_model_memory(ck.config, ck.info.n_particles, ck.info.box, bytes_per_param=8)
        model = build_model(ck.config, ck.info.n_particles, ck.info.box)
    except CheckpointError:
        raise
    except (UserError, ValueError, RuntimeError, TypeError, OverflowError) as exc:
        raise CheckpointError(f"{path}: cannot build its model ({str(exc).splitlines()[0]})"
                              ) from None
    try:
        model.load_state_dict(ck.state_dict)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path}: weights do not match the saved architecture "
                              f"({str(exc).splitlines()[0]})") from None
    return TrainedVAE(model.to(device), ck.config, ck.info, ck.split, ck.epoch)


def is_sweep_member(path: str | os.PathLike) -> bool:
    """Whether a checkpoint is one run of a latent-dimension x weight sweep
    (``<sweep>/ld<D>_w<W>/best.pt``, :mod:`vae.sweep`) rather than a run's main model."""
    import re

    run = Path(path).parent
    return (re.fullmatch(r"ld\d+_w.+", run.name) is not None
            or any((run.parent / f).is_file() for f in ("sweep.csv", "sweep.json")))


def latest_checkpoint(root: str | os.PathLike = "runs") -> Path:
    """The main model of the newest run under ``root``: the most recently modified
    ``best.pt`` (recursive; ties broken by path) that is not a sweep member (a study's
    ``train/best.pt``, a ``train-vae`` run's ``best.pt``); a sweep member only if it is
    the only checkpoint there. The default model of ``anomaly-test`` and ``generate``.

    Raises:
        CheckpointError: there is none, or only several sweep members.
    """
    r = Path(root)
    found = sorted((p for p in r.rglob("best.pt") if p.is_file()),
                   key=lambda p: (p.stat().st_mtime, str(p))) if r.is_dir() else []
    if not found:
        raise CheckpointError(f"no best.pt found under {r}/ (train one with train-vae)")
    main = [p for p in found if not is_sweep_member(p)]
    if main:
        return main[-1]
    if len(found) == 1:
        return found[0]
    raise CheckpointError(f"under {r}/ only sweep members ({len(found)} best.pt files in "
                          "ld<D>_w<W> folders): choose one")


def default_checkpoint(root: str | os.PathLike = "runs") -> Path:
    """For a command run without ``--checkpoint``: :func:`latest_checkpoint` of
    ``root``, with errors that name the flag (the command prints the path it uses once
    its input is validated: :func:`announce_checkpoint`)."""
    try:
        return latest_checkpoint(root)
    except CheckpointError as exc:
        raise UserError(f"--checkpoint: {exc}; pass --checkpoint") from None


def announce_checkpoint(prog: str, path: str | os.PathLike) -> None:
    """``<prog>: using checkpoint <path>`` on stderr (a model chosen by default)."""
    import sys

    sys.stderr.write(f"{prog}: using checkpoint {path}\n")
