"""Cached pipeline stages: cache keys, ``stage.json`` records, skip / resume / rerun.

A :class:`Stage` is a function with explicit inputs (its resolved parameters and the
records of the stages it depends on) and explicit outputs (files in its own
directory, and a JSON-able summary). :func:`run_stage` decides what to do:

* the **cache key** is the SHA-256 of the stage's name, its parameters, a hash of
  the code it runs (the stage function's source and the source files of every project
  module its module imports, directly or not: :func:`imported_modules`) and the keys
  of the stages it depends on;
* ``<dir>/stage.json`` (key, parameters, timings, summary, figures) is written
  **last**, atomically: a stage whose ``stage.json`` holds the current key is
  skipped ("cached");
* a stage whose key changed (or that is forced) gets a fresh directory (the old one
  is renamed aside first and deleted only once the new one exists);
* a stage interrupted with the same key finds ``<dir>/.running.json`` and is
  called with ``resume=True`` (Monte Carlo and training continue where they
  stopped; other stages start again from scratch).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcsim.shared import jsonable, write_json

__all__ = [
    "STAGE_FILE",
    "Stage",
    "StageContext",
    "StageRecord",
    "cache_key",
    "code_hash",
    "imported_modules",
    "jsonable",
    "read_record",
    "run_stage",
    "write_json",
]

STAGE_FILE = "stage.json"
RUNNING_FILE = ".running.json"
_REPO = Path(__file__).resolve().parents[2]


_CODE_CACHE: dict[str, str] = {}
#: the project's own packages: the code a stage imports from these enters its key
PROJECT_PACKAGES = ("mcsim", "vae", "reconstruct", "pipelines")
_IMPORTS: dict[str, tuple[str, ...]] = {}


def _module_file(name: str) -> Path | None:
    """The source file of project module ``name`` (a package's ``__init__.py``)."""
    if name.split(".")[0] not in PROJECT_PACKAGES:
        return None
    base = _REPO.joinpath(*name.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def _direct_imports(name: str) -> tuple[str, ...]:
    """Project modules that module ``name`` imports anywhere in its source (also inside
    functions), with the packages above each (importing ``a.b`` runs ``a/__init__``)."""
    if name not in _IMPORTS:
        import ast

        f = _module_file(name)
        found: set[str] = set()
        if f is not None:
            pkg = name if f.name == "__init__.py" else name.rpartition(".")[0]
            for node in ast.walk(ast.parse(f.read_bytes())):
                if isinstance(node, ast.Import):
                    found.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom):
                    if node.level:
                        parts = pkg.split(".")
                        base = ".".join(parts[:len(parts) - node.level + 1])
                        mod = f"{base}.{node.module}" if node.module else base
                    else:
                        mod = node.module or ""
                    found.add(mod)
                    found.update(f"{mod}.{a.name}" for a in node.names)  # submodules
        out = set()
        for m in found:
            parts = m.split(".")
            for i in range(1, len(parts) + 1):
                sub = ".".join(parts[:i])
                if _module_file(sub) is not None:
                    out.add(sub)
        out.discard(name)
        _IMPORTS[name] = tuple(sorted(out))
    return _IMPORTS[name]


def imported_modules(module: str) -> list[str]:
    """``module`` and every project module it imports, directly or not (sorted)."""
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m in seen or _module_file(m) is None:
            continue
        seen.add(m)
        todo.extend(_direct_imports(m))
    return sorted(seen)


def _package_hash(name: str) -> str:
    if name not in _CODE_CACHE:
        h = hashlib.sha256()
        p = _REPO / name
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        for f in files:
            if f.is_file():
                h.update(str(f.relative_to(_REPO)).encode())
                h.update(f.read_bytes())
        _CODE_CACHE[name] = h.hexdigest()
    return _CODE_CACHE[name]


def code_hash(func: Callable, packages: Sequence[str] = ()) -> str:
    """Hash of the code a stage runs: the source files of the module that defines
    ``func`` and of every project module it imports, directly or not
    (:func:`imported_modules`), plus ``func``'s own source, the ljvae version and any
    extra ``packages`` (directories or files relative to the repository root)."""
    from mcsim.io import package_version

    h = hashlib.sha256(package_version().encode())
    try:
        h.update(inspect.getsource(func).encode())
    except (OSError, TypeError):
        h.update(func.__qualname__.encode())
    for mod in imported_modules(getattr(func, "__module__", "") or ""):
        f = _module_file(mod)
        h.update(str(f.relative_to(_REPO)).encode())
        h.update(_package_hash(str(f.relative_to(_REPO))).encode())
    for name in packages:
        h.update(name.encode())
        h.update(_package_hash(name).encode())
    return h.hexdigest()[:16]


def cache_key(name: str, params: dict[str, Any], code: str, deps: dict[str, str]) -> str:
    """SHA-256 (first 16 hex digits) of a stage's identity."""
    blob = json.dumps({"stage": name, "params": jsonable(params), "code": code,
                       "deps": deps}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class StageRecord:
    """What a finished stage left behind (the content of its ``stage.json``).

    Attributes:
        name: stage name.
        key: its cache key.
        dir: its directory.
        params: its resolved parameters.
        summary: JSON-able results (numbers, tables, output file names).
        figures: PNG files it wrote, relative to its directory.
        seconds: wall time of the run that produced it (of its last part, if it
            resumed an interrupted run).
        status: ``ran`` or ``cached`` (in this invocation).
    """

    name: str
    key: str
    dir: Path
    params: dict[str, Any]
    summary: dict[str, Any]
    figures: list[str]
    seconds: float
    started: str = ""
    finished: str = ""
    status: str = "ran"

    def path(self, name: str) -> Path:
        return self.dir / name


def read_record(stage_dir: Path) -> StageRecord | None:
    """The record in ``stage_dir/stage.json``, or None if absent or unreadable."""
    p = stage_dir / STAGE_FILE
    try:
        d = json.loads(p.read_text())
        return StageRecord(d["stage"], d["key"], stage_dir, d["params"], d["summary"],
                           list(d["figures"]), float(d["seconds"]), d.get("started", ""),
                           d.get("finished", ""), "cached")
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class StageContext:
    """Everything a stage function may use.

    Attributes:
        dir: the stage's own directory (exists, empty unless ``resume``).
        params: its resolved parameters.
        deps: records of the stages it depends on, by name.
        resume: an interrupted run with the same key left files in ``dir``.
        progress: show progress bars.
        threads: CPU threads for numba and torch.
        config: the whole resolved configuration (read-only, for the report).
        figures: PNGs written so far (relative to ``dir``); stages append to it.
    """

    dir: Path
    params: dict[str, Any]
    deps: dict[str, StageRecord]
    resume: bool
    progress: bool
    threads: int
    config: dict[str, Any]
    figures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Stage:
    """A pipeline stage.

    Attributes:
        name: also its directory name.
        func: ``func(ctx) -> summary dict``.
        params: ``params(config) -> dict``: the parameters that define its output.
        deps: names of the stages whose outputs it reads.
        packages: extra code its output depends on (directories or files; the
            modules its own module imports always count, see :func:`code_hash`).
        title: one line for the banner.
        heading: its section title in the report (default: the name).
        order: its place in the study (stages run in this order).
        section: the section of the study's configuration it owns ("" for none).
        defaults: that section in each profile, by profile name (``quick``, ``full``).
        complete: ``complete(section) -> section`` fills in defaults defined elsewhere
            (e.g. a config class's) before overrides are merged.
        open_keys: the section's keys are the fields of a config class that validates
            them (``validate``), not checked against ``defaults``.
        seeds: config paths (tuples of keys) that receive the master seed unless the
            ``--config`` file sets them.
        resolve: ``resolve(cfg, overrides, threads)`` sets values derived from other
            sections (after overrides and seeds).
        validate: ``validate(cfg)`` raises a UserError naming the bad key (before any
            stage runs); it may fill in the section's defaults.
    """

    name: str
    func: Callable[[StageContext], dict[str, Any]]
    params: Callable[[dict[str, Any]], dict[str, Any]]
    deps: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    title: str = ""
    heading: str = ""
    order: int = 0
    section: str = ""
    defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    complete: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    open_keys: bool = False
    seeds: tuple[tuple[str, ...], ...] = ()
    resolve: Callable[[dict[str, Any], dict[str, Any], int | None], None] | None = None
    validate: Callable[[dict[str, Any]], None] | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _fresh_dir(d: Path) -> None:
    """Empty ``d``: move the old directory aside, create a new one, delete the old."""
    if d.exists():
        aside = d.with_name(f".{d.name}.old.{os.getpid()}")
        if aside.exists():
            shutil.rmtree(aside)
        os.replace(d, aside)
        d.mkdir(parents=True)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        d.mkdir(parents=True)


def run_stage(stage: Stage, root: Path, config: dict[str, Any],
              deps: dict[str, StageRecord], *, force: bool = False, progress: bool = True,
              threads: int = 1, log: Callable[[str], None] | None = None) -> StageRecord:
    """Run ``stage`` in ``root/<name>`` unless its ``stage.json`` holds the current key.

    Returns:
        The stage's record, ``status`` ``cached`` or ``ran``.
    """
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    d = root / stage.name
    params = jsonable(stage.params(config))
    key = cache_key(stage.name, params, code_hash(stage.func, stage.packages),
                    {n: deps[n].key for n in stage.deps})
    old = read_record(d)
    if old is not None and old.key == key and not force:
        missing = [f for f in old.figures if not (d / f).is_file()]
        if not missing:
            old.status = "cached"
            return old
    resume = False
    if not force and old is None and d.is_dir():
        try:
            resume = json.loads((d / RUNNING_FILE).read_text()).get("key") == key
        except (OSError, ValueError, AttributeError):
            resume = False
    if resume:
        log(f"  {stage.name}: resuming an interrupted run")
        (d / STAGE_FILE).unlink(missing_ok=True)
    else:
        _fresh_dir(d)
    started = _now()
    write_json(d / RUNNING_FILE, {"key": key, "started": started, "pid": os.getpid()})
    ctx = StageContext(d, params, {n: deps[n] for n in stage.deps}, resume, progress,
                       threads, config)
    t0 = time.perf_counter()
    summary = stage.func(ctx)
    seconds = time.perf_counter() - t0
    rec = StageRecord(stage.name, key, d, params, jsonable(summary or {}), list(ctx.figures),
                      seconds, started, _now(), "ran")
    write_json(d / STAGE_FILE, {
        "stage": rec.name, "key": key, "params": params,
        "deps": {n: deps[n].key for n in stage.deps}, "summary": rec.summary,
        "figures": rec.figures, "seconds": seconds, "started": started,
        "finished": rec.finished, "resumed": resume,
    })
    (d / RUNNING_FILE).unlink(missing_ok=True)
    return rec
