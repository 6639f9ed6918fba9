"""Keeping the epoch whose outputs are the most physical (``TrainConfig.select``).

The validation loss mixes the sorted-matrix MSE with the physics terms at fixed weights,
and with several physics terms on it moves by up to 2x between epochs while the
generation targets (energy, p(r) and rho(y) of generated configurations against Monte
Carlo) move on their own. ``select = "physics"`` keeps, and early-stops on, the epoch
that scores best on those targets directly:

1. every validation configuration is encoded and decoded from a draw
   z ~ q(z|x) (the density-buffer prior restricted to the validation set: what raw
   generation does, on configurations the model was not fitted on), with a fixed seed;
2. the decoded shape (the decoder's slot positions, or the Gram embedding of its
   distance matrix) is put in the box by the thermal placement
   (:func:`reconstruct.placement.place`, the data's temperature, a fixed seed);
3. per gamma, the W1 distances of the total energy, of the pair distances and of the
   particle heights between these configurations and the validation configurations
   themselves are divided by a scale fixed once: the larger of the W1 between the
   validation configurations and as many training configurations at that gamma (the
   sampling noise) and the W1 of the validation configurations' own shapes put in the
   box by the same placement (what an exact decoder would get: data that are not in
   equilibrium, like the study protocol's at gamma 0.1, are moved by the placement by
   up to ~9x the sampling noise, and no decoder can do better there);
4. the score is the mean of these ratios over gammas and the three observables
   (lower is better; ~1 for a model as good as the exact shapes).

The noise part of the scale is a same-chain distance (the split interleaves samples of
the same runs), so it is smaller than an independent-run floor and the ratios are larger
than the benchmark's; only their ordering across epochs matters here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import wasserstein_distance

from mcsim.config import SimConfig
from mcsim.io import DatasetError
from mcsim.observables import pair_distances
from mcsim.potentials import Potential, total_energy
from reconstruct.distances import symmetrize_distances
from reconstruct.embedding import embed_distances
from reconstruct.placement import place
from vae.config import SELECTIONS

__all__ = ["OBSERVABLES", "SELECTIONS", "PhysicsScore", "SelectionError"]
#: The observables of the score, in order.
OBSERVABLES = ("energy", "pair_distance", "height")
#: Ratio recorded for an observable that is not finite (a decoded pair at distance 0).
_NOT_FINITE = 1e12


class SelectionError(ValueError):
    """The data cannot be scored (no simulation config, or no positions)."""


def _observables(pos: np.ndarray, gamma: float, potential: Potential
                 ) -> dict[str, np.ndarray]:
    return {"energy": total_energy(pos, gamma, potential),
            "pair_distance": pair_distances(pos).ravel(),
            "height": pos[:, :, 1].ravel()}


def _w1(a: np.ndarray, b: np.ndarray) -> float:
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return math.inf
    return float(wasserstein_distance(a, b))


@dataclass
class _Group:
    gamma: float
    rows: np.ndarray  # rows of the validation inputs at this gamma
    reference: dict[str, np.ndarray]
    scale: dict[str, float]
    noise: dict[str, float]  # the sampling-noise part of the scale
    exact: dict[str, float]  # the exact shapes' part


class PhysicsScore:
    """The physics score of a model on the validation split (module docstring).

    Args:
        positions: (M, N, 2) positions of every configuration, sigma.
        gamma: (M,) their field strengths.
        train, val: index arrays of the split.
        files: the data files (their simulation configs give the potential and the
            temperature).
        box: box side, sigma.
        seed: seed of the latent draws, the placements and the scale's training subset.

    Raises:
        SelectionError: a file records no simulation config, or the files mix
            potentials or temperatures.
    """

    def __init__(self, positions: np.ndarray, gamma: np.ndarray, train: np.ndarray,
                 val: np.ndarray, files: list[str], box: float, seed: int = 0) -> None:
        self.potential, self.temperature = _ensemble(files)
        self.box = float(box)
        self.seed = int(seed)
        rng = np.random.default_rng(self.seed)
        g_val = np.asarray(gamma)[val]
        self.groups: list[_Group] = []
        for g in np.unique(g_val):
            rows = np.flatnonzero(g_val == g)
            ref = np.asarray(positions[val[rows]], dtype=np.float64)
            pool = train[np.asarray(gamma)[train] == g]
            other = np.asarray(positions[np.sort(rng.permutation(pool)[:rows.size])],
                               dtype=np.float64)
            obs_ref = _observables(ref, float(g), self.potential)
            obs_other = _observables(other, float(g), self.potential)
            obs_exact = _observables(self._place(ref, float(g)), float(g), self.potential)
            noise = {k: _w1(obs_ref[k], obs_other[k]) for k in OBSERVABLES}
            exact = {k: _w1(obs_ref[k], obs_exact[k]) for k in OBSERVABLES}
            scale = {k: max(noise[k], exact[k]) for k in OBSERVABLES}
            self.groups.append(_Group(float(g), rows, obs_ref, scale, noise, exact))

    def _place(self, coords: np.ndarray, gamma: float) -> np.ndarray:
        return place(coords, self.box, "thermal", gamma=gamma, temperature=self.temperature,
                     seed=self.seed).positions

    @torch.no_grad()
    def __call__(self, model, x: torch.Tensor, gamma: torch.Tensor, length: float,
                 batch_size: int = 1024) -> dict:
        """Score ``model`` on the validation inputs ``x`` (rows in the order of the
        split's ``val``) with field strengths ``gamma``; ``length`` is the input unit in
        sigma. Returns ``{"score": float, "ratios": {gamma: {observable: ratio}}}``."""
        was_training = model.training
        model.eval()
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        shapes = []
        for a in range(0, x.shape[0], batch_size):
            out = model(x[a:a + batch_size], sample=True, generator=gen,
                        gamma=gamma[a:a + batch_size])
            shapes.append(_shapes(out, length))
        model.train(was_training)
        coords = np.concatenate(shapes)
        ratios: dict[str, dict[str, float]] = {}
        for grp in self.groups:
            obs = _observables(self._place(coords[grp.rows], grp.gamma), grp.gamma,
                               self.potential)
            cell = {}
            for k in OBSERVABLES:
                w = _w1(obs[k], grp.reference[k])
                r = w / grp.scale[k] if grp.scale[k] > 0 else math.inf
                cell[k] = r if math.isfinite(r) else _NOT_FINITE
            ratios[f"{grp.gamma:g}"] = cell
        score = float(np.mean([r for cell in ratios.values() for r in cell.values()]))
        return {"score": score, "ratios": ratios}


def _shapes(out, length: float) -> np.ndarray:
    """(B, N, 2) decoded shapes in sigma: the slot positions of decoders that place
    particles, else the Gram embedding of the decoded distance matrix."""
    if out.coords is not None:
        return out.coords.double().cpu().numpy() * length
    d = out.x_hat[:, 0].double().cpu().numpy() * length
    d = np.nan_to_num(symmetrize_distances(d), nan=0.0, posinf=0.0)
    return embed_distances(d).coords


def _ensemble(files: list[str]) -> tuple[Potential, float]:
    pots, temps = {}, set()
    for f in files:
        try:
            sc = SimConfig.from_file(f)
        except DatasetError as e:
            raise SelectionError(f"select physics: {e}") from None
        if sc is None:
            raise SelectionError(f"select physics: {f} records no simulation config "
                                 "(potential, temperature)")
        pots[repr(sorted(sc.potential.to_dict().items()))] = sc.potential
        temps.add(float(sc.temperature))
    if not pots:
        raise SelectionError("select physics: no data files")
    if len(pots) > 1 or len(temps) > 1:
        raise SelectionError("select physics: the data files mix potentials or temperatures")
    return next(iter(pots.values())), temps.pop()
