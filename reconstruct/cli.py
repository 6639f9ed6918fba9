"""``reconstruct``: distance matrices (or a dataset) in, configurations in the box out.

Examples::

    reconstruct samples.h5 --out rec.h5 --xyz rec.xyz --plot rec.png
    reconstruct decoded.npy --symmetrize --originals test.h5 --out rec.h5 --plot rec.png
    reconstruct matrices.npy --box 10 --gamma 0.4 --variant reference --out rec.h5

Input: a ``.npy`` array of distance matrices, shape (M, N, N) or (N, N), sigma; or an
ljvae dataset, whose exact distance matrices are computed from its positions (the
original configurations then serve for the metrics and the figure). Output: an
ljvae dataset (``source = reconstruct``, every parameter in its attributes,
per-configuration diagnostics under ``extra/``), optionally extended XYZ and a PNG.
Nothing is written if anything fails; existing files are kept unless --overwrite.

The placement is thermal by default (:mod:`reconstruct.placement`): it needs gamma
and the temperature, taken from the dataset (or --originals), else from --gamma and
--temperature. Comparisons with the originals (RMSD, distance error, energy W1/JS
with bootstrap errors, rho(y)) are computed with --metrics, --plot or --originals;
otherwise only the cheap per-configuration scores (Gram quality, fit, energy).
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

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
    length,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    run_cli,
    show_progress,
)
from mcsim.io import DatasetError, read_dataset, read_npy, write_xyz
from mcsim.potentials import Potential, total_energy
from mcsim.shared import thread_limits
from reconstruct.distances import (
    DEFAULT_RTOL,
    check_distance_matrices,
    distance_matrices,
    symmetrize_distances,
)
from reconstruct.embedding import EMBED_METHODS, Embedding
from reconstruct.evaluation import evaluate_reconstruction
from reconstruct.gram import GRAM_VARIANTS
from reconstruct.pipeline import Reconstruction, reconstruct_configurations, write_reconstruction
from reconstruct.placement import DEFAULT_N_ANGLES, DEFAULT_PLACEMENT, PLACEMENTS
from reconstruct.tumbler import Tumbled

__all__ = ["main", "build_parser", "run"]

PROG = "reconstruct"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog=PROG,
        description="Rebuild 2D configurations from distance matrices: Gram matrix, "
        "top-two eigen-embedding, then a placement puts each shape in the box (thermal: "
        "drawn from its exact Boltzmann law given the shape). Never looks at the "
        "original configurations.",
    )
    p.add_argument("input", help=".npy distance matrices (M, N, N) or an ljvae dataset (.h5)")
    p.add_argument("-o", "--out", required=True, help="output dataset (.h5)")
    p.add_argument("--xyz", help="also write the configurations as extended XYZ")
    p.add_argument("--plot", help="write a PNG: originals vs reconstructions, energies, rho(y)")
    p.add_argument("--variant", choices=GRAM_VARIANTS, default="centered",
                   help="Gram matrix: classical MDS (centered) or a reference particle at "
                   "the origin (default: centered)")
    p.add_argument("--reference-index", type=nonneg_int, default=0,
                   help="reference particle of --variant reference (default 0)")
    p.add_argument("--method", choices=EMBED_METHODS, default="fast",
                   help="eigensolver: numba kernel or numpy.linalg.eigh (default fast)")
    p.add_argument("--box", type=length,
                   help="box side L in sigma (default: from the dataset, else 10)")
    p.add_argument("--placement", choices=tuple(PLACEMENTS), default=DEFAULT_PLACEMENT,
                   help="thermal: exact conditional Boltzmann law given the shape; lowest: "
                   "least gravitational energy that fits in the box; edge: the study's "
                   "tumbler, ignoring walls (default thermal)")
    p.add_argument("--n-angles", type=positive_int, default=DEFAULT_N_ANGLES,
                   help=f"angle bins of the placement (any value is exact for thermal; "
                   f"default {DEFAULT_N_ANGLES})")
    p.add_argument("--gamma", type=nonneg_float,
                   help="field strength for .npy input (default: from --originals; "
                   "without either, energies are not computed and thermal placement "
                   "is not possible)")
    p.add_argument("--temperature", type=positive_float,
                   help="k_B T in epsilon for .npy input (default: from --originals)")
    p.add_argument("--potential",
                   help="pair potential for energies: lj, nm:N,M or ideal (default: from "
                   "the dataset, else lj)")
    p.add_argument("--cutoff",
                   help="potential cutoff in sigma or 'none' (default: from the dataset, else 3)")
    p.add_argument("--originals",
                   help="for .npy input: the dataset the matrices came from (same order), "
                   "used only for metrics and the figure")
    p.add_argument("--symmetrize", action="store_true",
                   help="replace D by (D + D^T)/2, clip negatives and zero the diagonal "
                   "first (decoded matrices)")
    p.add_argument("--rtol", type=positive_float, default=DEFAULT_RTOL,
                   help=f"relative tolerance of the distance-matrix check (default "
                   f"{DEFAULT_RTOL:g})")
    p.add_argument("--metrics", action="store_true",
                   help="compare with the original configurations (RMSD, distance error, "
                   "energy W1/JS with bootstrap errors, rho(y)); implied by --plot and "
                   "--originals")
    p.add_argument("--n-plot", type=positive_int, default=4,
                   help="configurations shown in the figure (default 4)")
    p.add_argument("--bins", type=positive_int, default=30,
                   help="equal-count bins of the Jensen-Shannon distance (default 30)")
    p.add_argument("--n-boot", type=positive_int, default=DEFAULT_N_BOOT,
                   help=f"bootstrap replicates for error bars (default {DEFAULT_N_BOOT})")
    p.add_argument("--seed", type=nonneg_int, default=0,
                   help="seed of the thermal placement and of the bootstrap (default 0)")
    p.add_argument("--batch-size", type=positive_int, default=8192,
                   help="matrices per batch (progress bar granularity; default 8192)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--threads", type=positive_int, default=DEFAULT_THREADS,
                   help=f"CPU threads for numba and BLAS (default {DEFAULT_THREADS}; results "
                   "do not depend on it)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    add_progress_flags(p)
    return p


@dataclass
class _Input:
    distances: np.ndarray | None  # (M, N, N); None for a dataset (computed per batch)
    original: np.ndarray | None  # (M, N, 2)
    gamma: np.ndarray  # (M,), NaN if unknown
    box: float
    temperature: float | None
    potential: Potential
    attrs: dict


def _potential(args, attrs: dict | None) -> Potential:
    spec = args.potential or (attrs or {}).get("potential") or "lj"
    cut_text = args.cutoff if args.cutoff is not None else (attrs or {}).get("cutoff", 3.0)
    try:
        cutoff = None if str(cut_text).lower() == "none" else float(cut_text)
        return Potential.parse(str(spec), cutoff)
    except ValueError as exc:
        raise UserError(f"--potential/--cutoff: {exc}") from None


def _temperature(value, source) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) \
            or not 0 < float(value) < np.inf:
        raise UserError(f"{source}: temperature attribute must be a positive number, got "
                        f"{value!r}")
    return float(value)


def _load_npy(path: Path) -> np.ndarray:
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic != b"\x93NUMPY":
        raise UserError(f"{path}: cannot read: neither a .npy array nor an ljvae dataset")
    return read_npy(path)


def _read_input(args) -> _Input:
    path = Path(args.input)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory")
    if h5py.is_hdf5(path):
        if args.originals or args.gamma is not None:
            raise UserError("--originals/--gamma: only for .npy input (a dataset carries its "
                            "own configurations and gamma)")
        ds = read_dataset(path)
        if len(ds) == 0:
            raise UserError(f"{path}: dataset holds no configurations")
        box = args.box if args.box is not None else ds.box
        temp = ds.attrs.get("temperature") if args.temperature is None else args.temperature
        return _Input(None, ds.positions, ds.gamma, box,
                      _temperature(temp, path), _potential(args, ds.attrs), dict(ds.attrs))
    if args.gamma is not None and not np.isfinite(args.gamma):
        raise UserError("--gamma: must be a finite number")
    arr = _load_npy(path)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2] or arr.shape[0] == 0:
        raise UserError(f"{path}: expected distance matrices of shape (M, N, N), got "
                        f"{arr.shape}")
    original, attrs = None, {}
    gamma = np.full(arr.shape[0], np.nan if args.gamma is None else float(args.gamma))
    box = args.box
    if args.originals:
        ds = read_dataset(args.originals)
        if ds.positions.shape[:2] != arr.shape[:2]:
            raise UserError(f"--originals: {args.originals} holds {ds.positions.shape[0]} "
                            f"configurations of {ds.positions.shape[1]} particles, the "
                            f"matrices are {arr.shape[0]} x {arr.shape[1]}")
        original, attrs = ds.positions, dict(ds.attrs)
        if args.gamma is None:
            gamma = ds.gamma
        box = ds.box if box is None else box
    temp = attrs.get("temperature") if args.temperature is None else args.temperature
    return _Input(arr.astype(np.float64), original, gamma, 10.0 if box is None else box,
                  _temperature(temp, args.originals), _potential(args, attrs or None), attrs)


def _concat(parts: list[Reconstruction]) -> Reconstruction:
    first = parts[0]
    if len(parts) == 1:
        return first
    cat = np.concatenate
    e0 = first.embedding
    emb = Embedding(*(cat([getattr(r.embedding, f) for r in parts]) for f in
                      ("coords", "eigenvalues", "residual", "negative")),
                    e0.variant, e0.reference)
    fields = ("positions", "width", "height", "com_height", "edge", "reflected", "fits")
    opt = {f: cat([getattr(r.tumbled, f) for r in parts])
           for f in ("theta", "tries") if getattr(first.tumbled, f) is not None}
    tmb = Tumbled(*(cat([getattr(r.tumbled, f) for r in parts]) for f in fields),
                  box=first.tumbled.box, **opt)
    return Reconstruction(emb, tmb, first.method, first.placement, first.placement_params)


@contextlib.contextmanager
def _staged(paths: list[Path]):
    """Temporary names for all outputs; renamed together at the end, deleted on error."""
    tmps = [p.with_name(f".{p.name}.{os.getpid()}.tmp") for p in paths]
    for p in paths:  # folders are made only now, after every check passed
        p.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield tmps
        for tmp, final in zip(tmps, paths, strict=True):
            os.replace(tmp, final)
    finally:
        for tmp in tmps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            with contextlib.suppress(FileNotFoundError):
                tmp.with_name(tmp.name + ".partial").unlink()


def _fmt(x: np.ndarray) -> str:
    return f"median {np.median(x):.3g}, 95% {np.quantile(x, 0.95):.3g}, max {np.max(x):.3g}"


def run(argv: list[str] | None = None) -> int:
    """The command itself; raises :class:`mcsim.clitools.UserError` on bad input."""
    args = build_parser().parse_args(argv)
    args.threads = clamp_threads(args.threads, PROG)
    with thread_limits(args.threads):
        return _run(args)


def _run(args) -> int:
    check_outputs([("--out", args.out), ("--xyz", args.xyz), ("--plot", args.plot)],
                  inputs=[("input", args.input), ("--originals", args.originals)],
                  overwrite=args.overwrite)
    outputs = [Path(p) for p in (args.out, args.xyz, args.plot) if p]
    if args.n_boot < 2:
        raise UserError("--n-boot: need at least 2 bootstrap replicates")

    try:
        inp = _read_input(args)
        if inp.distances is None:  # a dataset: its exact matrices, made per batch
            dist = None
            m, n = inp.original.shape[:2]
        else:
            dist = symmetrize_distances(inp.distances) if args.symmetrize else inp.distances
            dist = check_distance_matrices(dist, rtol=args.rtol, name=str(args.input))
            m, n = dist.shape[0], dist.shape[1]
        if args.variant == "reference" and args.reference_index >= n:
            raise UserError(f"--reference-index: {args.reference_index} out of range for "
                            f"N={n}")
    except (ValueError, DatasetError) as exc:
        hint = ("; decoded matrices: use --symmetrize"
                if "not a distance matrix" in str(exc) and not args.symmetrize else "")
        raise UserError(f"{exc}{hint}") from None

    def matrices(sl: slice = slice(None)) -> np.ndarray:
        return distance_matrices(inp.original[sl]) if dist is None else dist[sl]
    have_gamma = bool(np.all(np.isfinite(inp.gamma)))
    if args.placement == "thermal" and not (have_gamma and inp.temperature is not None):
        missing = " and ".join(w for w, ok in (("gamma", have_gamma),
                                               ("temperature", inp.temperature is not None))
                               if not ok)
        raise UserError(f"--placement thermal: needs the ensemble; {missing} unknown for "
                        f"{args.input} (give --gamma/--temperature or --originals, or use "
                        "--placement lowest)")
    if args.placement == "thermal" and np.any(inp.gamma < 0):
        raise UserError("--gamma: thermal placement needs gamma >= 0")
    want_metrics = bool(args.metrics or args.plot or args.originals)
    check_memory(32 * (args.n_boot + args.bins + m), "--n-boot/--bins")
    check_work(float(args.n_boot) * m * 64, 1e8, f"--n-boot {args.n_boot} with {m} matrices")

    parts = []
    bar = tqdm(total=m, unit="cfg", desc=PROG, disable=args.quiet or m <= args.batch_size
               or not show_progress(args), file=sys.stderr)
    with bar:
        for s in range(0, m, args.batch_size):
            sl = slice(s, s + args.batch_size)
            rec = reconstruct_configurations(
                matrices(sl), inp.box, args.variant, args.reference_index,
                method=args.method, rtol=np.inf, placement=args.placement,
                gamma=inp.gamma[sl] if have_gamma else None, temperature=inp.temperature,
                seed=args.seed, n_angles=args.n_angles, start=s)
            parts.append(rec)
            bar.update(len(rec))
    rec = _concat(parts)

    if want_metrics:
        ev = evaluate_reconstruction(rec, matrices(), original=inp.original,
                                     gamma=inp.gamma if have_gamma else None,
                                     potential=inp.potential, n_bins=args.bins,
                                     n_boot=args.n_boot, seed=args.seed)
        energy, summary, ev_extra = ev.energy, ev.summary(), ev.extra()
    else:
        ev = None
        energy = total_energy(rec.positions, inp.gamma, inp.potential) if have_gamma else None
        summary, ev_extra = {}, {}

    keep = ("temperature", "potential", "cutoff", "sweeps", "protocol", "seed", "delta")
    attrs = {f"input_{k}": inp.attrs[k] for k in keep if k in inp.attrs}
    if inp.temperature is not None:  # the ensemble the configurations stand for
        attrs["temperature"] = inp.temperature
    attrs.update({
        "input": str(args.input), "originals": args.originals or "none",
        "potential": inp.potential.spec,
        "cutoff": "none" if inp.potential.cutoff is None else inp.potential.cutoff,
        "symmetrized": bool(args.symmetrize), "rtol": float(args.rtol),
        "metrics": want_metrics, "energy_bins": int(args.bins), "n_boot": int(args.n_boot),
        "bootstrap_seed": int(args.seed), **summary,
    })

    with _staged(outputs) as tmps:
        write_reconstruction(tmps[0], rec, gamma=inp.gamma, energy=energy, attrs=attrs,
                             extra=ev_extra, overwrite=True)
        t = 1
        if args.xyz:
            write_xyz(tmps[t], rec.positions, box=inp.box, energy=energy,
                      gamma=inp.gamma if have_gamma else None, overwrite=True)
            t += 1
        if args.plot:
            from reconstruct.plotting import summary_figure  # matplotlib: import late

            rng = np.random.default_rng(args.seed)
            idx = np.sort(rng.choice(m, size=min(args.n_plot, m), replace=False))
            fig = summary_figure(
                rec.positions, inp.box, original=inp.original, indices=idx,
                edges=rec.tumbled.edge,
                energies=None if energy is None else (
                    None if inp.original is None
                    else total_energy(inp.original, inp.gamma, inp.potential), energy),
                comparison=ev.energies, profiles=(ev.profile_original, ev.profile),
                notes=None if ev.rmsd is None else [
                    f"RMSD {ev.rmsd[i]:.2g} σ (mirror allowed)\n"
                    f"placement RMSD {ev.placement_rmsd[i]:.2g} σ"
                    for i in idx],
                title=f"{Path(args.input).name}: {m} configurations, N={n}, "
                f"{args.variant} Gram, {args.placement} placement, box {inp.box:g}",
            )
            fig.savefig(tmps[t], format="png", dpi=130)

    if not args.quiet:
        lines = [
            f"{PROG}: {m} configurations, N={n}, box {inp.box:g}, {args.variant} Gram"
            + (f" (reference {args.reference_index})" if args.variant == "reference" else ""),
            f"  Gram residual (share outside top 2): {_fmt(rec.embedding.residual)}",
            f"  Gram negative share: {_fmt(rec.embedding.negative)}",
            f"  placement: {args.placement}; fit in the box: {int(rec.fits.sum())}/{m}",
        ]
        if ev is not None:
            lines.append(f"  distance RMS error vs input matrices: {_fmt(ev.distance_rms)}")
        if ev is not None and ev.rmsd is not None:
            lines.append(f"  RMSD to originals (aligned, mirror allowed): {_fmt(ev.rmsd)}")
            lines.append(f"  placement RMSD (x-shift/mirror only): "
                         f"{_fmt(ev.placement_rmsd)}")
        if ev is not None and ev.energies is not None:
            c = ev.energies
            lines.append(f"  energy W1 = {c.w1:.4g} ± {c.w1_err:.2g} (floor {c.w1_floor:.2g}), "
                         f"JS = {c.js:.4f} ± {c.js_err:.4f} (floor {c.js_floor:.4f}), "
                         f"median |dU| = {c.median_abs_difference:.3g}")
        lines.append("  wrote " + ", ".join(str(p) for p in outputs))
        print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one-line errors and exit code 2 for bad input."""
    return run_cli(run, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
