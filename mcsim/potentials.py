"""Pair potentials and the three levels of energy: pair, one particle, total.

Reduced units throughout: sigma = epsilon = k_B = 1, lengths in sigma, energies in
epsilon. The configuration energy in a field gamma (gravity along y) is

    U = sum_{i<j} u(r_ij) + gamma * sum_i y_i,

with u one of

* ``lj``:    u(r) = 4 (r^-12 - r^-6)            (Lennard-Jones; minimum -1 at 2^(1/6))
* ``nm``:    u(r) = 4 (r^-n - r^-m), n > m > 0  (the study's "fake" potential: n=4, m=2)
* ``ideal``: u(r) = 0                           (ideal gas, for exact tests)

optionally cut (not shifted) at r_c: u(r) = 0 for r >= r_c. Distances below
``R_MIN`` = 1e-3 sigma are evaluated at ``R_MIN`` so that energies stay finite; see
:mod:`mcsim._kernels`. No pair is ever skipped.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from mcsim import _kernels as K

__all__ = [
    "R_MIN",
    "Potential",
    "pair_energy",
    "particle_energy",
    "total_energy",
]

R_MIN = K.R_MIN

_KIND_CODES = {"ideal": K.KIND_IDEAL, "lj": K.KIND_LJ, "nm": K.KIND_NM}
_MAX_EXPONENT = 48.0


@dataclass(frozen=True)
class Potential:
    """A pair potential with an optional plain cutoff.

    Attributes:
        kind: ``"lj"``, ``"nm"`` or ``"ideal"``.
        n, m: exponents of the n-m form (ignored for ``lj``, which is n=12, m=6, and
            for ``ideal``).
        cutoff: r_c in sigma, or None for no cutoff. The potential is cut, not shifted.
    """

    kind: str = "lj"
    n: float = 12.0
    m: float = 6.0
    cutoff: float | None = 3.0

    def __post_init__(self) -> None:
        if self.kind not in _KIND_CODES:
            raise ValueError(f"potential: unknown kind {self.kind!r} (lj, nm:N,M or ideal)")
        if self.kind == "lj" and (self.n, self.m) != (12.0, 6.0):
            object.__setattr__(self, "n", 12.0)
            object.__setattr__(self, "m", 6.0)
        for name in ("n", "m"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"potential: exponent {name} must be a finite number")
            object.__setattr__(self, name, float(v))
        if self.kind == "nm" and not (0.0 < self.m < self.n <= _MAX_EXPONENT):
            raise ValueError(
                f"potential: need 0 < m < n <= {_MAX_EXPONENT:g}, got n={self.n:g}, m={self.m:g}"
            )
        if self.cutoff is not None:
            c = self.cutoff
            if (isinstance(c, bool) or not isinstance(c, int | float) or not math.isfinite(c)
                    or c <= 0):
                raise ValueError(f"cutoff: must be a positive number or None, got {c!r}")
            if c * c == 0.0:  # the kernels compare squared distances with cutoff^2
                raise ValueError(f"cutoff: {c!r} is too small (its square is 0 in float64)")
            object.__setattr__(self, "cutoff", float(c))

    @classmethod
    def parse(cls, spec: str, cutoff: float | None = 3.0) -> Potential:
        """Build from a CLI spec: ``lj``, ``ideal`` or ``nm:N,M`` (e.g. ``nm:4,2``)."""
        spec = spec.strip().lower()
        if spec in ("lj", "ideal"):
            return cls(kind=spec, cutoff=cutoff)
        if spec.startswith("nm:"):
            try:
                n_str, m_str = spec[3:].split(",")
                n, m = float(n_str), float(m_str)
            except ValueError:
                raise ValueError(f"potential: cannot parse {spec!r}; expected nm:N,M") from None
            return cls(kind="nm", n=n, m=m, cutoff=cutoff)
        raise ValueError(f"potential: unknown spec {spec!r} (lj, nm:N,M or ideal)")

    @property
    def spec(self) -> str:
        """The CLI spec string, inverse of :meth:`parse` (cutoff aside)."""
        if self.kind == "nm":
            return f"nm:{self.n:g},{self.m:g}"
        return self.kind

    @property
    def code(self) -> int:
        return _KIND_CODES[self.kind]

    @property
    def rc2(self) -> float:
        """Squared cutoff (inf for none)."""
        return math.inf if self.cutoff is None else self.cutoff**2

    def kernel_args(self) -> tuple[int, float, float, float]:
        """(kind code, n, m, rc2) as the numba kernels take them."""
        return self.code, self.n, self.m, self.rc2

    def r_min(self) -> float:
        """Position of the minimum of u (no cutoff): (n/m)^(1/(n-m)); nan for ideal."""
        if self.kind == "ideal":
            return math.nan
        return (self.n / self.m) ** (1.0 / (self.n - self.m))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Potential:
        return cls(**d)


def pair_energy(r: np.ndarray | float, potential: Potential) -> np.ndarray:
    """Pair energy u(r) for distances ``r`` (any shape, sigma), in epsilon."""
    # C order, so that the flat views below are views (a non-contiguous input, e.g. a
    # fancy-indexed slice, would make reshape copy and leave ``out`` unwritten)
    r2 = np.array(np.square(np.asarray(r, dtype=np.float64)), order="C")
    if np.any(r2 < 0) or np.any(np.isnan(r2)):
        raise ValueError("r: distances must be non-negative numbers")
    kind, n, m, rc2 = potential.kernel_args()
    out = np.empty(r2.shape)
    flat_in, flat_out = r2.reshape(-1), out.reshape(-1)
    for k in range(flat_in.size):  # small arrays only; kernels use the jitted form
        flat_out[k] = K._u_pair(flat_in[k], kind, n, m, rc2)
    return out


def _as_positions(positions: np.ndarray) -> np.ndarray:
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim not in (2, 3) or pos.shape[-1] != 2:
        raise ValueError(f"positions: expected shape (N, 2) or (M, N, 2), got {pos.shape}")
    if not np.all(np.isfinite(pos)):
        raise ValueError("positions: contain NaN or inf")
    return pos


def particle_energy(positions: np.ndarray, i: int, gamma: float, potential: Potential) -> float:
    """Energy of particle ``i`` in configuration ``positions`` (N, 2):
    sum_{j != i} u(r_ij) + gamma * y_i."""
    pos = _as_positions(positions)
    if pos.ndim != 2:
        raise ValueError("positions: particle_energy takes one configuration (N, 2)")
    if not 0 <= i < pos.shape[0]:
        raise ValueError(f"i: particle index {i} out of range for N={pos.shape[0]}")
    x, y = np.ascontiguousarray(pos[:, 0]), np.ascontiguousarray(pos[:, 1])
    return float(K._particle_energy(x, y, i, float(gamma), *potential.kernel_args()))


def total_energy(
    positions: np.ndarray, gamma: float | np.ndarray, potential: Potential
) -> np.ndarray | float:
    """Total energy U = sum_{i<j} u(r_ij) + gamma sum_i y_i, in epsilon.

    Args:
        positions: (N, 2) or (M, N, 2) coordinates in sigma.
        gamma: field strength, a scalar or one value per configuration (M,).
        potential: the pair potential.

    Returns:
        A float for one configuration, else an array of shape (M,).
    """
    pos = _as_positions(positions)
    single = pos.ndim == 2
    batch = np.ascontiguousarray(pos[None] if single else pos)
    gam = np.broadcast_to(np.asarray(gamma, dtype=np.float64), (batch.shape[0],))
    if not np.all(np.isfinite(gam)):
        raise ValueError("gamma: contains NaN or inf")
    out = np.empty(batch.shape[0])
    K._total_energy_batch(batch, np.ascontiguousarray(gam), *potential.kernel_args(), out)
    return float(out[0]) if single else out
