"""Scale-out on Dask (``dask.distributed``): sample chunks as tasks on a cluster.

Independent samples are seeded per sample (:mod:`mcsim.sampler`), so a chunk
computed on any worker equals the same chunk computed locally, bit for bit. The
run (:func:`mcsim.run.run_simulation` with ``scheduler=``) submits chunks, keeps a
bounded number in flight, and writes results in row order as they arrive, so
``--resume`` works exactly as for a local run (locally or distributed).

Start a cluster on one machine (``dask scheduler`` + ``dask worker ADDRESS``, or in
Python ``distributed.LocalCluster``) or on a batch system with dask-jobqueue, then
pass its address (``tcp://host:8786``) or a ``distributed.Client``. Tasks run the
numba kernels on the worker's own thread; give workers one thread each
(``--nthreads 1``) and as many workers as cores. Needs ``pip install -e '.[dask]'``.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np

from mcsim.config import SimConfig
from mcsim.sampler import IndependentRun, Samples, sample

__all__ = ["connect", "run_chunks", "DistributedIndependentRun"]


@contextlib.contextmanager
def connect(scheduler: Any) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler`` (an address, or a Client, used as is
    and not closed)."""
    try:
        from distributed import Client
    except ImportError:
        raise ValueError("scheduler: dask.distributed is not installed "
                         "(pip install -e '.[dask]')") from None
    if isinstance(scheduler, Client):
        yield scheduler
        return
    try:
        client = Client(str(scheduler), timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"scheduler: cannot connect to {scheduler} ({exc})") from None
    try:
        yield client
    finally:
        client.close()


def _chunk_task(config_json: str, gamma: float, start: int, n: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = sample(SimConfig.from_json(config_json), gamma, n, start=start, parallel=False)
    return s.positions, s.energy, s.acceptance


def _window(client) -> int:
    return max(2, 2 * sum(client.nthreads().values()))


def run_chunks(client, config: SimConfig, gamma: float, start: int, stop: int,
               chunk_size: int) -> Iterator[tuple[int, Samples]]:
    """Samples ``start .. stop - 1`` at ``gamma`` as chunk tasks on ``client``'s
    cluster; yields ``(chunk start, Samples)`` in row order."""
    cj = config.to_json()
    todo = deque(range(start, stop, chunk_size))
    flight: deque = deque()
    window = _window(client)
    while todo or flight:
        while todo and len(flight) < window:
            s0 = todo.popleft()
            n = min(chunk_size, stop - s0)
            flight.append((s0, client.submit(_chunk_task, cj, gamma, s0, n, pure=False)))
        s0, fut = flight.popleft()
        pos, energy, acc = fut.result()
        yield s0, Samples(pos, energy, acc, gamma)


def _advance_task(config_json: str, gamma: float, states: np.ndarray, positions: np.ndarray,
                  sweeps: int, started: bool, start: int):
    run = IndependentRun(SimConfig.from_json(config_json), gamma, start, states.shape[0])
    run.states = states.copy()
    run.positions = positions.copy()
    run._started = started
    run.advance(sweeps, parallel=False)
    return run.states, run.positions, run.energy, run.accepted


class DistributedIndependentRun(IndependentRun):
    """:class:`mcsim.sampler.IndependentRun` whose ``advance`` runs chunks as tasks on
    a Dask cluster (same results)."""

    def __init__(self, client, config: SimConfig, gamma: float, count: int,
                 chunk_size: int = 500) -> None:
        super().__init__(config, gamma, 0, count)
        self.client = client
        self.chunk_size = chunk_size

    def advance(self, sweeps: int, *, parallel: bool = True) -> None:
        cj = self.config.to_json()
        futs = []
        for s0 in range(0, self.energy.shape[0], self.chunk_size):
            sl = slice(s0, s0 + self.chunk_size)
            futs.append((sl, self.client.submit(
                _advance_task, cj, self.gamma, self.states[sl], self.positions[sl], sweeps,
                self._started, s0, pure=False)))
        for sl, fut in futs:
            st, pos, energy, acc = fut.result()
            self.states[sl], self.positions[sl], self.energy[sl] = st, pos, energy
            self.accepted[sl] += acc
        self._started = True
        self.sweeps += sweeps
