"""Latent-space analysis: PCA, t-SNE, active dimensions, traversals, origin, gamma probe.

Analysis functions compute and return plain results (arrays or small dataclasses);
plotting functions take those results and an optional ``ax`` so that scripts can
compose figures (freud style). :func:`analyze` runs everything for a trained model
and writes the figures and a ``latent.json`` summary.

Questions from the study (seed 002 chapters 3 and 5) these answer:

* PCA of the latent means coloured by gamma, with explained-variance ratios (the
  study found the first two components explain only ~4-15 %).
* Which latent dimensions are active: the mean KL(q(z_j|x) || N(0, 1)) per
  dimension over the data; dimensions with KL ~ 0 are unused (posterior collapse).
* Traversals: decode z = origin + t e_j along the most active dimensions; the decoded
  origin of latent space (the study: "0 in latent space is completely featureless").
* A linear probe gamma ~ w . mu_z + b fitted on the training split and scored (R^2)
  on the test split: can the latent space measure the field?
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcsim.clitools import atomic_output
from mcsim.shared import save_figure
from vae.data import Split
from vae.loss import kl_standard_normal
from vae.models import VAE

__all__ = [
    "LatentPCA",
    "GammaProbe",
    "encode_latent",
    "latent_pca",
    "latent_tsne",
    "kl_per_dimension",
    "active_dimensions",
    "latent_traversal",
    "decode_origin",
    "gamma_probe",
    "plot_latent_pca",
    "plot_embedding",
    "plot_kl_ranking",
    "plot_traversal",
    "plot_origin",
    "plot_probe",
    "plot_reconstructions",
    "analyze",
]


@torch.no_grad()
def encode_latent(model: VAE, x: np.ndarray, batch_size: int = 1024
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(mu_z, logvar_z), each (M, D) float32, for inputs x (M, *input_shape)."""
    model.eval()
    dev = next(model.parameters()).device
    mus, lvs = [], []
    for a in range(0, len(x), batch_size):
        mu, lv = model.encode(torch.as_tensor(np.asarray(x[a:a + batch_size]), device=dev))
        mus.append(mu.cpu().numpy())
        lvs.append(lv.cpu().numpy())
    return np.concatenate(mus), np.concatenate(lvs)


@dataclass
class LatentPCA:
    """PCA of latent means.

    Attributes:
        projected: (M, k) coordinates along the first k principal components.
        components: (k, D) principal axes.
        explained_variance_ratio: (min(M, D),) fraction of variance per component.
        mean: (D,) mean latent vector.
    """

    projected: np.ndarray
    components: np.ndarray
    explained_variance_ratio: np.ndarray
    mean: np.ndarray


def latent_pca(mu_z: np.ndarray, n_components: int = 2) -> LatentPCA:
    """PCA of latent means mu_z (M, D) (via the SVD of the centred data)."""
    mu = np.asarray(mu_z, dtype=np.float64)
    mean = mu.mean(axis=0)
    c = mu - mean
    _, s, vt = np.linalg.svd(c, full_matrices=False)
    var = s ** 2
    ratio = var / var.sum() if var.sum() > 0 else np.zeros_like(var)
    k = min(n_components, vt.shape[0])
    return LatentPCA(c @ vt[:k].T, vt[:k], ratio, mean)


def latent_tsne(mu_z: np.ndarray, seed: int = 0, max_points: int = 2000,
                perplexity: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """2-D t-SNE of (at most ``max_points``, chosen with ``default_rng(seed)``) latent means.

    Returns:
        (idx, embedding): the indices used (sorted) and their (len(idx), 2) embedding.
    """
    from sklearn.manifold import TSNE

    mu = np.asarray(mu_z, dtype=np.float64)
    idx = np.arange(len(mu))
    if len(mu) > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(len(mu), max_points, replace=False))
    perp = float(min(perplexity, max(2.0, (len(idx) - 1) / 3)))
    emb = TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(
        mu[idx])
    return idx, emb


def kl_per_dimension(mu_z: np.ndarray, logvar_z: np.ndarray) -> np.ndarray:
    """Mean KL(q(z_j|x) || N(0, 1)) per latent dimension j over the data, (D,), nats."""
    kl = kl_standard_normal(torch.as_tensor(mu_z, dtype=torch.float64),
                            torch.as_tensor(logvar_z, dtype=torch.float64))
    return kl.mean(dim=0).numpy()


def active_dimensions(kl_dim: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Indices of dimensions with mean KL above ``threshold`` nats, most active first."""
    order = np.argsort(-np.asarray(kl_dim), kind="stable")
    return order[np.asarray(kl_dim)[order] > threshold]


@torch.no_grad()
def latent_traversal(model: VAE, dims: np.ndarray | list[int], values: np.ndarray,
                     base: np.ndarray | None = None, gamma: float | None = None) -> np.ndarray:
    """Decode z = base + t e_j for each dimension j in ``dims`` and each t in ``values``.

    Args:
        dims: latent dimensions to move along.
        values: (T,) offsets t, in units of the prior's standard deviation.
        base: (D,) starting point (default: the origin).
        gamma: the field, for decoders that take it.

    Returns:
        (len(dims), T, *input_shape) decoded inputs.
    """
    model.eval()
    d = model.latent_dim
    z0 = np.zeros(d, np.float32) if base is None else np.asarray(base, np.float32)
    values = np.asarray(values, np.float32)
    dev = next(model.parameters()).device
    out = []
    for j in dims:
        z = np.repeat(z0[None], len(values), axis=0)
        z[:, j] += values
        out.append(model.decode(torch.as_tensor(z, device=dev), gamma).cpu().numpy())
    return np.stack(out) if out else np.zeros((0, len(values)))


@torch.no_grad()
def decode_origin(model: VAE, gamma: float | None = None) -> np.ndarray:
    """The decoded origin z = 0 (at ``gamma`` for decoders that take it), shape
    input_shape."""
    model.eval()
    dev = next(model.parameters()).device
    return model.decode(torch.zeros(1, model.latent_dim, device=dev), gamma).cpu().numpy()[0]


@dataclass
class GammaProbe:
    """A linear probe gamma ~ w . mu_z + b (ridge, fitted on train, scored on test).

    Attributes:
        r2: coefficient of determination on the test split.
        rmse: root-mean-square error of gamma on the test split.
        r2_train: R^2 on the training split.
        coef: (D,) w; intercept: b.
        gamma_test, pred_test: (M_test,) true and predicted gamma.
    """

    r2: float
    rmse: float
    r2_train: float
    coef: np.ndarray
    intercept: float
    gamma_test: np.ndarray
    pred_test: np.ndarray


def gamma_probe(mu_train: np.ndarray, gamma_train: np.ndarray, mu_test: np.ndarray,
                gamma_test: np.ndarray, alpha: float = 1e-3) -> GammaProbe:
    """Fit a ridge regression (penalty ``alpha`` on standardised features) from latent
    means to gamma on the training split and score it on the test split."""
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score

    mu_tr = np.asarray(mu_train, np.float64)
    m, s = mu_tr.mean(axis=0), mu_tr.std(axis=0)
    s[s == 0] = 1.0
    reg = Ridge(alpha=alpha).fit((mu_tr - m) / s, gamma_train)
    pred = reg.predict((np.asarray(mu_test, np.float64) - m) / s)
    pred_tr = reg.predict((mu_tr - m) / s)
    g = np.asarray(gamma_test, np.float64)
    return GammaProbe(float(r2_score(g, pred)), float(np.sqrt(np.mean((pred - g) ** 2))),
                      float(r2_score(gamma_train, pred_tr)), reg.coef_ / s,
                      float(reg.intercept_ - np.sum(reg.coef_ * m / s)), g, pred)


# ----------------------------------------------------------------------------- plots

def _gamma_colors(gamma: np.ndarray):
    import matplotlib.pyplot as plt

    vals = np.unique(gamma)
    cmap = plt.get_cmap("viridis")
    pos = (vals - vals.min()) / (np.ptp(vals) or 1.0)
    return vals, [cmap(0.9 * p) for p in pos]


def _scatter_by_gamma(ax, xy: np.ndarray, gamma: np.ndarray) -> None:
    vals, cols = _gamma_colors(gamma)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(xy))  # draw groups interleaved, not on top of each other
    colour_of = {v: c for v, c in zip(vals, cols, strict=True)}
    ax.scatter(xy[order, 0], xy[order, 1], s=4, alpha=0.6, linewidths=0,
               c=[colour_of[g] for g in gamma[order]], rasterized=True)
    for v, c in zip(vals, cols, strict=True):
        ax.scatter([], [], s=20, color=c, label=f"γ = {v:g}")
    ax.legend(fontsize=8, markerscale=1.2, loc="best", framealpha=0.8)


def _new_ax(ax, figsize=(5, 4.2)):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    return ax


def plot_latent_pca(pca: LatentPCA, gamma: np.ndarray, ax=None):
    """PC1 vs PC2 of the latent means, coloured by gamma; axis labels give the
    explained-variance ratios."""
    ax = _new_ax(ax)
    r = pca.explained_variance_ratio
    _scatter_by_gamma(ax, pca.projected[:, :2], np.asarray(gamma))
    ax.set_xlabel(f"PC1 ({100 * r[0]:.1f} % of variance)")
    ax.set_ylabel(f"PC2 ({100 * r[1]:.1f} % of variance)" if len(r) > 1 else "PC2")
    ax.set_title(f"PCA of latent means (PC1+PC2: {100 * r[:2].sum():.1f} %)")
    ax.grid(alpha=0.3)
    return ax


def plot_embedding(emb: np.ndarray, gamma: np.ndarray, ax=None, title: str = "t-SNE"):
    """A 2-D embedding (e.g. t-SNE) coloured by gamma."""
    ax = _new_ax(ax)
    _scatter_by_gamma(ax, emb, np.asarray(gamma))
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def plot_kl_ranking(kl_dim: np.ndarray, ax=None, threshold: float = 0.01):
    """Mean KL per latent dimension, sorted, with the activity threshold (log scale when
    the values span more than a factor 30)."""
    ax = _new_ax(ax, (7, 3.6))
    order = np.argsort(-kl_dim, kind="stable")
    k = np.asarray(kl_dim)[order]
    colors = ["C0" if v > threshold else "0.7" for v in k]
    ax.bar(np.arange(len(k)), k, color=colors)
    ax.set_xticks(np.arange(len(k)))
    ax.set_xticklabels([str(j) for j in order], fontsize=6 if len(k) > 20 else 8,
                       rotation=90 if len(k) > 20 else 0)
    ax.axhline(threshold, color="C3", lw=0.8, ls="--", label=f"active threshold {threshold:g}")
    top = max(float(k.max()), threshold) * 1.15
    if top / max(float(k.min()), 1e-6) > 30:
        ax.set_yscale("log")
        ax.set_ylim(max(min(float(k.min()), threshold), 1e-6) * 0.5, top * 2)
    else:
        ax.set_ylim(0, top)
    n_act = int((k > threshold).sum())
    ax.set_title(f"KL per latent dimension: {n_act} of {len(k)} active "
                 f"(total {k.sum():.1f} nats per configuration)")
    ax.set_xlabel("latent dimension (sorted by KL)")
    ax.set_ylabel("mean KL (nats)")
    ax.legend(fontsize=8, loc="upper right")
    return ax


def _show_input(ax, img: np.ndarray, representation: str, vmax: float, box_units: float):
    if representation == "coords":
        ax.scatter(img[:, 0], img[:, 1], s=6, c=np.arange(len(img)), cmap="viridis")
        ax.set_xlim(0, box_units)
        ax.set_ylim(0, box_units)
        ax.set_aspect("equal")
        return None
    cmap = "gray_r" if representation == "grid" else "magma"
    return ax.imshow(img[0], cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")


def plot_traversal(decoded: np.ndarray, dims, values, representation: str = "distance",
                   vmax: float = 1.0, box_units: float = 1.0, fig=None):
    """Grid of decoded inputs: one row per latent dimension, one column per offset."""
    import matplotlib.pyplot as plt

    nr, nc = decoded.shape[:2]
    if fig is None:
        fig = plt.figure(figsize=(1.6 * nc + 0.8, 1.6 * nr + 0.6), constrained_layout=True)
    axes = fig.subplots(nr, nc, squeeze=False)
    im = None
    for i in range(nr):
        for k in range(nc):
            ax = axes[i, k]
            im = _show_input(ax, decoded[i, k], representation, vmax, box_units) or im
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"t = {values[k]:+.1f}", fontsize=9)
            if k == 0:
                ax.set_ylabel(f"z[{dims[i]}]", fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.6, label="decoded value (input units)")
    fig.suptitle("latent traversals from the origin along the most active dimensions "
                 "(t in prior std units)", fontsize=10)
    return fig


def plot_origin(origin: np.ndarray, references: dict[str, np.ndarray],
                representation: str = "distance", vmax: float = 1.0, box_units: float = 1.0,
                fig=None):
    """The decoded origin next to reference inputs (e.g. the mean input per gamma)."""
    import matplotlib.pyplot as plt

    n = 1 + len(references)
    if fig is None:
        fig = plt.figure(figsize=(2.6 * n + 0.8, 3.0), constrained_layout=True)
    axes = fig.subplots(1, n, squeeze=False)[0]
    im = _show_input(axes[0], origin, representation, vmax, box_units)
    axes[0].set_title("decoded origin z = 0", fontsize=9)
    for ax, (name, ref) in zip(axes[1:], references.items(), strict=True):
        im = _show_input(ax, ref, representation, vmax, box_units) or im
        ax.set_title(name, fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label="value (input units)")
    return fig


def plot_probe(probe: GammaProbe, ax=None):
    """Predicted vs true gamma on the test split (jittered strips, mean +- std)."""
    ax = _new_ax(ax)
    g, p = probe.gamma_test, probe.pred_test
    vals, cols = _gamma_colors(g)
    rng = np.random.default_rng(0)
    width = 0.25 * (np.min(np.diff(vals)) if len(vals) > 1 else 1.0)
    for v, c in zip(vals, cols, strict=True):
        sel = g == v
        ax.scatter(v + rng.uniform(-width, width, sel.sum()), p[sel], s=3, alpha=0.35,
                   color=c, linewidths=0, rasterized=True)
        ax.errorbar(v, p[sel].mean(), yerr=p[sel].std(), fmt="o", color="k", ms=4, capsize=3)
    pad = 0.1 * (np.ptp(g) or 1.0)
    ax.plot([g.min() - pad, g.max() + pad], [g.min() - pad, g.max() + pad], color="C3", lw=0.8,
            ls="--", label="ideal")
    ax.set_xlabel("true γ")
    ax.set_ylabel("predicted γ (linear probe on μ_z)")
    ax.set_title(f"linear γ probe: test R² = {probe.r2:.3f}, RMSE = {probe.rmse:.3f}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def plot_reconstructions(x: np.ndarray, x_hat: np.ndarray, labels: list[str],
                         representation: str = "distance", vmax: float = 1.0,
                         box_units: float = 1.0, fig=None):
    """Inputs (top row) and their reconstructions decode(mu_z) (bottom row)."""
    import matplotlib.pyplot as plt

    n = len(x)
    if fig is None:
        fig = plt.figure(figsize=(2.2 * n + 0.8, 4.6), constrained_layout=True)
    axes = fig.subplots(2, n, squeeze=False)
    im = None
    for k in range(n):
        im = _show_input(axes[0, k], x[k], representation, vmax, box_units) or im
        _show_input(axes[1, k], x_hat[k], representation, vmax, box_units)
        axes[0, k].set_title(labels[k], fontsize=9)
        mse = float(np.mean((x[k] - x_hat[k]) ** 2))
        axes[1, k].set_title(f"MSE {mse:.2g}", fontsize=8)
    axes[0, 0].set_ylabel("input")
    axes[1, 0].set_ylabel("reconstruction")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.7, label="value (input units)")
    return fig


# ------------------------------------------------------------------------- pipeline

def _save(fig, path: Path) -> None:
    save_figure(fig, path, dpi=130)


def analyze(model: VAE, x: np.ndarray, gamma: np.ndarray, split: Split,
            out_dir: str | os.PathLike,
            *, representation: str = "distance", vmax: float = 1.0, seed: int = 0,
            tsne_points: int = 2000, n_traverse: int = 5, threshold: float = 0.01
            ) -> dict[str, Any]:
    """Run the whole latent analysis and write figures and ``latent.json`` to ``out_dir``.

    Args:
        model: a trained VAE.
        x: (M, *input_shape) inputs; gamma: (M,) labels; split: a :class:`vae.data.Split`.
        representation: for drawing inputs (``distance``, ``coords``, ``grid``).
        vmax: colour-scale maximum of distance images (d_max of the model).
        tsne_points: at most this many test points in the t-SNE (0 skips it).
        n_traverse: traverse this many most-active dimensions.

    Returns:
        The summary written to ``latent.json``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gamma = np.asarray(gamma, np.float64)
    mu, lv = encode_latent(model, x)
    tr, te = split.train, split.test
    if te.size == 0:
        te = split.val
    box_units = vmax  # for coordinates vmax is the box side in input units
    if representation == "distance":  # colour scale from the data, not the box diagonal
        vmax = float(np.percentile(x[te], 99.5))
    summary: dict[str, Any] = {"latent_dim": int(model.latent_dim), "n_test": int(te.size)}

    pca = latent_pca(mu[te], 2)
    summary["pca_explained_variance_ratio"] = pca.explained_variance_ratio[:10].tolist()
    _save(plot_latent_pca(pca, gamma[te]).figure, out / "pca.png")

    if tsne_points > 0 and te.size >= 10:
        idx, emb = latent_tsne(mu[te], seed=seed, max_points=tsne_points)
        _save(plot_embedding(emb, gamma[te][idx],
                             title=f"t-SNE of latent means ({len(idx)} test configurations)"
                             ).figure, out / "tsne.png")

    kl_dim = kl_per_dimension(mu[te], lv[te])
    act = active_dimensions(kl_dim, threshold)
    summary["kl_per_dimension"] = kl_dim.tolist()
    summary["active_dimensions"] = act.tolist()
    _save(plot_kl_ranking(kl_dim, threshold=threshold).figure, out / "kl_ranking.png")

    dims = (act if act.size else np.argsort(-kl_dim))[:n_traverse]
    values = np.linspace(-3, 3, 7)
    # decoders that take gamma: traversal, origin and mean at the median trained gamma
    g_ref = float(np.median(np.unique(gamma))) if model.needs_gamma else None
    if g_ref is not None:
        summary["decoded_at_gamma"] = g_ref
    dec = latent_traversal(model, dims, values, gamma=g_ref)
    _save(plot_traversal(dec, dims.tolist(), values, representation, vmax, box_units),
          out / "traversal.png")

    origin = decode_origin(model, g_ref)
    gs = np.unique(gamma[te])
    ends = [gs[0], gs[-1]] if len(gs) > 1 else [gs[0]]
    if representation == "coords":  # a mean of sorted coordinates is not a configuration
        refs = {f"test input, γ = {g:g}": x[te][gamma[te] == g][0] for g in ends}
    else:
        refs = {f"mean test input, γ = {g:g}": x[te][gamma[te] == g].mean(axis=0) for g in ends}
    with torch.no_grad():
        dev = next(model.parameters()).device
        mean_mu = torch.as_tensor(mu[te].mean(axis=0, keepdims=True), device=dev)
        refs = {"decoded mean of μ_z (test)": model.decode(mean_mu, g_ref).cpu().numpy()[0],
                **refs}
    _save(plot_origin(origin, refs, representation, vmax, box_units), out / "origin.png")
    summary["origin_std"] = float(np.std(origin))

    probe = gamma_probe(mu[tr], gamma[tr], mu[te], gamma[te])
    summary["probe"] = {"r2_test": probe.r2, "rmse_test": probe.rmse, "r2_train": probe.r2_train}
    _save(plot_probe(probe).figure, out / "probe.png")

    # one test configuration per gamma: input vs reconstruction
    picks = [te[gamma[te] == g][0] for g in np.unique(gamma[te])][:6]
    with torch.no_grad():
        dev = next(model.parameters()).device
        g_picks = torch.as_tensor(gamma[picks], dtype=torch.float32, device=dev)
        xh = model.decode(torch.as_tensor(mu[picks], device=dev), g_picks).cpu().numpy()
    _save(plot_reconstructions(x[picks], xh, [f"γ = {gamma[i]:g} (#{i})" for i in picks],
                               representation, vmax, box_units), out / "reconstructions.png")
    plt.close("all")

    with atomic_output(out / "latent.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    return summary

