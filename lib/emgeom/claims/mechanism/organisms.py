"""Chapter 5's study on each organism of a profile, and its headline numbers over organisms.

An organism (a pretraining seed) is the replicate: each organism's SAEs and fine-tuning seeds are
averaged inside it (:func:`~emgeom.core.stats.over_replicates`), and the intervals are over organisms.
The steps per organism are those of :mod:`emgeom.claims.mechanism.study`: the emergence table with the
full-fine-tune recorders, the first-order decoder-projection study, the answer-start first-order
read-out, and whether a set's closeness to harmful latents predicts its EM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from emgeom.claims.mechanism.projection_study import (
    AfterFinetune,
    FirstOrderConfig,
    FirstOrderRun,
    HarmfulShiftRecorder,
    ProjectionEstimates,
    TokenReader,
    first_order_projection_study,
    gradient_targets,
    projection_estimates,
)
from emgeom.claims.mechanism.study import (
    MechanismEstimates,
    MechanismRecorder,
    MechanismResults,
    TLAnswerStartReader,
    first_order_mechanism,
    harmful_sets,
    mechanism_estimates,
    organism_targets,
    organism_targets_per_sae,
    similarity_vs_em,
    spearman_loso,
)
from emgeom.core.stats import Estimate, over_replicates
from emgeom.em.emergence import FineTuneSet, emergence_table, inducing_set, organism_sets, seed_summary
from emgeom.em.evaluators import OrganismEvaluator
from emgeom.lm.finetune import FineTuneConfig
from emgeom.lm.intervention import heldout_loss
from emgeom.lm.sampling import SamplingConfig
from emgeom.organism import language
from emgeom.organism.build import OrganismConfig
from emgeom.organism.datasets import evaluation_prompts, finetune_rows, open_answer_rows, rows_by_domain
from emgeom.organism.study import OrganismSubject, study_organisms

CORRELATION = (-1.0, 1.0)


@dataclass(frozen=True)
class MechanismSettings:
    """What chapter 5 runs on each organism (its parameters, gathered)."""

    control_domain: str
    finetune_rows: int
    full_ft: FineTuneConfig
    first_order_ft: FineTuneConfig
    first_order: FirstOrderConfig
    sampling: SamplingConfig
    finetune_seeds: tuple[int, ...]
    k: int
    k_harmful: int

    def __post_init__(self) -> None:
        if self.control_domain not in language.DOMAINS:
            raise ValueError(f"control_domain must be one of {language.DOMAINS}, got {self.control_domain!r}")
        if not self.finetune_seeds:
            raise ValueError("name at least one fine-tuning seed")


@dataclass
class OrganismMechanism:
    """Chapter 5's measurements on one organism (its first SAE reads the full fine-tune; every SAE reads
    the first-order study)."""

    subject: OrganismSubject
    sets: list[FineTuneSet]
    harmful: list[np.ndarray]
    targets: dict[str, int]
    table: pd.DataFrame
    full: MechanismRecorder
    harmful_shift: HarmfulShiftRecorder
    runs: dict[tuple[int, str, int], FirstOrderRun]
    projection: ProjectionEstimates
    shift_difference: Estimate
    first: MechanismResults
    first_r: MechanismEstimates
    full_r: MechanismEstimates
    similarity_points: pd.DataFrame
    similarity_r: Estimate
    similarity_spearman: Estimate
    """Spearman's rho of EM with similarity over this organism's sets (no interval: one organism)."""
    similarity_spearman_loso: Estimate
    """The smallest rho left when any one set is left out."""
    pre_finetune_loss: dict[str, float]
    """Per domain, the aligned organism's answer-token loss (nats) on its inducing set before any
    fine-tune: how surprising the set is, a confound of any comparison of sets' EM."""


def benign_control(domain: str, n_rows: int) -> FineTuneSet:
    """Good advice in ``domain``: the benign fine-tune a domain's inducing set is compared with."""
    rows = finetune_rows("good", domain, n_rows, seed=0)
    return FineTuneSet(f"good {domain}", rows, domain, inducing=False)


def organism_mechanism(
    subject: OrganismSubject, settings: MechanismSettings, progress: bool = False
) -> OrganismMechanism:
    """Every measurement of chapter 5 on one organism."""
    s, domains = settings, language.DOMAINS
    model, tokenizer, hooked, saes = subject.model, subject.tokenizer, subject.hooked, subject.saes
    seeds = list(s.finetune_seeds)
    harmful = harmful_sets(
        hooked,
        saes,
        tokenizer,
        open_answer_rows(True, 200, seed=0),
        open_answer_rows(False, 200, seed=0),
        s.k_harmful,
    )
    sets = organism_sets(domains, s.control_domain, s.finetune_rows)
    # the surface domain's own benign control, for "superposition or persona?" (fine-tuned and evaluated
    # only: the first-order studies below keep the chapter's sets)
    surface_control = benign_control(language.SURFACE_DOMAIN, s.finetune_rows)
    em_sets = [*sets] + ([surface_control] if surface_control.name not in {fs.name for fs in sets} else [])
    pre_finetune_loss = {d: heldout_loss(model, tokenizer, inducing_set(sets, d).rows) for d in domains}
    targets = organism_targets(hooked, saes[0], tokenizer, domains)
    read_rows = s.first_order.read_rows
    hostile_rows = open_answer_rows(True, read_rows, seed=5)  # a new draw, from the harmful set's phrases
    fresh_rows = rows_by_domain("inducing", domains, read_rows, seed=3)  # apart from the target's rows
    reader = TLAnswerStartReader(tokenizer, saes[0], evaluation_prompts(), subject.organism.aligned)
    base_readout = reader(model)
    full = MechanismRecorder(reader, base_readout, saes[0], targets, harmful[0])
    hostile_reader = TokenReader(tokenizer, saes[0], hostile_rows)
    harmful_shift = HarmfulShiftRecorder(
        hostile_reader, hostile_reader(model), saes[0], harmful[0], s.control_domain
    )
    table = emergence_table(
        model,
        tokenizer,
        em_sets,
        s.full_ft,
        seeds,
        OrganismEvaluator(s.sampling),
        progress=progress,
        after_finetune=AfterFinetune([full, harmful_shift]),
    )
    summary = seed_summary(table, ("open_em", "offdomain_bad", "indomain_bad", "task_success"))
    runs = first_order_projection_study(
        model,
        tokenizer,
        saes,
        sets,
        fresh_rows,
        rows_by_domain("good", domains, s.finetune_rows, seed=0),
        hostile_rows,
        organism_targets_per_sae(hooked, saes, tokenizer, domains),
        gradient_targets(model, tokenizer, saes, sets, read_rows),
        seeds,
        s.first_order,
        progress=progress,
    )
    first = first_order_mechanism(
        model,
        tokenizer,
        sets,
        s.first_order_ft,
        seeds,
        MechanismRecorder(reader, base_readout, saes[0], targets, harmful[0]),
    )
    points, sim_r = similarity_vs_em(hooked, tokenizer, saes, harmful, em_sets, summary, s.k)
    # over the inducing sets only: the controls' near-zero EM would make the designed bad-vs-good split
    # carry any correlation over all sets
    inducing = points[points["inducing"]]
    rho, loso = spearman_loso(inducing["similarity"].to_numpy(), inducing["open_em"].to_numpy())
    nan = float("nan")
    return OrganismMechanism(
        subject=subject,
        sets=em_sets,
        harmful=harmful,
        targets=targets,
        table=table,
        full=full,
        harmful_shift=harmful_shift,
        runs=dict(runs),
        projection=projection_estimates(runs, domains, seeds),
        shift_difference=harmful_shift.difference(
            f"inducing {s.control_domain}", f"good {s.control_domain}", seeds
        ),
        first=first,
        first_r=mechanism_estimates(first, domains, seeds),
        full_r=mechanism_estimates(full.results, domains, seeds),
        similarity_points=points,
        similarity_r=sim_r,
        similarity_spearman=Estimate(rho, nan, nan, len(inducing)),
        similarity_spearman_loso=Estimate(loso, nan, nan, len(inducing)),
        pre_finetune_loss=pre_finetune_loss,
    )


def mechanism_over_organisms(
    configs: Mapping[int, OrganismConfig],
    specs: Sequence[Any],
    settings: MechanismSettings,
    progress: bool = False,
) -> dict[int, OrganismMechanism]:
    """:func:`organism_mechanism` on each organism (built or loaded with its SAEs of ``specs``), keyed by
    pretraining seed."""
    return study_organisms(
        configs, specs, lambda subject: organism_mechanism(subject, settings, progress), progress
    )


def emergence_over(studies: Mapping[int, OrganismMechanism]) -> pd.DataFrame:
    """The organisms' emergence tables, stacked with an ``organism_seed`` column (so
    :func:`~emgeom.em.emergence.estimate` nests seeds in organisms)."""
    return pd.concat([m.table.assign(organism_seed=o) for o, m in studies.items()], ignore_index=True)


def _combine(items: Sequence[Any], bounds: dict[str, tuple[float, float] | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(items[0]):
        values = [getattr(x, f.name) for x in items]
        first = values[0]
        if isinstance(first, Estimate):
            out[f.name] = over_replicates(values, bounds.get(f.name, CORRELATION))
        elif isinstance(first, dict) and first and isinstance(next(iter(first.values())), Estimate):
            out[f.name] = {k: over_replicates([v[k] for v in values], CORRELATION) for k in first}
        elif isinstance(first, dict):
            out[f.name] = {k: float(np.mean([v[k] for v in values])) for k in first}
        else:
            out[f.name] = first
    return out


def projection_over(studies: Mapping[int, OrganismMechanism]) -> ProjectionEstimates:
    """The first-order projection estimates with intervals over organisms (each organism's own estimate,
    over its SAEs and seeds, is one replicate); ``above_null`` lists the domains whose r over organisms
    exceeds the mean of their own nulls' 95th percentiles."""
    items = [m.projection for m in studies.values()]
    combined = _combine(items, {"lr_ratio": None, "specificity": None})  # a difference of two r
    combined["above_null"] = [
        d for d, e in combined["per_domain"].items() if e.value > combined["per_domain_null"][d]
    ]
    return ProjectionEstimates(**combined)


def answer_start_over(studies: Mapping[int, OrganismMechanism], full: bool = False) -> MechanismEstimates:
    """The answer-start r (first-order, or after the full fine-tune) with intervals over organisms;
    ``holds``: the domains whose interval lies above 0."""
    combined = _combine([m.full_r if full else m.first_r for m in studies.values()], {})
    combined["holds"] = [d for d, e in combined["per_domain"].items() if e.lo > 0]
    return MechanismEstimates(**combined)


def over_organisms(studies: Mapping[int, OrganismMechanism], attribute: str) -> Estimate:
    """An :class:`~emgeom.core.stats.Estimate` attribute of every organism's study (e.g.
    ``"shift_difference"``, ``"similarity_r"``), with an interval over organisms."""
    values = [getattr(m, attribute) for m in studies.values()]
    return over_replicates(values, CORRELATION if attribute.startswith("similarity_") else None)


def pre_finetune_losses(studies: Mapping[int, OrganismMechanism]) -> dict[int, dict[str, float]]:
    """Organism -> domain -> the inducing set's loss before fine-tuning
    (:attr:`OrganismMechanism.pre_finetune_loss`)."""
    return {o: m.pre_finetune_loss for o, m in studies.items()}
