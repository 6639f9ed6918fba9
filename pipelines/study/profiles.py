"""Profiles of ``reproduce-study`` and the resolution of a run's configuration.

A profile is a nested dict of sections, one per concern; a TOML file given with
``--config`` overrides any key by section and key (``[vae.train] epochs = 5``).
Resolution fills in every default, so the resolved config (saved with the report)
lists every parameter of the run:

* ``system``: the physical system shared by every stage (N, L, T, gammas) and the
  master ``seed``;
* ``data``: the Monte Carlo datasets of the study (:class:`mcsim.SimConfig` fields
  plus run options);
* ``vae``: the default VAE, a :class:`vae.RunConfig` (subsections data / model /
  loss / train);
* ``sweep``: the latent-dimension x lambda grid (each run a ``vae`` config with
  ``epochs`` and ``max_per_gamma`` replaced);
* ``latent``: latent analysis options;
* ``reconstruct``: reconstruction of decoded test matrices and its statistics;
* ``anomaly``: the fields of :class:`pipelines.anomaly.config.AnomalyConfig` (``n``
  configurations per anomaly set, scores, bootstrap, ...), validated by that class;
  its physics (temperature, potential, cutoff, sweeps, delta) follows ``system`` and
  ``data`` unless the file sets it;
* ``generate``: the fields of :class:`pipelines.generate.GenerateConfig`, likewise
  (``threads`` follows ``--threads`` and is not part of any cache key).

Seeds: ``system.seed`` (``--seed``) is the master seed. Unless a section sets its
own, resolution copies it into ``data.seed``, ``vae.train.seed``,
``vae.data.split_seed``, ``reconstruct.seed``, ``latent.seed`` and the ``seed``
field of the anomaly and generate configs, so one number fixes the whole run.

``--quick`` is the default profile: about 2 minutes on 2 idle CPU cores. ``--full``
is the study's scale: 10,000 configurations per gamma, the full sweep grid (4 latent
dimensions x 3 lambdas, 30 epochs each), training until early stopping (at most 100
epochs), 2000 configurations per anomaly set: about an hour or more on 2 cores.
"""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path
from typing import Any

from mcsim.clitools import UserError

__all__ = [
    "PROFILES",
    "QUICK",
    "FULL",
    "ConfigKeyError",
    "load_overrides",
    "merge_overrides",
    "resolve_config",
    "profile_config",
]


class ConfigKeyError(UserError):
    """An unknown or ill-typed key in a ``--config`` file (names the dotted key)."""


def _vae_defaults() -> dict[str, Any]:
    from vae.config import RunConfig

    return RunConfig().to_dict()


#: Sections whose keys are fields of a dataclass defined elsewhere (validated by
#: that class when its stage runs, because the class may not exist yet).
OPEN_SECTIONS = ("anomaly", "generate")

QUICK: dict[str, Any] = {
    "system": {"n_particles": 30, "box": 10.0, "temperature": 0.75,
               "gammas": [0.1, 0.4, 0.7, 1.0], "seed": 0},
    "data": {
        "n_samples": 800, "sweeps": 2500, "delta": 0.2, "potential": "lj", "cutoff": 3.0,
        "protocol": "independent", "check_samples": 0, "n_traces": 4, "chunk_size": 200,
        "equilibrated": False, "seed": 0,
    },
    "vae": {
        "data": {"val_fraction": 0.1, "test_fraction": 0.2},
        "model": {"arch": "pair", "latent_dim": 40},
        "loss": {"form": "lambda", "weight": 3.5e-4},
        "train": {"epochs": 25, "batch_size": 128, "lr": 1e-3, "patience": 10},
    },
    "sweep": {"latent_dims": [10, 40], "weights": [1e-4, 1e-3], "epochs": 8,
              "max_per_gamma": 400},
    "latent": {"tsne_points": 300, "n_traverse": 5, "seed": 0},
    "reconstruct": {"n_boot": 100, "bins": 30, "profile_bins": 25, "seed": 0,
                    "placement": "thermal"},
    "anomaly": {"n": 300, "bootstrap": 200, "impute_n": 100, "iforest_trees": 100, "iwae_k": 8},
    "generate": {"n": 1000, "flow_epochs": 20, "n_boot": 100},
}

FULL: dict[str, Any] = {
    "system": dict(QUICK["system"]),
    "data": {
        "n_samples": 10_000, "sweeps": 2500, "delta": 0.2, "potential": "lj", "cutoff": 3.0,
        "protocol": "independent", "check_samples": 0, "n_traces": 4, "chunk_size": 500,
        "equilibrated": False, "seed": 0,
    },
    "vae": {
        "data": {"val_fraction": 0.1, "test_fraction": 0.2},
        "model": {"arch": "pair", "latent_dim": 40},
        "loss": {"form": "lambda", "weight": 3.5e-4},
        "train": {"epochs": 100, "batch_size": 128, "lr": 1e-3, "patience": 10},
    },
    "sweep": {"latent_dims": [10, 20, 40, 80], "weights": [1e-4, 3.5e-4, 1e-3],
              "epochs": 30, "max_per_gamma": 10_000},
    "latent": {"tsne_points": 2000, "n_traverse": 5, "seed": 0},
    "reconstruct": {"n_boot": 200, "bins": 30, "profile_bins": 40, "seed": 0,
                    "placement": "thermal"},
    "anomaly": {"n": 2000},
    "generate": {},
}

PROFILES = {"quick": QUICK, "full": FULL}

def load_overrides(path: str | Path) -> dict[str, Any]:
    """Read a TOML override file; one-line errors for missing or malformed files."""
    from mcsim.clitools import read_text

    p = Path(path)
    text = read_text(p, "--config")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"--config: {p}: not valid TOML ({exc})") from None


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
                    open_keys: bool = False) -> dict[str, Any]:
    """``base`` with ``over`` merged in, key by key. A key absent from ``base`` is an
    error naming its dotted path, unless ``open_keys`` (sections validated later)."""
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
            out[k] = merge_overrides(out[k], v, f"{key}.", open_keys or
                                     key in OPEN_SECTIONS)
        else:
            if isinstance(v, dict):
                raise ConfigKeyError(f"--config: {key}: is a value, not a section")
            if not open_keys:
                _check_value(key, out[k], v)
            out[k] = copy.deepcopy(v)
    return out


def profile_config(name: str) -> dict[str, Any]:
    """The named profile with every default filled in (before overrides)."""
    if name not in PROFILES:
        raise UserError(f"profile: must be one of {', '.join(PROFILES)}, got {name!r}")
    cfg = copy.deepcopy(PROFILES[name])
    cfg["vae"] = merge_overrides(_vae_defaults(), cfg["vae"], "vae.")
    return cfg


def _explicit(over: dict[str, Any], *path: str) -> bool:
    d: Any = over
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return False
        d = d[p]
    return True


def resolve_config(profile: str, overrides: dict[str, Any] | None = None, *,
                   seed: int | None = None, threads: int | None = None) -> dict[str, Any]:
    """The full configuration of a run: profile, then overrides, then ``--seed``.

    Args:
        profile: ``quick`` or ``full``.
        overrides: parsed TOML (see :func:`load_overrides`), or None.
        seed: master seed from the command line (takes precedence over the file).
        threads: ``--threads``, recorded as ``generate.threads`` (its timings).

    Raises:
        ConfigKeyError: an unknown key or a value of the wrong type, named by its
            dotted path.
    """
    over = overrides or {}
    cfg = merge_overrides(profile_config(profile), over)
    if seed is not None:
        if seed < 0:
            raise UserError(f"--seed: must be >= 0, got {seed}")
        cfg["system"]["seed"] = int(seed)
    s = cfg["system"]["seed"]
    if isinstance(s, bool) or not isinstance(s, int) or s < 0:
        raise ConfigKeyError(f"--config: system.seed: must be an integer >= 0, got {s!r}")
    for path in (("data", "seed"), ("vae", "train", "seed"), ("vae", "data", "split_seed"),
                 ("reconstruct", "seed"), ("latent", "seed"), ("anomaly", "seed"),
                 ("generate", "seed")):
        if not _explicit(over, *path):
            d = cfg
            for p in path[:-1]:
                d = d[p]
            d[path[-1]] = s
    # the anomaly sets are simulated like the study's data unless the file says otherwise
    for k_an, (sec, k) in {"temperature": ("system", "temperature"),
                           "potential": ("data", "potential"), "cutoff": ("data", "cutoff"),
                           "sweeps": ("data", "sweeps"), "delta": ("data", "delta")}.items():
        if not _explicit(over, "anomaly", k_an):
            cfg["anomaly"][k_an] = cfg[sec][k]
    if threads is not None and not _explicit(over, "generate", "threads"):
        cfg["generate"]["threads"] = int(threads)
    cfg["profile"] = profile
    return cfg
