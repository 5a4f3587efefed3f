"""The derivation and mechanism rows of the scorecard follow their rules on planted numbers."""

from __future__ import annotations

import pytest

from emgeom.book.pages.scorecard import CLAIMS

JUDGE = {c.id: c.judge for c in CLAIMS}


def entry(value: float, ci: tuple[float, float] | None = None) -> dict:
    return {"value": value, "ci": list(ci) if ci else None, "n_seeds": 3, "note": ""}


@pytest.mark.parametrize(
    ("reward", "ce", "verdict"),
    [(0.99, 0.95, "reproduced"), (0.99, 0.5, "partly"), (0.5, None, "not reproduced")],
)
def test_derivation_scores_the_multi_step_results(reward, ce, verdict) -> None:
    results = {"first_order_pearson_r": entry(reward), "counter_regime_pearson_r": entry(-0.9)}
    if ce is not None:
        results["ce_first_order_pearson_r"] = entry(ce)
    v = JUDGE["derivation"](results)
    assert v.verdict == verdict
    assert "sign flips never in the sweep" in v.measured
    results["sign_flip_steps_adam"] = entry(30.0)
    assert "sign flips after 30 steps" in JUDGE["derivation"](results).measured


@pytest.mark.parametrize(
    ("r", "ci", "domains", "verdict"),
    [
        (0.6, (0.5, 0.7), {}, "reproduced"),
        (0.45, (0.3, 0.6), {}, "partly"),
        (0.2, (0.1, 0.3), {"health": 0.5, "code": 0.1}, "partly"),  # above the null in half the domains
        (0.2, (0.1, 0.3), {"health": 0.3, "code": 0.1}, "not reproduced"),
    ],
)
def test_mechanism_is_judged_against_the_random_target_null(r, ci, domains, verdict) -> None:
    results = {
        "mechanism_decoder_projection_r": entry(r, ci),
        "mechanism_null_r_p95": entry(0.4),
        "mechanism_decoder_projection_r_hostile": entry(0.9),  # not a domain
        **{f"mechanism_decoder_projection_r_{d}": entry(x) for d, x in domains.items()},
    }
    v = JUDGE["mechanism"](results)
    assert v.verdict == verdict
    assert f"/{len(domains)} domains" in v.measured


def test_the_old_answer_start_readout_no_longer_decides_the_mechanism() -> None:
    v = JUDGE["mechanism"]({"mechanism_pearson_r": entry(0.9, (0.8, 1.0))})
    assert v.verdict == "not run"
