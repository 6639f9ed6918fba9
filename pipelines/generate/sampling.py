"""Generation: prior sample -> decoder -> distance matrix -> placed configurations (or,
for decoders that place the particles, decoded positions -> placed configurations), with
physicality flags and optional rejection; writing generated sets."""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mcsim.clitools import UserError
from mcsim.io import write_dataset, write_xyz
from mcsim.potentials import Potential, total_energy
from pipelines.generate.config import _DECODE_BATCH, _POSITIONS_BATCH, _PROGRESS_MIN, _is_int
from pipelines.generate.latents import _require_distance_model, sim_configs
from reconstruct.checks import physical_checks
from reconstruct.pipeline import reconstruct_configurations
from reconstruct.placement import DEFAULT_PLACEMENT, PLACEMENTS, place
from vae.data import length_scale
from vae.priors import GammaInterpolationWarning, LatentPrior


# ---------------------------------------------------------------------------------
# generation
@dataclass
class GeneratedSet:
    """Generated configurations at one gamma.

    Attributes:
        positions: (n, N, 2) configurations resting in the box, sigma.
        gamma: the field they were generated for (None: the prior's mixture).
        prior: prior name; ``prior_params`` its settings.
        seed: seed of the draw.
        energy: (n,) total energy with the training potential and field, epsilon
            (NaN where no potential or gamma was given).
        residual: (n,) Euclidean-quality score: Gram spectral weight outside the top
            two components (0 = an exact planar distance matrix; 0 by construction
            for decoders that place the particles).
        negative: (n,) share of the Gram spectrum in negative eigenvalues.
        min_distance: (n,) closest pair distance, sigma.
        overlap: (n,) min_distance < ``overlap_threshold``.
        outside: (n,) does not fit in the box or leaves [0, L].
        n_drawn: configurations generated in total (rejected ones included).
        seconds: time of each step (prior, decode, reconstruct, checks), summed over
            every draw.
        box, overlap_threshold, reject_unphysical: settings.
        placement, temperature: the placement rule and its temperature (thermal).
        decoder_precision: the decoder's arithmetic
            (:data:`vae.checkpoint.DECODER_PRECISIONS`).
    """

    positions: np.ndarray
    gamma: float | None
    prior: str
    prior_params: dict[str, Any]
    seed: int
    energy: np.ndarray
    residual: np.ndarray
    negative: np.ndarray
    min_distance: np.ndarray
    overlap: np.ndarray
    outside: np.ndarray
    n_drawn: int
    seconds: dict[str, float]
    box: float
    overlap_threshold: float
    reject_unphysical: bool
    placement: str = DEFAULT_PLACEMENT
    temperature: float | None = None
    decoder_precision: str = "float32"

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    @property
    def unphysical(self) -> np.ndarray:
        """(n,) overlap | outside."""
        return self.overlap | self.outside

    @property
    def unphysical_fraction_drawn(self) -> float:
        """Fraction of all drawn configurations that were unphysical (equals the
        fraction in the set when nothing was rejected)."""
        if self.n_drawn == 0:
            return 0.0
        kept_bad = int(self.unphysical.sum())
        rejected = self.n_drawn - len(self)
        return (kept_bad + rejected) / self.n_drawn

    @property
    def generation_seconds(self) -> float:
        return float(sum(self.seconds.values()))

    @property
    def rate(self) -> float:
        """Configurations generated per second (all drawn, rejected ones included)."""
        t = self.generation_seconds
        return self.n_drawn / t if t > 0 else math.inf

    def summary(self) -> dict[str, Any]:
        return {
            "prior": self.prior, "gamma": self.gamma, "n": len(self), "seed": self.seed,
            "n_drawn": self.n_drawn,
            "unphysical_fraction": float(self.unphysical.mean()) if len(self) else 0.0,
            "unphysical_fraction_drawn": self.unphysical_fraction_drawn,
            "overlap_fraction": float(self.overlap.mean()) if len(self) else 0.0,
            "outside_fraction": float(self.outside.mean()) if len(self) else 0.0,
            "residual_median": float(np.median(self.residual)) if len(self) else 0.0,
            "residual_mean": float(np.mean(self.residual)) if len(self) else 0.0,
            "min_distance_median": float(np.median(self.min_distance)) if len(self) else 0.0,
            "seconds": dict(self.seconds), "rate_per_s": self.rate,
        }


def _derived_seed(seed: int, round_: int, stream: int = 0x6E) -> int:
    if round_ == 0 and stream == 0x6E:
        return int(seed)
    ss = np.random.SeedSequence(int(seed), spawn_key=(stream, round_))
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(2))


def _process(trained, z: np.ndarray, scale: float, box: float, overlap: float,
             seconds: dict[str, float], placement: dict[str, Any],
             gamma: float | None = None,
             precision: str = "float32") -> tuple[np.ndarray, ...]:
    """Decode (at ``gamma`` for decoders that take it), reconstruct and check latents
    z (m, D); accumulates step times. ``placement``: keyword arguments of the
    placement (rule, gamma, temperature, seed, start index).

    A model whose decoder places the particles (``trained.places_particles``) takes
    the direct path: its decoded slot positions go to the placement as they are (the
    Gram embedding of their distance matrix would return them up to a rigid motion,
    which no placement depends on in law), with Gram residual and negative share 0
    (exact planar matrices by construction). Other models: distance matrix -> Gram
    embedding -> placement. ``precision``: the decoder's
    (:meth:`vae.checkpoint.TrainedVAE.decode_positions`; direct path only)."""
    if not math.isclose(scale, length_scale(trained.config.data.scaling, trained.info.box)):
        raise ValueError(f"scale: must be the model's length scale, got {scale!r}")
    t1 = time.perf_counter()
    if trained.places_particles:
        coords = trained.decode_positions(z, batch_size=_POSITIONS_BATCH, gamma=gamma,
                                          precision=precision)  # sigma
        t2 = time.perf_counter()
        placed = place(coords, box, **placement)
        fits = placed.fits
        residual = np.zeros(len(coords))
        negative = np.zeros(len(coords))
    else:
        d = trained.decode_distances(z, batch_size=_DECODE_BATCH, gamma=gamma)  # sigma
        t2 = time.perf_counter()
        rec = reconstruct_configurations(d, box, **placement)
        placed, fits = rec.tumbled, rec.fits
        residual, negative = rec.embedding.residual, rec.embedding.negative
    t3 = time.perf_counter()
    pos = placed.positions
    dmin, leaves = physical_checks(pos, box)
    out_of_box = ~fits | leaves
    t4 = time.perf_counter()
    for k, dt in (("decode", t2 - t1), ("reconstruct", t3 - t2), ("checks", t4 - t3)):
        seconds[k] = seconds.get(k, 0.0) + dt
    return pos, residual, negative, dmin, dmin < overlap, out_of_box


def check_decoder_precision(trained, precision: str) -> None:
    """UserError unless ``precision`` is one of
    :data:`vae.checkpoint.DECODER_PRECISIONS` that the model offers
    (:attr:`vae.checkpoint.TrainedVAE.decoder_precisions`)."""
    from vae.checkpoint import DECODER_PRECISIONS

    if precision not in DECODER_PRECISIONS:
        raise UserError(f"decoder precision: must be one of {', '.join(DECODER_PRECISIONS)}, "
                        f"got {precision!r}")
    if precision not in trained.decoder_precisions:
        raise UserError(f"decoder precision {precision}: needs arch coord; this model's "
                        f"arch {trained.config.model.arch!r} offers only "
                        f"{', '.join(trained.decoder_precisions)}")


def model_temperature(trained) -> float:
    """The temperature of the ensemble a model was trained on (from its training
    files' simulation configs).

    Raises:
        UserError: the files record no temperature, or several.
    """
    temps = {s.temperature for s in sim_configs(list(trained.info.files)).values()}
    if len(temps) != 1:
        raise UserError("checkpoint: its training files record "
                        + ("no temperature" if not temps else "several temperatures")
                        + "; thermal placement needs one (use placement 'lowest')")
    return float(next(iter(temps)))


def generate_configurations(trained, prior: LatentPrior, n: int, gamma: float | None, *,
                            seed: int = 0, potential: Potential | None = None,
                            overlap: float = 0.8, reject_unphysical: bool = False,
                            max_draw_factor: float = 20.0, batch_size: int = 8192,
                            placement: str = DEFAULT_PLACEMENT,
                            temperature: float | None = None,
                            decoder_precision: str = "float32",
                            progress: bool = False) -> GeneratedSet:
    """Generate ``n`` configurations at ``gamma`` (pipeline in the module docstring).

    Args:
        trained: a :class:`vae.checkpoint.TrainedVAE` on distance matrices.
        prior: a fitted latent prior (its gamma rule applies).
        n: number of configurations.
        gamma: field strength, or None for the prior's mixture over trained gammas.
        seed: seed of the prior draws; the same seed gives the same output. With
            rejection, round r > 0 redraws with a seed derived from (seed, r), so
            the first n draws are those of the run without rejection.
        potential: pair potential for the energies (None: energies are NaN).
        overlap: pairs closer than this (sigma) make a configuration unphysical.
        reject_unphysical: keep only physical configurations, drawing more as needed.
        max_draw_factor: with rejection, give up after drawing this many times n.
        batch_size: configurations decoded and reconstructed at once (memory bound);
            rounded up to a multiple of 1024, the decoder's own batch, so that it does
            not change the output (torch's float32 results depend on batch shapes).
        placement: how shapes are put in the box (:mod:`reconstruct.placement`);
            ``thermal`` (default) draws them from the Boltzmann law at ``gamma`` and
            the temperature, seeded by (seed, round).
        temperature: k_B T of the thermal placement (default: the training data's).
        decoder_precision: ``float32``, or ``bfloat16`` (hidden layers of the decoder in
            bfloat16, output layer in float32; models whose decoder places the
            particles only): :data:`vae.checkpoint.DECODER_PRECISIONS`.
        progress: progress bar (shown for large n only).

    Raises:
        UserError: the prior refuses gamma, or rejection finds too few physical
            configurations.
    """
    from tqdm.auto import tqdm

    _require_distance_model(trained)
    if not _is_int(n) or n < 0:
        raise UserError(f"n: must be a non-negative integer, got {n!r}")
    gamma_key = prior.check_gamma(gamma)  # one check (and warning) for the whole set
    if placement not in PLACEMENTS:
        raise UserError(f"placement: unknown rule {placement!r} ({', '.join(PLACEMENTS)})")
    check_decoder_precision(trained, decoder_precision)
    if placement == "thermal":
        if gamma_key is None:
            raise UserError("thermal placement needs a gamma (use placement 'lowest' for "
                            "the mixture over trained gammas)")
        temperature = model_temperature(trained) if temperature is None else temperature
    batch_size = max(1, -(-int(batch_size) // _DECODE_BATCH)) * _DECODE_BATCH
    box = float(trained.info.box)
    scale = length_scale(trained.config.data.scaling, box)
    seconds: dict[str, float] = {"prior": 0.0}
    parts: list[tuple[np.ndarray, ...]] = []
    kept, drawn, round_ = 0, 0, 0
    limit = int(math.ceil(max_draw_factor * n))
    bar = tqdm(total=n, desc=f"generate {prior.name}", unit="config",
               disable=not progress or n < _PROGRESS_MIN, dynamic_ncols=True)
    with bar:
        while kept < n:
            need = n - kept
            m = need
            if reject_unphysical and drawn > 0:
                acc = max(kept / drawn, 0.02)
                m = min(int(math.ceil(1.1 * need / acc)) + 16, limit - drawn)
            if m <= 0:
                raise UserError(f"reject-unphysical: only {kept} of {n} configurations "
                                f"were physical after drawing {drawn} "
                                f"(max_draw_factor={max_draw_factor:g}); the {prior.name} "
                                "prior rarely produces physical configurations here")
            t0 = time.perf_counter()
            with warnings.catch_warnings():  # the gamma rule was applied (and warned) above
                warnings.simplefilter("ignore", GammaInterpolationWarning)
                z = prior.sample(m, gamma_key, seed=_derived_seed(seed, round_))
            seconds["prior"] += time.perf_counter() - t0
            place_kw = {"placement": placement}
            if placement == "thermal":
                place_kw.update(gamma=gamma_key, temperature=temperature,
                                seed=_derived_seed(seed, round_, stream=0x70))
            res = [_process(trained, z[a:a + batch_size], scale, box, overlap, seconds,
                            {**place_kw, "start": a}, gamma_key, decoder_precision)
                   for a in range(0, m, batch_size)]
            batch = tuple(np.concatenate([r[i] for r in res]) for i in range(6))
            drawn += m
            round_ += 1
            if reject_unphysical:
                ok = ~(batch[4] | batch[5])
                batch = tuple(x[ok] for x in batch)
            take = min(need, batch[0].shape[0])
            parts.append(tuple(x[:take] for x in batch))
            kept += take
            bar.update(take)
    if parts:
        cols = [np.concatenate([p[i] for p in parts]) for i in range(6)]
    else:
        npart = trained.info.n_particles
        cols = [np.zeros((0, npart, 2)), np.zeros(0), np.zeros(0), np.zeros(0),
                np.zeros(0, bool), np.zeros(0, bool)]
    pos = cols[0]
    if potential is not None and gamma_key is not None and len(pos):
        energy = np.asarray(total_energy(pos, gamma_key, potential), dtype=np.float64)
    else:
        energy = np.full(len(pos), np.nan)
    return GeneratedSet(
        positions=pos, gamma=gamma_key, prior=prior.name, prior_params=prior.params(),
        seed=int(seed), energy=energy, residual=cols[1], negative=cols[2],
        min_distance=cols[3], overlap=cols[4], outside=cols[5], n_drawn=int(drawn),
        seconds=seconds, box=box, overlap_threshold=float(overlap),
        reject_unphysical=bool(reject_unphysical), placement=placement,
        temperature=None if temperature is None else float(temperature),
        decoder_precision=decoder_precision)


def write_generated(path: str | os.PathLike, generated: GeneratedSet | list[GeneratedSet], *,
                    attrs: dict[str, Any] | None = None, xyz: str | os.PathLike | None = None,
                    overwrite: bool = False) -> Path:
    """Write generated configurations as an ljvae dataset (``source = generate``),
    readable by :func:`mcsim.io.read_dataset`, atomically; optionally extended XYZ.

    Args:
        path: output ``.h5``.
        generated: one set, or several (e.g. one per gamma; rows concatenated in
            order, the ``gamma`` column says which is which).
        attrs: further root attributes (checkpoint path and fingerprint, model data
            fingerprint, potential, prior file, ...).
        xyz: also write extended XYZ here.
        overwrite: replace existing files.

    Root attributes record how to regenerate the file: prior and its settings, seed,
    gammas, rejection settings, the reconstruction rules, per-set counts (``sets``,
    JSON) and the caller's ``attrs``. Per-configuration arrays under ``extra/``:
    ``gram_residual``, ``gram_negative``, ``min_distance``, ``overlap``, ``outside``.
    """
    sets = [generated] if isinstance(generated, GeneratedSet) else list(generated)
    if not sets:
        raise ValueError("generated: no sets to write")
    first = sets[0]
    for g in sets[1:]:
        if (g.prior, g.box, g.positions.shape[1:]) != (first.prior, first.box,
                                                       first.positions.shape[1:]):
            raise ValueError("generated: sets differ in prior, box or particle number")

    def cat(name: str) -> np.ndarray:
        return np.concatenate([np.asarray(getattr(g, name)) for g in sets])

    gam = np.concatenate([np.full(len(g), np.nan if g.gamma is None else g.gamma)
                          for g in sets])
    positions, energy = cat("positions"), cat("energy")
    unphysical = np.concatenate([g.unphysical for g in sets])
    base = {
        "source": "generate",
        "box": first.box,
        "n_particles": int(first.positions.shape[1]),
        "prior": first.prior,
        "prior_params": json.dumps(first.prior_params, sort_keys=True),
        "seed": first.seed,
        "gammas": json.dumps([g.gamma for g in sets]),
        "overlap_threshold": first.overlap_threshold,
        "reject_unphysical": first.reject_unphysical,
        "n_drawn": int(sum(g.n_drawn for g in sets)),
        "unphysical_fraction": float(unphysical.mean()) if unphysical.size else 0.0,
        "sets": json.dumps([{k: v for k, v in g.summary().items()
                             if k not in ("seconds", "rate_per_s")}  # no timings: files
                            for g in sets], sort_keys=True),  # are reproducible
        "gram_variant": "centered",
        "placement": first.placement,
        "placement_rule": PLACEMENTS[first.placement].description,
        "decoder_precision": first.decoder_precision,
        **({} if first.temperature is None else {"temperature": first.temperature}),
    }
    all_attrs = {**base, **(attrs or {})}
    extra = {"gram_residual": cat("residual"), "gram_negative": cat("negative"),
             "min_distance": cat("min_distance"),
             "overlap": cat("overlap").astype(np.float64),
             "outside": cat("outside").astype(np.float64)}
    if xyz is not None and Path(xyz).exists() and not overwrite:
        raise UserError(f"{xyz} exists (overwrite=True replaces it)")
    out = write_dataset(path, positions, gam, all_attrs, energy=energy, extra=extra,
                        overwrite=overwrite)
    if xyz is not None:
        write_xyz(xyz, positions, box=first.box, energy=energy, gamma=gam,
                  overwrite=overwrite)
    return out


