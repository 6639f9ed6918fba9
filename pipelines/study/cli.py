"""``reproduce-study``: the whole study in one command, with cached stages and a report.

Examples::

    reproduce-study                       # = --quick: ~2-3 min on 2 cores, runs/study-quick
    reproduce-study --full                # the study's scale, runs/study-full
    reproduce-study --config my.toml      # override any parameter ([vae.train] epochs = 5)
    reproduce-study --only train          # train (and whatever it needs that is not cached)
    reproduce-study --force reconstruct   # rerun one stage even though it is cached

Stages, each in its own subdirectory of ``--out``: data, anomaly_data, train, sweep,
latent, reconstruct, anomaly, generate, report (one module each in
:mod:`pipelines.study.stages`).
A stage is skipped when its ``stage.json`` holds the current cache key (its parameters,
its code and the keys of the stages it reads); an interrupted stage resumes (Monte
Carlo by chunks, training by epochs) or reruns. ``--threads`` sets numba's and torch's
threads; it is not part of any key (Monte Carlo output does not depend on it; torch
rounding may differ in the last bits).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcsim.clitools import (
    DEFAULT_THREADS,
    ArgumentParser,
    UserError,
    add_progress_flags,
    check_outputs,
    clamp_threads,
    positive_int,
    run_cli,
    show_progress,
)
from mcsim.shared import thread_limits
from pipelines.study.common import (
    StageUnavailable,
)
from pipelines.study.engine import StageRecord, run_stage, write_json
from pipelines.study.profiles import load_overrides, resolve_config
from pipelines.study.stages import NAMES, STAGES

__all__ = ["STAGES", "NAMES", "PROG", "MARKER", "build_parser", "validate_config", "run_study",
           "main"]

PROG = "reproduce-study"
MARKER = "study.json"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                       epilog="Stages: " + ", ".join(NAMES) + ". Reduced units: "
                       "sigma = epsilon = k_B = 1.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true",
                   help="small data, few epochs: a few minutes on 2 cores (the default)")
    g.add_argument("--full", action="store_true", help="the study's scale (hours on 2 cores)")
    p.add_argument("--config", metavar="FILE",
                   help="TOML or JSON file overriding any parameter by section and key")
    p.add_argument("--out", metavar="DIR",
                   help="output directory (default runs/study-quick or runs/study-full)")
    p.add_argument("--threads", type=positive_int, default=DEFAULT_THREADS,
                   help=f"CPU threads for numba, BLAS and torch (default {DEFAULT_THREADS}; "
                   "results do not depend on it)")
    p.add_argument("--seed", type=int, default=None, help="master seed (default 0)")
    p.add_argument("--only", nargs="+", metavar="STAGE", choices=NAMES,
                   help="run only these stages (and the uncached stages they need)")
    p.add_argument("--force", nargs="+", metavar="STAGE", choices=NAMES, default=[],
                   help="rerun these stages even if cached")
    p.add_argument("--overwrite", action="store_true",
                   help="allow replacing the stages of a run made with the other profile")
    add_progress_flags(p)
    return p


def validate_config(cfg: dict[str, Any]) -> dict[str, str]:
    """Check every stage's section now (``Stage.validate``: build its configuration
    objects), so that a bad value stops the run before anything is written (one-line
    error naming the key); the open sections (anomaly, generate) get every default
    filled in. Returns the stages that cannot run, with the reason (none: every
    stage's code is imported directly)."""
    for stage in STAGES:
        if stage.validate is not None:
            stage.validate(cfg)
    return {}


def _prepare_out(out: Path, profile: str, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out: {out} exists and is not a directory")
    marker = out / MARKER
    if out.is_dir() and any(out.iterdir()):
        if not marker.is_file():
            raise UserError(f"--out: {out} is not empty and is not a {PROG} output "
                            "directory (choose another --out)")
        try:
            old = json.loads(marker.read_text()).get("profile")
        except (OSError, ValueError, AttributeError):
            old = None
        if old != profile and not overwrite:
            raise UserError(f"--out: {out} holds a {old} run; its stages would be replaced "
                            f"by the {profile} profile's (use --overwrite, or another --out)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out: cannot create {out}: {exc.strerror}") from None
    if not os.access(out, os.W_OK):
        raise UserError(f"--out: {out} is not writable")
    from mcsim.io import package_version

    write_json(marker, {"tool": PROG, "profile": profile, "version": package_version()})


def _closure(names: list[str]) -> set[str]:
    by = {s.name: s for s in STAGES}
    want, todo = set(), list(names)
    while todo:
        n = todo.pop()
        if n not in want:
            want.add(n)
            todo.extend(by[n].deps)
    return want


def _log(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def run_study(cfg: dict[str, Any], out: Path, *, only: list[str] | None = None,
              force: list[str] | None = None, threads: int = 1, progress: bool = True,
              unavailable: dict[str, str] | None = None, command: str = PROG
              ) -> tuple[dict[str, StageRecord], dict[str, str]]:
    """Run (or skip) every stage in order. Returns (records, failed reasons)."""
    from mcsim.io import package_version

    force = list(force or [])
    plan = _closure(only) if only else set(NAMES)
    records: dict[str, StageRecord] = {}
    failed: dict[str, str] = {}
    todo = [s for s in STAGES if s.name in plan]
    for i, stage in enumerate(todo, 1):
        head = f"[{i}/{len(todo)}] {stage.name}"
        deps = stage.deps
        if stage.name == "report":
            deps = tuple(n for n in NAMES[:-1] if n in records)
            stage = dataclasses.replace(stage, deps=deps)
            cfg = {**cfg, "_meta": {
                "failed": {n: failed.get(n, "not run in this invocation")
                           for n in NAMES[:-1] if n not in records},
                "command": command, "version": package_version(),
                "headings": {s.name: s.heading or s.name for s in STAGES if s.name != "report"},
                "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}}
        else:
            bad = [d for d in deps if d not in records]
            if bad:
                failed[stage.name] = f"skipped: needs {', '.join(bad)}"
                _log(f"{head}: skipped (needs {', '.join(bad)})")
                continue
            if stage.name in (unavailable or {}):
                failed[stage.name] = unavailable[stage.name]
                _log(f"{head}: FAILED: {unavailable[stage.name]}")
                continue
        _log(f"{head}: {stage.title} ...")
        t0 = time.perf_counter()
        try:
            rec = run_stage(stage, out, cfg, records, force=stage.name in force,
                            progress=progress, threads=threads, log=_log)
        except (StageUnavailable, UserError) as exc:
            failed[stage.name] = str(exc)
            _log(f"{head}: FAILED: {exc}")
            continue
        except Exception as exc:  # a bug: keep the traceback, go on with the rest
            log = out / stage.name / "error.log"
            with contextlib.suppress(OSError):
                log.parent.mkdir(parents=True, exist_ok=True)
                log.write_text(traceback.format_exc())
            failed[stage.name] = f"{type(exc).__name__}: {exc} (traceback in {log})"
            _log(f"{head}: FAILED: {failed[stage.name]}")
            continue
        records[stage.name] = rec
        if rec.status == "cached":
            _log(f"{head}: cached (key {rec.key}, made in {rec.seconds:.1f} s)")
        else:
            _log(f"{head}: done in {time.perf_counter() - t0:.1f} s")
    return records, failed


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.threads = clamp_threads(args.threads, PROG)
    profile = "full" if args.full else "quick"
    overrides = load_overrides(args.config) if args.config else {}
    cfg = resolve_config(profile, overrides, seed=args.seed, threads=args.threads)
    unavailable = validate_config(cfg)
    out = Path(args.out) if args.out else Path("runs") / f"study-{profile}"
    check_outputs(dirs=[("--out", out)], inputs=[("--config", args.config)],
                  overwrite=args.overwrite)
    _prepare_out(out, profile, args.overwrite)
    write_json(out / "config.resolved.json", cfg)
    _log(f"{profile} profile -> {out} ({args.threads} thread{'s' * (args.threads > 1)})")
    t0 = time.perf_counter()
    command = " ".join([PROG, *(shlex.quote(a) for a in (argv if argv is not None
                                                         else sys.argv[1:]))])
    with thread_limits(args.threads, torch=True):
        records, failed = run_study(cfg, out, only=args.only, force=args.force,
                                    threads=args.threads, progress=show_progress(args),
                                    unavailable=unavailable, command=command)
    total = time.perf_counter() - t0
    print(f"{'stage':<13} {'status':<8} {'seconds':>8}")
    for name in NAMES:
        if name in records:
            r = records[name]
            print(f"{name:<13} {r.status:<8} {r.seconds:>8.1f}")
        elif name in failed:
            print(f"{name:<13} {'FAILED':<8} {'':>8}  {failed[name]}")
    print(f"total {total:.1f} s; output {out}"
          + (f"; report {out / 'report' / 'report.html'}" if "report" in records else ""))
    if failed:
        _log(f"{len(failed)} stage(s) did not finish: {', '.join(failed)}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one-line errors (exit 2) for bad input; Ctrl-C keeps every
    finished stage and chunk (rerun the same command to continue)."""
    return run_cli(_main, PROG, argv, interrupted="finished stages, chunks and epochs are "
                   "kept: rerun the same command to continue")


if __name__ == "__main__":
    raise SystemExit(main())
