"""The stages of ``reproduce-study``, one module each; this package is their registry.

A stage module defines ``STAGE``, a :class:`pipelines.study.engine.Stage` (name,
function, parameters of its cache key, dependencies, banner title, report heading and
its place in the study, ``order``). :data:`STAGES` holds every module's ``STAGE`` in
that order: adding a stage is one new module here (plus its test); its code enters its
cache key through the modules it imports.
"""

from __future__ import annotations

from mcsim.shared import discover
from pipelines.study.engine import Stage

__all__ = ["STAGES", "NAMES", "by_name"]


#: every stage of the study, in the order they run
STAGES: tuple[Stage, ...] = tuple(discover(__name__, "STAGE", Stage).values())
NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)


def by_name(name: str) -> Stage:
    """The registered stage called ``name``."""
    return {s.name: s for s in STAGES}[name]
