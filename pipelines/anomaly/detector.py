"""A trained VAE as an outlier detector for unlabelled configurations, with the
conventions of the outlier-detection library PyOD (``BaseDetector``):

    det = VAEDetector("runs/default/best.pt", score="iwae", fpr=0.01).fit()
    s = det.decision_function(positions)   # (M,) higher = more anomalous
    y = det.predict(positions)             # (M,) 1 = anomalous (s > det.threshold_)
    every = det.score_all(positions)       # {score: (M,)} for every score
    det.threshold_, det.decision_scores_, det.labels_

``fit`` reads the model's own training data (the files the checkpoint names, checked
by fingerprint) and its train/validation/test split:

* every score model (Mahalanobis, one-class SVM, PCA, isolation forest, energy
  reference) is fitted on the *training* split, exactly as ``anomaly-test`` does with the
  same :class:`~pipelines.anomaly.config.AnomalyConfig` (same subset, same seeds);
* each score's threshold is fixed on the *validation* split so that a fraction of at
  most ``fpr`` of its in-distribution configurations score above it. ``fpr`` takes the
  place of PyOD's ``contamination``: it is a false-positive rate on clean data, not an
  assumed fraction of outliers in the data scored.

As in PyOD, ``decision_scores_`` and ``labels_`` describe the data the threshold was
set on (here the validation split, not the training split: scores of the configurations
a score model was fitted on are biased low), ``threshold_`` is the threshold of the
chosen ``score``, and labels are ``score > threshold_`` as 0 / 1 integers.

Positions are (M, N, 2) in sigma, in the model's box [0, L]^2; data in another box are
brought into it by :func:`pipelines.anomaly.user_sets.load_positions`. The ``iwae``
draws of configuration i come from a stream of (config seed, i + ``start``), so the
scores of a file do not depend on how it is cut into pieces.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mcsim.clitools import UserError
from pipelines.anomaly.config import AnomalyConfig
from pipelines.anomaly.metrics import detection_rate, threshold_at_fpr
from pipelines.anomaly.scores import SCORE_INFO, SCORES

__all__ = ["VAEDetector", "DATA_KEY"]

#: the key of the ``iwae`` draws of scored data (``anomaly-test`` uses ``split:*`` /
#: ``set:*``)
DATA_KEY = "data"


class VAEDetector:
    """Outlier detector from a trained VAE checkpoint (see the module docstring).

    Args:
        checkpoint: a ``best.pt`` / ``last.pt`` of ``train-vae``.
        score: the score of :meth:`decision_function`, :meth:`predict`, ``threshold_``
            (one of :data:`~pipelines.anomaly.scores.SCORES`; default ``mse``, the
            study's score). :meth:`score_all` gives every score.
        fpr: false-positive rate on the validation split that fixes the thresholds, in
            (0, 0.5) (default: ``config.fpr``).
        config: the score-model settings (``fit_max``, ``pca_components``, ``ocsvm_nu``,
            ``iforest_trees``, ``iwae_k``, ``seed``, ``potential``/``cutoff`` of the
            energy score); default :class:`AnomalyConfig` ().

    Attributes (after :meth:`fit`):
        model_: the :class:`vae.checkpoint.TrainedVAE`.
        scores_: the scores defined for this model (``neg_elbo`` and ``iwae`` need a
            KL weight > 0), in table order.
        thresholds_: {score: threshold}; ``threshold_`` that of ``score``.
        val_scores_: {score: (n_val,)} scores of the validation split.
        decision_scores_: (n_val,) ``val_scores_[score]``.
        labels_: (n_val,) int, ``decision_scores_ > threshold_``.
        val_fpr_: {score: fraction of the validation split above its threshold} (<= fpr).
        n_fit_, n_val_: configurations fitting the score models / setting thresholds.
        train_files_: the in-distribution files read.
    """

    def __init__(self, checkpoint: str | os.PathLike, *, score: str = "mse",
                 fpr: float | None = None, config: AnomalyConfig | None = None) -> None:
        cfg = AnomalyConfig() if config is None else config
        if not isinstance(cfg, AnomalyConfig):
            raise TypeError("config: must be an AnomalyConfig")
        if score not in SCORE_INFO:
            raise ValueError(f"score: must be one of {', '.join(SCORES)}, got {score!r}")
        if fpr is not None:
            cfg = cfg.replace(fpr=fpr)  # validates it
        self.checkpoint = Path(checkpoint)
        self.score = score
        self.fpr = cfg.fpr
        self.config = cfg
        self._scorer = None

    # -- fitting -----------------------------------------------------------------------
    def fit(self, train_data: Sequence[str | os.PathLike] | None = None, *,
            progress: bool = False) -> VAEDetector:
        """Fit the score models on the model's training split and fix the thresholds on
        its validation split.

        Args:
            train_data: the model's training data files (default: those the checkpoint
                names; their fingerprint must match).
            progress: a tqdm bar over the steps.

        Returns:
            self. Raises UserError for unreadable or mismatched data, ValueError when
            ``score`` is not defined for this model.
        """
        from pipelines.anomaly.run import Scorer, load_in_distribution, usable_scores
        from vae.checkpoint import load_model

        steps = tqdm(total=3, desc="fit detector", disable=not progress, dynamic_ncols=True)
        with steps:
            steps.set_postfix_str("model and training data")
            model = load_model(self.checkpoint)
            ind = load_in_distribution(model, self.checkpoint,
                                        None if train_data is None else list(train_data))
            steps.update()
            steps.set_postfix_str("score models (training split)")
            scorer = Scorer(self.config, model, ind)
            steps.update()
            steps.set_postfix_str("thresholds (validation split)")
            val = ind.split.val
            if val.size < 1:
                raise UserError(f"{self.checkpoint}: the model's validation split is empty; "
                                "no threshold can be set")
            s_val, _ = scorer(ind.x[val], ind.positions[val], "split:val")
            steps.update()
        usable = usable_scores(s_val)
        if self.score not in usable:
            raise ValueError(f"score: {self.score!r} is not defined for this model (the "
                             "training loss has KL weight 0, so it implies no likelihood)")
        self.model_ = model
        self.scores_ = usable
        self.val_scores_ = {k: s_val[k] for k in usable}
        self.thresholds_ = {k: threshold_at_fpr(s_val[k], self.fpr) for k in usable}
        self.val_fpr_ = {k: detection_rate(s_val[k], self.thresholds_[k]) for k in usable}
        self.threshold_ = self.thresholds_[self.score]
        self.decision_scores_ = self.val_scores_[self.score]
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int64)
        self.n_fit_, self.n_val_ = scorer.n_fit, int(val.size)
        self.train_files_ = list(ind.files)
        self._scorer = scorer
        return self

    def _check_fitted(self) -> None:
        if self._scorer is None:
            raise RuntimeError("VAEDetector: call fit() first")

    # -- scoring -----------------------------------------------------------------------
    def score_all(self, positions: np.ndarray, *, start: int = 0, batch_size: int = 1000,
                  progress: bool = False) -> dict[str, np.ndarray]:
        """Every defined score (``scores_``) of configurations.

        Args:
            positions: (M, N, 2) sigma, in the model's box (N and L the model's).
            start: index of positions[0] in the whole data (``iwae`` draws).
            batch_size: configurations per pass (does not change the result).
            progress: a tqdm bar over the configurations.

        Returns:
            {score: (M,) float64}, higher = more anomalous.
        """
        self._check_fitted()
        pos = np.asarray(positions, dtype=np.float64)
        model = self.model_
        model.check_positions(pos)  # N, shape, NaN: before any work
        m = len(pos)
        out = {k: np.empty(m) for k in self.scores_}
        bar = tqdm(total=m, desc="score", unit="conf", disable=not progress,
                   dynamic_ncols=True)
        with bar:
            for a in range(0, m, batch_size):
                b = min(m, a + batch_size)
                s, _ = self._scorer(model.inputs(pos[a:b]), pos[a:b], DATA_KEY, start + a)
                for k in self.scores_:
                    out[k][a:b] = s[k]
                bar.update(b - a)
        return out

    def labels(self, scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """{score: (M,) int, 1 where the score exceeds its threshold} for the output of
        :meth:`score_all`."""
        self._check_fitted()
        return {k: (np.asarray(v) > self.thresholds_[k]).astype(np.int64)
                for k, v in scores.items()}

    def decision_function(self, positions: np.ndarray, *, start: int = 0) -> np.ndarray:
        """(M,) the chosen ``score`` of configurations (M, N, 2), sigma; higher = more
        anomalous."""
        return self.score_all(positions, start=start)[self.score]  # (all: one pass)

    def predict(self, positions: np.ndarray, *, start: int = 0) -> np.ndarray:
        """(M,) int labels: 1 = anomalous (``decision_function > threshold_``), 0 =
        in distribution."""
        return (self.decision_function(positions, start=start) > self.threshold_
                ).astype(np.int64)
