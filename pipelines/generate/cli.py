"""``generate``: new configurations from a trained VAE's latent space.

Examples::

    generate --gamma 0.4 --n-samples 10000                  # density buffer, runs/**/best.pt
    generate --gamma 0.4 1.0 --prior flow --out gen.h5 --xyz
    generate --gamma 0.4 --prior buffer --reject-unphysical --seed 3
    generate --prior all --n-samples 2000 --evaluate report/  # judge every prior against MC
    generate --gamma 0.4 --prior gmm --save-prior gmm.npz   # keep the fitted prior
    generate --gamma 0.4 --load-prior gmm.npz               # reuse it (no refit)

Pipeline: z ~ prior(gamma) -> decoder -> distance matrix -> Gram + tumbler ->
configurations in the box, written in the ljvae dataset format (readable by
``mcsim.read_dataset``) with each configuration's Euclidean-quality score and
unphysical flags (a pair closer than --overlap sigma; outside the box). The priors
are fitted on the model's training split (re-read from the files recorded in the
checkpoint; their fingerprint must match). Gamma rule: only trained gammas, except
the flow prior, which interpolates strictly inside the trained range with a warning.

``--evaluate [DIR]`` also judges the chosen priors against held-out Monte Carlo
(the model's test split; floor from a fresh MC run with the training protocol) and
writes ``generate.json``, ``generate.md`` and one figure per gamma to DIR.

Bad input gives one line and exit code 2; nothing is written then, and existing
files are kept unless --overwrite.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from mcsim.clitools import (
    DEFAULT_N_BOOT,
    DEFAULT_THREADS,
    ArgumentParser,
    UserError,
    add_progress_flags,
    check_memory,
    check_outputs,
    check_work,
    clamp_threads,
    hidden_alias,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    run_cli,
    show_progress,
)
from reconstruct.placement import DEFAULT_PLACEMENT, PLACEMENTS
from vae.checkpoint import DECODER_PRECISIONS, announce_checkpoint, default_checkpoint
from vae.priors import PRIOR_SPECS, PRIORS

__all__ = ["build_parser", "main"]

PROG = "generate"


def _gamma(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (v >= 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number >= 0")
    return v


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog=PROG,
        description="Generate configurations from a trained VAE: draw latent vectors from "
        "a prior fitted to the encoded training set, decode distance matrices and rebuild "
        "configurations in the box (Gram matrix + tumbler).",
        epilog="Priors: " + "; ".join(f"{s.name} ({s.description})"
                                      for s in PRIOR_SPECS.values()) + ".")
    p.add_argument("--gamma", type=_gamma, nargs="+", metavar="G",
                   help="field strength(s) to generate at (default: every trained gamma)")
    p.add_argument("--n-samples", dest="n", type=positive_int, default=1000, metavar="N",
                   help="configurations per gamma (default 1000)")
    hidden_alias(p, "--n", dest="n", type=positive_int)
    p.add_argument("--prior", nargs="+", metavar="NAME",
                   help=f"latent prior: {', '.join(PRIORS)} or all (default buffer); "
                   "several write one file each (<out>_<prior>.h5)")
    p.add_argument("--checkpoint", metavar="PT",
                   help="VAE checkpoint (default: the main model of the newest run under "
                   "./runs: a study's train/best.pt or a train-vae run's best.pt)")
    p.add_argument("--out", default="gen.h5", help="output dataset (default gen.h5)")
    p.add_argument("--xyz", nargs="?", const=True, metavar="FILE",
                   help="also write extended XYZ (default name: <out>.xyz)")
    p.add_argument("--reject-unphysical", action="store_true",
                   help="redraw configurations with an overlap or outside the box")
    p.add_argument("--overlap", type=positive_float, default=0.8, metavar="SIGMA",
                   help="closest allowed pair distance (default 0.8 sigma)")
    p.add_argument("--placement", choices=tuple(PLACEMENTS), default=DEFAULT_PLACEMENT,
                   help="how shapes are put in the box: thermal (exact Boltzmann law at "
                   "gamma and the training temperature), lowest, or edge (the study's "
                   "tumbler); default thermal")
    p.add_argument("--decoder-precision", choices=DECODER_PRECISIONS, default="float32",
                   help="the decoder's arithmetic: float32 (default) or bfloat16 (hidden "
                   "layers in bfloat16, output layer in float32; arch coord only; faster on "
                   "CPUs with bfloat16 instructions)")
    p.add_argument("--max-draw-factor", type=positive_float, default=20.0, metavar="F",
                   help="with --reject-unphysical, give up after drawing F x n (default 20)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the draws (default 0)")
    p.add_argument("--buffer-alpha", type=nonneg_float, default=1.0,
                   help="density buffer: scale of the encoder's sigma_i (default 1)")
    p.add_argument("--buffer-smudge", type=nonneg_float, default=0.0,
                   help="density buffer: extra isotropic spread (default 0)")
    p.add_argument("--gmm-components", type=positive_int, default=10,
                   help="Gaussian mixture components per gamma (default 10)")
    p.add_argument("--flow-epochs", type=positive_int, default=60,
                   help="flow prior: maximum training epochs (default 60)")
    p.add_argument("--save-prior", metavar="NPZ", help="save the fitted prior (one prior only)")
    p.add_argument("--load-prior", metavar="NPZ",
                   help="use a saved prior instead of fitting one (no code is executed)")
    p.add_argument("--evaluate", nargs="?", const=True, metavar="DIR",
                   help="also judge against held-out MC and write the report to DIR "
                   "(default: <out stem>_report)")
    p.add_argument("--relax-sweeps", type=nonneg_int, default=0, metavar="K",
                   help="--evaluate only: also judge outputs after K Metropolis sweeps "
                   "(post-processing, reported separately; default 0 = off)")
    p.add_argument("--n-boot", type=positive_int, default=DEFAULT_N_BOOT,
                   help=f"--evaluate: bootstrap replicates (default {DEFAULT_N_BOOT})")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--threads", type=positive_int, default=DEFAULT_THREADS,
                   help=f"CPU threads for torch, numba and BLAS (default {DEFAULT_THREADS})")
    add_progress_flags(p)
    return p


def _priors(names: list[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        for k in (PRIORS if n == "all" else (n,)):
            if k not in PRIORS:
                raise UserError(f"--prior: unknown prior {k!r} (one of {', '.join(PRIORS)}, all)")
            if k not in out:
                out.append(k)
    return out


def _outputs(args, priors: list[str]) -> list[tuple[str, Path, Path | None]]:
    """(prior, dataset path, xyz path or None) for each prior, checked up front."""
    out = Path(args.out)
    if out.suffix.lower() not in (".h5", ".hdf5"):
        raise UserError(f"--out: {out} must end in .h5 or .hdf5")
    res = []
    for name in priors:
        path = out if len(priors) == 1 else out.with_name(f"{out.stem}_{name}{out.suffix}")
        xyz = None
        if args.xyz is True:
            xyz = path.with_suffix(".xyz")
        elif args.xyz:
            x = Path(args.xyz)
            xyz = x if len(priors) == 1 else x.with_name(f"{x.stem}_{name}{x.suffix}")
        res.append((name, path, xyz))
    return res


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    priors = _priors(args.prior or ["buffer"])
    if args.load_prior and len(priors) > 1:
        raise UserError("--load-prior: give a single --prior (or none)")
    if args.save_prior and (len(priors) > 1 or args.load_prior):
        raise UserError("--save-prior: needs exactly one prior that is fitted here")
    ck = Path(args.checkpoint) if args.checkpoint else None
    if ck is None:
        ck = default_checkpoint()
    if not ck.is_file():
        raise UserError(f"--checkpoint: {ck}: no such file")
    outputs = _outputs(args, priors)
    report_dir = None
    if args.evaluate:
        report_dir = (Path(args.out).with_name(Path(args.out).stem + "_report")
                      if args.evaluate is True else Path(args.evaluate))
    if args.relax_sweeps and not args.evaluate:
        raise UserError("--relax-sweeps: only with --evaluate (it is post-processing for "
                        "the report, never part of the generated files)")
    files = [f for _, path, xyz in outputs for f in (("--out", path), ("--xyz", xyz))]
    files.append(("--save-prior", args.save_prior))
    if report_dir is not None:
        files += [("--evaluate", report_dir / n) for n in ("generate.json", "generate.md")]
    check_outputs(files, dirs=[("--evaluate", report_dir)], overwrite=args.overwrite,
                  inputs=[("--checkpoint", ck), ("--load-prior", args.load_prior)])
    args.threads = clamp_threads(args.threads, PROG)

    from mcsim.shared import thread_limits
    from pipelines.generate import (
        GenerateConfig,
        check_decoder_precision,
        checkpoint_fingerprint,
        fit_priors,
        generate_configurations,
        prior_provenance,
        run_generation,
        training_latents,
        write_generated,
    )
    from vae.checkpoint import CheckpointError, load_model
    from vae.priors import GammaInterpolationWarning, load_prior

    cfg = GenerateConfig(
        priors=tuple(priors), n=args.n, gammas=tuple(args.gamma) if args.gamma else None,
        seed=args.seed, buffer_alpha=args.buffer_alpha, buffer_smudge=args.buffer_smudge,
        gmm_components=args.gmm_components, flow_epochs=args.flow_epochs,
        reject_unphysical=args.reject_unphysical, overlap=args.overlap,
        max_draw_factor=args.max_draw_factor, relax_sweeps=args.relax_sweeps,
        n_boot=args.n_boot, threads=args.threads, placement=args.placement,
        decoder_precision=args.decoder_precision)
    progress = show_progress(args)
    with thread_limits(args.threads, torch=True), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GammaInterpolationWarning)
        trained = load_model(ck)
        check_outputs(files, overwrite=True, inputs=[  # generation re-reads its training data
            ("training data of --checkpoint", f) for f in trained.info.files])
        try:
            trained.require_distance("generation")
        except CheckpointError as exc:
            raise UserError(f"--checkpoint: {ck}: {exc}") from None
        try:
            check_decoder_precision(trained, args.decoder_precision)
        except UserError as exc:
            raise UserError(f"--decoder-precision: {exc}") from None
        n_p, n_g = trained.info.n_particles, len(args.gamma or trained.info.gammas)
        check_memory(4 * 8 * n_g * args.n * (n_p * n_p + 4 * n_p), f"--n-samples {args.n}")
        draws = n_g * len(priors) * args.n * (args.max_draw_factor if args.reject_unphysical
                                              else 1)
        check_work(draws * n_p * n_p * 100, 1e9, "--n-samples/--max-draw-factor")
        check_work(draws * n_p * n_p * args.relax_sweeps, 1e9, "--relax-sweeps")
        check_memory(32 * args.n_boot * n_g * len(priors), f"--n-boot {args.n_boot}")
        if not args.checkpoint:
            announce_checkpoint(PROG, ck)
        ck_fp = checkpoint_fingerprint(ck)
        latents = None
        if args.load_prior:
            prior = load_prior(args.load_prior)
            if args.prior and prior.name != priors[0]:
                raise UserError(f"--load-prior: {args.load_prior} holds a {prior.name!r} "
                                f"prior, not {priors[0]!r}")
            fp = prior.provenance.get("checkpoint_fingerprint")
            if fp is not None and fp != ck_fp:
                raise UserError(f"--load-prior: {args.load_prior} was fitted for another "
                                f"checkpoint (fingerprint {fp}, this one {ck_fp})")
            if prior.latent_dim != trained.model.latent_dim:
                raise UserError(f"--load-prior: latent dimension {prior.latent_dim} != the "
                                f"model's {trained.model.latent_dim}")
            fitted = {prior.name: prior}
            outputs = [(prior.name, path, xyz) for _, path, xyz in outputs]
            cfg = cfg.replace(priors=(prior.name,))
        else:
            latents = training_latents(trained)
            fitted = fit_priors(priors, latents, cfg, progress=progress,
                                provenance=prior_provenance(ck, trained, ck_fp))
            if args.save_prior:
                fitted[priors[0]].save(args.save_prior, overwrite=args.overwrite)
        gammas = list(args.gamma) if args.gamma else list(trained.info.gammas)
        for prior in fitted.values():  # refuse unseen gammas before generating anything
            for g in gammas:
                prior.check_gamma(g)
        potential = latents.potential if latents is not None else _potential(trained)
        attrs = {"checkpoint": str(ck), "checkpoint_fingerprint": ck_fp,
                 "data_fingerprint": trained.info.fingerprint, "model_epoch": int(trained.epoch),
                 "vae_config": trained.config.to_json(),
                 "potential": "none" if potential is None else potential.spec,
                 "potential_cutoff": "none" if potential is None or potential.cutoff is None
                 else potential.cutoff,
                 "command": "generate " + " ".join(sys.argv[1:] if argv is None else argv)}
        for name, path, xyz in outputs:
            prior = fitted[name]
            sets = [generate_configurations(
                trained, prior, args.n, g, seed=args.seed, potential=potential,
                overlap=args.overlap, reject_unphysical=args.reject_unphysical,
                max_draw_factor=args.max_draw_factor, placement=args.placement,
                decoder_precision=args.decoder_precision, progress=progress)
                for g in gammas]
            extra = {"prior_file": args.load_prior} if args.load_prior else {}
            write_generated(path, sets, attrs={**attrs, **extra}, xyz=xyz,
                            overwrite=args.overwrite)
            n_all = sum(len(s) for s in sets)
            drawn = sum(s.n_drawn for s in sets)
            unph = sum(int(s.unphysical.sum()) for s in sets) / max(n_all, 1)
            ovl = sum(int(s.overlap.sum()) for s in sets) / max(n_all, 1)
            outs = sum(int(s.outside.sum()) for s in sets) / max(n_all, 1)
            secs = sum(s.generation_seconds for s in sets)
            rate = drawn / secs if secs > 0 else float("inf")
            rej = f", {drawn - n_all} rejected" if args.reject_unphysical else ""
            print(f"{PROG}: {path}: {n_all} configurations (prior {name}, gamma "
                  f"{', '.join(f'{g:g}' for g in gammas)}, seed {args.seed}){rej}; "
                  f"unphysical {unph:.1%} (overlap < {args.overlap:g} sigma {ovl:.1%}, "
                  f"outside the box {outs:.1%}); {rate:,.0f} configurations/s"
                  + (f"; xyz {xyz}" if xyz else ""))
        if report_dir is not None:
            summary = run_generation(ck, report_dir, cfg, progress=progress,
                                     overwrite=args.overwrite, priors=fitted,
                                     trained=trained, latents=latents)
            print(summary["table"])
            for gk, v in summary["targets"]["per_gamma"].items():
                print(f"gamma {gk}: best prior {v['best_prior']}, energy W1/floor "
                      f"{v['best_ratio']:.3g}")
            sp = summary["speed"]
            print(f"speed: {sp['generation_rate_per_s']:,.0f} generated/s vs "
                  f"{sp['sampler_rate_per_s']:,.1f} sampled/s = {sp['ratio']:.3g}x; "
                  f"report {report_dir / 'generate.md'}")
    seen: set[str] = set()
    for w in caught:
        if issubclass(w.category, GammaInterpolationWarning):
            if str(w.message) not in seen:
                sys.stderr.write(f"{PROG}: warning: {w.message}\n")
            seen.add(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return 0


def _potential(trained):
    """The training potential from the data files (None if unreadable)."""
    from mcsim.io import DatasetError
    from pipelines.generate import sim_configs

    try:
        sims = sim_configs(list(trained.info.files))
    except DatasetError:
        return None
    return next(iter(sims.values())).potential if sims else None


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    return run_cli(_main, PROG, argv)


if __name__ == "__main__":
    raise SystemExit(main())
