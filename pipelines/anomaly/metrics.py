"""Detection metrics: ROC AUC (Mann-Whitney, with ties), bootstrap CI, ROC curve,
thresholds at a fixed false-positive rate.

Convention everywhere: a *higher* score means *more anomalous*; in-distribution
configurations are the negatives, anomalies the positives.

The AUC is the Mann-Whitney statistic (Hanley & McNeil 1982, eq. 2):

    AUC = P(s_pos > s_neg) + 1/2 P(s_pos = s_neg)
        = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg),

with R_pos the sum of the mid-ranks (ties share the average rank) of the positives in
the pooled sample. It equals the area under the empirical ROC curve with ties drawn as
diagonal segments, i.e. ``sklearn.metrics.roc_auc_score``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "roc_auc",
    "bootstrap_auc",
    "AUCResult",
    "auc_with_ci",
    "roc_curve",
    "threshold_at_fpr",
    "detection_rate",
]


def _scores(name: str, s: np.ndarray) -> np.ndarray:
    a = np.asarray(s, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{name}: need at least one score")
    if np.any(np.isnan(a)):
        raise ValueError(f"{name}: scores contain NaN")
    return a


def _auc_from_ranks(ranks_pos_sum: np.ndarray | float, n_pos: int, n_neg: int):
    return (ranks_pos_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def roc_auc(s_neg: np.ndarray, s_pos: np.ndarray) -> float:
    """ROC AUC of separating positives (anomalies) from negatives by the score.

    Args:
        s_neg: (n_neg,) scores of in-distribution configurations.
        s_pos: (n_pos,) scores of anomalies. +inf is allowed (ranks last).

    Returns:
        AUC in [0, 1]; 0.5 means no separation, 1 perfect (higher score = anomaly).
    """
    neg, pos = _scores("s_neg", s_neg), _scores("s_pos", s_pos)
    ranks = rankdata(np.concatenate([pos, neg]))  # mid-ranks for ties
    return float(_auc_from_ranks(ranks[:pos.size].sum(), pos.size, neg.size))


def _weighted_auc(neg_sorted: np.ndarray, pos: np.ndarray, v: np.ndarray,
                  w: np.ndarray) -> np.ndarray:
    """AUCs of weighted samples: negatives ``neg_sorted`` (n_n,) ascending with integer
    weights v (B, n_n), positives ``pos`` (n_p,) with weights w (B, n_p); a weight is
    how often the value occurs in a resample. O(B (n_n + n_p)), no sorting per resample.
    """
    lo = np.searchsorted(neg_sorted, pos, side="left")
    hi = np.searchsorted(neg_sorted, pos, side="right")
    cum = np.concatenate([np.zeros((v.shape[0], 1)), np.cumsum(v, axis=1)], axis=1)
    below, upto = cum[:, lo], cum[:, hi]  # weighted counts of negatives < p, <= p
    share = (below + 0.5 * (upto - below)) / v.sum(axis=1, keepdims=True)
    return (w * share).sum(axis=1) / w.sum(axis=1)


def _counts(rng: np.random.Generator, b: int, n: int) -> np.ndarray:
    """(b, n) occurrence counts of b resamples of size n drawn with replacement."""
    idx = rng.integers(0, n, (b, n)) + (np.arange(b) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def bootstrap_auc(s_neg: np.ndarray, s_pos: np.ndarray, n_boot: int = 1000,
                  seed: int | np.random.SeedSequence = 0, chunk: int = 100) -> np.ndarray:
    """AUCs of ``n_boot`` stratified bootstrap resamples: negatives and positives are
    resampled separately, with replacement, keeping their counts (each resample is
    represented by how often it draws each value).

    Returns:
        (n_boot,) AUC values.
    """
    neg, pos = np.sort(_scores("s_neg", s_neg)), _scores("s_pos", s_pos)
    rng = np.random.default_rng(seed)
    n_p, n_n = pos.size, neg.size
    out = np.empty(n_boot)
    for a in range(0, n_boot, chunk):
        b = min(chunk, n_boot - a)
        out[a:a + b] = _weighted_auc(neg, pos, _counts(rng, b, n_n), _counts(rng, b, n_p))
    return out


@dataclass(frozen=True)
class AUCResult:
    """AUC with a percentile bootstrap confidence interval [lo, hi] at level ``level``."""

    auc: float
    lo: float
    hi: float
    level: float
    n_boot: int

    def to_dict(self) -> dict[str, float]:
        return {"auc": self.auc, "lo": self.lo, "hi": self.hi, "level": self.level,
                "n_boot": self.n_boot}


def auc_with_ci(s_neg: np.ndarray, s_pos: np.ndarray, n_boot: int = 1000, level: float = 0.95,
                seed: int | np.random.SeedSequence = 0) -> AUCResult:
    """:func:`roc_auc` and its percentile bootstrap CI (:func:`bootstrap_auc`)."""
    auc = roc_auc(s_neg, s_pos)
    if n_boot <= 0:
        return AUCResult(auc, float("nan"), float("nan"), level, 0)
    boots = bootstrap_auc(s_neg, s_pos, n_boot, seed)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(boots, [alpha, 1.0 - alpha])
    return AUCResult(auc, float(lo), float(hi), level, int(n_boot))


def roc_curve(s_neg: np.ndarray, s_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical ROC curve: (fpr, tpr), each (K,), from (0, 0) to (1, 1), one point per
    distinct threshold (flag a configuration when its score >= threshold)."""
    neg, pos = _scores("s_neg", s_neg), _scores("s_pos", s_pos)
    thr = np.unique(np.concatenate([neg, pos]))[::-1]
    neg_sorted, pos_sorted = np.sort(neg), np.sort(pos)
    fpr = (neg.size - np.searchsorted(neg_sorted, thr, side="left")) / neg.size
    tpr = (pos.size - np.searchsorted(pos_sorted, thr, side="left")) / pos.size
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])


def threshold_at_fpr(s_ref: np.ndarray, fpr: float) -> float:
    """The smallest threshold t such that at most a fraction ``fpr`` of the reference
    (in-distribution) scores exceed it: flag a configuration when score > t.

    With n reference scores sorted ascending s_(1) <= ... <= s_(n), t = s_(k) with
    k = n - floor(fpr * n), so that #{s > t} <= floor(fpr * n) (ties can only lower it).
    """
    ref = np.sort(_scores("s_ref", s_ref))
    if not 0.0 <= fpr < 1.0:
        raise ValueError(f"fpr: must be in [0, 1), got {fpr!r}")
    k = ref.size - int(np.floor(fpr * ref.size + 1e-9))
    return float(ref[k - 1])


def detection_rate(scores: np.ndarray, threshold: float) -> float:
    """Fraction of ``scores`` strictly above ``threshold`` (TPR on anomalies, FPR on
    in-distribution data)."""
    s = _scores("scores", scores)
    return float(np.mean(s > threshold))
