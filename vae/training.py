"""Training: Adam, early stopping, LR schedules, checkpoints, resume, history, loss curve.

:func:`prepare_data` turns dataset files into inputs and a stratified split;
:func:`train` fits a model in a run directory::

    run_dir/
        config.json      the RunConfig
        last.pt          checkpoint after every epoch (with optimiser and RNG state)
        best.pt          the weights with the lowest validation loss (or physics
                         score: TrainConfig.select, :mod:`vae.selection`)
        history.csv      one row per epoch (also history.json)
        loss_curve.png   train / validation loss, reconstruction and KL per epoch
        metrics.json     test-set metrics of the best model
        analysis/        latent-space figures (written by ``train-vae`` through
                         :func:`vae.latent.analyze`)

Determinism: weights are initialised from ``cfg.train.seed``; minibatch order and
reparameterisation noise come from two ``torch.Generator`` objects seeded from it
whose states are saved in ``last.pt``, so a run resumed after an interruption
continues exactly as the uninterrupted run would have, bit for bit, on the same
device and thread count (other thread counts change float rounding: ~1e-6 relative
after a few epochs). Validation and test losses use z = mu_z (no sampling) and the full KL weight
(no warm-up), so they are deterministic and comparable across epochs.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mcsim.clitools import UserError, atomic_output
from mcsim.io import Dataset, DatasetError
from mcsim.shared import save_figure
from vae.checkpoint import DataInfo, load_checkpoint, save_checkpoint
from vae.config import RunConfig
from vae.data import (
    Split,
    coordinates,
    dataset_fingerprint,
    length_scale,
    load_data,
    make_inputs,
    stratified_split,
    subsample_per_gamma,
)
from vae.loss import vae_loss
from vae.matching import match_slots, permute_slots
from vae.models import VAE, build_model
from vae.physical import pair_distance_matrix
from vae.selection import PhysicsScore, SelectionError

__all__ = [
    "HISTORY_FIELDS",
    "RUN_FILES",
    "PreparedData",
    "TrainResult",
    "set_seed",
    "resolve_device",
    "RunDirError",
    "check_run_dir",
    "prepare_data",
    "prepare_dataset",
    "evaluate",
    "test_metrics",
    "train",
    "plot_loss_curve",
]

#: Files a run writes in its directory (the latent analysis goes to ``analysis/``).
RUN_FILES = ("config.json", "last.pt", "best.pt", "history.csv", "history.json",
             "loss_curve.png", "metrics.json", "analysis/pca.png", "analysis/tsne.png",
             "analysis/kl_ranking.png", "analysis/traversal.png", "analysis/origin.png",
             "analysis/probe.png", "analysis/reconstructions.png", "analysis/latent.json")
HISTORY_FIELDS = ("epoch", "lr", "kl_weight", "train_loss", "train_recon", "train_kl",
                  "val_loss", "val_recon", "val_kl", "val_physics", "epoch_time_s")


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global RNGs (for CLIs and scripts; the library
    itself never relies on global RNG state)."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the one place global seeding is intended
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``cpu`` or ``cuda``; a UserError if CUDA is asked for but not available."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device: cuda requested but torch sees no CUDA device")
    if name not in ("cpu", "cuda"):
        raise UserError(f"train.device: must be cpu or cuda, got {name!r}")
    return torch.device(name)


@dataclass
class PreparedData:
    """Inputs and labels of a training set.

    Attributes:
        x: (M, *input_shape) float32 network inputs.
        gamma: (M,) field strengths.
        positions: (M, N, 2) positions, sigma (for analysis and reconstruction).
        split: the stratified train / val / test split.
        info: what the data is (N, L, fingerprint, files).
    """

    x: np.ndarray
    gamma: np.ndarray
    positions: np.ndarray
    split: Split
    info: DataInfo


def prepare_dataset(cfg: RunConfig, ds: Dataset, files: list[str] | None = None) -> PreparedData:
    """Inputs, split and fingerprint for an in-memory :class:`mcsim.io.Dataset`."""
    pos, gamma = ds.positions, ds.gamma
    if cfg.data.max_per_gamma is not None:
        keep = subsample_per_gamma(gamma, cfg.data.max_per_gamma, cfg.data.split_seed)
        pos, gamma = pos[keep], gamma[keep]
    if len(gamma) < 3:
        raise DatasetError(f"need at least 3 configurations, got {len(gamma)}")
    split = stratified_split(gamma, cfg.data.val_fraction, cfg.data.test_fraction,
                             cfg.data.split_seed)
    if split.train.size == 0 or split.val.size == 0:
        raise DatasetError("too few configurations for a train/validation split")
    x = make_inputs(pos, ds.box, cfg.data)
    if not np.all(np.isfinite(x)):
        raise DatasetError("the inputs contain NaN or inf")
    info = DataInfo(ds.n_particles, ds.box, dataset_fingerprint(pos, gamma),
                    [str(f) for f in (files or ([str(ds.path)] if ds.path else []))],
                    [float(g) for g in np.unique(gamma)], int(len(gamma)))
    return PreparedData(x, gamma, pos, split, info)


def prepare_data(cfg: RunConfig, files: list[str | os.PathLike]) -> PreparedData:
    """Read dataset files (see :func:`vae.data.load_data`) and prepare them."""
    return prepare_dataset(cfg, load_data(files), [str(f) for f in files])


@torch.no_grad()
def evaluate(model: VAE, x: torch.Tensor, cfg: RunConfig, batch_size: int = 1024,
             gamma: torch.Tensor | None = None, scale: float = 1.0,
             coords: torch.Tensor | None = None, box: float | None = None
             ) -> dict[str, float]:
    """Mean loss parts over a data set with z = mu_z and the full KL weight.

    Args:
        x: (M, *input_shape) inputs on the model's device.
        gamma: (M,) field strengths (needed by decoders that take gamma).
        scale: input length unit in sigma (overlap, energy and gravity terms).
        box: the box side, sigma (box and placed-height terms).
        coords: (M, N, 2) sorted true positions, input units (gravity term).

    Returns:
        ``{"loss", "recon", "kl"}`` averaged over configurations.
    """
    was_training = model.training
    model.eval()
    sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
    n = x.shape[0]
    for a in range(0, n, batch_size):
        xb = x[a:a + batch_size]
        gb = None if gamma is None else gamma[a:a + batch_size]
        cb = None if coords is None else coords[a:a + batch_size]
        parts = vae_loss(model(xb, sample=False, gamma=gb), xb, cfg.loss, recon=cfg.recon,
                         scale=scale, coords=cb, gamma=gb, box=box)
        w = xb.shape[0]
        sums["loss"] += parts.total.item() * w
        sums["recon"] += parts.recon.item() * w
        sums["kl"] += parts.kl.item() * w
    model.train(was_training)
    return {k: v / max(n, 1) for k, v in sums.items()}


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes:
        run_dir: the run directory.
        best_epoch: epoch of the lowest validation loss (its weights are in best.pt).
        epochs_run: last finished epoch.
        stopped_early: True if early stopping ended the run.
        history: per-epoch records (see ``HISTORY_FIELDS``).
        metrics: test-set metrics of the best model (see ``metrics.json``).
        model: the best model, in eval mode.
    """

    run_dir: Path
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    model: VAE = field(repr=False)


def _make_scheduler(opt: torch.optim.Optimizer, cfg: RunConfig):
    t = cfg.train
    if t.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=0.5, patience=max(1, t.patience // 2))
    if t.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t.epochs,
                                                          eta_min=t.lr / 100)
    return None


def _write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    with atomic_output(run_dir / "history.csv", overwrite=True) as tmp, \
            open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=HISTORY_FIELDS)
        w.writeheader()
        for row in history:
            w.writerow({k: "" if row.get(k) is None else row[k] for k in HISTORY_FIELDS})
    with atomic_output(run_dir / "history.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(history, indent=1))


def _write_json(path: Path, obj: Any) -> None:
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))


def plot_loss_curve(history: list[dict[str, Any]], best_epoch: int | None = None,
                    title: str = "", axes=None):
    """Loss curves: total and reconstruction loss (left, log scale) and KL (right).

    Args:
        history: per-epoch records as written by :func:`train`.
        axes: two matplotlib axes, or None to make a new figure.

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    else:
        fig = axes[0].figure
    from matplotlib.ticker import MaxNLocator

    ep = [h["epoch"] for h in history]
    mk = "o" if len(ep) <= 30 else None
    ax = axes[0]
    ax.plot(ep, [h["train_loss"] for h in history], "-", marker=mk, ms=3, color="C0",
            label="train loss (sampled z)")
    ax.plot(ep, [h["val_loss"] for h in history], "-", marker=mk, ms=3, color="C1",
            label="val loss (z = μ)")
    ax.plot(ep, [h["train_recon"] for h in history], "--", color="C0", alpha=0.6,
            label="train recon.")
    ax.plot(ep, [h["val_recon"] for h in history], "--", color="C1", alpha=0.6,
            label="val recon.")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (input units)")
    ax.set_title("loss and reconstruction error")
    score = [(h["epoch"], h["val_physics"]) for h in history
             if h.get("val_physics") is not None]
    if score:  # train.select = physics: the score that picks the kept epoch
        axp = ax.twinx()
        axp.plot(*zip(*score, strict=True), "-", marker=mk, ms=3, color="C2", lw=1,
                 label="val physics score (right)")
        axp.set_yscale("log")
        axp.set_ylabel("physics score (W1 / scale, mean)", color="C2")
    ax2 = axes[1]
    ax2.plot(ep, [h["train_kl"] for h in history], "-", marker=mk, ms=3, color="C0",
             label="train KL")
    ax2.plot(ep, [h["val_kl"] for h in history], "-", marker=mk, ms=3, color="C1",
             label="val KL")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("KL per latent dim (nats)")
    ax2.set_title("KL divergence to N(0, I)")
    for a in axes:
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        if best_epoch:
            a.axvline(best_epoch, color="0.5", lw=0.8, ls=":", label=f"best (epoch {best_epoch})")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    if score:  # one legend for both of the left panel's axes
        hs, ls = (sum(x, []) for x in zip(ax.get_legend_handles_labels(),
                                          axp.get_legend_handles_labels(), strict=True))
        ax.legend(hs, ls, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _save_loss_curve(run_dir: Path, history, best_epoch, title) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    save_figure(plot_loss_curve(history, best_epoch, title), run_dir / "loss_curve.png",
                dpi=120)


class RunDirError(UserError):
    """A run directory that cannot be used as asked. ``option`` is what the caller asked
    for (``"resume"``: continue the run; ``"out"``: a fresh run there); the command line
    maps it to its flag (``--resume`` / ``--out``)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


def check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse a non-empty run directory unless resuming (needs last.pt) or overwriting
    (:class:`RunDirError`)."""
    if resume:
        if not (run_dir / "last.pt").is_file():
            raise RunDirError("resume", f"{run_dir / 'last.pt'} not found (nothing to "
                              "resume)")
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError("out", f"{run_dir} exists and is not a directory")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not overwrite:
        raise RunDirError("out", f"run directory {run_dir} is not empty (resume the run "
                          "or allow overwriting it)")


def _same_except_schedule(a: RunConfig, b: RunConfig) -> str | None:
    """The first setting that differs between two configs, ignoring the ones a resumed
    run may change (train.patience, train.device, and train.epochs unless the cosine
    LR schedule depends on it)."""
    da, db = a.to_dict(), b.to_dict()
    free = ("patience", "device") if a.train.lr_schedule == "cosine" else (
        "epochs", "patience", "device")
    for sec in da:
        for k in da[sec]:
            if sec == "train" and k in free:
                continue
            if da[sec][k] != db[sec][k]:
                return f"{sec}.{k}"
    return None


def _sorted_coordinates(data: PreparedData, cfg: RunConfig, device) -> torch.Tensor | None:
    """(M, N, 2) sorted positions in input units, box frame, when a loss term needs them
    (denoising, slot matching, the gravity, box, height, placed-height and
    thermal-profile terms), else None."""
    lo = cfg.loss
    if not (lo.denoise > 0 or lo.match_slots or lo.gravity_weight > 0
            or lo.height_weight > 0 or lo.box_weight > 0 or lo.placed_height_weight > 0
            or lo.thermal_profile_weight > 0):
        return None
    return torch.as_tensor(coordinates(data.positions, data.info.box, cfg.data.sort,
                                       cfg.data.scaling), device=device)


def _mirrored_training_inputs(data: PreparedData, cfg: RunConfig, train: np.ndarray, device,
                              coords: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The inputs (and, with ``coords``, the sorted coordinates) of the mirror images
    x -> L - x of the training configurations (rows ``train``; ``TrainConfig.mirror``),
    prepared like the data; (None, None) when mirroring is off."""
    if cfg.train.mirror <= 0:
        return None, None
    box = data.info.box
    pos = np.array(data.positions[train], dtype=np.float64)
    pos[..., 0] = box - pos[..., 0]
    x = torch.as_tensor(make_inputs(pos, box, cfg.data), device=device)
    c = torch.as_tensor(coordinates(pos, box, cfg.data.sort, cfg.data.scaling),
                        device=device) if coords else None
    return x, c


def _step_seed(seed: int, epoch: int, batch: int) -> int:
    """The seed of one training step's random placements (the placed-height term): a
    function of the run's seed and the step only, so a resumed run draws the same."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(batch)])
               .generate_state(1, np.uint32)[0])


@torch.no_grad()
def _update_average(averaged: VAE, model: VAE, decay: float) -> None:
    """averaged <- decay * averaged + (1 - decay) * model, parameters and float buffers
    alike (other buffers are copied)."""
    for a, m in zip(averaged.state_dict().values(), model.state_dict().values(),
                    strict=True):
        if a.is_floating_point():
            a.mul_(decay).add_(m, alpha=1.0 - decay)
        else:
            a.copy_(m)


def _noisy_inputs(coords: torch.Tensor, noise: float, generator: torch.Generator
                  ) -> torch.Tensor:
    """Distance matrices (B, 1, N, N) of slot positions (B, N, 2) displaced by
    N(0, noise^2) per axis (input units): the denoising input."""
    eps = torch.randn(coords.shape, generator=generator, device=coords.device,
                      dtype=coords.dtype)
    return pair_distance_matrix(coords + noise * eps).unsqueeze(1)


def train(cfg: RunConfig, data: PreparedData, run_dir: str | os.PathLike, *,
          resume: bool = False, overwrite: bool = False, progress: bool = True) -> TrainResult:
    """Train a VAE, checkpointing every epoch.

    Args:
        cfg: the run's settings.
        data: from :func:`prepare_data`.
        run_dir: output directory (created; must be empty unless ``resume`` or
            ``overwrite``).
        resume: continue from ``run_dir/last.pt``; the saved config must equal ``cfg``
            except for train.epochs (not with the cosine schedule), train.patience and
            train.device, and the data must have the same fingerprint.
        overwrite: allow a non-empty ``run_dir`` for a fresh run (old files are replaced).
        progress: show tqdm bars (epochs, and batches within an epoch).
    """
    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume, overwrite)
    device = resolve_device(cfg.train.device)
    t = cfg.train
    model = build_model(cfg, data.info.n_particles, data.info.box).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=t.lr)
    # the weights' moving average (TrainConfig.ema): validated, kept as best.pt, returned
    averaged = copy.deepcopy(model) if t.ema > 0 else model
    sched = _make_scheduler(opt, cfg)
    g_shuffle = torch.Generator().manual_seed(t.seed)
    g_noise = torch.Generator(device=device).manual_seed(t.seed + 1)
    g_mirror = torch.Generator().manual_seed(t.seed + 2)  # which configurations to mirror
    history: list[dict[str, Any]] = []
    # best_val: the kept epoch's criterion (the loss, or the physics score with
    # select = physics, when best_loss also counts for early stopping)
    best_val, best_loss, best_epoch, stale, start = math.inf, math.inf, 0, 0, 1
    done_before, stopped_before = 0, False
    split = data.split

    if resume:
        ck = load_checkpoint(run_dir / "last.pt", map_location=str(device))
        diff = _same_except_schedule(ck.config, cfg)
        if diff:
            raise RunDirError("resume", f"the run in {run_dir} was made with a different "
                              f"{diff} (start a new run or drop the changed setting)")
        if ck.info.fingerprint != data.info.fingerprint:
            raise RunDirError("resume", f"the data differ from the run's (fingerprint "
                              f"{data.info.fingerprint} vs {ck.info.fingerprint})")
        if ck.train_state is None:
            raise RunDirError("resume", f"{run_dir / 'last.pt'} has no training state")
        st = ck.train_state
        model.load_state_dict(ck.state_dict)
        opt.load_state_dict(st["optimizer"])
        if sched is not None and "scheduler" in st:
            sched.load_state_dict(json.loads(st["scheduler"]))
        g_shuffle.set_state(st["rng_shuffle"].cpu())
        g_noise.set_state(st["rng_noise"].cpu())
        if "rng_mirror" in st:
            g_mirror.set_state(st["rng_mirror"].cpu())
        if t.ema > 0:
            if "ema" not in st:
                raise RunDirError("resume", f"{run_dir / 'last.pt'} holds no weight average "
                                  "(train.ema)")
            averaged.load_state_dict(st["ema"])
        history = ck.history
        best_val, best_epoch, stale = float(st["best_val"]), int(st["best_epoch"]), int(
            st["stale"])
        best_loss = float(st.get("best_loss", best_val))
        done_before = ck.epoch
        start = done_before + 1
        split = ck.split
        if t.patience and stale >= t.patience:
            start, stopped_before = t.epochs + 1, True  # it had already stopped early
    scorer = None
    if t.select == "physics":  # before any output: a file without its simulation fails here
        try:
            scorer = PhysicsScore(data.positions, data.gamma, split.train, split.val,
                                  list(data.info.files), data.info.box, seed=t.seed)
        except SelectionError as e:
            raise UserError(str(e)) from None
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:  # --overwrite: no file of an older run may survive into this one
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
    _write_json(run_dir / "config.json", cfg.to_dict())

    x_all = torch.as_tensor(data.x, device=device)
    x_train, x_val = x_all[split.train], x_all[split.val]
    g_all = torch.as_tensor(data.gamma, dtype=torch.float32, device=device)
    g_train, g_val = g_all[split.train], g_all[split.val]
    scale = length_scale(cfg.data.scaling, data.info.box)
    # slot positions (input units): displaced per batch for denoising, the gravity term's
    # target
    c_all = _sorted_coordinates(data, cfg, device)
    c_train, c_val = (None, None) if c_all is None else (c_all[split.train], c_all[split.val])
    x_mirror, c_mirror = _mirrored_training_inputs(data, cfg, split.train, device,
                                                   c_train is not None)
    n_train = x_train.shape[0]
    n_batches = math.ceil(n_train / t.batch_size)
    title = (f"{cfg.model.arch} VAE on {cfg.data.representation}, latent {cfg.model.latent_dim}, "
             f"{cfg.loss.form}={cfg.loss.weight:g}")
    stopped_early = stopped_before
    epoch = done_before
    bar = tqdm(total=t.epochs, initial=start - 1, desc="train-vae", unit="epoch",
               disable=not progress, dynamic_ncols=True)
    try:
        for epoch in range(start, t.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            perm = torch.randperm(n_train, generator=g_shuffle).to(device)
            sums = torch.zeros(3, dtype=torch.float64)
            inner = tqdm(total=n_batches, desc=f"epoch {epoch}", unit="batch", leave=False,
                         disable=not progress, dynamic_ncols=True)
            for b in range(n_batches):
                idx = perm[b * t.batch_size:(b + 1) * t.batch_size]
                xb = x_train[idx]
                cb = None if c_train is None else c_train[idx]
                if x_mirror is not None:
                    flip = (torch.rand(idx.shape[0], generator=g_mirror) < t.mirror).to(device)
                    xb = torch.where(flip.view(-1, *[1] * (xb.dim() - 1)), x_mirror[idx], xb)
                    if cb is not None:
                        cb = torch.where(flip.view(-1, 1, 1), c_mirror[idx], cb)
                x_in = _noisy_inputs(cb, cfg.loss.denoise / scale, g_noise) \
                    if cfg.loss.denoise > 0 else xb
                out = model(x_in, generator=g_noise, gamma=g_train[idx])
                parts = vae_loss(out, xb, cfg.loss, recon=cfg.recon, epoch=epoch, scale=scale,
                                 coords=cb, gamma=g_train[idx], box=data.info.box,
                                 placement_seed=_step_seed(t.seed, epoch, b))
                opt.zero_grad(set_to_none=True)
                parts.total.backward()
                if t.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                opt.step()
                if t.ema > 0:
                    _update_average(averaged, model, t.ema)
                w = xb.shape[0]
                sums += torch.tensor([parts.total.item(), parts.recon.item(),
                                      parts.kl.item()], dtype=torch.float64) * w
                if progress and (b % 10 == 0 or b == n_batches - 1):
                    inner.set_postfix(loss=f"{parts.total.item():.3g}",
                                      recon=f"{parts.recon.item():.3g}",
                                      kl=f"{parts.kl.item():.3g}", refresh=False)
                inner.update(1)
            inner.close()
            train_time = time.perf_counter() - t0
            tr = (sums / n_train).tolist()
            val = evaluate(averaged, x_val, cfg, gamma=g_val, scale=scale, coords=c_val,
                           box=data.info.box)
            if not (math.isfinite(tr[0]) and math.isfinite(val["loss"])):
                raise UserError(f"training diverged at epoch {epoch} (loss is not finite); "
                                "try a smaller --lr")
            phys = None if scorer is None else scorer(averaged, x_val, g_val, scale)
            crit = val["loss"] if phys is None else phys["score"]
            lr = opt.param_groups[0]["lr"]
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sched.step(val["loss"])
            elif sched is not None:
                sched.step()
            history.append({
                "epoch": epoch, "lr": lr, "kl_weight": parts.kl_weight,
                "train_loss": tr[0], "train_recon": tr[1], "train_kl": tr[2],
                "val_loss": val["loss"], "val_recon": val["recon"], "val_kl": val["kl"],
                "val_physics": None if phys is None else phys["score"],
                "epoch_time_s": train_time,
            })
            if phys is not None:
                history[-1]["val_physics_ratios"] = phys["ratios"]
            # the physics score moves by up to 2x between epochs: with it, training goes on
            # while either it or the loss improves, and the best score's epoch is kept
            loss_better = val["loss"] < best_loss - t.min_delta
            if loss_better:
                best_loss = val["loss"]
            if crit < best_val - (t.min_delta if phys is None else 0.0):
                best_val, best_epoch, stale = crit, epoch, 0
                save_checkpoint(run_dir / "best.pt", averaged, cfg, data.info, split,
                                epoch=epoch, history=history)
            elif phys is not None and loss_better:
                stale = 0
            else:
                stale += 1
            state = {
                "optimizer": opt.state_dict(),
                "rng_shuffle": g_shuffle.get_state(),
                "rng_noise": g_noise.get_state().cpu(),
                "rng_mirror": g_mirror.get_state(),
                "best_val": best_val, "best_epoch": best_epoch, "stale": stale,
                "best_loss": best_loss,
            }
            if sched is not None:
                state["scheduler"] = json.dumps(sched.state_dict())
            if t.ema > 0:
                state["ema"] = averaged.state_dict()
            save_checkpoint(run_dir / "last.pt", model, cfg, data.info, split, epoch=epoch,
                            history=history, train_state=state)
            _write_history(run_dir, history)
            bar.set_postfix(train=f"{tr[0]:.3g}", val=f"{val['loss']:.3g}",
                            mse=f"{val['recon']:.3g}", kl=f"{val['kl']:.3g}",
                            best=best_epoch, refresh=False)
            bar.update(1)
            if t.patience and stale >= t.patience:
                stopped_early = True
                break
    finally:
        bar.close()

    if history:
        _save_loss_curve(run_dir, history, best_epoch, title)
    ck_best = load_checkpoint(run_dir / "best.pt", map_location=str(device))
    model.load_state_dict(ck_best.state_dict)
    model.eval()
    metrics = test_metrics(model, data, cfg, split, device)
    metrics.update(best_epoch=best_epoch, epochs_run=epoch, stopped_early=stopped_early,
                   mean_epoch_time_s=float(np.mean([h["epoch_time_s"] for h in history]))
                   if history else float("nan"))
    if t.select == "physics":  # the kept epoch's score and its ratios
        row = next((h for h in history if h["epoch"] == best_epoch), {})
        metrics.update(select="physics", val_physics=row.get("val_physics"),
                       val_physics_ratios=row.get("val_physics_ratios"))
    _write_json(run_dir / "metrics.json", metrics)
    return TrainResult(run_dir, best_epoch, epoch, stopped_early, history, metrics, model)


def test_metrics(model: VAE, data: PreparedData, cfg: RunConfig, split: Split,
                 device: torch.device | str = "cpu") -> dict[str, Any]:
    """Test-set loss parts (z = mu_z), overall and per gamma; for Gaussian models the MSE
    is also given in sigma^2 (input MSE times the squared length scale)."""
    x_all = torch.as_tensor(data.x, device=device)
    g_all = torch.as_tensor(data.gamma, dtype=torch.float32, device=device)
    scale = length_scale(cfg.data.scaling, data.info.box)
    c_all = _sorted_coordinates(data, cfg, device)

    def _c(idx):
        return None if c_all is None else c_all[idx]

    res = evaluate(model, x_all[split.test], cfg, gamma=g_all[split.test], scale=scale,
                   coords=_c(split.test), box=data.info.box)
    out: dict[str, Any] = {"test_loss": res["loss"], "test_recon": res["recon"],
                           "test_kl": res["kl"], "n_test": int(split.test.size),
                           "recon": cfg.recon}
    if cfg.recon == "mse":
        out["test_mse"] = res["recon"]
        if cfg.data.representation != "grid":
            s = length_scale(cfg.data.scaling, data.info.box)
            out["test_mse_sigma2"] = res["recon"] * s * s
    per = {}
    g_test = data.gamma[split.test]
    for g in np.unique(g_test):
        idx = split.test[g_test == g]
        per[f"{g:g}"] = evaluate(model, x_all[idx], cfg, gamma=g_all[idx], scale=scale,
                                 coords=_c(idx), box=data.info.box)["recon"]
    out["test_recon_per_gamma"] = per
    if hasattr(model, "decode_coords") and cfg.data.representation == "distance":
        c_true = c_all if c_all is not None else torch.as_tensor(
            coordinates(data.positions, data.info.box, cfg.data.sort, cfg.data.scaling),
            device=device)
        gammas = np.unique(g_test)
        groups = [split.test[g_test == g] for g in gammas]
        per_m = [matched_mse(model, x_all[idx], g_all[idx], c_true[idx]) for idx in groups]
        out["test_matched_mse"] = float(
            sum(m * len(idx) for m, idx in zip(per_m, groups, strict=True)) / split.test.size)
        out["test_matched_mse_per_gamma"] = {f"{g:g}": m
                                             for g, m in zip(gammas, per_m, strict=True)}
    return out


@torch.no_grad()
def matched_mse(model: VAE, x: torch.Tensor, gamma: torch.Tensor, coords: torch.Tensor,
                batch_size: int = 1024) -> float:
    """Permutation-invariant reconstruction error of a decoder that places particles:
    the mean squared difference (input units) between the true sorted matrices ``x`` and
    the distance matrices of the decoded particles (z = mu_z) put in the order of the
    true particles they are matched to (:func:`vae.matching.match_slots`). Unlike the
    sorted-matrix MSE it does not count a decoded configuration that is right but for
    the sort order of its particles as wrong."""
    total = 0.0
    for a in range(0, x.shape[0], batch_size):
        xb, gb = x[a:a + batch_size], gamma[a:a + batch_size]
        mu, _ = model.encode(xb)
        c_hat = model.decode_coords(mu, gb if getattr(model, "needs_gamma", False) else None)
        c_m = permute_slots(c_hat, match_slots(c_hat, coords[a:a + batch_size]))
        d = pair_distance_matrix(c_m).unsqueeze(1)
        total += float((d - xb).pow(2).mean(dim=(1, 2, 3)).sum())
    return total / x.shape[0]

