"""Simulation settings: a plain dataclass with validation and a lossless JSON round trip."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mcsim.potentials import Potential
from mcsim.shared import is_int as _is_int
from mcsim.shared import is_number as _is_num
from mcsim.shared import unknown_fields

__all__ = ["PROTOCOLS", "SimConfig"]

PROTOCOLS = ("independent", "chain", "uniform")
#: Largest integer setting (sample counts, sweeps, seed): int64 in files and kernels.
MAX_INT = 1 << 62


@dataclass(frozen=True)
class SimConfig:
    """Everything needed to regenerate a dataset.

    Reduced units (sigma = epsilon = k_B = 1).

    Attributes:
        n_particles: N >= 2.
        box: side L of the walled box [0, L]^2, sigma.
        temperature: T > 0.
        potential: pair potential (with its cutoff).
        gammas: field strengths; the field energy is gamma * y per particle.
        n_samples: configurations per gamma value.
        delta: maximum trial displacement per axis, sigma (moves are U(-delta, delta)).
        sweeps: sweeps per sample (``independent``: from a uniform start).
        protocol: ``independent`` (the study's: fresh uniform start, ``sweeps`` sweeps,
            keep the last configuration), ``chain`` (one chain per gamma:
            ``equil_sweeps``, then a sample every ``sample_every`` sweeps) or
            ``uniform`` (uniform random configurations, no Monte Carlo).
        equil_sweeps: chain protocol only: equilibration sweeps.
        sample_every: chain protocol only: sweeps between stored samples.
        target_acceptance: chain protocol only: if set, delta is tuned toward this
            acceptance during equilibration and frozen for production.
        seed: master seed; every sample's generator derives from it.
    """

    n_particles: int = 30
    box: float = 10.0
    temperature: float = 0.75
    potential: Potential = field(default_factory=Potential)
    gammas: tuple[float, ...] = (0.4,)
    n_samples: int = 10_000
    delta: float = 0.2
    sweeps: int = 2500
    protocol: str = "independent"
    equil_sweeps: int = 20_000
    sample_every: int = 10
    target_acceptance: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.potential, dict):
            object.__setattr__(self, "potential", Potential.from_dict(self.potential))
        if isinstance(self.gammas, int | float):
            object.__setattr__(self, "gammas", (self.gammas,))
        object.__setattr__(self, "gammas", tuple(self.gammas))
        self._validate()

    def _validate(self) -> None:
        def bad(name: str, why: str) -> None:
            raise ValueError(f"{name}: {why}, got {getattr(self, name)!r}")

        if not _is_int(self.n_particles) or self.n_particles < 2:
            bad("n_particles", "must be an integer >= 2")
        for name in ("box", "temperature", "delta"):
            v = getattr(self, name)
            if not _is_num(v) or v <= 0:
                bad(name, "must be a positive number")
        if not self.gammas:
            bad("gammas", "need at least one value")
        for g in self.gammas:
            if not _is_num(g) or g < 0:
                bad("gammas", "each must be a number >= 0")
        if len(set(self.gammas)) != len(self.gammas):
            bad("gammas", "values must be distinct")
        for name in ("sweeps", "equil_sweeps", "seed", "n_samples", "sample_every",
                     "n_particles"):
            v = getattr(self, name)
            if not _is_int(v) or v < 0:
                bad(name, "must be a non-negative integer")
            if v > MAX_INT:  # stored as int64 in files and counted in int64 by the kernels
                bad(name, f"must be at most 2^62 = {MAX_INT}")
        if not _is_int(self.n_samples) or self.n_samples < 1:
            bad("n_samples", "must be a positive integer (nothing to simulate)")
        if self.protocol == "independent" and self.sweeps < 1:
            bad("sweeps", "must be >= 1 for the independent protocol (for configurations "
                "without Monte Carlo use the uniform protocol)")
        if not _is_int(self.sample_every) or self.sample_every < 1:
            bad("sample_every", "must be a positive integer")
        if self.protocol not in PROTOCOLS:
            bad("protocol", f"must be one of {', '.join(PROTOCOLS)}")
        t = self.target_acceptance
        if t is not None and (not _is_num(t) or not 0 < t < 1):
            bad("target_acceptance", "must be in (0, 1) or None")
        if not isinstance(self.potential, Potential):
            bad("potential", "must be a Potential")
        if self.delta > self.box:
            bad("delta", "must not exceed the box side")
        # float64 scales the kernels use must stay finite and resolvable
        if self.delta < 1e-12 * self.box:
            bad("delta", f"is below the float64 resolution of positions in a box of side "
                f"{self.box:g} (need delta >= 1e-12 L)")
        if not math.isfinite(1.0 / self.temperature):
            bad("temperature", "is too small: 1/T overflows")
        if not math.isfinite(self.beta * max(self.gammas) * self.box * self.n_particles):
            bad("gammas", "are too large for this box and temperature: the field energy "
                "overflows")

    @property
    def beta(self) -> float:
        return 1.0 / self.temperature

    def replace(self, **changes: Any) -> SimConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["gammas"] = list(self.gammas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SimConfig:
        unknown = unknown_fields(cls, d)
        if unknown:
            raise ValueError(f"config: unknown fields {', '.join(sorted(unknown))}")
        d = dict(d)
        try:
            if "potential" in d:
                pot = d["potential"]
                if not isinstance(pot, dict) or set(pot) - {"kind", "n", "m", "cutoff"}:
                    raise ValueError(f"potential: must be an object with kind, n, m, cutoff, "
                                     f"got {pot!r}")
                try:
                    d["potential"] = Potential.from_dict(pot)
                except TypeError as exc:
                    raise ValueError(f"potential: {exc}") from None
            if "gammas" in d:
                if not isinstance(d["gammas"], list | tuple):
                    raise ValueError(f"gammas: must be a list of numbers, got {d['gammas']!r}")
                d["gammas"] = tuple(d["gammas"])
            return cls(**d)
        except TypeError as exc:  # e.g. an unhashable value where a name belongs
            raise ValueError(f"config: {exc}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SimConfig:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> SimConfig | None:
        """The config a dataset file was made with (its ``config`` attribute), or None
        if the file records none.

        Raises:
            mcsim.io.DatasetError: the file is missing or unreadable, or its config is.
        """
        import h5py

        from mcsim.io import DatasetError

        try:
            with h5py.File(path, "r") as h:
                text = h.attrs.get("config")
                text = text.decode() if isinstance(text, bytes) else text
        except OSError:
            raise DatasetError(f"{path}: data file is missing or unreadable") from None
        if not text:
            return None
        try:
            return cls.from_json(text)
        except (ValueError, TypeError) as exc:
            raise DatasetError(f"{path}: unreadable simulation config ({exc})") from None

    def file_attrs(self) -> dict[str, Any]:
        """Root attributes for a dataset file: every parameter, flat, plus the JSON."""
        p = self.potential
        return {
            "source": "mcsim",
            "n_particles": self.n_particles,
            "box": self.box,
            "temperature": self.temperature,
            "potential": p.spec,
            "potential_n": p.n,
            "potential_m": p.m,
            "cutoff": "none" if p.cutoff is None else p.cutoff,
            "gammas": list(self.gammas),
            "n_samples": self.n_samples,
            "delta": self.delta,
            "sweeps": self.sweeps,
            "protocol": self.protocol,
            "equil_sweeps": self.equil_sweeps,
            "sample_every": self.sample_every,
            "target_acceptance": "none" if self.target_acceptance is None
            else self.target_acceptance,
            "seed": self.seed,
            "config": self.to_json(),
        }
