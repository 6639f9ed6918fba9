"""The stages of ``reproduce-study`` (except reconstruction, in
:mod:`pipelines.reproduce_reconstruct`, and the report, in :mod:`pipelines.report`).

Each stage is a function ``stage_<name>(ctx) -> summary`` over a
:class:`pipelines.stages.StageContext` and a function ``params_<name>(config) ->
dict`` that picks from the resolved configuration exactly the parameters its output
depends on (the cache key). Options that do not change the output (threads, chunk
sizes, progress bars) are read from ``ctx`` or ``ctx.config`` and kept out of the key.

Outputs, in each stage's directory:

* ``data``: ``study.h5`` (the four-gamma dataset, mcsim format), ``overview.png``;
* ``anomaly_data``: the anomaly sets (:func:`pipelines.anomaly.make_anomaly_sets`);
* ``train``: a ``train-vae`` run directory (``best.pt``, ``last.pt``, history,
  ``loss_curve.png``, ``metrics.json``);
* ``sweep``: one run per (latent dim, lambda), ``sweep.csv``/``.json``/``.png``;
* ``latent``: the figures and ``latent.json`` of :func:`vae.latent.analyze`;
* ``anomaly``: :func:`pipelines.anomaly.run_anomaly_test` outputs;
* ``generate``: :func:`pipelines.generate.run_generation` outputs.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any

from mcsim.clitools import UserError
from pipelines.stages import StageContext, StageRecord

__all__ = [
    "StageUnavailable",
    "sim_config",
    "cutoff_value",
    "run_config",
    "sweep_run_config",
    "external_config",
    "data_file",
    "params_data",
    "stage_data",
    "params_anomaly_data",
    "stage_anomaly_data",
    "params_train",
    "stage_train",
    "params_sweep",
    "stage_sweep",
    "params_latent",
    "stage_latent",
    "params_anomaly",
    "stage_anomaly",
    "params_generate",
    "stage_generate",
]

DATA_FILE = "study.h5"


class StageUnavailable(RuntimeError):
    """A stage's implementation (a module written elsewhere) is not available."""


# ---------------------------------------------------------------- configurations

def sim_config(cfg: dict[str, Any]):
    """The :class:`mcsim.SimConfig` of the study's datasets."""
    from mcsim.config import SimConfig
    from mcsim.potentials import Potential

    s, d = cfg["system"], cfg["data"]
    pot = Potential.parse(str(d["potential"]), cutoff=cutoff_value(d["cutoff"]))
    return SimConfig(n_particles=s["n_particles"], box=float(s["box"]),
                     temperature=float(s["temperature"]), potential=pot,
                     gammas=tuple(float(g) for g in s["gammas"]),
                     n_samples=d["n_samples"], delta=float(d["delta"]), sweeps=d["sweeps"],
                     protocol=d["protocol"], seed=d["seed"])


def cutoff_value(v: Any) -> float | None:
    """A cutoff from the config: a number, or ``"none"`` for no cutoff."""
    if isinstance(v, str) and v.strip().lower() == "none":
        return None
    return v


def run_config(cfg: dict[str, Any]):
    """The :class:`vae.RunConfig` of the default VAE."""
    from vae.config import RunConfig

    return RunConfig.from_dict(cfg["vae"])


def sweep_run_config(cfg: dict[str, Any]):
    """The sweep's base RunConfig: the default VAE with the sweep's epochs and data size."""
    from vae.config import RunConfig

    d = json.loads(json.dumps(cfg["vae"]))
    d["train"]["epochs"] = cfg["sweep"]["epochs"]
    d["data"]["max_per_gamma"] = cfg["sweep"]["max_per_gamma"]
    return RunConfig.from_dict(d)


def _external(module: str, attr: str):
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise StageUnavailable(f"{module} is not available ({exc}); this stage cannot run "
                               "until it exists") from None
    if not hasattr(mod, attr):
        raise StageUnavailable(f"{module}.{attr} does not exist yet; this stage cannot run "
                               "until it does")
    return getattr(mod, attr)


#: keys of the ``anomaly`` / ``generate`` sections handled here, not by the config class
_OWN_KEYS: dict[str, tuple[str, ...]] = {"anomaly": (), "generate": ()}
_CLASS = {"anomaly": ("pipelines.anomaly", "AnomalyConfig"),
          "generate": ("pipelines.generate", "GenerateConfig")}


def external_config(cfg: dict[str, Any], section: str):
    """Build the AnomalyConfig / GenerateConfig of a section (the class's defaults, the
    section's values on top). The injected master seed is dropped if the class has no
    ``seed`` field; any other unknown key is an error naming it."""
    module, name = _CLASS[section]
    cls = _external(module, name)
    values = {k: v for k, v in cfg[section].items() if k not in _OWN_KEYS[section]}
    fields = {f.name for f in dataclasses.fields(cls)}
    if "seed" not in fields:
        values.pop("seed", None)
    unknown = sorted(set(values) - fields)
    if unknown:
        raise UserError(f"--config: {section}.{unknown[0]}: unknown key")
    try:
        return cls.from_dict(values) if hasattr(cls, "from_dict") else cls(**values)
    except (TypeError, ValueError, UserError) as exc:
        raise UserError(f"--config: {section}.{exc}") from None


def _config_dict(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return dataclasses.asdict(obj)


def data_file(rec: StageRecord) -> Path:
    """Absolute path of the study dataset written by the ``data`` stage."""
    return (rec.dir / DATA_FILE).resolve()


# ---------------------------------------------------------------- data

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


# ---------------------------------------------------------------- anomaly sets

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
    make = _external("pipelines.anomaly", "make_anomaly_sets")
    acfg = external_config(ctx.config, "anomaly")
    p = ctx.params
    paths = make(acfg, ctx.dir, n_particles=p["n_particles"], box=float(p["box"]),
                 progress=ctx.progress, n_threads=ctx.threads)
    return {"sets": {k: str(Path(v).resolve().relative_to(ctx.dir.resolve()))
                     if Path(v).resolve().is_relative_to(ctx.dir.resolve()) else str(v)
                     for k, v in paths.items()},
            "config": _config_dict(acfg)}


# ---------------------------------------------------------------- training

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


# ---------------------------------------------------------------- sweep

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


# ---------------------------------------------------------------- latent analysis

def params_latent(cfg: dict[str, Any]) -> dict[str, Any]:
    return dict(cfg["latent"])


LATENT_FIGURES = ("pca.png", "tsne.png", "kl_ranking.png", "traversal.png", "origin.png",
                  "probe.png", "reconstructions.png")


def stage_latent(ctx: StageContext) -> dict[str, Any]:
    """Latent analysis of the trained model (vae.latent.analyze): PCA, t-SNE, KL per
    dimension, traversals, decoded origin, gamma probe."""
    from vae.checkpoint import load_model
    from vae.data import output_max
    from vae.latent import analyze
    from vae.training import prepare_data

    tv = load_model(ctx.deps["train"].dir / "best.pt")
    cfg = tv.config
    data = prepare_data(cfg, [data_file(ctx.deps["data"])])
    if data.info.fingerprint != tv.info.fingerprint:
        raise RuntimeError("latent: the data differ from the ones the model was trained on")
    p = ctx.params
    summary = analyze(tv.model, data.x, data.gamma, tv.split, ctx.dir,
                      representation=cfg.data.representation,
                      vmax=output_max(cfg.data, data.info.box), seed=p["seed"],
                      tsne_points=p["tsne_points"], n_traverse=p["n_traverse"])
    ctx.figures.extend(f for f in LATENT_FIGURES if (ctx.dir / f).is_file())
    r = summary["pca_explained_variance_ratio"]
    return {"pca_explained_variance_ratio": r, "pc12": float(sum(r[:2])),
            "probe": summary["probe"], "active_dimensions": len(summary["active_dimensions"]),
            "latent_dim": summary["latent_dim"], "n_test": summary["n_test"]}


# ---------------------------------------------------------------- anomaly tests

def params_anomaly(cfg: dict[str, Any]) -> dict[str, Any]:
    return {"anomaly": cfg["anomaly"]}


def _figures_in(summary: Any, root: Path) -> list[str]:
    """PNG paths named anywhere in a summary, relative to ``root`` when inside it."""
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list | tuple):
            for x in v:
                walk(x)
        elif isinstance(v, str | Path) and str(v).lower().endswith(".png"):
            p = Path(v)
            p = p if p.is_absolute() else (root / p if (root / p).is_file() else p)
            try:
                rel = str(p.resolve().relative_to(root.resolve()))
            except ValueError:
                return
            if rel not in found and (root / rel).is_file():
                found.append(rel)

    walk(summary)
    if not found:
        found = sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))
    return found


def stage_anomaly(ctx: StageContext) -> dict[str, Any]:
    """Anomaly tests of the trained model (pipelines.anomaly.run_anomaly_test)."""
    run = _external("pipelines.anomaly", "run_anomaly_test")
    acfg = external_config(ctx.config, "anomaly")
    summary = run(ctx.deps["train"].dir / "best.pt", ctx.dir, acfg,
                  data_dir=ctx.deps["anomaly_data"].dir, progress=ctx.progress,
                  train_data=[data_file(ctx.deps["data"])], n_threads=ctx.threads)
    ctx.figures.extend(_figures_in(summary, ctx.dir))
    return {"result": summary, "config": _config_dict(acfg)}


# ---------------------------------------------------------------- generation

def params_generate(cfg: dict[str, Any]) -> dict[str, Any]:
    # threads change timings only (set from --threads at run time)
    return {"generate": {k: v for k, v in cfg["generate"].items() if k != "threads"}}


def stage_generate(ctx: StageContext) -> dict[str, Any]:
    """New configurations from the latent space, judged against Monte Carlo
    (pipelines.generate.run_generation)."""
    run = _external("pipelines.generate", "run_generation")
    gcfg = external_config({**ctx.config, "generate": {**ctx.config["generate"],
                                                       "threads": ctx.threads}}, "generate")
    # reference: the model's held-out test split (mc_files=None), never training data
    summary = run(ctx.deps["train"].dir / "best.pt", ctx.dir, gcfg, mc_files=None,
                  progress=ctx.progress, overwrite=True)
    ctx.figures.extend(_figures_in(summary, ctx.dir))
    return {"result": summary, "config": _config_dict(gcfg)}


def check_external(cfg: dict[str, Any], section: str) -> tuple[dict[str, Any] | None,
                                                               str | None]:
    """Validate a section against its config class now (a UserError for a bad key).

    Returns:
        (the section with every default filled in, None), or (None, the reason) if
        the class is not available yet.
    """
    try:
        obj = external_config(cfg, section)
    except StageUnavailable as exc:
        return None, str(exc)
    own = {k: cfg[section][k] for k in _OWN_KEYS[section] if k in cfg[section]}
    return {**_config_dict(obj), **own}, None

