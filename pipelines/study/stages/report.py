"""The ``report`` stage: ``report.md``, ``report.html`` and ``config.resolved.json``
(:mod:`pipelines.study.report`). It reads every stage that finished in this invocation
(the orchestrator sets its dependencies at run time), so it comes last."""

from pipelines.study.engine import Stage
from pipelines.study.report import params_report, stage_report

STAGE = Stage("report", stage_report, params_report, (), title="report", heading="Report",
              order=1000)
