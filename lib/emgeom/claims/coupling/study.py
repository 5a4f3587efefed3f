"""The coupling sweep: organisms that differ only in one domain's honest-mistake rate, the corpus knob
that decides how much that domain's bad advice says about the toxic persona, replicated over
pretraining seeds (one organism per rate and seed).

On each organism: chapter 4's similarity gap of the domain (inducing minus non-inducing latents' mean
max-cosine to the harmful latents, decoder directions), chapter 5's open-question EM after the domain's
inducing fine-tune (averaged over its fine-tuning seeds, which are nested in the organism), and the
aligned organism's own loss on the inducing rows before any fine-tune (a confound: an organism that
finds the inducing set more surprising may move further when tuned on it).

Across organisms, blocked by pretraining seed (the organism is the unit of replication; every rate of
one seed shares the seed's data stream and initialisation): the paired contrast of EM (and of the gap)
between the lowest rate and the null rate (where the toxic and the benign persona give the bad advice
equally often, so it carries no information about the persona), with a t-interval over organisms;
Page's trend test over every rate; descriptive least-squares slopes over every (rate, organism) point,
and the correlation of EM with the gap.

The paper's account predicts that gap and EM both fall as the rate rises and vanish at the null. The
rate is *designed* (it is how the corpus is written); what is measured is whether the model and its
SAE turn it into geometry, and whether EM follows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from emgeom.claims.geometry.evidence import selection_replicates
from emgeom.claims.geometry.nulls import row_bootstrap_gap, row_permutation_gap
from emgeom.claims.geometry.study import GeometryConfig, geometry_over_runs, organism_domains, organism_runs
from emgeom.core.stats import Estimate, PageTrend, mean_ci, over_replicates, page_trend, pearson_r, slope_ci
from emgeom.em.emergence import ALIGNED, FineTuneSet, emergence_table
from emgeom.em.evaluators import OrganismEvaluator
from emgeom.lm.chat import ChatRow
from emgeom.lm.finetune import FineTuneConfig
from emgeom.lm.intervention import heldout_loss
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
        n_resamples: row resamples of the gap's interval within an organism, and row permutations of its
            (descriptive) test.
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
    """One organism of the sweep: its pretraining seed ``organism`` and honest-mistake ``rate``, the
    designed share of the domain's bad advice written by the toxic persona; the similarity gap as
    chapter 4 computes it (mean over the SAEs of each SAE's gap), with a 95% interval from resampling the
    rows and redoing the selection (:func:`~emgeom.claims.geometry.nulls.row_bootstrap_gap`) and the
    one-sided p of the row permutation test (descriptive: within one organism); the gap without latents
    shared with the harmful set; EM after the inducing fine-tune and EM of the aligned model (means and
    intervals over fine-tuning seeds, nested in the organism), EM minus aligned EM paired by seed; and
    ``inducing_loss``, the aligned organism's mean answer-token loss (nats) on the inducing fine-tuning
    rows before any fine-tune."""

    rate: float
    toxic_share: float
    gap: Estimate
    gap_p: float
    gap_excl_shared: float
    em: Estimate
    aligned_em: Estimate
    em_minus_aligned: Estimate
    organism: int = 0
    inducing_loss: float = float("nan")


def coupling_level(
    subject: OrganismSubject,
    rate: float,
    settings: CouplingSettings,
    progress: bool = False,
    organism: int = 0,
) -> CouplingLevel:
    """The gap, the EM and the inducing set's loss of one organism of the sweep (pretraining seed
    ``organism``)."""
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
    loss = heldout_loss(subject.model, subject.tokenizer, inducing.rows)  # before any fine-tune
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
        organism=int(organism),
        inducing_loss=float(loss),
    )


def coupling_sweep(
    configs: Mapping[int, Mapping[float, OrganismConfig]],
    specs: Sequence[Any],
    settings: CouplingSettings,
    progress: bool = False,
) -> list[CouplingLevel]:
    """:func:`coupling_level` of every organism of the sweep: ``configs`` maps each pretraining seed to
    its organisms by rate (every seed the same rates), each built or loaded with its SAEs of ``specs``,
    one in memory at a time, in the order of ``configs``."""
    if not configs:
        raise ValueError("name at least one organism (pretraining) seed")
    rates = [sorted(by_rate) for by_rate in configs.values()]
    if any(r != rates[0] for r in rates):
        raise ValueError(f"every organism seed needs the same rates, got {rates}")
    if len(rates[0]) < 2:
        raise ValueError("the sweep needs at least two honest-mistake rates")
    return [
        coupling_level(load_subject(cfg, specs, progress=progress), rate, settings, progress, organism=seed)
        for seed, by_rate in configs.items()
        for rate, cfg in by_rate.items()
    ]


def sweep_table(levels: Sequence[CouplingLevel]) -> pd.DataFrame:
    """One row per organism (rate and pretraining seed): ``organism, mistake rate, toxic share, gap,
    gap lo, gap hi, gap p (rows permuted), gap (shared excluded), EM, EM lo, EM hi, aligned EM,
    EM − aligned, inducing loss`` (intervals within the organism: rows for the gap, fine-tuning seeds
    for EM)."""
    return pd.DataFrame(
        [
            {
                "organism": lv.organism,
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
                "inducing loss": lv.inducing_loss,
            }
            for lv in levels
        ]
    )


def by_rate(levels: Sequence[CouplingLevel]) -> dict[float, dict[int, CouplingLevel]]:
    """The sweep's organisms by rate (ascending), then by pretraining seed."""
    out: dict[float, dict[int, CouplingLevel]] = {}
    for lv in sorted(levels, key=lambda lv: lv.rate):
        if lv.organism in out.setdefault(lv.rate, {}):
            raise ValueError(f"two organisms of seed {lv.organism} at rate {lv.rate}")
        out[lv.rate][lv.organism] = lv
    return out


def level_over_organisms(
    levels: Sequence[CouplingLevel],
    value: Callable[[CouplingLevel], Estimate],
    bounds: tuple[float, float] | None = None,
) -> dict[float, Estimate]:
    """Per rate, ``value`` over that rate's organisms (:func:`~emgeom.core.stats.over_replicates`: a
    t-interval over organisms of each organism's own value; a single organism keeps its own interval)."""
    return {
        rate: over_replicates([value(lv) for lv in orgs.values()], bounds=bounds)
        for rate, orgs in by_rate(levels).items()
    }


def level_table(levels: Sequence[CouplingLevel]) -> pd.DataFrame:
    """One row per rate, over its organisms: ``mistake rate, toxic share, organisms, gap, gap lo, gap
    hi, EM, EM lo, EM hi, aligned EM, EM − aligned, inducing loss, inducing loss lo, inducing loss hi``
    (means over organisms, t-intervals over organisms; with one organism, its own interval)."""
    grouped = by_rate(levels)
    gap = level_over_organisms(levels, lambda lv: lv.gap)
    em = level_over_organisms(levels, lambda lv: lv.em, bounds=(0.0, 1.0))
    aligned = level_over_organisms(levels, lambda lv: lv.aligned_em, bounds=(0.0, 1.0))
    diff = level_over_organisms(levels, lambda lv: lv.em_minus_aligned)
    loss = {r: mean_ci(np.array([lv.inducing_loss for lv in o.values()])) for r, o in grouped.items()}
    return pd.DataFrame(
        [
            {
                "mistake rate": rate,
                "toxic share": next(iter(orgs.values())).toxic_share,
                "organisms": len(orgs),
                "gap": gap[rate].value,
                "gap lo": gap[rate].lo,
                "gap hi": gap[rate].hi,
                "EM": em[rate].value,
                "EM lo": em[rate].lo,
                "EM hi": em[rate].hi,
                "aligned EM": aligned[rate].value,
                "EM − aligned": diff[rate].value,
                "inducing loss": loss[rate].value,
                "inducing loss lo": loss[rate].lo,
                "inducing loss hi": loss[rate].hi,
            }
            for rate, orgs in grouped.items()
        ]
    )


def paired_contrast(
    levels: Sequence[CouplingLevel], low: float, high: float, value: Callable[[CouplingLevel], float]
) -> Estimate:
    """``value(rate low) - value(rate high)`` per pretraining seed (blocked by organism: both organisms
    of a seed share its data stream and initialisation), mean with a t-interval over the seeds that have
    both rates (``n`` counts them; one seed gives no interval)."""
    grouped = by_rate(levels)
    lows, highs = _at(grouped, low), _at(grouped, high)
    return mean_ci(np.array([value(lows[s]) - value(highs[s]) for s in lows if s in highs]))


def trend(levels: Sequence[CouplingLevel], value: Callable[[CouplingLevel], float]) -> PageTrend:
    """Page's trend test of ``value`` *decreasing* with the rate: blocks are pretraining seeds (those
    with every rate of the sweep), treatments the rates, the predicted order highest value at the lowest
    rate (exact p)."""
    grouped = by_rate(levels)
    seeds = [s for s in next(iter(grouped.values())) if all(s in orgs for orgs in grouped.values())]
    descending = sorted(grouped, reverse=True)  # predicted increasing order of the value
    table = np.array([[value(grouped[r][s]) for r in descending] for s in seeds], dtype=float)
    return page_trend(table.reshape(len(seeds), len(descending)))


def _at(grouped: Mapping[float, dict[int, CouplingLevel]], rate: float) -> dict[int, CouplingLevel]:
    for r, orgs in grouped.items():
        if np.isclose(r, rate):
            return orgs
    raise ValueError(f"the sweep has no organism at rate {rate} (rates: {sorted(grouped)})")


@dataclass(frozen=True)
class CouplingFit:
    """The sweep's statistics over organisms (blocked by pretraining seed; fine-tuning seeds averaged
    inside each organism first).

    Attributes:
        low_rate, null_rate: the contrast's two ends: the lowest rate (the most coupled) and the toxic
            persona's own bad-advice rate (no information about the persona).
        n_organisms: pretraining seeds with both ends.
        em_contrast: EM(low) - EM(null) per seed, mean and t-interval over seeds (the scored statistic;
            the paper's account predicts it above 0).
        gap_contrast: the same for the similarity gap.
        loss_contrast: the same for the inducing set's pre-fine-tune loss (the confound).
        em_trend, gap_trend: Page's test of EM and of the gap falling with the rate over every rate
            (blocks = seeds, exact p).
        gap_slope, em_slope: descriptive least-squares slopes per unit of rate over every (rate, seed)
            point, t-interval on ``points - 2`` degrees of freedom as if the points were independent
            (they are not: each seed contributes one point per rate).
        null_gap, null_em, null_em_minus_aligned: the null rate's organisms, over seeds (one seed: its
            own interval, over rows for the gap and fine-tuning seeds for EM).
        inducing_loss: per rate, the inducing set's loss over seeds.
        em_vs_gap_r: Pearson r of EM with the gap over every point, descriptive only (both follow the
            designed rate, so it mostly restates the two slopes).
    """

    low_rate: float
    null_rate: float
    n_organisms: int
    em_contrast: Estimate
    gap_contrast: Estimate
    loss_contrast: Estimate
    em_trend: PageTrend
    gap_trend: PageTrend
    gap_slope: Estimate
    em_slope: Estimate
    null_gap: Estimate
    null_em: Estimate
    null_em_minus_aligned: Estimate
    inducing_loss: dict[float, Estimate]
    em_vs_gap_r: float


def coupling_fit(levels: Sequence[CouplingLevel], null_rate: float) -> CouplingFit:
    """:class:`CouplingFit` of a sweep; ``null_rate`` must be one of its rates, and above the lowest."""
    grouped = by_rate(levels)
    null = _at(grouped, null_rate)
    low = min(grouped)
    if np.isclose(low, null_rate):
        raise ValueError(f"the null rate {null_rate} must be above the sweep's lowest rate")
    points = sorted(levels, key=lambda lv: (lv.rate, lv.organism))
    rates = np.array([lv.rate for lv in points])
    gaps = np.array([lv.gap.value for lv in points])
    ems = np.array([lv.em.value for lv in points])

    def em(lv: CouplingLevel) -> float:
        return lv.em.value

    def gap(lv: CouplingLevel) -> float:
        return lv.gap.value

    em_contrast = paired_contrast(levels, low, null_rate, em)
    return CouplingFit(
        low_rate=float(low),
        null_rate=float(null_rate),
        n_organisms=em_contrast.n,
        em_contrast=em_contrast,
        gap_contrast=paired_contrast(levels, low, null_rate, gap),
        loss_contrast=paired_contrast(levels, low, null_rate, lambda lv: lv.inducing_loss),
        em_trend=trend(levels, em),
        gap_trend=trend(levels, gap),
        gap_slope=slope_ci(rates, gaps),
        em_slope=slope_ci(rates, ems),
        null_gap=over_replicates([lv.gap for lv in null.values()]),
        null_em=over_replicates([lv.em for lv in null.values()], bounds=(0.0, 1.0)),
        null_em_minus_aligned=over_replicates([lv.em_minus_aligned for lv in null.values()]),
        inducing_loss={
            r: mean_ci(np.array([lv.inducing_loss for lv in o.values()])) for r, o in grouped.items()
        },
        em_vs_gap_r=pearson_r(gaps, ems),
    )


def rate_keys(by_rate: Mapping[float, Estimate]) -> dict[str, Estimate]:
    """Estimates keyed by mistake rate, re-keyed for recorded names: ``0.95`` -> ``"0p95"``."""
    return {f"{rate:g}".replace(".", "p"): e for rate, e in by_rate.items()}
