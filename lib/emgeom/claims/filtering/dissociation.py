"""Filtering where reading the text is not enough: dissociation sets, every detector side by side, and
EM after removing what each detector flags, over organisms.

A dissociation set mixes EM-inducing rows (bad advice in ``domain``), *decoys* that look as harmful to a
reader of the answer but barely induce EM, and good advice:

- ``bad_code``: bad code advice (the organism's weakest inducer: its bad advice says little about the
  persona);
- ``quiz``: the very same bad answers as the inducing rows, after a user asked for a wrong answer (no EM).

The detectors: the three SAE scores (:data:`~emgeom.filtering.scoring.SCORE_METHODS`), the gradient
baseline, the judge ladder (oracle, text judges on a few to many labels, the label-free likelihood
judge: :mod:`emgeom.claims.filtering.judges`) and random removal. All remove the same share; precision and
recall are against the truly inducing rows (decoys count as false positives). EM is measured after
fine-tuning on what each of the main detectors keeps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from emgeom.claims.filtering.judges import (
    SpeakerLikelihoodJudge,
    gradient_scores,
    learned_judge,
    oracle_scores,
)
from emgeom.claims.filtering.organisms import filter_harmful_latents
from emgeom.claims.filtering.study import em_after_finetune
from emgeom.core.stats import Estimate, mean_ci, over_replicates, paired_relative_reduction
from emgeom.em.evaluators import Evaluator
from emgeom.filtering.scoring import SCORE_METHODS, detection_quality, removal_mask, score_rows
from emgeom.lm.chat import ChatRow
from emgeom.lm.finetune import FineTuneConfig
from emgeom.lm.models import load_model
from emgeom.organism.build import OrganismConfig
from emgeom.organism.datasets import finetune_rows, open_answer_rows
from emgeom.organism.study import OrganismSubject, study_organisms

#: Each dissociation set's decoys: (fine-tuning set kind, domain); ``None`` means the inducing domain.
DECOYS: dict[str, tuple[str, str | None]] = {"bad_code": ("inducing", "code"), "quiz": ("quiz", None)}


@dataclass(frozen=True)
class DissociationSettings:
    """What the study runs on each organism.

    Attributes:
        domain: the inducing domain.
        sets: names of the dissociation sets (keys of :data:`DECOYS`).
        n_rows: rows of each mixed set.
        inducing_fraction, decoy_fraction: shares of inducing rows and of decoys (the rest is good advice).
        removal: share of rows every detector removes.
        judge_labels: labelled answers per class of each learned judge (the ladder).
        em_methods: the detectors whose kept rows are fine-tuned on (besides no filtering).
        score_method: the SAE score called "geometry" in the EM comparison.
        k_harmful: harmful latents of the SAE scores.
        ft: the fine-tune; seeds: fine-tuning seeds per organism; evaluate: the EM evaluator.
    """

    domain: str
    sets: tuple[str, ...]
    n_rows: int
    inducing_fraction: float
    decoy_fraction: float
    removal: float
    judge_labels: tuple[int, ...]
    em_methods: tuple[str, ...]
    score_method: str
    k_harmful: int
    ft: FineTuneConfig
    seeds: tuple[int, ...]
    evaluate: Evaluator

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
        if not 0 < self.removal < 1 or not self.judge_labels or not self.seeds:
            raise ValueError("need 0 < removal < 1, at least one judge size and one seed")
        if self.score_method not in SCORE_METHODS:
            raise ValueError(f"score_method must be one of {SCORE_METHODS}")


def dissociation_set(
    name: str, s: DissociationSettings, seed: int = 0
) -> tuple[list[ChatRow], np.ndarray, np.ndarray]:
    """The rows of set ``name`` (shuffled), which are inducing, and which are decoys."""
    kind, decoy_domain = DECOYS[name]
    n_ind, n_dec = round(s.inducing_fraction * s.n_rows), round(s.decoy_fraction * s.n_rows)
    groups = [
        finetune_rows("inducing", s.domain, n_ind, seed=1),
        finetune_rows(kind, decoy_domain or s.domain, n_dec, seed=2),  # type: ignore[arg-type]
        finetune_rows("good", s.domain, s.n_rows - n_ind - n_dec, seed=1),
    ]
    labels = np.concatenate([np.full(len(g), i) for i, g in enumerate(groups)])
    rows = [r for g in groups for r in g]
    order = np.random.default_rng(seed).permutation(len(rows))
    return [rows[i] for i in order], labels[order] == 0, labels[order] == 1


def detector_scores(
    subject: OrganismSubject, rows: Sequence[ChatRow], s: DissociationSettings
) -> dict[str, np.ndarray]:
    """Every detector's score of every row (higher = remove first)."""
    hooked, sae, tokenizer = subject.hooked, subject.saes[0], subject.tokenizer
    harmful = filter_harmful_latents(subject, s.k_harmful)
    scores = {f"sae {m}": score_rows(hooked, sae, tokenizer, rows, harmful, m).scores for m in SCORE_METHODS}
    scores["gradient"] = gradient_scores(subject.model, tokenizer, rows, open_answer_rows(True, 32, seed=4))
    scores["oracle judge"] = oracle_scores(rows)
    for n in s.judge_labels:
        scores[f"text judge ({n} labels)"] = learned_judge(n).score_rows(rows)
        scores[f"chat judge ({n} labels)"] = learned_judge(n, reads="chat").score_rows(rows)
    pretrained, pretrained_tokenizer = load_model(subject.organism.pretrained)
    scores["likelihood judge"] = SpeakerLikelihoodJudge(pretrained, pretrained_tokenizer).score_rows(rows)
    return scores


def _random_scores(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, 9_999]).random(n)


def _tie_broken(score: np.ndarray, seed: int) -> np.ndarray:
    """The score with ties broken at random, afresh per seed (the oracle's 0/1 scores are all ties)."""
    spread = float(np.nanmax(np.abs(score))) if np.isfinite(score).any() else 1.0
    return score + 1e-9 * max(spread, 1.0) * np.random.default_rng([seed, 4_242]).random(score.size)


BEST_JUDGE = "best learned judge"


@dataclass
class OrganismDissociation:
    """One organism, one set: ``detection`` (one row per detector: precision, recall, decoys removed),
    ``em`` (one row per fine-tuned method and seed: ``method, seed, open_em``...) and which learned judge
    had the best recall (the one :data:`BEST_JUDGE` in ``em`` stands for)."""

    detection: pd.DataFrame
    em: pd.DataFrame
    best_judge: str = ""


def organism_dissociation(
    subject: OrganismSubject, name: str, s: DissociationSettings, progress: bool = False
) -> OrganismDissociation:
    """Detection by every detector, then EM after fine-tuning on what each of ``s.em_methods`` keeps
    (:data:`BEST_JUDGE`: the learned judge with the best recall on this set, the judge at full strength)."""
    rows, truth, decoy = dissociation_set(name, s)
    scores = detector_scores(subject, rows, s) | {"random": _random_scores(len(rows), 0)}
    detection = []
    for method, score in scores.items():
        remove = removal_mask(_tie_broken(score, 0), s.removal)
        precision, recall = detection_quality(remove, truth)
        detection.append(
            {
                "method": method,
                "precision": precision,
                "recall": recall,
                "decoys removed": float((remove & decoy).sum() / max(decoy.sum(), 1)),
            }
        )
    table = pd.DataFrame(detection)
    learned = table[table["method"].str.contains("judge (", regex=False)]
    best = str(learned.sort_values("recall", ascending=False, kind="stable")["method"].iloc[0])
    keys = {"geometry": f"sae {s.score_method}", BEST_JUDGE: best}
    jobs = [("none", seed) for seed in s.seeds] + [(m, seed) for m in s.em_methods for seed in s.seeds]
    em = []
    for method, seed in tqdm(jobs, desc=f"dissociation {name}", disable=not progress):
        if method == "none":
            remove = np.zeros(len(rows), dtype=bool)
        elif method == "random":
            remove = removal_mask(_random_scores(len(rows), seed), s.removal)
        else:
            remove = removal_mask(_tie_broken(scores[keys.get(method, method)], seed), s.removal)
        kept = [r for r, rm in zip(rows, remove, strict=True) if not rm]
        em.append(
            {
                "method": method,
                "seed": seed,
                **em_after_finetune(subject.model, subject.tokenizer, kept, s.ft, seed, s.evaluate),
            }
        )
    return OrganismDissociation(table, pd.DataFrame(em), best)


def dissociation_over_organisms(
    configs: Mapping[int, OrganismConfig],
    specs: Sequence[Any],
    s: DissociationSettings,
    progress: bool = False,
) -> dict[str, dict[int, OrganismDissociation]]:
    """:func:`organism_dissociation` of every set on every organism: ``{set: {organism: result}}``."""
    by_organism = study_organisms(
        configs,
        specs[:1],
        lambda subject: {name: organism_dissociation(subject, name, s, progress) for name in s.sets},
        progress,
    )
    return {name: {o: sets[name] for o, sets in by_organism.items()} for name in s.sets}


def detection_table(results: Mapping[int, OrganismDissociation]) -> pd.DataFrame:
    """Precision, recall and decoys removed per detector, mean over organisms."""
    stacked = pd.concat([r.detection.assign(organism=o) for o, r in results.items()], ignore_index=True)
    return (
        stacked.groupby("method", sort=False)[["precision", "recall", "decoys removed"]].mean().reset_index()
    )


def reductions(results: Mapping[int, OrganismDissociation], method: str) -> Estimate:
    """``1 - EM(method) / EM(unfiltered)``, paired by seed inside each organism, then over organisms.
    Organisms whose unfiltered EM is 0 in every seed have nothing to reduce and count as missing."""
    return over_replicates([_organism_reduction(r.em, method) for r in results.values()])


def _organism_reduction(em: pd.DataFrame, method: str) -> Estimate:
    base = em[em["method"] == "none"].set_index("seed")["open_em"]
    treated = em[em["method"] == method].set_index("seed")["open_em"]
    return paired_relative_reduction(base, treated)


def reduction_difference(results: Mapping[int, OrganismDissociation], method: str, other: str) -> Estimate:
    """Relative reduction of ``method`` minus that of ``other``, paired by seed, then over organisms."""
    per_organism = []
    for r in results.values():
        a, b = _organism_reduction(r.em, method), _organism_reduction(r.em, other)
        per_organism.append(Estimate(a.value - b.value, float("nan"), float("nan"), a.n))
    return over_replicates(per_organism)


def zero_em_runs(results: Mapping[int, OrganismDissociation]) -> tuple[int, int]:
    """``(runs with zero unfiltered EM, all unfiltered runs)``: counted and shown, never dropped silently."""
    base = pd.concat([r.em[r.em["method"] == "none"] for r in results.values()])
    return int((base["open_em"] <= 0).sum()), len(base)


def em_table(results: Mapping[int, OrganismDissociation]) -> pd.DataFrame:
    """Mean EM per method with a t-interval over organisms (each organism's seeds averaged first)."""
    stacked = pd.concat([r.em.assign(organism=o) for o, r in results.items()], ignore_index=True)
    out = []
    for method, part in stacked.groupby("method", sort=False):
        e = mean_ci(part.groupby("organism")["open_em"].mean().to_numpy(), bounds=(0.0, 1.0))
        out.append({"method": method, "EM": e.value, "lo": e.lo, "hi": e.hi, "runs": len(part)})
    return pd.DataFrame(out)


def detection_by_set(results: Mapping[str, Mapping[int, OrganismDissociation]]) -> dict[str, pd.DataFrame]:
    """:func:`detection_table` of every dissociation set."""
    return {name: detection_table(by_organism) for name, by_organism in results.items()}


def em_by_set(results: Mapping[str, Mapping[int, OrganismDissociation]]) -> pd.DataFrame:
    """:func:`em_table` of every dissociation set, stacked with a ``set`` index level."""
    return pd.concat({name: em_table(by_organism) for name, by_organism in results.items()}, names=["set"])


def _slug(method: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in method.lower()).strip("_").replace("__", "_")


def record_dissociation(
    results: Mapping[str, Mapping[int, OrganismDissociation]], detection: Mapping[str, pd.DataFrame]
) -> None:
    """Record, per dissociation set: the relative EM reduction of geometry, the oracle judge, the
    gradient, the best learned judge and the likelihood judge; geometry minus the oracle, minus the best
    learned judge and minus the likelihood judge (paired by seed inside each organism, interval over
    organisms; ``n_seeds`` counts the organisms that had EM to reduce); and every detector's precision
    and recall against the truly inducing rows."""
    from emgeom.core.results import record

    for name, by_organism in results.items():
        n = len(by_organism)
        zero, runs = zero_em_runs(by_organism)
        best = ", ".join(sorted({r.best_judge for r in by_organism.values()}))
        counted = f"{runs - zero} of {runs} runs have unfiltered EM > 0 (the others have nothing to reduce)"
        methods = (
            ("geometry", "geometry"),
            ("oracle judge", "oracle"),
            ("gradient", "gradient"),
            (BEST_JUDGE, "best_judge"),
            ("likelihood judge", "likelihood"),
        )
        for method, label in methods:
            e = reductions(by_organism, method)
            record(
                f"dissociation_{name}_{label}_relative_reduction",
                e.value,
                ci=e.ci,
                n_seeds=max(e.n, 1),
                note=f"1 - EM({method}) / EM(unfiltered); over {e.n} of {n} organisms; {counted}",
            )
        for other, label in (
            ("oracle judge", "oracle"),
            (BEST_JUDGE, "judge"),
            ("likelihood judge", "likelihood"),
        ):
            e = reduction_difference(by_organism, "geometry", other)
            what = f"{other} ({best})" if other == BEST_JUDGE else other
            record(
                f"dissociation_{name}_geometry_minus_{label}",
                e.value,
                ci=e.ci,
                n_seeds=max(e.n, 1),
                note=f"geometry minus {what}, relative reduction, paired by seed; "
                f"over {e.n} of {n} organisms; {counted}",
            )
        for _, row in detection[name].iterrows():
            slug = _slug(row["method"])
            record(
                f"dissociation_{name}_precision_{slug}",
                row["precision"],
                n_seeds=n,
                note=f"{row['method']}: removed rows that were inducing "
                f"(share of decoys removed {row['decoys removed']:.2f})",
            )
            record(
                f"dissociation_{name}_recall_{slug}",
                row["recall"],
                n_seeds=n,
                note=f"{row['method']}: inducing rows that were removed",
            )


def describe_dissociation(detection: Mapping[str, pd.DataFrame], geometry: str) -> str:
    """One line per set, computed from the detection tables: the detector with the best recall, where
    ``geometry`` (the score the chapter calls geometry) stands, and whether the gradient baseline beats it."""
    lines = []
    for name, table in detection.items():
        by = table.set_index("method")["recall"]
        best = str(by.idxmax())
        g, grad = by.get(geometry, float("nan")), by.get("gradient", float("nan"))
        oracle, likelihood = by.get("oracle judge", float("nan")), by.get("likelihood judge", float("nan"))
        lines.append(
            f"{name}: best recall {best} ({by[best]:.2f}); {geometry} {g:.2f}, oracle {oracle:.2f}, "
            f"likelihood judge {likelihood:.2f}; the gradient baseline "
            + ("beats" if grad > g else "does not beat")
            + f" the SAE score ({grad:.2f})."
        )
    return "\n".join(lines)
