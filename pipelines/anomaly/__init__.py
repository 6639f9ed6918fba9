"""The anomaly test: can a trained VAE tell in-distribution configurations from
anomalies, how much better than baselines that use no VAE, and how well does it fill in
missing data? (Seed 002 chapter 4, made quantitative.)

    cfg = AnomalyConfig(sets=("uniform", "corrupted"), n=1000)
    summary = run_anomaly_test("runs/default/best.pt", "runs/default/anomaly", cfg,
                               data_dir="runs/default/anomaly_data")
    print(summary["table_md"])

Data:

* in distribution: the checkpoint's own data files and split. The *test* split gives
  the negatives of every ROC; the *validation* split fixes each score's threshold at
  ``fpr`` (1 %) false positives; the *training* split (a random subset of at most
  ``fit_max`` configurations) fits every score model (Mahalanobis, one-class SVM,
  PCA, isolation forest, energy reference). Nothing is fitted on test data.
* anomalies (:mod:`pipelines.anomaly.config`): MC sets generated with mcsim into
  ``data_dir`` and reused on later runs (:func:`make_anomaly_sets`); corrupted and
  missing-data sets derived from ``n`` random test configurations.

Your own data join the table as more sets (``user_sets=``,
:mod:`pipelines.anomaly.user_sets`); unlabelled data are scored by
:class:`~pipelines.anomaly.detector.VAEDetector` (PyOD conventions) and the ``score``
command (:mod:`pipelines.anomaly.score_cli`).

Scores: :mod:`pipelines.anomaly.scores`. Metrics (ROC AUC with a stratified bootstrap
CI, detection rate at the validation threshold, actual test FPR):
:mod:`pipelines.anomaly.metrics`. Imputation (VAE vs mean matrix vs EDM completion):
:mod:`pipelines.anomaly.imputation`. Figures: :mod:`pipelines.anomaly.plots`.

Modules: :mod:`~pipelines.anomaly.config` (settings), :mod:`~pipelines.anomaly.datasets`
(the concrete sets and their MC files), :mod:`~pipelines.anomaly.sets` (corruptions,
masks, MC sets), :mod:`~pipelines.anomaly.scores`, :mod:`~pipelines.anomaly.metrics`,
:mod:`~pipelines.anomaly.imputation`, :mod:`~pipelines.anomaly.plots`,
:mod:`~pipelines.anomaly.report`, :mod:`~pipelines.anomaly.run` (the whole test),
:mod:`~pipelines.anomaly.cli`, :mod:`~pipelines.anomaly.user_sets`,
:mod:`~pipelines.anomaly.detector` and :mod:`~pipelines.anomaly.score_cli`.
"""

from pipelines.anomaly.config import SET_KINDS, AnomalyConfig, AnomalyConfigError
from pipelines.anomaly.datasets import AnomalySpec, expand_sets, make_anomaly_sets
from pipelines.anomaly.detector import VAEDetector
from pipelines.anomaly.report import markdown_table
from pipelines.anomaly.run import OUTPUT_FILES, run_anomaly_test
from pipelines.anomaly.scores import SCORES
from pipelines.anomaly.user_sets import UserSet

__all__ = [
    "AnomalyConfig",
    "AnomalyConfigError",
    "SET_KINDS",
    "SCORES",
    "OUTPUT_FILES",
    "AnomalySpec",
    "expand_sets",
    "make_anomaly_sets",
    "run_anomaly_test",
    "markdown_table",
    "VAEDetector",
    "UserSet",
]
