"""Re-placement check of Monte Carlo data: are the rigid-body degrees of freedom in
equilibrium given the shapes?

    python benchmarks/bench_replacement_check.py --data study.h5 --other floor.h5

In equilibrium, the rotation, mirror image and offsets of a configuration given its
shape follow exactly the conditional law the thermal placement draws from
(:mod:`reconstruct.placement`), so re-placing every configuration's own shape leaves the
distribution of particle heights unchanged. Per gamma this prints

* the W1 between the re-placed and the original heights, and the same distance between
  the data and an independent MC set (``--other``, the noise floor at that size);
* the mean change of the centre-of-mass height under re-placement with its error bar
  (paired over configurations: independent samples) and its z value;
* the fraction of configurations the placement turns by more than 60 degrees.

A z beyond ~4 or a re-placed W1 well above the floor says the data are not in
equilibrium (the placement is exact: ``tests/reconstruct/test_reconstruct_placement.py``
checks it against quadrature). Prints numbers only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.stats import wasserstein_distance

from mcsim.clitools import ArgumentParser, UserError, nonneg_int, positive_int, run_cli
from mcsim.config import SimConfig
from mcsim.io import read_dataset
from reconstruct.placement import place


def _turn_degrees(a: np.ndarray, b: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """Best-fit rotation (degrees) taking the centred shapes a to b (mirror undone)."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    b[mirrored, :, 0] *= -1.0
    cross = (a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]).sum(1)
    dot = (a * b).sum((1, 2))
    return np.degrees(np.arctan2(cross, dot))


def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(prog="bench_replacement_check", description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path, help="MC dataset (HDF5)")
    ap.add_argument("--other", type=Path, help="an independent MC set at the same gammas")
    ap.add_argument("--n", type=positive_int, default=2000, help="configurations per gamma")
    ap.add_argument("--seed", type=nonneg_int, default=0, help="placement seed")
    args = ap.parse_args(argv)
    for p in (args.data, args.other):
        if p is not None and not p.is_file():
            raise UserError(f"{p}: no such file")
    ds = read_dataset(args.data)
    sim = SimConfig.from_file(args.data)
    if sim is None:
        raise UserError(f"--data: {args.data} records no simulation config (temperature)")
    other = read_dataset(args.other) if args.other else None
    box = float(ds.box)
    print(f"{args.data}: T = {sim.temperature:g}, L = {box:g}, n <= {args.n} per gamma")
    print(f"{'gamma':>6} {'n':>5} {'W1 re-placed':>13} {'W1 other set':>13} "
          f"{'dCOM':>8} {'+-':>6} {'z':>6} {'turned>60':>9}")
    for g in np.unique(ds.gamma):
        pos = np.asarray(ds.positions[ds.gamma == g][:args.n], dtype=np.float64)
        res = place(pos, box, "thermal", gamma=float(g), temperature=sim.temperature,
                    seed=args.seed)
        y, y_new = pos[..., 1], res.positions[..., 1]
        w_new = wasserstein_distance(y.ravel(), y_new.ravel())
        w_other = np.nan
        if other is not None and np.any(other.gamma == g):
            yo = other.positions[other.gamma == g][:args.n][..., 1]
            w_other = wasserstein_distance(y.ravel(), np.asarray(yo, np.float64).ravel())
        d = y_new.mean(1) - y.mean(1)
        se = d.std(ddof=1) / np.sqrt(d.size)
        turned = np.mean(np.abs(_turn_degrees(pos, res.positions, res.reflected)) > 60)
        print(f"{g:>6g} {d.size:>5} {w_new:>13.4f} {w_other:>13.4f} {d.mean():>8.3f} "
              f"{se:>6.3f} {d.mean() / se:>6.1f} {turned:>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, "bench_replacement_check"))
