"""The VAE interface every architecture implements (:class:`VAE`, :class:`VAEOutput`),
the layers several architectures share, and :class:`Architecture`, a registry entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

_LOGVAR_MIN, _LOGVAR_MAX = -30.0, 20.0  # keeps exp(logvar) finite in float32


class VAEOutput(NamedTuple):
    """What :meth:`VAE.forward` returns.

    Attributes:
        x_hat: reconstruction, shape of the input (distances / coordinates in input
            units; pixel probabilities for grids).
        mu_z, logvar_z: (B, D) mean and log-variance of q(z|x).
        z: (B, D) the latent sample that was decoded (mu_z when not sampling).
        logits: pre-sigmoid output for Bernoulli models, else None.
        coords: (B, N, 2) decoded slot positions (input units, in no particular rigid
            frame) for decoders that place particles (:mod:`vae.physical`), else None.
    """

    x_hat: Tensor
    mu_z: Tensor
    logvar_z: Tensor
    z: Tensor
    logits: Tensor | None
    coords: Tensor | None = None


class VAE(nn.Module):
    """Base class: a Gaussian encoder q(z|x) = N(mu_z, diag exp(logvar_z)) and a decoder.

    Subclasses implement ``_encode_features`` (x -> (B, 2D) pre-split) and
    ``_decode_raw`` (z -> raw output); ``bernoulli`` says whether the raw output is a
    logit (occupancy grids) or already the reconstruction.
    """

    bernoulli: bool = False
    #: whether ``decode`` needs the field gamma (``vae.physical.CoordVAE`` option)
    needs_gamma: bool = False

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)

    def _encode_features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _decode_raw(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|x): returns (mu_z, logvar_z), each (B, latent_dim)."""
        h = self._encode_features(x)
        mu_z, logvar_z = h.chunk(2, dim=1)
        return mu_z, logvar_z.clamp(_LOGVAR_MIN, _LOGVAR_MAX)

    def reparameterize(self, mu_z: Tensor, logvar_z: Tensor,
                       generator: torch.Generator | None = None) -> Tensor:
        """z = mu_z + exp(logvar_z / 2) * eps, eps ~ N(0, I) drawn from ``generator``
        (the global torch RNG if None). Shapes (B, D)."""
        eps = torch.randn(mu_z.shape, generator=generator, device=mu_z.device,
                          dtype=mu_z.dtype)
        return mu_z + torch.exp(0.5 * logvar_z) * eps

    def decode(self, z: Tensor, gamma: Tensor | float | None = None) -> Tensor:
        """Reconstruction from latent vectors z (B, D); shape of one input per row
        (``gamma`` is used only by decoders that take it, see ``needs_gamma``)."""
        raw = self._decode_raw(z)
        return torch.sigmoid(raw) if self.bernoulli else raw

    def forward(self, x: Tensor, *, sample: bool = True,
                generator: torch.Generator | None = None,
                gamma: Tensor | float | None = None) -> VAEOutput:
        """Encode, sample z (or take z = mu_z if ``sample`` is False) and decode
        (``gamma``: see :meth:`decode`)."""
        mu_z, logvar_z = self.encode(x)
        z = self.reparameterize(mu_z, logvar_z, generator) if sample else mu_z
        raw = self._decode_raw(z)
        if self.bernoulli:
            return VAEOutput(torch.sigmoid(raw), mu_z, logvar_z, z, raw)
        return VAEOutput(raw, mu_z, logvar_z, z, None)


def _down_sizes(n: int, patch: int, levels: int) -> list[int]:
    """Spatial sizes: after the patch conv (input padded to a multiple of ``patch``) and
    after each of the (levels - 1) stride-2 convs (k=3, p=1)."""
    sizes = [-(-n // patch)]
    for _ in range(levels - 1):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def _conv_encoder(channels: tuple[int, ...], patch: int) -> nn.Sequential:
    """(B, 1, n', n') -> (B, C_last * s^2), n' a multiple of ``patch``: a ``patch`` x
    ``patch`` conv with stride ``patch`` (non-overlapping patches), then stride-2 3x3 convs
    (k=3, p=1), each followed by batch norm and ReLU; sizes from :func:`_down_sizes`."""
    ch = channels
    enc: list[nn.Module] = [nn.Conv2d(1, ch[0], patch, stride=patch), nn.BatchNorm2d(ch[0]),
                            nn.ReLU()]
    for c_in, c_out in zip(ch[:-1], ch[1:], strict=True):
        enc += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out),
                nn.ReLU()]
    enc.append(nn.Flatten())
    return nn.Sequential(*enc)


def _mlp(widths: list[int], batch_norm: bool = False) -> nn.Sequential:
    """Linear layers between consecutive ``widths``, each followed by (batch norm and) ReLU."""
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers.append(nn.Linear(a, b))
        if batch_norm:
            layers.append(nn.BatchNorm1d(b))
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)




@dataclass(frozen=True)
class Architecture:
    """Everything about one architecture (an entry of :data:`vae.models.ARCHITECTURES`).

    Attributes:
        name: the ``model.arch`` value.
        cls: the model class, or a function returning it (for classes defined in
            :mod:`vae.physical`, imported on first use); see :meth:`model_class`.
        build: ``build(cfg, n_particles, box) -> VAE`` with the config's settings (the
            caller seeds torch).
        representations: the input representations it takes.
        default_for: representations for which it is the default architecture.
        takes_gamma: whether its decoder can take the field gamma
            (``model.decoder_gamma``).
        places_particles: whether its decoder outputs slot positions
            (``VAEOutput.coords``; needed by ``loss.gravity_weight``).
        description: one line for help texts.
        order: its place in listings (``ARCHS``).
    """

    name: str
    cls: type
    build: Callable[..., VAE]
    representations: tuple[str, ...]
    default_for: tuple[str, ...] = ()
    takes_gamma: bool = False
    places_particles: bool = False
    description: str = ""
    order: int = 0

    def model_class(self) -> type:
        """The model class."""
        return self.cls if isinstance(self.cls, type) else self.cls()
