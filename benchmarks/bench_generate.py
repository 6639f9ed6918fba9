"""Generation speed vs the Monte Carlo sampler, one thread each, in the same run.

    python benchmarks/bench_generate.py --checkpoint runs/default/best.pt
    python benchmarks/bench_generate.py --checkpoint CK --gamma 0.4 --n 2000 --mc 64 --flow

Generation = prior sample + decode + reconstruct (Gram + tumbler) + unphysical checks,
timed after a warm-up (numba kernels compiled / loaded). The sampler runs the protocol
recorded in the model's training data (e.g. independent samples, 2500 sweeps from a
uniform start) on ``--mc`` configurations. Prints configurations per second and the
ratio; also the share of each generation step.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from mcsim.sampler import threads as numba_threads
from pipelines.generate import (
    GenerateConfig,
    fit_priors,
    generate_configurations,
    sampler_rate,
    training_latents,
)
from vae.checkpoint import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, type=Path)
    ap.add_argument("--gamma", type=float, default=0.4)
    ap.add_argument("--n", type=int, default=2000, help="generated configurations per prior")
    ap.add_argument("--mc", type=int, default=64, help="sampler configurations timed")
    ap.add_argument("--flow", action="store_true", help="also fit and time the flow prior "
                    "(minutes to fit)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with numba_threads(args.threads), threadpool_limits(limits=args.threads):
        trained = load_model(args.checkpoint)
        lat = training_latents(trained)
        names = ("normal", "pca", "gmm", "buffer") + (("flow",) if args.flow else ())
        priors = fit_priors(names, lat, GenerateConfig())
        g = args.gamma
        generate_configurations(trained, priors["buffer"], 8, g)  # warm-up
        print(f"{'prior':>8} {'configs/s':>10} {'prior':>7} {'decode':>7} {'recon':>7} "
              f"{'checks':>7} {'unphysical':>10}")
        rates = []
        for name in names:
            t0 = time.perf_counter()
            gs = generate_configurations(trained, priors[name], args.n, g, seed=0)
            wall = time.perf_counter() - t0
            tot = gs.generation_seconds
            share = {k: v / tot for k, v in gs.seconds.items()}
            rates.append(gs.rate)
            print(f"{name:>8} {gs.rate:>10.0f} {share['prior']:>7.1%} {share['decode']:>7.1%} "
                  f"{share['reconstruct']:>7.1%} {share['checks']:>7.1%} "
                  f"{gs.unphysical.mean():>10.1%}   (wall {wall:.2f} s)")
        sim = lat.sim[g]
        mc_rate, _ = sampler_rate(sim, g, args.mc, n_threads=args.threads, seed=12345)
        gen = float(np.median(rates))
        print(f"sampler ({sim.protocol}, {sim.sweeps} sweeps, N={sim.n_particles}, "
              f"{args.mc} configs): {mc_rate:.1f} configs/s")
        print(f"generation (median over priors): {gen:.0f} configs/s -> {gen / mc_rate:.0f}x "
              f"the sampler per configuration ({args.threads} thread(s))")


if __name__ == "__main__":
    main()
