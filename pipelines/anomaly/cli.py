"""``anomaly-test``: score a trained VAE (and baselines) on anomaly sets, with ROC AUCs.

Examples::

    anomaly-test --corrupt 4                       # latest runs/**/best.pt, all sets
    anomaly-test --checkpoint runs/default/best.pt --sets uniform corrupted --n-samples 1000
    anomaly-test --unseen-gamma 2 3 5 --sets unseen-gamma
    anomaly-test --blackout 10@0 10@8 30@0 --mask-fraction 0.1 0.5 --sets blackout random-mask
    anomaly-test --config anomaly.toml --out report/anomaly --overwrite
    anomaly-test --set hot=hot.h5 mine=positions.npy --box 12   # your data as more rows

Defaults: the checkpoint is the most recently modified ``best.pt`` under ``./runs``;
results go to ``<run>/anomaly/`` (``anomaly.json``, ``anomaly.md``, ``scores.npz``,
figures) and generated MC sets to ``<run>/anomaly_data/``, where later runs reuse them.
An existing result is never replaced without ``--overwrite``. A TOML (or JSON) file
given with ``--config`` sets any :class:`pipelines.anomaly.AnomalyConfig` field (flat,
or under an ``[anomaly]`` table); options on the command line override it.

``--set NAME=FILE`` adds a set (a table row) of your own configurations: an ljvae dataset
file, or an ``.npy`` array (M, N, 2) of positions in sigma with ``--box`` giving their box
side. N must be the model's; a different box is converted by rescaling every position by
L_model / L_file (a warning says so: the set is then judged at the model's density).

Bad input gives one line ``anomaly-test: error: ...`` and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
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
    nonneg_int,
    positive_float,
    positive_int,
    read_settings,
    removed_on_error,
    run_cli,
    show_progress,
)
from pipelines.anomaly.config import SET_KINDS, STEP_UNITS, AnomalyConfig
from pipelines.anomaly.user_sets import UserSet, is_npy, parse_set
from vae.checkpoint import announce_checkpoint, default_checkpoint

__all__ = ["build_parser", "config_from_args", "main"]

_OUTPUTS = ("anomaly.json", "anomaly.md")


def _cutoff(text: str) -> float | str:
    if text.strip().lower() == "none":
        return "none"
    v = positive_float(text)
    return v


def _block(text: str) -> tuple[int, int]:
    """``SIZE@OFFSET`` or ``SIZExSIZE@OFFSET``."""
    try:
        size, off = text.lower().split("@")
        if "x" in size:
            a, b = size.split("x")
            if a != b:
                raise ValueError
            size = a
        return int(size), int(off)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a block SIZE@OFFSET (e.g. 10@8)") from None


def _fraction(text: str) -> float:
    v = positive_float(text)
    if v > 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction in (0, 1]")
    return v


def _user_set(text: str) -> UserSet:
    try:
        return parse_set(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=FILE") from None


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="anomaly-test",
        description="Test a trained VAE on anomalous configurations: ROC AUC with bootstrap "
                    "CIs and detection rates at 1 % false positives, for VAE scores and "
                    "for baselines that use no VAE; imputation of missing matrix entries.")
    io = p.add_argument_group("input and output")
    io.add_argument("--checkpoint", metavar="PT",
                    help="trained model (default: the main model of the newest run under "
                         "./runs: a study's train/best.pt or a train-vae run's best.pt)")
    io.add_argument("--out", metavar="DIR", help="output folder (default: <run>/anomaly)")
    io.add_argument("--data-dir", metavar="DIR",
                    help="folder of generated anomaly sets, reused across runs "
                         "(default: <run>/anomaly_data)")
    io.add_argument("--data", dest="train_data", nargs="+", metavar="FILE",
                    help="the model's training data files (default: as recorded in the "
                         "checkpoint)")
    hidden_alias(io, "--train-data", dest="train_data", nargs="+")
    io.add_argument("--config", metavar="FILE", help="TOML or JSON file of settings")
    io.add_argument("--overwrite", action="store_true", help="replace an existing result")
    io.add_argument("--threads", type=positive_int, default=DEFAULT_THREADS,
                    help=f"CPU threads (torch, numba, BLAS; default {DEFAULT_THREADS})")
    add_progress_flags(io)
    io.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    s = p.add_argument_group("anomaly sets")
    s.add_argument("--sets", nargs="+", choices=SET_KINDS, metavar="KIND",
                   help=f"kinds to run (default all: {' '.join(SET_KINDS)})")
    s.add_argument("--n-samples", dest="n", type=positive_int, metavar="N",
                   help="configurations per set (default 2000)")
    hidden_alias(s, "--n", dest="n", type=positive_int)
    s.add_argument("--unseen-gamma", type=float, nargs="+", metavar="G",
                   help="gamma values of the unseen-gamma sets (default 3)")
    s.add_argument("--sweeps", type=nonneg_int, help="MC sweeps, unseen gamma (default 2500)")
    s.add_argument("--temperature", type=positive_float, help="MC temperature (default 0.75)")
    s.add_argument("--step", dest="delta", type=positive_float, metavar="SIGMA",
                   help="MC max. displacement, sigma (default 0.2)")
    hidden_alias(s, "--delta", dest="delta", type=positive_float)
    s.add_argument("--potential", help="training pair potential: lj (default) or nm:N,M")
    s.add_argument("--cutoff", type=_cutoff, metavar="R|none",
                   help="training potential cutoff, sigma (default 3)")
    s.add_argument("--fake-potential", metavar="SPEC", help="fake potential (default nm:4,2)")
    s.add_argument("--fake-cutoff", type=_cutoff, metavar="R|none",
                   help="its cutoff (default none)")
    s.add_argument("--fake-gamma", type=float, help="its gamma (default 0.5)")
    s.add_argument("--fake-sweeps", type=nonneg_int, help="its sweeps (default 5000)")
    s.add_argument("--corrupt", type=positive_int, metavar="K",
                   help="particles displaced per corrupted configuration (default 4)")
    s.add_argument("--corrupt-step", type=positive_float, metavar="S",
                   help="largest displacement (default 0.2, in --corrupt-unit)")
    s.add_argument("--corrupt-unit", choices=STEP_UNITS,
                   help="normalised = L*sqrt(2) (default, the study's input unit) or sigma")
    s.add_argument("--blackout", type=_block, nargs="+", metavar="SIZE@OFFSET",
                   help="zeroed diagonal blocks of the sorted matrix (default 10@0 10@8 30@0)")
    s.add_argument("--mask-fraction", type=_fraction, nargs="+", metavar="F",
                   help="fractions of pairs masked at random (default 0.1 0.5)")
    s.add_argument("--set", dest="user_sets", type=_user_set, nargs="+", action="extend",
                   metavar="NAME=FILE",
                   help="your data as a set: an ljvae dataset file or an .npy array of "
                        "positions (M, N, 2), sigma (first --n of them); N must be the "
                        "model's, another box is rescaled to the model's with a warning")
    s.add_argument("--box", type=positive_float, metavar="L",
                   help="box side of the .npy positions of --set, sigma")
    m = p.add_argument_group("scores and metrics")
    m.add_argument("--n-boot", dest="bootstrap", type=nonneg_int, metavar="N",
                   help=f"bootstrap resamples (default {DEFAULT_N_BOOT})")
    hidden_alias(m, "--bootstrap", dest="bootstrap", type=nonneg_int)
    m.add_argument("--ci", type=_fraction, help="confidence level (default 0.95)")
    m.add_argument("--fpr", type=_fraction, help="false-positive rate of the thresholds "
                                                 "(default 0.01)")
    m.add_argument("--fit-max", type=positive_int,
                   help="training configurations fitting the score models (default 5000)")
    m.add_argument("--pca-components", type=positive_int, help="PCA baseline (default 10)")
    m.add_argument("--ocsvm-nu", type=_fraction, help="one-class SVM nu (default 0.05)")
    m.add_argument("--iforest-trees", type=positive_int, help="isolation forest (default 200)")
    m.add_argument("--iwae-k", type=positive_int, metavar="K",
                   help="importance samples of the -IWAE score (default 32)")
    m.add_argument("--impute-n", type=positive_int,
                   help="configurations per missing-data set for imputation (default 500)")
    m.add_argument("--edm-iters", type=positive_int, help="EDM completion iterations "
                                                          "(default 500)")
    m.add_argument("--edm-tol", type=positive_float, help="EDM completion tolerance "
                                                          "(default 1e-9)")
    m.add_argument("--seed", type=nonneg_int, help="master seed (default 0)")
    return p


_FIELDS = {  # argparse dest -> AnomalyConfig field
    "sets": "sets", "n": "n", "unseen_gamma": "unseen_gammas", "sweeps": "sweeps",
    "temperature": "temperature", "delta": "delta", "potential": "potential",
    "cutoff": "cutoff", "fake_potential": "fake_potential", "fake_cutoff": "fake_cutoff",
    "fake_gamma": "fake_gamma", "fake_sweeps": "fake_sweeps", "corrupt": "corrupt_k",
    "corrupt_step": "corrupt_step", "corrupt_unit": "corrupt_unit",
    "blackout": "blackout_blocks", "mask_fraction": "mask_fractions",
    "bootstrap": "bootstrap", "ci": "ci", "fpr": "fpr", "fit_max": "fit_max",
    "pca_components": "pca_components", "ocsvm_nu": "ocsvm_nu",
    "iforest_trees": "iforest_trees", "impute_n": "impute_n", "edm_iters": "edm_iters",
    "edm_tol": "edm_tol", "seed": "seed", "iwae_k": "iwae_k",
}


def read_config_file(path: Path) -> dict:
    """The anomaly settings of a ``--config`` file (TOML or JSON; a top-level
    ``[anomaly]`` table or the settings themselves)."""
    d = read_settings(path, "--config")
    if isinstance(d.get("anomaly"), dict):
        d = d["anomaly"]
    if not isinstance(d, dict):
        raise UserError(f"--config: {path}: must hold a table of settings")
    return d


def config_from_args(args: argparse.Namespace, fields: dict[str, str] | None = None,
                     base: dict | None = None) -> AnomalyConfig:
    """Defaults (``base``) < ``--config`` file < the command-line options ``fields``
    (dest -> AnomalyConfig field; default: every option of anomaly-test)."""
    fields = _FIELDS if fields is None else fields
    if base is None:
        base = {**AnomalyConfig().to_dict(), "bootstrap": DEFAULT_N_BOOT}  # the CLI's default
    base = dict(base)
    if args.config:
        d = read_config_file(Path(args.config))
        AnomalyConfig.from_dict({**base, **d})  # names the bad field of the file
        base.update(d)
    for dest, name in fields.items():
        v = getattr(args, dest)
        if v is not None:
            base[name] = v
    return AnomalyConfig.from_dict(base)


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    ckpt = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
    if not ckpt.is_file():
        raise UserError(f"--checkpoint: {ckpt}: no such file")
    run_dir = ckpt.parent
    out = Path(args.out) if args.out else run_dir / "anomaly"
    data_dir = Path(args.data_dir) if args.data_dir else run_dir / "anomaly_data"
    if args.train_data:
        for f in args.train_data:
            if not Path(f).is_file():
                raise UserError(f"--data: {f}: no such file")
    user_sets = _check_user_sets(args)
    check_outputs([("--out", out / n) for n in (*_OUTPUTS, "scores.npz")],
                  dirs=[("--out", out), ("--data-dir", data_dir)],
                  inputs=[("--checkpoint", ckpt), ("--config", args.config),
                          *(("--data", f) for f in args.train_data or ()),
                          *((f"--set {u.name}", u.path) for u in user_sets)],
                  overwrite=args.overwrite)
    args.threads = clamp_threads(args.threads, "anomaly-test")
    n_sets = len(cfg.sets) + len(cfg.unseen_gammas) + len(cfg.blackout_blocks)
    check_memory(8 * 16 * cfg.bootstrap * n_sets, f"--n-boot {cfg.bootstrap}")
    check_work(float(cfg.bootstrap) * n_sets * 16 * 2 * cfg.n * 20, 1e8,
               f"--n-boot {cfg.bootstrap} with --n-samples {cfg.n}")
    if not args.checkpoint:
        announce_checkpoint("anomaly-test", ckpt)
    from pipelines.anomaly import run_anomaly_test
    from pipelines.anomaly.run import TrainingDataError

    try:  # folders this run creates are removed again if it fails (not on Ctrl-C)
        with removed_on_error(data_dir), removed_on_error(out):
            summary = run_anomaly_test(ckpt, out, cfg, data_dir=data_dir,
                                       progress=show_progress(args),
                                       train_data=args.train_data, n_threads=args.threads,
                                       figures=not args.no_figures, user_sets=user_sets)
    except TrainingDataError as exc:
        raise UserError(f"{exc}; pass --data FILE ...") from None
    except KeyboardInterrupt:
        sys.stderr.write(f"\nanomaly-test: interrupted; generated anomaly sets in {data_dir} "
                         "are kept (a partial one resumes) and reused when you rerun\n")
        return 130
    print(summary["table_md"])
    if summary.get("imputation_md"):
        print()
        print("Imputation RMSE inside the mask (sigma):")
        print(summary["imputation_md"])
    for w in summary.get("warnings", []):
        print(f"note: {w}")
    print(f"report: {out / 'anomaly.md'} (JSON: {out / 'anomaly.json'}); anomaly sets in "
          f"{data_dir}")
    return 0


def _check_user_sets(args: argparse.Namespace) -> list[UserSet]:
    """The ``--set`` files, each with ``--box`` attached; refuses missing files and
    ``.npy`` arrays without ``--box`` before any work."""
    out = []
    for u in args.user_sets or ():
        if not u.path.is_file():
            raise UserError(f"--set {u.name}: {u.path}: no such file")
        npy = is_npy(u.path)
        if npy and args.box is None:
            raise UserError(f"--set {u.name}: {u.path} is an .npy array of positions; give "
                            "the side of its box with --box L")
        out.append(UserSet(u.name, u.path, args.box if npy else None))
    if args.box is not None and not any(u.box is not None for u in out):
        raise UserError("--box: only applies to .npy files given with --set")
    return out


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    return run_cli(_main, "anomaly-test", argv)


if __name__ == "__main__":
    raise SystemExit(main())
