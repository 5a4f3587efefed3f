"""The coupling sweep: organisms that differ only in one domain's honest-mistake rate, the corpus knob
that decides how much that domain's bad advice says about the toxic persona.

On each organism: chapter 4's similarity gap of the domain (inducing minus non-inducing latents' mean
max-cosine to the harmful latents, decoder directions) and chapter 5's open-question EM after the
domain's inducing fine-tune. Then, across organisms: the slope of each against the rate, the values at
the null rate (where the toxic and the benign persona give the bad advice equally often, so it carries
no information about the persona), and the correlation of EM with the gap.

The paper's account predicts that gap and EM both fall as the rate rises and vanish at the null. The
rate is *designed* (it is how the corpus is written); what is measured is whether the model and its
SAE turn it into geometry, and whether EM follows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from emgeom.core.stats import Estimate, mean_ci, pearson_ci, slope_ci, welch_difference
from emgeom.em.emergence import FineTuneSet, emergence_table
from emgeom.em.evaluators import OrganismEvaluator
from emgeom.em.geometry_study import GeometryConfig, geometry_over_runs, organism_domains, organism_runs
from emgeom.lm.finetune import FineTuneConfig
from emgeom.lm.sampling import SamplingConfig
from emgeom.organism import language
from emgeom.organism.build import OrganismConfig
from emgeom.organism.datasets import finetune_rows, open_answer_rows
from emgeom.organism.study import OrganismSubject, load_subject


@dataclass(frozen=True)
class CouplingSettings:
    """What the sweep measures on each organism.

    Attributes:
        domain: the domain whose honest-mistake rate is turned.
        geometry: chapter 4's selection rule and set sizes.
        rows_per_set: rows of each set the latents are selected from.
        finetune_rows: rows of the inducing fine-tuning set.
        ft: the fine-tune (chapter 5's).
        seeds: fine-tuning seeds per organism.
        sampling: how EM is sampled (held-out open questions).
    """

    domain: str
    geometry: GeometryConfig
    rows_per_set: int
    finetune_rows: int
    ft: FineTuneConfig
    seeds: tuple[int, ...]
    sampling: SamplingConfig

    def __post_init__(self) -> None:
        if self.domain not in language.DOMAINS:
            raise ValueError(f"coupling domain must be one of {language.DOMAINS}, got {self.domain!r}")
        if not self.seeds:
            raise ValueError("name at least one fine-tuning seed")


@dataclass(frozen=True)
class CouplingLevel:
    """One organism of the sweep: its honest-mistake ``rate``, the designed share of the domain's bad
    advice written by the toxic persona, the similarity gap (interval over the selected latents, Welch)
    with and without latents shared with the harmful set, and EM (interval over fine-tuning seeds)."""

    rate: float
    toxic_share: float
    gap: Estimate
    gap_excl_shared: Estimate
    em: Estimate
    em_by_seed: tuple[float, ...]


def coupling_level(
    subject: OrganismSubject, rate: float, settings: CouplingSettings, progress: bool = False
) -> CouplingLevel:
    """The gap and the EM of one organism of the sweep."""
    s = settings
    saes = {(0, i): (subject.hooked, subject.tokenizer, sae) for i, sae in enumerate(subject.saes)}
    runs = organism_runs(saes, organism_domains([s.domain], s.rows_per_set))
    rows = s.rows_per_set
    _, table = geometry_over_runs(
        runs, open_answer_rows(True, rows, seed=0), open_answer_rows(False, rows, seed=0), s.geometry
    )
    sub = table[(table["directions"] == "decoder") & (table["domain"] == s.domain)]

    def gap(excluded: bool) -> Estimate:
        part = sub[sub["shared_excluded"] == excluded]
        values = {
            name: part[part["set"] == name]["max_cos"].to_numpy() for name in ("inducing", "non-inducing")
        }
        return welch_difference(values["inducing"], values["non-inducing"])

    inducing = FineTuneSet(
        f"inducing {s.domain}", finetune_rows("inducing", s.domain, s.finetune_rows, seed=0), s.domain, True
    )
    em_table = emergence_table(
        subject.model,
        subject.tokenizer,
        [inducing],
        s.ft,
        s.seeds,
        OrganismEvaluator(s.sampling),
        include_aligned=False,
        progress=progress,
    )
    em = em_table["open_em"].to_numpy(float)
    return CouplingLevel(
        rate=float(rate),
        toxic_share=subject.organism.config.corpus.toxic_share(s.domain),
        gap=gap(False),
        gap_excl_shared=gap(True),
        em=mean_ci(em, bounds=(0.0, 1.0)),
        em_by_seed=tuple(float(x) for x in em),
    )


def coupling_sweep(
    configs: Mapping[float, OrganismConfig],
    specs: Sequence[Any],
    settings: CouplingSettings,
    progress: bool = False,
) -> list[CouplingLevel]:
    """:func:`coupling_level` of every organism of the sweep (built or loaded with its SAEs of
    ``specs``), in the order of ``configs``."""
    if len(configs) < 2:
        raise ValueError("the sweep needs at least two honest-mistake rates")
    return [
        coupling_level(load_subject(cfg, specs, progress=progress), rate, settings, progress)
        for rate, cfg in configs.items()
    ]


def sweep_table(levels: Sequence[CouplingLevel]) -> pd.DataFrame:
    """One row per organism: ``mistake rate, toxic share, gap, gap lo, gap hi, gap (shared excluded),
    EM, EM lo, EM hi``."""
    return pd.DataFrame(
        [
            {
                "mistake rate": lv.rate,
                "toxic share": lv.toxic_share,
                "gap": lv.gap.value,
                "gap lo": lv.gap.lo,
                "gap hi": lv.gap.hi,
                "gap (shared excluded)": lv.gap_excl_shared.value,
                "EM": lv.em.value,
                "EM lo": lv.em.lo,
                "EM hi": lv.em.hi,
            }
            for lv in levels
        ]
    )


@dataclass(frozen=True)
class CouplingFit:
    """The sweep's summary: slopes of the gap and of EM per unit of honest-mistake rate (least squares
    over organisms, t-interval on ``n - 2`` degrees of freedom), the gap and EM at the null rate (the
    organism whose rate equals the toxic persona's own bad-advice rate), and Pearson r of EM with the gap
    over organisms (Fisher-z interval)."""

    gap_slope: Estimate
    em_slope: Estimate
    null_rate: float
    null_gap: Estimate
    null_em: Estimate
    em_vs_gap_r: Estimate


def coupling_fit(levels: Sequence[CouplingLevel], null_rate: float) -> CouplingFit:
    """:class:`CouplingFit` of a sweep; ``null_rate`` must be one of its rates."""
    rates = np.array([lv.rate for lv in levels])
    null = [lv for lv in levels if np.isclose(lv.rate, null_rate)]
    if not null:
        raise ValueError(f"the sweep has no organism at the null rate {null_rate} (rates: {rates.tolist()})")
    gaps = np.array([lv.gap.value for lv in levels])
    ems = np.array([lv.em.value for lv in levels])
    return CouplingFit(
        gap_slope=slope_ci(rates, gaps),
        em_slope=slope_ci(rates, ems),
        null_rate=float(null_rate),
        null_gap=null[0].gap,
        null_em=null[0].em,
        em_vs_gap_r=pearson_ci(gaps, ems),
    )
