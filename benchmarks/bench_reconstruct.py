"""Benchmark of the reconstruction: Gram + eigendecomposition + thermal placement,
batched, for N = 30, and against scikit-learn's SMACOF MDS on the same matrices.

    python benchmarks/bench_reconstruct.py [--n-configs 20000] [--n-sklearn 40]

Inputs are exact distance matrices of Monte Carlo configurations (mcsim.sampler;
a few hundred samples at gamma = 0.1 and 1.0, repeated to the batch size), and the
same matrices with 2 % multiplicative noise (symmetrised), a stand-in for decoded
matrices, where the eigen-solver has a full spectrum to resolve. Throughput is
timed through the public API (input validation included), best of --repeat runs,
with numba's default thread count and with one thread. The machine is shared: the
numbers are noisy, quote ratios.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numba
import numpy as np

from reconstruct import (
    distance_error,
    distance_matrices,
    embed_distances,
    reconstruct_configurations,
    rmsd,
    symmetrize_distances,
    tumble,
)
from reconstruct.placement import place

BOX = 10.0
GAMMAS = (0.1, 1.0)
T = 0.75  # the sampler's default temperature (SimConfig)


def _sampler_positions(n_per_gamma: int, sweeps: int, seed: int) -> np.ndarray:
    from mcsim.sampler import SimConfig, sample

    cfg = SimConfig(sweeps=sweeps, seed=seed)
    return np.concatenate([sample(cfg, g, n_per_gamma).positions for g in GAMMAS])


def _best_time(fn, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _rec(d: np.ndarray, gamma: np.ndarray, variant: str = "centered", method: str = "fast"):
    return reconstruct_configurations(d, BOX, variant, method=method, gamma=gamma,
                                      temperature=T, seed=0)


def _throughput(d: np.ndarray, gamma: np.ndarray, repeat: int, variant: str,
                method: str = "fast") -> float:
    _rec(d[:8], gamma[:8], variant, method)  # compile / warm up
    return d.shape[0] / _best_time(lambda: _rec(d, gamma, variant, method), repeat)


def _sklearn(d: np.ndarray, n_init: int) -> tuple[np.ndarray, float]:
    from sklearn.manifold import MDS

    out = np.empty((d.shape[0], d.shape[1], 2))
    t0 = time.perf_counter()
    for k, dk in enumerate(d):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mds = MDS(n_components=2, metric="precomputed", init="random", n_init=n_init,
                      random_state=k)
            out[k] = mds.fit_transform(dk)
    return out, (time.perf_counter() - t0) / d.shape[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-configs", type=int, default=20000)
    p.add_argument("--n-samples", type=int, default=250, help="sampler configs per gamma")
    p.add_argument("--sweeps", type=int, default=2500)
    p.add_argument("--n-sklearn", type=int, default=40)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    t0 = time.perf_counter()
    x0 = _sampler_positions(args.n_samples, args.sweeps, args.seed)
    print(f"sampler: {x0.shape[0]} configurations (N={x0.shape[1]}) in "
          f"{time.perf_counter() - t0:.1f} s")
    reps = -(-args.n_configs // x0.shape[0])
    x = np.tile(x0, (reps, 1, 1))[: args.n_configs]
    gam = np.tile(np.repeat(GAMMAS, args.n_samples), reps)[: args.n_configs]
    d_exact = distance_matrices(x)
    rng = np.random.default_rng(args.seed)
    d_noisy = symmetrize_distances(d_exact * (1 + 0.02 * rng.normal(size=d_exact.shape)))
    print(f"numba threads: default {numba.config.NUMBA_NUM_THREADS}")

    print(f"\nthroughput, Gram + eigen + thermal placement, N=30, batch {args.n_configs} "
          "(configurations/s, best of %d)" % args.repeat)
    for threads in sorted({numba.config.NUMBA_NUM_THREADS, 1}, reverse=True):
        numba.set_num_threads(threads)
        for name, d in (("exact", d_exact), ("noisy 2%", d_noisy)):
            for variant in ("centered", "reference"):
                r = _throughput(d, gam, args.repeat, variant)
                print(f"  {threads} thread(s)  {name:9s} {variant:9s}  {r:10,.0f} /s")
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)

    # stage split on exact matrices, default threads
    emb = embed_distances(d_exact)
    t_emb = _best_time(lambda: embed_distances(d_exact), args.repeat)
    t_tum = _best_time(lambda: tumble(emb.coords, BOX), args.repeat)
    place(emb.coords[:8], BOX, gamma=gam[:8], temperature=T)
    t_th = _best_time(lambda: place(emb.coords, BOX, gamma=gam, temperature=T), args.repeat)
    n_lap = min(args.n_configs, 5000)
    embed_distances(d_exact[:8], method="lapack")
    t_lap = _best_time(lambda: embed_distances(d_exact[:n_lap], method="lapack"), 1) / n_lap
    print(f"  stages (default threads): gram+eigen {args.n_configs / t_emb:,.0f}/s, "
          f"thermal placement {args.n_configs / t_th:,.0f}/s, edge tumbler "
          f"{args.n_configs / t_tum:,.0f}/s; "
          f"numpy.linalg.eigh path {1 / t_lap:,.0f}/s")

    # against sklearn SMACOF on a subset
    k = min(args.n_sklearn, x0.shape[0])
    sub = np.linspace(0, x0.shape[0] - 1, k).astype(int)
    print(f"\nvs sklearn.manifold.MDS (SMACOF, metric='precomputed', init='random'), "
          f"{k} matrices, 1 thread for ours")
    numba.set_num_threads(1)
    for name, d_all in (("exact", d_exact), ("noisy 2%", d_noisy)):
        d = d_all[sub]
        g = gam[sub]
        ours_t = _best_time(lambda d=d, g=g: _rec(d, g), args.repeat) / k
        ours = _rec(d, g).positions
        line = (f"  {name:9s} ours: {ours_t * 1e6:8.1f} us/matrix, RMSD median "
                f"{np.median(rmsd(x[sub], ours)):.2e}, distance RMS median "
                f"{np.median(distance_error(d, ours)[0]):.2e}")
        print(line)
        for n_init in (1, 4):
            sk, sk_t = _sklearn(d, n_init)
            print(f"  {'':9s} sklearn n_init={n_init}: {sk_t * 1e3:7.2f} ms/matrix "
                  f"({sk_t / ours_t:,.0f}x slower), RMSD median "
                  f"{np.median(rmsd(x[sub], sk)):.2e}, distance RMS median "
                  f"{np.median(distance_error(d, sk)[0]):.2e}")
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


if __name__ == "__main__":
    main()
