"""Chapter 6's filtering study on each organism of a profile, and its headline over organisms.

Every organism (pretraining seed) runs the whole study: its own dose-response curve and chosen dose, its
own mixed set, harmful latents, scores and judge, and the filter comparison. Its fine-tuning seeds are
averaged inside it; the intervals are over organisms (:func:`~emgeom.core.stats.over_replicates`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from emgeom.claims.filtering.study import (
    FilterHeadline,
    check_study_parameters,
    choose_dose,
    dose_response,
    filter_comparison,
    filter_headline,
    filter_summary,
    mixed_set,
    relative_reduction,
    saturation_fraction,
)
from emgeom.core.stats import Estimate, mean_ci, over_replicates
from emgeom.em.evaluators import Evaluator
from emgeom.filtering.baselines import BagOfWordsJudge
from emgeom.filtering.scoring import score_rows
from emgeom.lm.chat import ChatRow
from emgeom.lm.finetune import FineTuneConfig
from emgeom.organism import language
from emgeom.organism.build import OrganismConfig
from emgeom.organism.datasets import finetune_rows, open_answer_rows
from emgeom.organism.study import OrganismSubject, study_organisms
from emgeom.sae.geometry import harmful_latents


@dataclass(frozen=True)
class FilterSettings:
    """What chapter 6 runs on each organism (its parameters, gathered)."""

    domain: str
    set_size: int
    dose_fractions: tuple[float, ...]
    removal_fractions: tuple[float, ...]
    main_removal: float
    score_method: str
    judge_examples: int
    k_harmful: int
    ft: FineTuneConfig
    seeds: tuple[int, ...]
    evaluate: Evaluator

    def __post_init__(self) -> None:
        if self.domain not in language.DOMAINS:
            raise ValueError(f"domain must be one of {language.DOMAINS}, got {self.domain!r}")
        check_study_parameters(
            self.score_method, self.dose_fractions, self.removal_fractions, self.main_removal, self.seeds
        )


@dataclass
class OrganismFiltering:
    """Chapter 6 on one organism: the dose-response ``curve`` (one row per fraction and seed), the
    ``dose`` chosen from it and the ``saturation`` fraction, the mixed set (``rows``, ``truth``: which
    rows are inducing), each method's ``scores``, the geometry score's throughput, the comparison
    ``table`` and its ``headline``."""

    subject: OrganismSubject
    curve: pd.DataFrame
    dose: float
    saturation: float
    rows: list[ChatRow]
    truth: np.ndarray
    scores: dict[str, np.ndarray]
    samples_per_second: float
    table: pd.DataFrame
    headline: FilterHeadline


def filter_harmful_latents(subject: OrganismSubject, k_harmful: int) -> np.ndarray:
    """The harmful latents every filtering score of chapter 6 uses: the top ``k_harmful`` of 50 hostile
    minus 50 kind answers (a draw apart from chapter 4's), on the organism's first SAE."""
    return harmful_latents(
        subject.hooked,
        subject.saes[0],
        subject.tokenizer,
        open_answer_rows(True, 50, seed=3),
        open_answer_rows(False, 50, seed=3),
        k_harmful,
    )


def organism_filtering(
    subject: OrganismSubject, settings: FilterSettings, progress: bool = False
) -> OrganismFiltering:
    """The whole filtering study on one organism."""
    s = settings
    model, tokenizer, hooked, sae = subject.model, subject.tokenizer, subject.hooked, subject.saes[0]
    inducing = finetune_rows("inducing", s.domain, s.set_size, seed=1)
    benign = finetune_rows("good", s.domain, s.set_size, seed=1)
    curve = dose_response(
        model,
        tokenizer,
        inducing,
        benign,
        s.dose_fractions,
        s.set_size,
        s.ft,
        s.seeds,
        s.evaluate,
        progress=progress,
    )
    dose = choose_dose(curve)
    rows, truth = mixed_set(inducing, benign, s.set_size, dose, seed=0)
    harmful = filter_harmful_latents(subject, s.k_harmful)
    geometry = score_rows(hooked, sae, tokenizer, rows, harmful, s.score_method, progress=progress)
    judge = BagOfWordsJudge.fit_rows(
        finetune_rows("inducing", s.domain, s.judge_examples, seed=7),
        finetune_rows("good", s.domain, s.judge_examples, seed=7),
    )
    scores = {"geometry": geometry.scores, "judge": judge.score_rows(rows)}
    table = filter_comparison(
        model,
        tokenizer,
        rows,
        truth,
        scores,
        s.removal_fractions,
        s.ft,
        s.seeds,
        s.evaluate,
        progress=progress,
    )
    return OrganismFiltering(
        subject,
        curve,
        dose,
        saturation_fraction(curve),
        rows,
        truth,
        scores,
        geometry.samples_per_second,
        table,
        filter_headline(table, s.main_removal),
    )


def filtering_over_organisms(
    configs: Mapping[int, OrganismConfig],
    specs: Sequence[Any],
    settings: FilterSettings,
    progress: bool = False,
) -> dict[int, OrganismFiltering]:
    """:func:`organism_filtering` on each organism (built or loaded with its SAE of ``specs[0]``), keyed
    by pretraining seed."""
    return study_organisms(
        configs, specs[:1], lambda subject: organism_filtering(subject, settings, progress), progress
    )


def stacked(studies: Mapping[int, OrganismFiltering], attribute: str) -> pd.DataFrame:
    """A table attribute (``"curve"`` or ``"table"``) of every organism, with an ``organism_seed``
    column."""
    return pd.concat(
        [getattr(f, attribute).assign(organism_seed=o) for o, f in studies.items()], ignore_index=True
    )


def headline_over(studies: Mapping[int, OrganismFiltering]) -> FilterHeadline:
    """The filter headline with intervals over organisms (each organism's own estimate, over its
    fine-tuning seeds, is one replicate); precision, recall and unfiltered EM are means over organisms."""
    heads = [f.headline for f in studies.values()]
    return FilterHeadline(
        reductions={m: over_replicates([h.reductions[m] for h in heads]) for m in heads[0].reductions},
        versus={o: over_replicates([h.versus[o] for h in heads]) for o in heads[0].versus},
        geometry_precision=float(np.mean([h.geometry_precision for h in heads])),
        geometry_recall=float(np.mean([h.geometry_recall for h in heads])),
        unfiltered_em=float(np.mean([h.unfiltered_em for h in heads])),
    )


def over_organisms(studies: Mapping[int, OrganismFiltering], attribute: str) -> Estimate:
    """A number of every organism's study (``"dose"``, ``"saturation"``: fractions, clipped to [0, 1];
    ``"samples_per_second"``), with a t-interval over organisms."""
    bounds = (0.0, 1.0) if attribute in ("dose", "saturation") else None
    return mean_ci(np.array([getattr(f, attribute) for f in studies.values()], float), bounds=bounds)


def summary_over(
    studies: Mapping[int, OrganismFiltering], removal_fractions: Sequence[float]
) -> pd.DataFrame:
    """One row per (method, removal fraction): mean EM, the relative reduction with its interval over
    organisms, and mean precision and recall (:func:`~emgeom.claims.filtering.study.filter_summary`)."""

    def over(method: str, fraction: float) -> Estimate:
        return over_replicates([relative_reduction(f.table, method, fraction) for f in studies.values()])

    summary = filter_summary(stacked(studies, "table"), removal_fractions, over)
    return summary.assign(**{"n organisms": len(studies)})
