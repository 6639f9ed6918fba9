"""The ``train`` stage: the default VAE, a ``train-vae`` run directory (``best.pt``,
``last.pt``, history, ``loss_curve.png``, ``metrics.json``)."""

from __future__ import annotations

from typing import Any

from mcsim.clitools import UserError
from pipelines.study.common import (
    data_file,
    merge_overrides,
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


def _complete(section: dict[str, Any]) -> dict[str, Any]:
    """Every RunConfig default, the profile's values on top."""
    from vae.config import RunConfig

    return merge_overrides(RunConfig().to_dict(), section, "vae.")


def validate_train(cfg: dict[str, Any]) -> None:
    """The ``vae`` section builds a RunConfig."""
    try:
        run_config(cfg)
    except (ValueError, UserError) as exc:
        raise UserError(f"--config: vae.{exc}") from None


def _vae(epochs: int) -> dict[str, Any]:
    return {"data": {"val_fraction": 0.1, "test_fraction": 0.2},
            "model": {"arch": "pair", "latent_dim": 40},
            "loss": {"form": "lambda", "weight": 3.5e-4},
            "train": {"epochs": epochs, "batch_size": 128, "lr": 1e-3, "patience": 10}}


STAGE = Stage(
    "train", stage_train, params_train, ("data",), title="the default VAE",
    heading="VAE training", order=30, section="vae",
    defaults={"quick": _vae(25), "full": _vae(100)}, complete=_complete,
    seeds=(("vae", "train", "seed"), ("vae", "data", "split_seed")), validate=validate_train)
