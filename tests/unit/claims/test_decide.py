"""The three-way decision and the design's power, on hand-computed cases."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from emgeom.book.pages.scorecard import scorecard_summary
from emgeom.claims.verdicts import (
    Decision,
    combine,
    decide,
    minimum_detectable,
    replicates_needed,
    weakest,
)
from emgeom.core.results import DeclarationError, load_declarations

T975_2, T80_2 = 4.302652729911275, 1.0606601717798212  # t quantiles on 2 degrees of freedom


def entry(lo: float, hi: float, n: int = 3, sesoi: float = 0.1, replicates: str = "organisms") -> dict:
    return {"value": (lo + hi) / 2, "ci": [lo, hi], "n_seeds": n, "sesoi": sesoi, "replicates": replicates}


def test_the_mde_comes_from_the_intervals_width_on_its_degrees_of_freedom() -> None:
    se = 0.1
    e = entry(0.2 - T975_2 * se, 0.2 + T975_2 * se)
    mde, sd = minimum_detectable(e)
    assert mde == pytest.approx((T975_2 + T80_2) * se)  # 0.536
    assert sd == pytest.approx(se * math.sqrt(3))
    assert minimum_detectable({"value": 0.2, "ci": None, "n_seeds": 3}) == (None, None)
    assert minimum_detectable(entry(0.1, 0.3, n=1)) == (None, None)


def test_the_replicates_needed_match_the_textbook_case() -> None:
    # one SD of effect at 80% power, two-sided 5%: (t.975 + t.8) / sqrt(m) <= 1 first at m = 10
    assert replicates_needed(1.0, 1.0) == 10
    assert replicates_needed(1.0, 2.0) < 10 < replicates_needed(1.0, 0.5)
    assert replicates_needed(1.0, 1e-4, limit=50) is None


@pytest.mark.parametrize(
    ("e", "gates", "verdict"),
    [
        (entry(0.05, 0.3), [], "reproduced"),
        (entry(0.05, 0.3), [("task kept", False)], "inconclusive"),
        (entry(-0.05, 0.08), [], "absent"),  # inside ±0.1
        (entry(-0.05, 0.12), [], "inconclusive"),  # reaches past the SESOI
        (entry(-0.3, -0.05), [], "contradicted"),
        (entry(0.05, 0.3, replicates="seeds of one organism"), [], "inconclusive"),
    ],
)
def test_decide_three_ways_over_organisms(e: dict, gates: list, verdict: str) -> None:
    d = decide(e, gates)
    assert d.verdict == verdict
    if gates:
        assert d.why == "gate not met: task kept"
    if e["replicates"] != "organisms":
        assert "not organisms" in d.why


def test_the_power_text_says_what_would_decide() -> None:
    d = decide(entry(-0.2, 0.4))
    assert d.mde is not None and d.mde > 0.1 and d.needed is not None and d.needed > 3
    assert f"{d.needed} organisms would decide" in d.power_text()
    assert "SESOI 0.1" in d.power_text() and "n=3 organisms" in d.power_text()


def _d(verdict: str) -> Decision:
    return Decision(verdict, "", 0.1, 0.2, 8, 3, "organisms")


@pytest.mark.parametrize(
    ("parts", "verdict"),
    [
        (["reproduced", "reproduced"], "reproduced"),
        (["absent", "contradicted"], "absent"),
        (["contradicted", "contradicted"], "contradicted"),
        (["reproduced", "absent"], "mixed"),
        (["reproduced", "inconclusive"], "inconclusive"),
        ([], "not run"),
    ],
)
def test_parts_combine(parts: list[str], verdict: str) -> None:
    assert combine([_d(v) for v in parts]) == verdict


def test_the_summary_counts_decided_claims_and_leaves_out_the_construction() -> None:
    r = {
        "first_order_pearson_r": {"value": 0.99, "ci": None, "n_seeds": 3},
        "ce_first_order_pearson_r": {"value": 0.99, "ci": None, "n_seeds": 3},
        "geometry_filter_relative_reduction": entry(0.05, 0.3),
        "filter_vs_random_difference": entry(-0.4, 0.5),
        "n_organisms": {"value": 3.0, "ci": None, "n_seeds": 1},
    }
    summary = scorecard_summary(r, "cpu")
    assert (summary["claims_decided"], summary["claims_total"], summary["n_organisms"]) == (1, 2, 3)
    assert summary["claims"]["filter_reduces_em"]["verdict"] == "reproduced"
    assert summary["claims"]["filter_beats_random"]["replicates_needed"] > 3
    assert summary["claims"]["derivation"]["verdict"] == "holds by construction"
    assert summary["claims_decidable"] == ["filter_reduces_em"]  # the other's MDE is far above its SESOI
    # a narrow interval that straddles 0 and one SESOI edge: undecided, but the design could decide it
    narrow = scorecard_summary(r | {"filter_vs_random_difference": entry(-0.01, 0.11)}, "cpu")
    assert narrow["claims"]["filter_beats_random"]["verdict"] == "inconclusive"
    assert narrow["claims_decidable"] == ["filter_reduces_em", "filter_beats_random"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("  sesoi: 0.1\n  replicates: organisms\n", "needs its sesoi_reason"),
        ("  sesoi: -0.1\n  replicates: organisms\n  sesoi_reason: why\n", "positive number"),
        ("  sesoi: 0.1\n  sesoi_reason: why\n", "needs replicates"),
        ("  sesoi_reason: why\n", "go with a sesoi"),
    ],
)
def test_a_sesoi_is_declared_with_its_reason_and_replicates(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "x.results.yaml"
    path.write_text("gap:\n  meaning: m\n  unit: u\n" + extra)
    with pytest.raises(DeclarationError, match=message):
        load_declarations(path)


def test_every_claims_headline_in_the_book_declares_its_sesoi() -> None:
    root = Path(__file__).resolve().parents[3] / "notebooks"
    declared = {n: d for f in root.glob("*.results.yaml") for n, d in load_declarations(f).items()}
    from emgeom.book.pages.scorecard import CLAIMS
    from emgeom.core.results import find_declaration

    for claim in CLAIMS:
        if claim.id == "derivation":  # holds by construction: nothing to decide
            continue
        for name in claim.headline:
            instance = name.replace("{set}", "quiz")  # a placeholder stands for each recorded instance
            d = find_declaration(declared, instance)
            assert d is not None and d.sesoi is not None, name
            assert d.sesoi_reason and d.replicates, name


def test_one_organism_never_decides_and_a_trivial_effect_is_absent_even_when_nonzero() -> None:
    assert decide(entry(0.1, 0.3, n=1, sesoi=0.05)).verdict == "inconclusive"
    assert decide(entry(0.1, 0.3, n=1, sesoi=0.05)).why == "fewer than 2 organisms"
    # above 0 but inside ±SESOI: too small to matter, whatever the gates say
    assert decide(entry(0.02, 0.08)).verdict == "absent"
    assert decide(entry(0.02, 0.08), [("task kept", False)]).verdict == "absent"
    assert decide(entry(-0.08, -0.02)).verdict == "absent"


def test_a_clipped_interval_does_not_understate_the_mde() -> None:
    clipped = {"value": 0.83, "ci": [0.4, 1.0], "n_seeds": 3, "sesoi": 0.1, "replicates": "organisms"}
    mde, _ = minimum_detectable(clipped)
    assert mde == pytest.approx((T975_2 + T80_2) * (0.83 - 0.4) / T975_2)  # the unclipped side


def test_a_part_that_was_not_recorded_leaves_the_claim_undecided() -> None:
    from emgeom.book.pages.scorecard import CLAIMS

    judge = {c.id: c.judge for c in CLAIMS}
    r = {}
    for d in ("career", "legal"):  # health's gap is missing
        r[f"similarity_gap_excl_shared_{d}"] = entry(0.1, 0.3)
        r[f"similarity_gap_excl_shared_target_pvalue_{d}"] = {"value": 0.001, "ci": None, "n_seeds": 3}
    v = judge["geometry_paper_domains"](r)
    assert v.verdict == "reproduced" and "health" not in v.measured  # a domain never recorded is not a part
    r["similarity_gap_health"] = entry(0.1, 0.3)  # recorded with shared latents, its primary missing
    r["similarity_gap_excl_shared_health"] = {"value": None, "ci": None, "n_seeds": 3}
    v = judge["geometry_paper_domains"](r)
    assert v.verdict == "inconclusive" and "health: not recorded" in v.measured
    only_oracle = {"dissociation_quiz_geometry_minus_oracle": entry(0.1, 0.3)}
    assert judge["filter_beats_judge"](only_oracle).verdict == "inconclusive"
    fallback = judge["filter_beats_judge"]({"filter_vs_judge_difference": entry(0.1, 0.3)})
    assert fallback.verdict == "reproduced" and fallback.decision is not None


def test_the_weakest_part_is_the_one_needing_most_organisms() -> None:
    parts = [
        Decision("inconclusive", "", 0.1, None, None, 0, ""),  # no interval: no power to show
        Decision("inconclusive", "", 0.1, 0.3, 12, 3, "organisms"),
        Decision("inconclusive", "", 0.1, 5.0, None, 3, "organisms"),  # more than the limit
    ]
    assert weakest(parts) is parts[2]
    assert "more than 1000 organisms" in parts[2].power_text()
    assert weakest(parts[:2]) is parts[1]
