"""Sampler speed: cached-energy kernel vs a plain recompute-everything loop, whole-process
``simulate`` vs a plain C loop, and the time to produce the study's full dataset.

    python benchmarks/bench_mcsim.py            # kernel throughput + full-dataset estimate
    python benchmarks/bench_mcsim.py --process  # whole-process simulate vs C (-O3 -march=native)
    python benchmarks/bench_mcsim.py --parts    # where a trial move's time goes
    python benchmarks/bench_mcsim.py --full     # also time the real full dataset run
    python benchmarks/bench_mcsim.py --dask     # full dataset on a two-worker LocalCluster
                                                # (the simulate CLI with --scheduler)

Whole-process comparison (``--process``): one thread, the study's protocol at gamma 0.4
(1,500 samples x 2,500 sweeps from uniform starts). The C program is the same algorithm
written plainly (xoshiro256+, sequential sweeps, old and new pair terms recomputed for
every trial move), compiled here with ``cc -O3 -march=native``; ``simulate`` runs as a
fresh process with its default equilibration verdict, once with an empty reference
cache (the reference chains are computed) and once with the reference cached.

"Trial pair terms" are the N - 1 new pair energies a trial move needs; the plain loop
computes 2 (N - 1) terms per move (old and new), docs/reference.md 4 quotes its rate in
those terms. Moves per second compare the two directly.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import subprocess
import sys
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


C_LOOP = r"""
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#define N 30
static uint64_t s[4];
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static inline double uniform(void) {  /* xoshiro256+, top 53 bits */
    uint64_t r = s[0] + s[3], t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
    return (double)(r >> 11) * 0x1.0p-53;
}
static inline double u_lj(double r2) {
    if (r2 >= 9.0) return 0.0;
    if (r2 < 1e-6) r2 = 1e-6;
    double inv6 = 1.0 / (r2 * r2 * r2);
    return 4.0 * inv6 * (inv6 - 1.0);
}
int main(int argc, char **argv) {
    int samples = atoi(argv[1]), sweeps = atoi(argv[2]);
    double gamma = atof(argv[3]), beta = 1.0 / 0.75, delta = 0.2, box = 10.0;
    double x[N], y[N], esum = 0.0;
    long acc = 0;
    for (int k = 0; k < samples; k++) {
        uint64_t z = 0x9E3779B97F4A7C15ull * (uint64_t)(k + 1);  /* splitmix64 seeding */
        for (int q = 0; q < 4; q++) {
            z += 0x9E3779B97F4A7C15ull;
            uint64_t w = z;
            w = (w ^ (w >> 30)) * 0xBF58476D1CE4E5B9ull;
            w = (w ^ (w >> 27)) * 0x94D049BB133111EBull;
            s[q] = w ^ (w >> 31);
        }
        for (int i = 0; i < N; i++) { x[i] = box * uniform(); y[i] = box * uniform(); }
        for (int sw = 0; sw < sweeps; sw++) {
            for (int i = 0; i < N; i++) {
                double xn = x[i] + delta * (2.0 * uniform() - 1.0);
                double yn = y[i] + delta * (2.0 * uniform() - 1.0);
                if (xn < 0.0 || xn > box || yn < 0.0 || yn > box) continue;
                double e_old = 0.0, e_new = 0.0;
                for (int j = 0; j < N; j++) {
                    if (j == i) continue;
                    double dx = x[j] - x[i], dy = y[j] - y[i];
                    e_old += u_lj(dx * dx + dy * dy);
                    dx = x[j] - xn; dy = y[j] - yn;
                    e_new += u_lj(dx * dx + dy * dy);
                }
                double d_e = e_new - e_old + gamma * (yn - y[i]);
                if (d_e <= 0.0 || uniform() < exp(-beta * d_e)) { x[i] = xn; y[i] = yn; acc++; }
            }
        }
        for (int i = 0; i < N; i++)
            for (int j = i + 1; j < N; j++) {
                double dx = x[j] - x[i], dy = y[j] - y[i];
                esum += u_lj(dx * dx + dy * dy);
            }
    }
    printf("%.6f %ld\n", esum / samples, acc);
    return 0;
}
"""


def _build_c(tmp: Path) -> Path:
    src = tmp / "mc.c"
    src.write_text(C_LOOP)
    exe = tmp / "mc"
    cmd = ["cc", "-O3", "-march=native", "-o", str(exe), str(src), "-lm"]
    subprocess.run(cmd, check=True)
    return exe


def _wall(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a child process: on a shared machine the CPU time
    (user + system) is the fair measure of a one-thread process."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def whole_process(n_samples: int = 1500, sweeps: int = 2500, repeats: int = 2) -> None:
    """Whole-process simulate (1 thread, default verdict) vs the plain C loop."""
    if shutil.which("cc") is None:
        print("whole-process comparison: no C compiler (cc) found; skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        exe = _build_c(tmp)
        env = {**os.environ, "NUMBA_NUM_THREADS": "1", "LJVAE_CACHE_DIR": str(tmp / "cache")}
        sim = [sys.executable, "-m", "mcsim.cli", "--gamma", "0.4", "--n-samples",
               str(n_samples), "--sweeps", str(sweeps), "--threads", "1", "--quiet",
               "--overwrite", "--out", str(tmp / "d.h5")]
        _wall(sim[:5] + ["--n-samples", "2", "--sweeps", "2", "--no-verdict", "--quiet",
                         "--overwrite", "--out", str(tmp / "w.h5")], env)  # compile cache
        c_t, cold, warm, bare = [], [], [], []
        for _ in range(repeats):  # interleaved, so load changes hit every variant
            c_t.append(_wall([str(exe), str(n_samples), str(sweeps), "0.4"]))
            shutil.rmtree(tmp / "cache", ignore_errors=True)
            cold.append(_wall(sim, env))
            warm.append(_wall(sim, env))
            bare.append(_wall(sim + ["--no-verdict"], env))
    moves = n_samples * sweeps * 30
    c_wall, c_cpu = min(c_t, key=lambda t: t[1])
    print(f"whole process, 1 thread, gamma 0.4, {n_samples} x {sweeps} sweeps "
          f"({moves:.3g} trial moves), best of {repeats} by CPU time (wall in brackets):")
    print(f"  {'C loop (cc -O3 -march=native, old + new terms)':<50}{c_cpu:7.2f} s CPU "
          f"({c_wall:6.2f} s wall), {moves / c_cpu:.3g} moves/s")
    for name, ts in (("simulate, default verdict, reference cached", warm),
                     ("simulate, default verdict, reference computed", cold),
                     ("simulate --no-verdict", bare)):
        wall, cpu = min(ts, key=lambda t: t[1])
        print(f"  {name:<50}{cpu:7.2f} s CPU ({wall:6.2f} s wall)  -> {c_cpu / cpu:.2f}x "
              f"the C loop")


def _load_sampler(stop, out: list, every: float = 15.0) -> None:
    """Append the 1-minute load average to ``out`` every ``every`` s until ``stop`` is set."""
    while not stop.wait(every):
        out.append(os.getloadavg()[0])


def dask_full(n_workers: int = 2, n_samples: int = 10_000) -> None:
    """The study's dataset (4 gammas, 2500 sweeps) written by the ``simulate`` CLI with
    ``--scheduler`` on a LocalCluster of n_workers single-thread worker processes, with
    the default verdict (references computed by the client, empty cache). Prints wall
    time, the client's CPU time and the workers' CPU time (their getrusage)."""
    import threading

    from distributed import Client, LocalCluster

    def cpu_self() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client, \
            tempfile.TemporaryDirectory() as tmp:
        cfg = SimConfig(sweeps=2500)
        client.run(lambda: sample(cfg, 0.4, 2, parallel=False))  # load numba caches
        cpu0 = client.run(cpu_self)
        env = {**os.environ, "LJVAE_CACHE_DIR": str(Path(tmp) / "cache")}
        cmd = [sys.executable, "-m", "mcsim.cli", "--gamma", "0.1", "0.4", "0.7", "1.0",
               "--n-samples", str(n_samples), "--sweeps", "2500",
               "--scheduler", cluster.scheduler_address, "--out", str(Path(tmp) / "study.h5")]
        print("running: simulate " + " ".join(cmd[3:]), flush=True)
        loads: list[float] = [os.getloadavg()[0]]
        stop = threading.Event()
        th = threading.Thread(target=_load_sampler, args=(stop, loads), daemon=True)
        th.start()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        stop.set()
        cpu1 = client.run(cpu_self)
    client_cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    worker_cpu = sum(cpu1[w] - cpu0[w] for w in cpu1)
    print(res.stdout.strip())
    if res.returncode:
        print(res.stderr.strip())
    print(f"Dask LocalCluster ({n_workers} worker processes x 1 thread): 4 x {n_samples} "
          f"samples x 2500 sweeps in {dt:.1f} s wall ({dt / 60:.2f} min); CPU: workers "
          f"{worker_cpu:.1f} s (" + ", ".join(f"{cpu1[w] - cpu0[w]:.1f}" for w in cpu1)
          + f"), simulate client {client_cpu:.1f} s; load average during the run "
          f"{np.mean(loads):.1f} (min {min(loads):.1f}, max {max(loads):.1f}, "
          f"{len(loads)} readings)")


# ------------------------------------------------------- parts of one trial move
# The kernels' numba options, but not cached: these inline kernels of mcsim._kernels,
# whose edits numba's cache of this file would not notice.
_PART_JIT = {**K.JIT, "cache": False}


@njit(**_PART_JIT)
def _part_pass(x32, y32, e_pair, row, npart, reps, rc2):
    """The fused pass of K._sweep_lj32 (new pair terms + energy change), trial
    positions shifted a little each repetition, nothing accepted."""
    r2min = np.float32(K.R2_MIN)
    four = np.float32(4.0)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    tot = 0.0
    for r in range(reps):
        for i in range(npart):
            xf = x32[i] + np.float32(0.01 * (r % 7))
            yf = y32[i] - np.float32(0.01 * (r % 5))
            e_old = e_pair[i]
            d_pair = zero
            for j in range(x32.shape[0]):
                dx = x32[j] - xf
                dy = y32[j] - yf
                r2 = dx * dx + dy * dy
                r2c = max(r2, r2min)
                inv6 = one / (r2c * r2c * r2c)
                u = four * inv6 * (inv6 - one)
                u = u if (r2 < rc2 and j != i and j < npart) else zero
                row[j] = u
                d_pair += u - e_old[j]
            tot += d_pair
    return tot


@njit(**_PART_JIT)
def _part_rng(rng, n):
    t = 0.0
    for _ in range(n):
        t += K._uniform(rng) + K._uniform(rng) + K._uniform(rng)
    return t


@njit(**_PART_JIT)
def _part_accept(xs, us, plain):
    c = 0
    for k in range(xs.shape[0]):
        c += (us[k] < np.exp(-xs[k])) if plain else K._accept_uphill(xs[k], us[k])
    return c


@njit(**_PART_JIT)
def _part_update(e_pair, row, npart, reps):
    for _ in range(reps):
        for i in range(npart):
            for j in range(e_pair.shape[0]):
                e_pair[i, j] = row[j]
                e_pair[j, i] = row[j]
    return e_pair[0, 1]


@njit(**_PART_JIT)
def _uphill_x(x, y, x32, y32, e_pair, row, rng, beta, gamma, delta, box, rc2, out):
    """beta dE of uphill trial moves from one equilibrated-ish configuration (nothing
    accepted), into ``out``; returns how many."""
    npart = 30
    k = 0
    while k < out.shape[0]:
        for i in range(npart):
            xn = x[i] + delta * (2.0 * K._uniform(rng) - 1.0)
            yn = y[i] + delta * (2.0 * K._uniform(rng) - 1.0)
            if xn < 0.0 or xn > box or yn < 0.0 or yn > box:
                continue
            K._fill_row_lj32(np.float32(xn), np.float32(yn), i, x32, y32, npart, rc2, row)
            d = 0.0
            for j in range(x32.shape[0]):
                d += row[j] - e_pair[i, j]
            d += gamma * (yn - y[i])
            if d > 0 and k < out.shape[0]:
                out[k] = beta * d
                k += 1
    return k


def parts(reps: int = 20_000) -> None:
    """Microbenchmarks of the parts of one trial move of the float32 LJ sampler (N = 30,
    gamma = 0.4, a configuration after 2500 sweeps), ns each, best of 3."""
    cfg = SimConfig(sweeps=2500)
    s = sample(cfg, 0.4, 1, n_threads=1)
    x, y, x32, y32, e_pair, row, rc2f = K._setup_lj32(s.positions[0, :, 0].copy(),
                                                      s.positions[0, :, 1].copy(), 9.0)
    rng = seed_states(0, 9, 0.4, 0, 1)[0].copy()
    xs = np.empty(200_000)
    _uphill_x(x.copy(), y.copy(), x32, y32, e_pair, row, rng, cfg.beta, 0.4, cfg.delta,
              cfg.box, rc2f, xs)
    us = np.random.default_rng(0).integers(0, 2**53, xs.size) * 2.0**-53
    p3 = 1.0 + xs * (1.0 + xs * (0.5 + xs / 6.0))
    lo = 1.0 - xs * (1.0 - xs * (0.5 - xs / 6.0))
    need_exp = np.mean((us * p3 < 1.0) & (us >= lo))
    moves = 30 * reps
    rows = [
        ("pair terms + energy change (fused pass, 32 padded entries), per move",
         lambda: _part_pass(x32, y32, e_pair, row, 30, reps, rc2f), moves),
        ("three uniforms (xoshiro256+), per move", lambda: _part_rng(rng, moves), moves),
        ("Metropolis test with the bounds, per uphill move",
         lambda: _part_accept(xs, us, False), xs.size),
        ("plain u < exp(-x), per uphill move", lambda: _part_accept(xs, us, True), xs.size),
        ("cache update, row + column, per accepted move",
         lambda: _part_update(e_pair.copy(), row, 30, reps), moves),
    ]
    print(f"parts of one trial move (load average {os.getloadavg()[0]:.1f}); uphill moves "
          f"here: median beta dE {np.median(xs):.2f}, exp needed for {need_exp:.1%}")
    for name, fn, n in rows:
        fn()  # compile
        cpu = []
        for _ in range(3):
            t0 = time.process_time()
            fn()
            cpu.append(time.process_time() - t0)
        print(f"  {name:<68}{min(cpu) / n * 1e9:6.1f} ns")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=400)
    p.add_argument("--sweeps", type=int, default=1000)
    p.add_argument("--full", action="store_true", help="time the real study dataset run")
    p.add_argument("--process", action="store_true",
                   help="whole-process simulate vs the plain C loop")
    p.add_argument("--process-samples", type=int, default=1500)
    p.add_argument("--dask", action="store_true", help="full dataset on a LocalCluster")
    p.add_argument("--dask-samples", type=int, default=10_000,
                   help="samples per gamma for --dask (default 10000, the study's)")
    p.add_argument("--no-kernel", action="store_true", help="skip the kernel table")
    p.add_argument("--parts", action="store_true",
                   help="microbenchmarks of the parts of one trial move")
    args = p.parse_args()
    print(f"numba {numba.__version__}, {numba.config.NUMBA_NUM_THREADS} threads available, "
          f"load average {os.getloadavg()[0]:.1f}")
    if not args.no_kernel:
        kernel_throughput(args.samples, args.sweeps)
    if args.parts:
        parts()
    if args.process:
        whole_process(args.process_samples)
    if args.full:
        full_dataset()
    if args.dask:
        dask_full(n_samples=args.dask_samples)


if __name__ == "__main__":
    main()
