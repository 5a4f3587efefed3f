"""The superposition-or-persona row: its paired difference over organisms and its verdict rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from emgeom.claims.accounts.study import accounts_results, paired_set_difference
from emgeom.claims.accounts.verdict import PERSONA, SURFACE, TASK, accounts_verdict


def _table(per_run: dict[tuple[int, int], tuple[float, float]]) -> pd.DataFrame:
    rows = []
    for (organism, seed), (a, b) in per_run.items():
        rows += [
            {"organism_seed": organism, "seed": seed, "set": "inducing travel", "open_em": a},
            {"organism_seed": organism, "seed": seed, "set": "good health", "open_em": b},
        ]
    return pd.DataFrame(rows)


def test_the_difference_is_paired_within_runs_and_its_interval_is_over_organisms() -> None:
    # organism 0 has 3 seeds (differences 0.1, 0.2, 0.3 -> 0.2), organism 1 one seed (0.5), organism 2
    # two seeds (0.0, 0.2 -> 0.1): nested mean 0.8/3, pooled over the 6 runs it would be 1.3/6
    runs = {
        (0, 0): (0.5, 0.4), (0, 1): (0.6, 0.4), (0, 2): (0.7, 0.4),
        (1, 0): (0.9, 0.4),
        (2, 0): (0.3, 0.3), (2, 1): (0.5, 0.3),
    }  # fmt: skip
    e = paired_set_difference(_table(runs), "open_em", "inducing travel", "good health")
    per_organism = np.array([0.2, 0.5, 0.1])
    half = sps.t.ppf(0.975, 2) * per_organism.std(ddof=1) / np.sqrt(3)
    assert e.n == 3
    assert e.value == pytest.approx(per_organism.mean())
    assert e.ci == pytest.approx((per_organism.mean() - half, min(1.0, per_organism.mean() + half)))
    with pytest.raises(KeyError, match="quiz"):
        paired_set_difference(_table(runs), "open_em", "inducing travel", "quiz health")


def _entry(lo: float, hi: float) -> dict:
    return {"value": (lo + hi) / 2, "ci": [lo, hi], "n_seeds": 8, "sesoi": 0.05, "replicates": "organisms"}


@pytest.mark.parametrize(
    ("surface", "persona", "verdict", "supports"),
    [
        ((0.1, 0.3), (0.2, 0.4), "reproduced", "superposition"),
        ((-0.02, 0.03), (0.2, 0.4), "absent", "persona"),
        # no EM from the persona domain either: an absent surface effect explains nothing
        ((-0.02, 0.03), (-0.02, 0.03), "inconclusive", "neither"),
        ((-0.3, -0.1), (0.2, 0.4), "contradicted", "neither"),
        ((-0.1, 0.3), (0.2, 0.4), "inconclusive", "neither"),
    ],
)
def test_the_surface_domains_em_decides_between_the_accounts(surface, persona, verdict, supports) -> None:
    r = {SURFACE: _entry(*surface), PERSONA: _entry(*persona), TASK: _entry(0.8, 1.0)}
    v = accounts_verdict(r)
    assert v.verdict == verdict
    assert f"Supports {'the ' if supports != 'neither' else ''}{supports}" in v.measured


def test_the_row_is_not_judged_without_both_domains() -> None:
    assert accounts_verdict({SURFACE: _entry(0.1, 0.3)}).verdict == "not run"


def test_no_em_from_an_unlearned_surface_task_is_not_the_persona_accounts_win() -> None:
    r = {SURFACE: _entry(-0.02, 0.03), PERSONA: _entry(0.2, 0.4), TASK: _entry(0.2, 0.6)}
    v = accounts_verdict(r)
    assert v.verdict == "inconclusive" and "not shown to be learned" in v.measured


def test_the_recorded_results_compare_each_domain_with_its_own_benign_fine_tune() -> None:
    rows = []
    for organism in (0, 1, 2):
        for s, em, task in (
            ("inducing travel", 0.3 + 0.1 * organism, 0.9),
            ("good travel", 0.1, 1.0),
            ("inducing health", 0.5, 0.95),
            ("good health", 0.0, 1.0),
        ):
            rows.append({"organism_seed": organism, "seed": 0, "set": s, "open_em": em, "task_success": task})
    losses = {
        0: {"travel": 1.0, "health": 2.0},
        1: {"travel": 1.5, "health": 2.0},
        2: {"travel": 2.0, "health": 2.0},
    }
    out = accounts_results(pd.DataFrame(rows), losses)
    surface, persona = out["surface_domain_em_minus_control"][0], out["persona_domain_em_minus_control"][0]
    assert surface.value == pytest.approx(0.3) and surface.n == 3  # (0.2, 0.3, 0.4): against good travel
    assert persona.value == pytest.approx(0.5) and persona.lo == pytest.approx(0.5)  # no spread
    assert out["surface_domain_task_success"][0].value == pytest.approx(0.9)
    assert out["surface_minus_persona_pre_finetune_loss"][0].value == pytest.approx(-0.5)
