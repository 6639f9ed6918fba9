"""The architecture and prior registries: every member is complete and usable, and
everything that lists architectures or priors reads the registry."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pipelines.generate import GenerateConfig
from vae.config import ARCHS, DEFAULT_ARCH, REPRESENTATIONS, DataConfig, ModelConfig, RunConfig
from vae.data import input_shape
from vae.models import ARCHITECTURES, VAE, build_model
from vae.priors import PRIOR_SPECS, PRIORS, LatentPrior, build_prior


def test_config_lists_read_the_architecture_registry():
    assert ARCHS == tuple(ARCHITECTURES)
    assert set(DEFAULT_ARCH) == set(REPRESENTATIONS)  # one default per representation
    for rep, name in DEFAULT_ARCH.items():
        assert rep in ARCHITECTURES[name].representations


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_every_architecture_builds_and_round_trips_its_input_shape(name):
    arch = ARCHITECTURES[name]
    assert arch.name == name and arch.description and arch.representations
    rep = arch.representations[0]
    cfg = RunConfig(DataConfig(representation=rep, grid_cell=1.0),
                    ModelConfig(arch=name, latent_dim=3, channels=(4, 8), hidden=(16, 8),
                                embed_dim=3, pair_hidden=(5, 4)))
    model = build_model(cfg, 6, 10.0)
    assert isinstance(model, arch.model_class()) and isinstance(model, VAE)
    # the same seed gives the same weights (the builder draws nothing outside the seed)
    again = build_model(cfg, 6, 10.0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  again.state_dict().values(), strict=True))
    x = torch.rand(2, *input_shape(cfg.data, 6, 10.0))
    gamma = torch.full((2,), 0.5) if model.needs_gamma else None
    out = model(x, gamma=gamma)
    assert out.x_hat.shape == x.shape and out.mu_z.shape == (2, 3)


def test_decoder_gamma_is_offered_only_by_architectures_that_take_it():
    for name, arch in ARCHITECTURES.items():
        rep = arch.representations[0]
        if arch.takes_gamma:
            ModelConfig(arch=name, decoder_gamma=True)
        else:
            with pytest.raises(ValueError, match="decoder_gamma"):
                ModelConfig(arch=name, decoder_gamma=True)
        RunConfig(DataConfig(representation=rep), ModelConfig(arch=name))


def test_prior_lists_read_the_prior_registry():
    assert PRIORS == tuple(PRIOR_SPECS) == GenerateConfig().priors
    fields = {f.name for f in dataclasses.fields(GenerateConfig)}
    colors = [s.color for s in PRIOR_SPECS.values()]
    assert len(set(colors)) == len(colors)
    for spec in PRIOR_SPECS.values():
        assert spec.cls.name == spec.name and issubclass(spec.cls, LatentPrior)
        assert spec.label and spec.description and spec.color
        assert {fld for _, fld, _ in spec.settings} <= fields


@pytest.mark.parametrize("name", PRIORS)
def test_every_prior_builds_from_the_generation_config(name):
    cfg = GenerateConfig(seed=3)
    params = cfg.prior_params(name)
    prior = build_prior(name, **params)
    assert isinstance(prior, PRIOR_SPECS[name].cls)
    assert ("seed" in params) == PRIOR_SPECS[name].seeded
    for kw, _, _ in PRIOR_SPECS[name].settings:
        assert kw in prior.params()
