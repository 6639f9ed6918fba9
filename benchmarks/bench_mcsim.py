"""Sampler speed: cached-energy kernel vs a plain recompute-everything loop, and the
time to produce the study's full dataset.

    python benchmarks/bench_mcsim.py            # kernel throughput + full-dataset estimate
    python benchmarks/bench_mcsim.py --full     # also time the real full dataset run

"Trial pair terms" are the N - 1 new pair energies a trial move needs; the plain loop
computes 2 (N - 1) terms per move (old and new), REFERENCE.md 4 quotes its rate in
those terms. Moves per second compare the two directly.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange

from mcsim import _kernels as K
from mcsim.config import SimConfig
from mcsim.run import run_simulation
from mcsim.sampler import sample, seed_states


@njit(cache=True)
def _plain_sweep(x, y, rng, box, beta, gamma, delta, rc2):
    """The yardstick: recompute the old and the new energy of particle i every move."""
    n = x.shape[0]
    acc = 0
    for i in range(n):
        xn = x[i] + delta * (2.0 * K._uniform(rng) - 1.0)
        yn = y[i] + delta * (2.0 * K._uniform(rng) - 1.0)
        if xn < 0.0 or xn > box or yn < 0.0 or yn > box:
            continue
        e_old = 0.0
        e_new = 0.0
        for j in range(n):
            if j != i:
                dx = x[j] - x[i]
                dy = y[j] - y[i]
                r2 = dx * dx + dy * dy
                if r2 < rc2:
                    inv6 = 1.0 / (r2 * r2 * r2)
                    e_old += 4.0 * inv6 * (inv6 - 1.0)
                dx = x[j] - xn
                dy = y[j] - yn
                r2 = dx * dx + dy * dy
                if r2 < rc2:
                    inv6 = 1.0 / (r2 * r2 * r2)
                    e_new += 4.0 * inv6 * (inv6 - 1.0)
        d_e = e_new - e_old + gamma * (yn - y[i])
        if d_e <= 0.0 or K._uniform(rng) < np.exp(-beta * d_e):
            x[i] = xn
            y[i] = yn
            acc += 1
    return acc


@njit(cache=True, parallel=True)
def _plain_run(states, npart, box, beta, gamma, delta, sweeps, rc2):
    for k in prange(states.shape[0]):
        rng = states[k].copy()
        x = np.empty(npart)
        y = np.empty(npart)
        K._random_start(x, y, rng, box)
        for _ in range(sweeps):
            _plain_sweep(x, y, rng, box, beta, gamma, delta, rc2)


def _time(fn, repeats=3):
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def kernel_throughput(n_samples: int, sweeps: int) -> None:
    cfg = SimConfig(sweeps=sweeps)
    npart = cfg.n_particles
    moves = n_samples * sweeps * npart
    states = seed_states(0, 0, 0.4, 0, n_samples)
    # warm up (compile / load from cache)
    sample(cfg, 0.4, 2, n_threads=1)
    _plain_run(states[:2], npart, cfg.box, cfg.beta, 0.4, cfg.delta, 2, 9.0)
    print(f"N = {npart}, {n_samples} samples x {sweeps} sweeps at gamma = 0.4 "
          f"({moves:.3g} trial moves)")
    print(f"{'kernel':<28}{'threads':>8}{'moves/s':>12}{'trial pair terms/s':>20}"
          f"{'pair terms/s':>15}")
    rates = {}
    for nt in (1, 2):
        numba.set_num_threads(min(nt, numba.config.NUMBA_NUM_THREADS))
        t_plain = _time(lambda: _plain_run(states, npart, cfg.box, cfg.beta, 0.4, cfg.delta,
                                           sweeps, 9.0))
        t_fast = _time(lambda: sample(cfg, 0.4, n_samples))
        for name, t, terms_per_move in (("plain (old + new terms)", t_plain, 2 * (npart - 1)),
                                        ("ljvae (new terms, cached)", t_fast, npart - 1)):
            rate = moves / t
            rates[(name, nt)] = rate
            print(f"{name:<28}{nt:>8}{rate:>12.3g}{rate * (npart - 1):>20.3g}"
                  f"{rate * terms_per_move:>15.3g}")
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    fast1 = rates[("ljvae (new terms, cached)", 1)]
    fast2 = rates[("ljvae (new terms, cached)", 2)]
    plain1 = rates[("plain (old + new terms)", 1)]
    print(f"speed-up over the plain loop (1 thread): {fast1 / plain1:.2f}x in moves/s; "
          f"second thread: {fast2 / fast1:.2f}x")
    full_moves = 4 * 10_000 * 2500 * npart
    print(f"study dataset (4 x 10,000 x 2500 sweeps) estimated: {full_moves / fast2:.0f} s "
          f"on 2 threads, {full_moves / fast1:.0f} s on 1")


def full_dataset() -> None:
    cfg = SimConfig(gammas=(0.1, 0.4, 0.7, 1.0), n_samples=10_000, sweeps=2500, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "study.h5"
        t0 = time.perf_counter()
        summary = run_simulation(cfg, out, chunk_size=1000, check_samples=0, n_traces=0,
                                 progress=False)
        dt = time.perf_counter() - t0
    print(f"study dataset, real run (40,000 samples, sampling + HDF5 writing, no checks): "
          f"{dt:.1f} s = {dt / 60:.2f} min")
    for g in cfg.gammas:
        print(f"  gamma={g:g}: <E>/N = {summary.mean_energy[g] / 30:.4f}, "
              f"acceptance {summary.acceptance[g]:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=400)
    p.add_argument("--sweeps", type=int, default=1000)
    p.add_argument("--full", action="store_true", help="time the real study dataset run")
    args = p.parse_args()
    print(f"numba {numba.__version__}, {numba.config.NUMBA_NUM_THREADS} threads available")
    kernel_throughput(args.samples, args.sweeps)
    if args.full:
        full_dataset()


if __name__ == "__main__":
    main()
