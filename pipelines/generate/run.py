"""The whole generation run (:func:`run_generation`): fit, generate, judge, report."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from mcsim.clitools import UserError, atomic_output
from mcsim.io import read_dataset, write_dataset
from mcsim.observables import pair_distances
from mcsim.potentials import total_energy
from mcsim.relax import relax_configurations
from mcsim.shared import jsonable, thread_limits
from pipelines.generate.config import GenerateConfig
from pipelines.generate.judge import compare_sets, sampler_rate
from pipelines.generate.latents import (
    TrainingLatents,
    _require_distance_model,
    checkpoint_fingerprint,
    fit_priors,
    prior_provenance,
    training_latents,
)
from pipelines.generate.plots import plot_gamma_figure
from pipelines.generate.report import _OBS, _markdown_report, _ratio, markdown_table
from pipelines.generate.sampling import GeneratedSet, generate_configurations, write_generated
from vae.priors import LatentPrior


# ---------------------------------------------------------------------------------
# the whole run
def _gamma_label(g: float) -> str:
    return f"{g:g}"


def _positions_at(files: list[Path], gamma: float) -> tuple[np.ndarray, float]:
    chunks, box = [], None
    for f in files:
        ds = read_dataset(f)
        sel = np.isclose(ds.gamma, gamma, rtol=1e-9, atol=1e-12)
        if box is None:
            box = ds.box
        elif not math.isclose(ds.box, box, rel_tol=1e-12):
            raise UserError(f"mc_files: the files mix box sides ({box:g}, {ds.box:g})")
        chunks.append(ds.positions[sel])
    return (np.concatenate(chunks) if chunks else np.zeros((0, 0, 2))), float(box or 0)


def run_generation(checkpoint: Path, out_dir: Path, cfg: GenerateConfig, *,
                   mc_files: list[Path] | None = None, progress: bool = True,
                   overwrite: bool = False,
                   priors: dict[str, LatentPrior] | None = None,
                   trained=None, latents: TrainingLatents | None = None) -> dict[str, Any]:
    """Fit the priors, generate at every gamma, judge against held-out MC, write the
    report (module docstring) and return its summary dict.

    Args:
        checkpoint: the VAE checkpoint (``best.pt``).
        out_dir: report folder (created; an existing ``generate.json`` there is only
            replaced with ``overwrite``).
        cfg: settings.
        mc_files: datasets to take the MC reference from instead of the test split.
        progress: progress bars.
        overwrite: replace an earlier report in ``out_dir``.
        priors: already fitted priors by name (fitted here when missing).
        trained: the model of ``checkpoint``, if already loaded (``load_model``).
        latents: its :func:`training_latents`, if already computed.

    Returns:
        The summary (also in ``generate.json``), with ``table`` (Markdown) and
        ``figures`` (paths).
    """
    from tqdm.auto import tqdm

    from vae.checkpoint import load_model

    out_dir = Path(out_dir)
    report = out_dir / "generate.json"
    if report.exists() and not overwrite:
        raise UserError(f"{report} exists (overwrite=True replaces it)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {out_dir}: {exc.strerror}") from None
    ck_path = Path(checkpoint)
    with thread_limits(cfg.threads, torch=True):
        return _run(ck_path, out_dir, cfg, mc_files, progress, overwrite, priors,
                    trained if trained is not None else load_model(ck_path), latents, tqdm)


def _run(ck_path, out_dir, cfg, mc_files, progress, overwrite, priors, trained, latents,
         tqdm):
    t_start = time.perf_counter()
    _require_distance_model(trained)
    latents = latents if latents is not None else training_latents(trained)
    box = latents.box
    gammas = tuple(float(g) for g in (cfg.gammas or trained.info.gammas))
    if latents.potential is None:
        raise UserError("checkpoint: the training files record no simulation config "
                        "(potential unknown); cannot compute energies")
    ck_fp = checkpoint_fingerprint(ck_path)
    provenance = prior_provenance(ck_path, trained, ck_fp)
    fitted = dict(priors or {})
    missing = [p for p in cfg.priors if p not in fitted]
    fitted.update(fit_priors(missing, latents, cfg, provenance=provenance, progress=progress))
    (out_dir / "priors").mkdir(exist_ok=True)
    for name in cfg.priors:
        fitted[name].save(out_dir / "priors" / f"{name}.npz", overwrite=True)

    # the n per gamma: equal sizes for generated, reference and floor sets
    ref_sets: dict[float, np.ndarray] = {}
    avail = []
    for g in gammas:
        for name in cfg.priors:
            fitted[name].check_gamma(g)  # refuse unseen gammas before any work
        if mc_files:
            pos, mc_box = _positions_at([Path(f) for f in mc_files], g)
            if pos.size and not math.isclose(mc_box, box, rel_tol=1e-12):
                raise UserError(f"mc_files: box L={mc_box:g} differs from the model's {box:g}")
        else:
            pos = latents.held_out("test", g)
        if pos.shape[0] < 2:
            raise UserError(f"gamma={g:g}: no held-out MC configurations to judge against "
                            "(not a trained gamma, and no mc_files file holds it)")
        ref_sets[g] = pos
        avail.append(pos.shape[0])
        if cfg.floor == "validation":
            avail.append(latents.held_out("val", g).shape[0])
        elif g not in latents.sim:
            raise UserError(f"gamma={g:g}: the training files record no simulation config "
                            "for this gamma; use floor='validation'")
    n = min(cfg.n, *avail)
    if cfg.relax_sweeps and any(g not in latents.sim for g in gammas):
        raise UserError("relax_sweeps: the training files record no simulation config")
    pot = latents.potential
    results: dict[str, Any] = {}
    figures: list[str] = []
    per_prior_rates: dict[str, list[float]] = {p: [] for p in cfg.priors}
    sampler_rates: list[float] = []
    extra_attrs = {"checkpoint": str(ck_path), "checkpoint_fingerprint": ck_fp,
                   "data_fingerprint": trained.info.fingerprint,
                   "model_epoch": int(trained.epoch), "vae_config": trained.config.to_json(),
                   "potential": json.dumps(pot.to_dict(), sort_keys=True)}
    sets_dir = out_dir / "sets"
    if cfg.write_sets:
        sets_dir.mkdir(exist_ok=True)
    # warm-up: compile / load the numba kernels so that no timing includes it
    generate_configurations(trained, fitted[cfg.priors[0]], 4, gammas[0], seed=cfg.seed,
                            placement=cfg.placement, decoder_precision=cfg.decoder_precision)
    k_relax = cfg.relax_sweeps
    bar = tqdm(total=len(gammas) * (len(cfg.priors) + 1), desc="generate+judge",
               disable=not progress, dynamic_ncols=True)
    with bar:
        for g in gammas:
            gl = _gamma_label(g)
            ref = ref_sets[g][:n]
            e_ref = np.asarray(total_energy(ref, g, pot), np.float64)
            # floor set and sampler timing
            sim = latents.sim.get(g)
            bar.set_postfix_str(f"gamma={gl} MC floor")
            if cfg.floor == "sampler":
                if sim.seed == cfg.mc_seed:
                    raise UserError(f"mc_seed: {cfg.mc_seed} equals the training data's seed; "
                                    "the floor set would not be independent")
                rate, samples = sampler_rate(sim, g, n, n_threads=cfg.threads, seed=cfg.mc_seed)
                floor_pos = samples.positions
                floor_src = (f"fresh MC, {sim.protocol} protocol, {sim.sweeps} sweeps, "
                             f"seed {cfg.mc_seed}")
            else:
                floor_pos = latents.held_out("val", g)[:n]
                rate = math.nan
                if sim is not None:
                    rate, _ = sampler_rate(sim, g, cfg.speed_batch, n_threads=cfg.threads,
                                           seed=cfg.mc_seed)
                floor_src = "validation split"
            if math.isfinite(rate):
                sampler_rates.append(rate)
            e_floor = np.asarray(total_energy(floor_pos, g, pot), np.float64)
            bar.update(1)
            gen: dict[str, GeneratedSet] = {}
            for name in cfg.priors:
                bar.set_postfix_str(f"gamma={gl} {name}")
                gs = generate_configurations(
                    trained, fitted[name], n, g, seed=cfg.seed, potential=pot,
                    overlap=cfg.overlap, reject_unphysical=cfg.reject_unphysical,
                    max_draw_factor=cfg.max_draw_factor, placement=cfg.placement,
                    decoder_precision=cfg.decoder_precision)
                gen[name] = gs
                per_prior_rates[name].append(gs.rate)
                if cfg.write_sets:
                    p = sets_dir / f"{name}_gamma_{gl}.h5"
                    write_generated(p, gs, attrs={**extra_attrs,
                                                  "prior_file": f"priors/{name}.npz"},
                                    xyz=p.with_suffix(".xyz") if cfg.xyz else None,
                                    overwrite=True)
                bar.update(1)
            # post-processing rows (not generation): K sweeps from each output, and the
            # control: K sweeps from uniform starts
            post: dict[str, dict[str, Any]] = {}
            if k_relax:
                bar.set_postfix_str(f"gamma={gl} +mc{k_relax}")
                for name, gs in gen.items():
                    rp, re_, rt = relax_configurations(gs.positions, sim, g, k_relax,
                                                       seed=cfg.seed)
                    post[f"{name}+mc{k_relax}"] = {
                        "positions": rp, "energy": re_, "relax_seconds": rt,
                        "seconds": gs.generation_seconds + rt, "from": name}
                t0 = time.perf_counter()
                from mcsim.sampler import sample

                ctl = sample(sim.replace(sweeps=k_relax, seed=cfg.mc_seed + 1), g, n,
                             n_threads=cfg.threads)
                dt = time.perf_counter() - t0
                post[f"uniform+mc{k_relax}"] = {
                    "positions": ctl.positions, "energy": ctl.energy, "relax_seconds": dt,
                    "seconds": dt, "from": "uniform random start"}
            if cfg.write_sets and cfg.floor == "sampler":
                write_dataset(sets_dir / f"mc_floor_gamma_{gl}.h5", floor_pos, g,
                              {**sim.replace(seed=cfg.mc_seed, gammas=(g,),
                                             n_samples=n).file_attrs(),
                               "purpose": "MC floor set for generate"},
                              energy=e_floor, overwrite=True)
            sets = {"mc": {"positions": ref, "energy": e_ref},
                    "floor": {"positions": floor_pos, "energy": e_floor}}
            sets.update({k: {"positions": v.positions, "energy": v.energy}
                         for k, v in gen.items()})
            sets.update({k: {"positions": v["positions"], "energy": v["energy"]}
                         for k, v in post.items()})
            dist = compare_sets(sets, "mc", box, n_boot=cfg.n_boot, seed=cfg.seed)
            fl = dist.pop("floor")
            mc_unph = float(np.mean(pair_distances(ref).min(axis=1) < cfg.overlap))
            gres = {"gamma": g, "n": n, "floor_source": floor_src,
                    "floor": {k: v.to_dict() for k, v in fl.items()},
                    "mc_mean_energy_per_particle": float(e_ref.mean() / ref.shape[1]),
                    "floor_mean_energy_per_particle": float(e_floor.mean() / ref.shape[1]),
                    "mc_unphysical_fraction": mc_unph,
                    "sampler_rate_per_s": rate, "priors": {}, "postprocessed": {}}
            for name, d in dist.items():
                ratios = {}
                for obs, _ in _OBS:
                    ratios[f"{obs}_w1"] = _ratio(d[obs].w1, fl[obs].w1)
                    ratios[f"{obs}_js"] = _ratio(d[obs].js, fl[obs].js)
                entry: dict[str, Any] = {"distances": {k: v.to_dict() for k, v in d.items()},
                                         "ratios": ratios}
                pos_k, e_k = sets[name]["positions"], sets[name]["energy"]
                med_e = float(np.median(e_k) / ref.shape[1])
                if name in gen:
                    entry["generated"] = {**gen[name].summary(),
                                          "median_energy_per_particle": med_e}
                    gres["priors"][name] = entry
                else:
                    pp = post[name]
                    dmin = pair_distances(pos_k).min(axis=1)
                    outside = np.any((pos_k < 0) | (pos_k > box), axis=(1, 2))
                    entry["generated"] = {
                        "from": pp["from"], "sweeps": k_relax, "n": int(len(e_k)),
                        "unphysical_fraction": float(np.mean((dmin < cfg.overlap) | outside)),
                        "median_energy_per_particle": med_e,
                        "relax_seconds": pp["relax_seconds"],
                        "rate_per_s": len(e_k) / pp["seconds"] if pp["seconds"] > 0
                        else math.inf}
                    gres["postprocessed"][name] = entry
            results[gl] = gres
            from matplotlib.figure import Figure

            rows = 2 if post else 1
            fig = Figure(figsize=(19, 3.8 * rows), layout="constrained")
            grid = np.atleast_2d(fig.subplots(rows, 5))
            plot_gamma_figure(g, ref, e_ref, {k: (v.positions, v.energy) for k, v in gen.items()},
                              box, floor=(floor_pos, e_floor), overlap=cfg.overlap,
                              axs=grid[0], title="generated, ")
            if post:
                plot_gamma_figure(g, ref, e_ref,
                                  {k: (v["positions"], v["energy"]) for k, v in post.items()},
                                  box, floor=(floor_pos, e_floor), overlap=cfg.overlap,
                                  axs=grid[1], title=f"+{k_relax} MC sweeps, ")
            fpath = out_dir / f"fig_gamma_{gl}.png"
            with atomic_output(fpath, overwrite=True) as tmp:
                fig.savefig(tmp, dpi=100, format="png")
            figures.append(str(fpath))
    per_prior = {k: float(np.median(v)) for k, v in per_prior_rates.items() if v}
    gen_rate = float(np.median([r for v in per_prior_rates.values() for r in v]))
    samp = float(np.median(sampler_rates)) if sampler_rates else math.nan
    sim0 = next(iter(latents.sim.values()))
    speed = {
        "generation_rate_per_s": gen_rate,
        "per_prior_rate_per_s": per_prior,
        "sampler_rate_per_s": samp,
        "ratio": gen_rate / samp if samp > 0 else math.nan,
        "threads": cfg.threads,
        "sampler_protocol": (f"{sim0.protocol}, {sim0.sweeps} sweeps from a uniform start, "
                             f"delta {sim0.delta:g}, N={sim0.n_particles}"
                             if sim0.protocol == "independent" else sim0.protocol),
        "sampler_timed_configs": n if cfg.floor == "sampler" else cfg.speed_batch,
        "prior_fit_seconds": {k: fitted[k].fit_info.get("fit_seconds") for k in cfg.priors},
    }
    per_gamma = {}
    for gl, gres in results.items():
        best = min(gres["priors"], key=lambda k: gres["priors"][k]["ratios"]["energy_w1"])
        br = gres["priors"][best]["ratios"]["energy_w1"]
        per_gamma[gl] = {"best_prior": best, "best_ratio": br, "met": br <= 3.0}
    targets = {"per_gamma": per_gamma,
               "energy_w1_all_gammas": all(v["met"] for v in per_gamma.values()),
               "speed_1000x": bool(speed["ratio"] >= 1000)}
    summary: dict[str, Any] = {
        "checkpoint": {"path": str(ck_path), "fingerprint": ck_fp,
                       "data_fingerprint": trained.info.fingerprint,
                       "data_files": list(trained.info.files), "epoch": int(trained.epoch)},
        "config": cfg.to_dict(),
        "n_per_gamma": n,
        "reference": "mc files " + ", ".join(map(str, mc_files)) if mc_files
        else "the model's test split",
        "floor_source": ("independent MC run with the training protocol (seed "
                         f"{cfg.mc_seed})" if cfg.floor == "sampler"
                         else "the model's validation split"),
        "potential": pot.to_dict(),
        "gammas": results,
        "speed": speed,
        "targets": targets,
        "priors": {k: {"params": fitted[k].params(), "file": str(out_dir / "priors" /
                                                                 f"{k}.npz"),
                       "fit_info": {kk: vv for kk, vv in fitted[k].fit_info.items()
                                    if kk != "history"}} for k in cfg.priors},
        "figures": figures,
        "wall_seconds": time.perf_counter() - t_start,
    }
    summary["table"] = markdown_table(summary)
    md = _markdown_report(summary)
    summary["markdown"] = md
    with atomic_output(out_dir / "generate.md", overwrite=True) as tmp:
        tmp.write_text(md)
    with atomic_output(out_dir / "generate.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(jsonable(summary, nonfinite="str"), indent=1, sort_keys=True))
    return summary
