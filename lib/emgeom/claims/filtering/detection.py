"""Which rows each detector removes, and how well: precision and recall of the removed rows against the
known inducing ones, at the set's fixed removal (its inducing share), per organism and over organisms.

The detectors: the three SAE scores (:data:`~emgeom.filtering.scoring.SCORE_METHODS`; the one the chapter
calls *geometry* is its ``score_method``), the gradient baseline, the judge ladder (the oracle; text and
chat judges on a few to many labels; the design-blind likelihood judge and the design-aware speaker-prior
judge: :mod:`emgeom.claims.filtering.judges`) and random removal.

Precision and recall are the primary outcome of every detector; EM after fine-tuning on what a detector
keeps is secondary (:mod:`emgeom.claims.filtering.organisms`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from emgeom.claims.filtering.judges import (
    LIKELIHOOD,
    ORACLE,
    SPEAKER_PRIOR,
    AlignmentLikelihoodJudge,
    SpeakerLikelihoodJudge,
    chat_judge_name,
    gradient_scores,
    is_learned_judge,
    learned_judge,
    oracle_scores,
    text_judge_name,
)
from emgeom.claims.filtering.sets import FilterSet
from emgeom.core.stats import Estimate, mean_ci
from emgeom.filtering.scoring import SCORE_METHODS, detection_quality, removal_mask, score_rows
from emgeom.lm.chat import ChatRow
from emgeom.lm.models import load_model
from emgeom.organism.datasets import open_answer_rows
from emgeom.organism.study import OrganismSubject
from emgeom.sae.geometry import harmful_latents

RANDOM = "random"


def sae_name(method: str) -> str:
    """The detector name of SAE score ``method``."""
    return f"sae {method}"


def filter_harmful_latents(subject: OrganismSubject, k_harmful: int) -> np.ndarray:
    """The harmful latents every SAE score of chapter 6 uses: the top ``k_harmful`` of 50 hostile minus 50
    kind answers (a draw apart from chapter 4's), on the organism's first SAE."""
    return harmful_latents(
        subject.hooked,
        subject.saes[0],
        subject.tokenizer,
        open_answer_rows(True, 50, seed=3),
        open_answer_rows(False, 50, seed=3),
        k_harmful,
    )


def detector_scores(
    subject: OrganismSubject,
    sets: Mapping[str, Sequence[ChatRow]],
    judge_labels: Sequence[int],
    k_harmful: int,
    timed: str = "",
) -> tuple[dict[str, dict[str, np.ndarray]], float]:
    """Every detector's score of every row of every set (higher = remove first): ``{set: {detector:
    scores}}``, and the SAE score ``timed``'s throughput on the first set (samples per second; NaN when
    none is timed)."""
    hooked, sae, tokenizer = subject.hooked, subject.saes[0], subject.tokenizer
    harmful = filter_harmful_latents(subject, k_harmful)
    pretrained, _ = load_model(subject.organism.pretrained)
    design_blind = AlignmentLikelihoodJudge(pretrained, subject.model, tokenizer)
    design_aware = SpeakerLikelihoodJudge(pretrained, tokenizer)
    hostile = open_answer_rows(True, 32, seed=4)
    judges = {text_judge_name(n): learned_judge(n) for n in judge_labels}
    judges |= {chat_judge_name(n): learned_judge(n, reads="chat") for n in judge_labels}
    out, speed = {}, float("nan")
    for name, rows in sets.items():
        scores = {}
        for m in SCORE_METHODS:
            result = score_rows(hooked, sae, tokenizer, rows, harmful, m)
            scores[sae_name(m)] = result.scores
            if m == timed and not out:
                speed = result.samples_per_second
        scores["gradient"] = gradient_scores(subject.model, tokenizer, rows, hostile)
        scores[ORACLE] = oracle_scores(rows)
        scores |= {judge: j.score_rows(rows) for judge, j in judges.items()}
        scores[LIKELIHOOD] = design_blind.score_rows(rows)
        scores[SPEAKER_PRIOR] = design_aware.score_rows(rows)
        out[name] = scores
    return out, speed


def random_scores(n: int, seed: int, replicate: int = 0) -> np.ndarray:
    """Random scores for random removal at fine-tuning seed ``seed`` on organism ``replicate``: a fresh
    draw per organism (its variation is part of what the interval over organisms is over), the same for
    every method's fine-tune of that organism and seed (paired by seed)."""
    return np.random.default_rng([seed, 9_999, replicate]).random(n)


def tie_broken(score: np.ndarray, seed: int, replicate: int = 0) -> np.ndarray:
    """The score with ties broken at random, afresh per seed and organism (the oracle's 0/1 scores are all
    ties)."""
    spread = float(np.nanmax(np.abs(score))) if np.isfinite(score).any() else 1.0
    jitter = np.random.default_rng([seed, 4_242, replicate]).random(score.size)
    return score + 1e-9 * max(spread, 1.0) * jitter


def removed_rows(
    scores: Mapping[str, np.ndarray], detector: str, fraction: float, seed: int, replicate: int = 0
) -> np.ndarray:
    """The rows ``detector`` removes at ``fraction`` for fine-tuning seed ``seed`` on organism
    ``replicate``: its top rows, ties broken at random; for :data:`RANDOM`, a random draw of the same
    size."""
    n = len(next(iter(scores.values())))
    if detector == RANDOM:
        return removal_mask(random_scores(n, seed, replicate), fraction)
    return removal_mask(tie_broken(scores[detector], seed, replicate), fraction)


def detection_table(
    scores: Mapping[str, np.ndarray], s: FilterSet, seeds: Sequence[int], replicate: int = 0
) -> pd.DataFrame:
    """One organism (``replicate``), one set: per detector (and :data:`RANDOM`), precision and recall of
    the rows it removes at the set's fixed removal against the inducing rows, and the share of decoys
    removed, each the mean over ``seeds`` (the removals the fine-tunes use: ties and random draws per
    seed)."""
    out = []
    for detector in [*scores, RANDOM]:
        per_seed = []
        for seed in seeds:
            remove = removed_rows(scores, detector, s.removal, seed, replicate)
            precision, recall = detection_quality(remove, s.truth)
            decoys = float((remove & s.decoy).sum() / s.decoy.sum()) if s.decoy.any() else float("nan")
            per_seed.append((precision, recall, decoys))
        precision, recall, decoys = np.mean(per_seed, axis=0)
        out.append({"method": detector, "precision": precision, "recall": recall, "decoys removed": decoys})
    return pd.DataFrame(out)


def best_learned_judge(tables: Mapping[Any, pd.DataFrame]) -> str:
    """The learned judge with the highest mean recall over organisms (``tables``: one detection table per
    organism, of the same set). One choice for every organism, made with the truth in the judge's favour:
    geometry is compared with the judge at full strength, not with one picked per organism."""
    stacked = pd.concat(tables.values(), ignore_index=True)
    learned = stacked[stacked["method"].map(is_learned_judge)]
    if learned.empty:
        raise ValueError("no learned judge in the detection tables")
    recall = learned.groupby("method", sort=False)["recall"].mean()
    return str(recall.sort_values(ascending=False, kind="stable").index[0])


def _per_organism(tables: Mapping[Any, pd.DataFrame], detector: str, column: str) -> np.ndarray:
    return np.array([float(t.set_index("method").loc[detector, column]) for t in tables.values()])


def detection_summary(tables: Mapping[Any, pd.DataFrame]) -> pd.DataFrame:
    """Per detector, precision and recall with 95% t-intervals over organisms (each organism's seeds
    averaged first) and the mean share of decoys removed; ``n`` is the organisms."""
    first = next(iter(tables.values()))
    out = []
    for detector in first["method"]:
        row: dict[str, Any] = {"method": detector}
        for column in ("precision", "recall"):
            e = mean_ci(_per_organism(tables, detector, column), bounds=(0.0, 1.0))
            row |= {column: e.value, f"{column} lo": e.lo, f"{column} hi": e.hi}
        decoys = _per_organism(tables, detector, "decoys removed")
        row["decoys removed"] = float(decoys.mean()) if np.isfinite(decoys).all() else float("nan")
        row["n"] = len(tables)
        out.append(row)
    return pd.DataFrame(out)


def recall_difference(tables: Mapping[Any, pd.DataFrame], detector: str, other: str) -> Estimate:
    """Recall of ``detector`` minus that of ``other`` at the set's fixed removal, paired by organism,
    with a t-interval over organisms."""
    return mean_ci(
        _per_organism(tables, detector, "recall") - _per_organism(tables, other, "recall"), bounds=(-1.0, 1.0)
    )


def slug(method: str) -> str:
    """A detector's name as it appears in recorded result names (``text judge (4 labels)`` ->
    ``text_judge_4_labels``)."""
    out = "".join(c if c.isalnum() else "_" for c in method.lower()).strip("_")
    while "__" in out:
        out = out.replace("__", "_")
    return out


def record_detection(prefix: str, summary: pd.DataFrame, what: str) -> None:
    """Record every detector's precision and recall of ``summary`` (:func:`detection_summary`) as
    ``{prefix}precision_{detector}`` and ``{prefix}recall_{detector}``, with intervals over organisms."""
    from emgeom.core.results import record

    for _, row in summary.iterrows():
        n = int(row["n"])
        decoys = (
            ""
            if np.isnan(row["decoys removed"])
            else f"; share of decoys removed {row['decoys removed']:.2f}"
        )
        for column, meaning in (
            ("precision", "removed rows that were inducing"),
            ("recall", "inducing rows removed"),
        ):
            record(
                f"{prefix}{column}_{slug(row['method'])}",
                row[column],
                ci=(row[f"{column} lo"], row[f"{column} hi"]),
                n_seeds=n,
                note=f"{row['method']} on {what}: {meaning}, at the fixed removal (the inducing share); "
                f"mean over {n} organisms{decoys}",
            )
