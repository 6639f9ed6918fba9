"""The ``latent`` stage: the figures and ``latent.json`` of :func:`vae.latent.analyze`."""

from __future__ import annotations

from typing import Any

from pipelines.study.common import (
    data_file,
)
from pipelines.study.engine import Stage, StageContext


def params_latent(cfg: dict[str, Any]) -> dict[str, Any]:
    return dict(cfg["latent"])


LATENT_FIGURES = ("pca.png", "tsne.png", "kl_ranking.png", "traversal.png", "origin.png",
                  "probe.png", "reconstructions.png")


def stage_latent(ctx: StageContext) -> dict[str, Any]:
    """Latent analysis of the trained model (vae.latent.analyze): PCA, t-SNE, KL per
    dimension, traversals, decoded origin, gamma probe."""
    from vae.checkpoint import load_model
    from vae.data import output_max
    from vae.latent import analyze
    from vae.training import prepare_data

    tv = load_model(ctx.deps["train"].dir / "best.pt")
    cfg = tv.config
    data = prepare_data(cfg, [data_file(ctx.deps["data"])])
    if data.info.fingerprint != tv.info.fingerprint:
        raise RuntimeError("latent: the data differ from the ones the model was trained on")
    p = ctx.params
    summary = analyze(tv.model, data.x, data.gamma, tv.split, ctx.dir,
                      representation=cfg.data.representation,
                      vmax=output_max(cfg.data, data.info.box), seed=p["seed"],
                      tsne_points=p["tsne_points"], n_traverse=p["n_traverse"])
    ctx.figures.extend(f for f in LATENT_FIGURES if (ctx.dir / f).is_file())
    r = summary["pca_explained_variance_ratio"]
    return {"pca_explained_variance_ratio": r, "pc12": float(sum(r[:2])),
            "probe": summary["probe"], "active_dimensions": len(summary["active_dimensions"]),
            "latent_dim": summary["latent_dim"], "n_test": summary["n_test"]}


STAGE = Stage("latent", stage_latent, params_latent, ("data", "train"), title="latent analysis",
              heading="Latent space", order=50)
