"""The ``latent`` stage: the figures and ``latent.json`` of :func:`vae.latent.analyze`."""

from __future__ import annotations

from typing import Any

from pipelines.study.common import (
    check_ints,
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

    tv = load_model(ctx.deps["train"].dir / "best.pt")
    cfg = tv.config
    data = tv.training_data([data_file(ctx.deps["data"])])
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


def validate_latent(cfg: dict[str, Any]) -> None:
    check_ints(cfg["latent"], "latent", {"tsne_points": 0, "n_traverse": 1, "seed": 0})


STAGE = Stage(
    "latent", stage_latent, params_latent, ("data", "train"), title="latent analysis",
    heading="Latent space", order=50, section="latent",
    defaults={"quick": {"tsne_points": 300, "n_traverse": 5, "seed": 0},
              "full": {"tsne_points": 2000, "n_traverse": 5, "seed": 0}},
    seeds=(("latent", "seed"),), validate=validate_latent)
