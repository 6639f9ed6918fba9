"""Convex hull and the gravitational tumbler: fast kernels against the scipy
references, invariances, the physics of the resting position, degenerate inputs."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from reconstruct import (
    convex_hull,
    distance_matrices,
    reconstruct_configurations,
    tumble,
)
from reconstruct.hull import _hull_scipy_one

BOX = 10.0


def _cloud(seed: int, n: int, flat: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 6.0, (n, 2))
    x[:, 1] *= flat
    return x


def _rotation(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def _margins(x: np.ndarray) -> tuple[float, float]:
    """Relative gap between the nearest and second-nearest hull edge lines to the
    centre of mass, and relative size of the mirror statistic after resting: the
    two decisions of the tumbler, computed independently of it (scipy hull)."""
    c = x.mean(axis=0)
    h = _hull_scipy_one(x)
    dists = []
    for a, b in zip(h, np.roll(h, -1), strict=True):
        t = x[b] - x[a]
        dists.append(abs(t[0] * (c[1] - x[a, 1]) - t[1] * (c[0] - x[a, 0])) / np.hypot(*t))
    dists = np.sort(dists)
    gap = (dists[1] - dists[0]) / (dists[-1] + 1e-300) if len(dists) > 1 else 1.0
    out = tumble(x, BOX).positions[0]
    xr = out[:, 0] - out[:, 0].mean()
    m3 = abs(np.sum(xr**3)) / (np.sum(np.abs(xr) ** 3) + 1e-300)
    return gap, m3


# ------------------------------------------------------------------------ hull
@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 60))
def test_fast_hull_matches_scipy_on_random_clouds(seed, n):
    x = _cloud(seed, n)
    fast, ref = convex_hull(x, "fast"), convex_hull(x, "scipy")
    np.testing.assert_array_equal(fast, ref)


def test_hull_on_a_grid_drops_collinear_boundary_points():
    g = np.stack(np.meshgrid(np.arange(4.0), np.arange(3.0)), -1).reshape(-1, 2)
    for method in ("fast", "scipy"):
        h = convex_hull(g, method)
        assert sorted(map(tuple, g[h])) == [(0, 0), (0, 2), (3, 0), (3, 2)]
        assert tuple(g[h[0]]) == (0.0, 0.0)


@pytest.mark.parametrize("method", ["fast", "scipy"])
def test_hull_degenerate_sets(method):
    assert list(convex_hull(np.array([[1.0, 2.0]]), method)) == [0]
    assert list(convex_hull(np.full((4, 2), 3.0), method)) in ([0], [1], [2], [3])
    line = np.array([[2.0, 2.0], [0.0, 0.0], [3.0, 3.0], [1.0, 1.0]])
    assert list(convex_hull(line, method)) == [1, 2]


def test_interior_filter_keeps_every_hull_vertex():
    """The Akl-Toussaint pre-filter of the fast hull drops interior points only: on
    dense clouds (most points interior), Monte Carlo-like slabs, integer grids (ties in
    every extreme direction, points on the octagon's edges) and a lattice diamond, the
    fast hull equals Qhull's, and the filter really drops points."""
    from reconstruct._kernels import _interior_filter

    rng = np.random.default_rng(5)
    sets = [rng.normal(size=(200, 2)), rng.uniform(0, 10, (30, 2)) * [1.0, 0.25],
            rng.integers(0, 4, (30, 2)).astype(float),
            np.stack(np.meshgrid(np.arange(6.0), np.arange(6.0)), -1).reshape(-1, 2)]
    g = np.stack(np.meshgrid(np.arange(-3.0, 4.0), np.arange(-3.0, 4.0)), -1).reshape(-1, 2)
    sets.append(g[np.abs(g).sum(axis=1) <= 3])  # a diamond: diagonal sides, ties on them
    for x in sets:  # vertex coordinates: a grid with repeated points has tied indices
        np.testing.assert_array_equal(x[convex_hull(x, "fast")], x[convex_hull(x, "scipy")])
    x = sets[0]
    kept = _interior_filter(x[:, 0].copy(), x[:, 1].copy(), np.empty(200, np.int64),
                            np.empty(200))
    assert len(convex_hull(x, "scipy")) <= kept < 60


def test_hull_is_counter_clockwise_and_convex():
    x = _cloud(3, 40)
    h = x[convex_hull(x)]
    e1 = np.roll(h, -1, axis=0) - h
    e2 = np.roll(e1, -1, axis=0)
    assert np.all(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0] > 0)


# ---------------------------------------------------- fast tumbler vs reference
@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 40),
       flat=st.sampled_from([1.0, 0.3, 0.05]))
def test_fast_tumbler_matches_scipy_reference(seed, n, flat):
    x = _cloud(seed, n, flat)
    fast, ref = tumble(x, BOX, "fast"), tumble(x, BOX, "scipy")
    np.testing.assert_allclose(fast.positions, ref.positions, atol=1e-12)
    for f in ("width", "height", "com_height"):
        np.testing.assert_allclose(getattr(fast, f), getattr(ref, f), atol=1e-12)
    np.testing.assert_array_equal(fast.edge, ref.edge)
    np.testing.assert_array_equal(fast.reflected, ref.reflected)
    np.testing.assert_array_equal(fast.fits, ref.fits)


# ------------------------------------------------------------------ invariance
@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 35),
       theta=st.floats(0.0, 2 * math.pi), shift=st.tuples(st.floats(-50, 50),
                                                          st.floats(-50, 50)),
       mirror=st.booleans(), flat=st.sampled_from([1.0, 0.3]))
def test_tumbled_output_is_invariant_under_rigid_motions_and_relabelling(
        seed, n, theta, shift, mirror, flat):
    x = _cloud(seed, n, flat)
    gap, m3 = _margins(x)
    assume(gap > 1e-6 and m3 > 1e-6)  # no exact tie in the two decisions
    base = tumble(x, BOX).positions[0]
    y = x @ _rotation(theta).T + np.array(shift)
    if mirror:
        y[:, 0] = -y[:, 0]
    perm = np.random.default_rng(seed).permutation(n)
    inv = np.argsort(perm)
    moved = tumble(y[perm], BOX).positions[0][inv]
    np.testing.assert_allclose(moved, base, atol=1e-9)
    # and through the whole pipeline, from the distance matrices
    for variant in ("centered", "reference"):
        rec = reconstruct_configurations(distance_matrices(y[perm]), BOX, variant,
                                         reference=n // 2, placement="edge")
        np.testing.assert_allclose(rec.positions[0][inv], base, atol=1e-8)


# --------------------------------------------------------------------- physics
@settings(max_examples=40, deadline=None)
@given(pts=arrays(np.float64, st.tuples(st.integers(1, 25), st.just(2)),
                  elements=st.floats(-20, 20, allow_nan=False, allow_subnormal=False)))
def test_any_input_rests_on_the_floor_finite(pts):
    """Property on arbitrary clouds (duplicates, lines, single points included)."""
    for method in ("fast", "scipy"):
        t = tumble(pts, BOX, method)
        pos = t.positions[0]
        assert np.all(np.isfinite(pos))
        assert pos[:, 1].min() == 0.0
        if t.fits[0]:
            assert np.all((pos >= 0.0) & (pos <= BOX))
        # bounding box centred horizontally
        assert abs(pos[:, 0].min() + pos[:, 0].max() - BOX) <= 1e-9 * max(1.0, t.width[0])
        # the shape is unchanged: same distances
        np.testing.assert_allclose(distance_matrices(pos), distance_matrices(pts),
                                   atol=1e-9 * max(1.0, np.abs(pts).max()))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 30))
def test_resting_position_minimises_gravitational_energy(seed, n):
    """Among all rotations (and mirrors) with every particle at y >= 0, none puts
    the centre of mass lower than the tumbler's choice (brute force over angles)."""
    x = _cloud(seed, n)
    t = tumble(x, BOX)
    xc = x - x.mean(axis=0)
    thetas = np.linspace(0.0, 2 * math.pi, 7201)
    c, s = np.cos(thetas)[:, None], np.sin(thetas)[:, None]
    y_rot = s * xc[None, :, 0] + c * xc[None, :, 1]  # y after rotation by theta
    com_height = -y_rot.min(axis=1)  # centre of mass above the lowest particle
    assert t.com_height[0] <= com_height.min() + 1e-12
    np.testing.assert_allclose(t.com_height[0], t.positions[0][:, 1].mean(), atol=1e-12)
    # the grid gets within its resolution: |d y_com / d theta| <= max_i |x_i - c|
    step = thetas[1] - thetas[0]
    assert t.com_height[0] >= com_height.min() - np.hypot(*xc.T).max() * step
    # the resting edge is on the floor and the centre of mass is above it
    a, b = t.positions[0][t.edge[0]]
    assert abs(a[1]) < 1e-12 and abs(b[1]) < 1e-12
    cx = t.positions[0][:, 0].mean()
    assert min(a[0], b[0]) - 1e-12 <= cx <= max(a[0], b[0]) + 1e-12


def test_triangle_rests_on_its_longest_side():
    x = np.array([[0.0, 0.0], [5.0, 1.0], [1.0, 3.0]])
    t = tumble(x, BOX)
    sides = {(0, 1): 26.0, (1, 2): 20.0, (0, 2): 10.0}
    assert tuple(sorted(t.edge[0])) == max(sides, key=sides.get)


def test_reflection_rule_is_documented_one():
    for seed in range(20):
        t = tumble(_cloud(seed, 15), BOX)
        xr = t.positions[0][:, 0] - t.positions[0][:, 0].mean()
        assert np.sum(xr**3) >= 0.0


def test_mirror_images_give_identical_output():
    x = _cloud(42, 20)
    y = x.copy()
    y[:, 0] *= -1
    a, b = tumble(x, BOX), tumble(y, BOX)
    np.testing.assert_allclose(a.positions, b.positions, atol=1e-12)
    assert a.reflected[0] != b.reflected[0]


def test_too_wide_is_reported_not_clipped():
    x = np.column_stack([np.linspace(0.0, 14.0, 8), np.zeros(8)])
    x = np.vstack([x, [[7.0, 1.0]]])
    t = tumble(x, BOX)
    assert not t.fits[0]
    assert t.width[0] == pytest.approx(14.0)
    pos = t.positions[0]
    assert pos[:, 0].min() == pytest.approx(-2.0) and pos[:, 0].max() == pytest.approx(12.0)
    needle = tumble(np.array([[0.0, 0.0], [0.2, 15.0], [-0.2, 15.0]]), BOX)
    # a needle standing up lies down on a long side: too wide, not too tall
    assert not needle.fits[0] and needle.height[0] < 0.5 and needle.width[0] > 14.9


def test_degenerate_inputs():
    one = tumble(np.array([[3.0, 7.0]]), BOX)
    np.testing.assert_array_equal(one.positions[0], [[5.0, 0.0]])
    pair = tumble(np.array([[1.0, 1.0], [4.0, 5.0]]), BOX)
    np.testing.assert_allclose(np.sort(pair.positions[0][:, 0]), [2.5, 7.5])
    np.testing.assert_allclose(pair.positions[0][:, 1], 0.0, atol=1e-12)
    same = tumble(np.full((4, 2), -3.0), BOX)
    np.testing.assert_array_equal(same.positions[0], np.tile([5.0, 0.0], (4, 1)))


@pytest.mark.parametrize("bad", [np.zeros((3, 3)), np.full((2, 2), np.nan), np.zeros((0, 2))])
def test_rejects_bad_coordinates(bad):
    with pytest.raises(ValueError):
        tumble(bad, BOX)


@pytest.mark.parametrize("box", [0.0, -1.0, np.inf, "10"])
def test_rejects_bad_box(box):
    with pytest.raises(ValueError, match="box"):
        tumble(np.zeros((3, 2)), box)
