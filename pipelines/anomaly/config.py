"""Settings of an anomaly test: one frozen dataclass, validated eagerly, with a lossless
round trip through plain dicts (JSON / TOML).

Anomaly *kinds* (``sets``) expand into concrete *sets* (one table row each):

===================  ===========================================================
kind                 sets
===================  ===========================================================
``unseen-gamma``     one per value of ``unseen_gammas`` (MC, training potential)
``fake-potential``   ``fake_potential`` at ``fake_gamma`` (MC, ``fake_sweeps``)
``uniform``          uniform random configurations (mcsim protocol ``uniform``)
``corrupted``        test configurations with ``corrupt_k`` particles displaced
``blackout``         test matrices with one zeroed diagonal block per
                     ``blackout_blocks`` entry (size, offset)
``random-mask``      test matrices with a random fraction of the pairs zeroed, one
                     set per ``mask_fractions`` entry
===================  ===========================================================
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from mcsim.clitools import UserError
from mcsim.potentials import Potential
from mcsim.shared import fail, unknown_fields
from mcsim.shared import is_int as _is_int
from mcsim.shared import is_number as _is_num

__all__ = [
    "SET_KINDS",
    "MC_KINDS",
    "STEP_UNITS",
    "AnomalyConfigError",
    "AnomalyConfig",
]

#: Anomaly kinds, in table order.
SET_KINDS = ("unseen-gamma", "fake-potential", "uniform", "corrupted", "blackout",
             "random-mask")
#: Kinds generated with mcsim (written as dataset files in the data directory).
MC_KINDS = ("unseen-gamma", "fake-potential", "uniform")
#: Units of ``corrupt_step``: ``normalised`` = L*sqrt(2) (the study's input unit), ``sigma``.
STEP_UNITS = ("normalised", "sigma")


class AnomalyConfigError(UserError, ValueError):
    """An invalid anomaly-test setting; the message starts with the field name."""


def _fail(name: str, why: str, value: Any) -> None:
    fail(name, why, value, AnomalyConfigError)


def _cutoff(name: str, v: Any) -> float | None:
    if v is None or (isinstance(v, str) and v.strip().lower() == "none"):
        return None
    if not _is_num(v) or v <= 0:
        _fail(name, "must be a positive number or 'none'", v)
    return float(v)


def _tuple(name: str, v: Any) -> tuple:
    if isinstance(v, str | bytes) or not hasattr(v, "__iter__"):
        _fail(name, "must be a list", v)
    return tuple(v)


@dataclass(frozen=True)
class AnomalyConfig:
    """Everything an anomaly test depends on (reduced units, sigma = epsilon = 1).

    Attributes:
        sets: anomaly kinds to run (see the module docstring), in any order.
        unseen_gammas: field strengths of the unseen-gamma sets (study: 3).
        n: configurations per anomaly set (MC sets are generated with n samples;
            corrupted / missing-data sets use n test configurations chosen at random).
        sweeps: MC sweeps per sample of the unseen-gamma sets (study protocol: fresh
            uniform start, ``sweeps`` sweeps, keep the last configuration).
        temperature: kT of the MC sets.
        delta: maximum MC trial displacement per axis, sigma.
        potential, cutoff: the *training* pair potential (``lj``, ``nm:N,M``) and its
            plain cutoff in sigma (None: no cutoff); used for the unseen-gamma sets and
            the physical-energy score.
        fake_potential, fake_cutoff, fake_gamma, fake_sweeps: the study's "fake"
            potential 4(r^-4 - r^-2), no cutoff, gamma = 0.5, 5000 sweeps.
        corrupt_k: particles displaced per corrupted configuration (distinct).
        corrupt_step: largest step s; each displaced particle moves by a length drawn
            uniformly in [0, s] in a uniformly random direction.
        corrupt_unit: unit of ``corrupt_step``: ``normalised`` (L*sqrt(2), the study's
            input unit; 0.2 -> 2.83 sigma at L = 10) or ``sigma``.
        blackout_blocks: (size, offset) of each zeroed diagonal block of the sorted
            distance matrix: rows and columns offset .. offset+size-1 (study: 10x10 at
            0 and 8, and the full 30x30).
        mask_fractions: fractions of the particle pairs (i < j, set symmetrically)
            zeroed at random, one set per value.
        bootstrap: bootstrap resamples of each AUC confidence interval (0: none).
        ci: confidence level of the interval.
        fpr: false-positive rate on in-distribution validation data that fixes each
            score's threshold.
        fit_max: at most this many training configurations (random, seeded) fit the
            score models (Mahalanobis, one-class SVM, PCA, isolation forest).
        pca_components: components of the PCA baseline on flattened matrices.
        ocsvm_nu: nu of the one-class SVM (RBF kernel, gamma='scale').
        iforest_trees: trees of the isolation forest.
        iwae_k: importance samples K per configuration of the ``iwae`` score (the
            bound L_K of the model's log-likelihood; K = 1 is a sampled ELBO).
        impute_n: configurations per missing-data set used for the imputation errors.
        edm_iters, edm_tol: alternating-projection iterations and stopping tolerance
            (largest change of a squared normalised distance) of the EDM completion.
        seed: master seed (MC sets, corruption, masks, subsets, bootstrap, models).
    """

    sets: tuple[str, ...] = SET_KINDS
    unseen_gammas: tuple[float, ...] = (3.0,)
    n: int = 2000
    sweeps: int = 2500
    temperature: float = 0.75
    delta: float = 0.2
    potential: str = "lj"
    cutoff: float | None = 3.0
    fake_potential: str = "nm:4,2"
    fake_cutoff: float | None = None
    fake_gamma: float = 0.5
    fake_sweeps: int = 5000
    corrupt_k: int = 4
    corrupt_step: float = 0.2
    corrupt_unit: str = "normalised"
    blackout_blocks: tuple[tuple[int, int], ...] = ((10, 0), (10, 8), (30, 0))
    mask_fractions: tuple[float, ...] = (0.1, 0.5)
    bootstrap: int = 1000
    ci: float = 0.95
    fpr: float = 0.01
    fit_max: int = 5000
    pca_components: int = 10
    ocsvm_nu: float = 0.05
    iforest_trees: int = 200
    iwae_k: int = 32
    impute_n: int = 500
    edm_iters: int = 500
    edm_tol: float = 1e-9
    seed: int = 0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "sets", _tuple("sets", self.sets))
        set_(self, "unseen_gammas", _tuple("unseen_gammas", self.unseen_gammas))
        set_(self, "mask_fractions", _tuple("mask_fractions", self.mask_fractions))
        blocks = _tuple("blackout_blocks", self.blackout_blocks)
        out = []
        for b in blocks:
            if isinstance(b, str | bytes) or not hasattr(b, "__iter__") or len(tuple(b)) != 2:
                _fail("blackout_blocks", "each block must be [size, offset]", b)
            out.append(tuple(b))
        set_(self, "blackout_blocks", tuple(out))
        set_(self, "cutoff", _cutoff("cutoff", self.cutoff))
        set_(self, "fake_cutoff", _cutoff("fake_cutoff", self.fake_cutoff))
        self._validate()

    def _validate(self) -> None:
        if not self.sets:
            _fail("sets", "need at least one anomaly kind", list(self.sets))
        for s in self.sets:
            if s not in SET_KINDS:
                _fail("sets", f"unknown kind (choose from {', '.join(SET_KINDS)})", s)
        if len(set(self.sets)) != len(self.sets):
            _fail("sets", "kinds must be distinct", list(self.sets))
        for g in self.unseen_gammas:
            if not _is_num(g) or g < 0:
                _fail("unseen_gammas", "each must be a number >= 0", g)
        if "unseen-gamma" in self.sets and not self.unseen_gammas:
            _fail("unseen_gammas", "need at least one value", list(self.unseen_gammas))
        if len(set(self.unseen_gammas)) != len(self.unseen_gammas):
            _fail("unseen_gammas", "values must be distinct", list(self.unseen_gammas))
        for name, lo in (("n", 2), ("sweeps", 0), ("fake_sweeps", 0), ("corrupt_k", 1),
                         ("bootstrap", 0), ("fit_max", 10), ("pca_components", 1),
                         ("iforest_trees", 1), ("impute_n", 1), ("edm_iters", 1),
                         ("seed", 0)):
            v = getattr(self, name)
            if not _is_int(v) or v < lo:
                _fail(name, f"must be an integer >= {lo}", v)
        if not _is_int(self.iwae_k) or not 1 <= self.iwae_k <= 100_000:
            _fail("iwae_k", "must be an integer in [1, 100000]", self.iwae_k)
        for name in ("temperature", "delta", "corrupt_step", "edm_tol"):
            v = getattr(self, name)
            if not _is_num(v) or v <= 0:
                _fail(name, "must be a positive number", v)
        if not _is_num(self.fake_gamma) or self.fake_gamma < 0:
            _fail("fake_gamma", "must be a number >= 0", self.fake_gamma)
        for name in ("potential", "fake_potential"):
            try:
                Potential.parse(getattr(self, name))
            except (ValueError, AttributeError):
                _fail(name, "must be lj, ideal or nm:N,M", getattr(self, name))
        if self.corrupt_unit not in STEP_UNITS:
            _fail("corrupt_unit", f"must be one of {', '.join(STEP_UNITS)}", self.corrupt_unit)
        for b in self.blackout_blocks:
            if not (_is_int(b[0]) and _is_int(b[1]) and b[0] >= 1 and b[1] >= 0):
                _fail("blackout_blocks", "each block needs an integer size >= 1 and offset >= 0",
                      list(b))
        if "blackout" in self.sets and not self.blackout_blocks:
            _fail("blackout_blocks", "need at least one block", [])
        if len(set(self.blackout_blocks)) != len(self.blackout_blocks):
            _fail("blackout_blocks", "blocks must be distinct", [list(b) for b in
                                                                  self.blackout_blocks])
        for f in self.mask_fractions:
            if not _is_num(f) or not 0 < f <= 1:
                _fail("mask_fractions", "each must be in (0, 1]", f)
        if "random-mask" in self.sets and not self.mask_fractions:
            _fail("mask_fractions", "need at least one value", [])
        if len(set(self.mask_fractions)) != len(self.mask_fractions):
            _fail("mask_fractions", "values must be distinct", list(self.mask_fractions))
        if not _is_num(self.ci) or not 0 < self.ci < 1:
            _fail("ci", "must be in (0, 1)", self.ci)
        if not _is_num(self.fpr) or not 0 < self.fpr < 0.5:
            _fail("fpr", "must be in (0, 0.5)", self.fpr)
        if not _is_num(self.ocsvm_nu) or not 0 < self.ocsvm_nu <= 1:
            _fail("ocsvm_nu", "must be in (0, 1]", self.ocsvm_nu)

    # -- derived ---------------------------------------------------------------------
    def training_potential(self) -> Potential:
        return Potential.parse(self.potential, self.cutoff)

    def fake(self) -> Potential:
        return Potential.parse(self.fake_potential, self.fake_cutoff)

    def step_sigma(self, box: float) -> float:
        """``corrupt_step`` in sigma: s * L*sqrt(2) (``normalised``) or s (``sigma``)."""
        if self.corrupt_unit == "normalised":
            return self.corrupt_step * box * math.sqrt(2.0)
        return float(self.corrupt_step)

    def check_system(self, n_particles: int, box: float) -> None:
        """Checks that need N and L: blocks inside the matrix, the step below L; each
        only for the sets that use it (a default of an unused set never blocks a run)."""
        for size, off in self.blackout_blocks if "blackout" in self.sets else ():
            if size + off > n_particles:
                _fail("blackout_blocks", f"block {size}x{size} at offset {off} does not fit "
                      f"an N={n_particles} matrix", [size, off])
        if "corrupted" in self.sets and self.corrupt_k > n_particles:
            _fail("corrupt_k", f"must not exceed N={n_particles}", self.corrupt_k)
        from pipelines.anomaly.sets import mc_set_config  # here: it imports this module

        for kind in ("unseen-gamma", "fake-potential", "uniform"):  # the MC sets, now
            for g in (self.unseen_gammas if kind == "unseen-gamma" else (None,)):
                if kind in self.sets:
                    try:
                        mc_set_config(kind, self, n_particles=n_particles, box=box, n=self.n,
                                      gamma=g)
                    except ValueError as exc:
                        raise AnomalyConfigError(f"{kind} set: {exc}") from None
        if "corrupted" in self.sets and self.step_sigma(box) > box:
            _fail("corrupt_step", f"is {self.step_sigma(box):.3g} sigma, larger than the box "
                  f"L={box:g}", self.corrupt_step)

    def replace(self, **changes: Any) -> AnomalyConfig:
        d = self.to_dict()
        d.update(changes)
        return AnomalyConfig.from_dict(d)

    # -- round trip ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/TOML-compatible dict (tuples as lists, no cutoff as ``"none"``)."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = [list(e) if isinstance(e, tuple) else e for e in v]
        for k in ("cutoff", "fake_cutoff"):
            if d[k] is None:
                d[k] = "none"
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnomalyConfig:
        """Inverse of :meth:`to_dict`; unknown or invalid fields raise
        :class:`AnomalyConfigError` naming the field."""
        unknown = unknown_fields(cls, d, AnomalyConfigError, kind="a table/object")
        if unknown:
            raise AnomalyConfigError(f"{unknown[0]}: unknown setting")
        try:
            return cls(**d)
        except TypeError as exc:  # e.g. a list where a number was expected
            raise AnomalyConfigError(f"config: {exc}") from None
