"""The concrete anomaly sets of a configuration and their Monte Carlo datasets."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from pipelines.anomaly.config import MC_KINDS, SET_KINDS, AnomalyConfig
from pipelines.anomaly.sets import (
    generate_mc_set,
    mc_set_config,
)

_KEY_CORRUPT, _KEY_MASK, _KEY_SUBSET, _KEY_FIT, _KEY_BOOT = 1, 2, 3, 4, 5


def _seed(cfg: AnomalyConfig, *key: int | str) -> np.random.SeedSequence:
    """The seed of one use of randomness; string parts (set and score names) enter by
    their CRC-32, so a set's masks and bootstrap do not depend on which other sets run."""
    parts = tuple(zlib.crc32(k.encode()) if isinstance(k, str) else k for k in key)
    return np.random.SeedSequence(cfg.seed, spawn_key=parts)


@dataclass(frozen=True)
class AnomalySpec:
    """One concrete anomaly set (a table row).

    Attributes:
        name: label, e.g. ``gamma=3``, ``corrupt K=4``, ``blackout 10x10@8``.
        kind: its kind (:data:`SET_KINDS`).
        param: gamma (unseen-gamma), (size, offset) (blackout), fraction (random-mask).
        description: one sentence for the report.
    """

    name: str
    kind: str
    param: Any = None
    description: str = ""


def expand_sets(cfg: AnomalyConfig, box: float = 10.0) -> list[AnomalySpec]:
    """The concrete sets of ``cfg``, in table order (kinds in :data:`SET_KINDS` order)."""
    out: list[AnomalySpec] = []
    for kind in SET_KINDS:
        if kind not in cfg.sets:
            continue
        if kind == "unseen-gamma":
            for g in cfg.unseen_gammas:
                out.append(AnomalySpec(
                    f"gamma={g:g}", kind, float(g),
                    f"MC at unseen gamma = {g:g}, training potential {cfg.potential} "
                    f"(cutoff {cfg.cutoff}), {cfg.sweeps} sweeps from a uniform start"))
        elif kind == "fake-potential":
            out.append(AnomalySpec(
                f"fake {cfg.fake_potential}", kind, None,
                f"MC with the fake potential {cfg.fake_potential} (cutoff "
                f"{cfg.fake_cutoff}) at gamma = {cfg.fake_gamma:g}, {cfg.fake_sweeps} sweeps"))
        elif kind == "uniform":
            out.append(AnomalySpec("uniform", kind, None,
                                   "uniform random positions in the box (no MC)"))
        elif kind == "corrupted":
            out.append(AnomalySpec(
                f"corrupt K={cfg.corrupt_k}", kind, None,
                f"{cfg.corrupt_k} random particles of a test configuration moved by "
                f"U(0, {cfg.corrupt_step:g}) {cfg.corrupt_unit} units "
                f"(<= {cfg.step_sigma(box):.3g} sigma) in a random direction, "
                "reflected at the walls"))
        elif kind == "blackout":
            for size, off in cfg.blackout_blocks:
                out.append(AnomalySpec(
                    f"blackout {size}x{size}@{off}", kind, (size, off),
                    f"sorted distance matrix of a test configuration with rows/columns "
                    f"{off}..{off + size - 1} zeroed"))
        elif kind == "random-mask":
            for f in cfg.mask_fractions:
                out.append(AnomalySpec(
                    f"mask {100 * f:g}%", kind, float(f),
                    f"{100 * f:g} % of the particle pairs of a test matrix zeroed at random"))
    return out


# -- MC anomaly sets -------------------------------------------------------------------

def _mc_configs(cfg: AnomalyConfig, n_particles: int, box: float, n: int):
    for spec in expand_sets(cfg, box):
        if spec.kind in MC_KINDS:
            yield spec, mc_set_config(spec.kind, cfg, n_particles=n_particles, box=box, n=n,
                                      gamma=spec.param)


def make_anomaly_sets(cfg: AnomalyConfig, data_dir: Path, *, n_particles: int, box: float,
                      n: int | None = None, progress: bool = True,
                      n_threads: int | None = None) -> dict[str, Path]:
    """Generate (or reuse) the MC anomaly datasets of ``cfg`` as mcsim files.

    Args:
        cfg: the test settings (kinds unseen-gamma, fake-potential, uniform).
        data_dir: folder of the set files (created if missing).
        n_particles, box: N and L of the model's training data.
        n: samples per set (default ``cfg.n``).
        progress: tqdm bars while simulating.
        n_threads: numba threads (does not change the output).

    Returns:
        Set name (:func:`expand_sets`) -> file. A file with the same parameters and at
        least n samples is reused; an interrupted generation resumes.
    """
    n = cfg.n if n is None else int(n)
    out: dict[str, Path] = {}
    for spec, sim in _mc_configs(cfg, n_particles, box, n):
        path, reused = generate_mc_set(sim, Path(data_dir), progress=progress,
                                       n_threads=n_threads)
        if progress:
            tqdm.write(f"anomaly set {spec.name}: {'reused' if reused else 'wrote'} {path}")
        out[spec.name] = path
    return out

