"""Gram step and eigen-embedding: exact round trips, the fast kernel against LAPACK,
validation of inputs, degenerate and noisy matrices."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reconstruct import (
    check_distance_matrices,
    distance_error,
    distance_matrices,
    embed_distances,
    embed_gram,
    gram_matrices,
    reconstruct_configurations,
    rmsd,
    symmetrize_distances,
    tumble,
)

BOX = 10.0
VARIANTS = ("centered", "reference")
METHODS = ("fast", "lapack")


@pytest.fixture(scope="module")
def sampler_positions():
    """A few dozen real sampler configurations at a weak and a strong field."""
    from mcsim.sampler import SimConfig, sample

    cfg = SimConfig(sweeps=300, seed=11)
    return np.concatenate([sample(cfg, g, 24).positions for g in (0.1, 1.0)])


def _cloud(seed: int, n: int, m: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, BOX, (m, n, 2))


# ----------------------------------------------------------------- round trips
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("method", METHODS)
def test_exact_round_trip_on_sampler_output(sampler_positions, variant, method):
    d = distance_matrices(sampler_positions)
    rec = reconstruct_configurations(d, BOX, variant, reference=3, method=method,
                                     placement="edge")
    rms, worst = distance_error(d, rec.positions)
    assert worst.max() < 1e-9
    assert rmsd(sampler_positions, rec.positions).max() < 1e-9
    assert rec.embedding.residual.max() < 1e-9
    assert rec.embedding.negative.max() < 1e-9
    pos = rec.positions
    # resting on the floor: lowest particle exactly at y = 0, nobody below
    assert np.all(pos[..., 1].min(axis=1) == 0.0)
    # inside the box wherever the body fits; where it does not, it really is too big
    extent = pos.max(axis=1) - pos.min(axis=1)
    fits = rec.fits
    assert np.all((pos[fits] >= 0.0) & (pos[fits] <= BOX))
    assert np.all(extent[~fits].max(axis=1) > BOX)
    assert np.array_equal(fits, extent.max(axis=1) <= BOX * (1 + 1e-9))


def test_gram_matches_coordinates():
    x = _cloud(1, 12, 5)
    d = distance_matrices(x)
    xc = x - x.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(gram_matrices(d), xc @ xc.transpose(0, 2, 1), atol=1e-10)
    xr = x - x[:, 4:5]
    np.testing.assert_allclose(gram_matrices(d, "reference", 4), xr @ xr.transpose(0, 2, 1),
                               atol=1e-10)


@pytest.mark.parametrize("variant", VARIANTS)
def test_origin_of_each_variant(variant):
    x = _cloud(2, 15, 4)
    emb = embed_distances(distance_matrices(x), variant, reference=7)
    if variant == "centered":
        np.testing.assert_allclose(emb.coords.mean(axis=1), 0.0, atol=1e-10)
    else:
        np.testing.assert_allclose(emb.coords[:, 7], 0.0, atol=1e-6)


def test_single_matrix_is_a_batch_of_one():
    x = _cloud(3, 9)[0]
    emb = embed_distances(distance_matrices(x))
    assert emb.coords.shape == (1, 9, 2)
    assert distance_error(distance_matrices(x), emb.coords[0])[1][0] < 1e-10


# ------------------------------------------------------- fast kernel vs LAPACK
def _random_symmetric(seed: int, n: int, noise: float) -> np.ndarray:
    """A 2D Gram matrix plus symmetric noise of relative size ``noise``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)) * rng.uniform(0.2, 3.0, 2)
    g = x @ x.T
    e = rng.normal(size=(n, n)) * noise * np.abs(g).max()
    return g + 0.5 * (e + e.T)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40),
       noise=st.sampled_from([0.0, 1e-8, 1e-3, 0.1, 1.0, 10.0]))
def test_fast_eigensolver_matches_lapack(seed, n, noise):
    g = _random_symmetric(seed, n, noise)
    fast, ref = embed_gram(g, "fast"), embed_gram(g, "lapack")
    scale = np.abs(g).max()
    np.testing.assert_allclose(fast.eigenvalues, ref.eigenvalues, atol=1e-11 * scale)
    np.testing.assert_allclose(fast.residual, ref.residual, atol=1e-9)
    np.testing.assert_allclose(fast.negative, ref.negative, atol=1e-9)
    # the rank-2 approximation X X^T is unique when the top two are separated
    lam = ref.eigenvalues[0]
    gaps = np.abs(np.diff(lam[: min(n, 3)]))
    assume(n >= 3 and gaps.min() > 1e-6 * scale)
    xf, xr = fast.coords[0], ref.coords[0]
    np.testing.assert_allclose(xf @ xf.T, xr @ xr.T, atol=1e-8 * scale)


@pytest.mark.parametrize(
    "g",
    [np.zeros((6, 6)), np.eye(7), np.diag([3.0, 3.0, 1.0, 1.0, -2.0]), -np.eye(4),
     np.ones((5, 5)), np.diag(np.arange(30.0)), np.full((1, 1), 2.0)],
    ids=["zero", "identity", "degenerate", "negative", "rank1", "diag30", "n1"],
)
def test_fast_eigensolver_structured_matrices(g):
    """Repeated eigenvalues: eigenvectors are not unique, but X X^T must still be an
    optimal rank-2 PSD approximation: ||G - X X^T||_F^2 = sum of the dropped
    lambda_i^2."""
    emb = embed_gram(g, "fast")
    lam = np.linalg.eigvalsh(g)[::-1]
    np.testing.assert_allclose(emb.eigenvalues[0], lam, atol=1e-12)
    x = emb.coords[0]
    kept = np.zeros(2)
    kept[: min(2, lam.size)] = np.clip(lam[:2], 0.0, None)
    dropped = np.sum(lam**2) - np.sum(kept**2)
    assert np.all(np.isfinite(x))
    np.testing.assert_allclose(np.sum((g - x @ x.T) ** 2), dropped, atol=1e-10)
    np.testing.assert_allclose(x.T @ x, np.diag(kept), atol=1e-10)  # orthogonal columns


# ------------------------------------------------- rank-two short route
def _route(g: np.ndarray) -> bool:
    """True if the kernel's certified rank-two route accepts g (as the batch calls it)."""
    from reconstruct import _kernels as K

    n = g.shape[0]
    scale = np.abs(g).max()
    return bool(K._embed_rank2(g / scale, np.empty((n, 2)), np.empty(n),
                               np.empty((K.WORK_ROWS, n))))


def test_rank_two_route_takes_exact_matrices_and_matches_lapack(sampler_positions):
    """Exact distance matrices of sampler configurations take the certified short
    route, and it agrees with LAPACK to rounding (eigenvalues, X X^T, distances)."""
    d = distance_matrices(sampler_positions)
    for variant in VARIANTS:
        g = gram_matrices(d, variant, 3)
        assert all(_route(gk) for gk in g)
        fast = embed_distances(d, variant, 3)
        ref = embed_distances(d, variant, 3, method="lapack")
        scale = np.abs(g).max(axis=(1, 2))[:, None]
        assert np.all(np.abs(fast.eigenvalues - ref.eigenvalues) <= 1e-12 * scale)
        xx = np.einsum("mia,mja->mij", fast.coords, fast.coords)
        xr = np.einsum("mia,mja->mij", ref.coords, ref.coords)
        assert np.all(np.abs(xx - xr) <= 1e-11 * scale[:, :, None])
        assert distance_error(d, fast.coords)[1].max() < 1e-12


@pytest.mark.parametrize("third", [1e-9, 1e-6, 1e-2])
def test_rank_two_route_refuses_a_third_dimension(third):
    """A third component of relative size 1e-9 or more fails the certificate: the
    general route then resolves it (no eigenvalue is silently dropped)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(30, 3)) * np.array([3.0, 1.5, 0.0])
    g = x @ x.T
    u = np.linalg.qr(np.column_stack([x[:, :2], rng.normal(size=30)]))[0][:, 2]
    lam3 = third * np.linalg.norm(g)
    g = g + lam3 * np.outer(u, u)
    assert not _route(g)
    emb, ref = embed_gram(g), embed_gram(g, "lapack")
    np.testing.assert_allclose(emb.eigenvalues, ref.eigenvalues, atol=1e-12 * np.abs(g).max())
    assert emb.eigenvalues[0, 2] == pytest.approx(lam3, rel=1e-3)


def test_rank_two_route_with_a_negative_eigenvalue():
    """Rank two with one negative eigenvalue (a non-Euclidean matrix): the spectrum is
    (l1, 0, ..., 0, l2), the second coordinate column is zero, and the scores match
    LAPACK's."""
    rng = np.random.default_rng(3)
    q = np.linalg.qr(rng.normal(size=(12, 2)))[0]
    g = 5.0 * np.outer(q[:, 0], q[:, 0]) - 2.0 * np.outer(q[:, 1], q[:, 1])
    assert _route(g)
    emb, ref = embed_gram(g), embed_gram(g, "lapack")
    assert emb.eigenvalues[0, 0] == pytest.approx(5.0) and emb.eigenvalues[0, -1] == \
        pytest.approx(-2.0)
    np.testing.assert_allclose(emb.eigenvalues, ref.eigenvalues, atol=1e-12)
    assert np.all(emb.coords[0, :, 1] == 0.0)
    np.testing.assert_allclose(emb.negative, ref.negative, atol=1e-12)
    np.testing.assert_allclose(emb.residual, ref.residual, atol=1e-12)


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([[0.0, 1.0], [2.0, 0.0]]), "not symmetric"),
        (np.array([[0.0, -1.0], [-1.0, 0.0]]), "negative"),
        (np.array([[0.0, np.nan], [np.nan, 0.0]]), "NaN"),
        (np.array([[0.0, np.inf], [np.inf, 0.0]]), "NaN or inf"),
        (np.array([[1.0, 1.0], [1.0, 0.0]]), "diagonal"),
        (np.zeros((3, 4)), "shape"),
        (np.zeros((2, 3, 3, 3)), "shape"),
        (np.zeros(5), "shape"),
        (np.array([["a", "b"], ["c", "d"]]), "numeric"),
    ],
)
def test_rejects_non_distance_matrices(bad, match):
    with pytest.raises(ValueError, match=match):
        check_distance_matrices(bad)
    with pytest.raises(ValueError, match=match):
        embed_distances(bad)


def test_names_the_offending_matrix_and_tolerates_rounding():
    d = distance_matrices(_cloud(4, 6, 3))
    d[2, 0, 1] += 1e-3
    with pytest.raises(ValueError, match="matrix 2 is not symmetric"):
        check_distance_matrices(d)
    d[2, 0, 1] -= 1e-3 - 1e-12  # rounding-level asymmetry passes
    check_distance_matrices(d)
    check_distance_matrices(d.astype(np.float32))


def test_offending_matrix_index_in_a_large_batch():
    d = np.zeros((5000, 3, 3))
    d[4500, 0, 1] = 1.0
    with pytest.raises(ValueError, match="matrix 4500 is not symmetric"):
        check_distance_matrices(d)


def test_symmetrize_makes_a_distance_matrix():
    rng = np.random.default_rng(5)
    d = distance_matrices(_cloud(5, 8, 2)) + rng.normal(0, 0.1, (2, 8, 8))
    fixed = symmetrize_distances(d)
    check_distance_matrices(fixed, rtol=0.0)
    np.testing.assert_allclose(fixed, np.maximum(0.5 * (d + d.transpose(0, 2, 1)), 0)
                               * (1 - np.eye(8)))


@pytest.mark.parametrize("kw", [{"variant": "mds"}, {"variant": "reference", "reference": 9},
                                {"method": "eig"}])
def test_rejects_bad_options(kw):
    with pytest.raises(ValueError):
        embed_distances(distance_matrices(_cloud(6, 9)), **kw)


# ---------------------------------------------------------- degenerate inputs
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    "points",
    [
        np.array([[3.0, 4.0]]),                                  # N = 1
        np.array([[1.0, 1.0], [4.0, 5.0]]),                      # N = 2
        np.array([[0.0, 0.0], [1.0, 1.0], [3.0, 3.0]]),          # N = 3 collinear
        np.array([[0.0, 0.0], [4.0, 0.0], [1.0, 2.0]]),          # N = 3 triangle
        np.full((6, 2), 2.5),                                    # coincident
        np.column_stack([np.linspace(0, 8, 10), 0.5 * np.linspace(0, 8, 10)]),  # collinear
        np.repeat(np.array([[1.0, 2.0], [5.0, 3.0], [2.0, 7.0]]), 3, axis=0),  # duplicates
    ],
    ids=["n1", "n2", "n3-line", "n3-triangle", "coincident", "line10", "duplicates"],
)
def test_degenerate_configurations_round_trip(points, variant):
    d = distance_matrices(points)
    rec = reconstruct_configurations(d, BOX, variant, placement="edge")
    pos = rec.positions[0]
    assert np.all(np.isfinite(pos)) and np.all(np.isfinite(rec.embedding.eigenvalues))
    assert distance_error(d, pos)[1][0] < 1e-9
    assert pos[:, 1].min() == 0.0
    assert rec.fits[0] and np.all((pos >= 0) & (pos <= BOX))
    assert 0.0 <= rec.embedding.residual[0] < 1e-9


def test_coincident_points_sit_mid_floor():
    rec = reconstruct_configurations(np.zeros((5, 5)), BOX, placement="edge")
    np.testing.assert_array_equal(rec.positions[0], np.tile([BOX / 2, 0.0], (5, 1)))
    assert rec.embedding.residual[0] == 0.0 and rec.embedding.negative[0] == 0.0


# --------------------------------------------------------------- noisy input
def test_noise_degrades_smoothly():
    x = _cloud(7, 30, 40)
    x[..., 1] *= 0.4
    d = distance_matrices(x)
    z = np.random.default_rng(8).normal(size=d.shape)
    levels = [0.0, 1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5]
    errs, resid, negs = [], [], []
    for s in levels:
        noisy = symmetrize_distances(d + s * z)
        rec = reconstruct_configurations(noisy, BOX, placement="edge")
        for arr in (rec.positions, rec.embedding.eigenvalues, rec.embedding.residual):
            assert np.all(np.isfinite(arr))
        errs.append(np.mean(rmsd(x, rec.positions)))
        resid.append(np.mean(rec.embedding.residual))
        negs.append(np.mean(rec.embedding.negative))
    assert errs[0] < 1e-10
    assert np.all(np.diff(errs) > 0) and np.all(np.diff(resid) > 0)
    assert np.all(np.diff(negs) > 0)
    # small noise, small error: the embedding is Lipschitz in the input near exact data
    assert errs[1] < 10 * levels[1] and errs[2] < 10 * levels[2]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 35),
       scale=st.sampled_from([1e-150, 1e-6, 1.0, 1e3, 1e6, 1e150]),
       variant=st.sampled_from(VARIANTS))
def test_random_clouds_round_trip_at_any_scale(seed, n, scale, variant):
    """Property: exact matrices of random clouds come back, at any length scale."""
    x = _cloud(seed, n)[0] * scale / BOX
    d = distance_matrices(x)
    emb = embed_distances(d, variant, reference=n - 1)
    assert distance_error(d, emb.coords[0])[1][0] <= 1e-10 * scale
    assert emb.residual[0] < 1e-8 and emb.negative[0] < 1e-8
    t = tumble(emb.coords, 10.0 * scale)
    assert np.all(np.isfinite(t.positions)) and t.positions[0, :, 1].min() == 0.0
    assert rmsd(x, t.positions[0])[0] <= 1e-10 * scale


def test_lapack_fallback_is_used_where_the_fast_kernel_gives_up(monkeypatch):
    """Rows flagged as not converged are recomputed with numpy.linalg.eigh."""
    from reconstruct import _kernels as K
    from reconstruct import embedding

    original = K._embed_distances_batch

    def flaky(dist, variant, ref, coords, lam, resid, neg, ok):
        original(dist, variant, ref, coords, lam, resid, neg, ok)
        ok[::2] = False
        coords[::2] = np.nan  # garbage that must not survive

    monkeypatch.setattr(embedding.K, "_embed_distances_batch", flaky)
    x = _cloud(9, 12, 6)
    emb = embed_distances(distance_matrices(x), "reference", reference=2)
    assert np.all(np.isfinite(emb.coords))
    assert distance_error(distance_matrices(x), emb.coords)[1].max() < 1e-9


def test_results_do_not_depend_on_thread_count():
    import numba

    d = symmetrize_distances(distance_matrices(_cloud(10, 30, 64))
                             * (1 + 0.05 * np.random.default_rng(3).normal(size=(64, 30, 30))))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = reconstruct_configurations(d, BOX, placement="edge")
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = reconstruct_configurations(d, BOX, placement="edge")
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one.positions, many.positions)
    np.testing.assert_array_equal(one.embedding.eigenvalues, many.embedding.eigenvalues)
