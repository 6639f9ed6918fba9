"""Metropolis Monte Carlo sampling: the public, validating layer over the kernels.

Protocols (see :class:`mcsim.config.SimConfig`):

* ``independent`` (the study's): every sample starts from a fresh uniform random
  configuration, runs ``sweeps`` sequential sweeps, and keeps the final configuration.
* ``chain``: one long chain per gamma; ``equil_sweeps`` of equilibration (optionally
  tuning delta toward ``target_acceptance``; frozen afterwards), then one sample every
  ``sample_every`` sweeps. A :class:`Chain` carries its state between chunks.
* ``uniform``: uniform random configurations with no Monte Carlo at all.

Seeds. Sample ``k`` at field ``gamma`` uses the generator state

    SeedSequence(seed, spawn_key=(stream, bits(gamma), k)).generate_state(4, uint64)

where ``bits(gamma)`` is the IEEE-754 bit pattern of gamma. A sample therefore depends
only on (seed, gamma, k): not on thread count, chunk size, or which other gammas are
in the same run (``--gamma 0.4`` reproduces the 0.4 part of ``--gamma 0.1 0.4``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numba
import numpy as np

from mcsim import _kernels as K
from mcsim.config import SimConfig

__all__ = [
    "Samples",
    "Chain",
    "IndependentRun",
    "seed_states",
    "sample",
    "energy_traces",
    "energies_at",
    "threads",
    "memory_bytes",
]

# Independent streams of the master seed.
STREAM_SAMPLES = 0
STREAM_TRACE = 1
STREAM_CHECK = 2
STREAM_CHAIN = 3
STREAM_UNIFORM = 4


@dataclass
class Samples:
    """A batch of configurations at one gamma.

    Attributes:
        positions: (M, N, 2) coordinates, sigma.
        energy: (M,) total energy including gravity, epsilon.
        acceptance: (M,) fraction of accepted trial moves (NaN for ``uniform``).
        gamma: the field strength.
    """

    positions: np.ndarray
    energy: np.ndarray
    acceptance: np.ndarray
    gamma: float

    def __len__(self) -> int:
        return int(self.positions.shape[0])


def _gamma_bits(gamma: float) -> int:
    return int(np.float64(gamma).view(np.uint64))


def seed_states(seed: int, stream: int, gamma: float, start: int, count: int) -> np.ndarray:
    """Generator states (count, 4) uint64 for samples start..start+count-1."""
    gb = _gamma_bits(gamma)
    out = np.empty((count, 4), dtype=np.uint64)
    for k in range(count):
        ss = np.random.SeedSequence(seed, spawn_key=(stream, gb, start + k))
        out[k] = ss.generate_state(4, np.uint64)
    return out


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Run numba parallel kernels on ``n`` threads inside the block (None: all)."""
    if n is None:
        yield
        return
    if n < 1:
        raise ValueError(f"threads: must be >= 1, got {n}")
    old = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(old)


def memory_bytes(config: SimConfig, n_samples: int, n_threads: int | None = None) -> int:
    """Estimated peak memory of sampling ``n_samples`` configurations at once: every
    thread holds a (padded) N x N pair-energy matrix, plus the output arrays."""
    npad = -(-config.n_particles // K._PAD) * K._PAD
    t = numba.get_num_threads() if n_threads is None else min(n_threads,
                                                               numba.config.NUMBA_NUM_THREADS)
    return int(t * (npad * npad + 8 * npad) * 8 + n_samples * (config.n_particles * 2 + 4) * 8)


def _check_gamma(gamma: float) -> float:
    g = float(gamma)
    if not np.isfinite(g) or g < 0:
        raise ValueError(f"gamma: must be a finite number >= 0, got {gamma!r}")
    return g


def sample(config: SimConfig, gamma: float, n_samples: int, *, start: int = 0,
           n_threads: int | None = None, parallel: bool = True) -> Samples:
    """Samples ``start .. start + n_samples - 1`` at field ``gamma``.

    For ``independent`` and ``uniform`` any range can be computed on its own (this is
    how runs are chunked, resumed and distributed). For ``chain`` this runs a whole
    fresh chain (``start`` must be 0); use :class:`Chain` to produce a chain in chunks.
    ``parallel=False`` runs on the calling thread only (same output).
    """
    g = _check_gamma(gamma)
    if n_samples < 0 or start < 0:
        raise ValueError("n_samples and start must be >= 0")
    c = config
    if c.protocol == "chain":
        if start != 0:
            raise ValueError("start: a chain is produced from its beginning; use Chain")
        chain = Chain(c, g)
        with threads(n_threads):
            return chain.produce(n_samples)
    if c.protocol == "uniform":
        npart = c.n_particles
        pos = np.empty((n_samples, npart, 2))
        energy = np.empty(n_samples)
        with threads(n_threads):
            states = seed_states(c.seed, STREAM_UNIFORM, g, start, n_samples)
            kernel = K._uniform_configs if parallel else K._uniform_configs_serial
            kernel(states, npart, c.box, g, *c.potential.kernel_args(), pos, energy)
        return Samples(pos, energy, np.full(n_samples, np.nan), g)
    run = IndependentRun(c, g, start, n_samples)
    with threads(n_threads):
        run.advance(c.sweeps, parallel=parallel)
    return run.samples()


class IndependentRun:
    """Independent samples ``start .. start + count - 1`` that can be advanced in steps:
    ``advance(S)`` then ``advance(S)`` gives exactly the samples of one ``2S``-sweep run
    (each sample keeps its positions and generator state). Used by ``--sweeps auto``.
    """

    def __init__(self, config: SimConfig, gamma: float, start: int, count: int) -> None:
        self.config = config
        self.gamma = _check_gamma(gamma)
        self.states = seed_states(config.seed, STREAM_SAMPLES, self.gamma, start, count)
        self.positions = np.empty((count, config.n_particles, 2))
        self.energy = np.empty(count)
        self.accepted = np.zeros(count)
        self.sweeps = 0
        self._started = False

    def advance(self, sweeps: int, *, parallel: bool = True) -> None:
        """Run ``sweeps`` more sweeps on every sample (the first call starts them)."""
        c = self.config
        acc = np.empty(self.energy.shape[0])
        # one thread: the serial kernel (same output; skips loading the parallel runtime)
        parallel = parallel and numba.get_num_threads() > 1
        kernel = K._run_independent if parallel else K._run_independent_serial
        kernel(self.states, c.n_particles, c.box, c.beta, self.gamma, c.delta, sweeps,
               *c.potential.kernel_args(), self.positions, self.energy, acc,
               not self._started)
        self._started = True
        self.accepted += acc
        self.sweeps += sweeps

    def samples(self) -> Samples:
        n = self.config.n_particles
        acc = (self.accepted / (self.sweeps * n) if self.sweeps > 0
               else np.full(self.energy.shape[0], np.nan))
        return Samples(self.positions.copy(), self.energy.copy(), acc, self.gamma)


class Chain:
    """One Markov chain at one gamma, producible in chunks and resumable.

    The state (positions, generator state, tuned delta, whether it is equilibrated) is
    exposed by :meth:`state` / :meth:`from_state` so a run can store it and resume.
    """

    def __init__(self, config: SimConfig, gamma: float) -> None:
        self.config = config
        self.gamma = _check_gamma(gamma)
        self.rng = seed_states(config.seed, STREAM_CHAIN, self.gamma, 0, 1)[0].copy()
        npart = config.n_particles
        self.x = np.empty(npart)
        self.y = np.empty(npart)
        K._random_start(self.x, self.y, self.rng, config.box)
        self.delta = config.delta
        self.equilibrated = False

    def equilibrate(self) -> None:
        c = self.config
        target = 0.0 if c.target_acceptance is None else c.target_acceptance
        self.delta = K._chain_equilibrate(self.x, self.y, self.rng, c.box, c.beta, self.gamma,
                                          self.delta, c.equil_sweeps, target,
                                          *c.potential.kernel_args())
        self.equilibrated = True

    def produce(self, n_samples: int) -> Samples:
        """The next ``n_samples`` samples (equilibrating first if not yet done)."""
        if not self.equilibrated:
            self.equilibrate()
        c = self.config
        pos = np.empty((n_samples, c.n_particles, 2))
        energy = np.empty(n_samples)
        acc = np.empty(n_samples)
        K._chain_produce(self.x, self.y, self.rng, c.box, c.beta, self.gamma, self.delta,
                         c.sample_every, *c.potential.kernel_args(), pos, energy, acc)
        return Samples(pos, energy, acc, self.gamma)

    def state(self) -> dict[str, np.ndarray]:
        return {
            "x": self.x.copy(),
            "y": self.y.copy(),
            "rng": self.rng.copy(),
            "delta": np.array(self.delta),
            "equilibrated": np.array(self.equilibrated),
        }

    @classmethod
    def from_state(cls, config: SimConfig, gamma: float, state: dict) -> Chain:
        chain = cls(config, gamma)
        chain.x = np.array(state["x"], dtype=np.float64)
        chain.y = np.array(state["y"], dtype=np.float64)
        chain.rng = np.array(state["rng"], dtype=np.uint64)
        chain.delta = float(state["delta"])
        chain.equilibrated = bool(state["equilibrated"])
        return chain


def energy_traces(config: SimConfig, gamma: float, n_traces: int, sweeps: int | None = None
                  ) -> np.ndarray:
    """Total energy after every sweep for ``n_traces`` independent samples started
    uniformly at random (the equilibration trace). Returns (n_traces, sweeps)."""
    g = _check_gamma(gamma)
    c = config
    sweeps = c.sweeps if sweeps is None else sweeps
    out = np.empty((n_traces, sweeps))
    states = seed_states(c.seed, STREAM_TRACE, g, 0, n_traces)
    for k in range(n_traces):
        rng = states[k].copy()
        K._run_trace(rng, c.n_particles, c.box, c.beta, g, c.delta, *c.potential.kernel_args(),
                     out[k])
    return out


def energies_at(config: SimConfig, gamma: float, n_samples: int, checkpoints: list[int],
                *, stream: int = STREAM_CHECK, n_threads: int | None = None) -> np.ndarray:
    """Total energies of ``n_samples`` independent samples (uniform starts) after each
    number of sweeps in ``checkpoints`` (increasing). Returns (n_samples, len(checkpoints)).
    """
    g = _check_gamma(gamma)
    cps = np.asarray(checkpoints, dtype=np.int64)
    if cps.ndim != 1 or cps.size == 0 or np.any(np.diff(cps) <= 0) or cps[0] < 0:
        raise ValueError("checkpoints: must be increasing non-negative sweep counts")
    c = config
    out = np.empty((n_samples, cps.size))
    states = seed_states(c.seed, stream, g, 0, n_samples)
    with threads(n_threads):
        K._run_checkpoints(states, c.n_particles, c.box, c.beta, g, c.delta, cps,
                           *c.potential.kernel_args(), out)
    return out
