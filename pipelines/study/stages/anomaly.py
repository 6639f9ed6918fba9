"""The ``anomaly`` stage: :func:`pipelines.anomaly.run_anomaly_test` on the trained model."""

from __future__ import annotations

from typing import Any

from pipelines.anomaly import AnomalyConfig, run_anomaly_test
from pipelines.study.common import (
    check_external,
    config_dict,
    data_file,
    external_config,
    figures_in,
)
from pipelines.study.engine import Stage, StageContext


def params_anomaly(cfg: dict[str, Any]) -> dict[str, Any]:
    return {"anomaly": cfg["anomaly"]}


def stage_anomaly(ctx: StageContext) -> dict[str, Any]:
    """Anomaly tests of the trained model (pipelines.anomaly.run_anomaly_test)."""
    acfg = external_config(ctx.config, "anomaly", AnomalyConfig)
    summary = run_anomaly_test(ctx.deps["train"].dir / "best.pt", ctx.dir, acfg,
                               data_dir=ctx.deps["anomaly_data"].dir, progress=ctx.progress,
                               train_data=[data_file(ctx.deps["data"])],
                               n_threads=ctx.threads)
    ctx.figures.extend(figures_in(summary, ctx.dir))
    return {"result": summary, "config": config_dict(acfg)}


#: AnomalyConfig fields that follow the study's data unless the file sets them
_FOLLOWS = {"temperature": ("system", "temperature"), "potential": ("data", "potential"),
            "cutoff": ("data", "cutoff"), "sweeps": ("data", "sweeps"),
            "delta": ("data", "delta")}


def _resolve(cfg: dict[str, Any], over: dict[str, Any], threads: int | None) -> None:
    """The anomaly sets are simulated like the study's data unless the file says
    otherwise."""
    for k_an, (sec, k) in _FOLLOWS.items():
        if k_an not in over.get("anomaly", {}):
            cfg["anomaly"][k_an] = cfg[sec][k]


def validate_anomaly(cfg: dict[str, Any]) -> None:
    """The section builds an AnomalyConfig; every default is filled in."""
    cfg["anomaly"] = check_external(cfg, "anomaly", AnomalyConfig)


STAGE = Stage(
    "anomaly", stage_anomaly, params_anomaly, ("data", "train", "anomaly_data"),
    title="anomaly tests", heading="Anomaly detection", order=70, section="anomaly",
    defaults={"quick": {"n": 300, "bootstrap": 200, "impute_n": 100, "iforest_trees": 100,
                        "iwae_k": 8},
              "full": {"n": 2000}},
    open_keys=True, seeds=(("anomaly", "seed"),), resolve=_resolve,
    validate=validate_anomaly)
