"""Profiles of ``reproduce-study`` and the resolution of a run's configuration.

A profile is a nested dict of sections, one per concern; a TOML file given with
``--config`` overrides any key by section and key (``[vae.train] epochs = 5``).
Resolution fills in every default, so the resolved config (saved with the report)
lists every parameter of the run. ``system`` is defined here; every other section
belongs to the stage that uses it and is defined in that stage's module
(:mod:`pipelines.study.stages`: ``Stage.section``, ``defaults`` per profile, ``seeds``,
``resolve``, ``validate``):

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
from pathlib import Path
from typing import Any

from mcsim.clitools import UserError
from pipelines.study import common
from pipelines.study.common import ConfigKeyError
from pipelines.study.stages import STAGES

__all__ = [
    "PROFILES",
    "QUICK",
    "FULL",
    "OPEN_SECTIONS",
    "ConfigKeyError",
    "load_overrides",
    "merge_overrides",
    "resolve_config",
    "profile_config",
]

#: the physical system shared by every stage, and the master seed
SYSTEM: dict[str, Any] = {"n_particles": 30, "box": 10.0, "temperature": 0.75,
                          "gammas": [0.1, 0.4, 0.7, 1.0], "seed": 0}

#: Sections whose keys are fields of a dataclass defined elsewhere (validated by
#: that class, ``Stage.validate``, before any stage runs).
OPEN_SECTIONS = tuple(s.section for s in STAGES if s.section and s.open_keys)


def _profile(name: str) -> dict[str, Any]:
    cfg: dict[str, Any] = {"system": copy.deepcopy(SYSTEM)}
    for s in STAGES:
        if s.section and s.section not in cfg:
            cfg[s.section] = copy.deepcopy(dict(s.defaults.get(name, {})))
    return cfg


QUICK: dict[str, Any] = _profile("quick")
FULL: dict[str, Any] = _profile("full")
PROFILES = {"quick": QUICK, "full": FULL}


def load_overrides(path: str | Path) -> dict[str, Any]:
    """Read a TOML (or JSON) override file; one-line errors for missing or malformed
    files (:func:`mcsim.clitools.read_settings`)."""
    from mcsim.clitools import read_settings

    return read_settings(path, "--config")


def merge_overrides(base: dict[str, Any], over: dict[str, Any], prefix: str = "",
                    open_keys: bool = False) -> dict[str, Any]:
    """``base`` with ``over`` merged in, key by key. A key absent from ``base`` is an
    error naming its dotted path, unless ``open_keys`` or in :data:`OPEN_SECTIONS`."""
    return common.merge_overrides(base, over, prefix, open_keys, OPEN_SECTIONS)


def profile_config(name: str) -> dict[str, Any]:
    """The named profile with every default filled in (before overrides)."""
    if name not in PROFILES:
        raise UserError(f"profile: must be one of {', '.join(PROFILES)}, got {name!r}")
    cfg = copy.deepcopy(PROFILES[name])
    for s in STAGES:
        if s.section and s.complete is not None:
            cfg[s.section] = s.complete(cfg[s.section])
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
        threads: ``--threads`` (e.g. recorded as ``generate.threads``, its timings).

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
    for stage in STAGES:
        for path in stage.seeds:
            if not _explicit(over, *path):
                d = cfg
                for p in path[:-1]:
                    d = d[p]
                d[path[-1]] = s
    for stage in STAGES:
        if stage.resolve is not None:
            stage.resolve(cfg, over, threads)
    cfg["profile"] = profile
    return cfg
