"""The per-gamma figure of a generation run (energy, p(r), rho(y); MC and every prior)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mcsim.observables import pair_distances
from vae.priors import PRIOR_SPECS

#: line colours: each prior's (vae.priors registry) and the uniform baseline's
_COLORS = {**{s.name: s.color for s in PRIOR_SPECS.values()}, "uniform": "#000000"}


def _style(name: str) -> dict[str, Any]:
    base = name.split("+")[0]
    style: dict[str, Any] = {"color": _COLORS.get(base), "lw": 1.2}
    if "+" in name:
        style["ls"] = ":" if base == "uniform" else "-"
        tail = name.split("+", 1)[1]
        if tail.startswith("mc") and tail[2:].isdigit():  # warm starts: dashed, darker
            k = int(tail[2:])  # with more sweeps
            style.update(ls="--", lw=1.0, alpha=min(1.0, 0.3 + 0.2 * math.log10(max(k, 1))))
    return style


def plot_gamma_figure(gamma: float, reference: np.ndarray, ref_energy: np.ndarray,
                      generated: dict[str, tuple[np.ndarray, np.ndarray]], box: float, *,
                      floor: tuple[np.ndarray, np.ndarray] | None = None,
                      overlap: float = 0.8, axs=None, title: str = ""):
    """Five panels for one gamma: energy per particle, p(r) over the whole range, p(r)
    at short range, the closest-pair distance per configuration, and rho(y). The MC
    reference is filled grey, the floor MC set dashed black, each generated set a
    coloured line.

    Args:
        gamma: the field.
        reference: (M, N, 2) MC positions, sigma; ``ref_energy`` (M,) their energies.
        generated: name -> (positions (M', N, 2), energies (M',)).
        box: L, sigma.
        floor: (positions, energies) of the second MC set, or None.
        overlap: the overlap threshold, marked in the short-range panels.
        axs: five matplotlib axes, or None for a new figure.

    Returns:
        The axes.
    """
    from mcsim.observables import pair_distance_distribution
    from reconstruct.metrics import height_profile
    from reconstruct.plotting import edge_binned, mark_edge_bins

    if axs is None:
        from matplotlib.figure import Figure

        axs = Figure(figsize=(19, 3.8), layout="constrained").subplots(1, 5)
    n_part = reference.shape[1]
    e_ref = ref_energy / n_part
    lo, hi = np.quantile(e_ref, [0.002, 0.998])
    pad = 0.25 * (hi - lo)
    e_edges = np.linspace(lo - pad, hi + pad, 50)
    short = np.linspace(0, 4, 81)
    dmin_edges = np.linspace(0, 2, 81)
    inner_max = [0.0]  # the tallest in-range energy density (sets the y range)
    any_outside = [False]

    def draw(pos, energy, label, filled=False, **kw):
        e = energy / n_part
        wide, shown, outside = edge_binned(e, e_edges)
        off = outside / max(len(e), 1)
        lab = label + (f" ({off:.0%} in edge bins)" if off > 0.005 else "")
        any_outside[0] |= outside > 0
        d = pair_distances(pos)
        r, p, _ = pair_distance_distribution(pos, box, bins=100)
        prof = height_profile(pos, box, 40)
        h_e = np.histogram(shown, wide)[0] / max(len(e), 1) / np.diff(wide)
        inner_max[0] = max(inner_max[0], float(h_e[1:-1].max(initial=0.0)))
        h_s = np.histogram(d.ravel(), short)[0] / max(d.size, 1) / np.diff(short)
        h_m = np.histogram(d.min(axis=1), dmin_edges)[0] / max(len(d), 1) / np.diff(dmin_edges)
        if filled:
            kw = {"color": "0.8"}
            axs[0].stairs(h_e, wide, fill=True, label=lab, **kw)
            axs[1].fill_between(r, p, label=label, **kw)
            axs[2].stairs(h_s, short, fill=True, label=label, **kw)
            axs[3].stairs(h_m, dmin_edges, fill=True, label=label, **kw)
            axs[4].fill_between(prof.centers, prof.rho, label=label, **kw)
            return
        axs[0].stairs(h_e, wide, label=lab, **kw)
        axs[1].plot(r, p, label=label, **kw)
        axs[2].stairs(h_s, short, label=label, **kw)
        axs[3].stairs(h_m, dmin_edges, label=label, **kw)
        axs[4].plot(prof.centers, prof.rho, label=label, **kw)

    draw(reference, ref_energy, "MC (held out)", filled=True)
    if floor is not None:
        draw(floor[0], floor[1], "MC (floor set)", color="k", ls="--", lw=1)
    for name, (pos, energy) in generated.items():
        draw(pos, energy, name, **_style(name))
    t = f"{title}gamma = {gamma:g}: "
    axs[0].set(xlabel="U / N (epsilon)", ylabel="density", title=t + "energy")
    if any_outside[0]:  # edge bins may be far taller than the in-range densities
        mark_edge_bins(axs[0], e_edges)
        axs[0].set_ylim(0, 1.3 * inner_max[0])
    axs[1].set(xlabel="r (sigma)", ylabel="p(r)", title="pair distances")
    axs[2].set(xlabel="r (sigma)", ylabel="p(r)", title="pair distances, r < 4")
    axs[3].set(xlabel="min_ij r_ij (sigma)", ylabel="density",
               title="closest pair per configuration")
    for ax in axs[2:4]:
        ax.axvline(overlap, color="0.5", lw=0.6, ls=":")
    axs[4].set(xlabel="y (sigma)", ylabel="rho(y) (sigma^-2)", title="height profile")
    axs[0].legend(fontsize=7)
    return axs


