"""The trained model and its data: checkpoint fingerprint, training-set latents, fitted priors."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from mcsim.clitools import UserError
from mcsim.config import SimConfig
from mcsim.potentials import Potential
from pipelines.generate.config import GenerateConfig
from vae.priors import LatentPrior, build_prior


# ---------------------------------------------------------------------------------
# the trained model and its data
def checkpoint_fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 of the checkpoint file (first 16 hex digits)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def prior_provenance(checkpoint: str | os.PathLike, trained, fingerprint: str
                     ) -> dict[str, Any]:
    """What a prior fitted on ``trained``'s training split records about its origin."""
    return {"checkpoint": str(checkpoint), "checkpoint_fingerprint": fingerprint,
            "data_fingerprint": trained.info.fingerprint,
            "data_files": list(trained.info.files), "fitted_on": "train split"}


def _require_distance_model(trained) -> None:
    trained.require_distance("generation")


def sim_configs(files: list[str]) -> dict[float, SimConfig]:
    """The SimConfig of each gamma in the training files (from their ``config``
    attribute)."""
    out: dict[float, SimConfig] = {}
    for f in files:
        sc = SimConfig.from_file(f)
        if sc is None:
            continue
        for g in sc.gammas:
            out.setdefault(float(g), sc)
    return out


@dataclass
class TrainingLatents:
    """A trained model's data, re-read and encoded.

    Attributes:
        positions: (M, N, 2) all configurations the model saw (after subsampling),
            sigma; ``gamma`` (M,); ``split`` the model's train/val/test split.
        mu_train, logvar_train, gamma_train: the encoded training split.
        mu_val, gamma_val: the encoded validation split (flow model selection).
        sim: SimConfig of each trained gamma (potential, protocol), from the files.
        potential: the training pair potential.
        box: L, sigma.
    """

    positions: np.ndarray
    gamma: np.ndarray
    split: Any
    mu_train: np.ndarray
    logvar_train: np.ndarray
    gamma_train: np.ndarray
    mu_val: np.ndarray
    gamma_val: np.ndarray
    sim: dict[float, SimConfig]
    potential: Potential | None
    box: float

    def held_out(self, which: str, gamma: float) -> np.ndarray:
        """Positions (K, N, 2) of the ``test`` or ``val`` split at ``gamma``."""
        idx = getattr(self.split, which)
        return self.positions[idx[self.gamma[idx] == gamma]]


def training_latents(trained, *, batch_size: int = 1024) -> TrainingLatents:
    """Re-read the model's training files, check the fingerprint, and encode its
    train and validation splits.

    Raises:
        UserError: data files missing or changed since training, or mixed potentials.
    """
    _require_distance_model(trained)
    files = list(trained.info.files)
    data = trained.training_data(files)
    sim = sim_configs(files)
    pots = {json.dumps(s.potential.to_dict(), sort_keys=True) for s in sim.values()}
    temps = {s.temperature for s in sim.values()}
    if len(pots) > 1 or len(temps) > 1:
        raise UserError("checkpoint: training files mix potentials or temperatures")
    potential = next(iter(sim.values())).potential if sim else None
    sp = data.split
    mu_tr, lv_tr = trained.encode(data.x[sp.train], batch_size)
    mu_va, _ = trained.encode(data.x[sp.val], batch_size)
    return TrainingLatents(data.positions, data.gamma, sp, mu_tr, lv_tr, data.gamma[sp.train],
                           mu_va, data.gamma[sp.val], sim, potential, float(trained.info.box))


def fit_priors(names: tuple[str, ...] | list[str], latents: TrainingLatents, cfg: GenerateConfig,
               *, provenance: dict[str, Any] | None = None, progress: bool = False
               ) -> dict[str, LatentPrior]:
    """Fit the named priors on the encoded training split (flow model selection on
    the validation split). Returns name -> fitted prior, with fit times in
    ``fit_info["fit_seconds"]``."""
    out = {}
    for name in names:
        prior = build_prior(name, **cfg.prior_params(name))
        t0 = time.perf_counter()
        prior.fit(latents.mu_train, latents.logvar_train, latents.gamma_train,
                  validation=(latents.mu_val, latents.gamma_val), progress=progress)
        prior.fit_info["fit_seconds"] = time.perf_counter() - t0
        prior.provenance = dict(provenance or {})
        out[name] = prior
    return out


