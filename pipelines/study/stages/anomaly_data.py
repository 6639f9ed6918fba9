"""The ``anomaly_data`` stage: the anomaly sets
(:func:`pipelines.anomaly.make_anomaly_sets`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.anomaly import AnomalyConfig, make_anomaly_sets
from pipelines.study.common import (
    config_dict,
    external_config,
)
from pipelines.study.engine import Stage, StageContext

#: AnomalyConfig fields that define the Monte Carlo anomaly sets (the cache key of
#: ``anomaly_data``; the scoring settings only matter to ``anomaly``)
ANOMALY_SET_FIELDS = ("sets", "unseen_gammas", "n", "sweeps", "temperature", "delta",
                      "potential", "cutoff", "fake_potential", "fake_cutoff", "fake_gamma",
                      "fake_sweeps", "seed")


def params_anomaly_data(cfg: dict[str, Any]) -> dict[str, Any]:
    s = cfg["system"]
    a = cfg["anomaly"]
    return {"anomaly": {k: a[k] for k in ANOMALY_SET_FIELDS if k in a},
            "n_particles": s["n_particles"], "box": s["box"]}


def stage_anomaly_data(ctx: StageContext) -> dict[str, Any]:
    """The anomaly sets: unseen gamma, the fake n-m potential, uniform configurations."""
    acfg = external_config(ctx.config, "anomaly", AnomalyConfig)
    p = ctx.params
    paths = make_anomaly_sets(acfg, ctx.dir, n_particles=p["n_particles"],
                              box=float(p["box"]), progress=ctx.progress,
                              n_threads=ctx.threads)
    return {"sets": {k: str(Path(v).resolve().relative_to(ctx.dir.resolve()))
                     if Path(v).resolve().is_relative_to(ctx.dir.resolve()) else str(v)
                     for k, v in paths.items()},
            "config": config_dict(acfg)}


STAGE = Stage("anomaly_data", stage_anomaly_data, params_anomaly_data, (), title="anomaly sets",
              heading="Anomaly sets", order=20)
