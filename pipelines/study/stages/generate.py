"""The ``generate`` stage: :func:`pipelines.generate.run_generation` on the trained model."""

from __future__ import annotations

from typing import Any

from pipelines.generate import GenerateConfig, run_generation
from pipelines.study.common import (
    check_external,
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


def _resolve(cfg: dict[str, Any], over: dict[str, Any], threads: int | None) -> None:
    """``generate.threads`` follows ``--threads`` (its timings) unless the file sets it."""
    if threads is not None and "threads" not in over.get("generate", {}):
        cfg["generate"]["threads"] = int(threads)


def validate_generate(cfg: dict[str, Any]) -> None:
    """The section builds a GenerateConfig; every default is filled in."""
    cfg["generate"] = check_external(cfg, "generate", GenerateConfig)


STAGE = Stage(
    "generate", stage_generate, params_generate, ("data", "train"), title="generation",
    heading="Generation", order=80, section="generate",
    defaults={"quick": {"n": 1000, "flow_epochs": 20, "n_boot": 100}, "full": {}},
    open_keys=True, seeds=(("generate", "seed"),), resolve=_resolve,
    validate=validate_generate)
