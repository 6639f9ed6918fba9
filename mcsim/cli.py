"""``simulate``: generate Monte Carlo datasets of the 2D LJ fluid under gravity.

Examples::

    simulate --gamma 0.4                                    # 10,000 samples at gamma 0.4
    simulate --gamma 0.1 0.4 0.7 1.0 --n-samples 10000      # the study's dataset
    simulate --gamma 0.5 --potential nm:4,2 --cutoff none --sweeps 5000   # "fake" potential
    simulate --gamma 0.4 --uniform                          # uniform random configurations
    simulate --gamma 0.1 --protocol chain --target-acceptance 0.4
    simulate --gamma 0.1 --scan-sweeps                      # how many sweeps are enough?
    simulate --gamma 0.1 0.4 --sweeps auto                  # equilibrated data (per gamma)
    simulate --gamma 0.1 --protocol chain --sample-every auto
    simulate --gamma 0.1 0.4 0.7 1.0 --scheduler tcp://host:8786   # on a Dask cluster
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mcsim.clitools import (
    DEFAULT_THREADS,
    ArgumentParser,
    UserError,
    add_progress_flags,
    check_memory,
    check_outputs,
    clamp_threads,
    nonneg_float,
    nonneg_int,
    positive_int,
    run_cli,
    show_progress,
)
from mcsim.config import PROTOCOLS, SimConfig
from mcsim.potentials import Potential

__all__ = ["main", "build_parser", "config_from_args"]

# config field -> CLI flag, so validation errors name what the user typed
_FLAGS = {
    "n_particles": "--n-particles",
    "box": "--box",
    "temperature": "--temperature",
    "gammas": "--gamma",
    "n_samples": "--n-samples",
    "delta": "--step",
    "sweeps": "--sweeps",
    "protocol": "--protocol",
    "equil_sweeps": "--equil-sweeps",
    "sample_every": "--sample-every",
    "target_acceptance": "--target-acceptance",
    "seed": "--seed",
    "potential": "--potential",
    "cutoff": "--cutoff",
}


def _cutoff(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    return nonneg_float(text)


def _sweeps(text: str) -> int | tuple[str, int]:
    """``N`` or ``auto`` / ``auto:N0`` (doubling from N0, default 2500)."""
    t = text.strip().lower()
    if t == "auto":
        return ("auto", 2500)
    if t.startswith("auto:"):
        return ("auto", positive_int(t[5:]))
    try:
        return int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer or 'auto', got {text!r}"
                                         ) from None


def _every(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer or 'auto', got {text!r}"
                                         ) from None


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="simulate", description=__doc__.split("\n\n")[0],
                       epilog="Reduced units: sigma = epsilon = k_B = 1.")
    phys = p.add_argument_group("physics")
    phys.add_argument("--gamma", type=float, nargs="+", default=[0.4],
                      help="field strength(s) gamma >= 0 (default 0.4)")
    phys.add_argument("--n-particles", type=int, default=30, help="N (default 30)")
    phys.add_argument("--box", type=float, default=10.0, help="box side L (default 10)")
    phys.add_argument("--temperature", type=float, default=0.75, help="T (default 0.75)")
    phys.add_argument("--potential", default="lj",
                      help="lj (default), nm:N,M (e.g. nm:4,2, the study's fake potential) "
                           "or ideal")
    phys.add_argument("--cutoff", type=_cutoff, default=3.0,
                      help="plain (unshifted) cutoff in sigma, or 'none' (default 3)")
    mc = p.add_argument_group("sampling")
    mc.add_argument("--n-samples", type=int, default=10_000,
                    help="configurations per gamma (default 10000)")
    mc.add_argument("--step", type=float, default=0.2,
                    help="max trial displacement per axis, sigma (default 0.2)")
    mc.add_argument("--sweeps", type=_sweeps, default=2500,
                    help="sweeps per sample, independent protocol (default 2500); 'auto' "
                         "(or auto:S0): per gamma the smallest of 2500 (S0) x 1, 2, 4, ... "
                         "whose samples pass the equilibration verdict")
    mc.add_argument("--max-sweeps", type=positive_int, default=80_000,
                    help="largest sweep count --sweeps auto tries (default 80000)")
    mc.add_argument("--protocol", choices=PROTOCOLS[:2], default="independent",
                    help="independent (default: fresh uniform start per sample) or chain")
    mc.add_argument("--uniform", action="store_true",
                    help="uniform random configurations, no Monte Carlo")
    mc.add_argument("--equil-sweeps", type=int, default=20_000,
                    help="chain: equilibration sweeps (default 20000)")
    mc.add_argument("--sample-every", type=_every, default=10,
                    help="chain: sweeps between samples (default 10); 'auto': the "
                         "integrated autocorrelation time of the equilibrium reference")
    mc.add_argument("--target-acceptance", type=float, default=None,
                    help="chain: tune the step toward this acceptance during equilibration")
    mc.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    run = p.add_argument_group("run")
    run.add_argument("--out", type=Path, default=None,
                     help="output HDF5 file (default data/<potential>_g<gammas>_n<N>_s<seed>.h5)")
    run.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    run.add_argument("--resume", action="store_true",
                     help="continue an interrupted run from <out>.partial")
    run.add_argument("--threads", type=positive_int, default=DEFAULT_THREADS,
                     help=f"numba threads (default {DEFAULT_THREADS}; output does not depend "
                          "on it)")
    run.add_argument("--chunk-size", type=positive_int, default=500,
                     help="samples written per chunk (default 500)")
    run.add_argument("--no-verdict", action="store_true",
                     help="skip the equilibration verdict (samples vs an equilibrium "
                          "reference, cached in $LJVAE_CACHE_DIR or ~/.cache/ljvae)")
    run.add_argument("--z-max", type=nonneg_float, default=3.0,
                     help="the verdict fails at |z| >= this (default 3)")
    run.add_argument("--check-samples", type=nonneg_int, default=0,
                     help="samples of the older paired S-vs-2S check per gamma (default 0: "
                          "off; --scan-sweeps uses 200 if 0)")
    run.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="Dask scheduler address (e.g. tcp://host:8786): run the sample "
                          "chunks on that cluster (same output as a local run)")
    run.add_argument("--plot", nargs="?", const="auto", default=None, metavar="PNG",
                     help="write an overview figure (default name: <out>.png)")
    run.add_argument("--xyz", type=Path, default=None, metavar="FILE",
                     help="also export the configurations to extended XYZ")
    run.add_argument("--scan-sweeps", action="store_true",
                     help="only run equilibration checks at S, 2S, 4S, ... sweeps and print "
                          "the table (writes nothing)")
    add_progress_flags(run, "--quiet")
    return p


def config_from_args(args) -> SimConfig:
    """Build and validate the SimConfig; errors name the CLI flag."""
    try:
        pot = Potential.parse(args.potential, args.cutoff)
        protocol = "uniform" if args.uniform else args.protocol
        if isinstance(args.sweeps, tuple) and protocol != "independent":
            raise ValueError("sweeps: 'auto' is for the independent protocol")
        if args.sample_every == "auto" and protocol != "chain":
            raise ValueError("sample_every: 'auto' is for --protocol chain")
        sweeps = args.sweeps[1] if isinstance(args.sweeps, tuple) else args.sweeps
        every = 10 if args.sample_every == "auto" else args.sample_every
        if args.scheduler is not None and protocol == "chain":
            raise UserError("--scheduler: the chain protocol runs one sequential chain per "
                            "gamma; run it without --scheduler")
        return SimConfig(
            n_particles=args.n_particles, box=args.box, temperature=args.temperature,
            potential=pot, gammas=tuple(args.gamma), n_samples=args.n_samples,
            delta=args.step, sweeps=sweeps, protocol=protocol,
            equil_sweeps=args.equil_sweeps, sample_every=every,
            target_acceptance=args.target_acceptance, seed=args.seed,
        )
    except ValueError as exc:
        msg = str(exc)
        field, _, rest = msg.partition(":")
        flag = _FLAGS.get(field.strip())
        raise UserError(f"{flag}:{rest}" if flag else msg) from None


def _default_out(c: SimConfig) -> Path:
    g = "-".join(f"{x:g}" for x in c.gammas)
    kind = "uniform" if c.protocol == "uniform" else c.potential.spec.replace(":", "").replace(
        ",", "-")
    return Path("data") / f"{kind}_g{g}_n{c.n_samples}_s{c.seed}.h5"


def _scan(c: SimConfig, args) -> int:
    from mcsim.observables import scan_sweeps
    from mcsim.sampler import threads

    if c.protocol == "uniform":
        raise UserError("--scan-sweeps: nothing to check for --uniform data")
    n_check = args.check_samples or 200
    print(f"{'gamma':>6} {'S':>7} {'E/N(S)':>9} {'E/N(2S)':>9} {'z':>6}  verdict")
    with threads(args.threads):
        for g in c.gammas:
            checks = scan_sweeps(c, g, n_samples=n_check)
            for chk in checks:
                n = c.n_particles
                print(f"{g:6g} {chk.sweeps:7d} {chk.mean_s / n:9.4f} {chk.mean_2s / n:9.4f} "
                      f"{chk.z:+6.1f}  {'ok' if chk.passed else 'drifting'}")
            last = checks[-1]
            rec = f"{last.sweeps} sweeps" if last.passed else "more than the largest S tried"
            print(f"gamma={g:g}: recommended: {rec}")
    return 0


def _check_resources(c: SimConfig, args, out: Path, plot: Path | None) -> None:
    """Refuse runs whose memory, disk or time needs are absurd, before any work."""
    from mcsim.run import check_run_resources

    check_run_resources(c, out, chunk_size=args.chunk_size, n_threads=args.threads,
                        check_samples=args.check_samples)
    if plot is not None or args.xyz is not None:  # these read the whole file back
        n_total = len(c.gammas) * c.n_samples
        check_memory(2 * n_total * c.n_particles * 2 * 8, f"--plot/--xyz of {n_total} samples")


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    c = config_from_args(args)
    args.threads = clamp_threads(args.threads, "simulate")
    if args.scan_sweeps:
        return _scan(c, args)
    out = args.out or _default_out(c)
    if out.is_dir():
        raise UserError(f"--out: {out} is a directory (give a file name)")
    if out.suffix == "":
        out = out.with_suffix(".h5")
    plot = None
    if args.plot is not None:
        plot = out.with_suffix(".png") if args.plot == "auto" else Path(args.plot)
    check_outputs([("--out", out), ("--plot", plot), ("--xyz", args.xyz)],
                  overwrite=args.overwrite, resume=args.resume)
    _check_resources(c, args, out, plot)

    from mcsim.run import run_simulation  # imported here: numba kernels load lazily

    try:
        summary = run_simulation(
            c, out, overwrite=args.overwrite, resume=args.resume, chunk_size=args.chunk_size,
            n_threads=args.threads, check_samples=args.check_samples,
            verdict=not args.no_verdict, z_max=args.z_max,
            auto_sweeps=isinstance(args.sweeps, tuple), max_sweeps=args.max_sweeps,
            auto_sample_every=args.sample_every == "auto", scheduler=args.scheduler,
            progress=show_progress(args))
    except ValueError as exc:
        if str(exc).startswith("scheduler:"):
            raise UserError(f"--{exc}") from None
        raise
    n = c.n_particles
    parts = []
    for g in c.gammas:
        v = summary.verdicts.get(g)
        verdict = "no verdict" if v is None else v.short()
        if isinstance(args.sweeps, tuple):
            verdict += f" at {summary.sweeps[g]} sweeps"
        if args.sample_every == "auto":
            verdict += f", sample every {summary.sample_every[g]} sweeps"
        acc = summary.acceptance[g]
        acc_s = "n/a" if acc != acc else f"{acc:.3f}"
        parts.append(f"gamma={g:g}: <E>/N={summary.mean_energy[g] / n:.4f}, "
                     f"acceptance={acc_s}, {verdict}")
    print(f"{out}: {summary.n_total} samples; " + "; ".join(parts))
    for chk in summary.failed_checks:
        sys.stderr.write(
            f"simulate: warning: {chk.verdict()}; the samples are not equilibrated. "
            f"Use --sweeps auto, more --sweeps or --protocol chain.\n")
    if plot is not None or args.xyz is not None:
        from mcsim.io import read_dataset, write_xyz

        ds = read_dataset(out)
        if plot is not None:
            from mcsim.plotting import dataset_figure

            dataset_figure(ds, plot)
            print(f"figure: {plot}")
        if args.xyz is not None:
            write_xyz(args.xyz, ds.positions, box=ds.box, energy=ds.energy, gamma=ds.gamma,
                      overwrite=args.overwrite)
            print(f"xyz: {args.xyz}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, "simulate", argv)


if __name__ == "__main__":
    sys.exit(main())
