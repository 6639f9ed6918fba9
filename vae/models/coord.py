"""``arch="coord"``: the physical VAE whose decoder places the N particles in 2D and
outputs their distances (:class:`vae.physical.CoordVAE`)."""

from __future__ import annotations

from vae.models.base import Architecture


def build(cfg, n_particles: int, box: float):
    """The CoordVAE of ``cfg.model`` (coordinates in input units)."""
    from vae.data import length_scale
    from vae.physical import CoordVAE

    m = cfg.model
    return CoordVAE(n_particles, m.latent_dim, m.hidden or (512, 512),
                    box_units=box / length_scale(cfg.data.scaling, box),
                    decoder_gamma=m.decoder_gamma, channels=m.channels or (32, 64),
                    patch=m.patch or 3)


def _cls():
    from vae.physical import CoordVAE

    return CoordVAE


ARCHITECTURE = Architecture(
    "coord", _cls, build, representations=("distance",), takes_gamma=True, places_particles=True,
    description="conv encoder; decoder placing particles in 2D (an exact Euclidean "
    "distance matrix by construction)", order=50)
