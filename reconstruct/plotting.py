"""Figures of reconstructions: configurations side by side, energy histograms and
height profiles. Each panel function takes ``ax=None`` (a new figure is made) so
that pipelines can compose their own figures; :func:`summary_figure` puts them
together for the CLI's ``--plot``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Rectangle

from reconstruct.metrics import EnergyComparison, HeightProfile

__all__ = [
    "edge_binned",
    "mark_edge_bins",
    "plot_configuration",
    "plot_energy_histograms",
    "plot_height_profiles",
    "summary_figure",
]

ORIGINAL_COLOR = "#1f77b4"
RECONSTRUCTED_COLOR = "#d95f02"


def edge_binned(values: np.ndarray, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Bins widened by one underflow and one overflow bin (of the width of the first
    bin), the finite values clipped into them, and how many values lie outside
    ``bins``: so that far-off values (overlapping particles: energies up to ~1e36)
    are drawn at the edges of a histogram instead of silently dropped."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    width = bins[1] - bins[0]
    wide = np.concatenate([[bins[0] - width], bins, [bins[-1] + width]])
    outside = int(np.sum((v < bins[0]) | (v > bins[-1])))
    return wide, np.clip(v, wide[0] + 0.5 * width, wide[-1] - 0.5 * width), outside


def mark_edge_bins(ax: Axes, bins: np.ndarray) -> None:
    """Dotted lines at the ends of ``bins`` and "underflow" / "overflow" labels on the
    edge bins of :func:`edge_binned`."""
    width = bins[1] - bins[0]
    for edge in (bins[0], bins[-1]):
        ax.axvline(edge, color="0.5", lw=0.8, ls=":")
    ax.text(bins[-1] + 0.5 * width, 0.0, "overflow", rotation=90, ha="center",
            va="bottom", fontsize=7, color="0.35")
    ax.text(bins[0] - 0.5 * width, 0.0, "underflow", rotation=90, ha="center",
            va="bottom", fontsize=7, color="0.35")


def _axes(ax: Axes | None, size=(4.0, 4.0)) -> Axes:
    if ax is not None:
        return ax
    return Figure(figsize=size, layout="constrained").add_subplot()


def plot_configuration(
    positions: np.ndarray,
    box: float,
    ax: Axes | None = None,
    *,
    color: str = ORIGINAL_COLOR,
    edge: tuple[int, int] | None = None,
    title: str | None = None,
    radius: float = 0.5,
    limits: tuple[float, float] | None = None,
) -> Axes:
    """Draw one configuration as discs of diameter sigma in the box.

    Args:
        positions: (N, 2) coordinates, sigma.
        box: L, sigma (the box [0, L]^2 is outlined; the floor is drawn thicker).
        ax: axes to draw on, or None for a new figure.
        color: disc colour.
        edge: particle indices (a, b) of a resting edge to highlight, or None.
        title: panel title.
        radius: disc radius, sigma (0.5: touching discs at r = sigma).
        limits: (lo, hi) of both axes, default: the box and the discs, whichever is
            larger, so that a configuration leaving the box shows it.
    """
    ax = _axes(ax)
    pos = np.asarray(positions, dtype=np.float64)
    ax.add_patch(Rectangle((0, 0), box, box, fill=False, lw=0.8, ec="0.4"))
    ax.plot([0, box], [0, 0], color="0.2", lw=2.0)
    discs = PatchCollection([Circle((x, y), radius) for x, y in pos], fc=color, ec="white",
                            lw=0.4, alpha=0.85)
    ax.add_collection(discs)
    if edge is not None and edge[0] != edge[1]:
        a, b = pos[edge[0]], pos[edge[1]]
        ax.plot([a[0], b[0]], [a[1], b[1]], color="crimson", lw=1.6)
    com = pos.mean(axis=0)
    ax.plot(*com, marker="+", color="k", ms=8, mew=1.5)
    if limits is None:
        limits = (min(0.0, pos.min() - radius) - 0.3, max(box, pos.max() + radius) + 0.3)
    lo, hi = limits
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xticks([0, box / 2, box])
    ax.set_yticks([0, box / 2, box])
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_energy_histograms(
    original: np.ndarray | None,
    reconstructed: np.ndarray,
    ax: Axes | None = None,
    *,
    comparison: EnergyComparison | None = None,
    n_bins: int | None = None,
    per_particle: int | None = None,
) -> Axes:
    """Histograms (densities) of original and reconstructed energies on common bins.

    The bins span the central 90 % of the original energies (of the reconstructed
    ones when no original is given) widened by 60 % on each side, a range that
    overlapping particles (energies up to ~1e36) cannot blow up; the number of
    reconstructed values outside is written on the panel, and they are drawn in
    explicit underflow / overflow bins just outside the range (dotted lines), rather
    than silently dropped.

    Args:
        original: (M,) energies, epsilon, or None.
        reconstructed: (M,) energies, epsilon.
        ax: axes, or None for a new figure.
        comparison: if given, its W1 and JS (with error bars) are shown.
        n_bins: number of bins (default: sqrt(M) clipped to [10, 60]).
        per_particle: if N is given, energies are divided by N (epsilon/particle).
    """
    ax = _axes(ax, (5.0, 3.5))
    scale = 1.0 / per_particle if per_particle else 1.0
    rec = np.asarray(reconstructed, dtype=np.float64) * scale
    ref = rec if original is None else np.asarray(original, dtype=np.float64) * scale
    lo, hi = np.quantile(ref[np.isfinite(ref)], [0.05, 0.95])
    pad = 0.6 * (hi - lo) if hi > lo else 1.0
    if n_bins is None:
        n_bins = int(np.clip(np.sqrt(ref.size), 10, 60))
    bins = np.linspace(lo - pad, hi + pad, n_bins + 1)
    if original is not None:
        ax.hist(ref, bins=bins, density=True, histtype="stepfilled", alpha=0.45,
                color=ORIGINAL_COLOR, label="original")
    wide, shown, outside = edge_binned(rec, bins)
    ax.hist(shown, bins=wide, density=True, histtype="step", lw=1.8,
            color=RECONSTRUCTED_COLOR, label="reconstructed")
    lines = []
    if comparison is not None:
        unit = "ε/N" if per_particle else "ε"
        lines.append(f"W1 = {comparison.w1 * scale:.3g} ± {comparison.w1_err * scale:.2g} {unit}"
                     f"  (floor {comparison.w1_floor * scale:.2g})")
        lines.append(f"JS = {comparison.js:.3f} ± {comparison.js_err:.3f}"
                     f"  (floor {comparison.js_floor:.3f})")
    if outside:
        lines.append(f"{outside} reconstructed outside range (edge bins)")
    if lines:
        ax.text(0.02, 0.97, "\n".join(lines), transform=ax.transAxes, va="top", fontsize=8,
                bbox={"fc": "white", "alpha": 0.8, "lw": 0})
    if outside:
        mark_edge_bins(ax, bins)
    ax.set_xlabel("energy per particle U/N (ε)" if per_particle
                  else "energy per configuration U (ε)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8, loc="upper right")
    return ax


def plot_height_profiles(
    original: HeightProfile | None,
    reconstructed: HeightProfile,
    ax: Axes | None = None,
) -> Axes:
    """rho(y) of original and reconstructed configurations, with standard errors
    as bands; height on the vertical axis, as in the box."""
    ax = _axes(ax, (3.5, 3.5))
    for prof, color, label in ((original, ORIGINAL_COLOR, "original"),
                               (reconstructed, RECONSTRUCTED_COLOR, "reconstructed")):
        if prof is None:
            continue
        y = prof.centers
        ax.fill_betweenx(y, prof.rho - prof.rho_err, prof.rho + prof.rho_err, color=color,
                         alpha=0.25, lw=0)
        ax.plot(prof.rho, y, color=color, lw=1.5, label=label)
    ax.set_ylim(reconstructed.edges[0], reconstructed.edges[-1])
    ax.set_xlabel("number density ρ(y)  (σ⁻²)")
    ax.set_ylabel("y (σ)")
    ax.legend(fontsize=8)
    return ax


def summary_figure(
    reconstructed: np.ndarray,
    box: float,
    *,
    original: np.ndarray | None = None,
    indices: np.ndarray | None = None,
    edges: np.ndarray | None = None,
    energies: tuple[np.ndarray | None, np.ndarray] | None = None,
    comparison: EnergyComparison | None = None,
    profiles: tuple[HeightProfile | None, HeightProfile] | None = None,
    notes: list[str] | None = None,
    title: str | None = None,
) -> Figure:
    """The ``--plot`` figure: a few configurations (originals above, reconstructions
    below, same columns), then the energy histograms and the height profiles.

    Args:
        reconstructed: (M, N, 2) positions, sigma.
        box: L, sigma.
        original: (M, N, 2) original positions, or None.
        indices: which configurations to show (default: the first four).
        edges: (M, 2) resting edges to highlight in the reconstructions.
        energies: (original or None, reconstructed) energies, epsilon.
        comparison: energy comparison (for W1 / JS annotations).
        profiles: (original or None, reconstructed) height profiles.
        notes: one extra title line per shown configuration (e.g. its RMSD).
        title: figure title.
    """
    m, n = reconstructed.shape[0], reconstructed.shape[1]
    idx = np.arange(min(4, m)) if indices is None else np.asarray(indices)
    k = max(len(idx), 2)
    rows = (2 if original is not None else 1) + 1
    shown = [reconstructed[idx]] + ([] if original is None else [original[idx]])
    lim = (min(0.0, min(float(p.min()) for p in shown) - 0.5) - 0.3,
           max(box, max(float(p.max()) for p in shown) + 0.5) + 0.3)
    fig = Figure(figsize=(2.6 * k, 2.7 * (rows - 1) + 3.4), layout="constrained")
    gs = fig.add_gridspec(rows, k, height_ratios=[1.0] * (rows - 1) + [1.25])
    for col, i in enumerate(idx):
        r = 0
        if original is not None:
            plot_configuration(original[i], box, fig.add_subplot(gs[r, col]),
                               color=ORIGINAL_COLOR, title=f"original #{i}", limits=lim)
            r += 1
        edge = None if edges is None else tuple(int(v) for v in edges[i])
        plot_configuration(reconstructed[i], box, fig.add_subplot(gs[r, col]),
                           color=RECONSTRUCTED_COLOR, edge=edge, limits=lim,
                           title=f"reconstructed #{i}" + (f"\n{notes[col]}" if notes else ""))
    half = k // 2
    if energies is not None:
        plot_energy_histograms(energies[0], energies[1], fig.add_subplot(gs[-1, :half]),
                               comparison=comparison, per_particle=n)
    if profiles is not None:
        plot_height_profiles(profiles[0], profiles[1], fig.add_subplot(gs[-1, half:]))
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
