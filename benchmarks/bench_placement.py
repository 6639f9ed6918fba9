"""Benchmark of the placements (thermal, lowest, edge) on exact distance matrices of
Monte Carlo data, and of the whole ``reconstruct`` command.

    python benchmarks/bench_placement.py [--n 2000] [--cache DIR] [--cli-n 100000]

Physics. For each of the study's gammas, two independent MC sets A and B of n
configurations are drawn with the study's system (N = 30, L = 10, T = 0.75, LJ cut
at 3, step 0.2) from uniform starts, once with sweeps enough to equilibrate
("equilibrated": 20,000 / 10,000 / 5000 / 5000 sweeps at gamma 0.1 / 0.4 / 0.7 /
1.0, at least twice what the equilibrium verdict needs) and once with the study's
2500 sweeps. The exact matrices of A are reconstructed with every placement and
compared with B; the floor is the same distance between A and B. Printed per
gamma and rule: energy, rho(y) and p(r) W1 / floor (energy per configuration, in
epsilon), and the fraction inside the box.

Speed. The ``reconstruct`` command is run as a new process, one thread, on a
dataset of ``--cli-n`` configurations (the equilibrated sets repeated), twice (the
second run loads its compiled kernels from numba's cache); wall and CPU time are
printed, with the load average. The machine is shared: quote the ratio to the
load, and the CPU time.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GAMMAS = (0.1, 0.4, 0.7, 1.0)
EQUILIBRATED_SWEEPS = {0.1: 20_000, 0.4: 10_000, 0.7: 5000, 1.0: 5000}
STUDY_SWEEPS = 2500
BOX, T = 10.0, 0.75
RULES = ("thermal", "lowest", "edge")


def _mc(gamma: float, sweeps: int, n: int, seed: int, cache: Path) -> np.ndarray:
    from mcsim.sampler import SimConfig, sample

    path = cache / f"mc_g{gamma:g}_s{sweeps}_n{n}_seed{seed}.npy"
    if path.exists():
        return np.load(path)
    pos = sample(SimConfig(sweeps=sweeps, seed=seed), gamma, n).positions
    np.save(path, pos)
    return pos


def _physics(n: int, cache: Path, n_boot: int) -> None:
    from mcsim.potentials import Potential, total_energy
    from pipelines.generate import compare_sets
    from reconstruct import distance_matrices, reconstruct_configurations

    pot = Potential.parse("lj", 3.0)
    for regime, sweeps in (("equilibrated", EQUILIBRATED_SWEEPS),
                           ("study 2500 sweeps", dict.fromkeys(GAMMAS, STUDY_SWEEPS))):
        print(f"\n{regime}: n = {n} per set; W1 / MC-vs-MC floor (energy per "
              "configuration, epsilon); inside = fraction inside the box")
        print(f"{'gamma':>5} {'sweeps':>6} {'rule':>8} {'energy':>7} {'rho(y)':>7} "
              f"{'p(r)':>7} {'inside':>7}   floor: energy, rho(y), p(r)")
        for g in GAMMAS:
            a = _mc(g, sweeps[g], n, 11, cache)
            b = _mc(g, sweeps[g], n, 12, cache)
            d = distance_matrices(a)
            sets = {"B": {"positions": b, "energy": total_energy(b, g, pot)},
                    "A": {"positions": a, "energy": total_energy(a, g, pot)}}
            inside = {}
            for rule in RULES:
                rec = reconstruct_configurations(d, BOX, placement=rule, gamma=g,
                                                 temperature=T, seed=3)
                p = rec.positions
                sets[rule] = {"positions": p, "energy": total_energy(p, g, pot)}
                inside[rule] = float(np.mean(np.all((p >= 0) & (p <= BOX), axis=(1, 2))
                                             & rec.fits))
            res = compare_sets(sets, "B", BOX, n_boot=n_boot, seed=0)
            fl = res["A"]
            for rule in RULES:
                r = res[rule]
                print(f"{g:5.1f} {sweeps[g]:6d} {rule:>8} "
                      f"{r['energy'].w1 / fl['energy'].w1:7.2f} "
                      f"{r['height'].w1 / fl['height'].w1:7.2f} "
                      f"{r['pair_distance'].w1 / fl['pair_distance'].w1:7.2f} "
                      f"{inside[rule]:7.3f}   {fl['energy'].w1:.3g}, {fl['height'].w1:.3g}, "
                      f"{fl['pair_distance'].w1:.3g}")


def _cli(n_cli: int, n: int, cache: Path) -> None:
    from mcsim.io import write_dataset

    pos = np.concatenate([_mc(g, EQUILIBRATED_SWEEPS[g], n, 11, cache) for g in GAMMAS])
    gam = np.repeat(GAMMAS, n)
    reps = -(-n_cli // pos.shape[0])
    pos = np.tile(pos, (reps, 1, 1))[:n_cli]
    gam = np.tile(gam, reps)[:n_cli]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.h5"
        write_dataset(data, pos, gam, {"box": BOX, "n_particles": 30, "temperature": T,
                                       "potential": "lj", "cutoff": 3.0, "source": "mcsim"})
        env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "reconstruct.cli", str(data), "-o",
               str(Path(tmp) / "rec.h5"), "-q", "--overwrite"]
        print(f"\nreconstruct CLI, {n_cli} configurations, one thread, whole process "
              "(thermal placement, default metrics):")
        for run in range(2):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, env=env)
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            print(f"  run {run + 1}: wall {wall:.2f} s = {n_cli / wall:,.0f} configs/s; "
                  f"CPU {cpu:.2f} s = {n_cli / cpu:,.0f} configs/s; load average "
                  f"{os.getloadavg()[0]:.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="configurations per MC set")
    p.add_argument("--cache", default="bench_placement_cache", help="MC sets are kept here")
    p.add_argument("--cli-n", type=int, default=100_000)
    p.add_argument("--n-boot", type=int, default=50)
    p.add_argument("--skip-physics", action="store_true")
    args = p.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    if not args.skip_physics:
        _physics(args.n, cache, args.n_boot)
    _cli(args.cli_n, args.n, cache)


if __name__ == "__main__":
    main()
