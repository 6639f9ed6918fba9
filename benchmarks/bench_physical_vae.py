"""Ablation of the physical VAE (vae.physical): decoder x loss terms x denoising.

    python benchmarks/bench_physical_vae.py --data data.h5 --floor floor.h5 --out DIR \\
        --variants pair coord coord+ov coord+ov+ch coord+ov+ch+dn coord+g+ov+ch+dn \\
        --max-per-gamma 1000 --epochs 20 --n-eval 500 --placement thermal

For every variant: train (``vae.training.train``; an existing ``DIR/<variant>/best.pt``
is reused with ``--reuse``), then judge, per trained gamma, against the model's held-out
*test* configurations of that gamma (the first ``--n-eval``):

* the test sorted-matrix MSE (input units, per gamma, from the run's metrics.json) and,
  for decoders that place particles, the matched MSE (``vae.training.matched_mse``: the
  decoded particles in the order of the true ones they match);
* reconstruction (target 3): decode(mu_z(x_test)) -> symmetrize -> Gram + tumbler
  (``reconstruct.reconstruct_configurations`` with ``--placement``); the overlap
  fraction (a pair closer than 0.8 sigma), the fraction outside the box, and energy
  W1 against that of the exact-matrix control (the test matrices themselves through
  the same reconstruction); with ``--refine K``, also the reconstruction from refined
  latents (``vae.refine``: K Adam steps per test configuration on the run's
  per-configuration loss terms from mu_z, decoder fixed), reported apart and labelled;
* raw generation (target 1): z from each ``--priors`` (fitted on the encoded training
  split) -> decoder -> reconstruction, no Metropolis step; overlap / outside fractions
  and energy, p(r), rho(y) W1 divided by the floor.

The floor is the same distance between the test configurations and an independent MC
set (``--floor``, the same protocol and size, another seed); with several ``--floor``
files, the mean of those distances (one floor set's W1 scatters by ~2x at n = 2000, so
a single set decides pass or fail by chance; the mean over k sets is ~sqrt(k)
steadier). W1 and its bootstrap error come from ``pipelines.generate.compare_sets``.
Speed (target 4): generation (prior + decode + reconstruct + checks) against the
sampler with the training protocol (``pipelines.generate.sampler_rate``), one thread
each, in this run.
Between trained gammas (target 2): ``--between REF FLOOR`` (MC sets at untrained
gammas) judges the flow prior there. ``--decode-path float32|bfloat16`` places the
decoded slot positions directly (the product's path) with the decoder at that
precision instead of going through the Gram embedding (``gram``, the default).

Prints every table and writes ``DIR/bench.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from mcsim.io import read_dataset
from mcsim.observables import pair_distances
from mcsim.potentials import total_energy
from mcsim.sampler import threads as numba_threads
from pipelines.generate import (
    GenerateConfig,
    compare_sets,
    fit_priors,
    relax_configurations,
    sampler_rate,
    training_latents,
)
from reconstruct.distances import distance_matrices, symmetrize_distances
from reconstruct.embedding import embed_distances
from reconstruct.pipeline import reconstruct_configurations
from vae.checkpoint import load_checkpoint, load_model
from vae.config import DataConfig, LossConfig, ModelConfig, RunConfig, TrainConfig
from vae.data import length_scale
from vae.physical import pair_distance_matrix
from vae.priors import GammaInterpolationWarning
from vae.refine import refine_for_positions
from vae.training import prepare_data, test_metrics, train

#: The variants of the ablation tables so far (any name :func:`parse_variant` reads works).
VARIANTS = (
    "pair", "coord", "coord+ch", "coord+dn", "coord+g", "coord+ov0.1", "coord+ov0.3",
    "coord+ov1", "coord+ov0.3+ch", "coord+ov0.3+dn", "coord+g+ov0.3", "coord+g+ov0.3+ch+dn",
    "coord+g+ov0.3r0.85", "coord+g+ov0.3r1.0", "coord+g+ov1r0.85+dn",
    "pair2d+g+ov0.3r0.85+dn", "pair2d", "pair2d+ov0.1", "pair2d+g+ov0.1+dn",
    "pair2d+g+ov0.1+ch+dn",
    "coord+g+ov0.3+em0.003", "coord+g+ov0.3+em0.01", "coord+g+ov0.3+em0.03",
    "coord+g+ov0.3+em0.1", "coord+g+ov0.3+em1", "coord+g+ov0.3+em0.01c0.95", "coord+g+em0.01",
    "coord+g+ov0.3+ep0.1", "coord+g+ov0.3+eb0.003", "coord+g+ov0.3+eb0.03", "coord+g+ov0.3+gv1",
    "coord+g+ov0.3+em0.01+gv0.3", "coord+g+ov0.3+em0.01+gv1", "coord+g+ov0.3+em0.01+gv0.1",
)
#: energy-term tokens -> LossConfig.energy_mode
_ENERGY_TOKENS = {"em": "match", "ep": "particle", "eb": "boltzmann"}


def parse_variant(name: str) -> tuple[dict, dict]:
    """Variant name -> (model settings, loss settings).

    ``<arch>[+token...]``: arch ``pair``, ``coord`` or ``pair2d``; tokens ``g`` = gamma
    to the decoder; ``ovW`` = overlap penalty of weight W (r0 = 0.95 sigma unless
    ``ovWrR`` names another); ``ch`` = row Chamfer (weight 1); ``ms`` = slot matching
    (``LossConfig.match_slots``); ``dn`` = denoising
    (0.05 sigma); ``emW`` / ``epW`` / ``ebW`` = the LJ energy term of weight W in mode
    match / particle / boltzmann (``...cR``: linear core below R sigma instead of 0.9);
    ``gvW`` = the gravity term of weight W; ``prW`` / ``hyW`` / ``edW`` = the batch W1
    of pair distances / of heights / of pair energies per particle of weight W, ``bxW``
    the box term, ``phW`` the placed-height term (thermal placement; ``phWdK``: K
    placements per shape), ``tpW`` the thermal-profile term; e.g.
    ``coord+g+ov0.3+em0.01+gv0.1+pr0.1``. Training tokens (:func:`train_settings`):
    ``gcV`` = gradient clipping at norm V, ``lrp`` = the ``plateau`` LR schedule,
    ``emaD`` = the weights' moving average with decay D (``--ema``), ``selp`` = keep the
    epoch of the best physics score (``--select physics``), ``sK`` = training seed K
    (instead of ``--seed``), ``pK`` = early-stopping patience K (instead of
    ``--patience``; 0 = off), ``lrc`` = the ``cosine`` LR schedule, ``neK`` = K epochs
    (instead of ``--epochs``);
    ``wK``: decoder widths (K, K) instead of (512, 512); ``chA-B``: encoder conv channels
    (A, B) instead of (32, 64); ``zK``: latent dimension K
    instead of 40; ``klV``: KL weight lambda = V instead of 3.5e-4.
    """
    arch, *tokens = name.split("+")
    if arch not in ("pair", "coord", "pair2d"):
        raise ValueError(f"variant {name!r}: unknown arch {arch!r}")
    model, loss = {"arch": arch}, {}
    for tok in tokens:
        m = re.fullmatch(r"ov([0-9.e-]+)(?:r([0-9.]+))?", tok)
        e = re.fullmatch(r"(em|ep|eb)([0-9.e-]+)(?:c([0-9.]+))?", tok)
        gv = re.fullmatch(r"gv([0-9.e-]+)", tok)
        dist = re.fullmatch(r"(pr|hy|ed|bx|ph|tp)([0-9.e-]+?)(?:d([0-9]+))?", tok)
        if tok == "g":
            model["decoder_gamma"] = True
        elif tok == "ch":
            loss["chamfer_weight"] = 1.0
        elif tok == "ms":
            loss["match_slots"] = True
        elif w := re.fullmatch(r"w([0-9]+)", tok):
            model["hidden"] = (int(w[1]), int(w[1]))
        elif ch := re.fullmatch(r"ch([0-9]+)-([0-9]+)", tok):
            model["channels"] = (int(ch[1]), int(ch[2]))
        elif zd := re.fullmatch(r"z([0-9]+)", tok):
            model["latent_dim"] = int(zd[1])
        elif kl := re.fullmatch(r"kl([0-9.e-]+)", tok):
            loss["weight"] = float(kl[1])
        elif re.fullmatch(r"gc[0-9.e-]+|lrp|lrc|selp|ema[0-9.e-]+|s[0-9]+|p[0-9]+|ne[0-9]+"
                          r"|mir[0-9.]+", tok):
            continue  # training settings: train_settings
        elif tok == "dn":
            loss["denoise"] = 0.05
        elif m:
            loss["overlap_weight"] = float(m[1])
            if m[2]:
                loss["overlap_radius"] = float(m[2])
        elif gv:
            loss["gravity_weight"] = float(gv[1])
        elif dist:
            loss[{"pr": "pr_weight", "hy": "height_weight",
                  "ed": "energy_dist_weight", "bx": "box_weight",
                  "ph": "placed_height_weight",
                  "tp": "thermal_profile_weight"}[dist[1]]] = float(dist[2])
            if dist[3]:
                if dist[1] != "ph":
                    raise ValueError(f"variant {name!r}: only ph takes draws, got {tok!r}")
                loss["placed_height_draws"] = int(dist[3])
        elif e:
            loss["energy_mode"], loss["energy_weight"] = _ENERGY_TOKENS[e[1]], float(e[2])
            if e[3]:
                loss["energy_clip"] = float(e[3])
        else:
            raise ValueError(f"variant {name!r}: unknown part {tok!r}")
    return model, loss


def train_settings(name: str) -> dict:
    """The TrainConfig fields a variant name sets (``gcV``, ``lrp``, ``emaD``, ``selp``,
    ``sK``, ``pK``, ``lrc``, ``neK``, ``mirP``: mirror augmentation with probability P)."""
    out: dict = {}
    for tok in name.split("+")[1:]:
        if m := re.fullmatch(r"gc([0-9.e-]+)", tok):
            out["grad_clip"] = float(m[1])
        elif tok == "lrp":
            out["lr_schedule"] = "plateau"
        elif tok == "lrc":
            out["lr_schedule"] = "cosine"
        elif m := re.fullmatch(r"ne([0-9]+)", tok):
            out["epochs"] = int(m[1])
        elif tok == "selp":
            out["select"] = "physics"
        elif m := re.fullmatch(r"ema([0-9.e-]+)", tok):
            out["ema"] = float(m[1])
        elif m := re.fullmatch(r"s([0-9]+)", tok):
            out["seed"] = int(m[1])
        elif m := re.fullmatch(r"p([0-9]+)", tok):
            out["patience"] = int(m[1])
        elif m := re.fullmatch(r"mir([0-9.]+)", tok):
            out["mirror"] = float(m[1])
    return out


def _variant(name: str) -> str:
    """argparse type: a variant name :func:`parse_variant` reads."""
    try:
        parse_variant(name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name


OVERLAP = 0.8
OBS = (("energy", "E"), ("pair_distance", "p(r)"), ("height", "rho(y)"))


def _config(name: str, args) -> RunConfig:
    model, loss = parse_variant(name)
    train = {"seed": args.seed, "patience": args.patience, "epochs": args.epochs,
             **train_settings(name)}
    return RunConfig(DataConfig(max_per_gamma=args.max_per_gamma), ModelConfig(**model),
                     LossConfig(**loss), TrainConfig(**train))


class Placer:
    """Distance matrices (sigma) -> positions: Gram + top-two embedding
    (``reconstruct.embedding``) then the chosen placement (``reconstruct.placement``;
    ``default``: ``reconstruct_configurations`` as it is)."""

    def __init__(self, placement: str, temperature: float, seed: int) -> None:
        self.placement, self.temperature, self.seed = placement, temperature, seed

    def place(self, coords: np.ndarray, box: float, gamma: float):
        """Positions and outside flags for coordinates in any rigid frame (sigma)."""
        from reconstruct.placement import place

        kw = {"gamma": gamma, "temperature": self.temperature, "seed": self.seed} \
            if self.placement == "thermal" else {}
        t = place(coords, box, self.placement, **kw)
        return t.positions, ~t.fits | np.any((t.positions < 0) | (t.positions > box), axis=(1, 2))

    def __call__(self, d: np.ndarray, box: float, gamma: float):
        if self.placement == "default":
            rec = reconstruct_configurations(d, box)
            pos = rec.positions
            return pos, ~rec.fits | np.any((pos < 0) | (pos > box), axis=(1, 2))
        return self.place(embed_distances(d).coords, box, gamma)


def _flags(pos: np.ndarray, outside: np.ndarray) -> dict[str, float]:
    dmin = pair_distances(pos).min(axis=1)
    return {"overlap": float((dmin < OVERLAP).mean()), "outside": float(outside.mean()),
            "min_distance_median": float(np.median(dmin))}


def _ratios(dist: dict, floor: dict[str, float]) -> dict[str, float]:
    out = {}
    for key, _ in OBS:
        out[key] = dist[key].w1
        out[key + "_err"] = dist[key].w1_err
        out[key + "_floor"] = floor[key]
        out[key + "_ratio"] = dist[key].w1 / floor[key] if floor[key] > 0 else math.inf
    return out


def _is_floor(name: str) -> bool:
    return name == "floor" or name.startswith("floor_")


def judge(sets: dict[str, dict], box: float, n_boot: int, seed: int) -> dict[str, dict]:
    """W1 (and errors) of every set against ``mc``, divided by the floor: the mean W1 of
    the floor sets (``floor``, ``floor_1``, ...) against ``mc``; each floor set's own W1
    is kept under ``floor_sets``."""
    d = compare_sets(sets, "mc", box, n_boot=n_boot, seed=seed)
    names = [k for k in d if _is_floor(k)]
    floor = {key: float(np.mean([d[k][key].w1 for k in names])) for key, _ in OBS}
    return {k: _ratios(v, floor) for k, v in d.items() if not _is_floor(k)} | {
        "floor": floor, "floor_sets": {k: {key: d[k][key].w1 for key, _ in OBS}
                                       for k in names}}


def evaluate_variant(run_dir: Path, args, floor_sets, placer, potential_cache) -> dict:
    tv = load_model(run_dir / "best.pt")
    lat = training_latents(tv)
    pot = lat.potential
    box = lat.box
    scale = length_scale(tv.config.data.scaling, box)
    if (run_dir / "metrics.json").is_file():
        metrics = json.loads((run_dir / "metrics.json").read_text())
    else:  # a run stopped before its end: test metrics of its best.pt
        data = prepare_data(tv.config, list(tv.info.files))
        metrics = test_metrics(tv.model, data, tv.config, tv.split)
        metrics.update(best_epoch=tv.epoch, mean_epoch_time_s=float(np.mean(
            [h["epoch_time_s"] for h in load_checkpoint(run_dir / "best.pt").history])))
    if hasattr(tv.model, "decode_coords") and "test_matched_mse_per_gamma" not in metrics:
        data = prepare_data(tv.config, list(tv.info.files))  # a run from before it existed
        metrics.update({k: v for k, v in test_metrics(tv.model, data, tv.config, tv.split)
                        .items() if k.startswith("test_matched")})
    priors = fit_priors(args.priors, lat, GenerateConfig(seed=args.seed,
                                                         flow_epochs=args.flow_epochs))
    out: dict = {"mse": metrics["test_recon_per_gamma"], "mse_all": metrics["test_recon"],
                 "mse_matched": metrics.get("test_matched_mse_per_gamma"),
                 "mse_matched_all": metrics.get("test_matched_mse"),
                 "best_epoch": metrics["best_epoch"],
                 "s_per_epoch": metrics["mean_epoch_time_s"], "gamma": {}}
    for g in sorted(floor_sets[0]):
        ref = lat.held_out("test", g)[:args.n_eval]
        n = len(ref)
        fl = floor_sets[0][g][:n]
        key = (g, n)
        if key not in potential_cache:  # exact-matrix control, shared by the variants
            pos, outside = placer(distance_matrices(ref), box, g)
            potential_cache[key] = {"positions": pos, "energy": total_energy(pos, g, pot),
                                    "flags": _flags(pos, outside)}
        exact = potential_cache[key]
        x = tv.inputs(ref, box)
        t0 = time.perf_counter()
        mu, _ = tv.encode(x)
        pos, outside = _decode_place(tv, mu, g, scale, box, placer, args.decode_path)
        sets = {"mc": {"positions": ref, "energy": total_energy(ref, g, pot)},
                "floor": {"positions": fl, "energy": total_energy(fl, g, pot)},
                **{f"floor_{i}": {"positions": f[g][:n], "energy": total_energy(f[g][:n], g, pot)}
                   for i, f in enumerate(floor_sets[1:], 1)},
                "exact": exact,
                "recon": {"positions": pos, "energy": total_energy(pos, g, pot)}}
        row = {"recon_flags": _flags(pos, outside), "exact_flags": exact["flags"],
               "recon_energy_parts": energy_parts(sets, g)}
        if args.refine and tv.places_particles:  # semi-amortised reconstruction, apart
            t0 = time.perf_counter()
            zr = refine_for_positions(tv, ref, g, steps=args.refine, lr=args.refine_lr,
                                      match_slots=args.refine_match_slots or None)
            row["refine_seconds_per_config"] = (time.perf_counter() - t0) / n
            rpos, rout = _decode_place(tv, zr, g, scale, box, placer, args.decode_path)
            sets["recon_refined"] = {"positions": rpos, "energy": total_energy(rpos, g, pot)}
            row["recon_refined_flags"] = _flags(rpos, rout)
            row["recon_refined_energy_parts"] = energy_parts(sets, g, "recon_refined")
        rates = {}
        for name, prior in priors.items():
            t0 = time.perf_counter()
            z = prior.sample(n, g, seed=args.seed)
            gp, gout = _decode_place(tv, z, g, scale, box, placer, args.decode_path)
            flags = _flags(gp, gout)
            rates[name] = n / (time.perf_counter() - t0)
            sets[f"gen_{name}"] = {"positions": gp, "energy": total_energy(gp, g, pot)}
            row[f"gen_{name}_flags"] = flags
            if name == args.gen_prior:
                if args.relax:  # compile the Metropolis kernels outside the timing
                    relax_configurations(gp[:1], lat.sim[g], g, 1, seed=args.seed)
                for k in args.relax:  # warm start: post-processing, reported apart
                    rp, re_, sec = relax_configurations(gp, lat.sim[g], g, k, seed=args.seed)
                    sets[f"warm_{name}_mc{k}"] = {"positions": rp, "energy": re_}
                    row[f"warm_{name}_mc{k}_seconds"] = sec
        row["gen_rate"] = rates
        if args.figures:
            _figure(run_dir, g, sets, box, args)
        row["w1"] = judge(sets, box, args.n_boot, args.seed)
        out["gamma"][f"{g:g}"] = row
    if args.between:
        out["between"] = between(tv, lat, priors, args, placer, scale)
    return out


def energy_parts(sets: dict, g: float, recon: str = "recon") -> dict[str, dict[str, float]]:
    """Target 3 taken apart: for the reconstructions and the exact-matrix control, the
    W1 (epsilon) against the test configurations of the pair energy and of the
    gravitational energy gamma sum y separately, the root mean square of the
    per-configuration differences, and the standard deviations (a decoder that regresses
    to the mean narrows the distribution). ``recon``: the set of reconstructions
    (``recon`` or ``recon_refined``), reported under "recon"."""
    from scipy.stats import wasserstein_distance

    def split(s):  # the sets' total energies, U_pair + gamma sum y, taken apart
        gravity = g * s["positions"][..., 1].sum(-1)
        return {"pair": s["energy"] - gravity, "gravity": gravity}

    ref = split(sets["mc"])
    out = {}
    for name, key in (("recon", recon), ("exact", "exact")):
        mine = split(sets[key])
        out[name] = {f"{k}_{stat}": v for k in ("pair", "gravity") for stat, v in (
            ("w1", float(wasserstein_distance(mine[k], ref[k]))),
            ("rms", float(np.sqrt(np.mean((mine[k] - ref[k]) ** 2)))),
            ("std", float(mine[k].std())))}
    out["mc"] = {f"{k}_std": float(v.std()) for k, v in ref.items()}
    return out


def _figure(run_dir: Path, g: float, sets: dict, box: float, args) -> None:
    """pipelines.generate.plot_gamma_figure (energy, p(r), closest pair, rho(y)) of MC,
    reconstructions, raw generation and warm starts at one gamma."""
    import matplotlib

    matplotlib.use("Agg")
    from pipelines.generate import plot_gamma_figure

    # the plot's palette knows priors by name and warm starts as <prior>+mc<K>
    gen = {}
    for k, v in sets.items():
        if k.startswith("gen_"):
            gen[k[4:]] = (v["positions"], v["energy"])
        elif k.startswith("warm_"):
            gen[k[5:].replace("_mc", "+mc")] = (v["positions"], v["energy"])
    gen["reconstruction"] = (sets["recon"]["positions"], sets["recon"]["energy"])
    axs = plot_gamma_figure(g, sets["mc"]["positions"], sets["mc"]["energy"], gen, box,
                            floor=(sets["floor"]["positions"], sets["floor"]["energy"]))
    axs[0].figure.suptitle(f"{run_dir.name}: raw generation and reconstructions, "
                           f"placement {args.placement}")
    axs[0].figure.savefig(args.out / f"fig_{run_dir.name}_gamma_{g:g}.png", dpi=90)


DECODE_PATHS = ("gram", "float32", "bfloat16")


def _decode_place(tv, z, g: float, scale: float, box: float, placer, path: str):
    """Positions and outside flags of latents z at gamma g: ``gram`` = decoded matrix ->
    Gram + top-two embedding -> placement; ``float32`` / ``bfloat16`` = the decoded slot
    positions (``TrainedVAE.decode_positions`` at that precision; decoders that place
    the particles) -> placement, the product's path."""
    if path == "gram":
        dg = tv.decode(z, gamma=g)[:, 0].astype(np.float64) * scale
        return placer(symmetrize_distances(dg), box, g)
    return placer.place(tv.decode_positions(z, gamma=g, precision=path), box, g)


def between(tv, lat, priors, args, placer, scale) -> dict:
    """Flow prior at untrained gammas against fresh MC there."""
    if "flow" not in priors:
        return {}
    ref_ds, fl_ds = read_dataset(args.between[0]), read_dataset(args.between[1])
    res = {}
    for g in np.unique(ref_ds.gamma):
        ref = ref_ds.positions[ref_ds.gamma == g][:args.n_eval]
        fl = fl_ds.positions[fl_ds.gamma == g][:len(ref)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GammaInterpolationWarning)
            z = priors["flow"].sample(len(ref), float(g), seed=args.seed)
        gp, gout = _decode_place(tv, z, float(g), scale, lat.box, placer, args.decode_path)
        sets = {k: {"positions": p, "energy": total_energy(p, float(g), lat.potential)}
                for k, p in (("mc", ref), ("floor", fl), ("gen_flow", gp))}
        res[f"{g:g}"] = {"flags": _flags(gp, gout),
                         "w1": judge(sets, lat.box, args.n_boot, args.seed)}
    return res


def speed(run_dir: Path, args, placer) -> dict:
    """Generation (buffer prior) vs sampler configurations per second, one thread."""
    tv = load_model(run_dir / "best.pt")
    lat = training_latents(tv)
    g = sorted(lat.sim)[len(lat.sim) // 2]
    prior = fit_priors(("buffer",), lat, GenerateConfig(seed=args.seed))["buffer"]
    scale = length_scale(tv.config.data.scaling, lat.box)

    def gen(n):
        z = prior.sample(n, g, seed=args.seed)
        dg = tv.decode(z, gamma=g)[:, 0].astype(np.float64) * scale
        pos, outside = placer(symmetrize_distances(dg), lat.box, g)
        return _flags(pos, outside)

    def gen_coords(n):
        """coord decoder: the Gram step is exact on its output (the identity up to a
        rigid motion), so its slot positions go to the placement directly."""
        z = torch.as_tensor(prior.sample(n, g, seed=args.seed), dtype=torch.float32)
        with torch.no_grad():
            c = tv.model.decode_coords(z, g if tv.model.needs_gamma else None)
            d = pair_distance_matrix(c)
            iu = torch.triu_indices(c.shape[1], c.shape[1], 1)
            dmin = d[:, iu[0], iu[1]].min(1).values * scale
        pos, outside = placer.place(c.numpy().astype(np.float64) * scale, lat.box, g)
        return float((dmin < OVERLAP).float().mean()), float(outside.mean())

    out = {"gamma": g}
    steps = [("generation_per_s", gen)]
    if hasattr(tv.model, "decode_coords"):
        steps.append(("generation_coords_per_s", gen_coords))
    for key, fn in steps:
        fn(64)  # warm-up (numba)
        t0 = time.perf_counter()
        fn(args.n_speed)
        out[key] = args.n_speed / (time.perf_counter() - t0)
    rate_mc, _ = sampler_rate(lat.sim[g], g, args.n_mc, n_threads=1, seed=12345)
    out["sampler_per_s"] = rate_mc
    out["ratio"] = out["generation_per_s"] / rate_mc
    if "generation_coords_per_s" in out:
        out["ratio_coords"] = out["generation_coords_per_s"] / rate_mc
    return out


def print_tables(results: dict, args) -> None:
    gammas = sorted({g for r in results.values() for g in r["gamma"]}, key=float)
    print("\n## Ablation (per gamma: test MSE | reconstruction | raw generation, "
          f"{args.gen_prior} prior)")
    print("W1 ratios are W1 / MC-vs-MC floor; ov = fraction with a pair < 0.8 sigma; "
          "E_rec/E_exact = energy W1 of reconstructions over that of exact matrices (target 3); "
          "E_rec, E_exact / floor: the same W1s over the MC-vs-MC floor (the exact control "
          "re-places the test shapes themselves, so it can lie below the floor)")
    head = ("| variant | gamma | MSE | matched MSE | rec ov | rec out | E_rec/E_exact "
            "| E_rec/floor | E_exact/floor | gen ov | gen out | E | p(r) | rho(y) |")
    print(head)
    print("|" + "---|" * 14)
    for name, r in results.items():
        for g in gammas:
            if g not in r["gamma"]:
                continue
            row = r["gamma"][g]
            w = row["w1"]
            rec, ex = w["recon"]["energy"], w["exact"]["energy"]
            gk = f"gen_{args.gen_prior}"
            gw, gf = w[gk], row[f"{gk}_flags"]
            mm = (r.get("mse_matched") or {}).get(g)
            mm = "-" if mm is None else f"{mm:.5f}"
            print(f"| {name} | {g} | {r['mse'][g]:.5f} | {mm} "
                  f"| {row['recon_flags']['overlap']:.3f} "
                  f"| {row['recon_flags']['outside']:.3f} | {rec / ex:.2f} "
                  f"| {w['recon']['energy_ratio']:.2f} | {w['exact']['energy_ratio']:.2f} "
                  f"| {gf['overlap']:.3f} | {gf['outside']:.3f} | {gw['energy_ratio']:.1f} "
                  f"| {gw['pair_distance_ratio']:.1f} | {gw['height_ratio']:.1f} |")
    refined = [(name, g, r["gamma"][g]) for name, r in results.items() for g in gammas
               if "recon_refined_flags" in r["gamma"].get(g, {})]
    if refined:
        print(f"\n## Reconstruction from refined latents (vae.refine: {args.refine} Adam steps "
              f"of lr {args.refine_lr:g} per configuration from mu_z on the run's "
              "per-configuration loss terms, decoder fixed"
              f"{', slots matched' if args.refine_match_slots else ''}); target 3 as above")
        print("| variant | gamma | rec ov | rec out | E_rec/E_exact (mu_z) | E_rec/floor "
              "| pair rms | gravity rms | E std rec / MC | s per 1000 |")
        print("|" + "---|" * 10)
        for name, g, row in refined:
            w = row["w1"]
            f, ep = row["recon_refined_flags"], row["recon_refined_energy_parts"]
            rr = w["recon_refined"]["energy"] / w["exact"]["energy"]
            r0 = w["recon"]["energy"] / w["exact"]["energy"]
            print(f"| {name} | {g} | {f['overlap']:.3f} | {f['outside']:.3f} "
                  f"| {rr:.2f} ({r0:.2f}) | {w['recon_refined']['energy_ratio']:.2f} "
                  f"| {ep['recon']['pair_rms']:.2f} | {ep['recon']['gravity_rms']:.2f} "
                  f"| {ep['recon']['pair_std']:.2f} / {ep['mc']['pair_std']:.2f} (pair) "
                  f"| {1000 * row['refine_seconds_per_config']:.1f} |")
    print("\n## Reconstruction energy in parts (W1 vs the test set, epsilon; rms of the "
          "per-configuration difference; std: reconstructions / MC)")
    print("| variant | gamma | pair W1 (exact) | pair rms | pair std | gravity W1 (exact) "
          "| gravity rms (exact) | gravity std |")
    print("|" + "---|" * 8)
    for name, r in results.items():
        for g in gammas:
            ep = r["gamma"].get(g, {}).get("recon_energy_parts")
            if ep is None:
                continue
            rc, ex, mc = ep["recon"], ep["exact"], ep["mc"]
            print(f"| {name} | {g} | {rc['pair_w1']:.3f} ({ex['pair_w1']:.3f}) "
                  f"| {rc['pair_rms']:.2f} | {rc['pair_std']:.2f} / {mc['pair_std']:.2f} "
                  f"| {rc['gravity_w1']:.3f} ({ex['gravity_w1']:.3f}) "
                  f"| {rc['gravity_rms']:.2f} ({ex['gravity_rms']:.2f}) "
                  f"| {rc['gravity_std']:.2f} / {mc['gravity_std']:.2f} |")
    print("\n## Raw generation, every prior (W1 / floor: E, p(r), rho(y); overlap, outside)")
    for name, r in results.items():
        for g in gammas:
            if g not in r["gamma"]:
                continue
            row = r["gamma"][g]
            parts = []
            for p in args.priors:
                w, f = row["w1"][f"gen_{p}"], row[f"gen_{p}_flags"]
                parts.append(f"{p}: {w['energy_ratio']:.1f} / {w['pair_distance_ratio']:.1f} / "
                             f"{w['height_ratio']:.1f}, ov {f['overlap']:.3f}, "
                             f"out {f['outside']:.3f}")
            print(f"{name} gamma {g}: " + "; ".join(parts))
            for k in args.relax:
                row = r["gamma"][g]
                w = row["w1"][f"warm_{args.gen_prior}_mc{k}"]
                print(f"{name} gamma {g}: warm start ({args.gen_prior} + {k} Metropolis sweeps, "
                      f"{row[f'warm_{args.gen_prior}_mc{k}_seconds']:.1f} s): E "
                      f"{w['energy_ratio']:.2f}, p(r) {w['pair_distance_ratio']:.2f}, rho(y) "
                      f"{w['height_ratio']:.2f} x floor")
        for g, b in r.get("between", {}).items():
            w = b["w1"]["gen_flow"]
            print(f"{name} between, flow at gamma {g}: E {w['energy_ratio']:.1f}, p(r) "
                  f"{w['pair_distance_ratio']:.1f}, rho(y) {w['height_ratio']:.1f} x floor; "
                  f"ov {b['flags']['overlap']:.3f}, out {b['flags']['outside']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, nargs="+")
    ap.add_argument("--floor", required=True, nargs="+",
                    help="independent MC set(s) at the trained gammas (several: the floor "
                         "is their mean W1)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--variants", nargs="+", default=["pair", "coord", "coord+ov"],
                    type=_variant, help="e.g. " + " ".join(VARIANTS[-4:]))
    ap.add_argument("--max-per-gamma", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n-eval", type=int, default=500, help="configurations per gamma")
    ap.add_argument("--n-boot", type=int, default=20)
    ap.add_argument("--priors", nargs="+", default=["buffer", "gmm"])
    ap.add_argument("--flow-epochs", type=int, default=60)
    ap.add_argument("--gen-prior", default="buffer", help="prior shown in the ablation table")
    ap.add_argument("--placement", default="default", help="default, lowest or thermal")
    ap.add_argument("--temperature", type=float, default=0.75)
    ap.add_argument("--decode-path", choices=DECODE_PATHS, default="gram",
                    help="gram: decoded matrix -> Gram embedding -> placement (default); "
                    "float32 / bfloat16: decoded slot positions at that precision -> "
                    "placement (the product's path; arch coord)")
    ap.add_argument("--refine", type=int, default=0, metavar="K",
                    help="also reconstruct from latents refined by K Adam steps (vae.refine)")
    ap.add_argument("--refine-lr", type=float, default=0.03)
    ap.add_argument("--refine-match-slots", action="store_true",
                    help="refine on the matched (slot-order-free) errors (vae.matching)")
    ap.add_argument("--between", nargs=2, metavar=("REF", "FLOOR"))
    ap.add_argument("--relax", type=int, nargs="*", default=[],
                    help="warm start: also judge the gen prior's output after K sweeps")
    ap.add_argument("--speed", action="store_true", help="time generation vs the sampler")
    ap.add_argument("--n-speed", type=int, default=4000)
    ap.add_argument("--n-mc", type=int, default=32)
    ap.add_argument("--figures", action="store_true", help="one figure per variant and gamma")
    ap.add_argument("--reuse", action="store_true", help="reuse trained runs in --out")
    ap.add_argument("--no-eval", action="store_true", help="train only")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    placer = Placer(args.placement, args.temperature, args.seed)
    floor_sets = []
    for path in args.floor:
        fds = read_dataset(path)
        floor_sets.append({float(g): fds.positions[fds.gamma == g]
                           for g in np.unique(fds.gamma)})
    results: dict = {}
    cache: dict = {}
    with numba_threads(args.threads), threadpool_limits(limits=args.threads):
        for name in args.variants:
            run = args.out / name
            if not (args.reuse and (run / "best.pt").is_file()):
                cfg = _config(name, args)
                t0 = time.perf_counter()
                res = train(cfg, prepare_data(cfg, args.data), run, overwrite=True,
                            progress=False)
                print(f"{name}: trained {res.epochs_run} epochs in "
                      f"{time.perf_counter() - t0:.0f} s, best {res.best_epoch}, test MSE "
                      f"{res.metrics['test_recon']:.5f}", flush=True)
            if args.no_eval:
                continue
            results[name] = evaluate_variant(run, args, floor_sets, placer, cache)
            print(f"{name}: evaluated", flush=True)
            (args.out / "bench.json").write_text(json.dumps(
                {"args": {k: str(v) for k, v in vars(args).items()}, "results": results},
                indent=1))
        if results:
            print_tables(results, args)
        if args.speed:
            sp = speed(args.out / args.variants[-1], args, placer)
            print(f"\n## Speed ({args.variants[-1]}, buffer prior, gamma {sp['gamma']:g}, one "
                  f"thread, placement {args.placement}): generation via Gram "
                  f"{sp['generation_per_s']:.0f} /s, sampler {sp['sampler_per_s']:.2f} /s, "
                  f"ratio {sp['ratio']:.0f}x")
            if "ratio_coords" in sp:
                print(f"generation with the decoded slot positions placed directly: "
                      f"{sp['generation_coords_per_s']:.0f} /s, ratio {sp['ratio_coords']:.0f}x")
            results["_speed"] = sp
            (args.out / "bench.json").write_text(json.dumps(
                {"args": {k: str(v) for k, v in vars(args).items()}, "results": results},
                indent=1))


if __name__ == "__main__":
    main()
