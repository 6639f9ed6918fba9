"""The ``sweep`` stage: one run per (latent dim, lambda), ``sweep.csv``/``.json``/``.png``."""

from __future__ import annotations

import json
from typing import Any

from pipelines.study.common import (
    data_file,
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
    ctx.figures.append("sweep.png")
    return {"rows": rows, "trends": sweep_trends(rows), "table": "sweep.csv",
            "n_configurations": int(len(data.gamma))}


STAGE = Stage("sweep", stage_sweep, params_sweep, ("data",),
              title="latent dimension x lambda sweep", heading="Latent dimension × λ sweep",
              order=40)
