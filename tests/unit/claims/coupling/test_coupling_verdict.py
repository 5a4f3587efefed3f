"""The coupling claim's verdict on planted results: three ways on the EM contrast's interval over
organisms against its SESOI, Page's trend as the gate of a reproduction, and undecided with fewer than
two organisms or an interval over anything but organisms."""

from __future__ import annotations

import pytest

from emgeom.book.pages.scorecard import CLAIMS as SCORECARD
from emgeom.claims import intervention
from emgeom.claims.coupling import CLAIMS

(CLAIM,) = CLAIMS


def entry(value: float, ci: tuple[float, float] | None, n: int = 3, replicates: str = "organisms") -> dict:
    """A recorded result as the scorecard hands it to a verdict, with the chapter's declared SESOI."""
    return {
        "value": value,
        "ci": list(ci) if ci else None,
        "n_seeds": n,
        "note": "",
        "sesoi": 0.05,
        "replicates": replicates,
    }


def results(contrast: dict, p: float | None = 0.01) -> dict:
    out = {"coupling_em_contrast": contrast}
    if p is not None:
        out["coupling_em_page_p"] = {"value": p, "ci": None, "n_seeds": 3, "note": ""}
    return out


def test_the_claim_is_on_the_scorecard_after_the_intervention() -> None:
    ids = [c.id for c in SCORECARD]
    assert ids.count("coupling_sets_em") == 1
    assert all(ids.index("coupling_sets_em") > ids.index(c.id) for c in intervention.CLAIMS)
    assert CLAIM.id == "coupling_sets_em" and CLAIM.headline == ("coupling_em_contrast",)


@pytest.mark.parametrize(
    ("contrast", "p", "verdict"),
    [
        (entry(0.4, (0.2, 0.6)), 0.01, "reproduced"),
        (entry(0.4, (0.2, 0.6)), 0.2, "inconclusive"),  # the trend's gate not met
        (entry(0.4, (0.2, 0.6)), None, "inconclusive"),  # the trend not recorded
        (entry(0.01, (-0.03, 0.04)), 0.5, "absent"),  # within ±0.05
        (entry(-0.3, (-0.5, -0.1)), 0.9, "contradicted"),
        (entry(0.05, (-0.2, 0.3)), 0.01, "inconclusive"),  # spans 0 and the SESOI
        (entry(0.4, (0.2, 0.6), n=1), 0.01, "inconclusive"),  # one organism never decides
        (entry(0.4, (0.2, 0.6), replicates="fine-tuning seeds"), 0.01, "inconclusive"),
        (entry(0.4, None), 0.01, "inconclusive"),  # no interval
    ],
)
def test_the_verdict_follows_the_contrast_and_the_trend(
    contrast: dict, p: float | None, verdict: str
) -> None:
    v = CLAIM.judge(results(contrast, p))
    assert v.verdict == verdict
    assert "EM(lowest rate) − EM(null rate), over organisms: " in v.measured
    assert v.decision is not None and v.decision.sesoi == 0.05


def test_why_it_is_inconclusive_is_said() -> None:
    assert "gate not met: Page trend p < 0.05" in CLAIM.judge(results(entry(0.4, (0.2, 0.6)), 0.2)).measured
    assert "fewer than 2 organisms" in CLAIM.judge(results(entry(0.4, (0.2, 0.6), n=1))).measured


def test_not_run_without_the_contrast() -> None:
    assert CLAIM.judge({}).verdict == "not run"
    assert CLAIM.judge({"coupling_em_contrast": {"value": None, "ci": None}}).verdict == "not run"
