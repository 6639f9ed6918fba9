"""``train-vae``: train a VAE on ljvae dataset files, analyse its latent space, or sweep.

Examples::

    train-vae --data g0.1.h5 g0.4.h5 g0.7.h5 g1.0.h5 --out runs/default
    train-vae --data study.h5 --out runs/study --arch study          # the study's network
    train-vae --data study.h5 --out runs/default --resume            # after an interruption
    train-vae --data study.h5 --out runs/fc --representation coords --arch fc
    train-vae --data study.h5 --out runs/grid --representation grid
    train-vae --data study.h5 --out runs/sweep --latent-dim 10 20 40 --lambda 1e-4 3.5e-4 1e-3
    train-vae --data study.h5 --out runs/demo --quick                # small, fast run

Several values of ``--latent-dim`` and/or ``--lambda`` (``--beta``) run a sweep: one run
per combination in ``<out>/ld<D>_w<weight>/`` plus ``sweep.csv`` and ``sweep.png``.
A single run writes checkpoints, history, loss curve and test metrics to ``<out>`` and
the latent analysis (PCA, t-SNE, KL ranking, traversals, origin, gamma probe) to
``<out>/analysis`` (skip with ``--no-analysis``).

Bad input (missing or corrupt files, mixed N, NaN, invalid options) gives a one-line
error and exit code 2 before anything is written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mcsim.clitools import (
    DEFAULT_THREADS,
    ArgumentParser,
    UserError,
    add_progress_flags,
    check_outputs,
    clamp_threads,
    flag_errors,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    read_settings,
    read_text,
    removed_on_error,
    run_cli,
    show_progress,
)
from mcsim.shared import thread_limits
from vae.config import (
    ARCHS,
    DEFAULT_ARCH,
    ENERGY_MODES,
    LR_SCHEDULES,
    REPRESENTATIONS,
    SCALINGS,
    SELECTIONS,
    SORT_KEYS,
    RunConfig,
)
from vae.guard import check_model_memory

__all__ = ["build_parser", "config_from_args", "main"]

QUICK_EPOCHS = 3
QUICK_PER_GAMMA = 200


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="train-vae",
        description="Train a variational autoencoder on ljvae Monte Carlo datasets.",
        epilog="Defaults reproduce the study's data handling (corner sort, L*sqrt(2) "
               "scaling, lambda = 3.5e-4, Adam 1e-3, batch 128) with the cheaper "
               "default pair-decoder architecture; --arch study selects the study's network.")
    io = p.add_argument_group("input and output")
    io.add_argument("--data", nargs="+", required=True, metavar="FILE",
                    help="ljvae dataset files (HDF5), concatenated")
    io.add_argument("--out", required=True, metavar="DIR", help="run directory")
    io.add_argument("--config", metavar="FILE",
                    help="start from a saved config.json (or a TOML/JSON file of the same "
                    "sections); options given here override it")
    io.add_argument("--resume", action="store_true",
                    help="continue an interrupted run in --out from last.pt")
    io.add_argument("--overwrite", action="store_true",
                    help="replace the contents of a non-empty --out")
    io.add_argument("--quick", action="store_true",
                    help=f"small demo run: {QUICK_PER_GAMMA} configurations per gamma, "
                         f"{QUICK_EPOCHS} epochs (unless given), small t-SNE")
    io.add_argument("--no-analysis", action="store_true", help="skip the latent analysis")
    add_progress_flags(io)
    d = p.add_argument_group("data representation")
    d.add_argument("--representation", choices=REPRESENTATIONS,
                   help="distance matrices (default), coordinates, occupancy grids")
    d.add_argument("--sort", choices=SORT_KEYS,
                   help="particle order (default corner: x^2 + y^2, the study's)")
    d.add_argument("--scaling", choices=SCALINGS,
                   help="length unit (default study: L*sqrt(2))")
    d.add_argument("--grid-cell", type=positive_float, metavar="SIGMA",
                   help="occupancy-grid cell side (default 0.5)")
    d.add_argument("--val-fraction", type=positive_float, help="default 0.1")
    d.add_argument("--test-fraction", type=positive_float, help="default 0.2")
    d.add_argument("--split-seed", type=nonneg_int, help="seed of the split (default 0)")
    d.add_argument("--max-per-gamma", type=positive_int, metavar="M",
                   help="use at most M configurations per gamma")
    m = p.add_argument_group("model and loss")
    m.add_argument("--arch", choices=ARCHS,
                   help="pair (default for distance matrices), conv (default for grids), "
                        "study (the study's network), fc (default for coordinates)")
    m.add_argument("--latent-dim", type=positive_int, nargs="+", metavar="D",
                   help="latent dimension (default 40); several values run a sweep")
    m.add_argument("--channels", type=positive_int, nargs="+",
                   help="conv channels per level (default 32 64)")
    m.add_argument("--patch", type=positive_int,
                   help="patch side of the first conv layer (default 3; 2 for grids)")
    m.add_argument("--hidden", type=positive_int, nargs="+",
                   help="fc hidden widths; pair: MLP-encoder widths, the last = decoder trunk "
                        "(default 1024 512)")
    m.add_argument("--embed-dim", type=positive_int, metavar="K",
                   help="pair: size of a particle embedding (default 16)")
    m.add_argument("--pair-hidden", type=positive_int, nargs="+", metavar="H",
                   help="pair: hidden widths of the pair MLP (default 32 32)")
    m.add_argument("--encoder", choices=("conv", "mlp"),
                   help="pair: conv encoder (default) or MLP on the upper triangle")
    w = m.add_mutually_exclusive_group()
    w.add_argument("--lambda", dest="lam", type=nonneg_float, nargs="+", metavar="L",
                   help="loss = recon + L * KL (default 3.5e-4); several values run a sweep")
    w.add_argument("--beta", type=nonneg_float, nargs="+", metavar="B",
                   help="loss = (1 - B) recon + B * KL, B in [0, 1]")
    m.add_argument("--kl-warmup", type=nonneg_int, metavar="EPOCHS",
                   help="ramp the KL weight up linearly over this many epochs (default 0)")
    m.add_argument("--decoder-gamma", action="store_true",
                   help="coord: the decoder also takes the field gamma")
    m.add_argument("--overlap-weight", type=nonneg_float, metavar="W",
                   help="add W * sum relu(r0 - r_ij)^2 of the decoded matrix (default 0)")
    m.add_argument("--overlap-radius", type=positive_float, metavar="R0",
                   help="r0 of the overlap penalty, sigma (default 0.95)")
    m.add_argument("--chamfer-weight", type=nonneg_float, metavar="W",
                   help="add W * Chamfer distance of sorted distance rows (default 0)")
    m.add_argument("--energy-weight", type=nonneg_float, metavar="W",
                   help="add W * the LJ energy term of the decoded configuration "
                        "(default 0)")
    m.add_argument("--energy-mode", choices=ENERGY_MODES,
                   help="match: robust squared error of U_pair/(N kT) against the "
                        "true configuration's (default); particle: the same per "
                        "particle; boltzmann: U_pair/(N kT)")
    m.add_argument("--energy-clip", type=positive_float, metavar="R",
                   help="LJ continued linearly below R sigma in the energy term "
                        "(default 0.9)")
    m.add_argument("--energy-kt", type=positive_float, metavar="KT",
                   help="kT of the data in the energy term, epsilon (default 0.75)")
    m.add_argument("--gravity-weight", type=nonneg_float, metavar="W",
                   help="coord, pair2d: add W * the robust squared error of the gravitational "
                        "energy above the lowest particle, decoded positions aligned to "
                        "the true ones, over N kT (default 0)")
    m.add_argument("--pr-weight", type=nonneg_float, metavar="W",
                   help="add W * the W1 (sigma) between the decoded and true pair distances "
                        "of each batch, per gamma (default 0)")
    m.add_argument("--energy-dist-weight", type=nonneg_float, metavar="W",
                   help="add W * the W1 (epsilon) between the decoded and true pair energies "
                        "per particle of each batch, per gamma (default 0)")
    m.add_argument("--box-weight", type=nonneg_float, metavar="W",
                   help="coord, pair2d: add W * the squared distance (sigma^2) by which the "
                        "decoded positions, aligned to the true ones, leave the box "
                        "(default 0)")
    m.add_argument("--height-weight", type=nonneg_float, metavar="W",
                   help="coord, pair2d: add W * the W1 (sigma) between the decoded (aligned) "
                        "and true heights above the lowest particle of each batch, per "
                        "gamma (default 0)")
    m.add_argument("--placed-height-weight", type=nonneg_float, metavar="W",
                   help="coord, pair2d: add W * the W1 (sigma) between the box-frame heights "
                        "of the decoded shapes put in the box by the thermal placement and "
                        "the true heights of each batch, per gamma (default 0)")
    m.add_argument("--thermal-profile-weight", type=nonneg_float, metavar="W",
                   help="coord, pair2d: add W * the mean squared difference (sigma^2) between "
                        "the decoded and true shapes' sorted heights averaged over "
                        "orientations with the thermal placement's weights (default 0)")
    m.add_argument("--match-slots", action="store_true",
                   help="coord, pair2d: compare each decoded particle with the true one it "
                        "is matched to (rigid alignment + optimal assignment), not slot by "
                        "slot, in the optimised reconstruction error and the terms that pair "
                        "particles")
    m.add_argument("--placed-height-draws", type=positive_int, metavar="K",
                   help="placements per shape of that term, their W1 averaged (default 1)")
    m.add_argument("--denoise", type=nonneg_float, metavar="SIGMA",
                   help="denoising: displace input positions by N(0, SIGMA^2) per axis "
                        "(default 0)")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=positive_int, help="maximum epochs (default 100)")
    t.add_argument("--batch-size", type=positive_int, help="default 128")
    t.add_argument("--lr", type=positive_float, help="Adam learning rate (default 1e-3)")
    t.add_argument("--patience", type=nonneg_int,
                   help="early-stopping patience in epochs, 0 = off (default 10)")
    t.add_argument("--lr-schedule", choices=LR_SCHEDULES, help="default none")
    t.add_argument("--grad-clip", type=nonneg_float, metavar="NORM",
                   help="clip each step's gradient to this global L2 norm (default 0: off)")
    t.add_argument("--ema", type=nonneg_float, metavar="DECAY",
                   help="validate, keep and return an exponential moving average of the "
                        "weights with this decay per step, in [0, 1) (default 0: off)")
    t.add_argument("--select", choices=SELECTIONS,
                   help="what keeps best.pt and stops early: the validation loss, or the "
                        "physics score of thermally placed decodings of the validation set "
                        "(energy, p(r), rho(y) W1; vae.selection) (default loss)")
    t.add_argument("--mirror", type=nonneg_float, metavar="P",
                   help="data augmentation: replace each training configuration by its "
                        "mirror image x -> L - x with probability P per step, in [0, 1] "
                        "(default 0: off)")
    t.add_argument("--seed", type=nonneg_int, help="training seed (default 0)")
    t.add_argument("--threads", type=positive_int, default=DEFAULT_THREADS,
                   help=f"CPU threads for torch, numba and BLAS (default {DEFAULT_THREADS})")
    t.add_argument("--device", choices=("cpu", "cuda"), help="default cpu")
    return p


def config_from_args(args: argparse.Namespace) -> tuple[RunConfig, list[int], list[float]]:
    """The run config, and the latent dimensions and KL weights to sweep over."""
    if args.config:
        base = RunConfig.from_dict(read_settings(args.config, "--config")).to_dict()
    elif args.resume and (Path(args.out) / "config.json").is_file():
        path = Path(args.out) / "config.json"
        base = json.loads(RunConfig.from_json(read_text(path, "--resume")).to_json())
    else:
        base = RunConfig().to_dict()
    sets = {
        ("data", "representation"): args.representation, ("data", "sort"): args.sort,
        ("data", "scaling"): args.scaling, ("data", "grid_cell"): args.grid_cell,
        ("data", "val_fraction"): args.val_fraction,
        ("data", "test_fraction"): args.test_fraction,
        ("data", "split_seed"): args.split_seed, ("data", "max_per_gamma"): args.max_per_gamma,
        ("model", "arch"): args.arch, ("model", "channels"): args.channels,
        ("model", "patch"): args.patch,
        ("model", "hidden"): args.hidden, ("model", "embed_dim"): args.embed_dim,
        ("model", "pair_hidden"): args.pair_hidden, ("model", "encoder"): args.encoder,
        ("loss", "kl_warmup_epochs"): args.kl_warmup,
        ("model", "decoder_gamma"): args.decoder_gamma or None,
        ("loss", "overlap_weight"): args.overlap_weight,
        ("loss", "overlap_radius"): args.overlap_radius,
        ("loss", "chamfer_weight"): args.chamfer_weight, ("loss", "denoise"): args.denoise,
        ("loss", "energy_weight"): args.energy_weight,
        ("loss", "energy_mode"): args.energy_mode,
        ("loss", "energy_clip"): args.energy_clip, ("loss", "energy_kt"): args.energy_kt,
        ("loss", "gravity_weight"): args.gravity_weight,
        ("loss", "pr_weight"): args.pr_weight, ("loss", "height_weight"): args.height_weight,
        ("loss", "energy_dist_weight"): args.energy_dist_weight,
        ("loss", "box_weight"): args.box_weight,
        ("loss", "placed_height_weight"): args.placed_height_weight,
        ("loss", "placed_height_draws"): args.placed_height_draws,
        ("loss", "thermal_profile_weight"): args.thermal_profile_weight,
        ("loss", "match_slots"): args.match_slots or None,
        ("train", "epochs"): args.epochs, ("train", "batch_size"): args.batch_size,
        ("train", "lr"): args.lr, ("train", "patience"): args.patience,
        ("train", "lr_schedule"): args.lr_schedule, ("train", "grad_clip"): args.grad_clip,
        ("train", "ema"): args.ema, ("train", "select"): args.select,
        ("train", "mirror"): args.mirror,
        ("train", "seed"): args.seed,
        ("train", "device"): args.device,
    }
    for (sec, key), v in sets.items():
        if v is not None:
            base[sec][key] = v
    if args.arch is None and not args.config and not args.resume:
        # no architecture named: the representation's default (pair, fc or conv)
        base["model"]["arch"] = DEFAULT_ARCH[base["data"]["representation"]]
    if args.beta is not None:
        base["loss"]["form"] = "beta"
    elif args.lam is not None:
        base["loss"]["form"] = "lambda"
    if args.quick:
        if args.max_per_gamma is None:
            base["data"]["max_per_gamma"] = QUICK_PER_GAMMA
        if args.epochs is None:
            base["train"]["epochs"] = QUICK_EPOCHS
    latent_dims = args.latent_dim or [base["model"]["latent_dim"]]
    weights = args.beta or args.lam or [base["loss"]["weight"]]
    base["model"]["latent_dim"] = latent_dims[0]
    base["loss"]["weight"] = weights[0]
    cfg = RunConfig.from_dict(base)
    for w in weights:  # validate every sweep value, not only the first
        RunConfig.from_dict({**base, "loss": {**base["loss"], "weight": w}})
    return cfg, list(dict.fromkeys(latent_dims)), list(dict.fromkeys(weights))


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg, latent_dims, weights = config_from_args(args)
    from vae.training import RunDirError

    try:
        with thread_limits(clamp_threads(args.threads, "train-vae"), torch=True):
            return _run(args, cfg, latent_dims, weights)
    except RunDirError as exc:  # the library says what is wrong; the flag is ours
        raise UserError(f"--{exc.option}: {exc}") from None


def _run(args: argparse.Namespace, cfg: RunConfig, latent_dims: list[int],
         weights: list[float]) -> int:
    from vae.training import RUN_FILES, check_run_dir, prepare_data, resolve_device, set_seed

    try:
        resolve_device(cfg.train.device)
    except UserError as exc:  # the library names the setting; the user gave --device
        raise UserError(f"--device{str(exc).removeprefix('train.device')}") from None
    out = Path(args.out)
    check_outputs([("--out", out / n) for n in RUN_FILES], dirs=[("--out", out)],
                  inputs=[("--config", args.config), *(("--data", f) for f in args.data)],
                  overwrite=True)  # existing run files: check_run_dir decides
    sweep = len(latent_dims) > 1 or len(weights) > 1
    if not sweep:
        check_run_dir(out, args.resume, args.overwrite)
    elif out.is_dir() and any(out.iterdir()) and not (args.resume or args.overwrite):
        raise UserError(f"--out: {out} is not empty (use --resume or --overwrite)")
    with flag_errors("--data"):
        data = prepare_data(cfg, args.data)
    d = cfg.to_dict()
    for ld in latent_dims:  # every model of a sweep, before training the first
        check_model_memory(RunConfig.from_dict({**d, "model": {**d["model"], "latent_dim": ld}}),
                           data.info.n_particles, data.info.box)
    set_seed(cfg.train.seed)
    progress = show_progress(args)

    if sweep:
        from vae.sweep import run_sweep, sweep_trends

        with removed_on_error(out):
            rows = run_sweep(cfg, data, out, latent_dims, weights, resume=args.resume,
                             overwrite=args.overwrite, progress=progress)
        wname = "lambda" if cfg.loss.form == "lambda" else "beta"
        print(f"{'latent':>6} {wname:>9} {'test recon':>11} {'KL/dim':>9} {'active':>6}")
        for r in rows:
            print(f"{r['latent_dim']:>6} {r['weight']:>9.3g} {r['test_recon']:>11.4g} "
                  f"{r['test_kl_per_dim']:>9.3g} {r['active_dims']:>6}")
        for k, v in sweep_trends(rows).items():
            print(f"{k}: {v}")
        print(f"sweep table and figure: {out / 'sweep.csv'}, {out / 'sweep.png'}")
        return 0

    from vae.training import train

    with removed_on_error(out):  # a fresh run that fails leaves no folder behind
        res = train(cfg, data, out, resume=args.resume, overwrite=args.overwrite,
                    progress=progress)
    mt = res.metrics
    print(f"best epoch {res.best_epoch} of {res.epochs_run}"
          f"{' (early stop)' if res.stopped_early else ''}; "
          f"test {cfg.recon} {mt['test_recon']:.4g}, test KL/dim {mt['test_kl']:.3g}, "
          f"{mt['mean_epoch_time_s']:.2f} s/epoch")
    if not args.no_analysis:
        from vae.data import output_max
        from vae.latent import analyze

        summary = analyze(res.model, data.x, data.gamma, data.split,
                          out / "analysis", representation=cfg.data.representation,
                          vmax=output_max(cfg.data, data.info.box), seed=cfg.train.seed,
                          tsne_points=300 if args.quick else 2000)
        r = summary["pca_explained_variance_ratio"]
        print(f"latent: {len(summary['active_dimensions'])} of {summary['latent_dim']} "
              f"dimensions active; PC1+PC2 explain {100 * sum(r[:2]):.1f} %; "
              f"gamma probe test R^2 = {summary['probe']['r2_test']:.3f}")
        print(f"figures: {out / 'analysis'}")
    print(f"checkpoints: {out / 'best.pt'}, {out / 'last.pt'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    return run_cli(_main, "train-vae", argv)


if __name__ == "__main__":
    raise SystemExit(main())
