"""Generation: new configurations from the latent space, judged against Monte Carlo.

Pipeline (one call of :func:`generate_configurations`)::

    z ~ prior(gamma)                (vae.priors: normal, pca, gmm, buffer, flow)
      -> decoder -> distance matrix (input units, times the length scale -> sigma)
      -> symmetrize -> Gram + top-two embedding -> placement  (reconstruct; thermal:
         the exact Boltzmann law of orientation, mirror and offsets given the shape)
      -> positions (n, N, 2) in the box, sigma

Each configuration carries its Euclidean-quality score (the Gram residual: spectral
weight outside the top two components, 0 for an exact 2D distance matrix) and
flags: ``overlap`` (a pair closer than ``overlap`` sigma, default 0.8) and
``outside`` (the body does not fit in the box, or a coordinate leaves [0, L]).
``unphysical = overlap | outside`` are counted and optionally rejected (redrawn
until n physical configurations are found; rejection is a selection, not a
correction: no configuration is moved). Nothing here relaxes configurations.

Judging (:func:`run_generation`) for each trained gamma and prior, against a
held-out Monte Carlo reference set R of equal size n:

* R: the model's *test* split configurations of that gamma (first n in file
  order), or rows of ``mc_files`` at that gamma.
* Observables: total energy U (mcsim.total_energy with the training potential and
  field, every pair counted), the pooled pair-distance distribution p(r) (all pairs
  i < j), and the pooled height distribution of particles rho(y).
* Distances: Wasserstein-1 (exact, scipy, on the energies and on the pooled pair
  distances / heights) and Jensen-Shannon (base 2; energy on 30 equal-count bins
  of R with open outer bins, p(r) on 100 bins over [0, L sqrt 2] plus an overflow
  bin, rho(y) on 40 bins over [0, L] plus under/overflow bins). Error bars:
  standard deviation over ``n_boot`` bootstrap replicates resampling whole
  configurations of both sets independently (for p(r) and rho(y) the replicate
  W1 is computed from per-configuration histograms on a 1000-bin grid, which
  changes the spread of the replicates negligibly but not their cost).
* Floor: the same distances between R and a second, independent MC set F of the
  same size n: by default (``floor="sampler"``) F is simulated in the same run with
  the training data's own SimConfig and a different seed (``mc_seed``), which also
  times the sampler; ``floor="validation"`` uses the model's validation split of
  that gamma (n is then limited by its size). A perfect generator scores about
  the floor, so the report gives distance / floor ratios.
* Speed: configurations per second of generation (prior sample + decode +
  reconstruct + checks; energies are evaluation and not counted) against
  configurations per second of the sampler with the training protocol, on the
  same number of threads in the same run.

Outputs of :func:`run_generation` in ``out_dir``: ``generate.json`` (every number
and parameter), ``generate.md`` (the table), ``fig_gamma_<g>.png`` (one per gamma:
energy histogram, p(r), p(r) at short range, rho(y); MC and every prior),
``priors/<name>.npz`` (the fitted priors) and, with ``write_sets``,
``sets/<prior>_gamma_<g>.h5`` plus ``sets/mc_floor_gamma_<g>.h5``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from mcsim.clitools import UserError, atomic_output
from mcsim.config import SimConfig
from mcsim.io import DatasetError, read_dataset, write_dataset, write_xyz
from mcsim.observables import pair_distances
from mcsim.potentials import Potential, total_energy
from reconstruct.distances import symmetrize_distances
from reconstruct.metrics import energy_bin_edges
from reconstruct.pipeline import reconstruct_configurations
from reconstruct.placement import DEFAULT_PLACEMENT, PLACEMENTS
from vae.checkpoint import latest_checkpoint
from vae.priors import PRIORS, GammaInterpolationWarning, LatentPrior, build_prior

__all__ = [
    "FLOORS",
    "GenerateConfig",
    "GeneratedSet",
    "TrainingLatents",
    "Distance",
    "checkpoint_fingerprint",
    "latest_checkpoint",
    "training_latents",
    "fit_priors",
    "generate_configurations",
    "write_generated",
    "compare_sets",
    "sampler_rate",
    "run_generation",
    "plot_gamma_figure",
    "markdown_table",
]

FLOORS = ("sampler", "validation")
_PROGRESS_MIN = 20_000  # show a generation progress bar above this many configurations
_DECODE_BATCH = 1024  # TrainedVAE.decode's batch


# ---------------------------------------------------------------------------------
# configuration
def _bad(name: str, why: str, value: Any) -> None:
    raise UserError(f"{name}: {why}, got {value!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class GenerateConfig:
    """Settings of a generation / evaluation run (plain data; JSON round trip with
    :meth:`to_dict` / :meth:`from_dict`; invalid values raise a UserError naming
    the field).

    Attributes:
        priors: prior names (from :data:`vae.priors.PRIORS`), in report order.
        n: configurations per gamma and prior (the MC reference and floor sets have
            the same size; capped by the held-out MC available).
        gammas: gammas to generate at (None: every trained gamma).
        seed: seed of the prior draws (and of the bootstrap).
        buffer_alpha, buffer_smudge: density-buffer spread alpha sigma_i + smudge.
        pca_components: leading PCA components kept (None: all).
        pca_aggregate: PCA Gaussian of the aggregate posterior instead of the means.
        gmm_components: mixture components per gamma.
        flow_kind, flow_transforms, flow_hidden, flow_passes, flow_epochs,
            flow_batch_size, flow_lr, flow_patience: the flow prior
            (:class:`vae.priors.FlowPrior`); flow_passes 2 = coupling, None =
            fully autoregressive.
        reject_unphysical: redraw configurations with an overlap or outside the box.
        overlap: minimum allowed pair distance, sigma (default 0.8).
        relax_sweeps: if > 0, ALSO judge every prior's output after this many
            Metropolis sweeps (post-processing, reported as ``<prior>+mc<K>``, next to
            the control ``uniform+mc<K>``: the same sweeps from uniform starts).
        max_draw_factor: with rejection, give up after drawing this many times n.
        floor: ``sampler`` (fresh MC set with the training protocol, seed
            ``mc_seed``) or ``validation`` (the model's validation split).
        mc_seed: sampler seed of the floor set (must differ from the training seed).
        n_boot: bootstrap replicates for the error bars.
        threads: CPU threads for torch and numba (timings are per this many).
        speed_batch: configurations timed on the sampler when the floor does not
            come from the sampler.
        write_sets: write every generated set (and the MC floor set) as a dataset.
        xyz: also write extended XYZ next to each generated set.
        placement: how reconstructed shapes are put in the box
            (:data:`reconstruct.placement.PLACEMENTS`; default thermal).
    """

    priors: tuple[str, ...] = PRIORS
    n: int = 2000
    gammas: tuple[float, ...] | None = None
    seed: int = 0
    buffer_alpha: float = 1.0
    buffer_smudge: float = 0.0
    pca_components: int | None = None
    pca_aggregate: bool = False
    gmm_components: int = 10
    flow_kind: str = "maf"
    flow_transforms: int = 6
    flow_hidden: tuple[int, ...] = (128, 128)
    flow_passes: int | None = 2
    flow_epochs: int = 60
    flow_batch_size: int = 512
    flow_lr: float = 1e-3
    flow_patience: int = 8
    reject_unphysical: bool = False
    overlap: float = 0.8
    relax_sweeps: int = 0
    max_draw_factor: float = 20.0
    floor: str = "sampler"
    mc_seed: int = 1_000_001
    n_boot: int = 100
    threads: int = 1
    speed_batch: int = 64
    write_sets: bool = True
    xyz: bool = False
    placement: str = DEFAULT_PLACEMENT

    def __post_init__(self) -> None:
        pri = self.priors
        if isinstance(pri, str):
            pri = (pri,)
        object.__setattr__(self, "priors", tuple(pri))
        if self.gammas is not None:
            g = self.gammas
            object.__setattr__(self, "gammas", (g,) if _is_num(g) else tuple(g))
        if isinstance(self.flow_hidden, list | tuple):
            object.__setattr__(self, "flow_hidden", tuple(self.flow_hidden))
        self._validate()

    def _validate(self) -> None:
        if not self.priors:
            _bad("priors", "need at least one prior", self.priors)
        for p in self.priors:
            if p not in PRIORS:
                _bad("priors", f"each must be one of {', '.join(PRIORS)}", p)
        if len(set(self.priors)) != len(self.priors):
            _bad("priors", "names must be distinct", self.priors)
        if self.gammas is not None:
            if not self.gammas:
                _bad("gammas", "need at least one value (or null for all)", self.gammas)
            for g in self.gammas:
                if not _is_num(g) or g < 0:
                    _bad("gammas", "each must be a finite number >= 0", g)
        ints = {"n": 1, "seed": 0, "gmm_components": 1, "flow_transforms": 1,
                "flow_epochs": 1, "flow_batch_size": 1, "flow_patience": 0, "mc_seed": 0,
                "n_boot": 2, "threads": 1, "speed_batch": 1, "relax_sweeps": 0}
        for name, lo in ints.items():
            v = getattr(self, name)
            if not _is_int(v) or v < lo:
                _bad(name, f"must be an integer >= {lo}", v)
        for name in ("buffer_alpha", "buffer_smudge"):
            v = getattr(self, name)
            if not _is_num(v) or v < 0:
                _bad(name, "must be a finite number >= 0", v)
        for name in ("overlap", "flow_lr"):
            v = getattr(self, name)
            if not _is_num(v) or v <= 0:
                _bad(name, "must be a positive number", v)
        if not _is_num(self.max_draw_factor) or self.max_draw_factor < 1:
            _bad("max_draw_factor", "must be a number >= 1", self.max_draw_factor)
        if self.pca_components is not None and (not _is_int(self.pca_components)
                                                or self.pca_components < 1):
            _bad("pca_components", "must be a positive integer or null", self.pca_components)
        if self.flow_passes is not None and (not _is_int(self.flow_passes)
                                             or self.flow_passes < 2):
            _bad("flow_passes", "must be an integer >= 2 or null", self.flow_passes)
        if self.flow_kind not in ("maf", "nsf"):
            _bad("flow_kind", "must be maf or nsf", self.flow_kind)
        if not self.flow_hidden or not all(_is_int(h) and h > 0 for h in self.flow_hidden):
            _bad("flow_hidden", "must be a list of positive integers", self.flow_hidden)
        for name in ("reject_unphysical", "pca_aggregate", "write_sets", "xyz"):
            if not isinstance(getattr(self, name), bool):
                _bad(name, "must be true or false", getattr(self, name))
        if self.floor not in FLOORS:
            _bad("floor", f"must be one of {', '.join(FLOORS)}", self.floor)
        if self.placement not in PLACEMENTS:
            _bad("placement", f"must be one of {', '.join(PLACEMENTS)}", self.placement)

    def prior_params(self, name: str) -> dict[str, Any]:
        """Keyword arguments of :func:`vae.priors.build_prior` for prior ``name``."""
        if name == "buffer":
            return {"alpha": float(self.buffer_alpha), "smudge": float(self.buffer_smudge)}
        if name == "pca":
            return {"n_components": self.pca_components, "aggregate": self.pca_aggregate}
        if name == "gmm":
            return {"n_components": self.gmm_components, "seed": self.seed}
        if name == "flow":
            return {"kind": self.flow_kind, "transforms": self.flow_transforms,
                    "hidden": tuple(self.flow_hidden), "passes": self.flow_passes,
                    "epochs": self.flow_epochs, "batch_size": self.flow_batch_size,
                    "lr": float(self.flow_lr), "patience": self.flow_patience,
                    "seed": self.seed}
        return {}

    def replace(self, **changes: Any) -> GenerateConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["priors"] = list(self.priors)
        d["gammas"] = None if self.gammas is None else list(self.gammas)
        d["flow_hidden"] = list(self.flow_hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GenerateConfig:
        if not isinstance(d, dict):
            raise UserError(f"config: must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"{unknown[0]}: unknown setting")
        d = dict(d)
        for k in ("priors", "gammas", "flow_hidden"):
            if isinstance(d.get(k), list):
                d[k] = tuple(d[k])
        return cls(**d)


# ---------------------------------------------------------------------------------
# the trained model and its data
def checkpoint_fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 of the checkpoint file (first 16 hex digits)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _require_distance_model(trained) -> None:
    if trained.config.data.representation != "distance":
        raise UserError(f"checkpoint: generation needs a distance-matrix model, this one "
                        f"takes {trained.config.data.representation!r} inputs")


def _sim_configs(files: list[str]) -> dict[float, SimConfig]:
    """The SimConfig of each gamma in the training files (from their ``config``
    attribute)."""
    import h5py

    out: dict[float, SimConfig] = {}
    for f in files:
        try:
            with h5py.File(f, "r") as h:
                text = h.attrs.get("config")
                text = text.decode() if isinstance(text, bytes) else text
        except OSError:
            raise DatasetError(f"{f}: training data file is missing or unreadable") from None
        if not text:
            continue
        try:
            sc = SimConfig.from_json(text)
        except (ValueError, TypeError) as exc:
            raise DatasetError(f"{f}: unreadable simulation config ({exc})") from None
        for g in sc.gammas:
            out.setdefault(float(g), sc)
    return out


@dataclass
class TrainingLatents:
    """A trained model's data, re-read and encoded.

    Attributes:
        positions: (M, N, 2) all configurations the model saw (after subsampling),
            sigma; ``gamma`` (M,); ``split`` the model's train/val/test split.
        mu_train, logvar_train, gamma_train: the encoded training split.
        mu_val, gamma_val: the encoded validation split (flow model selection).
        sim: SimConfig of each trained gamma (potential, protocol), from the files.
        potential: the training pair potential.
        box: L, sigma.
    """

    positions: np.ndarray
    gamma: np.ndarray
    split: Any
    mu_train: np.ndarray
    logvar_train: np.ndarray
    gamma_train: np.ndarray
    mu_val: np.ndarray
    gamma_val: np.ndarray
    sim: dict[float, SimConfig]
    potential: Potential | None
    box: float

    def held_out(self, which: str, gamma: float) -> np.ndarray:
        """Positions (K, N, 2) of the ``test`` or ``val`` split at ``gamma``."""
        idx = getattr(self.split, which)
        return self.positions[idx[self.gamma[idx] == gamma]]


def training_latents(trained, *, batch_size: int = 1024) -> TrainingLatents:
    """Re-read the model's training files, check the fingerprint, and encode its
    train and validation splits.

    Raises:
        UserError: data files missing or changed since training, or mixed potentials.
    """
    from vae.training import prepare_data

    _require_distance_model(trained)
    files = list(trained.info.files)
    if not files:
        raise UserError("checkpoint: records no training data files")
    data = prepare_data(trained.config, files)
    if data.info.fingerprint != trained.info.fingerprint:
        raise UserError(f"checkpoint: training data {', '.join(files)} changed since training "
                        f"(fingerprint {data.info.fingerprint} != {trained.info.fingerprint})")
    sim = _sim_configs(files)
    pots = {json.dumps(s.potential.to_dict(), sort_keys=True) for s in sim.values()}
    temps = {s.temperature for s in sim.values()}
    if len(pots) > 1 or len(temps) > 1:
        raise UserError("checkpoint: training files mix potentials or temperatures")
    potential = next(iter(sim.values())).potential if sim else None
    sp = data.split
    mu_tr, lv_tr = trained.encode(data.x[sp.train], batch_size)
    mu_va, _ = trained.encode(data.x[sp.val], batch_size)
    return TrainingLatents(data.positions, data.gamma, sp, mu_tr, lv_tr, data.gamma[sp.train],
                           mu_va, data.gamma[sp.val], sim, potential, float(trained.info.box))


def fit_priors(names: tuple[str, ...] | list[str], latents: TrainingLatents, cfg: GenerateConfig,
               *, provenance: dict[str, Any] | None = None, progress: bool = False
               ) -> dict[str, LatentPrior]:
    """Fit the named priors on the encoded training split (flow model selection on
    the validation split). Returns name -> fitted prior, with fit times in
    ``fit_info["fit_seconds"]``."""
    out = {}
    for name in names:
        prior = build_prior(name, **cfg.prior_params(name))
        t0 = time.perf_counter()
        prior.fit(latents.mu_train, latents.logvar_train, latents.gamma_train,
                  validation=(latents.mu_val, latents.gamma_val), progress=progress)
        prior.fit_info["fit_seconds"] = time.perf_counter() - t0
        prior.provenance = dict(provenance or {})
        out[name] = prior
    return out


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
            two components (0 = an exact planar distance matrix).
        negative: (n,) share of the Gram spectrum in negative eigenvalues.
        min_distance: (n,) closest pair distance, sigma.
        overlap: (n,) min_distance < ``overlap_threshold``.
        outside: (n,) does not fit in the box or leaves [0, L].
        n_drawn: configurations generated in total (rejected ones included).
        seconds: time of each step (prior, decode, reconstruct, checks), summed over
            every draw.
        box, overlap_threshold, reject_unphysical: settings.
        placement, temperature: the placement rule and its temperature (thermal).
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
             gamma: float | None = None) -> tuple[np.ndarray, ...]:
    """Decode (at ``gamma`` for decoders that take it), reconstruct and check latents
    z (m, D); accumulates step times. ``placement``: keyword arguments of the
    placement (rule, gamma, temperature, seed, start index)."""
    t1 = time.perf_counter()
    dec = trained.decode(z, batch_size=_DECODE_BATCH, gamma=gamma)
    t2 = time.perf_counter()
    d = symmetrize_distances(dec[:, 0].astype(np.float64) * scale)  # input units -> sigma
    rec = reconstruct_configurations(d, box, **placement)
    t3 = time.perf_counter()
    pos = rec.positions
    if pos.shape[1] > 1:
        dmin = pair_distances(pos).min(axis=1)
    else:
        dmin = np.full(pos.shape[0], np.inf)
    out_of_box = ~rec.fits | np.any((pos < 0) | (pos > box), axis=(1, 2))
    t4 = time.perf_counter()
    for k, dt in (("decode", t2 - t1), ("reconstruct", t3 - t2), ("checks", t4 - t3)):
        seconds[k] = seconds.get(k, 0.0) + dt
    return (pos, rec.embedding.residual, rec.embedding.negative, dmin, dmin < overlap,
            out_of_box)


def model_temperature(trained) -> float:
    """The temperature of the ensemble a model was trained on (from its training
    files' simulation configs).

    Raises:
        UserError: the files record no temperature, or several.
    """
    temps = {s.temperature for s in _sim_configs(list(trained.info.files)).values()}
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
        progress: progress bar (shown for large n only).

    Raises:
        UserError: the prior refuses gamma, or rejection finds too few physical
            configurations.
    """
    from tqdm.auto import tqdm

    from vae.data import length_scale

    _require_distance_model(trained)
    if not _is_int(n) or n < 0:
        raise UserError(f"n: must be a non-negative integer, got {n!r}")
    gamma_key = prior.check_gamma(gamma)  # one check (and warning) for the whole set
    if placement not in PLACEMENTS:
        raise UserError(f"placement: unknown rule {placement!r} ({', '.join(PLACEMENTS)})")
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
                            {**place_kw, "start": a}, gamma_key)
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
        temperature=None if temperature is None else float(temperature))


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
        **({} if first.temperature is None else {"temperature": first.temperature}),
    }
    all_attrs = {**base, **(attrs or {})}
    extra = {"gram_residual": cat("residual"), "gram_negative": cat("negative"),
             "min_distance": cat("min_distance"),
             "overlap": cat("overlap").astype(np.float64),
             "outside": cat("outside").astype(np.float64)}
    if xyz is not None and Path(xyz).exists() and not overwrite:
        raise UserError(f"--xyz: {xyz} exists (use --overwrite to replace it)")
    out = write_dataset(path, positions, gam, all_attrs, energy=energy, extra=extra,
                        overwrite=overwrite)
    if xyz is not None:
        write_xyz(xyz, positions, box=first.box, energy=energy, gamma=gam,
                  overwrite=overwrite)
    return out


# ---------------------------------------------------------------------------------
# optional post-processing (NOT generation): a short Monte Carlo run from each output
STREAM_RELAX = 7  # sampler seed stream of the relaxation (distinct from mcsim's 0-4)


def relax_configurations(positions: np.ndarray, sim: SimConfig, gamma: float, sweeps: int,
                         *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Post-processing, not generation: run ``sweeps`` Metropolis sweeps of the
    training protocol (same potential, temperature, step, hard walls) starting from
    each configuration. Reported separately (``<prior>+mc<K>``) and compared with the
    same K sweeps from uniform random starts, so that the value of the generated
    start is visible.

    Configuration k uses the generator ``seed_states(seed, 7, gamma, k, 1)`` (stream
    7 of :mod:`mcsim.sampler`'s scheme). Particles outside the box stay subject to
    the walls: moves that end outside are rejected.

    Returns:
        (positions (M, N, 2), energies (M,), seconds).
    """
    from mcsim.sampler import Chain, seed_states

    pos = np.asarray(positions, np.float64)
    cfg = sim.replace(sample_every=int(sweeps))
    states = seed_states(int(seed), STREAM_RELAX, float(gamma), 0, pos.shape[0])
    out = np.empty_like(pos)
    energy = np.empty(pos.shape[0])
    t0 = time.perf_counter()
    for k in range(pos.shape[0]):
        chain = Chain.from_state(cfg, gamma, {
            "x": pos[k, :, 0], "y": pos[k, :, 1], "rng": states[k],
            "delta": np.array(sim.delta), "equilibrated": np.array(True)})
        res = chain.produce(1)
        out[k], energy[k] = res.positions[0], res.energy[0]
    return out, energy, time.perf_counter() - t0


# ---------------------------------------------------------------------------------
# judging against Monte Carlo
@dataclass(frozen=True)
class Distance:
    """W1 and JS distances between two samples of one observable, with bootstrap
    errors (see the module docstring)."""

    w1: float
    w1_err: float
    js: float
    js_err: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _w1_hist(ca: np.ndarray, cb: np.ndarray, width: float) -> float:
    """W1 of two histograms on the same uniform grid: sum |CDF_a - CDF_b| * width."""
    fa = np.cumsum(ca) / ca.sum()
    fb = np.cumsum(cb) / cb.sum()
    return float(np.abs(fa - fb).sum() * width)


def _js_counts(p: np.ndarray, q: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(p.astype(np.float64), q.astype(np.float64), base=2.0))


def _per_config_counts(values: np.ndarray, edges: np.ndarray,
                       dtype: type = np.float64) -> np.ndarray:
    """(M, B) histogram counts of each row of values (M, K) on ``edges``; values
    outside go to the first / last bin (edges are chosen to cover them)."""
    m = values.shape[0]
    nb = edges.size - 1
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, nb - 1)
    flat = (np.arange(m)[:, None] * nb + idx).ravel()
    return np.bincount(flat, minlength=m * nb).reshape(m, nb).astype(dtype)


class _Observable:
    """Per-configuration values (pair distances or heights, pooled over particles) of
    several sets: exact W1 of the pooled samples; for bootstrap replicates, W1 from
    per-configuration histograms on a shared 1000-bin grid (replicate = weighted sum
    of rows), and JS on the coarse bins."""

    def __init__(self, sets: dict[str, np.ndarray], fine_lo: float, fine_hi: float,
                 coarse: np.ndarray, n_fine: int = 1000) -> None:
        self.values = {k: np.sort(v.ravel()) for k, v in sets.items()}
        lo = min(fine_lo, *(float(v[0]) for v in self.values.values() if v.size))
        hi = max(fine_hi, *(float(v[-1]) for v in self.values.values() if v.size))
        hi = hi + 1e-9 * max(1.0, abs(hi))
        self.fine = np.linspace(lo, hi, n_fine + 1)
        self.width = float(self.fine[1] - self.fine[0])
        self.coarse = np.concatenate([[-np.inf], coarse, [np.inf]])
        self.fine_counts = {k: _per_config_counts(v, self.fine, np.float32)
                            for k, v in sets.items()}
        self.coarse_counts = {k: _per_config_counts(v, self.coarse) for k, v in sets.items()}

    def exact(self, a: str, b: str) -> tuple[float, float]:
        """(W1 of the pooled samples (exact), JS on the coarse bins)."""
        from scipy.stats import wasserstein_distance

        w1 = float(wasserstein_distance(self.values[a], self.values[b]))
        return w1, _js_counts(self.coarse_counts[a].sum(0), self.coarse_counts[b].sum(0))

    def replicate(self, a: str, b: str, weights_a: np.ndarray, weights_b: np.ndarray
                  ) -> tuple[float, float]:
        """(binned W1, JS) for bootstrap weights (counts of each configuration)."""
        ha = weights_a.astype(np.float32) @ self.fine_counts[a]
        hb = weights_b.astype(np.float32) @ self.fine_counts[b]
        pa = weights_a @ self.coarse_counts[a]
        pb = weights_b @ self.coarse_counts[b]
        return _w1_hist(ha.astype(np.float64), hb.astype(np.float64), self.width), \
            _js_counts(pa, pb)


def compare_sets(sets: dict[str, dict[str, np.ndarray]], reference: str, box: float, *,
                 n_boot: int = 200, seed: int = 0) -> dict[str, dict[str, Distance]]:
    """Distances of every set to the reference set, for energy, p(r) and rho(y).

    Args:
        sets: name -> {"positions": (M, N, 2) sigma, "energy": (M,) epsilon}.
        reference: the name of the reference (MC) set.
        box: L, sigma.
        n_boot: bootstrap replicates (each set resampled independently).
        seed: bootstrap seed.

    Returns:
        name -> {"energy" | "pair_distance" | "height": :class:`Distance`} for every
        set except the reference.
    """
    from scipy.stats import wasserstein_distance

    ref = sets[reference]
    r_coarse = np.linspace(0.0, box * math.sqrt(2.0), 101)
    y_coarse = np.linspace(0.0, box, 41)
    pd = _Observable({k: pair_distances(v["positions"]) for k, v in sets.items()},
                     0.0, box * math.sqrt(2.0), r_coarse)
    hy = _Observable({k: v["positions"][..., 1] for k, v in sets.items()}, 0.0, box, y_coarse)
    e_ref = np.asarray(ref["energy"], np.float64)
    edges = energy_bin_edges(e_ref, 30)

    def e_dist(ea, eb) -> tuple[float, float]:
        ca = np.histogram(ea, edges)[0]
        cb = np.histogram(eb, edges)[0]
        return float(wasserstein_distance(ea, eb)), _js_counts(ca, cb)

    out: dict[str, dict[str, Distance]] = {}
    for k, v in sets.items():
        if k == reference:
            continue
        e = np.asarray(v["energy"], np.float64)
        m_a, m_b = e.size, e_ref.size
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0xB0,)))
        boots = np.empty((n_boot, 6))
        for r in range(n_boot):
            ia = rng.integers(0, m_a, m_a)
            ib = rng.integers(0, m_b, m_b)
            wa = np.bincount(ia, minlength=m_a).astype(np.float64)
            wb = np.bincount(ib, minlength=m_b).astype(np.float64)
            boots[r, 0:2] = e_dist(e[ia], e_ref[ib])
            boots[r, 2:4] = pd.replicate(k, reference, wa, wb)
            boots[r, 4:6] = hy.replicate(k, reference, wa, wb)
        err = boots.std(axis=0, ddof=1)
        full = (*e_dist(e, e_ref), *pd.exact(k, reference), *hy.exact(k, reference))
        out[k] = {
            "energy": Distance(full[0], float(err[0]), full[1], float(err[1])),
            "pair_distance": Distance(full[2], float(err[2]), full[3], float(err[3])),
            "height": Distance(full[4], float(err[4]), full[5], float(err[5])),
        }
    return out


def sampler_rate(sim: SimConfig, gamma: float, n: int, *, n_threads: int = 1,
                 seed: int | None = None) -> tuple[float, Any]:
    """Time ``n`` samples of the sampler with the protocol ``sim`` (after a short
    warm-up that compiles the kernels). Returns (configurations per second, Samples)."""
    from mcsim.sampler import sample

    s = sim if seed is None else sim.replace(seed=int(seed))
    sample(s.replace(sweeps=1, equil_sweeps=1), gamma, 1, n_threads=n_threads)  # compile
    t0 = time.perf_counter()
    out = sample(s, gamma, n, n_threads=n_threads)
    dt = time.perf_counter() - t0
    return (n / dt if dt > 0 else math.inf), out


# ---------------------------------------------------------------------------------
# report
_OBS = (("energy", "E"), ("pair_distance", "p(r)"), ("height", "rho(y)"))


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else (math.inf if a > 0 else 1.0)


def markdown_table(summary: dict[str, Any]) -> str:
    """The distance table of a :func:`run_generation` summary, as Markdown: per gamma
    the MC-vs-MC floor (absolute values), then each prior (distance / floor), then any
    post-processed rows (``<prior>+mc<K>``; not generation)."""
    lines = [
        "| gamma | set | E W1 (eps) | E W1/floor | E JS | E JS/floor | p(r) W1/floor | "
        "p(r) JS/floor | rho(y) W1/floor | rho(y) JS/floor | unphysical | median U/N |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def num(v: float) -> str:
        return f"{v:.3g}" if abs(v) < 1e5 else f"{v:.1e}"

    for gk, gres in summary["gammas"].items():
        fl = gres["floor"]
        lines.append(
            f"| {gk} | MC vs MC (floor) | {num(fl['energy']['w1'])} ± "
            f"{fl['energy']['w1_err']:.2g} | 1 | {fl['energy']['js']:.3g} ± "
            f"{fl['energy']['js_err']:.2g} | 1 | 1 ({fl['pair_distance']['w1']:.3g} sigma) | "
            f"1 ({fl['pair_distance']['js']:.3g}) | 1 ({fl['height']['w1']:.3g} sigma) | "
            f"1 ({fl['height']['js']:.3g}) | {gres['mc_unphysical_fraction']:.1%} | "
            f"{gres['mc_mean_energy_per_particle']:.3f} (mean) |")
        rows = list(gres["priors"].items()) + list(gres.get("postprocessed", {}).items())
        for name, pr in rows:
            d, r = pr["distances"], pr["ratios"]
            label = name if "+" not in name else f"{name} (post-processed)"
            lines.append(
                f"| {gk} | {label} | {num(d['energy']['w1'])} ± {d['energy']['w1_err']:.2g} | "
                f"**{num(r['energy_w1'])}** | {d['energy']['js']:.3g} ± "
                f"{d['energy']['js_err']:.2g} | {num(r['energy_js'])} | "
                f"{num(r['pair_distance_w1'])} | {num(r['pair_distance_js'])} | "
                f"{num(r['height_w1'])} | {num(r['height_js'])} | "
                f"{pr['generated']['unphysical_fraction']:.1%} | "
                f"{num(pr['generated']['median_energy_per_particle'])} |")
    return "\n".join(lines)


def _markdown_report(summary: dict[str, Any]) -> str:
    cfg = summary["config"]
    sp = summary["speed"]
    tg = summary["targets"]
    out = [
        "# Generation judged against Monte Carlo",
        "",
        f"Checkpoint `{summary['checkpoint']['path']}` (sha256 "
        f"{summary['checkpoint']['fingerprint']}, data {summary['checkpoint']['data_fingerprint']}"
        f"); n = {summary['n_per_gamma']} per gamma and prior; reference: "
        f"{summary['reference']}; floor: {summary['floor_source']}; "
        f"{cfg['n_boot']} bootstrap replicates; seed {cfg['seed']}; reject unphysical: "
        f"{cfg['reject_unphysical']}.",
        "",
        "Distances to the held-out MC set (W1 in epsilon for E; ratios are distance / the "
        "same distance between two independent MC sets of the same size). Unphysical = a "
        f"pair closer than {cfg['overlap']:g} sigma or outside the box.",
        "",
        markdown_table(summary),
        "",
        "## Targets",
        "",
    ]
    for gk, v in tg["per_gamma"].items():
        out.append(f"- gamma {gk}: best prior by energy W1 = **{v['best_prior']}**, "
                   f"W1/floor = {v['best_ratio']:.3g} (target <= 3: "
                   f"{'met' if v['met'] else 'NOT met'})")
    out += [
        f"- energy W1 within 3x floor at every gamma: "
        f"**{'met' if tg['energy_w1_all_gammas'] else 'NOT met'}**",
        f"- speed: generation {sp['generation_rate_per_s']:.4g} configurations/s "
        f"(median over priors and gammas; prior sample + decode + reconstruct + checks) vs "
        f"sampler {sp['sampler_rate_per_s']:.4g}/s ({sp['sampler_protocol']}), "
        f"{sp['threads']} thread(s): **{sp['ratio']:.3g}x** (target >= 1000x: "
        f"{'met' if sp['ratio'] >= 1000 else 'NOT met'})",
        "",
        "Generation rate per prior (configurations/s, median over gammas): " + ", ".join(
            f"{k} {v:.4g}" for k, v in sp["per_prior_rate_per_s"].items()) + ".",
    ]
    if cfg.get("relax_sweeps"):
        k = cfg["relax_sweeps"]
        rates = {}
        for gres in summary["gammas"].values():
            for name, pr in gres.get("postprocessed", {}).items():
                rates.setdefault(name, []).append(pr["generated"]["rate_per_s"])
        out += [
            "",
            f"Post-processed rows (`<prior>+mc{k}`) are NOT generation: each generated "
            f"configuration was followed by {k} Metropolis sweeps of the training protocol; "
            f"`uniform+mc{k}` is the control, the same {k} sweeps from uniform random starts. "
            "Rates (configurations/s incl. generation, median over gammas): " + ", ".join(
                f"{name} {float(np.median(v)):.4g}" for name, v in rates.items()) + ".",
        ]
    return "\n".join(out) + "\n"


_COLORS = {"normal": "#7f7f7f", "pca": "#9467bd", "gmm": "#2ca02c", "buffer": "#d62728",
           "flow": "#1f77b4", "uniform": "#000000"}


def _style(name: str) -> dict[str, Any]:
    base = name.split("+")[0]
    style: dict[str, Any] = {"color": _COLORS.get(base), "lw": 1.2}
    if "+" in name:
        style["ls"] = ":" if base == "uniform" else "-"
    return style


def plot_gamma_figure(gamma: float, reference: np.ndarray, ref_energy: np.ndarray,
                      generated: dict[str, tuple[np.ndarray, np.ndarray]], box: float, *,
                      floor: tuple[np.ndarray, np.ndarray] | None = None,
                      overlap: float = 0.8, axs=None, title: str = ""):
    """Five panels for one gamma: energy per particle, p(r) over the whole range, p(r)
    at short range, the closest-pair distance per configuration, and rho(y). The MC
    reference is filled grey, the floor MC set dashed black, each generated set a
    coloured line.

    Args:
        gamma: the field.
        reference: (M, N, 2) MC positions, sigma; ``ref_energy`` (M,) their energies.
        generated: name -> (positions (M', N, 2), energies (M',)).
        box: L, sigma.
        floor: (positions, energies) of the second MC set, or None.
        overlap: the overlap threshold, marked in the short-range panels.
        axs: five matplotlib axes, or None for a new figure.

    Returns:
        The axes.
    """
    from mcsim.observables import pair_distance_distribution
    from reconstruct.metrics import height_profile

    if axs is None:
        from matplotlib.figure import Figure

        axs = Figure(figsize=(19, 3.8), layout="constrained").subplots(1, 5)
    n_part = reference.shape[1]
    e_ref = ref_energy / n_part
    lo, hi = np.quantile(e_ref, [0.002, 0.998])
    pad = 0.25 * (hi - lo)
    e_edges = np.linspace(lo - pad, hi + pad, 50)
    short = np.linspace(0, 4, 81)
    dmin_edges = np.linspace(0, 2, 81)

    def draw(pos, energy, label, filled=False, **kw):
        e = energy / n_part
        off = float(np.mean(~((e >= e_edges[0]) & (e <= e_edges[-1]))))
        lab = label + (f" ({off:.0%} off scale)" if off > 0.005 else "")
        d = pair_distances(pos)
        r, p, _ = pair_distance_distribution(pos, box, bins=100)
        prof = height_profile(pos, box, 40)
        h_e = np.histogram(e, e_edges)[0] / max(len(e), 1) / np.diff(e_edges)
        h_s = np.histogram(d.ravel(), short)[0] / max(d.size, 1) / np.diff(short)
        h_m = np.histogram(d.min(axis=1), dmin_edges)[0] / max(len(d), 1) / np.diff(dmin_edges)
        if filled:
            kw = {"color": "0.8"}
            axs[0].stairs(h_e, e_edges, fill=True, label=lab, **kw)
            axs[1].fill_between(r, p, label=label, **kw)
            axs[2].stairs(h_s, short, fill=True, label=label, **kw)
            axs[3].stairs(h_m, dmin_edges, fill=True, label=label, **kw)
            axs[4].fill_between(prof.centers, prof.rho, label=label, **kw)
            return
        axs[0].stairs(h_e, e_edges, label=lab, **kw)
        axs[1].plot(r, p, label=label, **kw)
        axs[2].stairs(h_s, short, label=label, **kw)
        axs[3].stairs(h_m, dmin_edges, label=label, **kw)
        axs[4].plot(prof.centers, prof.rho, label=label, **kw)

    draw(reference, ref_energy, "MC (held out)", filled=True)
    if floor is not None:
        draw(floor[0], floor[1], "MC (floor set)", color="k", ls="--", lw=1)
    for name, (pos, energy) in generated.items():
        draw(pos, energy, name, **_style(name))
    t = f"{title}gamma = {gamma:g}: "
    axs[0].set(xlabel="U / N (epsilon)", ylabel="density", title=t + "energy")
    axs[1].set(xlabel="r (sigma)", ylabel="p(r)", title="pair distances")
    axs[2].set(xlabel="r (sigma)", ylabel="p(r)", title="pair distances, r < 4")
    axs[3].set(xlabel="min_ij r_ij (sigma)", ylabel="density",
               title="closest pair per configuration")
    for ax in axs[2:4]:
        ax.axvline(overlap, color="0.5", lw=0.6, ls=":")
    axs[4].set(xlabel="y (sigma)", ylabel="rho(y) (sigma^-2)", title="height profile")
    axs[0].legend(fontsize=7)
    return axs


# ---------------------------------------------------------------------------------
# the whole run
def _gamma_label(g: float) -> str:
    return f"{g:g}"


def _positions_at(files: list[Path], gamma: float) -> tuple[np.ndarray, float]:
    chunks, box = [], None
    for f in files:
        ds = read_dataset(f)
        sel = np.isclose(ds.gamma, gamma, rtol=1e-9, atol=1e-12)
        if box is None:
            box = ds.box
        elif not math.isclose(ds.box, box, rel_tol=1e-12):
            raise UserError(f"--mc: files mix box sides ({box:g}, {ds.box:g})")
        chunks.append(ds.positions[sel])
    return (np.concatenate(chunks) if chunks else np.zeros((0, 0, 2))), float(box or 0)


def _clean(obj: Any) -> Any:
    """JSON-safe copy (inf/NaN as strings)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def run_generation(checkpoint: Path, out_dir: Path, cfg: GenerateConfig, *,
                   mc_files: list[Path] | None = None, progress: bool = True,
                   overwrite: bool = False,
                   priors: dict[str, LatentPrior] | None = None) -> dict[str, Any]:
    """Fit the priors, generate at every gamma, judge against held-out MC, write the
    report (module docstring) and return its summary dict.

    Args:
        checkpoint: the VAE checkpoint (``best.pt``).
        out_dir: report folder (created; an existing ``generate.json`` there is only
            replaced with ``overwrite``).
        cfg: settings.
        mc_files: datasets to take the MC reference from instead of the test split.
        progress: progress bars.
        overwrite: replace an earlier report in ``out_dir``.
        priors: already fitted priors by name (fitted here when missing).

    Returns:
        The summary (also in ``generate.json``), with ``table`` (Markdown) and
        ``figures`` (paths).
    """
    import torch
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    from mcsim.sampler import threads as numba_threads
    from vae.checkpoint import load_model

    out_dir = Path(out_dir)
    report = out_dir / "generate.json"
    if report.exists() and not overwrite:
        raise UserError(f"--out: {report} exists (use --overwrite to replace it)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out: cannot create {out_dir}: {exc.strerror}") from None
    ck_path = Path(checkpoint)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        with numba_threads(cfg.threads), threadpool_limits(limits=cfg.threads):
            return _run(ck_path, out_dir, cfg, mc_files, progress, overwrite, priors,
                        load_model, tqdm)
    finally:
        torch.set_num_threads(old_threads)


def _run(ck_path, out_dir, cfg, mc_files, progress, overwrite, priors, load_model, tqdm):
    t_start = time.perf_counter()
    trained = load_model(ck_path)
    _require_distance_model(trained)
    latents = training_latents(trained)
    box = latents.box
    gammas = tuple(float(g) for g in (cfg.gammas or trained.info.gammas))
    if latents.potential is None:
        raise UserError("checkpoint: the training files record no simulation config "
                        "(potential unknown); cannot compute energies")
    ck_fp = checkpoint_fingerprint(ck_path)
    provenance = {"checkpoint": str(ck_path), "checkpoint_fingerprint": ck_fp,
                  "data_fingerprint": trained.info.fingerprint,
                  "data_files": list(trained.info.files), "fitted_on": "train split"}
    fitted = dict(priors or {})
    missing = [p for p in cfg.priors if p not in fitted]
    fitted.update(fit_priors(missing, latents, cfg, provenance=provenance, progress=progress))
    (out_dir / "priors").mkdir(exist_ok=True)
    for name in cfg.priors:
        fitted[name].save(out_dir / "priors" / f"{name}.npz", overwrite=True)

    # the n per gamma: equal sizes for generated, reference and floor sets
    ref_sets: dict[float, np.ndarray] = {}
    avail = []
    for g in gammas:
        for name in cfg.priors:
            fitted[name].check_gamma(g)  # refuse unseen gammas before any work
        if mc_files:
            pos, mc_box = _positions_at([Path(f) for f in mc_files], g)
            if pos.size and not math.isclose(mc_box, box, rel_tol=1e-12):
                raise UserError(f"--mc: box L={mc_box:g} differs from the model's {box:g}")
        else:
            pos = latents.held_out("test", g)
        if pos.shape[0] < 2:
            raise UserError(f"gamma={g:g}: no held-out MC configurations to judge against "
                            "(not a trained gamma, and no --mc file holds it)")
        ref_sets[g] = pos
        avail.append(pos.shape[0])
        if cfg.floor == "validation":
            avail.append(latents.held_out("val", g).shape[0])
        elif g not in latents.sim:
            raise UserError(f"gamma={g:g}: the training files record no simulation config "
                            "for this gamma; use floor='validation'")
    n = min(cfg.n, *avail)
    if cfg.relax_sweeps and any(g not in latents.sim for g in gammas):
        raise UserError("relax_sweeps: the training files record no simulation config")
    pot = latents.potential
    results: dict[str, Any] = {}
    figures: list[str] = []
    per_prior_rates: dict[str, list[float]] = {p: [] for p in cfg.priors}
    sampler_rates: list[float] = []
    extra_attrs = {"checkpoint": str(ck_path), "checkpoint_fingerprint": ck_fp,
                   "data_fingerprint": trained.info.fingerprint,
                   "model_epoch": int(trained.epoch), "vae_config": trained.config.to_json(),
                   "potential": json.dumps(pot.to_dict(), sort_keys=True)}
    sets_dir = out_dir / "sets"
    if cfg.write_sets:
        sets_dir.mkdir(exist_ok=True)
    # warm-up: compile / load the numba kernels so that no timing includes it
    generate_configurations(trained, fitted[cfg.priors[0]], 4, gammas[0], seed=cfg.seed,
                            placement=cfg.placement)
    k_relax = cfg.relax_sweeps
    bar = tqdm(total=len(gammas) * (len(cfg.priors) + 1), desc="generate+judge",
               disable=not progress, dynamic_ncols=True)
    with bar:
        for g in gammas:
            gl = _gamma_label(g)
            ref = ref_sets[g][:n]
            e_ref = np.asarray(total_energy(ref, g, pot), np.float64)
            # floor set and sampler timing
            sim = latents.sim.get(g)
            bar.set_postfix_str(f"gamma={gl} MC floor")
            if cfg.floor == "sampler":
                if sim.seed == cfg.mc_seed:
                    raise UserError(f"mc_seed: {cfg.mc_seed} equals the training data's seed; "
                                    "the floor set would not be independent")
                rate, samples = sampler_rate(sim, g, n, n_threads=cfg.threads, seed=cfg.mc_seed)
                floor_pos = samples.positions
                floor_src = (f"fresh MC, {sim.protocol} protocol, {sim.sweeps} sweeps, "
                             f"seed {cfg.mc_seed}")
            else:
                floor_pos = latents.held_out("val", g)[:n]
                rate = math.nan
                if sim is not None:
                    rate, _ = sampler_rate(sim, g, cfg.speed_batch, n_threads=cfg.threads,
                                           seed=cfg.mc_seed)
                floor_src = "validation split"
            if math.isfinite(rate):
                sampler_rates.append(rate)
            e_floor = np.asarray(total_energy(floor_pos, g, pot), np.float64)
            bar.update(1)
            gen: dict[str, GeneratedSet] = {}
            for name in cfg.priors:
                bar.set_postfix_str(f"gamma={gl} {name}")
                gs = generate_configurations(
                    trained, fitted[name], n, g, seed=cfg.seed, potential=pot,
                    overlap=cfg.overlap, reject_unphysical=cfg.reject_unphysical,
                    max_draw_factor=cfg.max_draw_factor, placement=cfg.placement)
                gen[name] = gs
                per_prior_rates[name].append(gs.rate)
                if cfg.write_sets:
                    p = sets_dir / f"{name}_gamma_{gl}.h5"
                    write_generated(p, gs, attrs={**extra_attrs,
                                                  "prior_file": f"priors/{name}.npz"},
                                    xyz=p.with_suffix(".xyz") if cfg.xyz else None,
                                    overwrite=True)
                bar.update(1)
            # post-processing rows (not generation): K sweeps from each output, and the
            # control: K sweeps from uniform starts
            post: dict[str, dict[str, Any]] = {}
            if k_relax:
                bar.set_postfix_str(f"gamma={gl} +mc{k_relax}")
                for name, gs in gen.items():
                    rp, re_, rt = relax_configurations(gs.positions, sim, g, k_relax,
                                                       seed=cfg.seed)
                    post[f"{name}+mc{k_relax}"] = {
                        "positions": rp, "energy": re_, "relax_seconds": rt,
                        "seconds": gs.generation_seconds + rt, "from": name}
                t0 = time.perf_counter()
                from mcsim.sampler import sample

                ctl = sample(sim.replace(sweeps=k_relax, seed=cfg.mc_seed + 1), g, n,
                             n_threads=cfg.threads)
                dt = time.perf_counter() - t0
                post[f"uniform+mc{k_relax}"] = {
                    "positions": ctl.positions, "energy": ctl.energy, "relax_seconds": dt,
                    "seconds": dt, "from": "uniform random start"}
            if cfg.write_sets and cfg.floor == "sampler":
                write_dataset(sets_dir / f"mc_floor_gamma_{gl}.h5", floor_pos, g,
                              {**sim.replace(seed=cfg.mc_seed, gammas=(g,),
                                             n_samples=n).file_attrs(),
                               "purpose": "MC floor set for generate"},
                              energy=e_floor, overwrite=True)
            sets = {"mc": {"positions": ref, "energy": e_ref},
                    "floor": {"positions": floor_pos, "energy": e_floor}}
            sets.update({k: {"positions": v.positions, "energy": v.energy}
                         for k, v in gen.items()})
            sets.update({k: {"positions": v["positions"], "energy": v["energy"]}
                         for k, v in post.items()})
            dist = compare_sets(sets, "mc", box, n_boot=cfg.n_boot, seed=cfg.seed)
            fl = dist.pop("floor")
            mc_unph = float(np.mean(pair_distances(ref).min(axis=1) < cfg.overlap))
            gres = {"gamma": g, "n": n, "floor_source": floor_src,
                    "floor": {k: v.to_dict() for k, v in fl.items()},
                    "mc_mean_energy_per_particle": float(e_ref.mean() / ref.shape[1]),
                    "floor_mean_energy_per_particle": float(e_floor.mean() / ref.shape[1]),
                    "mc_unphysical_fraction": mc_unph,
                    "sampler_rate_per_s": rate, "priors": {}, "postprocessed": {}}
            for name, d in dist.items():
                ratios = {}
                for obs, _ in _OBS:
                    ratios[f"{obs}_w1"] = _ratio(d[obs].w1, fl[obs].w1)
                    ratios[f"{obs}_js"] = _ratio(d[obs].js, fl[obs].js)
                entry: dict[str, Any] = {"distances": {k: v.to_dict() for k, v in d.items()},
                                         "ratios": ratios}
                pos_k, e_k = sets[name]["positions"], sets[name]["energy"]
                med_e = float(np.median(e_k) / ref.shape[1])
                if name in gen:
                    entry["generated"] = {**gen[name].summary(),
                                          "median_energy_per_particle": med_e}
                    gres["priors"][name] = entry
                else:
                    pp = post[name]
                    dmin = pair_distances(pos_k).min(axis=1)
                    outside = np.any((pos_k < 0) | (pos_k > box), axis=(1, 2))
                    entry["generated"] = {
                        "from": pp["from"], "sweeps": k_relax, "n": int(len(e_k)),
                        "unphysical_fraction": float(np.mean((dmin < cfg.overlap) | outside)),
                        "median_energy_per_particle": med_e,
                        "relax_seconds": pp["relax_seconds"],
                        "rate_per_s": len(e_k) / pp["seconds"] if pp["seconds"] > 0
                        else math.inf}
                    gres["postprocessed"][name] = entry
            results[gl] = gres
            from matplotlib.figure import Figure

            rows = 2 if post else 1
            fig = Figure(figsize=(19, 3.8 * rows), layout="constrained")
            grid = np.atleast_2d(fig.subplots(rows, 5))
            plot_gamma_figure(g, ref, e_ref, {k: (v.positions, v.energy) for k, v in gen.items()},
                              box, floor=(floor_pos, e_floor), overlap=cfg.overlap,
                              axs=grid[0], title="generated, ")
            if post:
                plot_gamma_figure(g, ref, e_ref,
                                  {k: (v["positions"], v["energy"]) for k, v in post.items()},
                                  box, floor=(floor_pos, e_floor), overlap=cfg.overlap,
                                  axs=grid[1], title=f"+{k_relax} MC sweeps, ")
            fpath = out_dir / f"fig_gamma_{gl}.png"
            with atomic_output(fpath, overwrite=True) as tmp:
                fig.savefig(tmp, dpi=100, format="png")
            figures.append(str(fpath))
    per_prior = {k: float(np.median(v)) for k, v in per_prior_rates.items() if v}
    gen_rate = float(np.median([r for v in per_prior_rates.values() for r in v]))
    samp = float(np.median(sampler_rates)) if sampler_rates else math.nan
    sim0 = next(iter(latents.sim.values()))
    speed = {
        "generation_rate_per_s": gen_rate,
        "per_prior_rate_per_s": per_prior,
        "sampler_rate_per_s": samp,
        "ratio": gen_rate / samp if samp > 0 else math.nan,
        "threads": cfg.threads,
        "sampler_protocol": (f"{sim0.protocol}, {sim0.sweeps} sweeps from a uniform start, "
                             f"delta {sim0.delta:g}, N={sim0.n_particles}"
                             if sim0.protocol == "independent" else sim0.protocol),
        "sampler_timed_configs": n if cfg.floor == "sampler" else cfg.speed_batch,
        "prior_fit_seconds": {k: fitted[k].fit_info.get("fit_seconds") for k in cfg.priors},
    }
    per_gamma = {}
    for gl, gres in results.items():
        best = min(gres["priors"], key=lambda k: gres["priors"][k]["ratios"]["energy_w1"])
        br = gres["priors"][best]["ratios"]["energy_w1"]
        per_gamma[gl] = {"best_prior": best, "best_ratio": br, "met": br <= 3.0}
    targets = {"per_gamma": per_gamma,
               "energy_w1_all_gammas": all(v["met"] for v in per_gamma.values()),
               "speed_1000x": bool(speed["ratio"] >= 1000)}
    summary: dict[str, Any] = {
        "checkpoint": {"path": str(ck_path), "fingerprint": ck_fp,
                       "data_fingerprint": trained.info.fingerprint,
                       "data_files": list(trained.info.files), "epoch": int(trained.epoch)},
        "config": cfg.to_dict(),
        "n_per_gamma": n,
        "reference": "mc files " + ", ".join(map(str, mc_files)) if mc_files
        else "the model's test split",
        "floor_source": ("independent MC run with the training protocol (seed "
                         f"{cfg.mc_seed})" if cfg.floor == "sampler"
                         else "the model's validation split"),
        "potential": pot.to_dict(),
        "gammas": results,
        "speed": speed,
        "targets": targets,
        "priors": {k: {"params": fitted[k].params(), "file": str(out_dir / "priors" /
                                                                 f"{k}.npz"),
                       "fit_info": {kk: vv for kk, vv in fitted[k].fit_info.items()
                                    if kk != "history"}} for k in cfg.priors},
        "figures": figures,
        "wall_seconds": time.perf_counter() - t_start,
    }
    summary["table"] = markdown_table(summary)
    md = _markdown_report(summary)
    summary["markdown"] = md
    with atomic_output(out_dir / "generate.md", overwrite=True) as tmp:
        tmp.write_text(md)
    with atomic_output(out_dir / "generate.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(_clean(summary), indent=1, sort_keys=True))
    return summary
