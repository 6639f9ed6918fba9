"""Figures for datasets: snapshots, density profiles, g(r), energy traces.

Each ``plot_*`` function draws on ``ax`` (a new one if None) and returns it, so that
pipelines can compose figures; :func:`dataset_figure` assembles the ``simulate --plot``
overview.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mcsim.io import Dataset  # noqa: E402
from mcsim.observables import density_profile, pair_distance_distribution  # noqa: E402

__all__ = [
    "plot_configuration",
    "plot_density_profiles",
    "plot_pair_distribution",
    "plot_energy_traces",
    "dataset_figure",
]


def _ax(ax):
    if ax is None:
        _, ax = plt.subplots()
    return ax


def plot_configuration(positions: np.ndarray, box: float, ax=None, *, title: str = "",
                       color: str = "C0"):
    """Draw one configuration (N, 2) as discs of diameter sigma in the box."""
    ax = _ax(ax)
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Circle

    discs = [Circle((x, y), 0.5) for x, y in positions]
    ax.add_collection(PatchCollection(discs, facecolor=color, edgecolor="k", lw=0.4,
                                      alpha=0.85))
    ax.set_xlim(-0.6, box + 0.6)
    ax.set_ylim(-0.6, box + 0.6)
    ax.plot([0, box, box, 0, 0], [0, 0, box, box, 0], "k-", lw=1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_density_profiles(ds: Dataset, ax=None, bins: int = 40):
    """rho(y) for each gamma in the dataset, with the ideal-gas barometric law dashed."""
    ax = _ax(ax)
    t = float(ds.attrs.get("temperature", np.nan))
    n = ds.n_particles
    for k, g in enumerate(ds.gammas):
        sel = ds.gamma == g
        y, rho = density_profile(ds.positions[sel], ds.box, bins)
        ax.plot(y, rho, color=f"C{k}", label=f"gamma = {g:g}")
        if g > 0 and np.isfinite(t):
            b = g / t
            ideal = n * b * np.exp(-b * y) / (1 - np.exp(-b * ds.box)) / ds.box
            ax.plot(y, ideal, color=f"C{k}", ls=":", lw=1)
    ax.set_xlabel(r"height $y$ [$\sigma$]")
    ax.set_ylabel(r"$\rho(y)$ [$\sigma^{-2}$]")
    ax.set_title(r"density profile (dotted: ideal gas, same $\gamma/T$)", fontsize=9)
    ax.legend(fontsize=8)
    return ax


def plot_pair_distribution(ds: Dataset, ax=None, r_max: float = 5.0):
    """Box-corrected g(r) for each gamma."""
    ax = _ax(ax)
    for k, g in enumerate(ds.gammas):
        sel = ds.gamma == g
        r, _, gr = pair_distance_distribution(ds.positions[sel][:2000], ds.box, bins=100,
                                              r_max=r_max)
        ax.plot(r, gr, color=f"C{k}", label=f"gamma = {g:g}")
    ax.axhline(1.0, color="0.6", lw=0.8)
    ax.set_xlabel(r"$r$ [$\sigma$]")
    ax.set_ylabel(r"$g(r)$ (vs uniform points in the box)")
    ax.set_title("pair-distance distribution", fontsize=9)
    ax.legend(fontsize=8)
    return ax


def plot_energy_traces(traces: dict[float, np.ndarray], n_particles: int, ax=None,
                       equilibrium: dict[float, float] | None = None):
    """Per-sweep energy per particle from uniform starts, one colour per gamma;
    ``equilibrium`` (gamma -> reference E, epsilon) adds dashed equilibrium lines."""
    ax = _ax(ax)
    for k, (g, tr) in enumerate(traces.items()):
        sweeps = np.arange(1, tr.shape[1] + 1)
        for j, row in enumerate(tr):
            ax.plot(sweeps, row / n_particles, color=f"C{k}", lw=0.7, alpha=0.7,
                    label=f"gamma = {g:g}" if j == 0 else None)
        if equilibrium and g in equilibrium:
            ax.axhline(equilibrium[g] / n_particles, color=f"C{k}", ls="--", lw=1.0,
                       label="equilibrium (reference)" if k == 0 else None)
    ax.set_xscale("log")
    late = np.concatenate([tr[:, min(10, tr.shape[1] - 1):].ravel() for tr in traces.values()])
    if late.size:  # the first sweeps from overlapping starts are off any useful scale
        lo, hi = late.min() / n_particles, np.quantile(late, 0.995) / n_particles
        ax.set_ylim(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
    ax.set_xlabel("sweep")
    ax.set_ylabel(r"$E/N$ [$\epsilon$]")
    ax.set_title("equilibration: energy traces from uniform starts", fontsize=9)
    ax.legend(fontsize=8)
    return ax


def read_traces(path: str | Path) -> dict[float, np.ndarray]:
    """Energy traces stored in a dataset file, keyed by gamma."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        if "diagnostics" not in f:
            return out
        for name in sorted(f["diagnostics"]):
            grp = f["diagnostics"][name]
            if "energy_trace" in grp:
                out[float(grp.attrs["gamma"])] = grp["energy_trace"][()]
    return out


def read_equilibrium(path: str | Path) -> dict[float, float]:
    """Equilibrium reference energies (epsilon) stored in a dataset file, by gamma."""
    import json

    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        for name in sorted(f.get("diagnostics", {})):
            a = f["diagnostics"][name].attrs
            if "reference" in a:
                out[float(a["gamma"])] = float(json.loads(a["reference"])["mean"]["energy"])
    return out


def dataset_figure(ds: Dataset, path: str | Path, n_snapshots: int = 3) -> Path:
    """Overview figure: snapshots per gamma, rho(y), g(r) and energy traces."""
    gammas = ds.gammas
    n_rows = len(gammas)
    fig = plt.figure(figsize=(3.0 * n_snapshots + 8.5, 2.9 * max(n_rows, 2)),
                     layout="constrained")
    grid = fig.add_gridspec(max(n_rows, 2), n_snapshots + 2,
                            width_ratios=[1] * n_snapshots + [1.7, 1.7])
    for r, g in enumerate(gammas):
        idx = np.flatnonzero(ds.gamma == g)[:n_snapshots]
        for c, k in enumerate(idx):
            ax = fig.add_subplot(grid[r, c])
            plot_configuration(ds.positions[k], ds.box, ax, color=f"C{r}",
                               title=f"gamma={g:g}, E/N={ds.energy[k] / ds.n_particles:.2f}")
    half = max(n_rows, 2) // 2
    plot_density_profiles(ds, fig.add_subplot(grid[:half, n_snapshots]))
    plot_pair_distribution(ds, fig.add_subplot(grid[half:, n_snapshots]))
    traces = read_traces(ds.path) if ds.path is not None else {}
    ax = fig.add_subplot(grid[:, n_snapshots + 1])
    if traces:
        plot_energy_traces(traces, ds.n_particles, ax, read_equilibrium(ds.path))
    else:
        ax.text(0.5, 0.5, "no energy traces\n(uniform data)", ha="center", va="center")
        ax.set_axis_off()
    a = ds.attrs
    sweeps = a.get("sweeps", "?")
    if a.get("sweeps_auto") and "sweeps_per_gamma" in a:
        sweeps = "auto (" + "/".join(str(v) for v in a["sweeps_per_gamma"]) + ")"
    fig.suptitle(f"{a.get('source', '')} dataset: N={ds.n_particles}, L={ds.box:g}, "
                 f"T={a.get('temperature', '?')}, potential={a.get('potential', '?')}, "
                 f"protocol={a.get('protocol', '?')}, sweeps={sweeps}",
                 fontsize=10)
    from mcsim.clitools import atomic_output

    path = Path(path)
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
