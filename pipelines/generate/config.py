"""Settings of a generation run (:class:`GenerateConfig`), validated eagerly."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from mcsim.clitools import UserError
from mcsim.shared import fail, unknown_fields
from mcsim.shared import is_int as _is_int
from mcsim.shared import is_number as _is_num
from reconstruct.placement import DEFAULT_PLACEMENT, PLACEMENTS
from vae.checkpoint import DECODER_PRECISIONS
from vae.priors import PRIOR_SPECS, PRIORS

FLOORS = ("sampler", "validation")
_PROGRESS_MIN = 20_000  # show a generation progress bar above this many configurations
_DECODE_BATCH = 1024  # TrainedVAE.decode's batch
_POSITIONS_BATCH = 256  # TrainedVAE.decode_positions' batch (divides _DECODE_BATCH; the
# fastest on one thread: the 512-wide layers' activations stay in cache)


def _bad(name: str, why: str, value: Any) -> None:
    fail(name, why, value, UserError)


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
        decoder_precision: ``float32`` (default) or ``bfloat16``: the decoder's hidden
            layers in bfloat16, its output layer in float32 (decoders that place the
            particles; :meth:`vae.checkpoint.TrainedVAE.decode_positions`).
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
    decoder_precision: str = "float32"

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
        if self.decoder_precision not in DECODER_PRECISIONS:
            _bad("decoder_precision", f"must be one of {', '.join(DECODER_PRECISIONS)}",
                 self.decoder_precision)
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
        return PRIOR_SPECS[name].params_from(self)

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
        unknown = unknown_fields(cls, d, UserError)
        if unknown:
            raise UserError(f"{unknown[0]}: unknown setting")
        d = dict(d)
        for k in ("priors", "gammas", "flow_hidden"):
            if isinstance(d.get(k), list):
                d[k] = tuple(d[k])
        return cls(**d)


