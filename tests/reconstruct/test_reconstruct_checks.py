"""reconstruct.checks: the numba pass equals the NumPy reference (closest pair, leaving
the box), on random sets and on the edge cases: one particle, coincident particles,
particles on the walls, just outside, non-finite coordinates, no configurations."""

from __future__ import annotations

import numpy as np
import pytest

from reconstruct.checks import physical_checks, physical_checks_reference

BOX = 10.0


def _same(pos, box=BOX):
    got = physical_checks(pos, box)
    want = physical_checks_reference(pos, box)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert got[0].dtype == np.float64 and got[1].dtype == np.bool_
    return got


@pytest.mark.parametrize("n", [2, 3, 30])
def test_random_sets_equal_the_reference(n):
    rng = np.random.default_rng(n)
    pos = rng.uniform(-0.2, BOX + 0.2, (500, n, 2))
    dmin, out = _same(pos)
    assert 0 < out.mean() < 1  # both outcomes occur
    i = 7  # the closest pair by brute force
    d = np.linalg.norm(pos[i, :, None] - pos[i, None], axis=-1)[np.triu_indices(n, 1)]
    assert dmin[i] == pytest.approx(d.min(), rel=1e-15)


def test_edge_cases():
    one = np.full((3, 1, 2), 5.0)
    dmin, out = _same(one)
    assert np.all(np.isinf(dmin)) and not out.any()
    pos = np.array([[[1.0, 1.0], [1.0, 1.0], [4.0, 4.0]],  # coincident pair
                    [[0.0, 0.0], [BOX, BOX], [0.0, BOX]],  # on the walls: inside
                    [[-1e-12, 3.0], [5.0, 5.0], [9.0, 9.0]],  # just outside the left wall
                    [[3.0, 3.0], [5.0, BOX + 1e-12], [9.0, 1.0]],  # just above the ceiling
                    [[np.nan, 3.0], [5.0, 5.0], [9.0, 9.0]],
                    [[np.inf, 3.0], [5.0, 5.0], [9.0, 9.0]]])
    dmin, out = _same(pos)
    assert dmin[0] == 0.0 and dmin[1] == BOX
    assert out.tolist() == [False, False, True, True, True, True]
    assert np.isnan(dmin[4]) and np.isnan(dmin[5])
    dmin, out = _same(np.zeros((0, 5, 2)))
    assert dmin.shape == (0,) and out.shape == (0,)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="positions"):
        physical_checks(np.zeros((4, 2)), BOX)
    with pytest.raises(ValueError, match="box"):
        physical_checks(np.zeros((1, 4, 2)), 0.0)
