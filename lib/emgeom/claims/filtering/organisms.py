"""Chapter 6's filtering study on each organism of a profile, and its numbers over organisms.

Every organism (pretraining seed) runs the whole study on every set (the half-inducing set and the
dissociation sets: :mod:`emgeom.claims.filtering.sets`), in two passes:

1. **detection**: every detector scores every row (:func:`~emgeom.claims.filtering.detection.detector_scores`)
   and removes the set's fixed share (its inducing share); precision and recall of what it removed, the
   primary outcome. The *best learned judge* of a set is then chosen once, over organisms
   (:func:`~emgeom.claims.filtering.detection.best_learned_judge`), never per organism.
2. **fine-tuning**: EM after fine-tuning on what each of :data:`EM_METHODS` keeps, with the same seeds
   for every method (random removal of the same size is the control, paired by seed), and the
   dose-response curve of the half-inducing set's domain (its point at the set's share is the unfiltered
   run itself).

Each organism's fine-tuning seeds are averaged inside it; the intervals are over organisms
(:func:`~emgeom.core.stats.over_replicates`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from emgeom.claims.filtering.detection import (
    RANDOM,
    best_learned_judge,
    detection_summary,
    detection_table,
    detector_scores,
    recall_difference,
    record_detection,
    removed_rows,
    sae_name,
)
from emgeom.claims.filtering.judges import GRADIENT, LIKELIHOOD
from emgeom.claims.filtering.sets import (
    MAIN,
    DissociationSettings,
    FilterSet,
    dissociation_set,
    half_inducing_set,
)
from emgeom.claims.filtering.study import dose_response, em_after_finetune, saturation_fraction
from emgeom.core.results import record, record_estimate
from emgeom.core.stats import Estimate, mean_ci, over_replicates, paired_relative_reduction
from emgeom.em.evaluators import Evaluator
from emgeom.filtering.scoring import SCORE_METHODS
from emgeom.lm.finetune import FineTuneConfig
from emgeom.organism import language
from emgeom.organism.build import OrganismConfig
from emgeom.organism.datasets import finetune_rows
from emgeom.organism.study import OrganismSubject, load_subject

#: The EM methods every set is fine-tuned after (besides ``none``, no filtering): geometry, the random
#: control, and each non-oracle detector the verdict compares geometry with.
GEOMETRY, BEST_JUDGE = "geometry", "best learned judge"
EM_METHODS: tuple[str, ...] = (GEOMETRY, RANDOM, BEST_JUDGE, LIKELIHOOD, GRADIENT)


@dataclass(frozen=True)
class FilterSettings:
    """What chapter 6 runs on each organism (its parameters, gathered).

    Attributes:
        domain: the inducing domain.
        set_size: rows of the half-inducing set (and of each dose-response set).
        inducing_share: its share of inducing rows, which every detector also removes.
        dose_fractions: inducing fractions of the dose-response curve besides ``inducing_share`` (whose
            point is the unfiltered run); 0 must be one (the floor EM, with no inducing row).
        score_method: the SAE score called *geometry*.
        judge_labels: labelled answers per class of each learned judge (the ladder).
        k_harmful: harmful latents of the SAE scores.
        ft: the fine-tune; seeds: fine-tuning seeds per organism (half-inducing set and curve);
        evaluate: the EM evaluator.
    """

    domain: str
    set_size: int
    inducing_share: float
    dose_fractions: tuple[float, ...]
    score_method: str
    judge_labels: tuple[int, ...]
    k_harmful: int
    ft: FineTuneConfig
    seeds: tuple[int, ...]
    evaluate: Evaluator

    def __post_init__(self) -> None:
        if self.domain not in language.DOMAINS:
            raise ValueError(f"domain must be one of {language.DOMAINS}, got {self.domain!r}")
        if self.score_method not in SCORE_METHODS:
            raise ValueError(f"score_method must be one of {SCORE_METHODS}, got {self.score_method!r}")
        if 0.0 not in self.dose_fractions or not all(0 <= f <= 1 for f in self.dose_fractions):
            raise ValueError("dose_fractions must lie in [0, 1] and include 0 (the floor: no inducing row)")
        if not self.seeds or not self.judge_labels:
            raise ValueError("need at least one fine-tuning seed and one learned judge size")
        half_inducing_set(self.domain, self.set_size, self.inducing_share)  # refuses an inexact share


def study_sets(settings: FilterSettings, dissociation: DissociationSettings) -> dict[str, FilterSet]:
    """The half-inducing set, then each dissociation set (the same rows for every organism)."""
    main = half_inducing_set(settings.domain, settings.set_size, settings.inducing_share)
    return {MAIN: main} | {n: dissociation_set(n, settings.domain, dissociation) for n in dissociation.sets}


@dataclass
class SetResult:
    """One set on one organism: every detector's ``scores``, the ``detection`` table (one row per
    detector: precision, recall, decoys removed) and ``em`` (one row per method and seed: ``method,
    seed, open_em``...; filled by the fine-tuning pass)."""

    scores: dict[str, np.ndarray]
    detection: pd.DataFrame
    em: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass
class FilterStudy:
    """The study over organisms: the ``sets``, per set and organism its :class:`SetResult`, per set the
    best learned judge (chosen over organisms), per organism the dose-response ``curves`` and the
    geometry score's throughput, and each set's fine-tuning ``seeds``."""

    sets: dict[str, FilterSet]
    results: dict[str, dict[int, SetResult]]
    best_judge: dict[str, str]
    curves: dict[int, pd.DataFrame]
    samples_per_second: dict[int, float]
    seeds: dict[str, tuple[int, ...]]
    score_method: str

    def detection(self, name: str) -> dict[int, pd.DataFrame]:
        """Set ``name``'s detection table of every organism."""
        return {o: r.detection for o, r in self.results[name].items()}

    def em(self, name: str) -> dict[int, pd.DataFrame]:
        """Set ``name``'s EM table of every organism."""
        return {o: r.em for o, r in self.results[name].items()}

    def detector(self, name: str, method: str) -> str:
        """The detector an EM method stands for on set ``name``."""
        return {GEOMETRY: sae_name(self.score_method), BEST_JUDGE: self.best_judge[name]}.get(method, method)


def removal_plan(
    scores: Mapping[str, np.ndarray],
    s: FilterSet,
    methods: Sequence[str],
    seeds: Sequence[int],
    detector_of: Mapping[str, str],
    replicate: int = 0,
) -> list[tuple[str, int, np.ndarray]]:
    """The fine-tunes of one set on organism ``replicate``: ``(method, seed, rows removed)`` for no
    filtering and each method at each seed. Every method removes the set's fixed share; ``detector_of``
    names the detector an EM method stands for (geometry, the best learned judge)."""
    none = np.zeros(len(s.rows), dtype=bool)
    plan = [("none", seed, none) for seed in seeds]
    for method in methods:
        detector = detector_of.get(method, method)
        plan += [(method, seed, removed_rows(scores, detector, s.removal, seed, replicate)) for seed in seeds]
    return plan


def _fine_tune_set(
    subject: OrganismSubject,
    s: FilterSet,
    plan: Sequence[tuple[str, int, np.ndarray]],
    settings: FilterSettings,
    progress: bool,
) -> pd.DataFrame:
    out = []
    for method, seed, remove in tqdm(plan, desc=f"fine-tuning {s.name}", disable=not progress):
        kept = [r for r, rm in zip(s.rows, remove, strict=True) if not rm]
        em = em_after_finetune(subject.model, subject.tokenizer, kept, settings.ft, seed, settings.evaluate)
        out.append({"method": method, "seed": seed, **em})
    return pd.DataFrame(out)


def _curve(
    subject: OrganismSubject, settings: FilterSettings, unfiltered: pd.DataFrame, progress: bool
) -> pd.DataFrame:
    """The dose-response curve: ``dose_fractions`` fine-tuned here, the inducing share's point taken from
    the unfiltered runs of the half-inducing set (the same rows and seeds)."""
    s = settings
    fractions = [f for f in s.dose_fractions if not np.isclose(f, s.inducing_share)]
    curve = dose_response(
        subject.model,
        subject.tokenizer,
        finetune_rows("inducing", s.domain, s.set_size, seed=1),
        finetune_rows("good", s.domain, s.set_size, seed=1),
        fractions,
        s.set_size,
        s.ft,
        s.seeds,
        s.evaluate,
        progress=progress,
    )
    share = unfiltered.drop(columns="method").assign(fraction=s.inducing_share)
    return pd.concat([curve, share], ignore_index=True).sort_values(["fraction", "seed"], ignore_index=True)


def filtering_over_organisms(
    configs: Mapping[int, OrganismConfig],
    specs: Sequence[Any],
    settings: FilterSettings,
    dissociation: DissociationSettings,
    progress: bool = False,
) -> FilterStudy:
    """The whole study on every organism (built or loaded with its SAE of ``specs[0]``), keyed by
    pretraining seed: detection first on every organism, then the best learned judge of each set over
    organisms, then the fine-tunes (one organism in memory at a time in each pass)."""
    if not configs:
        raise ValueError("name at least one organism")
    sets = study_sets(settings, dissociation)
    seeds = {name: settings.seeds if name == MAIN else dissociation.seeds for name in sets}
    rows = {name: s.rows for name, s in sets.items()}
    results: dict[str, dict[int, SetResult]] = {name: {} for name in sets}
    speed: dict[int, float] = {}
    for o, cfg in configs.items():
        subject = load_subject(cfg, specs[:1], progress=progress)
        scores, speed[o] = detector_scores(
            subject, rows, settings.judge_labels, settings.k_harmful, timed=settings.score_method
        )
        for name, s in sets.items():
            results[name][o] = SetResult(scores[name], detection_table(scores[name], s, seeds[name], o))
    best = {name: best_learned_judge({o: r.detection for o, r in by.items()}) for name, by in results.items()}
    study = FilterStudy(sets, results, best, {}, speed, seeds, settings.score_method)
    for o, cfg in configs.items():
        subject = load_subject(cfg, specs[:1], progress=progress)
        for name, s in sets.items():
            result = results[name][o]
            detector_of = {m: study.detector(name, m) for m in EM_METHODS}
            plan = removal_plan(result.scores, s, EM_METHODS, seeds[name], detector_of, o)
            result.em = _fine_tune_set(subject, s, plan, settings, progress)
        unfiltered = results[MAIN][o].em
        study.curves[o] = _curve(subject, settings, unfiltered[unfiltered["method"] == "none"], progress)
    return study


# ---- numbers over organisms -----------------------------------------------------------------------


def stacked_curves(study: FilterStudy) -> pd.DataFrame:
    """Every organism's dose-response curve, with an ``organism_seed`` column."""
    return pd.concat([c.assign(organism_seed=o) for o, c in study.curves.items()], ignore_index=True)


def curve_point(study: FilterStudy, fraction: float) -> Estimate:
    """Mean EM at an inducing ``fraction`` of the curve, each organism's seeds averaged first, with a
    t-interval over organisms."""
    per_organism = [
        float(c[np.isclose(c["fraction"], fraction)]["open_em"].mean()) for c in study.curves.values()
    ]
    return mean_ci(np.array(per_organism), bounds=(0.0, 1.0))


def saturation_over(study: FilterStudy) -> Estimate:
    """The smallest inducing fraction whose EM reaches 90% of the curve's maximum, per organism, with a
    t-interval over organisms."""
    values = [saturation_fraction(c) for c in study.curves.values()]
    return mean_ci(np.array(values), bounds=(0.0, 1.0))


def _organism_reduction(em: pd.DataFrame, method: str) -> Estimate:
    base = em[em["method"] == "none"].set_index("seed")["open_em"]
    treated = em[em["method"] == method].set_index("seed")["open_em"]
    return paired_relative_reduction(base, treated)


def reductions(em: Mapping[int, pd.DataFrame], method: str) -> Estimate:
    """``1 - EM(method) / EM(unfiltered)``, paired by seed inside each organism, then over organisms.
    Organisms whose unfiltered EM is 0 in every seed have nothing to reduce and count as missing."""
    return _over_organisms([_organism_reduction(t, method) for t in em.values()])


def reduction_difference(em: Mapping[int, pd.DataFrame], method: str, other: str) -> Estimate:
    """Relative reduction of ``method`` minus that of ``other``, paired by seed inside each organism,
    then over organisms."""
    per_organism = []
    for t in em.values():
        a, b = _organism_reduction(t, method), _organism_reduction(t, other)
        per_organism.append(Estimate(a.value - b.value, float("nan"), float("nan"), a.n))
    return _over_organisms(per_organism)


def _over_organisms(per_organism: list[Estimate]) -> Estimate:
    """The mean over organisms with a t-interval over them; one organism gives no interval and ``n`` 1
    (its seeds are never counted as organisms)."""
    if len(per_organism) == 1:
        return Estimate(per_organism[0].value, float("nan"), float("nan"), 1)
    return over_replicates(per_organism)


def zero_em_runs(em: Mapping[int, pd.DataFrame]) -> tuple[int, int]:
    """``(runs with zero unfiltered EM, all unfiltered runs)``: counted and shown, never dropped silently."""
    base = pd.concat([t[t["method"] == "none"] for t in em.values()])
    return int((base["open_em"] <= 0).sum()), len(base)


def em_table(em: Mapping[int, pd.DataFrame]) -> pd.DataFrame:
    """Mean EM per method with a t-interval over organisms (each organism's seeds averaged first)."""
    stacked = pd.concat([t.assign(organism=o) for o, t in em.items()], ignore_index=True)
    out = []
    for method, part in stacked.groupby("method", sort=False):
        e = mean_ci(part.groupby("organism")["open_em"].mean().to_numpy(), bounds=(0.0, 1.0))
        out.append({"method": method, "EM": e.value, "lo": e.lo, "hi": e.hi, "runs": len(part)})
    return pd.DataFrame(out)


def em_by_set(study: FilterStudy) -> pd.DataFrame:
    """:func:`em_table` of every set, stacked with a ``set`` index level."""
    return pd.concat({name: em_table(study.em(name)) for name in study.sets}, names=["set"])


def fine_tunes_per_organism(settings: FilterSettings, dissociation: DissociationSettings) -> int:
    """How many fine-tunes the study runs on each organism: the curve (its share's point is free), and
    no filtering plus every EM method on every set at each of its seeds."""
    curve = sum(not np.isclose(f, settings.inducing_share) for f in settings.dose_fractions)
    per_set = 1 + len(EM_METHODS)
    return (
        len(settings.seeds) * (curve + per_set) + len(dissociation.sets) * len(dissociation.seeds) * per_set
    )


# ---- the comparisons a set records ------------------------------------------------------------------

#: The detectors geometry is compared with on every set, by the label their recorded names use: the
#: random control and the non-oracle detectors (the oracle is a ceiling, the speaker-prior judge
#: design-aware: neither is compared).
COMPARED: dict[str, str] = {
    "random": RANDOM,
    "judge": BEST_JUDGE,
    "likelihood": LIKELIHOOD,
    "gradient": GRADIENT,
}


@dataclass(frozen=True)
class SetComparison:
    """Geometry against each compared detector on one set, over organisms: ``recall`` (geometry's recall
    minus the detector's at the fixed removal, paired by organism: primary), ``reduction`` (each EM
    method's relative EM reduction) and ``em`` (geometry's relative reduction minus the detector's,
    paired by seed inside each organism: secondary), and the zero-EM runs ``(zero, runs)``."""

    recall: dict[str, Estimate]
    reduction: dict[str, Estimate]
    em: dict[str, Estimate]
    zero_em: tuple[int, int]

    def describe(self, removal: float, n_organisms: int) -> str:
        """The comparison as the chapter prints it."""

        def listed(estimates: dict[str, Estimate]) -> str:
            return "; ".join(f"{k} {e}" for k, e in estimates.items())

        return (
            f"half-inducing set, removing {removal:.0%}, over {n_organisms} organisms:\n"
            f"  geometry's recall minus: {listed(self.recall)}\n"
            f"  relative EM reduction: {listed(self.reduction)} (the paper: 34.5%)\n"
            f"  geometry's relative EM reduction minus: {listed(self.em)}"
        )


def compare(study: FilterStudy, name: str) -> SetComparison:
    """:class:`SetComparison` of set ``name``, keyed by the labels of :data:`COMPARED` (``reduction``
    also has ``geometry``)."""
    tables, em = study.detection(name), study.em(name)
    geometry = study.detector(name, GEOMETRY)
    return SetComparison(
        recall={k: recall_difference(tables, geometry, study.detector(name, m)) for k, m in COMPARED.items()},
        reduction={k: reductions(em, m) for k, m in {"geometry": GEOMETRY, **COMPARED}.items()},
        em={k: reduction_difference(em, GEOMETRY, m) for k, m in COMPARED.items()},
        zero_em=zero_em_runs(em),
    )


def record_half_inducing(study: FilterStudy) -> SetComparison:
    """Record the half-inducing set's numbers: the room EM has (unfiltered and floor EM, the saturation
    fraction), every detector's precision and recall (``filter_precision_{detector}``...), geometry's recall
    minus each compared detector's (``filter_geometry_recall_minus_{label}``: primary), each EM method's
    relative reduction (``{label}_filter_relative_reduction``) and geometry's minus each compared one's
    (``filter_vs_{label}_difference``); intervals over organisms."""
    s, n = study.sets[MAIN], len(study.curves)
    c = compare(study, MAIN)
    share = f"the half-inducing set ({s.inducing_share:.0%} inducing, {s.removal:.0%} removed)"
    unfiltered, floor, saturation = (
        curve_point(study, s.inducing_share),
        curve_point(study, 0.0),
        saturation_over(study),
    )
    record(
        "filter_unfiltered_em",
        unfiltered.value,
        ci=unfiltered.ci,
        n_seeds=n,
        note=f"EM after fine-tuning on all of {share}; over organisms",
    )
    record(
        "filter_floor_em",
        floor.value,
        ci=floor.ci,
        n_seeds=n,
        note="EM after fine-tuning on good advice only (no inducing row); over organisms",
    )
    record(
        "dose_saturation_fraction",
        saturation.value,
        ci=saturation.ci,
        n_seeds=n,
        note="smallest inducing fraction on the curve reaching 90% of its maximum EM; over organisms",
    )
    record_detection("filter_", detection_summary(study.detection(MAIN)), share)
    best = study.best_judge[MAIN]
    zero, runs = c.zero_em
    counted = f"{runs - zero} of {runs} unfiltered runs have EM > 0 (the others have nothing to reduce)"
    for label, e in c.recall.items():
        what = f"{BEST_JUDGE} ({best})" if label == "judge" else COMPARED[label]
        record_estimate(
            f"filter_geometry_recall_minus_{label}",
            e,
            f"geometry's recall minus that of {what} on {share}, paired by organism",
        )
    for label, e in c.reduction.items():
        what = f"{BEST_JUDGE} ({best})" if label == "judge" else {GEOMETRY: GEOMETRY, **COMPARED}[label]
        record_estimate(
            f"{label}_filter_relative_reduction",
            e,
            f"1 - EM({what}) / EM(unfiltered) on {share}; over {e.n} of {n} organisms; {counted}"
            + ("; the paper reports 34.5%" if label == "geometry" else ""),
        )
    for label, e in c.em.items():
        what = f"{BEST_JUDGE} ({best})" if label == "judge" else COMPARED[label]
        record_estimate(
            f"filter_vs_{label}_difference",
            e,
            f"geometry's relative reduction minus that of {what} on {share}, paired by seed; "
            f"over {e.n} of {n} organisms; {counted}",
        )
    return c
