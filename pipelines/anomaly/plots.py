"""Figures of the anomaly test. Each ``plot_*`` draws on the axes it is given (or new
ones); :func:`write_figures` composes them into the PNG files of a report.

* ``mse_hist.png``: the study's plot, histograms of the reconstruction MSE of the
  in-distribution test split vs each anomaly set (log scale), with the 1 %-FPR
  threshold;
* ``latent_pca.png``: PCA (fitted on the test split's latent means) of the latent means,
  anomalies overlaid, one panel per set;
* ``roc.png``: ROC curves of every score, one panel per set;
* ``auc_heatmap.png``: the AUC table as a heat map;
* ``imputation.png``: one example per missing-data set: true / masked / VAE / mean
  matrix / EDM completion.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mcsim.shared import save_figure
from pipelines.anomaly.metrics import roc_auc, roc_curve
from pipelines.anomaly.scores import SCORE_INFO, SCORE_LABELS

__all__ = [
    "plot_score_hist",
    "plot_latent_overlay",
    "plot_roc",
    "plot_auc_heatmap",
    "plot_imputation_examples",
    "write_figures",
]

_SCORE_COLORS = {s.name: s.color for s in SCORE_INFO.values()}


def _grid(n: int, ncols: int = 4, size: tuple[float, float] = (3.4, 2.9)):
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows),
                             constrained_layout=True, squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n]


def _new_ax(ax, figsize=(4.5, 3.5)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    return ax


def plot_score_hist(s_normal: np.ndarray, s_anom: np.ndarray, *, label: str = "anomaly",
                    threshold: float | None = None, score: str = "MSE", log: bool = True,
                    legend: bool = True, fpr: float = 0.01, ax=None):
    """Density histograms of a score, in distribution (grey) vs anomalous (colour)."""
    ax = _new_ax(ax)
    a = np.asarray(s_normal, dtype=np.float64)
    b = np.asarray(s_anom, dtype=np.float64)
    if log:
        floor = np.min(np.concatenate([a[a > 0], b[b > 0]]), initial=1e-12)
        a, b = np.log10(np.maximum(a, floor)), np.log10(np.maximum(b, floor))
    lo, hi = np.percentile(np.concatenate([a, b]), [0, 100])
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 60)
    ax.hist(a, bins=bins, density=True, color="0.55", alpha=0.7, label="test (in dist.)")
    ax.hist(b, bins=bins, density=True, color="#d62728", alpha=0.55, label="anomalous")
    if threshold is not None:
        t = math.log10(threshold) if log and threshold > 0 else threshold
        ax.axvline(t, color="k", ls="--", lw=1,
                   label=f"threshold: {100 * fpr:g} % FPR on validation")
    ax.set_xlabel(f"log10 {score}" if log else score)
    ax.set_ylabel("density")
    ax.set_title(f"{label}: AUC {roc_auc(s_normal, s_anom):.3f}", fontsize=10)
    if legend:
        ax.legend(fontsize=7, loc="upper right", framealpha=0.8)
    return ax


def plot_latent_overlay(pc_normal: np.ndarray, pc_anom: np.ndarray, *, label: str = "anomaly",
                        gamma: np.ndarray | None = None, evr: np.ndarray | None = None,
                        legend: bool = True, ax=None, max_points: int = 3000):
    """PC1 vs PC2 of latent means: test split (by gamma if given, else grey) with an
    anomaly set on top in red (drawn larger when it collapses to few points)."""
    import matplotlib.pyplot as plt

    ax = _new_ax(ax)
    rng = np.random.default_rng(0)
    keep = rng.permutation(len(pc_normal))[:max_points]
    pn = pc_normal[keep]
    pa = pc_anom[rng.permutation(len(pc_anom))[:max_points]]
    if gamma is not None:
        g = np.asarray(gamma)[keep]
        vals = np.unique(g)
        cmap = plt.get_cmap("viridis")
        for i, v in enumerate(vals):
            sel = g == v
            ax.scatter(pn[sel, 0], pn[sel, 1], s=3, color=cmap(0.9 * i / max(len(vals) - 1, 1)),
                       alpha=0.35, linewidths=0, label=f"test γ={v:g}", rasterized=True)
    else:
        ax.scatter(pn[:, 0], pn[:, 1], s=3, c="0.6", alpha=0.5, linewidths=0,
                   label="test (in dist.)", rasterized=True)
    few = len(np.unique(np.round(pa, 6), axis=0)) < 10
    ax.scatter(pa[:, 0], pa[:, 1], s=40 if few else 4, c="#d62728", alpha=0.9 if few else 0.6,
               marker="X" if few else "o", linewidths=0, label="anomalous", rasterized=True)
    xs = np.concatenate([pn[:, 0], pa[:, 0]])
    ys = np.concatenate([pn[:, 1], pa[:, 1]])
    qx, qy = np.percentile(xs, [0.5, 99.5]), np.percentile(ys, [0.5, 99.5])
    if few:  # never clip a collapsed set away
        qx = [min(qx[0], pa[:, 0].min()), max(qx[1], pa[:, 0].max())]
        qy = [min(qy[0], pa[:, 1].min()), max(qy[1], pa[:, 1].max())]
    px, py = 0.08 * (qx[1] - qx[0] or 1), 0.08 * (qy[1] - qy[0] or 1)
    ax.set_xlim(qx[0] - px, qx[1] + px)
    ax.set_ylim(qy[0] - py, qy[1] + py)
    if evr is not None:
        ax.set_xlabel(f"PC1 ({100 * evr[0]:.1f} %)")
        ax.set_ylabel(f"PC2 ({100 * evr[1]:.1f} %)")
    ax.set_title(label, fontsize=10)
    if legend:
        ax.legend(fontsize=7, markerscale=3, loc="upper right", framealpha=0.8)
    return ax


def plot_roc(s_normal: dict[str, np.ndarray], s_anom: dict[str, np.ndarray],
             scores: list[str], *, title: str = "", ax=None):
    """ROC curves of several scores for one set (AUC in the legend)."""
    ax = _new_ax(ax)
    for k in scores:
        fpr, tpr = roc_curve(s_normal[k], s_anom[k])
        auc = roc_auc(s_normal[k], s_anom[k])
        ax.plot(fpr, tpr, lw=1.2, color=_SCORE_COLORS.get(k),
                label=f"{SCORE_LABELS.get(k, k)} {auc:.2f}")
    ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls=":")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=6.5, loc="lower right", framealpha=0.85, title="AUC",
              title_fontsize=7)
    return ax


def plot_auc_heatmap(auc: np.ndarray, rows: list[str], cols: list[str], ax=None):
    """AUC matrix (sets x scores) as a heat map with the values written in."""
    ax = _new_ax(ax, figsize=(1.0 * len(cols) + 2.5, 0.45 * len(rows) + 1.6))
    im = ax.imshow(auc, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(cols)), [SCORE_LABELS.get(c, c) for c in cols], rotation=30,
                  ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for i in range(len(rows)):
        for j in range(len(cols)):
            v = auc[i, j]
            ax.text(j, i, "n/a" if np.isnan(v) else f"{v:.2f}", ha="center", va="center",
                    fontsize=8, color="k")
    ax.figure.colorbar(im, ax=ax, label="ROC AUC (0.5 = chance)")
    ax.set_title("Anomaly detection: ROC AUC per set and score", fontsize=10)
    return ax


def plot_imputation_examples(examples: dict[str, dict], scale: float = 1.0):
    """Rows = missing-data sets; columns = true, masked, VAE, mean matrix, EDM (sigma).
    The masked region is outlined; titles give the example's RMSE inside the mask."""
    import matplotlib.pyplot as plt

    names = list(examples)
    cols = [("truth", "true"), ("masked", "masked input"), ("vae", "VAE"),
            ("mean", "mean matrix"), ("edm", "EDM completion")]
    fig, axes = plt.subplots(len(names), len(cols), figsize=(2.5 * len(cols) + 0.8,
                                                             2.45 * len(names)),
                             constrained_layout=True, squeeze=False)
    vmax = max(float(np.nanmax(e["truth"])) for e in examples.values()) * scale
    im = None
    for r, name in enumerate(names):
        e = examples[name]
        outline = np.asarray(e["mask"], dtype=float)
        mask = e["mask"] & ~np.eye(len(e["mask"]), dtype=bool)
        for c, (key, title) in enumerate(cols):
            ax = axes[r, c]
            m = np.asarray(e[key], dtype=np.float64) * scale
            if np.all(np.isnan(m)):
                ax.text(0.5, 0.5, "cannot complete:\nno known distances", ha="center",
                        va="center", fontsize=8, transform=ax.transAxes)
                ax.set_facecolor("0.92")
            else:
                im = ax.imshow(m, cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
                ax.contour(outline, levels=[0.5], colors="w", linewidths=0.7)
            t = title
            if key in ("vae", "mean", "edm") and not np.all(np.isnan(m)):
                err = np.sqrt(np.mean((m[mask] - e["truth"][mask] * scale) ** 2))
                t = f"{title}\nRMSE {err:.2f} σ"
            ax.set_title(t, fontsize=8.5)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.6, label="distance (σ)")
    fig.suptitle("Missing entries of sorted distance matrices (white outline: masked)",
                 fontsize=10)
    return fig


def _figure_legend(fig, ax, **kw) -> None:
    """One legend for a grid of panels, below them (panels share their artists' labels)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8,
               frameon=False, **kw)


def _save(fig, path: Path) -> None:
    save_figure(fig, path, dpi=110)


def write_figures(folder: Path, *, s_test: dict[str, np.ndarray], gamma_test: np.ndarray,
                  mu_test: np.ndarray, sets: list, scores: list[str], examples: dict,
                  scale: float, mse_threshold: float | None = None,
                  fpr: float = 0.01) -> list[str]:
    """Write every figure into ``folder``; returns the file names. ``mse_threshold``:
    the validation threshold of the MSE score, drawn in the histograms."""
    import matplotlib

    matplotlib.use("Agg")
    from sklearn.decomposition import PCA

    folder = Path(folder)
    names: list[str] = []
    if not sets:
        return names
    thr = mse_threshold

    fig, axes = _grid(len(sets))
    for ax, st in zip(axes, sets, strict=True):
        plot_score_hist(s_test["mse"], st.scores["mse"], label=st.spec.name, threshold=thr,
                        legend=False, fpr=fpr, ax=ax)
    fig.suptitle("Reconstruction MSE: in-distribution test split vs anomalies", fontsize=11)
    _figure_legend(fig, axes[0])
    _save(fig, folder / "mse_hist.png")
    names.append("mse_hist.png")

    pca = PCA(n_components=2).fit(np.asarray(mu_test, dtype=np.float64))
    pc_test = pca.transform(mu_test)
    fig, axes = _grid(len(sets))
    for ax, st in zip(axes, sets, strict=True):
        plot_latent_overlay(pc_test, pca.transform(st.mu_z), label=st.spec.name,
                            gamma=gamma_test, evr=pca.explained_variance_ratio_, legend=False,
                            ax=ax)
    fig.suptitle("Latent means: PCA fitted on the test split (coloured by γ), each anomaly "
                 "set in red", fontsize=11)
    _figure_legend(fig, axes[0], markerscale=3)
    _save(fig, folder / "latent_pca.png")
    names.append("latent_pca.png")

    fig, axes = _grid(len(sets), size=(3.4, 3.2))
    for ax, st in zip(axes, sets, strict=True):
        plot_roc(s_test, st.scores, scores, title=st.spec.name, ax=ax)
    fig.suptitle("ROC curves (negatives: in-distribution test split)", fontsize=11)
    _save(fig, folder / "roc.png")
    names.append("roc.png")

    auc = np.array([[roc_auc(s_test[k], st.scores[k]) for k in scores] for st in sets])
    ax = plot_auc_heatmap(auc, [st.spec.name for st in sets], scores)
    _save(ax.figure, folder / "auc_heatmap.png")
    names.append("auc_heatmap.png")

    if examples:
        fig = plot_imputation_examples(examples, scale)
        _save(fig, folder / "imputation.png")
        names.append("imputation.png")
    return names
