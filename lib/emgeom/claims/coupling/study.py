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

from emgeom.claims.geometry.evidence import selection_replicates
from emgeom.claims.geometry.nulls import row_bootstrap_gap, row_permutation_gap
from emgeom.claims.geometry.study import GeometryConfig, geometry_over_runs, organism_domains, organism_runs
from emgeom.core.stats import Estimate, mean_ci, pearson_r, slope_ci
from emgeom.em.emergence import ALIGNED, FineTuneSet, emergence_table
from emgeom.em.evaluators import OrganismEvaluator
from emgeom.lm.chat import ChatRow
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
        n_resamples: row resamples of the gap's interval, and row permutations of its test.
        reference_rows: what the symmetric selection rule selects against (chapter 4's reference).
    """

    domain: str
    geometry: GeometryConfig
    rows_per_set: int
    finetune_rows: int
    ft: FineTuneConfig
    seeds: tuple[int, ...]
    sampling: SamplingConfig
    n_resamples: int = 1000
    reference_rows: Sequence[ChatRow] | None = None

    def __post_init__(self) -> None:
        if self.domain not in language.DOMAINS:
            raise ValueError(f"coupling domain must be one of {language.DOMAINS}, got {self.domain!r}")
        if not self.seeds:
            raise ValueError("name at least one fine-tuning seed")


@dataclass(frozen=True)
class CouplingLevel:
    """One organism of the sweep: its honest-mistake ``rate``, the designed share of the domain's bad
    advice written by the toxic persona; the similarity gap as chapter 4 computes it (mean over the SAEs
    of each SAE's gap), with a 95% interval from resampling the rows and redoing the selection
    (:func:`~emgeom.claims.geometry.nulls.row_bootstrap_gap`) and the one-sided p of the row permutation
    test; the gap without latents shared with the harmful set; EM after the inducing fine-tune and EM
    of the aligned model (intervals over fine-tuning seeds), and EM minus aligned EM paired by seed."""

    rate: float
    toxic_share: float
    gap: Estimate
    gap_p: float
    gap_excl_shared: float
    em: Estimate
    aligned_em: Estimate
    em_minus_aligned: Estimate


def coupling_level(
    subject: OrganismSubject, rate: float, settings: CouplingSettings, progress: bool = False
) -> CouplingLevel:
    """The gap and the EM of one organism of the sweep."""
    s, d = settings, settings.domain
    saes = {(0, i): (subject.hooked, subject.tokenizer, sae) for i, sae in enumerate(subject.saes)}
    runs = organism_runs(saes, organism_domains([d], s.rows_per_set))
    rows = s.rows_per_set
    results, table = geometry_over_runs(
        runs,
        open_answer_rows(True, rows, seed=0),
        open_answer_rows(False, rows, seed=0),
        s.geometry,
        reference_rows=s.reference_rows,
    )
    reps = selection_replicates(runs, results, d)
    gap = row_bootstrap_gap(reps, s.geometry.k, s.geometry.rule, s.n_resamples, seed=s.geometry.seed)
    perm = row_permutation_gap(reps, s.geometry.k, s.geometry.rule, s.n_resamples, seed=s.geometry.seed)
    excl = table[(table["directions"] == "decoder") & (table["domain"] == d) & table["shared_excluded"]]
    per_sae = [
        part[part["set"] == "inducing"]["max_cos"].mean()
        - part[part["set"] == "non-inducing"]["max_cos"].mean()
        for _, part in excl.groupby("sae", sort=False)
    ]
    inducing = FineTuneSet(f"inducing {d}", finetune_rows("inducing", d, s.finetune_rows, seed=0), d, True)
    em_table = emergence_table(
        subject.model,
        subject.tokenizer,
        [inducing],
        s.ft,
        s.seeds,
        OrganismEvaluator(s.sampling),
        progress=progress,
    )
    tuned = em_table[em_table["set"] == inducing.name].set_index("seed")["open_em"]
    aligned = em_table[em_table["set"] == ALIGNED].set_index("seed")["open_em"]
    return CouplingLevel(
        rate=float(rate),
        toxic_share=subject.organism.config.corpus.toxic_share(d),
        gap=gap,
        gap_p=perm.p,
        gap_excl_shared=float(np.nanmean(per_sae)) if per_sae else float("nan"),
        em=mean_ci(tuned.to_numpy(float), bounds=(0.0, 1.0)),
        aligned_em=mean_ci(aligned.to_numpy(float), bounds=(0.0, 1.0)),
        em_minus_aligned=mean_ci(
            np.array([tuned[k] - aligned[k] for k in tuned.index if k in aligned.index])
        ),
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
    """One row per organism: ``mistake rate, toxic share, gap, gap lo, gap hi, gap p (rows permuted),
    gap (shared excluded), EM, EM lo, EM hi, aligned EM, EM − aligned``."""
    return pd.DataFrame(
        [
            {
                "mistake rate": lv.rate,
                "toxic share": lv.toxic_share,
                "gap": lv.gap.value,
                "gap lo": lv.gap.lo,
                "gap hi": lv.gap.hi,
                "gap p (rows permuted)": lv.gap_p,
                "gap (shared excluded)": lv.gap_excl_shared,
                "EM": lv.em.value,
                "EM lo": lv.em.lo,
                "EM hi": lv.em.hi,
                "aligned EM": lv.aligned_em.value,
                "EM − aligned": lv.em_minus_aligned.value,
            }
            for lv in levels
        ]
    )


@dataclass(frozen=True)
class CouplingFit:
    """The sweep's summary: slopes of the gap and of EM per unit of honest-mistake rate (least squares
    over organisms, t-interval on ``n - 2`` degrees of freedom); the organism at the null rate (the toxic
    persona's own bad-advice rate): its gap (row-resampling interval) and the gap's row-permutation p, its
    EM and its EM minus the aligned model's (paired by seed); and Pearson r of EM with the gap over the
    organisms, descriptive only (both follow the designed rate, so it mostly restates the two slopes)."""

    gap_slope: Estimate
    em_slope: Estimate
    null_rate: float
    null_gap: Estimate
    null_gap_p: float
    null_em: Estimate
    null_em_minus_aligned: Estimate
    em_vs_gap_r: float


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
        null_gap_p=null[0].gap_p,
        null_em=null[0].em,
        null_em_minus_aligned=null[0].em_minus_aligned,
        em_vs_gap_r=pearson_r(gaps, ems),
    )
