"""``reproduce-study``: the whole study in one command, with cached stages and a report.

Modules: :mod:`~pipelines.study.engine` (cache keys, ``stage.json`` records, skip /
resume / rerun), :mod:`~pipelines.study.profiles` (the quick and full profiles and
``--config`` overrides), :mod:`~pipelines.study.common` (what the stages share),
:mod:`~pipelines.study.stages` (one module per stage, and their registry),
:mod:`~pipelines.study.report` (``report.md`` / ``report.html``) and
:mod:`~pipelines.study.cli` (the command).
"""
