"""Calibration of the equilibration verdict (mcsim.reference): power and false alarms.

    python benchmarks/calibrate_verdict.py [--n-samples 1000] [--repeats 10]

1. Verdict table: the study's protocol (independent samples from uniform starts) at
   2500, 5000 and 10,000 sweeps for gamma = 0.1, 0.4, 0.7, 1.0, judged against the
   default reference; each row prints z per observable and the detectable bias.
2. False alarms: equilibrated chain data (sample_every = the reference's tau), each
   repeat with its own data seed AND its own reference seed, so the rate includes the
   reference's own error; prints the z distribution (mean, sd) and the alarm count.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

from mcsim.config import SimConfig
from mcsim.reference import ReferenceSettings, equilibration_verdict, equilibrium_reference
from mcsim.sampler import Chain, IndependentRun

GAMMAS = (0.1, 0.4, 0.7, 1.0)


def verdict_table(n_samples: int) -> None:
    c = SimConfig()
    print(f"verdict table: {n_samples} independent samples per row, default reference")
    print(f"{'gamma':>5} {'S':>6} {'E/N':>8} {'E/N eq':>8} {'z(E)':>6} {'z(<y>)':>7} "
          f"{'z(<y2>)':>8} {'detect/N':>8}  verdict")
    for g in GAMMAS:
        t0 = time.perf_counter()
        ref = equilibrium_reference(c, g)
        t_ref = time.perf_counter() - t0
        run = IndependentRun(c, g, 0, n_samples)
        for s in (2500, 5000, 10_000):
            run.advance(s - run.sweeps)
            smp = run.samples()
            v = equilibration_verdict(smp.positions, smp.energy, ref, sweeps=s)
            print(f"{g:5g} {s:6d} {v.data_mean['energy'] / 30:8.4f} "
                  f"{v.ref_mean['energy'] / 30:8.4f} {v.z['energy']:+6.1f} "
                  f"{v.z['y_mean']:+7.1f} {v.z['y2_mean']:+8.1f} "
                  f"{v.detectable_bias / 30:8.3f}  {'ok' if v.passed else 'FAIL'}", flush=True)
        print(f"      reference: {ref.cost_sweeps} sweeps, tau(E) = "
              f"{ref.tau_sweeps['energy']:.0f} sweeps, chain chi2(E) = "
              f"{ref.chain_chi2['energy']:.1f} (7 dof), {t_ref:.1f} s (cache miss or hit)")


def false_alarms(n_samples: int, repeats: int) -> None:
    print(f"false alarms: {repeats} repeats per gamma, {n_samples} chain samples each, "
          "fresh reference seed per repeat")
    zs, alarms, trials = [], 0, 0
    for g in GAMMAS:
        zg = []
        for r in range(repeats):
            c = SimConfig(protocol="chain", seed=1000 + r)
            ref = equilibrium_reference(c, g, ReferenceSettings(seed=100 + r), cache=False)
            every = max(1, math.ceil(max(ref.tau_sweeps.values())))
            smp = Chain(c.replace(sample_every=every), g).produce(n_samples)
            v = equilibration_verdict(smp.positions, smp.energy, ref, correlated=True)
            zg.append([v.z[k] for k in ("energy", "y_mean", "y2_mean")])
            alarms += not v.passed
            trials += 1
        zg = np.array(zg)
        zs.append(zg)
        print(f"gamma {g:g}: z(E) mean {zg[:, 0].mean():+.2f} sd {zg[:, 0].std(ddof=1):.2f}; "
              f"all z: sd {zg.std(ddof=1):.2f}; failed {int(np.sum(np.abs(zg).max(1) >= 3))}"
              f"/{repeats}", flush=True)
    z = np.concatenate(zs)
    print(f"all: sd of z = {z.std(ddof=1):.2f} (1 if the errors are right); "
          f"false alarms {alarms}/{trials}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-samples", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--skip-table", action="store_true")
    p.add_argument("--skip-alarms", action="store_true")
    a = p.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    if not a.skip_table:
        c0 = time.process_time()
        verdict_table(a.n_samples)
        print(f"verdict table: {time.process_time() - c0:.0f} s CPU")
    if not a.skip_alarms:
        c0 = time.process_time()
        false_alarms(a.n_samples, a.repeats)
        print(f"false alarms: {time.process_time() - c0:.0f} s CPU")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
