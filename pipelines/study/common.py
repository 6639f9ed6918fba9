"""What the stages of ``reproduce-study`` share: the configuration objects built from
the resolved config, the study dataset's path, the sections validated by another
package's config class, and the figures named in a summary.

The stages themselves are in :mod:`pipelines.study.stages` (one module each).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path
from typing import Any

from mcsim.clitools import UserError
from mcsim.shared import is_int
from pipelines.study.engine import StageRecord

__all__ = [
    "DATA_FILE",
    "StageUnavailable",
    "ConfigKeyError",
    "need",
    "check_ints",
    "merge_overrides",
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


class ConfigKeyError(UserError):
    """An unknown or ill-typed key in a ``--config`` file (names the dotted key)."""


def need(ok: bool, key: str, what: str, value: Any) -> None:
    """A UserError ``--config: <key>: <what>, got <value>`` unless ``ok``."""
    if not ok:
        raise UserError(f"--config: {key}: {what}, got {value!r}")


def check_ints(section: dict[str, Any], prefix: str, minima: dict[str, int]) -> None:
    """Each key of ``minima`` in ``section`` is an integer >= its minimum."""
    for k, lo in minima.items():
        need(is_int(section[k]) and section[k] >= lo, f"{prefix}.{k}",
             f"must be an integer >= {lo}", section[k])


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list | tuple):
        return "list"
    if isinstance(v, dict):
        return "table"
    if v is None:
        return "none"
    return type(v).__name__


def _check_value(key: str, default: Any, value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigKeyError(f"--config: {key}: must be finite, got {value!r}")
    if default is None or value is None:
        return  # optional settings: checked by the config class that uses them
    if key.endswith("cutoff") and isinstance(value, str) and value.strip().lower() == "none":
        return  # no cutoff
    kd, kv = _kind(default), _kind(value)
    if kd != kv:
        raise ConfigKeyError(f"--config: {key}: expected a {kd}, got {kv} {value!r}")
    if kd == "list" and default and value and _kind(default[0]) == "number":
        for v in value:
            if _kind(v) != "number":
                raise ConfigKeyError(f"--config: {key}: expected a list of numbers, "
                                     f"got {value!r}")


def merge_overrides(base: dict[str, Any], over: dict[str, Any], prefix: str = "",
                    open_keys: bool = False, open_sections: tuple[str, ...] = ()
                    ) -> dict[str, Any]:
    """``base`` with ``over`` merged in, key by key. A key absent from ``base`` is an
    error naming its dotted path, unless ``open_keys`` or the key's section is one of
    ``open_sections`` (sections validated later by a config class)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        key = f"{prefix}{k}"
        if k not in out:
            if open_keys:
                out[k] = copy.deepcopy(v)
                continue
            raise ConfigKeyError(f"--config: {key}: unknown key")
        if isinstance(out[k], dict):
            if not isinstance(v, dict):
                raise ConfigKeyError(f"--config: {key}: is a section, got {v!r}")
            out[k] = merge_overrides(out[k], v, f"{key}.", open_keys or key in open_sections,
                                     open_sections)
        else:
            if isinstance(v, dict):
                raise ConfigKeyError(f"--config: {key}: is a value, not a section")
            if not open_keys:
                _check_value(key, out[k], v)
            out[k] = copy.deepcopy(v)
    return out




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


