"""``score``: anomaly scores and labels for every configuration of unlabelled data.

Examples::

    score --checkpoint runs/default/best.pt data.h5 --out scores.h5
    score --checkpoint runs/default/best.pt positions.npy --box 12 --fpr 0.05
    score data.h5 --iwae-k 128 --overwrite       # the main model of a run under ./runs

The detector (:class:`pipelines.anomaly.detector.VAEDetector`) fits every score model on
the model's training split and fixes each score's threshold on its validation split at
``--fpr`` false positives; then every configuration of DATA gets every score and, per
score, a label (1 = anomalous: score > threshold).

DATA is an ljvae dataset file, or an ``.npy`` array (M, N, 2) of positions in sigma
with ``--box`` giving their box side. N must be the model's; a different box is
converted by rescaling every position by L_model / L_file (a note says so).

Output (HDF5, written under a temporary name and renamed; never replaced without
``--overwrite``): ``scores/<score>`` (M,) float64 and ``labels/<score>`` (M,) int8 per
score, in the order of DATA; root attributes ``format`` = ``ljvae-scores``, ``checkpoint``,
``data``, ``fpr``, ``thresholds``, ``val_fpr``, ``score_definitions``, ``config`` (JSON
strings where structured), ``box_data``, ``box_model``, ``scale_factor``, ``note``; each
dataset carries its ``threshold``, ``label`` and ``description``.

Bad input gives one line ``score: error: ...`` and exit code 2, and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mcsim.clitools import (
    DEFAULT_THREADS,
    ArgumentParser,
    UserError,
    add_progress_flags,
    atomic_output,
    check_memory,
    check_outputs,
    clamp_threads,
    hidden_alias,
    nonneg_int,
    positive_float,
    positive_int,
    run_cli,
    show_progress,
)
from pipelines.anomaly.config import AnomalyConfig

__all__ = ["FORMAT", "build_parser", "main", "write_scores", "read_scores"]

#: the ``format`` attribute of a scores file
FORMAT = "ljvae-scores"
FORMAT_VERSION = 1


def _fraction(text: str) -> float:
    v = positive_float(text)
    if v >= 0.5:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate in (0, 0.5)")
    return v


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="score",
        description="Anomaly scores and labels for every configuration of your data, from "
                    "a trained VAE and baselines fitted on its training split; thresholds "
                    "at --fpr false positives on its validation split.")
    p.add_argument("data", metavar="DATA",
                   help="ljvae dataset file, or .npy positions (M, N, 2) in sigma (with --box)")
    io = p.add_argument_group("input and output")
    io.add_argument("--checkpoint", metavar="PT",
                    help="trained model (default: the main model of the newest run under "
                         "./runs, printed)")
    io.add_argument("--out", metavar="FILE",
                    help="output HDF5 file (default: DATA's name + _scores.h5, beside it)")
    io.add_argument("--box", type=positive_float, metavar="L",
                    help="box side of .npy positions, sigma (dataset files carry their own)")
    io.add_argument("--data", dest="train_data", nargs="+", metavar="FILE",
                    help="the model's training data files (default: as recorded in the "
                         "checkpoint)")
    hidden_alias(io, "--train-data", dest="train_data", nargs="+")
    io.add_argument("--config", metavar="FILE",
                    help="TOML or JSON file of anomaly-test settings (fit_max, iwae_k, ...)")
    io.add_argument("--overwrite", action="store_true", help="replace an existing output")
    io.add_argument("--threads", type=positive_int, default=DEFAULT_THREADS,
                    help=f"CPU threads (torch, numba, BLAS; default {DEFAULT_THREADS})")
    add_progress_flags(io)
    m = p.add_argument_group("scores")
    m.add_argument("--fpr", type=_fraction,
                   help="false-positive rate on validation data of every threshold "
                        "(default 0.01)")
    m.add_argument("--iwae-k", type=positive_int, metavar="K",
                   help="importance samples of the iwae score (default 32)")
    m.add_argument("--fit-max", type=positive_int,
                   help="training configurations fitting the score models (default 5000)")
    m.add_argument("--seed", type=nonneg_int, help="master seed (default 0)")
    return p


_FIELDS = {"fpr": "fpr", "iwae_k": "iwae_k", "fit_max": "fit_max", "seed": "seed"}


def _config(args: argparse.Namespace) -> AnomalyConfig:
    """Defaults < ``--config`` file < command-line options (as anomaly-test)."""
    from pipelines.anomaly.cli import config_from_args

    return config_from_args(args, _FIELDS, AnomalyConfig().to_dict())


def write_scores(path: Path, scores: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                 attrs: dict, thresholds: dict[str, float]) -> None:
    """Write one scores file (see the module docstring) at ``path`` (a temporary name)."""
    import h5py

    from pipelines.anomaly.scores import SCORE_INFO

    with h5py.File(path, "w") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        gs, gl = f.create_group("scores"), f.create_group("labels")
        for k, v in scores.items():
            d = gs.create_dataset(k, data=np.asarray(v, dtype=np.float64))
            d.attrs.update({"threshold": thresholds[k], "label": SCORE_INFO[k].label,
                            "description": SCORE_INFO[k].description,
                            "meaning": "higher = more anomalous"})
            d = gl.create_dataset(k, data=np.asarray(labels[k], dtype=np.int8))
            d.attrs.update({"threshold": thresholds[k],
                            "meaning": "1 = anomalous (score > threshold), 0 = in "
                                       "distribution"})


def read_scores(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                            dict]:
    """(scores, labels, root attributes) of a scores file."""
    import h5py

    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise UserError(f"{path}: not an ljvae scores file")
        scores = {k: f["scores"][k][()] for k in f["scores"]}
        labels = {k: f["labels"][k][()] for k in f["labels"]}
        return scores, labels, dict(f.attrs)


def _main(argv: list[str] | None = None) -> int:
    from mcsim.shared import thread_limits
    from pipelines.anomaly.user_sets import is_npy, load_positions
    from vae.checkpoint import announce_checkpoint, default_checkpoint, load_model

    args = build_parser().parse_args(argv)
    cfg = _config(args)
    data = Path(args.data)
    if not data.is_file():
        raise UserError(f"DATA: {data}: no such file")
    npy = is_npy(data)
    if npy and args.box is None:
        raise UserError(f"DATA: {data} is an .npy array of positions; give the side of its "
                        "box with --box L")
    for f in args.train_data or ():
        if not Path(f).is_file():
            raise UserError(f"--data: {f}: no such file")
    ckpt = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
    if not ckpt.is_file():
        raise UserError(f"--checkpoint: {ckpt}: no such file")
    out = Path(args.out) if args.out else data.with_name(f"{data.stem}_scores.h5")
    check_outputs([("--out", out)],
                  inputs=[("DATA", data), ("--checkpoint", ckpt), ("--config", args.config),
                          *(("--data", f) for f in args.train_data or ())],
                  overwrite=args.overwrite)
    if not args.checkpoint:
        announce_checkpoint("score", ckpt)
    if not args.out:
        sys.stderr.write(f"score: writing {out}\n")
    n_threads = clamp_threads(args.threads, "score")
    progress = show_progress(args)
    model = load_model(ckpt)
    n_part, box = model.info.n_particles, model.info.box
    loaded = load_positions(data, n_particles=n_part, model_box=box,
                            box=args.box if npy else None, what="DATA")
    m = len(loaded.positions)
    per_batch = 1000 * 4 * int(np.prod(model.input_shape)) * (2 + cfg.iwae_k)
    check_memory(m * (n_part * 2 * 8 + 8 * 2 * 12) + per_batch, f"DATA ({m} configurations)")
    if loaded.note:
        sys.stderr.write(f"score: note: {loaded.note}\n")
    from mcsim.io import package_version
    from pipelines.anomaly.detector import VAEDetector
    from pipelines.anomaly.report import _SCORE_DEFS

    with thread_limits(n_threads, torch=True):
        det = VAEDetector(ckpt, config=cfg).fit(args.train_data, progress=progress)
        scores = det.score_all(loaded.positions, progress=progress)
    labels = det.labels(scores)
    attrs = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "ljvae_version": package_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "checkpoint": str(ckpt), "data": str(data), "n_configurations": m,
        "n_particles": n_part, "box_model": box, "box_data": loaded.box,
        "scale_factor": loaded.factor, "note": loaded.note, "fpr": det.fpr,
        "scores": json.dumps(det.scores_), "thresholds": json.dumps(det.thresholds_),
        "val_fpr": json.dumps(det.val_fpr_), "n_val": det.n_val_, "n_fit": det.n_fit_,
        "train_files": json.dumps(det.train_files_),
        "score_definitions": json.dumps({k: _SCORE_DEFS[k] for k in det.scores_}),
        "config": json.dumps(cfg.to_dict()),
    }
    with atomic_output(out, overwrite=args.overwrite) as tmp:
        write_scores(tmp, scores, labels, attrs, det.thresholds_)
    width = max(len(k) for k in det.scores_)
    print(f"{m} configurations scored; flagged at {100 * det.fpr:g} % false positives on "
          f"the validation split ({det.n_val_}):")
    for k in det.scores_:
        print(f"  {k:<{width}}  threshold {det.thresholds_[k]:.6g}  flagged "
              f"{100 * labels[k].mean():.1f} %")
    print(f"scores: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    return run_cli(_main, "score", argv)


if __name__ == "__main__":
    raise SystemExit(main())
