"""Produce a dataset file: chunked, resumable, with equilibration diagnostics.

Rows are ordered gamma by gamma (``config.gammas``), ``config.n_samples`` each. Each
chunk is written and flushed before the next starts, so memory stays flat in the
number of samples and an interrupted run loses at most one chunk: rerun with
``resume=True`` to continue from the partial file (``<out>.partial``). Chains store
their state after every chunk and continue exactly where they stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mcsim.config import SimConfig
from mcsim.io import DatasetWriter
from mcsim.observables import EquilibrationCheck, equilibration_check
from mcsim.sampler import Chain, energy_traces, sample, threads

__all__ = ["RunSummary", "run_simulation", "check_run_resources"]


@dataclass
class RunSummary:
    """What a run produced: per-gamma means and equilibration checks."""

    path: Path
    config: SimConfig
    mean_energy: dict[float, float] = field(default_factory=dict)
    acceptance: dict[float, float] = field(default_factory=dict)
    checks: dict[float, EquilibrationCheck] = field(default_factory=dict)

    @property
    def n_total(self) -> int:
        return len(self.config.gammas) * self.config.n_samples

    @property
    def failed_checks(self) -> list[EquilibrationCheck]:
        return [c for c in self.checks.values() if not c.passed]


def _save_chain(writer: DatasetWriter, gi: int, chain: Chain, row: int) -> None:
    """Store chain ``gi``'s state as of file row ``row`` (rows before it written)."""
    g = writer.file.require_group(f"state/chain_{gi}")
    for k, v in chain.state().items():
        if k in g:
            del g[k]
        g[k] = v
    g.attrs["row"] = row


def _load_chain(writer: DatasetWriter, gi: int, config: SimConfig, gamma: float
                ) -> Chain | None:
    """The stored chain ``gi`` if its state matches the rows written so far."""
    name = f"state/chain_{gi}"
    if name not in writer.file:
        return None
    g = writer.file[name]
    if int(g.attrs["row"]) != writer.n_done:
        return None
    return Chain.from_state(config, gamma, {k: g[k][()] for k in g})


def _diagnostics(writer: DatasetWriter, gi: int, config: SimConfig, gamma: float,
                 n_traces: int, check_samples: int) -> EquilibrationCheck | None:
    """Energy traces and the equilibration check for one gamma, stored in the file
    under ``diagnostics/gamma_<gi>`` (reused on resume)."""
    grp = writer.file.require_group(f"diagnostics/gamma_{gi}")
    grp.attrs["gamma"] = gamma
    if config.protocol == "uniform":
        return None
    if "check" in grp.attrs:
        return EquilibrationCheck(**json.loads(grp.attrs["check"]))
    trace_sweeps = config.equil_sweeps if config.protocol == "chain" else config.sweeps
    if n_traces > 0 and trace_sweeps > 0 and "energy_trace" not in grp:
        grp["energy_trace"] = energy_traces(config, gamma, n_traces, trace_sweeps)
    chk = None
    if check_samples >= 2 and trace_sweeps > 0:
        chk = equilibration_check(config, gamma, n_samples=check_samples)
        grp.attrs["check"] = json.dumps(chk.to_dict())
        grp.attrs["passed"] = chk.passed
    writer.file.flush()
    return chk


def check_run_resources(config: SimConfig, out: str | Path, *, chunk_size: int = 500,
                        n_threads: int | None = None, check_samples: int = 200) -> None:
    """The resource guard of a run: refuse (UserError naming the limit) a run whose
    memory, disk or CPU time would be absurd, before anything is allocated or written."""
    from mcsim.clitools import check_disk, check_memory, check_work
    from mcsim.sampler import memory_bytes

    c, n = config, config.n_particles
    n_total = len(c.gammas) * c.n_samples
    what = f"{n_total} samples of N={n}"
    check_memory(max(memory_bytes(c, min(chunk_size, c.n_samples), n_threads),
                     memory_bytes(c, check_samples, n_threads)), what)
    check_disk(n_total * (n * 2 + 3) * 8, out, what)
    sweeps = (c.equil_sweeps + c.n_samples * c.sample_every if c.protocol == "chain"
              else c.n_samples * c.sweeps if c.protocol == "independent" else 0)
    check_work(len(c.gammas) * (sweeps + 2 * check_samples * c.sweeps) * n * n, 1e9,
               f"{what} at {c.sweeps if c.protocol != 'chain' else c.sample_every} sweeps")


def run_simulation(config: SimConfig, out: str | Path, *, overwrite: bool = False,
                   resume: bool = False, chunk_size: int = 500, n_threads: int | None = None,
                   n_traces: int = 4, check_samples: int = 200,
                   progress: bool = True) -> RunSummary:
    """Generate the dataset described by ``config`` into the HDF5 file ``out``.

    Args:
        config: what to simulate (all gammas, n_samples each).
        out: final file path; written as ``<out>.partial`` and renamed when complete.
        overwrite: replace an existing ``out``.
        resume: continue an interrupted run from ``<out>.partial``.
        chunk_size: samples per chunk (does not change the output).
        n_threads: numba threads (None: all; does not change the output).
        n_traces: per-sweep energy traces stored per gamma (diagnostics).
        check_samples: samples for the equilibration check per gamma (0: skip).
        progress: show a tqdm progress bar.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size: must be >= 1, got {chunk_size}")
    check_run_resources(config, out, chunk_size=chunk_size, n_threads=n_threads,
                        check_samples=check_samples)
    c = config
    n_per = c.n_samples
    total = len(c.gammas) * n_per
    summary = RunSummary(Path(out), c)
    with DatasetWriter(out, total, c.n_particles, c.file_attrs(), overwrite=overwrite,
                       resume=resume) as writer, threads(n_threads):
        bar = tqdm(total=total, initial=writer.n_done, unit="sample", disable=not progress,
                   desc="simulate", dynamic_ncols=True)
        with bar:
            for gi, gamma in enumerate(c.gammas):
                base = gi * n_per
                start = max(writer.n_done - base, 0)
                chain = None
                if c.protocol == "chain" and start < n_per:
                    chain = _load_chain(writer, gi, c, gamma) if start > 0 else None
                    if chain is None:  # fresh chain; redo this gamma's rows if any
                        chain = Chain(c, gamma)
                        writer.rewind(base)
                        bar.update(base - bar.n)
                        start = 0
                while start < n_per:
                    n = min(chunk_size, n_per - start)
                    bar.set_postfix_str(f"gamma={gamma:g}")
                    if chain is not None:
                        s = chain.produce(n)
                    else:
                        s = sample(c, gamma, n, start=start)
                    writer.write(base + start, s.positions, s.energy,
                                 np.full(n, gamma), s.acceptance)
                    if chain is not None:
                        _save_chain(writer, gi, chain, base + start + n)
                    start += n
                    bar.update(n)
                chk = _diagnostics(writer, gi, c, gamma, n_traces, check_samples)
                if chk is not None:
                    summary.checks[gamma] = chk
            f = writer.file
            for gi, gamma in enumerate(c.gammas):
                sl = slice(gi * n_per, (gi + 1) * n_per)
                summary.mean_energy[gamma] = float(np.mean(f["energy"][sl])) if n_per else np.nan
                acc = f["acceptance"][sl]
                summary.acceptance[gamma] = float(np.mean(acc)) if n_per else np.nan
            if "state" in f:
                del f["state"]
            writer.finish()
    return summary
