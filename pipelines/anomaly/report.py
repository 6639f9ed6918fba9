"""The Markdown report of an anomaly test."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pipelines.anomaly.imputation import IMPUTE_METHODS
from pipelines.anomaly.scores import (
    SCORE_INFO,
    SCORE_LABELS,
)

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


#: what each score is (from the score registry, pipelines.anomaly.scores.SCORE_INFO)
_SCORE_DEFS = {s.name: s.description for s in SCORE_INFO.values()}


#: every file a run may write; those a new run does not write are removed from out_dir
