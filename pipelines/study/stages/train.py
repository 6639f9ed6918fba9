"""The ``train`` stage: the default VAE, a ``train-vae`` run directory (``best.pt``,
``last.pt``, history, ``loss_curve.png``, ``metrics.json``)."""

from __future__ import annotations

from typing import Any

from pipelines.study.common import (
    data_file,
)
from pipelines.study.engine import Stage, StageContext


def run_config(cfg: dict[str, Any]):
    """The :class:`vae.RunConfig` of the default VAE."""
    from vae.config import RunConfig

    return RunConfig.from_dict(cfg["vae"])



def params_train(cfg: dict[str, Any]) -> dict[str, Any]:
    return {"vae": run_config(cfg).to_dict()}


def stage_train(ctx: StageContext) -> dict[str, Any]:
    """The default VAE (vae.training.train; resumable by epochs)."""
    from vae.config import RunConfig
    from vae.models import count_parameters
    from vae.training import prepare_data, train

    cfg = RunConfig.from_dict(ctx.params["vae"])
    data = prepare_data(cfg, [data_file(ctx.deps["data"])])
    resume = ctx.resume and (ctx.dir / "last.pt").is_file()
    res = train(cfg, data, ctx.dir, resume=resume, overwrite=not resume,
                progress=ctx.progress)
    ctx.figures.append("loss_curve.png")
    sp = data.split
    return {
        "checkpoint": "best.pt", "metrics": res.metrics, "best_epoch": res.best_epoch,
        "epochs_run": res.epochs_run, "stopped_early": res.stopped_early,
        "n_parameters": count_parameters(res.model), "arch": cfg.model.arch,
        "latent_dim": cfg.model.latent_dim, "loss_form": cfg.loss.form,
        "loss_weight": cfg.loss.weight,
        "split": {"train": int(sp.train.size), "val": int(sp.val.size),
                  "test": int(sp.test.size)},
    }


STAGE = Stage("train", stage_train, params_train, ("data",), title="the default VAE",
              heading="VAE training", order=30)
