"""Anomaly-set generators: corrupted configurations, missing-data masks, and the
Monte Carlo anomaly datasets (unseen gamma, fake potential, uniform) as mcsim files.

Corruption (seed 002 chapter 4): K distinct particles of a configuration, chosen at
random, each move by a step length drawn uniformly in [0, s] in a direction drawn
uniformly on the circle. A move that would leave the box [0, L]^2 is *reflected* at
the wall (x -> -x below 0, x -> 2L - x above L, per axis), so the result stays a valid
walled-box configuration and the net displacement is never longer than the drawn step
(reflection only shortens it). s <= L is required, so one reflection suffices.

Missing data acts on the sorted distance matrices (rows and columns are particles in
the order of their distance from the corner (0, 0)): a mask is a boolean (N, N) array,
True where an entry is missing; masked entries are set to 0, as the study did.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from mcsim.clitools import UserError, partial_path
from mcsim.config import SimConfig
from mcsim.io import DatasetError, read_dataset
from mcsim.run import run_simulation

__all__ = [
    "corrupt_positions",
    "block_mask",
    "random_pair_masks",
    "apply_mask",
    "mc_set_config",
    "set_file_name",
    "generate_mc_set",
    "load_mc_set",
]


def corrupt_positions(positions: np.ndarray, k: int, step: float, box: float,
                      seed: int | np.random.SeedSequence = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Displace k distinct random particles of each configuration (reflecting walls).

    Args:
        positions: (M, N, 2) coordinates in [0, L]^2, sigma.
        k: particles moved per configuration, 1 <= k <= N.
        step: largest step length s, sigma (0 < s <= L); lengths are U(0, s).
        box: box side L, sigma.
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        (new positions (M, N, 2), moved particle indices (M, k) int64). Particles not
        listed are bit-identical to the input.
    """
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 3 or pos.shape[2] != 2:
        raise ValueError(f"positions: expected shape (M, N, 2), got {pos.shape}")
    m, n, _ = pos.shape
    if not 1 <= k <= n:
        raise ValueError(f"k: must be in [1, N={n}], got {k}")
    if not 0 < step <= box:
        raise ValueError(f"step: must be in (0, L={box:g}] sigma, got {step}")
    rng = np.random.default_rng(seed)
    moved = np.argsort(rng.random((m, n)), axis=1)[:, :k]  # k distinct per row
    length = rng.uniform(0.0, step, (m, k))
    angle = rng.uniform(0.0, 2.0 * math.pi, (m, k))
    rows = np.arange(m)[:, None]
    new = pos.copy()
    p = pos[rows, moved] + length[..., None] * np.stack([np.cos(angle), np.sin(angle)], -1)
    p = np.where(p < 0.0, -p, p)
    p = np.where(p > box, 2.0 * box - p, p)
    new[rows, moved] = np.clip(p, 0.0, box)  # clip only guards round-off at the walls
    return new, moved.astype(np.int64)


def block_mask(n: int, size: int, offset: int) -> np.ndarray:
    """(N, N) bool mask of the diagonal block rows, columns offset .. offset+size-1."""
    if size < 1 or offset < 0 or size + offset > n:
        raise ValueError(f"block {size}x{size} at offset {offset} does not fit N={n}")
    mask = np.zeros((n, n), dtype=bool)
    mask[offset:offset + size, offset:offset + size] = True
    return mask


def random_pair_masks(m: int, n: int, fraction: float,
                      seed: int | np.random.SeedSequence = 0) -> np.ndarray:
    """(M, N, N) symmetric bool masks, each hiding round(fraction * N(N-1)/2) distinct
    particle pairs (both (i, j) and (j, i)); the diagonal is never masked."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction: must be in (0, 1], got {fraction}")
    iu, ju = np.triu_indices(n, 1)
    n_pairs = iu.size
    n_hide = int(round(fraction * n_pairs))
    rng = np.random.default_rng(seed)
    pick = np.argsort(rng.random((m, n_pairs)), axis=1)[:, :n_hide]
    masks = np.zeros((m, n, n), dtype=bool)
    rows = np.arange(m)[:, None]
    masks[rows, iu[pick], ju[pick]] = True
    masks[rows, ju[pick], iu[pick]] = True
    return masks


def apply_mask(x: np.ndarray, mask: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Copy of matrices ``x`` (M, [1,] N, N) with entries where ``mask`` ((N, N) or
    (M, N, N), True = missing) set to ``fill`` (the study: 0)."""
    out = np.array(x, copy=True)
    view = out[:, 0] if out.ndim == 4 else out
    mk = np.broadcast_to(mask, view.shape)
    view[mk] = fill
    return out


# -- Monte Carlo sets ------------------------------------------------------------------

def mc_set_config(kind: str, cfg, *, n_particles: int, box: float, n: int,
                  gamma: float | None = None) -> SimConfig:
    """The :class:`mcsim.SimConfig` of an MC anomaly set.

    Args:
        kind: ``unseen-gamma`` (training potential at ``gamma``, ``cfg.sweeps``),
            ``fake-potential`` (``cfg.fake_potential`` at ``cfg.fake_gamma``,
            ``cfg.fake_sweeps``) or ``uniform`` (protocol ``uniform``, gamma 0: the
            field only enters the stored energy, which the test recomputes).
        cfg: the :class:`pipelines.anomaly.config.AnomalyConfig`.
    """
    base = dict(n_particles=n_particles, box=float(box), temperature=cfg.temperature,
                delta=cfg.delta, n_samples=n, seed=cfg.seed, protocol="independent")
    if kind == "unseen-gamma":
        if gamma is None:
            raise ValueError("gamma: required for unseen-gamma sets")
        return SimConfig(potential=cfg.training_potential(), gammas=(float(gamma),),
                         sweeps=cfg.sweeps, **base)
    if kind == "fake-potential":
        return SimConfig(potential=cfg.fake(), gammas=(float(cfg.fake_gamma),),
                         sweeps=cfg.fake_sweeps, **base)
    if kind == "uniform":
        base["protocol"] = "uniform"
        return SimConfig(potential=cfg.training_potential(), gammas=(0.0,), sweeps=0, **base)
    raise ValueError(f"kind: not an MC anomaly kind: {kind!r}")


def _slug(x: float) -> str:
    return f"{x:g}".replace(".", "p").replace("-", "m")


def set_file_name(sim: SimConfig) -> str:
    """File name of an MC set; it encodes every parameter but the sample count, so a
    larger file with the same parameters serves any smaller request."""
    p = sim.potential
    cut = "nocut" if p.cutoff is None else f"rc{_slug(p.cutoff)}"
    pot = p.spec.replace(":", "").replace(",", "-")
    if sim.protocol == "uniform":
        return f"uniform_N{sim.n_particles}_L{_slug(sim.box)}_seed{sim.seed}.h5"
    return (f"mc_{pot}_{cut}_g{_slug(sim.gammas[0])}_T{_slug(sim.temperature)}"
            f"_d{_slug(sim.delta)}_s{sim.sweeps}_N{sim.n_particles}_L{_slug(sim.box)}"
            f"_seed{sim.seed}.h5")


def _matches(path: Path, sim: SimConfig) -> bool:
    """Whether the complete file at ``path`` was made with ``sim``'s parameters (any
    sample count >= ``sim.n_samples``)."""
    try:
        ds = read_dataset(path)
        old = SimConfig.from_json(ds.attrs["config"])
    except (DatasetError, KeyError, ValueError, TypeError, json.JSONDecodeError):
        return False
    return (old.replace(n_samples=sim.n_samples) == sim and old.n_samples >= sim.n_samples
            and len(ds) >= sim.n_samples)


def generate_mc_set(sim: SimConfig, data_dir: Path, *, progress: bool = True,
                    n_threads: int | None = None) -> tuple[Path, bool]:
    """Make sure ``data_dir`` holds the MC set ``sim`` (at least ``sim.n_samples``
    samples); reuse a matching file, resume a matching partial one.

    Sample k of a set depends only on (seed, gamma, k) (mcsim's per-sample streams),
    so the first n samples of a larger file *are* the n-sample set: a file with more
    samples is reused as is, and a smaller one is regenerated at the new size (its
    samples reappear unchanged).

    Returns:
        (path, reused): the file and whether it was reused without simulating.
    """
    data_dir = Path(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the anomaly-set folder {data_dir}: {exc.strerror}"
                        ) from None
    path = data_dir / set_file_name(sim)
    if path.exists() and _matches(path, sim):
        return path, True
    part = partial_path(path)
    resume = part.exists()
    try:
        run_simulation(sim, path, overwrite=True, resume=resume, chunk_size=250,
                       n_threads=n_threads, n_traces=0, check_samples=0, progress=progress)
    except UserError:
        if not resume:
            raise
        part.unlink(missing_ok=True)  # partial file from other parameters: start afresh
        run_simulation(sim, path, overwrite=True, resume=False, chunk_size=250,
                       n_threads=n_threads, n_traces=0, check_samples=0, progress=progress)
    return path, False


def load_mc_set(path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """First n configurations of an MC set file: (positions (n, N, 2), gamma (n,))."""
    ds = read_dataset(path)
    if len(ds) < n:
        raise DatasetError(f"{path}: holds {len(ds)} configurations, need {n}")
    return ds.positions[:n], ds.gamma[:n]

