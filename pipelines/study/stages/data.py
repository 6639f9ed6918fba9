"""The ``data`` stage: the study's Monte Carlo datasets (``study.h5``, mcsim format) and
``overview.png``."""

from __future__ import annotations

import json
from typing import Any

from mcsim.clitools import UserError
from pipelines.study.common import (
    DATA_FILE,
    check_ints,
    need,
    sim_config,
)
from pipelines.study.engine import Stage, StageContext


def params_data(cfg: dict[str, Any]) -> dict[str, Any]:
    d = cfg["data"]
    return {"sim": sim_config(cfg).to_dict(), "check_samples": d["check_samples"],
            "n_traces": d["n_traces"], "equilibrated": bool(d.get("equilibrated", False))}


def stage_data(ctx: StageContext) -> dict[str, Any]:
    """The study's Monte Carlo datasets (mcsim.run_simulation; resumable by chunks),
    judged against equilibrium references; ``data.equilibrated = true`` chooses the
    sweeps per gamma (``--sweeps auto``). A failed verdict is also a console warning."""
    from mcsim.clitools import partial_path
    from mcsim.config import SimConfig
    from mcsim.io import read_dataset
    from mcsim.plotting import dataset_figure
    from mcsim.run import run_simulation

    sim = SimConfig.from_dict(ctx.params["sim"])
    out = ctx.dir / DATA_FILE
    if not out.exists():  # (it exists if a run was interrupted after finishing the file)
        run_simulation(sim, out, resume=ctx.resume and partial_path(out).exists(),
                       chunk_size=int(ctx.config["data"]["chunk_size"]),
                       n_threads=ctx.threads, n_traces=ctx.params["n_traces"],
                       check_samples=ctx.params["check_samples"], verdict=True,
                       auto_sweeps=ctx.params.get("equilibrated", False),
                       progress=ctx.progress)
    ds = read_dataset(out)
    if SimConfig.from_json(ds.attrs["config"]) != sim:
        raise RuntimeError(f"{out}: holds a dataset of other parameters")
    import h5py
    import numpy as np

    checks, verdicts, sweeps, auto = {}, {}, {}, {}
    with h5py.File(out, "r") as f:
        for gi, g in enumerate(sim.gammas):
            a = f[f"diagnostics/gamma_{gi}"].attrs
            if "check" in a:
                checks[f"{g:g}"] = json.loads(a["check"])
            if "verdict" in a:
                verdicts[f"{g:g}"] = json.loads(a["verdict"])
            if "auto_sweeps" in a:
                auto[f"{g:g}"] = json.loads(a["auto_sweeps"])
            sweeps[f"{g:g}"] = int(a.get("sweeps", sim.sweeps))
    _warn_verdicts(verdicts, n=sim.n_particles)
    dataset_figure(ds, ctx.dir / "overview.png")
    ctx.figures.append("overview.png")
    n = sim.n_particles
    per = {}
    for g in sim.gammas:
        m = ds.gamma == g
        e = ds.energy[m] / n
        per[f"{g:g}"] = {"n": int(m.sum()), "energy_per_particle": float(e.mean()),
                         "energy_per_particle_err": float(e.std(ddof=1) / np.sqrt(m.sum())),
                         "acceptance": float(np.mean(ds.acceptance[m]))}
    return {"file": DATA_FILE, "n_total": len(ds), "per_gamma": per, "checks": checks,
            "verdicts": verdicts, "sweeps_per_gamma": sweeps, "auto_sweeps": auto,
            "equilibrated_profile": ctx.params.get("equilibrated", False),
            "n_particles": n, "box": sim.box, "sweeps": sim.sweeps, "protocol": sim.protocol}


def _warn_verdicts(verdicts: dict[str, dict], n: int) -> None:
    """One console line per gamma whose samples failed the equilibration verdict."""
    import sys

    for g, v in verdicts.items():
        if not v["passed"]:
            at = f" at {v['sweeps']} sweeps" if v["sweeps"] else ""
            z_abs = max(abs(z) for z in v["z"].values())
            sys.stderr.write(
                f"reproduce-study: warning: data: gamma={g}: NOT equilibrated{at} (E/N "
                f"{v['data_mean']['energy'] / n:.4f} vs equilibrium "
                f"{v['ref_mean']['energy'] / n:.4f}, z(E) = {v['z']['energy']:+.1f}, "
                f"max |z| = {z_abs:.1f}); set data.equilibrated = true for equilibrated data\n")


def _config_error(exc: Exception, sections: dict[str, str]) -> UserError:
    msg = str(exc)
    field = msg.split(":", 1)[0].split(".")[0]
    return UserError(f"--config: {sections.get(field, '')}{msg}")


def validate_data(cfg: dict[str, Any]) -> None:
    """The study's SimConfig builds (errors name ``system.`` or ``data.`` keys), and the
    run options of the ``data`` section are in range."""
    sim_fields = {"n_particles": "system.", "box": "system.", "temperature": "system.",
                  "gammas": "system.", "potential": "data.", "cutoff": "data."}
    try:
        sim_config(cfg)
    except ValueError as exc:
        raise _config_error(exc, {**{k: "data." for k in ("n_samples", "delta", "sweeps",
                                                          "protocol", "seed")},
                                  **sim_fields}) from None
    d = cfg["data"]
    check_ints(d, "data", {"check_samples": 0, "n_traces": 0, "chunk_size": 1})
    need(isinstance(d.get("equilibrated", False), bool), "data.equilibrated",
         "must be true or false", d.get("equilibrated"))
    need(len(cfg["system"]["gammas"]) >= 1, "system.gammas", "need at least one", [])


_DATA = {"sweeps": 2500, "delta": 0.2, "potential": "lj", "cutoff": 3.0,
         "protocol": "independent", "check_samples": 0, "n_traces": 4}

STAGE = Stage(
    "data", stage_data, params_data, (), title="Monte Carlo datasets for the four gammas",
    heading="Monte Carlo data", order=10, section="data",
    defaults={"quick": {"n_samples": 800, **_DATA, "chunk_size": 200, "equilibrated": False,
                        "seed": 0},
              "full": {"n_samples": 10_000, **_DATA, "chunk_size": 500,
                       "equilibrated": False, "seed": 0}},
    seeds=(("data", "seed"),), validate=validate_data)
