"""``arch="study"``: the study's exact conv VAE (:class:`StudyConvVAE`)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vae.models.base import VAE, Architecture


class StudyConvVAE(VAE):
    """The study's conv VAE on (B, 1, N, N) distance matrices (see the module docstring).

    The output is sigmoid(raw) in [0, 1], neither symmetric nor zero-diagonal by
    construction, exactly as in the study.
    """

    def __init__(self, n: int, latent_dim: int = 40) -> None:
        super().__init__(latent_dim)
        self.n = int(n)
        m = self.n - 4  # two valid 3x3 convs
        if m < 1:
            raise ValueError(f"arch study needs N >= 5 particles, got {n}")
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 60, 3), nn.ReLU(), nn.Conv2d(60, 50, 3), nn.ReLU(), nn.Flatten())
        self.z_mean = nn.Linear(50 * m * m, latent_dim)
        self.z_log_var = nn.Linear(50 * m * m, latent_dim)
        self.from_latent = nn.Sequential(nn.Linear(latent_dim, 50 * self.n * self.n), nn.ReLU())
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(50, 50, 3, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(50, 60, 3, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(60, 1, 3, padding=1))
        for mod in self.modules():  # Keras defaults: Glorot-uniform kernels, zero biases
            if isinstance(mod, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
                nn.init.xavier_uniform_(mod.weight)
                nn.init.zeros_(mod.bias)

    def _encode_features(self, x: Tensor) -> Tensor:
        h = self.encoder(x)
        return torch.cat([self.z_mean(h), self.z_log_var(h)], dim=1)

    def _decode_raw(self, z: Tensor) -> Tensor:
        h = self.from_latent(z).view(-1, 50, self.n, self.n)
        return torch.sigmoid(self.decoder(h))


def build(cfg, n_particles: int, box: float) -> StudyConvVAE:
    """The study's network for N particles (its settings are fixed)."""
    return StudyConvVAE(n_particles, cfg.model.latent_dim)


ARCHITECTURE = Architecture(
    "study", StudyConvVAE, build, representations=("distance",),
    description="the study's exact conv VAE (about 4.6 M parameters)", order=30)
