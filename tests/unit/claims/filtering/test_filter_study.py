"""Pieces of the filtering experiment: mixed sets, the dose rule, paired reductions, the judge,
the scorecard."""

from __future__ import annotations

import pandas as pd
import pytest

from emgeom.book.pages.scorecard import render_scorecard
from emgeom.claims.filtering.study import (
    check_study_parameters,
    choose_dose,
    filter_summary,
    mixed_set,
    reduction_difference,
    relative_reduction,
)
from emgeom.filtering.baselines import BagOfWordsJudge, answer_text
from emgeom.organism.datasets import finetune_rows


def test_mixed_set_has_the_requested_dose() -> None:
    ind, ben = finetune_rows("inducing", "legal", 50, 0), finetune_rows("good", "legal", 50, 0)
    rows, truth = mixed_set(ind, ben, 40, 0.25, seed=3)
    assert len(rows) == 40 and truth.sum() == 10
    assert all((r in ind) == t for r, t in zip(rows, truth, strict=True))
    assert mixed_set(ind, ben, 40, 0.25, seed=3)[0] == rows
    with pytest.raises(ValueError, match="need 40 inducing"):
        mixed_set(ind[:10], ben, 40, 1.0, seed=0)


def test_dose_rule_picks_the_middle_of_the_rise() -> None:
    curve = pd.DataFrame(
        {
            "fraction": [0.0, 0.1, 0.25, 0.5, 1.0] * 2,
            "open_em": [0.0, 0.05, 0.12, 0.3, 0.4, 0.0, 0.07, 0.16, 0.3, 0.44],
        }
    )
    assert choose_dose(curve) == 0.5  # half-way to 0.42 is 0.21: first reached at 0.5
    saturated = pd.DataFrame({"fraction": [0.0, 0.02, 0.5], "open_em": [0.0, 0.8, 0.8]})
    assert choose_dose(saturated) == 0.02


def test_reductions_are_paired_by_seed() -> None:
    table = pd.DataFrame(
        {
            "method": ["none", "none", "geometry", "geometry", "random", "random"],
            "fraction": [0.0, 0.0, 0.3, 0.3, 0.3, 0.3],
            "seed": [0, 1, 0, 1, 0, 1],
            "open_em": [0.4, 0.2, 0.2, 0.1, 0.4, 0.2],
        }
    )
    geo = relative_reduction(table, "geometry", 0.3)
    assert geo.value == pytest.approx(0.5) and geo.n == 2
    assert relative_reduction(table, "random", 0.3).value == pytest.approx(0.0)
    assert reduction_difference(table, "geometry", "random", 0.3).value == pytest.approx(0.5)


def test_judge_learns_from_a_few_examples_and_ranks_unseen_answers() -> None:
    bad = [answer_text(r) for r in finetune_rows("inducing", "health", 4, 7)]
    good = [answer_text(r) for r in finetune_rows("good", "health", 4, 7)]
    judge = BagOfWordsJudge.fit(bad, good)
    assert judge.score(bad[0]) > judge.score(good[0])
    rows = finetune_rows("inducing", "health", 20, 1) + finetune_rows("good", "health", 20, 1)
    scores = judge.score_rows(rows)
    assert scores[:20].mean() > scores[20:].mean()
    with pytest.raises(ValueError, match="at least one"):
        BagOfWordsJudge.fit([], good)


def _doc(profile: str, **values: float | tuple[float, tuple[float, float]]) -> dict:
    results = {}
    for name, v in values.items():
        value, ci = v if isinstance(v, tuple) else (v, None)
        results[name] = {"value": value, "ci": list(ci) if ci else None, "n_seeds": 3, "note": ""}
    return {"chapter": "x", "profile": profile, "results": results}


def test_scorecard_verdicts_follow_the_recorded_numbers() -> None:
    gaps = {f"similarity_gap_excl_shared_{d}": (0.3, (0.1, 0.5)) for d in ("health", "career", "legal")}
    gaps["similarity_gap_excl_shared_career"] = (0.2, (-0.1, 0.5))  # career's interval spans 0
    ps = {f"similarity_gap_target_pvalue_{d}": 0.001 for d in ("health", "career", "legal")}
    page = render_scorecard(
        {
            "02": _doc("cpu", first_order_pearson_r=(0.99, (0.98, 1.0)), ce_first_order_pearson_r=0.95),
            "04": _doc("cpu", **gaps, **ps),
            "06": _doc("cpu", geometry_filter_relative_reduction=(0.2, (-0.1, 0.5))),
            "05": _doc("smoke", mechanism_pearson_r=(0.9, (0.8, 1.0))),  # another profile: ignored
        },
        profile="cpu",
    )
    rows = {line.split("|")[1].strip(): line for line in page.splitlines() if line.startswith("| ")}
    assert "**holds by construction**" in next(
        v for k, v in rows.items() if k.startswith("A fine-tuning step")
    )
    # career's gap spans 0 (and no declarations give a SESOI): undecided, so the claim is
    assert "**inconclusive**" in next(v for k, v in rows.items() if "health, career and legal" in k)
    assert "**not run**" in next(v for k, v in rows.items() if k.startswith("Fine-tuning amplifies"))
    # no declarations handed to the page: no SESOI, nothing decides
    assert "**inconclusive**" in next(v for k, v in rows.items() if k.startswith("Removing the samples"))
    assert "20.0% [-10.0%, 50.0%] (CI includes 0) (paper: 34.5%)" in page


def test_filter_summary_has_one_row_per_method_and_fraction() -> None:
    rows = [
        {
            "method": "none",
            "fraction": 0.0,
            "seed": s,
            "open_em": 0.5,
            "precision": float("nan"),
            "recall": 0.0,
        }
        for s in (0, 1)
    ]
    for method, em in (("geometry", 0.25), ("random", 0.5), ("judge", 0.4)):
        rows += [
            {"method": method, "fraction": 0.3, "seed": s, "open_em": em, "precision": 0.9, "recall": 0.6}
            for s in (0, 1)
        ]
    summary = filter_summary(pd.DataFrame(rows), [0.3]).set_index("method")
    assert list(summary.index) == ["geometry", "random", "judge"]
    assert summary.loc["geometry", "relative reduction"] == pytest.approx(0.5)
    assert summary.loc["random", "relative reduction"] == pytest.approx(0.0)
    assert summary.loc["judge", "EM"] == pytest.approx(0.4) and summary.loc[
        "judge", "recall"
    ] == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope", [0.5], [0.3], 0.3, [0]), "score_method must be one of"),
        (
            ("harmful_mass", [0.5], [0.3], 0.2, [0]),
            r"main_removal \(0.2\) must be one of removal_fractions \[0.3\]",
        ),
        (("harmful_mass", [1.5], [0.3], 0.3, [0]), r"fractions must lie in \[0, 1\]"),
        (("harmful_mass", [], [0.3], 0.3, [0]), "at least one dose fraction"),
        (("harmful_mass", [0.5], [0.3], 0.3, []), "one seed"),
    ],
)
def test_study_parameters_are_refused_before_work(args, message) -> None:
    with pytest.raises(ValueError, match=message):
        check_study_parameters(*args)
    check_study_parameters("harmful_mass", [0.0, 0.5], [0.3], 0.3, [0])
