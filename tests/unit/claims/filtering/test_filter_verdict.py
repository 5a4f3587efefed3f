"""The filtering claims' verdicts on planted results: the judge claim is decided on the dissociation sets by
geometry's recall minus each non-oracle detector's (best learned judge, design-blind likelihood judge,
gradient), all of which must be reproduced; the oracle and the design-aware judge never decide; the
reduction and random claims read the half-inducing set."""

from __future__ import annotations

import pytest

from emgeom.claims.filtering.verdict import CLAIMS, PARTS, dissociation_sets

JUDGE = {c.id: c.judge for c in CLAIMS}
SETS = ("bad_code", "quiz")


def entry(value: float, ci: tuple[float, float] | None) -> dict:
    return {
        "value": value,
        "ci": list(ci) if ci else None,
        "n_seeds": 3,
        "note": "",
        "sesoi": 0.1,
        "replicates": "organisms",
    }


ABOVE, ABSENT, BELOW, SPANS = (
    (0.3, (0.15, 0.45)),
    (0.0, (-0.05, 0.05)),
    (-0.3, (-0.45, -0.15)),
    (0.1, (-0.2, 0.4)),
)


def parts(**by_part: tuple[float, tuple[float, float]]) -> dict:
    """Every set's three recall comparisons, each planted as ``by_part[part]`` (default: above 0)."""
    return {
        f"dissociation_{name}_geometry_recall_minus_{part}": entry(*by_part.get(part, ABOVE))
        for name in SETS
        for part in PARTS
    }


@pytest.mark.parametrize(
    ("planted", "verdict"),
    [
        ({}, "reproduced"),
        ({"gradient": SPANS}, "inconclusive"),  # one undecided comparison leaves the claim undecided
        ({"likelihood": ABSENT}, "mixed"),  # geometry no better than the design-blind judge
        ({"judge": ABSENT, "likelihood": ABSENT, "gradient": ABSENT}, "absent"),
        ({"judge": BELOW, "likelihood": BELOW, "gradient": BELOW}, "contradicted"),
    ],
)
def test_every_non_oracle_detector_must_be_beaten_on_every_set(planted, verdict) -> None:
    v = JUDGE["filter_beats_judge"](parts(**planted))
    assert v.verdict == verdict
    assert all(name in v.measured for name in SETS)
    assert all(label in v.measured for label in PARTS.values()) and "recall" in v.measured
    assert v.decision is not None


def test_a_missing_part_on_one_set_leaves_the_claim_undecided() -> None:
    r = parts()
    del r["dissociation_quiz_geometry_recall_minus_gradient"]
    v = JUDGE["filter_beats_judge"](r)
    assert v.verdict == "inconclusive" and "minus gradient baseline not recorded" in v.measured


def test_the_oracle_the_design_aware_judge_and_em_differences_decide_nothing() -> None:
    r = parts()
    for name in SETS:  # geometry far below the oracle and the design-aware judge, and in EM
        r[f"dissociation_{name}_geometry_minus_oracle"] = entry(*BELOW)
        r[f"dissociation_{name}_geometry_recall_minus_oracle"] = entry(*BELOW)
        r[f"dissociation_{name}_geometry_recall_minus_speaker_prior"] = entry(*BELOW)
        r[f"dissociation_{name}_geometry_minus_judge"] = entry(*BELOW)
    r["filter_vs_judge_difference"] = entry(*BELOW)  # the lexically separable set does not decide either
    assert JUDGE["filter_beats_judge"](r).verdict == "reproduced"


def test_sets_are_found_from_any_recorded_comparison_and_only_dissociation_ones() -> None:
    r = {
        "dissociation_bad_code_geometry_recall_minus_judge": entry(*ABOVE),
        "dissociation_quiz_geometry_minus_oracle": entry(*ABOVE),
        "dissociation_quiz_recall_text_judge_4_labels": entry(*ABOVE),
        "filter_geometry_recall_minus_judge": entry(*ABOVE),
    }
    assert dissociation_sets(r) == ["bad_code", "quiz"]
    assert JUDGE["filter_beats_judge"](r).verdict == "inconclusive"  # their recall parts are missing


def test_without_dissociation_sets_the_judge_claim_falls_back_to_the_chapters_own_set() -> None:
    v = JUDGE["filter_beats_judge"]({"filter_vs_judge_difference": entry(*ABOVE)})
    assert v.verdict == "reproduced" and "no dissociation sets" in v.measured
    assert JUDGE["filter_beats_judge"]({}).verdict == "not run"


def test_reduction_and_random_claims_read_the_half_inducing_set() -> None:
    r = {"geometry_filter_relative_reduction": entry(*ABOVE), "filter_vs_random_difference": entry(*SPANS)}
    reduces, random = JUDGE["filter_reduces_em"](r), JUDGE["filter_beats_random"](r)
    assert reduces.verdict == "reproduced" and "paper: 34.5%" in reduces.measured
    assert "half-inducing set" in reduces.rule and "half-inducing set" in random.rule
    assert random.verdict == "inconclusive"
    assert JUDGE["filter_reduces_em"]({}).verdict == "not run"


def test_the_judge_claims_headline_is_a_verdict_part() -> None:
    claim = next(c for c in CLAIMS if c.id == "filter_beats_judge")
    assert claim.headline == ("dissociation_{set}_geometry_recall_minus_judge",)
    assert "recall" in claim.unit
