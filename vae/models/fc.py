"""``arch="fc"``: the fully connected VAE on flattened inputs (:class:`FCVAE`), the study's
failed first attempts, kept as an ablation baseline."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vae.models.base import VAE, Architecture


class FCVAE(VAE):
    """Fully connected VAE on flattened inputs.

    Args:
        shape: shape of one input, e.g. (N, 2) or (1, N, N).
        latent_dim: D.
        hidden: encoder widths; the decoder uses them in reverse.
        out_max: outputs are out_max * sigmoid(raw) (Gaussian models).
        bernoulli: raw outputs are logits (occupancy grids).
    """

    def __init__(self, shape: tuple[int, ...], latent_dim: int = 40,
                 hidden: tuple[int, ...] = (45, 30, 15), out_max: float = 1.0,
                 bernoulli: bool = False) -> None:
        super().__init__(latent_dim)
        self.shape, self.out_max, self.bernoulli = tuple(shape), float(out_max), bernoulli
        n_in = math.prod(self.shape)
        widths = [n_in, *hidden]
        enc: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            enc += [nn.Linear(a, b), nn.ReLU()]
        enc.append(nn.Linear(widths[-1], 2 * latent_dim))
        self.encoder = nn.Sequential(*enc)
        rev = [latent_dim, *reversed(hidden)]
        dec: list[nn.Module] = []
        for a, b in zip(rev[:-1], rev[1:], strict=True):
            dec += [nn.Linear(a, b), nn.ReLU()]
        dec.append(nn.Linear(rev[-1], n_in))
        self.decoder = nn.Sequential(*dec)

    def _encode_features(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def _decode_raw(self, z: Tensor) -> Tensor:
        raw = self.decoder(z).view(-1, *self.shape)
        return raw if self.bernoulli else self.out_max * torch.sigmoid(raw)


def build(cfg, n_particles: int, box: float) -> FCVAE:
    """The FCVAE of ``cfg.model`` on the flattened inputs of ``cfg.data``."""
    from vae.data import input_shape, output_max

    rep, m = cfg.data.representation, cfg.model
    default_hidden = (45, 30, 15) if rep == "coords" else (512, 128)
    return FCVAE(input_shape(cfg.data, n_particles, box), m.latent_dim,
                 m.hidden or default_hidden, out_max=output_max(cfg.data, box),
                 bernoulli=rep == "grid")


ARCHITECTURE = Architecture(
    "fc", FCVAE, build, representations=("distance", "coords", "grid"),
    default_for=("coords",), description="fully connected encoder and mirrored decoder "
    "(ablation baseline)", order=40)
