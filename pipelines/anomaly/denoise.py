"""Denoising measured: is the configuration a VAE decodes from a corrupted input closer
to the clean original than the corrupted input was?

For clean configurations x0 (test split) and a corruption level c, the corrupted
x_c = c(x0) goes through the model, x_d = place(embed(decode(mu_z(x_c)))): the decoded
sorted distance matrix, in sigma and symmetrised, is embedded by the Gram step and
placed in the box by the thermal placement (:func:`reconstruct.reconstruct_configurations`).
Corruptions (:class:`Corruption`):

* ``displace``: K distinct particles moved by a length drawn in [0, s] in a random
  direction, reflected at the walls (:func:`pipelines.anomaly.sets.corrupt_positions`,
  the anomaly test's corrupted set);
* ``noise``: every particle displaced by N(0, sigma^2) per axis, reflected at the walls.

Per level the table reports, over the configurations: the RMSD of x_c and of x_d from
x0 (median, sigma), the fraction of configurations with RMSD(x_d) < RMSD(x_c) by more
than IMPROVE_TOL = 0.001 sigma (with a 95 % Wilson interval), the median |U(x) - U(x0)|
per particle for x_c and x_d (total energy under the training potential with the
configuration's gamma; the thermal placement redraws the height, so this includes
gravity), and the share of x_d with a
pair closer than 0.8 sigma. A ``clean`` row (no corruption) gives the model's own
reconstruction error, the floor that denoising cannot beat.

RMSD is :func:`reconstruct.metrics.rmsd_unlabelled`: minimised over rotations,
reflections (a distance matrix cannot tell mirror images apart), translations and
particle relabellings, since the decoded slots follow the sort order of the corrupted
input, not the labels of x0. The same measure is used for x_c and x_d.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mcsim.potentials import Potential, total_energy
from pipelines.anomaly.sets import corrupt_positions

__all__ = ["Corruption", "DEFAULT_LEVELS", "corrupt", "decode_configurations",
           "DenoiseRow", "denoise_table", "denoise_markdown", "denoise_figure"]

OVERLAP_SIGMA = 0.8
#: "closer" means RMSD(x_d) < RMSD(x_c) - IMPROVE_TOL sigma (not rounding-level ties)
IMPROVE_TOL = 1e-3


@dataclass(frozen=True)
class Corruption:
    """One corruption level.

    Attributes:
        kind: ``displace`` (``k`` particles, steps up to ``step`` sigma), ``noise``
            (every particle, Gaussian of sd ``sigma`` per axis) or ``clean``.
        k, step, sigma: its parameters (sigma units).
    """

    kind: str
    k: int = 0
    step: float = 0.0
    sigma: float = 0.0

    def __post_init__(self) -> None:
        if self.kind == "displace":
            if not (isinstance(self.k, int) and self.k >= 1 and self.step > 0):
                raise ValueError(f"displace: need k >= 1 and step > 0, got k={self.k}, "
                                 f"step={self.step}")
        elif self.kind == "noise":
            if not self.sigma > 0:
                raise ValueError(f"noise: need sigma > 0, got {self.sigma}")
        elif self.kind != "clean":
            raise ValueError(f"kind: displace, noise or clean, got {self.kind!r}")

    @property
    def label(self) -> str:
        if self.kind == "displace":
            return f"{self.k} displaced (step <= {self.step:.3g} σ)"
        if self.kind == "noise":
            return f"noise σ_n = {self.sigma:g} σ"
        return "clean (no corruption)"


#: the levels reported by default: the anomaly test's corruption (step 0.2 L sqrt 2 =
#: 2.83 sigma at L = 10) at K = 1, 2, 4, and small Gaussian noise
DEFAULT_LEVELS = (Corruption("clean"),
                  Corruption("displace", k=1, step=2.83), Corruption("displace", k=2, step=2.83),
                  Corruption("displace", k=4, step=2.83),
                  Corruption("noise", sigma=0.05), Corruption("noise", sigma=0.1),
                  Corruption("noise", sigma=0.2))


def corrupt(positions: np.ndarray, c: Corruption, box: float,
            seed: int | np.random.SeedSequence = 0) -> np.ndarray:
    """Corrupted copies (M, N, 2) of positions (M, N, 2) at level ``c``, inside [0, L]^2."""
    pos = np.asarray(positions, dtype=np.float64)
    if c.kind == "clean":
        return pos.copy()
    if c.kind == "displace":
        return corrupt_positions(pos, c.k, min(c.step, box), box, seed)[0]
    p = pos + np.random.default_rng(seed).normal(0.0, c.sigma, pos.shape)
    for _ in range(8):  # reflect at the walls until inside (one pass unless sigma ~ L)
        p = np.where(p < 0.0, -p, p)
        p = np.where(p > box, 2.0 * box - p, p)
    return np.clip(p, 0.0, box)


def decode_configurations(model, positions: np.ndarray, gamma: np.ndarray, *,
                          temperature: float, seed: int = 0, placement: str = "thermal"):
    """Configurations decoded from positions: decode(mu_z(x)) of the model's inputs, in
    sigma and symmetrised (:meth:`vae.checkpoint.TrainedVAE.decode_distances`), through
    the Gram embedding and a placement in the box.

    Returns the :class:`reconstruct.pipeline.Reconstruction` (positions, fits, Gram
    quality). The model must take distance matrices.
    """
    from reconstruct.pipeline import reconstruct_configurations

    model.require_distance("denoising")
    box = float(model.info.box)
    g = np.asarray(gamma, dtype=np.float64)
    mu, _ = model.encode(model.inputs(positions, box))
    d = model.decode_distances(mu, gamma=g)
    return reconstruct_configurations(d, box, placement=placement, gamma=g,
                                      temperature=temperature, seed=seed)


def _closest_pair(pos: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(pos[:, :, None, :] - pos[:, None, :, :], axis=-1)
    n = pos.shape[1]
    d[:, np.arange(n), np.arange(n)] = np.inf
    return d.min(axis=(1, 2))


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


@dataclass(frozen=True)
class DenoiseRow:
    """One level of the denoising table (see the module docstring)."""

    level: Corruption
    n: int
    rmsd_corrupted: float  # median, sigma
    rmsd_decoded: float  # median, sigma
    improved: float  # fraction with RMSD(decoded) < RMSD(corrupted)
    improved_ci: tuple[float, float]
    du_corrupted: float  # median |U - U0| / N, epsilon per particle
    du_decoded: float
    overlap_decoded: float  # share with a pair closer than OVERLAP_SIGMA
    fits: float  # share of decoded shapes that fit in the box

    def to_dict(self) -> dict:
        return {"level": self.level.label, "kind": self.level.kind, "k": self.level.k,
                "step": self.level.step, "sigma": self.level.sigma, "n": self.n,
                "rmsd_corrupted": self.rmsd_corrupted, "rmsd_decoded": self.rmsd_decoded,
                "improved": self.improved, "improved_lo": self.improved_ci[0],
                "improved_hi": self.improved_ci[1], "du_corrupted": self.du_corrupted,
                "du_decoded": self.du_decoded, "overlap_decoded": self.overlap_decoded,
                "fits": self.fits}


def denoise_table(model, clean: np.ndarray, gamma: np.ndarray, *, potential: Potential,
                  temperature: float, levels=DEFAULT_LEVELS, seed: int = 0,
                  n_starts: int = 12, keep_examples: int = 0):
    """The denoising table for clean configurations (M, N, 2) with field strengths (M,).

    Returns (rows, examples): a :class:`DenoiseRow` per level and, if
    ``keep_examples`` > 0, per level the first ``keep_examples`` triples (clean,
    corrupted, decoded) as arrays (k, N, 2) for :func:`denoise_figure`.
    """
    from reconstruct.metrics import rmsd_unlabelled

    x0 = np.asarray(clean, dtype=np.float64)
    g = np.asarray(gamma, dtype=np.float64)
    box = float(model.info.box)
    n_part = x0.shape[1]
    u0 = total_energy(x0, g, potential)
    rows, examples = [], {}
    ss = np.random.SeedSequence(seed)
    for c, child in zip(levels, ss.spawn(len(levels)), strict=True):
        s_cor, s_dec = child.spawn(2)
        xc = corrupt(x0, c, box, s_cor)
        rec = decode_configurations(model, xc, g, temperature=temperature,
                                    seed=int(s_dec.generate_state(1)[0]))
        xd = rec.positions
        r_c = rmsd_unlabelled(x0, xc, n_starts=n_starts) if c.kind != "clean" else \
            np.zeros(len(x0))
        r_d = rmsd_unlabelled(x0, xd, n_starts=n_starts)
        better = int(np.sum(r_d < r_c - IMPROVE_TOL))
        du_c = np.abs(total_energy(xc, g, potential) - u0) / n_part
        du_d = np.abs(total_energy(xd, g, potential) - u0) / n_part
        rows.append(DenoiseRow(c, len(x0), float(np.median(r_c)), float(np.median(r_d)),
                               better / len(x0), _wilson(better, len(x0)),
                               float(np.median(du_c)), float(np.median(du_d)),
                               float(np.mean(_closest_pair(xd) < OVERLAP_SIGMA)),
                               float(np.mean(rec.fits))))
        if keep_examples:
            examples[c.label] = (x0[:keep_examples], xc[:keep_examples], xd[:keep_examples],
                                 r_c[:keep_examples], r_d[:keep_examples])
    return rows, examples


def denoise_markdown(rows: list[DenoiseRow], title: str = "") -> str:
    """The table in Markdown."""
    head = (f"{title}\n\n" if title else "") + (
        "| corruption | n | RMSD corrupted (σ) | RMSD decoded (σ) | decoded closer | "
        "median abs ΔU corrupted (ε/particle) | median abs ΔU decoded | "
        "decoded with overlap | fit in box |\n"
        "|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        closer = ("—" if r.level.kind == "clean" else
                  f"{100 * r.improved:.0f} % [{100 * r.improved_ci[0]:.0f}, "
                  f"{100 * r.improved_ci[1]:.0f}]")
        lines.append(f"| {r.level.label} | {r.n} | {r.rmsd_corrupted:.3f} | "
                     f"{r.rmsd_decoded:.3f} | {closer} | {r.du_corrupted:.3g} | "
                     f"{r.du_decoded:.3g} | {100 * r.overlap_decoded:.1f} % | "
                     f"{100 * r.fits:.1f} % |")
    return head + "\n".join(lines) + "\n"


def denoise_figure(examples: dict, box: float, title: str = ""):
    """Rows: corruption levels; columns: clean, corrupted, decoded (first example),
    each drawn in the box, RMSD from the clean original in the titles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(examples)
    fig, axes = plt.subplots(len(labels), 3, figsize=(8.4, 2.7 * len(labels)), squeeze=False)
    for i, lab in enumerate(labels):
        x0, xc, xd, rc, rd = examples[lab]
        for j, (pos, name) in enumerate(((x0[0], "clean"),
                                         (xc[0], f"corrupted: RMSD {rc[0]:.2f} σ"),
                                         (xd[0], f"decoded: RMSD {rd[0]:.2f} σ"))):
            ax = axes[i, j]
            ax.scatter(pos[:, 0], pos[:, 1], s=28, c="C0" if j == 0 else ("C3" if j == 1
                                                                           else "C2"))
            ax.set_xlim(0, box)
            ax.set_ylim(0, box)
            ax.set_aspect("equal")
            ax.set_title(name, fontsize=8)
            ax.tick_params(labelsize=7)
            if j == 0:
                ax.set_ylabel(f"{lab}\ny (σ)", fontsize=8)
            if i == len(labels) - 1:
                ax.set_xlabel("x (σ)", fontsize=8)
    fig.suptitle(title or "Denoising: clean, corrupted and decoded configurations "
                 "(RMSD: rigid motions, mirror and relabelling allowed)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    return fig
