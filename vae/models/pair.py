"""``arch="pair"``: the default VAE on distance matrices (:class:`PairVAE`): a conv encoder
and a decoder that predicts every distance from a pair of particle embeddings."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vae.models.base import VAE, Architecture, _conv_encoder, _down_sizes, _mlp


class PairVAE(VAE):
    """Default VAE on (B, 1, N, N) distance matrices: a Conv2D encoder and a decoder that
    predicts every distance from a pair of particle embeddings.

    Encoder (``encoder="conv"``, the default): the conv encoder of :class:`ConvVAE`
    (the matrix zero-padded to a multiple of ``patch``, a ``patch`` x ``patch`` stride-
    ``patch`` conv, 30 -> 10 for patch 3, then stride-2 3x3 convs, 10 -> 5, with the
    ``channels``, each with batch norm and ReLU) and one linear layer to (mu_z,
    logvar_z), each (B, D). ``encoder="mlp"``: the M = N(N-1)/2 distances above the
    diagonal, (B, M), through the ``hidden`` linear layers, each followed by batch norm
    and ReLU, then the linear layer to (mu_z, logvar_z).

    Decoder: z (B, D) -> t = ReLU(Linear(D, h_t)) (h_t = ``hidden[-1]``) ->
    Linear(h_t, N k) -> LayerNorm over k gives one embedding e_i in R^k per particle
    slot i (slot i = the i-th particle in the sort order), (B, N, k). One small MLP g,
    shared by all M pairs, maps the symmetric pair features

        f_ij = [e_i + e_j, |e_i - e_j|, (e_i - e_j)^2]   (B, M, 3k)

    through the ``pair_hidden`` ReLU layers to a logit l_ij (with ``direct``, a second
    logit linear in t, one weight row per pair, is added), and

        D_ij = D_ji = d_max * sigmoid(l_ij)  (i < j),   D_ii = 0,

    so every decoded matrix is symmetric, has a zero diagonal and 0 <= D_ij <= d_max
    (d_max = box diagonal in input units, 1 with the study scaling) by construction.
    The first layer of g is split by feature block; its e_i + e_j block is applied per
    slot, W (e_i + e_j) = W e_i + W e_j, which saves a third of its cost.

    Why: sharing g over all pairs (as a conv shares its filters over positions) lets
    the decoder learn the nonlinear geometry of the matrices much faster than decoders
    with separate output weights per entry. On the four-gamma data set those (the
    ``conv`` arch, MLP decoders) sit at the test MSE of a linear 40-component PCA
    (0.0040) after four epochs; this one passes the study's network (vae/README.md). The
    conv encoder learns faster than the MLP one (test MSE after four epochs 0.0027-0.0028
    over three seeds against 0.0030-0.0033).

    Args:
        n: particles N (the matrix side).
        latent_dim: D.
        hidden: widths of the MLP encoder (``encoder="mlp"``); the decoder trunk has
            width ``hidden[-1]`` for either encoder.
        embed_dim: k, the size of a particle embedding.
        pair_hidden: hidden widths of the pair MLP g.
        d_max: largest decoded distance, input units.
        out_init: initial decoded distance as a fraction of d_max (the output bias; the
            default 0.3687 is the mean distance of two uniform points in a square,
            0.5214 L, over the diagonal L sqrt 2).
        direct: add the per-pair linear logit.
        encoder: ``conv`` or ``mlp``.
        channels, patch: the conv encoder's channels per level and first patch side.
    """

    def __init__(self, n: int, latent_dim: int = 40, hidden: tuple[int, ...] = (1024, 512),
                 embed_dim: int = 16, pair_hidden: tuple[int, ...] = (32, 32),
                 d_max: float = 1.0, out_init: float = 0.3687, direct: bool = False,
                 encoder: str = "conv", channels: tuple[int, ...] = (32, 64),
                 patch: int = 3) -> None:
        super().__init__(latent_dim)
        if encoder not in ("conv", "mlp"):
            raise ValueError(f"encoder: must be 'conv' or 'mlp', got {encoder!r}")
        if n < 2:
            raise ValueError(f"arch pair needs N >= 2 particles, got {n}")
        if not 0 < out_init < 1:
            raise ValueError(f"out_init: must be in (0, 1), got {out_init}")
        self.n, self.embed_dim, self.d_max = int(n), int(embed_dim), float(d_max)
        hidden, pair_hidden = tuple(int(h) for h in hidden), tuple(int(h) for h in pair_hidden)
        n_pairs = self.n * (self.n - 1) // 2
        iu = torch.triu_indices(self.n, self.n, 1)
        # (M,) flat indices of the upper triangle; (N*N,) gather map from [v, 0] to the
        # full matrix: entry (i, j) and (j, i) read v[pair(i, j)], the diagonal reads 0
        gather = torch.full((self.n * self.n,), n_pairs, dtype=torch.long)
        gather[iu[0] * self.n + iu[1]] = torch.arange(n_pairs)
        gather[iu[1] * self.n + iu[0]] = torch.arange(n_pairs)
        self.register_buffer("pair_i", iu[0], persistent=False)
        self.register_buffer("pair_j", iu[1], persistent=False)
        self.register_buffer("upper", iu[0] * self.n + iu[1], persistent=False)
        self.register_buffer("to_matrix", gather, persistent=False)
        self.encoder_kind = encoder
        if encoder == "conv":
            ch = tuple(int(c) for c in channels)
            sizes = _down_sizes(self.n, int(patch), len(ch))
            self._pad = sizes[0] * int(patch) - self.n
            self.encoder = _conv_encoder(ch, int(patch))
            self.to_latent = nn.Linear(ch[-1] * sizes[-1] ** 2, 2 * latent_dim)
        else:
            self._pad = 0
            self.encoder = _mlp([n_pairs, *hidden], batch_norm=True)
            self.to_latent = nn.Linear(hidden[-1], 2 * latent_dim)
        self.trunk = _mlp([latent_dim, hidden[-1]])
        self.embed = nn.Linear(hidden[-1], self.n * self.embed_dim)
        self.embed_norm = nn.LayerNorm(self.embed_dim)
        # first layer of g on [e_i + e_j, |e_i - e_j|, (e_i - e_j)^2], split in three
        self.pair_sum = nn.Linear(self.embed_dim, pair_hidden[0], bias=False)
        self.pair_abs = nn.Linear(self.embed_dim, pair_hidden[0])
        self.pair_sq = nn.Linear(self.embed_dim, pair_hidden[0], bias=False)
        self.pair_mlp = nn.Sequential(nn.ReLU(), *_mlp(list(pair_hidden)),
                                      nn.Linear(pair_hidden[-1], 1))
        # optional: one more logit per pair, linear in the trunk output
        self.direct = nn.Linear(hidden[-1], n_pairs) if direct else None
        with torch.no_grad():
            for lin in (self.pair_sum, self.pair_abs, self.pair_sq):  # init as one
                lin.weight.mul_(1 / math.sqrt(3))  # Linear(3k, h): bound 1/sqrt(3k)
            self.pair_abs.bias.mul_(1 / math.sqrt(3))
            self.pair_mlp[-1].bias.fill_(math.log(out_init / (1 - out_init)))
            if self.direct is not None:
                self.direct.weight.mul_(0.1)
                self.direct.bias.zero_()

    def _encode_features(self, x: Tensor) -> Tensor:
        if self.encoder_kind == "conv":
            if self._pad:
                x = F.pad(x, (0, self._pad, 0, self._pad))
            return self.to_latent(self.encoder(x))
        v = x.flatten(1)[:, self.upper]  # (B, M) upper-triangle distances
        return self.to_latent(self.encoder(v))

    def _decode_raw(self, z: Tensor) -> Tensor:
        t = self.trunk(z)  # (B, h_t)
        e = self.embed_norm(self.embed(t).view(-1, self.n, self.embed_dim))  # (B, N, k)
        a = self.pair_sum(e)  # (B, N, h): W_s e_i, once per slot
        diff = e[:, self.pair_i] - e[:, self.pair_j]  # (B, M, k)
        h = (a[:, self.pair_i] + a[:, self.pair_j] + self.pair_abs(diff.abs())
             + self.pair_sq(diff * diff))  # (B, M, h)
        logit = self.pair_mlp(h)[..., 0]  # (B, M)
        if self.direct is not None:
            logit = logit + self.direct(t)
        v = self.d_max * torch.sigmoid(logit)
        v = torch.cat([v, v.new_zeros(v.shape[0], 1)], dim=1)  # index M reads 0
        return v[:, self.to_matrix].view(-1, 1, self.n, self.n)


def build(cfg, n_particles: int, box: float) -> PairVAE:
    """The PairVAE of ``cfg.model`` for N particles in a box of side ``box`` (sigma)."""
    from vae.data import output_max

    m = cfg.model
    return PairVAE(n_particles, m.latent_dim, m.hidden or (1024, 512),
                   embed_dim=m.embed_dim or 16, pair_hidden=m.pair_hidden or (32, 32),
                   d_max=output_max(cfg.data, box), encoder=m.encoder or "conv",
                   channels=m.channels or (32, 64), patch=m.patch or 3)


ARCHITECTURE = Architecture(
    "pair", PairVAE, build, representations=("distance",), default_for=("distance",),
    description="conv encoder; decoder predicting each distance from a pair of particle "
    "embeddings (symmetric, zero diagonal by construction)", order=10)
