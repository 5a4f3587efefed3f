"""The steering claim (EM(steer random) - EM(steer harmful), over organisms) decides three ways with the
blocking claim's gates, and the blocking claim states the damage its control was matched on."""

from __future__ import annotations

import pytest

from emgeom.book.pages.scorecard import CLAIMS

JUDGE = {c.id: c.judge for c in CLAIMS}


def entry(value: float, ci: tuple[float, float] | None, replicates: str = "organisms", n: int = 3) -> dict:
    ci_list = list(ci) if ci else None
    return {"value": value, "ci": ci_list, "n_seeds": n, "sesoi": 0.05, "replicates": replicates}


KEPT = {
    "preventative_steering_task_change": entry(-0.02, (-0.05, 0.01)),
    "preventative_steering_heldout_loss_change": entry(0.01, (-0.02, 0.04)),
    "preventative_steering_coherence_change": entry(0.0, (-0.03, 0.03)),
}
REDUCES = {"preventative_steering_relative_reduction": entry(0.5, (0.3, 0.7))}


def results(diff: dict, **changes: dict) -> dict:
    return {"preventative_steering_minus_random": diff, **KEPT, **REDUCES, **changes}


@pytest.mark.parametrize(
    ("r", "verdict"),
    [
        (results(entry(0.2, (0.1, 0.3))), "reproduced"),
        (results(entry(-0.2, (-0.3, -0.1))), "contradicted"),
        (results(entry(0.0, (-0.04, 0.04))), "absent"),  # within ±0.05
        (results(entry(0.05, (-0.1, 0.2))), "inconclusive"),  # spans 0 and the SESOI
        # the steering itself does not lower EM
        (
            results(
                entry(0.2, (0.1, 0.3)),
                preventative_steering_relative_reduction=entry(-0.1, (-0.3, 0.1)),
            ),
            "inconclusive",
        ),
        # the task was lost, or the answers stopped making sense, under the steering
        (
            results(entry(0.2, (0.1, 0.3)), preventative_steering_task_change=entry(-0.4, (-0.6, -0.2))),
            "inconclusive",
        ),
        (
            results(entry(0.2, (0.1, 0.3)), preventative_steering_heldout_loss_change=entry(0.3, (0.2, 0.4))),
            "inconclusive",
        ),
        (
            results(entry(0.2, (0.1, 0.3)), preventative_steering_coherence_change=entry(-0.3, (-0.5, -0.1))),
            "inconclusive",
        ),
        # seeds of one organism, or a single organism, never decide
        (results(entry(0.2, (0.1, 0.3), replicates="seeds of one organism")), "inconclusive"),
        (results(entry(0.2, (0.1, 0.3), n=1)), "inconclusive"),
    ],
)
def test_steering_decides_over_organisms_with_the_task_kept(r: dict, verdict: str) -> None:
    assert JUDGE["steering_prevents_em"](r).verdict == verdict


def test_the_steering_gates_are_the_steering_runs_not_the_ablations() -> None:
    r = results(entry(0.2, (0.1, 0.3)), preventative_ablation_task_change=entry(-0.4, (-0.6, -0.2)))
    assert JUDGE["steering_prevents_em"](r).verdict == "reproduced"
    lost = results(entry(0.2, (0.1, 0.3)), preventative_steering_task_change=entry(-0.4, (-0.6, -0.2)))
    v = JUDGE["steering_prevents_em"](lost)
    assert "task not shown to be kept" in v.measured and "gate not met: task kept" in v.measured


def test_steering_is_not_judged_without_its_primary_or_task_measures() -> None:
    assert JUDGE["steering_prevents_em"]({}).verdict == "not run"
    r = results(entry(0.2, (0.1, 0.3)))
    del r["preventative_steering_heldout_loss_change"]
    assert JUDGE["steering_prevents_em"](r).verdict == "not run"


def test_blocking_reports_the_damage_of_the_harmful_ablation_and_its_control() -> None:
    r = {
        "preventative_ablation_minus_random": entry(0.2, (0.1, 0.3)),
        "preventative_ablation_relative_reduction": entry(0.5, (0.3, 0.7)),
        "preventative_ablation_task_change": entry(-0.02, (-0.05, 0.01)),
        "preventative_ablation_heldout_loss_change": entry(0.01, (-0.02, 0.04)),
        "preventative_ablation_coherence_change": entry(0.0, (-0.03, 0.03)),
        "harmful_ablation_base_loss_increase": entry(0.034, (0.02, 0.05)),
        "random_ablation_base_loss_increase": entry(0.036, (0.02, 0.05)),
    }
    v = JUDGE["blocking_prevents_em"](r)
    assert v.verdict == "reproduced"
    assert "base-loss increase harmful 0.034" in v.measured and "vs control 0.036" in v.measured
    assert "damage-matched" in v.rule
