"""The ``sweep`` stage: one run per (latent dim, lambda), ``sweep.csv``/``.json``/``.png``
and the runs' training curves (``curves.png``)."""

from __future__ import annotations

import json
from typing import Any

from mcsim.clitools import UserError
from mcsim.shared import is_int
from pipelines.study.common import (
    data_file,
    need,
)
from pipelines.study.engine import Stage, StageContext


def sweep_run_config(cfg: dict[str, Any]):
    """The sweep's base RunConfig: the default VAE with the sweep's epochs and data size."""
    from vae.config import RunConfig

    d = json.loads(json.dumps(cfg["vae"]))
    d["train"]["epochs"] = cfg["sweep"]["epochs"]
    d["data"]["max_per_gamma"] = cfg["sweep"]["max_per_gamma"]
    return RunConfig.from_dict(d)



def params_sweep(cfg: dict[str, Any]) -> dict[str, Any]:
    s = cfg["sweep"]
    return {"vae": sweep_run_config(cfg).to_dict(),
            "latent_dims": [int(d) for d in s["latent_dims"]],
            "weights": [float(w) for w in s["weights"]]}


def stage_sweep(ctx: StageContext) -> dict[str, Any]:
    """Latent dimension x lambda (vae.sweep.run_sweep): table and figure."""
    from vae.config import RunConfig
    from vae.sweep import run_sweep, sweep_trends
    from vae.training import prepare_data

    cfg = RunConfig.from_dict(ctx.params["vae"])
    data = prepare_data(cfg, [data_file(ctx.deps["data"])])
    rows = run_sweep(cfg, data, ctx.dir, ctx.params["latent_dims"], ctx.params["weights"],
                     resume=ctx.resume, overwrite=True, progress=ctx.progress)
    ctx.figures.extend(["sweep.png", "curves.png"])
    return {"rows": rows, "trends": sweep_trends(rows), "table": "sweep.csv",
            "n_configurations": int(len(data.gamma))}


def validate_sweep(cfg: dict[str, Any]) -> None:
    """The sweep's base RunConfig builds; its grid is non-empty and every weight is a
    valid loss weight."""
    try:
        sweep_run_config(cfg)
    except (ValueError, UserError) as exc:
        raise UserError(f"--config: sweep/vae.{exc}") from None
    sw = cfg["sweep"]
    need(bool(sw["latent_dims"]) and all(is_int(v) and v >= 1 for v in sw["latent_dims"]),
         "sweep.latent_dims", "must be a non-empty list of positive integers",
         sw["latent_dims"])
    need(bool(sw["weights"]) and all(not isinstance(v, bool) and v >= 0 for v in sw["weights"]),
         "sweep.weights", "must be a non-empty list of numbers >= 0", sw["weights"])
    from vae.config import LossConfig

    for w in sw["weights"]:
        try:
            LossConfig(form=cfg["vae"]["loss"]["form"], weight=w)
        except (ValueError, UserError) as exc:
            raise UserError(f"--config: sweep.weights: {exc}") from None


STAGE = Stage("sweep", stage_sweep, params_sweep, ("data",),
              title="latent dimension x lambda sweep", heading="Latent dimension × λ sweep",
              order=40, section="sweep",
              defaults={"quick": {"latent_dims": [10, 40], "weights": [1e-4, 1e-3],
                                  "epochs": 8, "max_per_gamma": 400},
                        "full": {"latent_dims": [10, 20, 40, 80],
                                 "weights": [1e-4, 3.5e-4, 1e-3], "epochs": 30,
                                 "max_per_gamma": 10_000}},
              validate=validate_sweep)
