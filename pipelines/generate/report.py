"""The Markdown report of a generation run."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------------
# report
_OBS = (("energy", "E"), ("pair_distance", "p(r)"), ("height", "rho(y)"))


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else (math.inf if a > 0 else 1.0)


def markdown_table(summary: dict[str, Any]) -> str:
    """The distance table of a :func:`run_generation` summary, as Markdown: per gamma
    the MC-vs-MC floor (absolute values), then each prior (distance / floor), then any
    post-processed rows (``<prior>+mc<K>``; not generation)."""
    lines = [
        "| gamma | set | E W1 (eps) | E W1/floor | E JS | E JS/floor | p(r) W1/floor | "
        "p(r) JS/floor | rho(y) W1/floor | rho(y) JS/floor | unphysical | median U/N |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def num(v: float) -> str:
        return f"{v:.3g}" if abs(v) < 1e5 else f"{v:.1e}"

    for gk, gres in summary["gammas"].items():
        fl = gres["floor"]
        lines.append(
            f"| {gk} | MC vs MC (floor) | {num(fl['energy']['w1'])} ± "
            f"{fl['energy']['w1_err']:.2g} | 1 | {fl['energy']['js']:.3g} ± "
            f"{fl['energy']['js_err']:.2g} | 1 | 1 ({fl['pair_distance']['w1']:.3g} sigma) | "
            f"1 ({fl['pair_distance']['js']:.3g}) | 1 ({fl['height']['w1']:.3g} sigma) | "
            f"1 ({fl['height']['js']:.3g}) | {gres['mc_unphysical_fraction']:.1%} | "
            f"{gres['mc_mean_energy_per_particle']:.3f} (mean) |")
        rows = list(gres["priors"].items()) + list(gres.get("postprocessed", {}).items())
        for name, pr in rows:
            d, r = pr["distances"], pr["ratios"]
            label = name if "+" not in name else f"{name} (post-processed)"
            lines.append(
                f"| {gk} | {label} | {num(d['energy']['w1'])} ± {d['energy']['w1_err']:.2g} | "
                f"**{num(r['energy_w1'])}** | {d['energy']['js']:.3g} ± "
                f"{d['energy']['js_err']:.2g} | {num(r['energy_js'])} | "
                f"{num(r['pair_distance_w1'])} | {num(r['pair_distance_js'])} | "
                f"{num(r['height_w1'])} | {num(r['height_js'])} | "
                f"{pr['generated']['unphysical_fraction']:.1%} | "
                f"{num(pr['generated']['median_energy_per_particle'])} |")
    return "\n".join(lines)


def _markdown_report(summary: dict[str, Any]) -> str:
    cfg = summary["config"]
    sp = summary["speed"]
    tg = summary["targets"]
    out = [
        "# Generation judged against Monte Carlo",
        "",
        f"Checkpoint `{summary['checkpoint']['path']}` (sha256 "
        f"{summary['checkpoint']['fingerprint']}, data {summary['checkpoint']['data_fingerprint']}"
        f"); n = {summary['n_per_gamma']} per gamma and prior; reference: "
        f"{summary['reference']}; floor: {summary['floor_source']}; "
        f"{cfg['n_boot']} bootstrap replicates; seed {cfg['seed']}; reject unphysical: "
        f"{cfg['reject_unphysical']}.",
        "",
        "Distances to the held-out MC set (W1 in epsilon for E; ratios are distance / the "
        "same distance between two independent MC sets of the same size). Unphysical = a "
        f"pair closer than {cfg['overlap']:g} sigma or outside the box.",
        "",
        markdown_table(summary),
        "",
        "## Targets",
        "",
    ]
    for gk, v in tg["per_gamma"].items():
        out.append(f"- gamma {gk}: best prior by energy W1 = **{v['best_prior']}**, "
                   f"W1/floor = {v['best_ratio']:.3g} (target <= 3: "
                   f"{'met' if v['met'] else 'NOT met'})")
    out += [
        f"- energy W1 within 3x floor at every gamma: "
        f"**{'met' if tg['energy_w1_all_gammas'] else 'NOT met'}**",
        f"- speed: generation {sp['generation_rate_per_s']:.4g} configurations/s "
        f"(median over priors and gammas; prior sample + decode + reconstruct + checks) vs "
        f"sampler {sp['sampler_rate_per_s']:.4g}/s ({sp['sampler_protocol']}), "
        f"{sp['threads']} thread(s): **{sp['ratio']:.3g}x** (target >= 1000x: "
        f"{'met' if sp['ratio'] >= 1000 else 'NOT met'})",
        "",
        "Generation rate per prior (configurations/s, median over gammas): " + ", ".join(
            f"{k} {v:.4g}" for k, v in sp["per_prior_rate_per_s"].items()) + ".",
    ]
    if cfg.get("relax_sweeps"):
        k = cfg["relax_sweeps"]
        rates = {}
        for gres in summary["gammas"].values():
            for name, pr in gres.get("postprocessed", {}).items():
                rates.setdefault(name, []).append(pr["generated"]["rate_per_s"])
        out += [
            "",
            f"Post-processed rows (`<prior>+mc{k}`) are NOT generation: each generated "
            f"configuration was followed by {k} Metropolis sweeps of the training protocol; "
            f"`uniform+mc{k}` is the control, the same {k} sweeps from uniform random starts. "
            "Rates (configurations/s incl. generation, median over gammas): " + ", ".join(
                f"{name} {float(np.median(v)):.4g}" for name, v in rates.items()) + ".",
        ]
    return "\n".join(out) + "\n"


