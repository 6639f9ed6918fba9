"""Entry point of ``reproduce-study`` (``python -m pipelines.reproduce``); the code is in
:mod:`pipelines.study`."""

from pipelines.study.cli import MARKER, NAMES, PROG, STAGES, main, run_study, validate_config

__all__ = ["MARKER", "NAMES", "PROG", "STAGES", "main", "run_study", "validate_config"]

if __name__ == "__main__":
    raise SystemExit(main())
