"""The whole anomaly test (:func:`run_anomaly_test`): data, scores, metrics, imputation,
figures, report."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mcsim.clitools import UserError
from mcsim.io import package_version
from mcsim.shared import jsonable, thread_limits
from pipelines.anomaly.config import MC_KINDS, AnomalyConfig
from pipelines.anomaly.datasets import (
    _KEY_BOOT,
    _KEY_CORRUPT,
    _KEY_FIT,
    _KEY_MASK,
    _KEY_SUBSET,
    AnomalySpec,
    _seed,
    expand_sets,
    make_anomaly_sets,
)
from pipelines.anomaly.imputation import IMPUTE_METHODS, edm_complete, masked_rmse
from pipelines.anomaly.metrics import (
    auc_with_ci,
    detection_rate,
    threshold_at_fpr,
)
from pipelines.anomaly.report import _SCORE_DEFS, _imputation_table, _markdown, markdown_table
from pipelines.anomaly.scores import (
    SCORES,
    Batch,
    FitData,
    compute_scores,
    decoder_variance,
    fit_scores,
    matrix_features,
    vae_pass,
)
from pipelines.anomaly.sets import (
    apply_mask,
    block_mask,
    corrupt_positions,
    load_mc_set,
    random_pair_masks,
)
from pipelines.anomaly.user_sets import LoadedPositions, UserSet, check_set_names, load_positions

# -- in-distribution data --------------------------------------------------------------

class TrainingDataError(UserError):
    """The model's training data cannot be found (give the files: ``train_data``)."""


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


def load_in_distribution(model, checkpoint: Path, files: list[str | os.PathLike] | None
                         ) -> _InData:
    """The model's training data (``files``, default: the checkpoint's own, found beside
    it) re-read and verified (:meth:`vae.checkpoint.TrainedVAE.training_data`)."""

    given = files is not None
    names = [str(f) for f in files] if given else list(model.info.files)
    if not names:
        raise TrainingDataError(f"{checkpoint}: the checkpoint names no data files")
    paths = [Path(f) if given else _resolve(f, checkpoint) for f in names]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise TrainingDataError(f"in-distribution data {missing[0]} not found (the "
                                "checkpoint's training data)")
    data = model.training_data(paths)
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
                box: float, user: Sequence[tuple[UserSet, LoadedPositions]] = ()
                ) -> list[_Set]:
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
    for u, data in user:  # user data, after the built-in sets
        scaled = (f", positions rescaled by {data.factor:.4g} from L={data.box:g}"
                  if data.factor != 1.0 else "")
        spec = AnomalySpec(u.name, "user", None,
                           f"user data {u.path}: the first {len(data.positions)} of "
                           f"{data.n_total} configurations{scaled}")
        sets.append(_Set(spec, data.positions, model.inputs(data.positions, box),
                         source=str(u.path)))
    return sets


# -- scoring ---------------------------------------------------------------------------

_KEY_IWAE = 6  # the draws of the iwae score (datasets._KEY_* hold 1..5)


class Scorer:
    """All scores of a batch of configurations, models fitted on training data.

    Calling it with inputs x, positions, a ``key`` naming the data (``split:test``,
    ``set:<name>``, ...) and the index ``start`` of x[0] in them gives ({score: (M,)},
    the VAE pass); the ``iwae`` draws of configuration i come from the stream
    (seed of (cfg.seed, key), start + i), so scores do not depend on batching."""

    def __init__(self, cfg: AnomalyConfig, model, ind: _InData) -> None:
        rng = np.random.default_rng(_seed(cfg, _KEY_FIT))
        train = ind.split.train
        fit = np.sort(rng.choice(train, size=min(cfg.fit_max, train.size), replace=False))
        self.model = model
        vp = vae_pass(model, ind.x[fit])
        self.states = fit_scores(FitData(model, vp, matrix_features(ind.x[fit]),
                                         ind.positions[fit], ind.gamma[fit], cfg))
        self.mean_matrix = ind.x[fit].astype(np.float64).mean(axis=0)
        self.n_fit = int(fit.size)
        self.cfg = cfg

    def iwae_seed(self, key: str) -> int:
        return int(_seed(self.cfg, _KEY_IWAE, key).generate_state(1)[0])

    def __call__(self, x: np.ndarray, positions: np.ndarray, key: str, start: int = 0):
        vp = vae_pass(self.model, x)
        return compute_scores(self.states, Batch(self.model, vp, matrix_features(x),
                                                 positions, x=x, seed=self.iwae_seed(key),
                                                 start=start)), vp


def usable_scores(scores: dict[str, np.ndarray]) -> list[str]:
    """The scores defined for a model (no NaN: ``neg_elbo``, ``iwae`` need a KL weight)."""
    return [k for k in SCORES if not np.any(np.isnan(scores[k]))]


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


def run_anomaly_test(checkpoint: Path, out_dir: Path, cfg: AnomalyConfig, *, data_dir: Path,
                     progress: bool = True, train_data: list[str | os.PathLike] | None = None,
                     n_threads: int | None = None, figures: bool = True,
                     user_sets: Sequence[UserSet] = ()) -> dict:
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
        user_sets: the user's data files, each one more set (row) of the table, of at
            most ``cfg.n`` configurations (:mod:`pipelines.anomaly.user_sets`: N must
            be the model's; another box is rescaled to the model's, with a warning).

    Returns:
        The summary written to ``anomaly.json``: config, model, data sizes, sets,
        thresholds, ``results[set][score] = {auc, lo, hi, tpr}``, ``fpr_test``,
        ``imputation``, ``table_md`` (the Markdown table), ``figures`` (paths).
    """

    from vae.checkpoint import load_model
    from vae.data import length_scale

    checkpoint, out_dir, data_dir = Path(checkpoint), Path(out_dir), Path(data_dir)
    if not isinstance(cfg, AnomalyConfig):
        raise TypeError("cfg: must be an AnomalyConfig")
    with thread_limits(n_threads, torch=True):
        return _run(checkpoint, out_dir, cfg, data_dir, progress, train_data, n_threads,
                    figures, load_model, length_scale, tuple(user_sets))


def _run(checkpoint, out_dir, cfg, data_dir, progress, train_data, n_threads, figures,
         load_model, length_scale, user_sets=()) -> dict:
    model = load_model(checkpoint)
    n_part, box = model.info.n_particles, model.info.box
    cfg.check_system(n_part, box)
    check_set_names(user_sets, [s.name for s in expand_sets(cfg, box)])
    user = [(u, load_positions(u.path, n_particles=n_part, model_box=box, box=u.box,
                               limit=cfg.n, what=f"set {u.name}")) for u in user_sets]
    rep = model.config.data.representation
    warnings: list[str] = [data.note for _, data in user if data.note]
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
    ind = load_in_distribution(model, checkpoint, train_data)
    _check_physics(cfg, ind, warnings)
    steps = tqdm(total=5, desc="anomaly-test", disable=not progress, dynamic_ncols=True)
    with steps:
        steps.set_postfix_str("anomaly sets")
        mc_files = make_anomaly_sets(cfg, data_dir, n_particles=n_part, box=box,
                                     progress=progress, n_threads=n_threads)
        sets = _build_sets(cfg, model, ind, mc_files, box, user)
        steps.update()

        steps.set_postfix_str("fit score models")
        scorer = Scorer(cfg, model, ind)
        steps.update()

        steps.set_postfix_str("scores")
        test_idx, val_idx = ind.split.test, ind.split.val
        s_test, vp_test = scorer(ind.x[test_idx], ind.positions[test_idx], "split:test")
        s_val, _ = scorer(ind.x[val_idx], ind.positions[val_idx], "split:val")
        for st in sets:
            st.scores, vp = scorer(st.x, st.positions, f"set:{st.spec.name}")
            st.mu_z, st.x_hat = vp.mu_z, vp.x_hat
        scores = usable_scores(s_test)
        if "neg_elbo" not in scores:
            warnings.append("-ELBO and -IWAE omitted: the KL weight is 0, so the training "
                            "loss implies no decoder variance")
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
                  "decoder_variance": jsonable(decoder_variance(model)),
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
            from pipelines.anomaly import plots as P

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
        (tmp / "anomaly.json").write_text(
            json.dumps(jsonable(summary, nonfinite="keep"), indent=2) + "\n")
    return summary


def _check_physics(cfg: AnomalyConfig, ind: _InData, warnings: list[str]) -> None:
    """Warn when the energy reference potential differs from the training data's."""
    from mcsim.config import SimConfig

    try:
        sim = SimConfig.from_file(ind.files[0])
        if sim is None:
            raise ValueError("no config")
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
