"""The decoder in bfloat16 (``CoordVAE.bfloat16_decoder``,
``TrainedVAE.decode_positions(precision=...)``, ``generate --decoder-precision``): what
its rounding is, how far it is from float32, its independence of threads and batches,
files that record it, and models that refuse it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_vae_physical import SCALE, N, _cfg, small_lj_dataset

from mcsim.clitools import UserError
from mcsim.io import read_dataset
from pipelines.generate import (
    GenerateConfig,
    fit_priors,
    generate_configurations,
    training_latents,
    write_generated,
)
from vae.checkpoint import CheckpointError, load_model
from vae.training import prepare_data, train


@pytest.fixture(scope="module", params=["coord", "pair2d"])
def trained_path(tmp_path_factory, request):
    """best.pt of a coord / pair2d VAE with gamma and the overlap term, trained 2 epochs."""
    root = tmp_path_factory.mktemp("bf16")
    data = small_lj_dataset(root / "small.h5")
    cfg = _cfg(True, arch=request.param, overlap_weight=1.0)
    train(cfg, prepare_data(cfg, [data]), root / "run", progress=False)
    return root / "run" / "best.pt"


def _bfloat16_emulation(model, z: np.ndarray, gamma: float):
    """What ``CoordVAE.bfloat16_decoder`` promises, computed independently in float64:
    inputs, hidden weights, biases and hidden activations rounded to bfloat16, the
    output layer in full precision on the rounded activations. Returns the positions
    (input units) and the last hidden activations."""
    def bf16(a):
        return torch.as_tensor(np.asarray(a, np.float32)).to(torch.bfloat16).double().numpy()

    h = bf16(np.concatenate([z, np.full((len(z), 1), gamma)], 1))
    for layer in (m for m in model.decoder if isinstance(m, torch.nn.Linear)):
        w, b = (bf16(p.detach().numpy()) for p in (layer.weight, layer.bias))
        h = bf16(np.maximum(h @ w.T + b, 0.0))
    w, b = (p.detach().double().numpy() for p in (model.to_coords.weight, model.to_coords.bias))
    return (h @ w.T + b).reshape(len(z), -1, 2), h


def test_bfloat16_decoder_is_what_it_says_and_close_to_float32(trained_path, tmp_path):
    """decode_positions(precision="bfloat16") against a float64 emulation of its
    rounding (float32 round-off in the median; at most a few hidden activations rounded
    to the neighbouring bfloat16 value, since the matrix products accumulate in float32
    and the emulation in float64), against float32 (positions within 1e-2 sigma RMS),
    the same output for any thread count and batch composition; models without it
    refuse it."""
    tv = load_model(trained_path)
    lat = training_latents(tv)
    g = 0.4
    z = lat.mu_train[lat.gamma_train == g][:300]
    z = (z + 0.1 * np.random.default_rng(5).standard_normal(z.shape)).astype(np.float32)
    prior = fit_priors(("buffer",), lat, GenerateConfig())["buffer"]
    if tv.config.model.arch != "coord":
        assert tv.decoder_precisions == ("float32",)
        with pytest.raises(CheckpointError, match="offers only float32"):
            tv.decode_positions(z, gamma=g, precision="bfloat16")
        with pytest.raises(UserError, match="needs arch coord"):
            generate_configurations(tv, prior, 5, g, decoder_precision="bfloat16")
        return
    with pytest.raises(CheckpointError, match="must be one of float32, bfloat16"):
        tv.decode_positions(z, gamma=g, precision="float16")
    got = tv.decode_positions(z, gamma=g, precision="bfloat16")
    want, h_last = _bfloat16_emulation(tv.model, z, g)
    # An activation rounded to the neighbouring bfloat16 value moves by one ulp, at
    # most 2^-7 of its size; through the largest output weight that bounds what one
    # such activation does to a position. Allow four per configuration.
    w_out = np.abs(tv.model.to_coords.weight.detach().numpy()).max()
    flip = 2.0 ** -7 * np.abs(h_last).max() * w_out * SCALE
    diff = np.abs(got - want * SCALE)
    assert diff.max() < 4 * flip, (diff.max(), flip)
    assert np.median(diff) < 1e-5 * SCALE  # most positions: float32 round-off only
    f32 = tv.decode_positions(z, gamma=g)
    rms = np.sqrt(((got - f32) ** 2).mean())
    assert 0 < rms < 1e-2, rms
    torch.set_num_threads(2)
    try:
        two = tv.decode_positions(z, gamma=g, precision="bfloat16")
    finally:
        torch.set_num_threads(1)
    assert np.array_equal(two, got)
    assert np.array_equal(tv.decode_positions(z[:100], gamma=g, precision="bfloat16"),
                          got[:100])
    gen = generate_configurations(tv, prior, 40, g, seed=2, decoder_precision="bfloat16")
    assert gen.decoder_precision == "bfloat16" and gen.positions.shape == (40, N, 2)
    again = generate_configurations(tv, prior, 40, g, seed=2, decoder_precision="bfloat16")
    assert np.array_equal(gen.positions, again.positions)
    path = write_generated(tmp_path / "bf16.h5", gen)
    assert read_dataset(path).attrs["decoder_precision"] == "bfloat16"
