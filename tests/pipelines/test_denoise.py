"""Denoising table: an identity model leaves every configuration where it was, an
oracle that returns the clean matrix denoises every one; corruption levels."""

from types import SimpleNamespace

import numpy as np
import pytest

from mcsim.potentials import Potential
from mcsim.sampler import SimConfig, sample
from pipelines.anomaly.denoise import (
    Corruption,
    corrupt,
    denoise_figure,
    denoise_markdown,
    denoise_table,
)
from reconstruct.distances import symmetrize_distances
from reconstruct.metrics import rmsd
from vae.config import RunConfig
from vae.data import length_scale, make_inputs

BOX = 10.0
LJ = Potential.parse("lj", cutoff=3.0)
LEVELS = (Corruption("clean"), Corruption("displace", k=2, step=2.83),
          Corruption("noise", sigma=0.1))


class _Model:
    """Duck-typed TrainedVAE with a distance representation: ``identity`` decodes its
    input, ``oracle`` the input matrix of the clean configurations (the latent vector
    is the flattened input)."""

    def __init__(self, mode, clean=None):
        self.config = RunConfig()
        self.info = SimpleNamespace(box=BOX, n_particles=30)
        self.mode, self.clean = mode, clean

    def require_distance(self, what):
        assert self.config.data.representation == "distance"

    def inputs(self, positions, box=None):
        return make_inputs(np.asarray(positions), BOX, self.config.data)

    def encode(self, x):
        return x.reshape(len(x), -1), None

    def decode_distances(self, z, gamma=None):
        x = z.reshape(len(z), 30, 30) if self.mode == "identity" else \
            self.inputs(self.clean)[:, 0]
        return symmetrize_distances(x.astype(np.float64)
                                    * length_scale(self.config.data.scaling, BOX))


@pytest.fixture(scope="module")
def clean():
    return sample(SimConfig(sweeps=300, seed=4), 0.4, 24).positions


def test_corruptions_stay_in_the_box_and_move_what_they_say(clean):
    xd = corrupt(clean, Corruption("displace", k=3, step=2.0), BOX, 1)
    moved = np.any(xd != clean, axis=2).sum(axis=1)
    assert np.all(moved <= 3) and moved.max() == 3
    xn = corrupt(clean, Corruption("noise", sigma=0.1), BOX, 1)
    assert np.all((xn >= 0) & (xn <= BOX))
    d = (xn - clean).ravel()
    assert np.std(d) == pytest.approx(0.1, rel=0.1)  # 1440 draws: sd within ~2 %
    for bad in (dict(kind="displace", k=0, step=1.0), dict(kind="noise", sigma=0.0),
                dict(kind="blur")):
        with pytest.raises(ValueError):
            Corruption(**bad)


def test_identity_model_does_not_denoise(clean):
    gamma = np.full(len(clean), 0.4)
    rows, _ = denoise_table(_Model("identity"), clean, gamma, potential=LJ, temperature=0.75,
                            levels=LEVELS, seed=0)
    assert rows[0].rmsd_decoded < 1e-5  # the clean row: exact up to float32 inputs
    for r in rows[1:]:
        assert r.rmsd_corrupted > 0.05
        assert r.rmsd_decoded == pytest.approx(r.rmsd_corrupted, abs=1e-6)
        assert r.improved <= 0.1
        assert r.fits == 1.0


def test_oracle_model_denoises_every_configuration(clean):
    gamma = np.full(len(clean), 0.4)
    rows, ex = denoise_table(_Model("oracle", clean), clean, gamma, potential=LJ,
                             temperature=0.75, levels=LEVELS, seed=0, keep_examples=2)
    for r in rows[1:]:
        assert r.rmsd_decoded < 1e-5 and r.improved == 1.0
        assert r.improved_ci[0] > 0.85  # Wilson interval for 24 / 24
        assert r.du_corrupted > 0 and r.overlap_decoded == 0.0
    x0, xc, xd, rc, rd = ex[LEVELS[1].label]
    assert rmsd(x0, xc).max() > 0 and rd.max() < 1e-5
    md = denoise_markdown(rows, "t")
    assert md.count("\n|") == len(LEVELS) + 2 and "100 %" in md  # header, rule, rows
    fig = denoise_figure(ex, BOX)
    assert len(fig.axes) == 3 * len(LEVELS)
