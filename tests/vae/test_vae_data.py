"""vae.data and vae.config: representations, split, dataset merging, config round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from mcsim.io import DatasetError, write_dataset
from vae.config import ConfigError, DataConfig, LossConfig, ModelConfig, RunConfig, TrainConfig
from vae.data import (
    coordinates,
    dataset_fingerprint,
    distance_matrices,
    grid_shape,
    input_shape,
    load_data,
    make_inputs,
    occupancy_grids,
    sort_particles,
    stratified_split,
    subsample_per_gamma,
)


@pytest.fixture
def positions():
    return np.random.default_rng(1).uniform(0, 10, (5, 8, 2))


def test_distance_matrices_match_study_preprocessing(positions):
    """The study: divide by L*sqrt(2), sort by x^2 + y^2, scipy pdist/squareform."""
    d = distance_matrices(positions, 10.0, sort="corner", scaling="study")
    assert d.shape == (5, 8, 8) and d.dtype == np.float32
    for k in range(5):
        p = positions[k] / (10 * math.sqrt(2))
        p = p[np.argsort(p[:, 0] ** 2 + p[:, 1] ** 2)]
        np.testing.assert_allclose(d[k], squareform(pdist(p)), atol=1e-6)
    assert np.all(d <= 1.0 + 1e-6)
    np.testing.assert_array_equal(d, np.swapaxes(d, 1, 2))
    assert np.all(np.diagonal(d, axis1=1, axis2=2) == 0)


@pytest.mark.parametrize("key", ["corner", "height", "com"])
def test_sort_keys_are_ascending_and_permute(positions, key):
    s = sort_particles(positions, key)
    if key == "corner":
        k = (s ** 2).sum(-1)
    elif key == "height":
        k = s[..., 1]
    else:
        k = ((s - s.mean(axis=1, keepdims=True)) ** 2).sum(-1)
    assert np.all(np.diff(k, axis=1) >= 0)
    for a, b in zip(s, positions, strict=True):  # same particles, other order
        np.testing.assert_array_equal(np.sort(a, axis=0), np.sort(b, axis=0))
    np.testing.assert_array_equal(sort_particles(positions, "none"), positions)


def test_distances_do_not_depend_on_input_order(positions):
    perm = positions[:, ::-1]
    np.testing.assert_allclose(distance_matrices(perm, 10.0), distance_matrices(positions, 10.0),
                               atol=1e-7)


def test_coordinates_and_scalings(positions):
    c = coordinates(positions, 10.0, sort="none", scaling="box")
    np.testing.assert_allclose(c, positions / 10, rtol=1e-6)
    d = distance_matrices(positions, 10.0, sort="none", scaling="none")
    np.testing.assert_allclose(d[0, 0, 1], np.linalg.norm(positions[0, 0] - positions[0, 1]),
                               rtol=1e-6)


def test_occupancy_grid_pixels():
    pos = np.array([[[0.1, 0.1], [9.99, 9.99], [10.0, 0.0], [2.6, 5.2]]])
    g = occupancy_grids(pos, 10.0, 0.5)
    assert g.shape == (1, 20, 20) and grid_shape(10.0, 0.5) == (20, 20)
    assert g[0, 19, 0] == 1  # bottom-left
    assert g[0, 0, 19] == 1  # top-right
    assert g[0, 19, 19] == 1  # on the right wall at y = 0
    assert g[0, 19 - 10, 5] == 1  # x = 2.6 -> col 5, y = 5.2 -> row from bottom 10
    assert g.sum() == 4


def test_make_inputs_shapes(positions):
    for rep, shape in (("distance", (1, 8, 8)), ("coords", (8, 2)), ("grid", (1, 20, 20))):
        cfg = DataConfig(representation=rep)
        x = make_inputs(positions, 10.0, cfg)
        assert x.shape == (5, *shape) == (5, *input_shape(cfg, 8, 10.0))


def test_stratified_split_partitions_each_gamma():
    gamma = np.repeat([0.1, 0.4, 0.7, 1.0], [50, 40, 30, 20])
    s = stratified_split(gamma, 0.1, 0.2, seed=3)
    allidx = np.concatenate([s.train, s.val, s.test])
    np.testing.assert_array_equal(np.sort(allidx), np.arange(len(gamma)))
    for g, n in zip([0.1, 0.4, 0.7, 1.0], [50, 40, 30, 20], strict=True):
        assert np.sum(gamma[s.test] == g) == round(0.2 * n)
        assert np.sum(gamma[s.val] == g) == round(0.1 * n)
    s2 = stratified_split(gamma, 0.1, 0.2, seed=3)
    np.testing.assert_array_equal(s.test, s2.test)
    assert not np.array_equal(s.test, stratified_split(gamma, 0.1, 0.2, seed=4).test)


def test_subsample_per_gamma():
    gamma = np.repeat([0.1, 0.4], [50, 5])
    keep = subsample_per_gamma(gamma, 10, seed=0)
    assert np.sum(gamma[keep] == 0.1) == 10 and np.sum(gamma[keep] == 0.4) == 5


def _write(path, n=6, m=12, box=10.0, gammas=(0.1, 1.0), seed=0):
    pos = np.random.default_rng(seed).uniform(0, box, (m, n, 2))
    write_dataset(path, pos, np.repeat(gammas, m // len(gammas)), {"box": box, "source": "test"})
    return pos


def test_load_data_merges_and_rejects_mixed_files(tmp_path):
    a = _write(tmp_path / "a.h5")
    b = _write(tmp_path / "b.h5", seed=1)
    ds = load_data([tmp_path / "a.h5", tmp_path / "b.h5"])
    assert len(ds) == 24
    np.testing.assert_array_equal(ds.positions, np.concatenate([a, b]))
    _write(tmp_path / "n7.h5", n=7)
    with pytest.raises(DatasetError, match="mix particle numbers"):
        load_data([tmp_path / "a.h5", tmp_path / "n7.h5"])
    _write(tmp_path / "box.h5", box=12.0)
    with pytest.raises(DatasetError, match="mix box sides"):
        load_data([tmp_path / "a.h5", tmp_path / "box.h5"])
    with pytest.raises(DatasetError, match="no such file"):
        load_data([tmp_path / "missing.h5"])
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(DatasetError, match="not an HDF5 file"):
        load_data([tmp_path / "junk.h5"])


def test_fingerprint_changes_with_data(positions):
    g = np.zeros(5)
    f = dataset_fingerprint(positions, g)
    assert f == dataset_fingerprint(positions.copy(), g)
    p2 = positions.copy()
    p2[0, 0, 0] += 1e-9
    assert f != dataset_fingerprint(p2, g)


def test_config_json_round_trip_and_validation():
    cfg = RunConfig(DataConfig(sort="height", max_per_gamma=10), ModelConfig(channels=(8, 16)),
                    LossConfig(form="beta", weight=0.1, kl_warmup_epochs=3),
                    TrainConfig(epochs=7, lr_schedule="cosine"))
    back = RunConfig.from_json(cfg.to_json())
    assert back == cfg and back.to_json() == cfg.to_json()
    with pytest.raises(ConfigError, match=r"^model\.latent_dim"):
        ModelConfig(latent_dim=0)
    with pytest.raises(ConfigError, match=r"^data\.sort"):
        DataConfig(sort="random")
    with pytest.raises(ConfigError, match=r"^loss\.weight"):
        LossConfig(form="beta", weight=1.5)
    with pytest.raises(ConfigError, match=r"^train\.lr"):
        TrainConfig(lr=float("nan"))
    with pytest.raises(ConfigError, match=r"^model\.arch"):
        RunConfig(DataConfig(representation="coords"), ModelConfig(arch="conv"))
    with pytest.raises(ConfigError, match=r"^train\.bogus: unknown setting"):
        RunConfig.from_dict({"train": {"bogus": 1}})
