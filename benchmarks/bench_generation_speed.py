"""Generation speed per stage against the Monte Carlo sampler, one thread, same run.

    python benchmarks/bench_generation_speed.py --checkpoint runs/coord/best.pt --gamma 0.7

Stages, each timed on ``--n`` configurations after a warm-up (numba kernels compiled
or loaded), best of ``--repeats``:

* every prior's ``sample`` (normal, pca, gmm, buffer; the flow is slow to fit);
* the decoder: the product's call (``TrainedVAE.decode_positions`` for models whose
  decoder places the particles, else ``decode_distances``), the same MLP as plain
  float32 matrix products (torch ``addmm``, NumPy) at several batch sizes, and, for
  speed only, randomly initialised ``CoordVAE`` decoders of other widths;
* the checks (:func:`reconstruct.checks.physical_checks`), and the torch distance
  matrix they replace;
* the placement (``thermal`` at gamma and the training temperature), and the Gram
  path (distance matrices -> embedding -> placement) that the direct path replaces;
* the whole product pipeline (:func:`pipelines.generate.generate_configurations`)
  per prior, with the decoder in float32 and, for decoders that place the particles,
  with its hidden layers in bfloat16 (``--decoder-precision bfloat16``);

then the sampler with the training protocol (:func:`pipelines.generate.sampler_rate`,
``--mc`` configurations) and every rate's ratio to it. Prints numbers only.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from mcsim.clitools import (
    ArgumentParser,
    UserError,
    nonneg_float,
    nonneg_int,
    positive_int,
    run_cli,
)
from mcsim.sampler import threads as numba_threads

PRIORS = ("normal", "pca", "gmm", "buffer")
WIDTHS = (512, 256, 128)
BATCHES = (128, 256, 1024, 4096)


def _best_rate(fn: Callable[[], object], n: int, repeats: int) -> float:
    """Configurations per second of ``fn`` (which handles n of them): best of repeats."""
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best if best > 0 else np.inf


def _mlp_layers(model) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W^T, b) float32 of the decoder MLP and the output layer, in order."""
    mods = [m for m in [*model.decoder, model.to_coords] if isinstance(m, torch.nn.Linear)]
    return [(np.ascontiguousarray(m.weight.detach().numpy().T, np.float32),
             m.bias.detach().numpy().astype(np.float32)) for m in mods]


def _numpy_mlp(layers, x: np.ndarray) -> np.ndarray:
    h = x
    for i, (w, b) in enumerate(layers):
        h = h @ w
        h += b
        if i < len(layers) - 1:
            np.maximum(h, 0.0, out=h)
    return h


def _torch_mlp(layers, x: torch.Tensor) -> torch.Tensor:
    h = x
    for i, (w, b) in enumerate(layers):
        h = torch.addmm(b, h, w)
        if i < len(layers) - 1:
            h.relu_()
    return h


def _batched(fn, x, batch: int) -> None:
    for a in range(0, len(x), batch):
        fn(x[a:a + batch])


def _row(name: str, rate: float, mc_rate: float | None = None) -> None:
    ratio = "" if mc_rate is None else f"{rate / mc_rate:>10.1f}x"
    print(f"  {name:<62} {rate:>12,.0f} /s {ratio}")


def _decoder_rows(trained, z: np.ndarray, gamma: float, n: int, repeats: int) -> dict:
    """Rates of the decoder as the product calls it, and of the same MLP as plain
    float32 products at several batch sizes."""
    rates = {}
    if trained.places_particles:
        for prec in trained.decoder_precisions:
            trained.decode_positions(z[:256], gamma=gamma, precision=prec)  # warm-up
            rates[f"decoder: TrainedVAE.decode_positions {prec} (product, batch 256)"] = \
                _best_rate(lambda prec=prec: trained.decode_positions(
                    z, gamma=gamma, precision=prec), n, repeats)
    rates["decoder: TrainedVAE.decode_distances (Gram path, batch 1024)"] = _best_rate(
        lambda: trained.decode_distances(z, gamma=gamma), n, repeats)
    model = trained.model
    if not hasattr(model, "to_coords"):
        return rates
    layers = _mlp_layers(model)
    x = np.ascontiguousarray(z, np.float32)
    if model.needs_gamma:
        x = np.concatenate([x, np.full((len(x), 1), gamma, np.float32)], axis=1)
    zt = torch.from_numpy(np.ascontiguousarray(z, np.float32))
    xt = torch.from_numpy(x)
    tl = [(torch.from_numpy(w), torch.from_numpy(b)) for w, b in layers]
    for bs in BATCHES:
        def run_model(bs=bs):
            with torch.inference_mode():
                _batched(lambda zz: model.decode_coords(zz, gamma), zt, bs)

        def run_addmm(bs=bs):
            with torch.inference_mode():
                _batched(lambda xx: _torch_mlp(tl, xx), xt, bs)

        rates[f"decoder: model.decode_coords, torch, batch {bs}"] = _best_rate(
            run_model, n, repeats)
        rates[f"decoder: torch addmm float32, batch {bs}"] = _best_rate(run_addmm, n, repeats)
        rates[f"decoder: numpy float32 matmul, batch {bs}"] = _best_rate(
            lambda bs=bs: _batched(lambda xx: _numpy_mlp(layers, xx), x, bs), n, repeats)
    return rates


def _width_rows(n_particles: int, latent_dim: int, z: np.ndarray, gamma: float, n: int,
                repeats: int) -> dict:
    """Decoder speed of randomly initialised CoordVAE(hidden=(w, w)) (speed only)."""
    from vae.physical import CoordVAE

    rates = {}
    zt = torch.from_numpy(np.ascontiguousarray(z[:, :latent_dim], np.float32))
    for w in WIDTHS:
        torch.manual_seed(0)
        model = CoordVAE(n_particles, latent_dim=latent_dim, hidden=(w, w),
                         decoder_gamma=True).eval()
        n_par = sum(p.numel() for p in [*model.decoder.parameters(),
                                        *model.to_coords.parameters()])

        def run(model=model):
            with torch.inference_mode():
                _batched(lambda zz: model.decode_coords(zz, gamma), zt, 1024)

        run()
        rates[f"decoder width {w}x{w} ({n_par / 1e3:.0f} k params), batch 1024"] = _best_rate(
            run, n, repeats)
    return rates


def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(prog="bench_generation_speed", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, type=Path, help="a trained model")
    ap.add_argument("--gamma", type=nonneg_float, default=0.7,
                    help="field strength (one the model was trained on)")
    ap.add_argument("--n", type=positive_int, default=20000, help="configurations per stage")
    ap.add_argument("--seed", type=nonneg_int, default=0, help="seed of the draws")
    ap.add_argument("--mc", type=positive_int, default=64, help="sampler configurations timed")
    ap.add_argument("--repeats", type=positive_int, default=3, help="timings per stage (best)")
    args = ap.parse_args(argv)
    if not args.checkpoint.is_file():
        raise UserError(f"--checkpoint: {args.checkpoint} is not a file")

    from pipelines.generate import (
        GenerateConfig,
        fit_priors,
        generate_configurations,
        model_temperature,
        sampler_rate,
        training_latents,
    )
    from reconstruct.checks import physical_checks
    from reconstruct.pipeline import reconstruct_configurations
    from reconstruct.placement import place
    from vae.checkpoint import load_model
    from vae.physical import pair_distance_matrix

    torch.set_num_threads(1)
    n, g, rep, seed = args.n, args.gamma, args.repeats, args.seed
    with numba_threads(1), threadpool_limits(limits=1):
        trained = load_model(args.checkpoint)
        if trained.config.data.representation != "distance":
            raise UserError("--checkpoint: generation needs a distance-matrix model")
        lat = training_latents(trained)
        if g not in lat.sim:
            raise UserError(f"--gamma: {g:g} is not a trained gamma "
                            f"({', '.join(f'{x:g}' for x in sorted(lat.sim))})")
        box = float(trained.info.box)
        temperature = model_temperature(trained)
        priors = fit_priors(PRIORS, lat, GenerateConfig(seed=seed))
        rates: dict[str, float] = {}
        for name in PRIORS:
            priors[name].sample(64, g, seed=seed)
            rates[f"prior: {name}"] = _best_rate(
                lambda name=name: priors[name].sample(n, g, seed=seed), n, rep)
        z = priors["buffer"].sample(n, g, seed=seed)
        trained.decode_distances(z[:64], gamma=g)  # warm-up
        rates.update(_decoder_rows(trained, z, g, n, rep))
        rates.update(_width_rows(trained.info.n_particles, trained.model.latent_dim, z, g, n,
                                 rep))
        kw = {"gamma": g, "temperature": temperature, "seed": seed}
        if trained.places_particles:
            coords = trained.decode_positions(z, gamma=g)
            place(coords[:64], box, "thermal", **kw)
            rates["placement: thermal (direct path)"] = _best_rate(
                lambda: place(coords, box, "thermal", **kw), n, rep)
        d = trained.decode_distances(z, gamma=g)
        reconstruct_configurations(d[:64], box, placement="thermal", **kw)
        rates["placement: Gram embedding + thermal (Gram path)"] = _best_rate(
            lambda: reconstruct_configurations(d, box, placement="thermal", **kw), n, rep)
        pos = reconstruct_configurations(d, box, placement="thermal", **kw).positions
        physical_checks(pos[:64], box)
        rates["checks: reconstruct.physical_checks (numba)"] = _best_rate(
            lambda: physical_checks(pos, box), n, rep)
        pt = torch.from_numpy(pos.astype(np.float32))
        iu = torch.triu_indices(pos.shape[1], pos.shape[1], 1)

        def torch_checks():
            with torch.inference_mode():
                pair_distance_matrix(pt)[:, iu[0], iu[1]].min(1)
                ((pt < 0) | (pt > box)).any(2).any(1)

        rates["checks: torch distance matrix + min (before)"] = _best_rate(torch_checks, n, rep)
        precisions = trained.decoder_precisions
        pipe = {}
        for prec in precisions:
            generate_configurations(trained, priors["buffer"], 64, g, seed=seed,
                                    decoder_precision=prec)  # warm-up
            for name in PRIORS:
                best = None
                for _ in range(rep):
                    gs = generate_configurations(trained, priors[name], n, g, seed=seed,
                                                 decoder_precision=prec)
                    if best is None or gs.rate > best.rate:
                        best = gs
                pipe[name, prec] = best
                rates[f"pipeline: generate_configurations, prior {name}, {prec}"] = best.rate
        sim = lat.sim[g]
        mc_rate, _ = sampler_rate(sim, g, args.mc, n_threads=1, seed=12345)

    load = os.getloadavg()
    print(f"generation speed, one thread, gamma {g:g}, n {n}, seed {seed}, best of {rep}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores)")
    print(f"checkpoint {args.checkpoint} (arch {trained.config.model.arch}, places particles: "
          f"{trained.places_particles}); placement thermal at T = {temperature:g}")
    print(f"sampler ({sim.protocol}, {sim.sweeps} sweeps, N = {sim.n_particles}, {args.mc} "
          f"configurations): {mc_rate:,.1f} /s")
    print(f"  {'stage':<62} {'rate':>15} {'vs sampler':>11}")
    for name, r in rates.items():
        _row(name, r, mc_rate)
    print("pipeline step shares (prior / decode / reconstruct / checks):")
    for (name, prec), gs in pipe.items():
        tot = gs.generation_seconds
        share = " / ".join(f"{gs.seconds.get(k, 0.0) / tot:.0%}"
                           for k in ("prior", "decode", "reconstruct", "checks"))
        print(f"  {name:<8} {prec:<8} {share}   unphysical {gs.unphysical.mean():.1%}")
    for prec in precisions:
        best = max((s for (_, p), s in pipe.items() if p == prec), key=lambda s: s.rate)
        print(f"whole pipeline, decoder {prec} (best prior, {best.prior}): {best.rate:,.0f} /s "
              f"= {best.rate / mc_rate:,.0f}x the sampler")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, "bench_generation_speed"))
