"""Optional post-processing (not generation): a short Monte Carlo run from each output."""

from __future__ import annotations

import time

import numpy as np

from mcsim.config import SimConfig

# ---------------------------------------------------------------------------------
# optional post-processing (NOT generation): a short Monte Carlo run from each output
STREAM_RELAX = 7  # sampler seed stream of the relaxation (distinct from mcsim's 0-4)


def relax_configurations(positions: np.ndarray, sim: SimConfig, gamma: float, sweeps: int,
                         *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Post-processing, not generation: run ``sweeps`` Metropolis sweeps of the
    training protocol (same potential, temperature, step, hard walls) starting from
    each configuration. Reported separately (``<prior>+mc<K>``) and compared with the
    same K sweeps from uniform random starts, so that the value of the generated
    start is visible.

    Configuration k uses the generator ``seed_states(seed, 7, gamma, k, 1)`` (stream
    7 of :mod:`mcsim.sampler`'s scheme). Particles outside the box stay subject to
    the walls: moves that end outside are rejected.

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


