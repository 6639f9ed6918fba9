"""The ``generate`` stage: :func:`pipelines.generate.run_generation` on the trained model."""

from __future__ import annotations

from typing import Any

from pipelines.generate import GenerateConfig, run_generation
from pipelines.study.common import (
    config_dict,
    external_config,
    figures_in,
)
from pipelines.study.engine import Stage, StageContext


def params_generate(cfg: dict[str, Any]) -> dict[str, Any]:
    # threads change timings only (set from --threads at run time)
    return {"generate": {k: v for k, v in cfg["generate"].items() if k != "threads"}}


def stage_generate(ctx: StageContext) -> dict[str, Any]:
    """New configurations from the latent space, judged against Monte Carlo
    (pipelines.generate.run_generation)."""
    gcfg = external_config({**ctx.config, "generate": {**ctx.config["generate"],
                                                       "threads": ctx.threads}}, "generate",
                           GenerateConfig)
    # reference: the model's held-out test split (mc_files=None), never training data
    summary = run_generation(ctx.deps["train"].dir / "best.pt", ctx.dir, gcfg, mc_files=None,
                             progress=ctx.progress, overwrite=True)
    ctx.figures.extend(figures_in(summary, ctx.dir))
    return {"result": summary, "config": config_dict(gcfg)}


STAGE = Stage("generate", stage_generate, params_generate, ("data", "train"),
              title="generation", heading="Generation", order=80)
