"""What the stages of ``reproduce-study`` share: the configuration objects built from
the resolved config, the study dataset's path, the sections validated by another
package's config class, and the figures named in a summary.

The stages themselves are in :mod:`pipelines.study.stages` (one module each).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mcsim.clitools import UserError
from pipelines.study.engine import StageRecord

__all__ = [
    "DATA_FILE",
    "StageUnavailable",
    "sim_config",
    "cutoff_value",
    "external_config",
    "check_external",
    "config_dict",
    "data_file",
    "figures_in",
]

DATA_FILE = "study.h5"


class StageUnavailable(RuntimeError):
    """A stage cannot run (kept for stages that depend on optional code)."""


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


def external_config(cfg: dict[str, Any], section: str, cls: type):
    """Build the config object of a section with its class ``cls`` (e.g. AnomalyConfig,
    GenerateConfig): the class's defaults, the section's values on top. The injected
    master seed is dropped if the class has no ``seed`` field; any other unknown key is
    an error naming it."""
    values = dict(cfg[section])
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


def check_external(cfg: dict[str, Any], section: str, cls: type) -> dict[str, Any]:
    """Validate a section against its config class now (a UserError for a bad key).

    Returns:
        The section with every default filled in.
    """
    return config_dict(external_config(cfg, section, cls))


def config_dict(obj: Any) -> dict[str, Any]:
    """A config object as a dict (its ``to_dict`` if it has one)."""
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return dataclasses.asdict(obj)


def data_file(rec: StageRecord) -> Path:
    """Absolute path of the study dataset written by the ``data`` stage."""
    return (rec.dir / DATA_FILE).resolve()


def figures_in(summary: Any, root: Path) -> list[str]:
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


