"""Precision and recall of the removed rows on planted removals, the best learned judge chosen over
organisms, and geometry's recall minus a detector's, paired by organism with a t-interval over
organisms computed here by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from emgeom.claims.filtering.detection import (
    RANDOM,
    best_learned_judge,
    detection_summary,
    detection_table,
    random_scores,
    recall_difference,
    slug,
)
from emgeom.claims.filtering.sets import FilterSet
from emgeom.organism.datasets import finetune_rows

T975 = {1: 12.706204736174694, 2: 4.302652729749462}  # t(0.975, df)


def planted_set() -> FilterSet:
    """20 rows: rows 0-9 inducing, rows 10-13 decoys, rows 14-19 good advice; the removal is 0.5."""
    truth = np.arange(20) < 10
    decoy = (np.arange(20) >= 10) & (np.arange(20) < 14)
    return FilterSet("planted", finetune_rows("good", "health", 20, seed=0), truth, decoy)


def planted_scores() -> dict[str, np.ndarray]:
    ranks = np.arange(20.0)
    return {
        "perfect": -ranks,  # the inducing rows first
        "inverse": ranks,  # the good advice first, then the decoys
        # 6 inducing rows (0-5), then all 4 decoys on top of the rest: removes 0-5 and 10-13
        "half": np.where(ranks < 6, 10.0, np.where((ranks >= 10) & (ranks < 14), 9.0, 0.0)),
        "tied": np.where(ranks < 10, 1.0, 0.0),  # every inducing row tied: still all removed
    }


def test_precision_and_recall_follow_the_planted_removals() -> None:
    s = planted_set()
    table = detection_table(planted_scores(), s, seeds=[0, 1, 2]).set_index("method")
    assert list(table.index) == ["perfect", "inverse", "half", "tied", RANDOM]
    assert table.loc["perfect", ["precision", "recall", "decoys removed"]].tolist() == [1.0, 1.0, 0.0]
    # the top 10 are rows 10-19: the 4 decoys and the 6 good rows
    assert table.loc["inverse", ["precision", "recall", "decoys removed"]].tolist() == [0.0, 0.0, 1.0]
    assert table.loc["half", ["precision", "recall", "decoys removed"]].tolist() == [0.6, 0.6, 1.0]
    assert table.loc["tied", ["precision", "recall"]].tolist() == [1.0, 1.0]
    # random: the mean over the seeds of the hits among the 10 rows drawn at each seed
    hits = []
    for seed in (0, 1, 2):
        drawn = np.argsort(-random_scores(20, seed), kind="stable")[:10]
        hits.append(np.sum(drawn < 10))
    assert table.loc[RANDOM, "recall"] == pytest.approx(np.mean(hits) / 10)
    assert table.loc[RANDOM, "precision"] == pytest.approx(np.mean(hits) / 10)  # removal = inducing share


def test_precision_and_recall_part_when_some_rows_have_no_score() -> None:
    s = planted_set()
    score = -np.arange(20.0)
    score[:4] = np.nan  # four inducing rows cannot be scored: 8 of the 16 scored rows are removed
    table = detection_table({"partial": score}, s, seeds=[0]).set_index("method")
    assert table.loc["partial", "precision"] == pytest.approx(6 / 8)  # rows 4-9 and 10, 11
    assert table.loc["partial", "recall"] == pytest.approx(6 / 10)


def organism_table(recalls: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"method": m, "precision": r, "recall": r, "decoys removed": 0.5} for m, r in recalls.items()]
    )


TABLES = {
    0: organism_table(
        {
            "sae harmful_mass": 0.8,
            "text judge (2 labels)": 0.9,
            "chat judge (2 labels)": 0.5,
            "oracle judge": 1.0,
        }
    ),
    1: organism_table(
        {
            "sae harmful_mass": 0.6,
            "text judge (2 labels)": 0.2,
            "chat judge (2 labels)": 0.5,
            "oracle judge": 1.0,
        }
    ),
    2: organism_table(
        {
            "sae harmful_mass": 0.7,
            "text judge (2 labels)": 0.2,
            "chat judge (2 labels)": 0.4,
            "oracle judge": 1.0,
        }
    ),
}


def test_the_best_learned_judge_is_one_choice_over_organisms_and_never_the_oracle() -> None:
    # organism 0's best is the text judge (0.9); over organisms the chat judge's mean 0.467 beats 0.433
    assert best_learned_judge(TABLES) == "chat judge (2 labels)"
    assert best_learned_judge({0: TABLES[0]}) == "text judge (2 labels)"
    with pytest.raises(ValueError, match="no learned judge"):
        best_learned_judge({0: organism_table({"oracle judge": 1.0, "gradient": 0.9})})


def test_recall_difference_is_paired_by_organism_with_an_interval_over_organisms() -> None:
    e = recall_difference(TABLES, "sae harmful_mass", "chat judge (2 labels)")
    diffs = [0.3, 0.1, 0.3]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    half = T975[2] * sd / math.sqrt(3)
    assert e.n == 3 and e.value == pytest.approx(mean)
    assert (e.lo, e.hi) == pytest.approx((mean - half, mean + half))
    flipped = recall_difference(TABLES, "chat judge (2 labels)", "sae harmful_mass")
    assert flipped.value == pytest.approx(-mean)


def test_the_detection_summary_gives_each_detector_an_interval_over_organisms() -> None:
    summary = detection_summary(TABLES).set_index("method")
    values = [0.8, 0.6, 0.7]
    half = T975[2] * np.std(values, ddof=1) / math.sqrt(3)
    row = summary.loc["sae harmful_mass"]
    assert row["recall"] == pytest.approx(0.7) and row["n"] == 3
    assert (row["recall lo"], row["recall hi"]) == pytest.approx((0.7 - half, 0.7 + half))
    assert row["precision"] == pytest.approx(0.7)
    oracle = summary.loc["oracle judge"]  # the same in every organism: a zero-width interval, clipped at 1
    assert (oracle["recall"], oracle["recall lo"], oracle["recall hi"]) == (1.0, 1.0, 1.0)


def test_slugs_name_each_detector_in_recorded_results() -> None:
    assert slug("text judge (4 labels)") == "text_judge_4_labels"
    assert slug("likelihood judge (design-blind)") == "likelihood_judge_design_blind"
    assert slug("speaker-prior judge (design-aware)") == "speaker_prior_judge_design_aware"
    assert slug("sae harmful_mass") == "sae_harmful_mass"
