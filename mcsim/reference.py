"""Equilibrium references and the equilibration verdict.

A dataset is equilibrated if its samples follow the Boltzmann distribution. The
verdict compares three averages of the samples -- the total energy ``E``, the mean
height ``<y>`` and the mean squared height ``<y^2>`` (the first two moments of
rho(y)) -- with an independent equilibrium reference for the same system:

* :func:`equilibrium_reference`: ``n_chains`` Markov chains from uniform starts, each
  ``burn_sweeps`` of burn-in then ``sweeps`` of production, recorded every
  ``record_every`` sweeps. The error of the grand mean comes from the integrated
  autocorrelation time tau (Sokal's automatic window, c = 5; e.g. Sokal, "Monte Carlo
  methods in statistical mechanics", 1997), estimated from the autocorrelation
  function averaged over the chains: Var(mean) = s^2 tau / (n_chains n_records),
  widened by the Birge ratio sqrt(chi2 / (n_chains - 1)) when the chain means scatter
  more than that error allows (slow modes the chains do not sample well, as at
  gamma = 0.1 where a droplet reorganises over ~10^4 sweeps).
  References depend on the physical parameters only (not on the dataset's seed or
  size), so they are cached on disk (:func:`cache_dir`) and stored in dataset files.
* :func:`equilibration_verdict`: bias = mean(data) - mean(reference) in units of the
  combined error sqrt(err_data^2 + err_ref^2) for each observable; the data fail when
  any |z| >= ``z_max``. Data errors: s / sqrt(M) for independent samples, with the
  integrated autocorrelation time for a chain. The verdict also states its power:
  the energy bias it detects with 95 % probability, (z_max + 1.645) sigma_E.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mcsim import _kernels as K
from mcsim.config import SimConfig

__all__ = [
    "OBSERVABLES",
    "integrated_autocorr_time",
    "ReferenceSettings",
    "EquilibriumReference",
    "equilibrium_reference",
    "cache_dir",
    "sample_observables",
    "Verdict",
    "equilibration_verdict",
]

OBSERVABLES = ("energy", "y_mean", "y2_mean")
STREAM_REFERENCE = 5  # seed stream of reference chains (see mcsim.sampler)
_Z_95 = 1.6448536269514722  # one-sided 95 % normal quantile


def integrated_autocorr_time(series: np.ndarray, c: float = 5.0) -> float:
    """Integrated autocorrelation time tau = 1 + 2 sum_t rho(t), in steps of the series.

    ``series`` is (n,) or (n_chains, n); with several chains the autocorrelation
    function is averaged over them first. The sum stops at the smallest window W with
    W >= c tau(W) (Sokal's automatic windowing). Independent samples give tau ~ 1;
    a constant series gives 1.
    """
    x = np.atleast_2d(np.asarray(series, dtype=np.float64))
    n = x.shape[1]
    if n < 2:
        return 1.0
    x = x - x.mean(axis=1, keepdims=True)
    nfft = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(x, nfft, axis=1)
    acf = np.fft.irfft(f * np.conj(f), nfft, axis=1)[:, :n].mean(axis=0)
    if acf[0] <= 0:
        return 1.0
    acf /= acf[0]
    taus = 2.0 * np.cumsum(acf) - 1.0
    window = np.arange(n) >= c * taus
    w = int(np.argmax(window)) if window.any() else n - 1
    return float(max(taus[w], 1.0 / n))


@dataclass(frozen=True)
class ReferenceSettings:
    """How much work an equilibrium reference gets (defaults: 8 x 80,000 sweeps).

    Attributes:
        n_chains: independent chains (run in parallel threads).
        burn_sweeps: burn-in sweeps per chain from a uniform start (discarded).
        sweeps: production sweeps per chain.
        record_every: sweeps between recorded values.
        seed: seed of the reference chains (independent of any dataset's seed).
    """

    n_chains: int = 8
    burn_sweeps: int = 20_000
    sweeps: int = 60_000
    record_every: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_chains", "sweeps", "record_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)!r}")
        if self.burn_sweeps < 0 or self.seed < 0:
            raise ValueError("burn_sweeps and seed must be >= 0")
        if self.sweeps // self.record_every < 2:
            raise ValueError("sweeps: need at least two records (sweeps >= 2 record_every)")


@dataclass(frozen=True)
class EquilibriumReference:
    """Equilibrium averages of one system at one gamma with their errors.

    ``mean``, ``err``, ``sd`` and ``tau_sweeps`` map each of :data:`OBSERVABLES` to
    the grand mean, its standard error, the per-sample standard deviation and the
    integrated autocorrelation time in sweeps. ``chain_chi2`` is
    sum_c (m_c - mean)^2 / err_c^2 over the chain means (about n_chains - 1 if the
    chains agree within their errors); ``drift_z`` compares the first and second half
    of production (a burn-in that was too short shows up as |drift_z| >> 1).
    """

    gamma: float
    key: str
    physics: dict
    settings: dict
    mean: dict
    err: dict
    sd: dict
    tau_sweeps: dict
    chain_means: dict
    chain_chi2: dict
    drift_z: dict
    cost_sweeps: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EquilibriumReference:
        return cls(**d)


def _physics(config: SimConfig, gamma: float) -> dict:
    """What the equilibrium (and the reference's trajectory) depends on."""
    return {"n_particles": config.n_particles, "box": config.box,
            "temperature": config.temperature, "potential": config.potential.to_dict(),
            "gamma": float(gamma), "delta": config.delta}


def _key(physics: dict, settings: ReferenceSettings) -> str:
    # "v": the reference kernel version (3: float32 LJ pair terms in production too)
    text = json.dumps({"physics": physics, "settings": asdict(settings), "v": 3},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cache_dir() -> Path:
    """Where references are cached: ``$LJVAE_CACHE_DIR/equilibrium`` if set, else
    ``$XDG_CACHE_HOME/ljvae/equilibrium`` (default ``~/.cache``)."""
    root = os.environ.get("LJVAE_CACHE_DIR")
    if root:
        return Path(root) / "equilibrium"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "ljvae" / "equilibrium"


def _read_cache(path: Path, key: str) -> EquilibriumReference | None:
    try:
        ref = EquilibriumReference.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return ref if ref.key == key else None


def _write_cache(path: Path, ref: EquilibriumReference) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(ref.to_dict(), sort_keys=True))
        os.replace(tmp, path)
    except OSError:  # a read-only cache only costs a recomputation next time
        pass


def _mean_err(series: np.ndarray, record_every: int) -> tuple[float, float, float, float]:
    """(mean, err, sd, tau in sweeps) of (n_chains, n) records."""
    n_chains, n = series.shape
    tau = integrated_autocorr_time(series)
    sd = float(series.std(ddof=1))
    return float(series.mean()), sd * math.sqrt(tau / (n_chains * n)), sd, tau * record_every


def equilibrium_reference(config: SimConfig, gamma: float,
                          settings: ReferenceSettings | None = None, *,
                          cache: bool | str | os.PathLike = True) -> EquilibriumReference:
    """The equilibrium reference of ``config``'s system at ``gamma`` (computed or cached).

    Args:
        config: the system (N, box, T, potential, delta; the seed is not used).
        gamma: field strength.
        settings: chain lengths and seed (default :class:`ReferenceSettings`).
        cache: True: the default :func:`cache_dir`; a path: that directory; False: none.
    """
    s = settings or ReferenceSettings()
    phys = _physics(config, gamma)
    key = _key(phys, s)
    path = None
    if cache is not False:
        path = (cache_dir() if cache is True else Path(cache)) / f"{key}.json"
        ref = _read_cache(path, key)
        if ref is not None:
            return ref
    from mcsim.sampler import seed_states

    n_rec = s.sweeps // s.record_every
    states = seed_states(s.seed, STREAM_REFERENCE, float(gamma), 0, s.n_chains)
    arrays = {k: np.empty((s.n_chains, n_rec)) for k in OBSERVABLES}
    K._reference_chains(states, config.n_particles, config.box, config.beta, float(gamma),
                        config.delta, s.burn_sweeps, s.record_every,
                        *config.potential.kernel_args(), *arrays.values())
    mean, err, sd, tau, cmeans, chi2, drift = {}, {}, {}, {}, {}, {}, {}
    for k, a in arrays.items():
        mean[k], err[k], sd[k], tau[k] = _mean_err(a, s.record_every)
        # per-chain errors with the pooled tau
        err_c = sd[k] * math.sqrt(tau[k] / s.record_every / n_rec)
        cm = a.mean(axis=1)
        cmeans[k] = cm.tolist()
        chi2[k] = float(np.sum((cm - cm.mean()) ** 2) / err_c**2) if err_c > 0 else 0.0
        if s.n_chains > 1:  # chains that disagree beyond their errors widen the error
            err[k] *= math.sqrt(max(1.0, chi2[k] / (s.n_chains - 1)))
        h = n_rec // 2
        m1, e1, _, _ = _mean_err(a[:, :h], s.record_every)
        m2, e2, _, _ = _mean_err(a[:, h:], s.record_every)
        se = math.hypot(e1, e2)
        drift[k] = (m2 - m1) / se if se > 0 else 0.0
    ref = EquilibriumReference(
        gamma=float(gamma), key=key, physics=phys, settings=asdict(s), mean=mean, err=err,
        sd=sd, tau_sweeps=tau, chain_means=cmeans, chain_chi2=chi2, drift_z=drift,
        cost_sweeps=s.n_chains * (s.burn_sweeps + s.sweeps))
    if path is not None:
        _write_cache(path, ref)
    return ref


def sample_observables(positions: np.ndarray, energy: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample observables of :data:`OBSERVABLES` from positions (M, N, 2), sigma, and
    total energies (M,), epsilon."""
    y = np.asarray(positions, dtype=np.float64)[:, :, 1]
    return {"energy": np.asarray(energy, dtype=np.float64), "y_mean": y.mean(axis=1),
            "y2_mean": (y * y).mean(axis=1)}


@dataclass(frozen=True)
class Verdict:
    """Samples against an equilibrium reference: per observable the data mean and error,
    the bias (data - reference) and z = bias / sqrt(err_data^2 + err_ref^2).

    ``detectable_bias`` is the energy bias (epsilon) detected with 95 % probability,
    (z_max + 1.645) sqrt(err_data^2 + err_ref^2) for the energy.
    """

    gamma: float
    n_samples: int
    n_particles: int
    sweeps: int | None
    data_mean: dict
    data_err: dict
    ref_mean: dict
    ref_err: dict
    bias: dict
    z: dict
    z_max: float
    passed: bool
    detectable_bias: float
    data_tau: float = 1.0
    notes: list = field(default_factory=list)

    @property
    def z_energy(self) -> float:
        return float(self.z["energy"])

    @property
    def worst(self) -> str:
        """The observable with the largest |z|."""
        return max(self.z, key=lambda k: abs(self.z[k]))

    def verdict(self) -> str:
        word = "equilibrated" if self.passed else "NOT equilibrated"
        n = self.n_particles
        at = f" at {self.sweeps} sweeps" if self.sweeps else ""
        w = self.worst
        return (f"{word}{at} (gamma={self.gamma:g}): E/N {self.data_mean['energy'] / n:.4f} "
                f"vs equilibrium {self.ref_mean['energy'] / n:.4f} +- "
                f"{self.ref_err['energy'] / n:.4f}, z(E) = {self.z_energy:+.1f}, "
                f"max |z| = {abs(self.z[w]):.1f} ({w}); detects |bias| >= "
                f"{self.detectable_bias / n:.3f} per particle")

    def short(self) -> str:
        word = "equilibrated" if self.passed else "NOT equilibrated"
        return f"{word} (z(E)={self.z_energy:+.1f}, max|z|={abs(self.z[self.worst]):.1f})"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Verdict:
        return cls(**d)


def equilibration_verdict(positions: np.ndarray, energy: np.ndarray,
                          reference: EquilibriumReference, *, correlated: bool = False,
                          sweeps: int | None = None, z_max: float = 3.0) -> Verdict:
    """Judge samples (positions (M, N, 2), sigma; energies (M,), epsilon) against
    ``reference``.

    Args:
        correlated: the rows are consecutive samples of one chain (errors from their
            integrated autocorrelation time) rather than independent samples.
        sweeps: sweeps per sample, only recorded in the verdict.
        z_max: fail when any |z| >= z_max.
    """
    obs = sample_observables(positions, energy)
    m = obs["energy"].shape[0]
    if m < 2:
        raise ValueError("equilibration_verdict: need at least 2 samples")
    dm, de, bias, z = {}, {}, {}, {}
    tau_e = 1.0
    for k, v in obs.items():
        tau = integrated_autocorr_time(v) if correlated else 1.0
        if k == "energy":
            tau_e = tau
        dm[k] = float(v.mean())
        de[k] = float(v.std(ddof=1)) * math.sqrt(max(tau, 1.0) / m)
        bias[k] = dm[k] - reference.mean[k]
        sig = math.hypot(de[k], reference.err[k])
        z[k] = bias[k] / sig if sig > 0 else (0.0 if bias[k] == 0 else math.inf)
    sig_e = math.hypot(de["energy"], reference.err["energy"])
    notes = []
    if max(abs(v) for v in reference.drift_z.values()) >= z_max:
        notes.append("reference chains still drift (burn-in too short?)")
    return Verdict(
        gamma=reference.gamma, n_samples=m, n_particles=int(np.shape(positions)[1]),
        sweeps=sweeps, data_mean=dm, data_err=de, ref_mean=dict(reference.mean),
        ref_err=dict(reference.err), bias=bias, z=z, z_max=z_max,
        passed=all(abs(v) < z_max for v in z.values()),
        detectable_bias=(z_max + _Z_95) * sig_e, data_tau=tau_e, notes=notes)
