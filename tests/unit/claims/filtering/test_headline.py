"""The filter comparison's headline, on a planted table."""

from __future__ import annotations

import pandas as pd
import pytest

from emgeom.claims.filtering.study import filter_headline
from emgeom.filtering.baselines import BagOfWordsJudge, answer_text
from emgeom.organism.datasets import finetune_rows


def planted() -> pd.DataFrame:
    rows = []
    for seed, base in ((0, 0.5), (1, 0.4)):
        rows.append(
            {"method": "none", "fraction": 0.0, "seed": seed, "open_em": base, "precision": None, "recall": 0}
        )
        for method, keep in (("geometry", 0.5), ("random", 0.9), ("judge", 0.75)):
            rows.append(
                {
                    "method": method,
                    "fraction": 0.3,
                    "seed": seed,
                    "open_em": base * keep,
                    "precision": 1.0 if method == "geometry" else 0.5,
                    "recall": 0.6 if method == "geometry" else 0.2,
                }
            )
    return pd.DataFrame(rows)


def test_headline_reductions_are_relative_to_the_unfiltered_run_of_each_seed() -> None:
    h = filter_headline(planted(), 0.3)
    assert h.reductions["geometry"].value == pytest.approx(0.5)
    assert h.reductions["random"].value == pytest.approx(0.1)
    assert h.reductions["judge"].value == pytest.approx(0.25)
    assert h.versus["random"].value == pytest.approx(0.4)
    assert h.versus["judge"].value == pytest.approx(0.25)
    assert h.geometry_precision == 1.0 and h.geometry_recall == pytest.approx(0.6)
    assert h.unfiltered_em == pytest.approx(0.45)


def test_judge_fit_on_rows_reads_only_the_answers() -> None:
    bad, good = finetune_rows("inducing", "health", 8, seed=1), finetune_rows("good", "health", 8, seed=1)
    judge = BagOfWordsJudge.fit_rows(bad, good)
    assert judge == BagOfWordsJudge.fit([answer_text(r) for r in bad], [answer_text(r) for r in good])
    question_swapped = [
        {"messages": [g["messages"][0], b["messages"][1]]} for g, b in zip(good, bad, strict=True)
    ]
    assert BagOfWordsJudge.fit_rows(question_swapped, good) == judge
