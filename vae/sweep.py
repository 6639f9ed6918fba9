"""Sweep over latent dimension x KL weight: one training run per pair, a table and a figure.

The study (seed 002 chapter 3) reported lower MSE with a larger latent dimension and a
smaller lambda. :func:`run_sweep` trains every combination on the same data and split
and writes, in the sweep directory::

    ld<D>_w<weight>/   one run directory per combination (see vae.training)
    sweep.csv          latent_dim, weight, test MSE, KL, active dimensions, epochs
    sweep.json         the same rows, plus the trend checks
    sweep.png          test MSE and KL against latent dimension, one line per weight
    curves.png         validation reconstruction error and KL per epoch, every run
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from mcsim.clitools import atomic_output
from mcsim.shared import save_figure
from vae.checkpoint import load_model
from vae.config import RunConfig
from vae.latent import active_dimensions, encode_latent, kl_per_dimension
from vae.training import PreparedData, train

__all__ = ["SWEEP_FIELDS", "run_sweep", "sweep_trends", "plot_sweep", "plot_sweep_curves"]

SWEEP_FIELDS = ("latent_dim", "weight", "test_recon", "test_kl_per_dim", "test_kl_total",
                "active_dims", "best_epoch", "epochs_run", "run_dir")


def _run_name(latent_dim: int, weight: float) -> str:
    return f"ld{latent_dim}_w{weight:g}"


def sweep_trends(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Does the test reconstruction error fall with the latent dimension (at fixed weight)
    and rise with the weight (at fixed latent dimension)? Counts the neighbouring pairs
    that follow each trend."""
    dims = sorted({r["latent_dim"] for r in rows})
    ws = sorted({r["weight"] for r in rows})
    mse = {(r["latent_dim"], r["weight"]): r["test_recon"] for r in rows}
    d_ok = d_n = w_ok = w_n = 0
    for w in ws:
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            if (a, w) in mse and (b, w) in mse:
                d_n += 1
                d_ok += mse[(b, w)] < mse[(a, w)]
    for d in dims:
        for a, b in zip(ws[:-1], ws[1:], strict=True):
            if (d, a) in mse and (d, b) in mse:
                w_n += 1
                w_ok += mse[(d, a)] < mse[(d, b)]
    return {"mse_falls_with_latent_dim": f"{d_ok} of {d_n} pairs",
            "mse_rises_with_weight": f"{w_ok} of {w_n} pairs"}


def run_sweep(cfg: RunConfig, data: PreparedData, out_dir: str | os.PathLike,
              latent_dims: list[int], weights: list[float], *, resume: bool = False,
              overwrite: bool = False, progress: bool = True) -> list[dict[str, Any]]:
    """Train every (latent_dim, weight) pair with otherwise identical settings.

    With ``resume``, finished runs (with ``metrics.json``) are reused and interrupted
    ones continue from their ``last.pt``.

    Returns:
        One row per run (see ``SWEEP_FIELDS``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for d in latent_dims:
        for w in weights:
            c = replace(cfg, model=replace(cfg.model, latent_dim=int(d)),
                        loss=replace(cfg.loss, weight=float(w)))
            sub = out / _run_name(d, w)
            if resume and (sub / "metrics.json").is_file() and (sub / "best.pt").is_file():
                metrics = json.loads((sub / "metrics.json").read_text())
            else:
                again = resume and (sub / "last.pt").is_file()
                metrics = train(c, data, sub, resume=again, overwrite=overwrite or not again,
                                progress=progress).metrics
            tv = load_model(sub / "best.pt", device=cfg.train.device)
            te = data.split.test
            mu, lv = encode_latent(tv.model, data.x[te])
            kl_dim = kl_per_dimension(mu, lv)
            rows.append({
                "latent_dim": int(d), "weight": float(w),
                "test_recon": float(metrics["test_recon"]),
                "test_kl_per_dim": float(metrics["test_kl"]),
                "test_kl_total": float(metrics["test_kl"]) * int(d),
                "active_dims": int(active_dimensions(kl_dim).size),
                "best_epoch": int(metrics["best_epoch"]),
                "epochs_run": int(metrics["epochs_run"]),
                "run_dir": sub.name,
            })
            _write_tables(out, rows, cfg)
    _save_plot(out, rows, cfg)
    return rows


def _write_tables(out: Path, rows: list[dict[str, Any]], cfg: RunConfig) -> None:
    with atomic_output(out / "sweep.csv", overwrite=True) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=SWEEP_FIELDS)
        w.writeheader()
        w.writerows(rows)
    with atomic_output(out / "sweep.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps({"weight_form": cfg.loss.form, "recon": cfg.recon,
                                   "rows": rows, "trends": sweep_trends(rows)}, indent=2))


def plot_sweep(rows: list[dict[str, Any]], weight_name: str = "λ", axes=None):
    """Test reconstruction error, total KL and active dimensions against the latent
    dimension, one line per KL weight. Returns the figure."""
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    else:
        fig = axes[0].figure
    ws = sorted({r["weight"] for r in rows})
    cmap = plt.get_cmap("plasma")
    for i, w in enumerate(ws):
        rs = sorted((r for r in rows if r["weight"] == w), key=lambda r: r["latent_dim"])
        d = [r["latent_dim"] for r in rs]
        col = cmap(0.85 * i / max(len(ws) - 1, 1))
        lab = f"{weight_name} = {w:g}"
        axes[0].plot(d, [r["test_recon"] for r in rs], "o-", color=col, label=lab)
        axes[1].plot(d, [r["test_kl_total"] for r in rs], "o-", color=col, label=lab)
        axes[2].plot(d, [r["active_dims"] for r in rs], "o-", color=col, label=lab)
    axes[0].set_ylabel("test reconstruction error")
    axes[0].set_yscale("log")
    axes[1].set_ylabel("test KL (nats per configuration)")
    axes[1].set_yscale("log")
    axes[2].set_ylabel("active dimensions (KL > 0.01 nats)")
    for ax, t in zip(axes, ("reconstruction error", "KL divergence", "active dimensions"),
                     strict=True):
        ax.set_xscale("log", base=2)
        dims = sorted({r["latent_dim"] for r in rows})
        ax.set_xticks(dims)
        ax.set_xticklabels([str(x) for x in dims])
        ax.set_xlabel("latent dimension")
        ax.set_title(t)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def plot_sweep_curves(rows: list[dict[str, Any]], histories: dict[str, list[dict[str, Any]]],
                      weight_name: str = "λ", axes=None):
    """Validation reconstruction error and KL per latent dimension against the epoch,
    one line per run (colour: the KL weight, as in :func:`plot_sweep`; line style: the
    latent dimension), the best epoch marked. ``histories``: run_dir -> the run's
    ``history.json`` rows. Returns the figure."""
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
    else:
        fig = axes[0].figure
    ws = sorted({r["weight"] for r in rows})
    dims = sorted({r["latent_dim"] for r in rows})
    cmap = plt.get_cmap("plasma")
    styles = ("-", "--", "-.", ":")
    for r in rows:
        h = histories.get(r["run_dir"], [])
        if not h:
            continue
        col = cmap(0.85 * ws.index(r["weight"]) / max(len(ws) - 1, 1))
        ls = styles[dims.index(r["latent_dim"]) % len(styles)]
        ep = [e["epoch"] for e in h]
        lab = f"D = {r['latent_dim']}, {weight_name} = {r['weight']:g}"
        for ax, key in zip(axes, ("val_recon", "val_kl"), strict=True):
            y = [e[key] for e in h]
            ax.plot(ep, y, ls=ls, color=col, lw=1.3, label=lab)
            best = [i for i, e in enumerate(ep) if e == r["best_epoch"]]
            if best:
                ax.plot(ep[best[0]], y[best[0]], "o", color=col, ms=4)
    axes[0].set_ylabel("validation reconstruction error (input units²)")
    axes[1].set_ylabel("validation KL per latent dimension (nats)")
    for ax, t in zip(axes, ("reconstruction error", "KL divergence"), strict=True):
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(f"{t} per epoch (dot: best epoch)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    return fig


def _save_plot(out: Path, rows: list[dict[str, Any]], cfg: RunConfig) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)

    wname = "λ" if cfg.loss.form == "lambda" else "β"
    title = (f"sweep: {cfg.model.arch} VAE on {cfg.data.representation}, "
             f"{len(rows)} runs")
    fig = plot_sweep(rows, wname)
    fig.suptitle(f"{title}, test split", fontsize=10)
    save_figure(fig, out / "sweep.png", dpi=120)
    histories = {}
    for r in rows:
        f = out / r["run_dir"] / "history.json"
        if f.is_file():
            histories[r["run_dir"]] = json.loads(f.read_text())
    fig = plot_sweep_curves(rows, histories, wname)
    fig.suptitle(f"{title}: training curves", fontsize=10)
    save_figure(fig, out / "curves.png", dpi=120)

