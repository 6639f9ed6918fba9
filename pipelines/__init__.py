"""Pipelines built on mcsim, vae and reconstruct: :mod:`pipelines.anomaly` (the anomaly
test, ``anomaly-test``), :mod:`pipelines.generate` (generation judged against Monte
Carlo, ``generate``) and :mod:`pipelines.study` (``reproduce-study``: the whole study
with cached stages and a report). See docs/architecture.md."""
