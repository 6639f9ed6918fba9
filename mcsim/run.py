"""Produce a dataset file: chunked, resumable, distributable, with an equilibration verdict.

Rows are ordered gamma by gamma (``config.gammas``), ``config.n_samples`` each. Each
chunk is written and flushed before the next starts, so memory stays flat in the
number of samples and an interrupted run loses at most one chunk: rerun with
``resume=True`` to continue from the partial file (``<out>.partial``). Chains store
their state after every chunk and continue exactly where they stopped.

Per gamma the run stores under ``diagnostics/gamma_<i>``: energy traces, the
equilibrium reference (``reference``, JSON), the verdict of the samples against it
(``verdict``, JSON; ``passed``), the sweeps used (``sweeps``; with ``auto_sweeps`` also
``auto_sweeps`` = the doubling steps tried) and for chains ``sample_every`` and the
chain's integrated autocorrelation time. With ``scheduler`` the chunks of the
independent and uniform protocols run as tasks on a Dask cluster (:mod:`mcsim.distribute`);
the file is bit-identical to a local run.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mcsim.config import SimConfig
from mcsim.io import DatasetWriter
from mcsim.observables import EquilibrationCheck, equilibration_check
from mcsim.reference import (
    EquilibriumReference,
    ReferenceSettings,
    Verdict,
    equilibration_verdict,
    equilibrium_reference,
)
from mcsim.sampler import Chain, IndependentRun, Samples, energy_traces, sample, threads

__all__ = ["RunSummary", "run_simulation", "check_run_resources"]


@dataclass
class RunSummary:
    """What a run produced: per-gamma means, verdicts and the sweeps used."""

    path: Path
    config: SimConfig
    mean_energy: dict[float, float] = field(default_factory=dict)
    acceptance: dict[float, float] = field(default_factory=dict)
    checks: dict[float, EquilibrationCheck] = field(default_factory=dict)
    verdicts: dict[float, Verdict] = field(default_factory=dict)
    sweeps: dict[float, int] = field(default_factory=dict)
    sample_every: dict[float, int] = field(default_factory=dict)

    @property
    def n_total(self) -> int:
        return len(self.config.gammas) * self.config.n_samples

    @property
    def failed_checks(self) -> list[EquilibrationCheck | Verdict]:
        out: list = [v for v in self.verdicts.values() if not v.passed]
        return out + [c for c in self.checks.values() if not c.passed]


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


@dataclass
class _Checks:
    """How a run judges equilibration (see :func:`run_simulation`)."""

    verdict: bool
    reference: ReferenceSettings
    cache: Any
    z_max: float
    n_traces: int
    check_samples: int

    def reference_for(self, grp, config: SimConfig, gamma: float) -> EquilibriumReference:
        """The reference stored in ``grp`` (resume) or computed / read from the cache."""
        if "reference" in grp.attrs:
            return EquilibriumReference.from_dict(json.loads(grp.attrs["reference"]))
        ref = equilibrium_reference(config, gamma, self.reference, cache=self.cache)
        grp.attrs["reference"] = json.dumps(ref.to_dict())
        return ref


def _group(writer: DatasetWriter, gi: int, gamma: float):
    grp = writer.file.require_group(f"diagnostics/gamma_{gi}")
    grp.attrs["gamma"] = gamma
    return grp


def _diagnostics(writer: DatasetWriter, gi: int, config: SimConfig, gamma: float,
                 chk: _Checks, summary: RunSummary) -> None:
    """Energy traces, the legacy S-vs-2S check and the verdict for one gamma, stored in
    the file under ``diagnostics/gamma_<gi>`` (reused on resume)."""
    grp = _group(writer, gi, gamma)
    if config.protocol == "uniform":
        return
    chain = config.protocol == "chain"
    trace_sweeps = config.equil_sweeps if chain else config.sweeps
    if chk.n_traces > 0 and trace_sweeps > 0 and "energy_trace" not in grp:
        grp["energy_trace"] = energy_traces(config, gamma, chk.n_traces, trace_sweeps)
    if "check" in grp.attrs:
        summary.checks[gamma] = EquilibrationCheck(**json.loads(grp.attrs["check"]))
    elif chk.check_samples >= 2 and trace_sweeps > 0:
        old = equilibration_check(config, gamma, n_samples=chk.check_samples)
        grp.attrs["check"] = json.dumps(old.to_dict())
        summary.checks[gamma] = old
    if chk.verdict and "verdict" in grp.attrs:
        summary.verdicts[gamma] = Verdict.from_dict(json.loads(grp.attrs["verdict"]))
    elif chk.verdict and config.n_samples >= 2:
        ref = chk.reference_for(grp, config, gamma)
        sl = slice(gi * config.n_samples, (gi + 1) * config.n_samples)
        f = writer.file
        v = equilibration_verdict(f["positions"][sl], f["energy"][sl], ref, correlated=chain,
                                  sweeps=None if chain else config.sweeps, z_max=chk.z_max)
        grp.attrs["verdict"] = json.dumps(v.to_dict())
        grp.attrs["passed"] = v.passed
        summary.verdicts[gamma] = v
        if chain:
            grp.attrs["chain_tau_sweeps"] = v.data_tau * config.sample_every
    writer.file.flush()


def _auto_sweeps(writer: DatasetWriter, gi: int, config: SimConfig, gamma: float,
                 chk: _Checks, max_sweeps: int, n_threads: int | None, client
                 ) -> tuple[int, Samples | None]:
    """Smallest S = S0, 2 S0, 4 S0, ... <= max_sweeps whose samples pass the verdict
    (or the largest tried) and those samples (None if S was chosen before, on resume);
    the samples are advanced, not redone, at each doubling."""
    grp = _group(writer, gi, gamma)
    if "sweeps" in grp.attrs:
        return int(grp.attrs["sweeps"]), None
    ref = chk.reference_for(grp, config, gamma)
    n = config.n_samples
    tried = []
    s_next = config.sweeps
    if client is not None:
        from mcsim.distribute import DistributedIndependentRun

        run = DistributedIndependentRun(client, config, gamma, n)
    else:
        run = IndependentRun(config, gamma, 0, n)
    while True:
        with threads(n_threads):
            run.advance(s_next - run.sweeps)
        s = run.samples()
        v = equilibration_verdict(s.positions, s.energy, ref, sweeps=run.sweeps,
                                  z_max=chk.z_max)
        tried.append({"sweeps": run.sweeps, "z": v.z, "passed": v.passed,
                      "mean": v.data_mean, "cost_sweeps": n * run.sweeps})
        if v.passed or 2 * run.sweeps > max_sweeps:
            break
        s_next = 2 * run.sweeps
    grp.attrs["auto_sweeps"] = json.dumps(tried)
    grp.attrs["sweeps"] = run.sweeps
    writer.file.flush()
    return run.sweeps, s


def _auto_sample_every(writer: DatasetWriter, gi: int, config: SimConfig, gamma: float,
                       chk: _Checks) -> int:
    """Chain protocol: sweeps between samples = the reference's largest integrated
    autocorrelation time (rounded up), so successive samples are nearly independent."""
    grp = _group(writer, gi, gamma)
    if "sample_every" in grp.attrs:
        return int(grp.attrs["sample_every"])
    ref = chk.reference_for(grp, config, gamma)
    every = max(1, math.ceil(max(ref.tau_sweeps.values())))
    grp.attrs["sample_every"] = every
    writer.file.flush()
    return every


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
                   n_traces: int = 4, check_samples: int = 0, verdict: bool | None = None,
                   reference: ReferenceSettings | None = None,
                   reference_cache: bool | str | Path = True, z_max: float = 3.0,
                   auto_sweeps: bool = False, max_sweeps: int = 80_000,
                   auto_sample_every: bool = False, scheduler: Any = None,
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
        check_samples: samples of the older paired S-vs-2S check per gamma (0: skip).
        verdict: judge the samples against an equilibrium reference (None: yes, unless
            ``check_samples`` is 0 and the call asks for no diagnostics at all, i.e.
            ``n_traces`` is 0 too).
        reference: how long the reference chains run (default ReferenceSettings()).
        reference_cache: reference cache: True (default directory), a directory, False.
        z_max: the verdict fails when any |z| >= z_max.
        auto_sweeps: independent protocol: per gamma the smallest of
            ``config.sweeps`` x 1, 2, 4, ... (<= ``max_sweeps``) whose samples pass.
        auto_sample_every: chain protocol: ``sample_every`` per gamma from the
            reference's integrated autocorrelation time.
        scheduler: a Dask scheduler address or ``distributed.Client``: run the chunks
            of the independent and uniform protocols on that cluster.
        progress: show a tqdm progress bar.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size: must be >= 1, got {chunk_size}")
    check_run_resources(config, out, chunk_size=chunk_size, n_threads=n_threads,
                        check_samples=check_samples)
    c = config
    if auto_sweeps and c.protocol != "independent":
        raise ValueError("auto_sweeps: only for the independent protocol")
    if auto_sample_every and c.protocol != "chain":
        raise ValueError("auto_sample_every: only for the chain protocol")
    if verdict is None:
        verdict = not (check_samples == 0 and n_traces == 0)
    verdict = verdict or auto_sweeps or auto_sample_every
    chk = _Checks(verdict, reference or ReferenceSettings(), reference_cache, z_max,
                  n_traces, check_samples)
    if scheduler is not None and c.protocol == "chain":
        raise ValueError("scheduler: the chain protocol is one sequential chain per "
                         "gamma; run it locally")
    with contextlib.ExitStack() as stack:
        client = None
        if scheduler is not None:
            from mcsim.distribute import connect

            client = stack.enter_context(connect(scheduler))
        return _run(c, out, overwrite, resume, chunk_size, n_threads, chk, auto_sweeps,
                    max_sweeps, auto_sample_every, client, progress)


def _run(c: SimConfig, out, overwrite, resume, chunk_size, n_threads, chk: _Checks,
         auto_sweeps, max_sweeps, auto_sample_every, client, progress) -> RunSummary:
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
                cg = c
                ready = None  # this gamma's samples, if --sweeps auto made them already
                if auto_sweeps and start < n_per:
                    bar.set_postfix_str(f"gamma={gamma:g} choosing sweeps")
                    s_auto, ready = _auto_sweeps(writer, gi, c, gamma, chk, max_sweeps,
                                                 n_threads, client)
                    cg = c.replace(sweeps=s_auto)
                elif auto_sweeps:
                    cg = c.replace(sweeps=int(writer.file[f"diagnostics/gamma_{gi}"]
                                              .attrs["sweeps"]))
                if auto_sample_every:
                    cg = c.replace(sample_every=_auto_sample_every(writer, gi, c, gamma, chk))
                chain = None
                if cg.protocol == "chain" and start < n_per:
                    chain = _load_chain(writer, gi, cg, gamma) if start > 0 else None
                    if chain is None:  # fresh chain; redo this gamma's rows if any
                        chain = Chain(cg, gamma)
                        writer.rewind(base)
                        bar.update(base - bar.n)
                        start = 0
                bar.set_postfix_str(f"gamma={gamma:g}")
                if ready is not None:
                    while start < n_per:
                        sl = slice(start, min(start + chunk_size, n_per))
                        writer.write(base + start, ready.positions[sl], ready.energy[sl],
                                     np.full(sl.stop - start, gamma), ready.acceptance[sl])
                        bar.update(sl.stop - start)
                        start = sl.stop
                if client is not None and start < n_per:
                    from mcsim.distribute import run_chunks

                    for s0, s in run_chunks(client, cg, gamma, start, n_per, chunk_size):
                        writer.write(base + s0, s.positions, s.energy, np.full(len(s), gamma),
                                     s.acceptance)
                        bar.update(len(s))
                    start = n_per
                while start < n_per:
                    n = min(chunk_size, n_per - start)
                    if chain is not None:
                        s = chain.produce(n)
                    else:
                        s = sample(cg, gamma, n, start=start)
                    writer.write(base + start, s.positions, s.energy,
                                 np.full(n, gamma), s.acceptance)
                    if chain is not None:
                        _save_chain(writer, gi, chain, base + start + n)
                    start += n
                    bar.update(n)
                grp = _group(writer, gi, gamma)
                grp.attrs["sweeps"] = cg.sweeps
                if cg.protocol == "chain":
                    grp.attrs["sample_every"] = cg.sample_every
                summary.sweeps[gamma] = cg.sweeps
                summary.sample_every[gamma] = cg.sample_every
                _diagnostics(writer, gi, cg, gamma, chk, summary)
            f = writer.file
            for gi, gamma in enumerate(c.gammas):
                sl = slice(gi * n_per, (gi + 1) * n_per)
                summary.mean_energy[gamma] = float(np.mean(f["energy"][sl])) if n_per else np.nan
                acc = f["acceptance"][sl]
                summary.acceptance[gamma] = float(np.mean(acc)) if n_per else np.nan
            if "state" in f:
                del f["state"]
            extra = {"sweeps_per_gamma": [summary.sweeps[g] for g in c.gammas],
                     "sweeps_auto": bool(auto_sweeps),
                     "sample_every_auto": bool(auto_sample_every)}
            if c.protocol == "chain":
                extra["sample_every_per_gamma"] = [summary.sample_every[g] for g in c.gammas]
            writer.finish(extra)
    return summary
