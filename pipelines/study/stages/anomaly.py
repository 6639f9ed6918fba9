"""The ``anomaly`` stage: :func:`pipelines.anomaly.run_anomaly_test` on the trained model."""

from __future__ import annotations

from typing import Any

from pipelines.anomaly import AnomalyConfig, run_anomaly_test
from pipelines.study.common import (
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


STAGE = Stage("anomaly", stage_anomaly, params_anomaly, ("data", "train", "anomaly_data"),
              title="anomaly tests", heading="Anomaly detection", order=70)
