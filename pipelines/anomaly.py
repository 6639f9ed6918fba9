"""The anomaly test: can a trained VAE tell in-distribution configurations from
anomalies, how much better than baselines that use no VAE, and how well does it fill in
missing data? (Seed 002 chapter 4, made quantitative.)

    cfg = AnomalyConfig(sets=("uniform", "corrupted"), n=1000)
    summary = run_anomaly_test("runs/default/best.pt", "runs/default/anomaly", cfg,
                               data_dir="runs/default/anomaly_data")
    print(summary["table_md"])

Data:

* in distribution: the checkpoint's own data files and split. The *test* split gives
  the negatives of every ROC; the *validation* split fixes each score's threshold at
  ``fpr`` (1 %) false positives; the *training* split (a random subset of at most
  ``fit_max`` configurations) fits every score model (Mahalanobis, one-class SVM,
  PCA, isolation forest, energy reference). Nothing is fitted on test data.
* anomalies (:mod:`pipelines.anomaly_config`): MC sets generated with mcsim into
  ``data_dir`` and reused on later runs (:func:`make_anomaly_sets`); corrupted and
  missing-data sets derived from ``n`` random test configurations.

Scores: :mod:`pipelines.anomaly_scores`. Metrics (ROC AUC with a stratified bootstrap
CI, detection rate at the validation threshold, actual test FPR):
:mod:`pipelines.anomaly_metrics`. Imputation (VAE vs mean matrix vs EDM completion):
:mod:`pipelines.anomaly_imputation`. Figures: :mod:`pipelines.anomaly_plots`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mcsim.clitools import UserError
from mcsim.io import package_version
from pipelines.anomaly_config import MC_KINDS, SET_KINDS, AnomalyConfig, AnomalyConfigError
from pipelines.anomaly_imputation import IMPUTE_METHODS, edm_complete, masked_rmse
from pipelines.anomaly_metrics import (
    auc_with_ci,
    detection_rate,
    threshold_at_fpr,
)
from pipelines.anomaly_scores import (
    SCORE_LABELS,
    SCORES,
    EnergyReference,
    ScoreModels,
    decoder_variance,
    matrix_features,
    vae_pass,
    vae_scores,
)
from pipelines.anomaly_sets import (
    apply_mask,
    block_mask,
    corrupt_positions,
    generate_mc_set,
    load_mc_set,
    mc_set_config,
    random_pair_masks,
)

__all__ = [
    "AnomalyConfig",
    "AnomalyConfigError",
    "SET_KINDS",
    "SCORES",
    "AnomalySpec",
    "expand_sets",
    "make_anomaly_sets",
    "run_anomaly_test",
    "markdown_table",
]

# seed-sequence spawn keys, one per use of randomness
_KEY_CORRUPT, _KEY_MASK, _KEY_SUBSET, _KEY_FIT, _KEY_BOOT = 1, 2, 3, 4, 5


def _seed(cfg: AnomalyConfig, *key: int | str) -> np.random.SeedSequence:
    """The seed of one use of randomness; string parts (set and score names) enter by
    their CRC-32, so a set's masks and bootstrap do not depend on which other sets run."""
    parts = tuple(zlib.crc32(k.encode()) if isinstance(k, str) else k for k in key)
    return np.random.SeedSequence(cfg.seed, spawn_key=parts)


@dataclass(frozen=True)
class AnomalySpec:
    """One concrete anomaly set (a table row).

    Attributes:
        name: label, e.g. ``gamma=3``, ``corrupt K=4``, ``blackout 10x10@8``.
        kind: its kind (:data:`SET_KINDS`).
        param: gamma (unseen-gamma), (size, offset) (blackout), fraction (random-mask).
        description: one sentence for the report.
    """

    name: str
    kind: str
    param: Any = None
    description: str = ""


def expand_sets(cfg: AnomalyConfig, box: float = 10.0) -> list[AnomalySpec]:
    """The concrete sets of ``cfg``, in table order (kinds in :data:`SET_KINDS` order)."""
    out: list[AnomalySpec] = []
    for kind in SET_KINDS:
        if kind not in cfg.sets:
            continue
        if kind == "unseen-gamma":
            for g in cfg.unseen_gammas:
                out.append(AnomalySpec(
                    f"gamma={g:g}", kind, float(g),
                    f"MC at unseen gamma = {g:g}, training potential {cfg.potential} "
                    f"(cutoff {cfg.cutoff}), {cfg.sweeps} sweeps from a uniform start"))
        elif kind == "fake-potential":
            out.append(AnomalySpec(
                f"fake {cfg.fake_potential}", kind, None,
                f"MC with the fake potential {cfg.fake_potential} (cutoff "
                f"{cfg.fake_cutoff}) at gamma = {cfg.fake_gamma:g}, {cfg.fake_sweeps} sweeps"))
        elif kind == "uniform":
            out.append(AnomalySpec("uniform", kind, None,
                                   "uniform random positions in the box (no MC)"))
        elif kind == "corrupted":
            out.append(AnomalySpec(
                f"corrupt K={cfg.corrupt_k}", kind, None,
                f"{cfg.corrupt_k} random particles of a test configuration moved by "
                f"U(0, {cfg.corrupt_step:g}) {cfg.corrupt_unit} units "
                f"(<= {cfg.step_sigma(box):.3g} sigma) in a random direction, "
                "reflected at the walls"))
        elif kind == "blackout":
            for size, off in cfg.blackout_blocks:
                out.append(AnomalySpec(
                    f"blackout {size}x{size}@{off}", kind, (size, off),
                    f"sorted distance matrix of a test configuration with rows/columns "
                    f"{off}..{off + size - 1} zeroed"))
        elif kind == "random-mask":
            for f in cfg.mask_fractions:
                out.append(AnomalySpec(
                    f"mask {100 * f:g}%", kind, float(f),
                    f"{100 * f:g} % of the particle pairs of a test matrix zeroed at random"))
    return out


# -- MC anomaly sets -------------------------------------------------------------------

def _mc_configs(cfg: AnomalyConfig, n_particles: int, box: float, n: int):
    for spec in expand_sets(cfg, box):
        if spec.kind in MC_KINDS:
            yield spec, mc_set_config(spec.kind, cfg, n_particles=n_particles, box=box, n=n,
                                      gamma=spec.param)


def make_anomaly_sets(cfg: AnomalyConfig, data_dir: Path, *, n_particles: int, box: float,
                      n: int | None = None, progress: bool = True,
                      n_threads: int | None = None) -> dict[str, Path]:
    """Generate (or reuse) the MC anomaly datasets of ``cfg`` as mcsim files.

    Args:
        cfg: the test settings (kinds unseen-gamma, fake-potential, uniform).
        data_dir: folder of the set files (created if missing).
        n_particles, box: N and L of the model's training data.
        n: samples per set (default ``cfg.n``).
        progress: tqdm bars while simulating.
        n_threads: numba threads (does not change the output).

    Returns:
        Set name (:func:`expand_sets`) -> file. A file with the same parameters and at
        least n samples is reused; an interrupted generation resumes.
    """
    n = cfg.n if n is None else int(n)
    out: dict[str, Path] = {}
    for spec, sim in _mc_configs(cfg, n_particles, box, n):
        path, reused = generate_mc_set(sim, Path(data_dir), progress=progress,
                                       n_threads=n_threads)
        if progress:
            tqdm.write(f"anomaly set {spec.name}: {'reused' if reused else 'wrote'} {path}")
        out[spec.name] = path
    return out


# -- in-distribution data --------------------------------------------------------------

@dataclass
class _InData:
    positions: np.ndarray  # (M, N, 2) sigma, after the model's subsampling
    gamma: np.ndarray
    x: np.ndarray  # model inputs
    split: Any
    files: list[str]


def _resolve(f: str, checkpoint: Path) -> Path:
    p = Path(f)
    if p.is_absolute() or p.exists():
        return p
    for base in [checkpoint.parent, *checkpoint.parent.parents][:4]:
        if (base / p).exists():
            return base / p
    return p


def _load_in_distribution(model, checkpoint: Path, files: list[str | os.PathLike] | None
                          ) -> _InData:
    from vae.training import prepare_data

    given = files is not None
    names = [str(f) for f in files] if given else list(model.info.files)
    if not names:
        raise UserError(f"{checkpoint}: the checkpoint names no data files; pass --train-data")
    paths = [Path(f) if given else _resolve(f, checkpoint) for f in names]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UserError(f"in-distribution data {missing[0]} not found (the checkpoint's "
                        "training data); pass --train-data FILE ...")
    data = prepare_data(model.config, paths)
    if data.info.fingerprint != model.info.fingerprint:
        raise UserError(f"in-distribution data {', '.join(map(str, paths))} differ from what "
                        f"the model was trained on (fingerprint {data.info.fingerprint} != "
                        f"{model.info.fingerprint})")
    return _InData(data.positions, data.gamma, data.x, data.split, [str(p) for p in paths])


# -- anomaly sets in memory ------------------------------------------------------------

@dataclass
class _Set:
    spec: AnomalySpec
    positions: np.ndarray  # (M, N, 2) sigma (unchanged positions for missing data)
    x: np.ndarray  # model inputs (masked for missing data)
    mask: np.ndarray | None = None  # (M, N, N) True = missing
    truth: np.ndarray | None = None  # unmasked inputs (missing data)
    source: str = ""
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    mu_z: np.ndarray | None = None
    x_hat: np.ndarray | None = None


def _build_sets(cfg: AnomalyConfig, model, ind: _InData, mc_files: dict[str, Path],
                box: float) -> list[_Set]:
    test_pos = ind.positions[ind.split.test]
    test_x = ind.x[ind.split.test]
    n_test = len(test_pos)
    rng = np.random.default_rng(_seed(cfg, _KEY_SUBSET))
    pick = np.sort(rng.choice(n_test, size=min(cfg.n, n_test), replace=False))
    n_part = test_pos.shape[1]
    sets: list[_Set] = []
    for spec in expand_sets(cfg, box):
        if spec.kind in MC_KINDS:
            pos, _ = load_mc_set(mc_files[spec.name], cfg.n)
            sets.append(_Set(spec, pos, model.inputs(pos, box), source=str(mc_files[spec.name])))
        elif spec.kind == "corrupted":
            pos, _ = corrupt_positions(test_pos[pick], cfg.corrupt_k, cfg.step_sigma(box), box,
                                       _seed(cfg, _KEY_CORRUPT))
            sets.append(_Set(spec, pos, model.inputs(pos, box), source="test split"))
        else:
            if spec.kind == "blackout":
                mask = np.broadcast_to(block_mask(n_part, *spec.param), (pick.size, n_part,
                                                                         n_part))
            else:
                mask = random_pair_masks(pick.size, n_part, spec.param,
                                         _seed(cfg, _KEY_MASK, spec.name))
            truth = test_x[pick]
            sets.append(_Set(spec, test_pos[pick], apply_mask(truth, mask), mask=mask,
                             truth=truth, source="test split"))
    return sets


# -- scoring ---------------------------------------------------------------------------

class _Scorer:
    """All scores of a batch of configurations, models fitted on training data."""

    def __init__(self, cfg: AnomalyConfig, model, ind: _InData) -> None:
        rng = np.random.default_rng(_seed(cfg, _KEY_FIT))
        train = ind.split.train
        fit = np.sort(rng.choice(train, size=min(cfg.fit_max, train.size), replace=False))
        self.model = model
        vp = vae_pass(model, ind.x[fit])
        self.features = matrix_features
        self.models = ScoreModels(vp.mu_z, matrix_features(ind.x[fit]),
                                  pca_components=cfg.pca_components, ocsvm_nu=cfg.ocsvm_nu,
                                  iforest_trees=cfg.iforest_trees, seed=cfg.seed)
        self.energy = EnergyReference(ind.positions[fit], ind.gamma[fit],
                                      cfg.training_potential())
        self.mean_matrix = ind.x[fit].astype(np.float64).mean(axis=0)
        self.n_fit = int(fit.size)

    def __call__(self, x: np.ndarray, positions: np.ndarray):
        vp = vae_pass(self.model, x)
        s = vae_scores(self.model, vp)
        s.update(self.models.scores(vp.mu_z, matrix_features(x)))
        s["energy"] = self.energy.score(positions)
        return {k: np.asarray(s[k], dtype=np.float64) for k in SCORES}, vp


def _usable(scores: dict[str, np.ndarray]) -> list[str]:
    return [k for k in SCORES if not np.any(np.isnan(scores[k]))]


# -- report ----------------------------------------------------------------------------

def markdown_table(results: dict[str, dict[str, dict[str, float]]], scores: list[str],
                   fpr_test: dict[str, float] | None = None, fpr: float = 0.01) -> str:
    """Rows = sets, columns = scores; cells ``AUC [lo, hi] / TPR`` (TPR at the threshold
    that gives ``fpr`` false positives on validation data). The best AUC per row is bold.
    """
    head = "| set | " + " | ".join(SCORE_LABELS.get(s, s) for s in scores) + " |"
    lines = [head, "|---|" + "---|" * len(scores)]
    for name, row in results.items():
        best = max((row[s]["auc"] for s in scores if s in row), default=math.nan)
        cells = []
        for s in scores:
            r = row.get(s)
            if r is None:
                cells.append("n/a")
                continue
            ci = "" if math.isnan(r["lo"]) else f" [{r['lo']:.3f}, {r['hi']:.3f}]"
            txt = f"{r['auc']:.3f}{ci} / {r['tpr']:.2f}"
            cells.append(f"**{txt}**" if r["auc"] == best else txt)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if fpr_test:
        lines.append(f"| *FPR on test (target {100 * fpr:g} %)* | "
                     + " | ".join(f"{100 * fpr_test[s]:.2f} %" for s in scores) + " |")
    return "\n".join(lines)


def _imputation_table(imp: dict[str, dict[str, Any]]) -> str:
    lines = ["| mask | n | VAE | mean matrix | EDM completion | EDM exact (< 1e-3 σ) |",
             "|---|---|---|---|---|---|"]
    for name, r in imp.items():
        cells = []
        for m in IMPUTE_METHODS:
            v = r["rmse_sigma"][m]
            cells.append("n/a" if v is None else f"{v:.3f}")
        exact = f"{100 * r['edm_exact_fraction']:.1f} %" if r["rmse_sigma"]["edm"] is not None \
            else "n/a"
        lines.append(f"| {name} | {r['n']} | " + " | ".join(cells) + f" | {exact} |")
    return "\n".join(lines)


def _markdown(summary: dict[str, Any]) -> str:
    cfg = summary["config"]
    m = summary["model"]
    lines = [
        "# Anomaly test",
        "",
        f"Checkpoint `{summary['checkpoint']}` (epoch {m['epoch']}, {m['arch']}, latent "
        f"{m['latent_dim']}). In distribution: test split ({summary['data']['n_test']} "
        f"configurations, the ROC negatives); thresholds at {100 * cfg['fpr']:g} % FPR on "
        f"the validation split ({summary['data']['n_val']}); score models fitted on "
        f"{summary['data']['n_fit']} training configurations. Seed {cfg['seed']}.",
        "",
        "Cells: ROC AUC [bootstrap "
        f"{100 * cfg['ci']:g} % CI, {cfg['bootstrap']} resamples] / detection rate at the "
        "validation threshold. Bold: best AUC of the row. AUC 0.5 = chance.",
        "",
        summary["table_md"],
        "",
        "## Sets",
        "",
    ]
    for name, s in summary["sets"].items():
        lines.append(f"* **{name}** ({s['n']}): {s['description']}.")
    lines += ["", "## Scores", ""]
    for k, v in summary["score_definitions"].items():
        lines.append(f"* **{SCORE_LABELS[k]}** (`{k}`): {v}")
    if summary.get("imputation"):
        lines += ["", "## Imputation of missing entries", "",
                  "RMSE inside the mask (off-diagonal masked entries), sigma. VAE: its "
                  "reconstruction of the masked input; mean matrix: training mean; EDM: "
                  "2D distance-matrix completion from the known entries (weighted SMACOF, "
                  "no learning; n/a when no entry of some particle is known).", "",
                  summary["imputation_md"]]
    if summary.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"* {w}" for w in summary["warnings"]]
    if summary.get("figures"):
        lines += ["", "## Figures", ""]
        lines += [f"![{Path(f).stem}]({Path(f).name})" for f in summary["figures"]]
    return "\n".join(lines) + "\n"


_SCORE_DEFS = {
    "mse": "mean squared error between the input matrix and decode(mu_z), input units "
           "(normalised distances); the study's score.",
    "neg_elbo": "-ELBO in nats with the Gaussian decoder variance implied by the training "
                "loss, s^2 = b P / (2 a D), at z = mu_z: SSE/(2 s^2) + P/2 log(2 pi s^2) "
                "+ KL.",
    "kl": "KL(q(z|x) || N(0, I)) summed over latent dimensions, nats.",
    "mahalanobis": "Mahalanobis distance of mu_z from the training latent means.",
    "ocsvm": "minus the decision function of a one-class SVM (RBF) on training latent "
             "means.",
    "pca": "PCA reconstruction error of the flattened sorted distance matrix (training "
           "PCA, no VAE).",
    "iforest": "isolation-forest anomaly score of the flattened matrix (no VAE).",
    "energy": "min over training gammas g of |U_g(x) - <U_g>| / sd(U_g), U_g the energy "
              "under the training potential with field g (positions only, no VAE).",
}


#: every file a run may write; those a new run does not write are removed from out_dir
OUTPUT_FILES = ("anomaly.json", "anomaly.md", "scores.npz", "mse_hist.png", "latent_pca.png",
                "roc.png", "auc_heatmap.png", "imputation.png")


@contextlib.contextmanager
def _staging(out_dir: Path) -> Iterator[Path]:
    """A temporary folder inside ``out_dir``; on success its files replace the previous
    results (``anomaly.json`` last, as the completion mark; stale outputs of an earlier
    run, e.g. a figure this run does not draw, are removed). On failure nothing in
    ``out_dir`` changes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".staging-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        names = sorted(p.name for p in tmp.iterdir())
        names.sort(key=lambda n: n == "anomaly.json")
        for name in OUTPUT_FILES:
            if name not in names:
                (out_dir / name).unlink(missing_ok=True)
        for name in names:
            os.replace(tmp / name, out_dir / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _limit_threads(n_threads: int | None):
    if n_threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n_threads)


def run_anomaly_test(checkpoint: Path, out_dir: Path, cfg: AnomalyConfig, *, data_dir: Path,
                     progress: bool = True, train_data: list[str | os.PathLike] | None = None,
                     n_threads: int | None = None, figures: bool = True) -> dict:
    """Run the whole anomaly test and write ``anomaly.json``, ``anomaly.md``,
    ``scores.npz`` and the figures into ``out_dir``.

    Args:
        checkpoint: a ``best.pt`` / ``last.pt`` of ``train-vae``.
        out_dir: output folder (created; files in it with the same names are replaced,
            each only once everything has been computed).
        cfg: the settings.
        data_dir: folder of the generated MC anomaly sets (reused across runs).
        progress: tqdm progress bars.
        train_data: the in-distribution data files (default: the files the checkpoint
            names; their fingerprint must match).
        n_threads: torch / numba / BLAS threads (None: library defaults).
        figures: also draw the PNG figures.

    Returns:
        The summary written to ``anomaly.json``: config, model, data sizes, sets,
        thresholds, ``results[set][score] = {auc, lo, hi, tpr}``, ``fpr_test``,
        ``imputation``, ``table_md`` (the Markdown table), ``figures`` (paths).
    """
    import torch

    from vae.checkpoint import load_model
    from vae.data import length_scale

    checkpoint, out_dir, data_dir = Path(checkpoint), Path(out_dir), Path(data_dir)
    if not isinstance(cfg, AnomalyConfig):
        raise TypeError("cfg: must be an AnomalyConfig")
    old_threads = torch.get_num_threads()
    if n_threads is not None:
        torch.set_num_threads(n_threads)
    from mcsim.sampler import threads

    try:
        with _limit_threads(n_threads), threads(n_threads):
            return _run(checkpoint, out_dir, cfg, data_dir, progress, train_data, n_threads,
                        figures, load_model, length_scale)
    finally:
        torch.set_num_threads(old_threads)


def _run(checkpoint, out_dir, cfg, data_dir, progress, train_data, n_threads, figures,
         load_model, length_scale) -> dict:
    model = load_model(checkpoint)
    n_part, box = model.info.n_particles, model.info.box
    cfg.check_system(n_part, box)
    rep = model.config.data.representation
    warnings: list[str] = []
    missing_kinds = [k for k in ("blackout", "random-mask") if k in cfg.sets]
    if missing_kinds and rep != "distance":
        raise UserError(f"sets: {', '.join(missing_kinds)} need a distance-matrix model, "
                        f"this one takes {rep!r} inputs")
    trained_g = [float(g) for g in model.info.gammas]
    if "unseen-gamma" in cfg.sets:
        seen = [g for g in cfg.unseen_gammas if any(math.isclose(g, t) for t in trained_g)]
        if seen:
            raise UserError(f"unseen_gammas: {seen[0]:g} is one of the training gammas "
                            f"({', '.join(f'{g:g}' for g in trained_g)})")
    ind = _load_in_distribution(model, checkpoint, train_data)
    _check_physics(cfg, ind, warnings)
    steps = tqdm(total=5, desc="anomaly-test", disable=not progress, dynamic_ncols=True)
    with steps:
        steps.set_postfix_str("anomaly sets")
        mc_files = make_anomaly_sets(cfg, data_dir, n_particles=n_part, box=box,
                                     progress=progress, n_threads=n_threads)
        sets = _build_sets(cfg, model, ind, mc_files, box)
        steps.update()

        steps.set_postfix_str("fit score models")
        scorer = _Scorer(cfg, model, ind)
        steps.update()

        steps.set_postfix_str("scores")
        test_idx, val_idx = ind.split.test, ind.split.val
        s_test, vp_test = scorer(ind.x[test_idx], ind.positions[test_idx])
        s_val, _ = scorer(ind.x[val_idx], ind.positions[val_idx])
        for st in sets:
            st.scores, vp = scorer(st.x, st.positions)
            st.mu_z, st.x_hat = vp.mu_z, vp.x_hat
        scores = _usable(s_test)
        if "neg_elbo" not in scores:
            warnings.append("-ELBO omitted: the KL weight is 0, so the training loss implies "
                            "no decoder variance")
        steps.update()

        steps.set_postfix_str("metrics")
        thresholds = {k: threshold_at_fpr(s_val[k], cfg.fpr) for k in scores}
        fpr_test = {k: detection_rate(s_test[k], thresholds[k]) for k in scores}
        results: dict[str, dict[str, dict[str, float]]] = {}
        for st in sets:
            row = {}
            for k in scores:
                r = auc_with_ci(s_test[k], st.scores[k], cfg.bootstrap, cfg.ci,
                                _seed(cfg, _KEY_BOOT, st.spec.name, k))
                row[k] = {"auc": r.auc, "lo": r.lo, "hi": r.hi,
                          "tpr": detection_rate(st.scores[k], thresholds[k])}
            results[st.spec.name] = row
        steps.update()

        steps.set_postfix_str("imputation")
        scale = length_scale(model.config.data.scaling, box)
        imputation, examples = _imputation(cfg, sets, scorer.mean_matrix, scale, progress)
        steps.update()

    if any(s.spec.kind in ("blackout", "random-mask") for s in sets):
        warnings.append("energy cannot see missing-data sets: their positions are the "
                        "unchanged test positions (AUC ~ 0.5 by construction)")
    table_md = markdown_table(results, scores, fpr_test, cfg.fpr)
    summary: dict[str, Any] = {
        "ljvae_version": package_version(),
        "checkpoint": str(checkpoint),
        "config": cfg.to_dict(),
        "model": {"epoch": model.epoch, "arch": model.config.model.arch,
                  "latent_dim": int(model.model.latent_dim), "representation": rep,
                  "loss": model.config.to_dict()["loss"],
                  "decoder_variance": _num(decoder_variance(model)),
                  "trained_gammas": trained_g, "n_particles": n_part, "box": box},
        "data": {"files": ind.files, "n_test": int(ind.split.test.size),
                 "n_val": int(ind.split.val.size), "n_train": int(ind.split.train.size),
                 "n_fit": scorer.n_fit, "data_dir": str(data_dir)},
        "sets": {s.spec.name: {"kind": s.spec.kind, "n": int(len(s.x)), "source": s.source,
                               "description": s.spec.description} for s in sets},
        "scores": scores,
        "score_definitions": {k: _SCORE_DEFS[k] for k in scores},
        "thresholds": thresholds,
        "fpr_test": fpr_test,
        "results": results,
        "imputation": imputation,
        "table_md": table_md,
        "imputation_md": _imputation_table(imputation) if imputation else "",
        "warnings": warnings,
        "figures": [],
    }
    with _staging(out_dir) as tmp:
        if figures:
            from pipelines import anomaly_plots as P

            names = P.write_figures(tmp, s_test=s_test, gamma_test=ind.gamma[test_idx],
                                    mu_test=vp_test.mu_z, sets=sets, scores=scores,
                                    examples=examples, scale=scale,
                                    mse_threshold=thresholds.get("mse"), fpr=cfg.fpr)
            summary["figures"] = [str(out_dir / n) for n in names]
        arrays = {f"test/{k}": v for k, v in s_test.items()}
        arrays.update({f"val/{k}": v for k, v in s_val.items()})
        for st in sets:
            arrays.update({f"{st.spec.name}/{k}": v for k, v in st.scores.items()})
        np.savez_compressed(tmp / "scores.npz", **arrays)
        (tmp / "anomaly.md").write_text(_markdown(summary))
        (tmp / "anomaly.json").write_text(json.dumps(summary, indent=2, default=_num) + "\n")
    return summary


def _num(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _check_physics(cfg: AnomalyConfig, ind: _InData, warnings: list[str]) -> None:
    """Warn when the energy reference potential differs from the training data's."""
    from mcsim.config import SimConfig
    from mcsim.io import read_dataset

    try:
        attrs = read_dataset(ind.files[0]).attrs
        sim = SimConfig.from_json(attrs["config"])
    except Exception:  # any file without a generation config just gets no check
        warnings.append("could not read the training data's generation parameters; the "
                        f"energy score assumes potential {cfg.potential}, cutoff {cfg.cutoff}")
        return
    if sim.potential != cfg.training_potential():
        warnings.append(f"the training data used potential {sim.potential.spec} (cutoff "
                        f"{sim.potential.cutoff}) but the test uses {cfg.potential} (cutoff "
                        f"{cfg.cutoff}) for the energy score and unseen-gamma sets")
    if not math.isclose(sim.temperature, cfg.temperature):
        warnings.append(f"the training data used T={sim.temperature:g}, the MC anomaly sets "
                        f"use T={cfg.temperature:g}")


def _imputation(cfg: AnomalyConfig, sets: list[_Set], mean_matrix: np.ndarray, scale: float,
                progress: bool) -> tuple[dict[str, dict[str, Any]], dict[str, dict]]:
    """RMSE (sigma) inside the mask for each missing-data set, and one example each."""
    out: dict[str, dict[str, Any]] = {}
    examples: dict[str, dict] = {}
    todo = [s for s in sets if s.mask is not None]
    for st in tqdm(todo, desc="imputation", disable=not progress or not todo, leave=False):
        k = min(cfg.impute_n, len(st.x))
        truth = st.truth[:k, 0].astype(np.float64)
        mask = np.asarray(st.mask[:k])
        masked = st.x[:k, 0].astype(np.float64)
        est = {
            "vae": st.x_hat[:k, 0].astype(np.float64),
            "mean": np.broadcast_to(mean_matrix[0], truth.shape),
        }
        edm, iters = edm_complete(masked, mask, iters=cfg.edm_iters, tol=cfg.edm_tol)
        est["edm"] = edm
        # EDM cannot place a particle none of whose distances is known; where it can
        # complete some matrices but not all, every method is scored on those it can
        solved = ~np.isnan(edm).any(axis=(1, 2))
        sel = solved if 0 < solved.sum() < k else np.ones(k, dtype=bool)
        rm = {}
        for m in IMPUTE_METHODS:
            v = masked_rmse(est[m][sel], truth[sel], mask[sel])
            rm[m] = None if math.isnan(v) else v * scale
        sel_mask = mask & ~np.eye(mask.shape[-1], dtype=bool)
        with np.errstate(invalid="ignore"):
            per = np.sqrt(np.where(sel_mask, (edm - truth) ** 2, 0.0).sum(axis=(1, 2))
                          / np.maximum(sel_mask.sum(axis=(1, 2)), 1))
        out[st.spec.name] = {"n": int(sel.sum()), "rmse_sigma": rm,
                             "edm_exact_fraction": float(np.mean(per * scale < 1e-3)),
                             "edm_solvable_fraction": float(solved.mean()),
                             "edm_iterations_median": float(np.median(iters)),
                             "edm_hit_iteration_cap": float(np.mean(iters >= cfg.edm_iters))}
        examples[st.spec.name] = {"truth": truth[0], "masked": masked[0], "mask": mask[0],
                                  **{m: est[m][0] for m in IMPUTE_METHODS}}
    return out, examples
