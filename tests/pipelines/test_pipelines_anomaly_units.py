"""Anomaly test building blocks: generators, masks, AUC / bootstrap / thresholds, EDM
completion, config round trip. No model needed; fast."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pipelines.anomaly.config import AnomalyConfig, AnomalyConfigError
from pipelines.anomaly.imputation import edm_complete, masked_rmse
from pipelines.anomaly.metrics import (
    _weighted_auc,
    auc_with_ci,
    bootstrap_auc,
    detection_rate,
    roc_auc,
    roc_curve,
    threshold_at_fpr,
)
from pipelines.anomaly.sets import apply_mask, block_mask, corrupt_positions, random_pair_masks

L = 10.0


def _positions(m=200, n=30, seed=0):
    return np.random.default_rng(seed).uniform(0, L, (m, n, 2))


def _dist(pos):
    return np.sqrt(((pos[:, :, None] - pos[:, None]) ** 2).sum(-1))


# -- corrupted configurations ------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 4, 30])
def test_corrupt_moves_exactly_k_particles_each_by_at_most_s(k):
    pos = _positions()
    s = 0.2 * L * math.sqrt(2)  # the study's 0.2 normalised units = 2.83 sigma
    new, moved = corrupt_positions(pos, k, s, L, seed=7)
    changed = np.any(new != pos, axis=-1)  # (M, N)
    assert np.all(changed.sum(axis=1) == k)
    rows = np.arange(len(pos))[:, None]
    assert np.all(changed[rows, moved])  # the reported particles are the moved ones
    assert np.all(np.sort(moved, axis=1)[:, 1:] != np.sort(moved, axis=1)[:, :-1])  # distinct
    step = np.linalg.norm(new - pos, axis=-1)
    assert step.max() <= s + 1e-12
    assert np.all((new >= 0) & (new <= L))


def test_corrupt_steps_fill_the_range_and_reflect_at_walls():
    # particles on the walls: about half the moves point outwards and are reflected
    pos = np.zeros((4000, 3, 2))
    pos[:, :, 0] = [0.0, L, 5.0]
    pos[:, :, 1] = [5.0, 5.0, 0.0]
    s = 1.0
    new, moved = corrupt_positions(pos, 1, s, L, seed=1)
    step = np.linalg.norm(new - pos, axis=-1).max(axis=1)
    assert np.all((new >= 0) & (new <= L))
    # away from walls' corners a reflected move keeps its length: |d| ~ U(0, s),
    # mean s/2 with standard error s / sqrt(12 M)
    se = s / math.sqrt(12 * len(step))
    assert abs(step.mean() - s / 2) < 4 * se
    assert step.max() > 0.99 * s


def test_corrupt_is_reproducible_and_rejects_bad_input():
    pos = _positions(20)
    a, _ = corrupt_positions(pos, 4, 1.0, L, seed=3)
    b, _ = corrupt_positions(pos, 4, 1.0, L, seed=3)
    c, _ = corrupt_positions(pos, 4, 1.0, L, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(ValueError, match="k"):
        corrupt_positions(pos, 31, 1.0, L)
    with pytest.raises(ValueError, match="step"):
        corrupt_positions(pos, 4, 11.0, L)


# -- masks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("size,offset", [(10, 0), (10, 8), (30, 0)])
def test_block_mask_covers_exactly_the_block(size, offset):
    m = block_mask(30, size, offset)
    rows, cols = np.nonzero(m)
    assert m.sum() == size * size
    assert rows.min() == offset and rows.max() == offset + size - 1
    assert cols.min() == offset and cols.max() == offset + size - 1
    x = np.ones((3, 1, 30, 30), np.float32)
    y = apply_mask(x, m)
    assert np.all(y[:, 0][:, m] == 0) and np.all(y[:, 0][:, ~m] == 1)
    assert np.all(x == 1)  # input untouched
    with pytest.raises(ValueError):
        block_mask(30, 10, 25)


def test_random_masks_hide_the_stated_fraction_of_pairs_symmetrically():
    masks = random_pair_masks(50, 30, 0.1, seed=2)
    assert np.all(masks == np.swapaxes(masks, 1, 2))
    assert not masks[:, np.arange(30), np.arange(30)].any()
    assert np.all(masks.sum(axis=(1, 2)) == 2 * round(0.1 * 435))
    assert not np.array_equal(masks[0], masks[1])


# -- metrics -------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_equals_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    neg = rng.integers(0, 8, 300).astype(float)  # many ties within and across classes
    pos = rng.integers(2, 10, 120).astype(float)
    y = np.r_[np.zeros(neg.size), np.ones(pos.size)]
    assert roc_auc(neg, pos) == pytest.approx(roc_auc_score(y, np.r_[neg, pos]), abs=1e-12)
    # the empirical ROC curve has the same area
    fpr, tpr = roc_curve(neg, pos)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(neg, pos), abs=1e-12)


def test_auc_limits():
    assert roc_auc([0, 1, 2], [3, 4]) == 1.0
    assert roc_auc([3, 4], [0, 1, 2]) == 0.0
    assert roc_auc([1, 1, 1], [1, 1]) == 0.5
    assert roc_auc([0.0, 1.0], [np.inf]) == 1.0


def test_weighted_auc_is_the_auc_of_the_resample():
    rng = np.random.default_rng(5)
    neg = np.sort(rng.integers(0, 6, 40).astype(float))
    pos = rng.integers(1, 8, 25).astype(float)
    v = rng.integers(0, 4, (3, neg.size)).astype(float)
    w = rng.integers(0, 4, (3, pos.size)).astype(float)
    got = _weighted_auc(neg, pos, v, w)
    for b in range(3):
        want = roc_auc(np.repeat(neg, v[b].astype(int)), np.repeat(pos, w[b].astype(int)))
        assert got[b] == pytest.approx(want, abs=1e-12)


def test_bootstrap_ci_contains_the_auc_and_matches_the_normal_error():
    rng = np.random.default_rng(0)
    neg, pos = rng.normal(0, 1, 2000), rng.normal(1, 1, 500)
    r = auc_with_ci(neg, pos, n_boot=1000, seed=0)
    assert r.lo < r.auc < r.hi
    # Hanley & McNeil (1982) standard error of the AUC
    a, n1, n2 = r.auc, pos.size, neg.size
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = math.sqrt((a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n2 - 1) * (q2 - a * a))
                   / (n1 * n2))
    assert (r.hi - r.lo) / (2 * 1.96) == pytest.approx(se, rel=0.15)
    assert np.array_equal(bootstrap_auc(neg, pos, 50, seed=1), bootstrap_auc(neg, pos, 50, seed=1))


def test_threshold_at_fpr_and_detection_rate_on_a_constructed_example():
    ref = np.arange(1, 201, dtype=float)  # in-distribution validation scores 1..200
    t = threshold_at_fpr(ref, 0.01)  # 2 of 200 may exceed it
    assert t == 198.0 and detection_rate(ref, t) == 0.01
    anomalies = np.r_[np.full(30, 199.5), np.full(70, 50.0)]
    assert detection_rate(anomalies, t) == pytest.approx(0.30)
    # ties at the threshold never push the false-positive rate above the target
    tied = np.r_[np.zeros(95), np.ones(5)]
    t = threshold_at_fpr(tied, 0.01)
    assert detection_rate(tied, t) <= 0.01


# -- EDM completion ------------------------------------------------------------------------

@pytest.mark.parametrize("size,offset", [(10, 0), (10, 8)])
def test_edm_completion_recovers_a_masked_block_of_an_exact_2d_matrix(size, offset):
    pos = _positions(15, seed=3)
    d = _dist(pos)
    mask = block_mask(30, size, offset)
    est, iters = edm_complete(apply_mask(d, mask), mask, iters=2000, tol=1e-12)
    assert masked_rmse(est, d, mask) < 1e-6 * L
    assert np.array_equal(est[:, ~mask], d[:, ~mask])  # known entries kept
    # the baseline it is compared with is far off
    mean_fill = np.broadcast_to(d.mean(axis=0), d.shape)
    assert masked_rmse(mean_fill, d, mask) > 1.0


def test_edm_completion_without_known_distances_is_nan():
    d = _dist(_positions(3, seed=4))
    est, _ = edm_complete(np.zeros_like(d), block_mask(30, 30, 0))
    assert np.all(np.isnan(est))


# -- config --------------------------------------------------------------------------------

def test_config_round_trip_and_defaults():
    cfg = AnomalyConfig()
    assert cfg.unseen_gammas == (3.0,) and cfg.fake_gamma == 0.5 and cfg.fake_sweeps == 5000
    assert cfg.fake_cutoff is None and cfg.corrupt_k == 4 and cfg.fpr == 0.01
    assert cfg.blackout_blocks == ((10, 0), (10, 8), (30, 0))
    assert cfg.step_sigma(10.0) == pytest.approx(2.828427, abs=1e-6)
    assert AnomalyConfig(corrupt_unit="sigma", corrupt_step=1.5).step_sigma(10.0) == 1.5
    assert AnomalyConfig.from_dict(cfg.to_dict()) == cfg
    import json
    other = cfg.replace(sets=["uniform"], unseen_gammas=[2, 5], cutoff="none")
    assert AnomalyConfig.from_dict(json.loads(json.dumps(other.to_dict()))) == other


@pytest.mark.parametrize("field,value", [
    ("sets", ["bogus"]), ("corrupt_k", 0), ("fpr", 0.7), ("corrupt_unit", "cm"),
    ("blackout_blocks", [[10]]), ("mask_fractions", [1.5]), ("potential", "morse"),
    ("unseen_gammas", [-1]), ("n", 1.5),
])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(AnomalyConfigError, match=f"^{field}"):
        AnomalyConfig.from_dict({field: value})


def test_config_unknown_field_and_system_checks():
    with pytest.raises(AnomalyConfigError, match="^colour: unknown"):
        AnomalyConfig.from_dict({"colour": 1})
    with pytest.raises(AnomalyConfigError, match="blackout_blocks"):
        AnomalyConfig(blackout_blocks=((10, 25),)).check_system(30, 10.0)
    with pytest.raises(AnomalyConfigError, match="corrupt_step"):
        AnomalyConfig(corrupt_step=1.0).check_system(30, 10.0)  # 14 sigma > L
