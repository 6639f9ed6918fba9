"""Metropolis relaxation of given configurations: a short run of the sampling protocol
started from each one (post-processing of generated configurations, for example).

Seeds: configuration k uses the generator ``seed_states(seed, STREAM_RELAX, gamma, k,
1)`` of :mod:`mcsim.sampler`'s scheme, a stream of its own (distinct from the
sampler's streams 0-4), so that relaxing configurations never reuses the random numbers
of a dataset made with the same seed, and configuration k's result does not depend on
how many others are relaxed with it.
"""

from __future__ import annotations

import time

import numpy as np

from mcsim.config import SimConfig

__all__ = ["STREAM_RELAX", "relax_configurations"]

#: seed stream of the relaxation (distinct from mcsim.sampler's streams 0-4)
STREAM_RELAX = 7


def relax_configurations(positions: np.ndarray, sim: SimConfig, gamma: float, sweeps: int,
                         *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Run ``sweeps`` Metropolis sweeps of ``sim``'s protocol (same potential,
    temperature, step, hard walls) starting from each configuration.

    Configuration k uses the generator ``seed_states(seed, STREAM_RELAX, gamma, k, 1)``.
    Particles outside the box stay subject to the walls: moves that end outside are
    rejected.

    Args:
        positions: (M, N, 2) starting configurations, sigma.
        sim: the simulation settings (``delta`` is the step, not adapted).
        gamma: field strength.
        sweeps: sweeps per configuration.
        seed: seed of the relaxation's stream.

    Returns:
        (positions (M, N, 2), energies (M,), seconds).
    """
    from mcsim.sampler import Chain, seed_states

    pos = np.asarray(positions, np.float64)
    cfg = sim.replace(sample_every=int(sweeps))
    states = seed_states(int(seed), STREAM_RELAX, float(gamma), 0, pos.shape[0])
    out = np.empty_like(pos)
    energy = np.empty(pos.shape[0])
    t0 = time.perf_counter()
    for k in range(pos.shape[0]):
        chain = Chain.from_state(cfg, gamma, {
            "x": pos[k, :, 0], "y": pos[k, :, 1], "rng": states[k],
            "delta": np.array(sim.delta), "equilibrated": np.array(True)})
        res = chain.produce(1)
        out[k], energy[k] = res.positions[0], res.energy[0]
    return out, energy, time.perf_counter() - t0
