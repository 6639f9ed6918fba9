"""RMSD over rigid motions and relabellings, against brute force over permutations."""

import itertools

import numpy as np
import pytest

from reconstruct.metrics import rmsd, rmsd_unlabelled


def _rot(t):
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def test_zero_for_a_relabelled_rigid_copy():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 10, (4, 30, 2))
    b = np.stack([(a[k][rng.permutation(30)] * [1, -1]) @ _rot(0.3 + k).T + [2.0, -1.0]
                  for k in range(4)])
    assert rmsd(a, b).min() > 1.0  # labels do not match
    np.testing.assert_allclose(rmsd_unlabelled(a, b), 0.0, atol=1e-12)


def test_matches_brute_force_over_permutations_for_small_n():
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 3, (25, 5, 2))
    b = rng.uniform(0, 3, (25, 5, 2))
    brute = np.array([min(rmsd(a[k][list(p)], b[k])[0]
                          for p in itertools.permutations(range(5))) for k in range(25)])
    np.testing.assert_allclose(rmsd_unlabelled(a, b), brute, atol=1e-12)


def test_never_above_the_labelled_rmsd_and_respects_chirality():
    rng = np.random.default_rng(2)
    a = rng.uniform(0, 10, (6, 30, 2))
    b = a + rng.normal(0, 0.3, a.shape)
    u = rmsd_unlabelled(a, b)
    assert np.all(u <= rmsd(a, b) + 1e-12)
    mirror = a * [1, -1]
    assert np.all(rmsd_unlabelled(a, mirror) < 1e-12)
    assert np.all(rmsd_unlabelled(a, mirror, allow_reflection=False) > 0.1)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="equal shape"):
        rmsd_unlabelled(np.zeros((3, 2)), np.zeros((4, 2)))
