"""``arch="pair2d"``: the pair decoder projected onto 2D distance matrices
(:class:`vae.physical.ProjectedPairVAE`)."""

from __future__ import annotations

from vae.models.base import Architecture


def build(cfg, n_particles: int, box: float):
    """The ProjectedPairVAE of ``cfg.model``."""
    from vae.data import output_max
    from vae.physical import ProjectedPairVAE

    m = cfg.model
    return ProjectedPairVAE(
        n_particles, m.latent_dim, hidden=m.hidden or (1024, 512),
        embed_dim=m.embed_dim or 16, pair_hidden=m.pair_hidden or (32, 32),
        d_max=output_max(cfg.data, box), encoder=m.encoder or "conv",
        channels=m.channels or (32, 64), patch=m.patch or 3,
        decoder_gamma=m.decoder_gamma)


def _cls():
    from vae.physical import ProjectedPairVAE

    return ProjectedPairVAE


ARCHITECTURE = Architecture(
    "pair2d", _cls, build, representations=("distance",), takes_gamma=True, places_particles=True,
    description="pair decoder projected onto planar (2D) distance matrices", order=60)
