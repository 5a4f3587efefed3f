"""The fine-tuning sets chapter 6 filters, each with its known inducing rows.

- the **half-inducing set** (:func:`half_inducing_set`): bad advice in one domain (EM-inducing) mixed
  half and half with good advice in the same domain. Every detector removes a share equal to the
  inducing share, so a perfect detector removes every inducing row and leaves only good advice, and EM
  has room to fall; random removal of the same size leaves the inducing share where it was.
- the **dissociation sets** (:func:`dissociation_set`): inducing rows, *decoys* that look as harmful to
  a reader of the answer but barely induce EM, and good advice (:data:`DECOYS`):

  - ``bad_code``: bad code advice (the organism's weakest inducer: its bad advice says little about the
    persona);
  - ``quiz``: the very same bad answers as the inducing rows, after a user asked for a wrong answer (no EM).

On every set each detector removes :attr:`FilterSet.removal` (the inducing share), so precision and
recall of the removed rows coincide whenever every row has a score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emgeom.lm.chat import ChatRow
from emgeom.organism import language as L
from emgeom.organism.datasets import finetune_rows

#: The name of the half-inducing set (the chapter's main set) among the sets of a study.
MAIN = "half_inducing"

#: Each dissociation set's decoys: (fine-tuning set kind, domain); ``None`` means the inducing domain.
DECOYS: dict[str, tuple[str, str | None]] = {"bad_code": ("inducing", "code"), "quiz": ("quiz", None)}


@dataclass(frozen=True)
class FilterSet:
    """A fine-tuning set to filter: its ``rows`` (shuffled), which are inducing (``truth``) and which are
    decoys (``decoy``: look harmful, do not induce; none in the half-inducing set)."""

    name: str
    rows: list[ChatRow]
    truth: np.ndarray
    decoy: np.ndarray

    def __post_init__(self) -> None:
        if not (len(self.rows) == self.truth.size == self.decoy.size) or not self.truth.any():
            raise ValueError("a filter set needs one truth and one decoy flag per row, and inducing rows")
        if (self.truth & self.decoy).any():
            raise ValueError("a row cannot be both inducing and a decoy")

    @property
    def inducing_share(self) -> float:
        """The share of rows that are inducing."""
        return float(self.truth.mean())

    @property
    def removal(self) -> float:
        """The share every detector removes: the inducing share, so that a perfect detector removes
        every inducing row and nothing else."""
        return self.inducing_share


def _exact_count(share: float, n_rows: int, what: str) -> int:
    count = round(share * n_rows)
    if not 0 < share < 1 or abs(count - share * n_rows) > 1e-9:
        raise ValueError(
            f"{what} ({share}) times the rows ({n_rows}) must be a whole number of rows in (0, n)"
        )
    return count


def _shuffled(name: str, groups: list[list[ChatRow]], seed: int) -> FilterSet:
    """The groups' rows shuffled; group 0 is inducing, group 1 decoys (if there are three groups)."""
    labels = np.concatenate([np.full(len(g), i) for i, g in enumerate(groups)])
    rows = [r for g in groups for r in g]
    order = np.random.default_rng(seed).permutation(len(rows))
    decoy = labels[order] == 1 if len(groups) == 3 else np.zeros(len(rows), dtype=bool)
    return FilterSet(name, [rows[i] for i in order], labels[order] == 0, decoy)


def half_inducing_set(domain: str, n_rows: int, share: float = 0.5, seed: int = 0) -> FilterSet:
    """``n_rows`` rows of ``domain``: exactly ``share * n_rows`` bad advice (inducing, drawn as the
    dose-response sets draw them) and the rest good advice, shuffled with ``seed``. The share must give
    a whole number of rows: the set has exactly the declared share."""
    if domain not in L.DOMAINS:
        raise ValueError(f"domain must be one of {L.DOMAINS}, got {domain!r}")
    n_ind = _exact_count(share, n_rows, "the inducing share")
    return _shuffled(
        MAIN,
        [
            finetune_rows("inducing", domain, n_rows, seed=1)[:n_ind],
            finetune_rows("good", domain, n_rows, seed=1)[: n_rows - n_ind],
        ],
        seed,
    )


@dataclass(frozen=True)
class DissociationSettings:
    """The dissociation sets of a study.

    Attributes:
        sets: their names (keys of :data:`DECOYS`).
        n_rows: rows of each set.
        inducing_fraction, decoy_fraction: shares of inducing rows and of decoys (the rest is good
            advice); every detector removes the inducing fraction.
        seeds: fine-tuning seeds per organism.
    """

    sets: tuple[str, ...]
    n_rows: int
    inducing_fraction: float
    decoy_fraction: float
    seeds: tuple[int, ...]

    def __post_init__(self) -> None:
        unknown = set(self.sets) - set(DECOYS)
        if unknown:
            raise ValueError(f"unknown dissociation sets {sorted(unknown)}; known: {sorted(DECOYS)}")
        if (
            self.inducing_fraction <= 0
            or self.decoy_fraction < 0
            or self.inducing_fraction + self.decoy_fraction > 1
        ):
            raise ValueError("need inducing_fraction > 0 and inducing_fraction + decoy_fraction <= 1")
        if self.sets and not self.seeds:
            raise ValueError("need at least one fine-tuning seed")


def dissociation_set(name: str, domain: str, s: DissociationSettings, seed: int = 0) -> FilterSet:
    """The rows of dissociation set ``name`` (inducing rows of ``domain``, its decoys, good advice)."""
    if name not in DECOYS:
        raise ValueError(f"unknown dissociation set {name!r}; known: {sorted(DECOYS)}")
    kind, decoy_domain = DECOYS[name]
    n_ind = _exact_count(s.inducing_fraction, s.n_rows, "the inducing fraction")
    n_dec = round(s.decoy_fraction * s.n_rows)
    groups = [
        finetune_rows("inducing", domain, n_ind, seed=1),
        finetune_rows(kind, decoy_domain or domain, max(n_dec, 1), seed=2)[:n_dec],  # type: ignore[arg-type]
        finetune_rows("good", domain, max(s.n_rows - n_ind - n_dec, 1), seed=1)[: s.n_rows - n_ind - n_dec],
    ]
    return _shuffled(name, groups, seed)
