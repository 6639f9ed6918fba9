"""VAE architectures: the default pair VAE, conv VAE, the study's conv VAE, FC baselines.

Every model is a :class:`VAE` with the pytorch/examples interface

* ``encode(x) -> (mu_z, logvar_z)``, each (B, D);
* ``reparameterize(mu_z, logvar_z) -> z = mu_z + exp(logvar_z / 2) * eps``, eps ~ N(0, I)
  (Kingma & Welling 2014, "Auto-Encoding Variational Bayes", section 2.4);
* ``decode(z) -> x_hat`` with the shape of the input;
* ``forward(x) -> VAEOutput(x_hat, mu_z, logvar_z, z, logits)``.

Input shapes (from :func:`vae.data.make_inputs`): distance matrices (B, 1, N, N),
coordinates (B, N, 2), occupancy grids (B, 1, H, W). Models with a Bernoulli output
(occupancy grids) also return the pre-sigmoid ``logits`` so that the BCE is computed
stably; ``x_hat`` is then the pixel probability.

Architectures
-------------
``PairVAE`` (``arch="pair"``, the default on distance matrices): an MLP encoder (batch
norm) on the N(N-1)/2 upper-triangle distances; the decoder maps z to one embedding
e_i per particle slot and one small MLP g, shared by all pairs, gives

    D_ij = D_ji = d_max * sigmoid(g([e_i + e_j, |e_i - e_j|, (e_i - e_j)^2])),  D_ii = 0,

a plausible distance matrix by construction (see the class docstring).

``ConvVAE`` (``arch="conv"``, the default on occupancy grids): a conv over
non-overlapping 3x3 patches (stride 3: 30 -> 10, 32 channels), a 3x3 stride-2 conv
(10 -> 5, 64 channels), batch norm and ReLU after each, one linear layer to (mu_z,
logvar_z); the decoder mirrors it with transposed convs. On distance matrices the
decoder's raw output A becomes

    D = d_max * sigmoid((A + A^T) / 2) * (1 - I),

so every decoded matrix is symmetric, has a zero diagonal and 0 <= D_ij <= d_max
(d_max = box diagonal in input units, 1 with the study scaling): a plausible distance
matrix by construction. About 1.2 MMAC per sample forward, 58x less than the study's
68 MMAC; strided, non-overlapping first and last layers keep the CPU cost low.

``StudyConvVAE`` (``arch="study"``): the study's exact network (docs/reference.md section 1;
Keras defaults: "valid" padding in the encoder, "same" in the decoder, ReLU, Glorot-
uniform weights, zero biases). The padding follows from the study's 4.6 M parameters
and ~410 MFLOP per sample per training step (docs/reference.md section 4)::

    Conv2D(60, 3x3) -> Conv2D(50, 3x3) -> Flatten (50*26*26) -> Dense(40) x 2 (mu, logvar)
    Dense(50*30*30) -> ConvT(50, 3x3) -> ConvT(60, 3x3) -> ConvT(1, 3x3, sigmoid)

``CoordVAE`` (``arch="coord"``, in :mod:`vae.physical`): the conv encoder and a decoder
that places the N particles in 2D and outputs their distances, an exact Euclidean
distance matrix by construction.

``FCVAE`` (``arch="fc"``): fully connected encoder and mirrored decoder on flattened
inputs, the study's failed first attempts (on coordinates: 60 -> 45 -> 30 -> 15 ->
latent, sigmoid output), kept as ablation baselines.

On occupancy grids (``representation="grid"``) ``ConvVAE`` (patch 2) and ``FCVAE``
output Bernoulli logits and are trained with the binary cross-entropy.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vae.config import RunConfig
from vae.data import input_shape, length_scale, output_max

__all__ = [
    "VAEOutput",
    "VAE",
    "ConvVAE",
    "PairVAE",
    "StudyConvVAE",
    "FCVAE",
    "build_model",
    "count_parameters",
]

_LOGVAR_MIN, _LOGVAR_MAX = -30.0, 20.0  # keeps exp(logvar) finite in float32


class VAEOutput(NamedTuple):
    """What :meth:`VAE.forward` returns.

    Attributes:
        x_hat: reconstruction, shape of the input (distances / coordinates in input
            units; pixel probabilities for grids).
        mu_z, logvar_z: (B, D) mean and log-variance of q(z|x).
        z: (B, D) the latent sample that was decoded (mu_z when not sampling).
        logits: pre-sigmoid output for Bernoulli models, else None.
    """

    x_hat: Tensor
    mu_z: Tensor
    logvar_z: Tensor
    z: Tensor
    logits: Tensor | None


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


class ConvVAE(VAE):
    """Conv VAE on square images (distance matrices or occupancy grids; the default on grids).

    Encoder: the (B, 1, n, n) input is zero-padded to a multiple of ``patch``, a
    ``patch`` x ``patch`` conv with stride ``patch`` (non-overlapping patches; 30 -> 10
    for patch 3) and stride-2 3x3 convs (10 -> 5) follow, each with batch norm and
    ReLU, then one linear layer to (mu_z, logvar_z). Decoder: the mirror image (linear,
    stride-2 transposed convs, a stride-``patch`` transposed conv, crop to n), ReLU.

    The encoder's batch norm and an output bias that starts the decoder at a typical
    value (``out_init``) roughly halve the test MSE reached after a few epochs
    compared with the same network without them (measured on 4-gamma LJ data).

    Args:
        size: image side n (N for distance matrices, H = W for grids).
        latent_dim: D.
        channels: channels after the patch conv and after each stride-2 conv.
        patch: side of the non-overlapping patches of the first conv.
        output: ``distance`` (symmetric, zero diagonal, in [0, d_max]) or ``bernoulli``
            (logits of occupancy).
        d_max: largest decoded distance, input units (``distance`` output only).
        out_init: initial decoded value as a fraction of d_max (distances) or initial
            pixel probability (grids). The default 0.3687 is the mean distance of two
            uniform points in a square, 0.5214 L, divided by the diagonal L*sqrt(2).
    """

    def __init__(self, size: int, latent_dim: int = 40, channels: tuple[int, ...] = (32, 64),
                 patch: int = 3, output: str = "distance", d_max: float = 1.0,
                 out_init: float = 0.3687) -> None:
        super().__init__(latent_dim)
        if output not in ("distance", "bernoulli"):
            raise ValueError(f"output: must be 'distance' or 'bernoulli', got {output!r}")
        self.size, self.patch, self.output, self.d_max = int(size), int(patch), output, float(d_max)
        self.bernoulli = output == "bernoulli"
        ch = tuple(int(c) for c in channels)
        self.sizes = _down_sizes(self.size, self.patch, len(ch))
        self._pad = self.sizes[0] * self.patch - self.size
        self.encoder = _conv_encoder(ch, self.patch)
        n_flat = ch[-1] * self.sizes[-1] ** 2
        self.to_latent = nn.Linear(n_flat, 2 * latent_dim)
        self.from_latent = nn.Sequential(nn.Linear(latent_dim, n_flat), nn.ReLU())
        dec: list[nn.Module] = []
        for i in range(len(ch) - 1, 0, -1):
            pad_out = self.sizes[i - 1] - (2 * self.sizes[i] - 1)  # 0 or 1
            dec += [nn.ConvTranspose2d(ch[i], ch[i - 1], 3, stride=2, padding=1,
                                       output_padding=pad_out), nn.ReLU()]
        last = nn.ConvTranspose2d(ch[0], 1, self.patch, stride=self.patch)
        if not 0 < out_init < 1:
            raise ValueError(f"out_init: must be in (0, 1), got {out_init}")
        with torch.no_grad():
            last.bias.fill_(math.log(out_init / (1 - out_init)))  # sigmoid(bias) = out_init
        dec.append(last)
        self.decoder = nn.Sequential(*dec)
        self._shape0 = (ch[-1], self.sizes[-1], self.sizes[-1])
        self.register_buffer("off_diagonal", 1.0 - torch.eye(self.size), persistent=False)

    def _encode_features(self, x: Tensor) -> Tensor:
        if self._pad:
            x = F.pad(x, (0, self._pad, 0, self._pad))
        return self.to_latent(self.encoder(x))

    def _decode_raw(self, z: Tensor) -> Tensor:
        h = self.from_latent(z).view(-1, *self._shape0)
        a = self.decoder(h)[..., :self.size, :self.size]
        if self.bernoulli:
            return a
        sym = 0.5 * (a + a.transpose(-1, -2))
        return self.d_max * torch.sigmoid(sym) * self.off_diagonal


def _mlp(widths: list[int], batch_norm: bool = False) -> nn.Sequential:
    """Linear layers between consecutive ``widths``, each followed by (batch norm and) ReLU."""
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers.append(nn.Linear(a, b))
        if batch_norm:
            layers.append(nn.BatchNorm1d(b))
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


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


def build_model(cfg: RunConfig, n_particles: int, box: float, seed: int | None = None) -> VAE:
    """The model a config describes, for N particles in a box of side L (sigma).

    Weights are initialised from ``torch.manual_seed(seed)`` inside
    :func:`torch.random.fork_rng`, so the caller's global RNG state is left untouched
    (``seed=None`` uses ``cfg.train.seed``).
    """
    seed = cfg.train.seed if seed is None else seed
    rep, arch, m = cfg.data.representation, cfg.model.arch, cfg.model
    shape = input_shape(cfg.data, n_particles, box)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arch == "study":
            return StudyConvVAE(n_particles, m.latent_dim)
        if arch == "pair2d":
            from vae.physical import ProjectedPairVAE

            return ProjectedPairVAE(
                n_particles, m.latent_dim, hidden=m.hidden or (1024, 512),
                embed_dim=m.embed_dim or 16, pair_hidden=m.pair_hidden or (32, 32),
                d_max=output_max(cfg.data, box), encoder=m.encoder or "conv",
                channels=m.channels or (32, 64), patch=m.patch or 3,
                decoder_gamma=m.decoder_gamma)
        if arch == "coord":
            from vae.physical import CoordVAE

            return CoordVAE(n_particles, m.latent_dim, m.hidden or (512, 512),
                            box_units=box / length_scale(cfg.data.scaling, box),
                            decoder_gamma=m.decoder_gamma, channels=m.channels or (32, 64),
                            patch=m.patch or 3)
        if arch == "pair":
            return PairVAE(n_particles, m.latent_dim, m.hidden or (1024, 512),
                           embed_dim=m.embed_dim or 16, pair_hidden=m.pair_hidden or (32, 32),
                           d_max=output_max(cfg.data, box), encoder=m.encoder or "conv",
                           channels=m.channels or (32, 64), patch=m.patch or 3)
        if arch == "conv":
            if rep == "grid":  # start at the mean occupancy N / (H W)
                return ConvVAE(shape[-1], m.latent_dim, m.channels or (32, 64),
                               patch=m.patch or 2, output="bernoulli",
                               out_init=min(0.5, n_particles / shape[-1] ** 2))
            return ConvVAE(shape[-1], m.latent_dim, m.channels or (32, 64), patch=m.patch or 3,
                           output="distance", d_max=output_max(cfg.data, box))
        default_hidden = (45, 30, 15) if rep == "coords" else (512, 128)
        return FCVAE(shape, m.latent_dim, m.hidden or default_hidden,
                     out_max=output_max(cfg.data, box), bernoulli=rep == "grid")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
