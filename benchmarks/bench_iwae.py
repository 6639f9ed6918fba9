"""Cost of the ``iwae`` anomaly score (importance-weighted bound, K draws) against the
plug-in VAE pass behind ``mse`` / ``kl`` / ``neg_elbo``, per configuration.

The IWAE decodes K latent vectors per configuration where the plug-in pass decodes
one, so its cost grows about linearly in K; this prints the CPU time per configuration
of both and their ratio, for each K asked, on one checkpoint. Inputs are uniform random
configurations in the model's box (the time does not depend on the data).

Usage::

    python benchmarks/bench_iwae.py --checkpoint runs/default/best.pt --n 500 \\
        --k 1 8 32 --threads 1

This is a benchmark, not a test: run it by hand and quote ratios.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pipelines.anomaly.scores import vae_pass
from vae.checkpoint import load_model
from vae.likelihood import iwae_bound


def cpu_seconds(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--n", type=int, default=500, help="configurations")
    p.add_argument("--k", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint)
    n, box = model.info.n_particles, model.info.box
    pos = np.random.default_rng(0).uniform(0.0, box, (args.n, n, 2))
    x = model.inputs(pos)
    vae_pass(model, x[:10])  # warm-up
    t_pass = cpu_seconds(lambda: vae_pass(model, x))
    print(f"checkpoint {args.checkpoint}: {model.config.model.arch}, latent "
          f"{model.model.latent_dim}, N={n}; {args.n} configurations, {args.threads} "
          "thread(s)")
    print(f"plug-in pass (mse, kl, neg_elbo): {1e3 * t_pass / args.n:.3f} ms CPU per "
          "configuration")
    for k in args.k:
        t = cpu_seconds(lambda k=k: iwae_bound(model, x, k, seed=0).score)
        print(f"iwae K={k:>4}: {1e3 * t / args.n:.3f} ms CPU per configuration, "
              f"{t / t_pass:.1f} x the plug-in pass")


if __name__ == "__main__":
    main()
