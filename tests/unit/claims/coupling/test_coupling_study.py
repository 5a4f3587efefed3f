"""The coupling sweep's arithmetic on planted numbers: slopes on points with a known slope and residuals
(t-interval on n - 2 degrees of freedom, computed here by hand), the null-rate organism, EM against the
gap, and one organism's level (shared-excluded gap averaged over SAEs, EM minus aligned EM paired by
seed) with the models and SAEs replaced by planted tables."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from emgeom.claims.coupling import study as cs
from emgeom.claims.geometry.study import GeometryConfig
from emgeom.core.stats import Estimate
from emgeom.em.emergence import ALIGNED
from emgeom.lm.finetune import FineTuneConfig
from emgeom.lm.sampling import SamplingConfig

T975 = {1: 12.706204736174694, 2: 4.302652729749462, 3: 3.1824463052837078}  # t(0.975, df)

RATES = [0.0, 0.25, 0.5, 0.75, 1.0]
# residuals orthogonal to the intercept and to the rate, so the least-squares slope is exactly planted
GAP_NOISE = [0.01, -0.02, 0.0, 0.02, -0.01]
EM_NOISE = [0.02, 0.0, -0.04, 0.0, 0.02]
GAPS = [0.5 - 0.8 * r + e for r, e in zip(RATES, GAP_NOISE, strict=True)]
EMS = [0.6 - 0.4 * r + e for r, e in zip(RATES, EM_NOISE, strict=True)]


def level(i: int) -> cs.CouplingLevel:
    g, em = GAPS[i], EMS[i]
    return cs.CouplingLevel(
        rate=RATES[i],
        toxic_share=1 - RATES[i],
        gap=Estimate(g, g - 0.05, g + 0.05, 2),
        gap_p=0.001 * (i + 1),
        gap_excl_shared=g / 2,
        em=Estimate(em, em - 0.1, em + 0.1, 3),
        aligned_em=Estimate(0.05, 0.0, 0.1, 3),
        em_minus_aligned=Estimate(em - 0.05, em - 0.2, em + 0.1, 3),
    )


def slope_by_hand(slope: float, noise: list[float]) -> tuple[float, float]:
    """The interval of a slope whose residuals are ``noise``: se = sqrt(SSR / (n - 2) / Sxx)."""
    n = len(RATES)
    mean = sum(RATES) / n
    sxx = sum((x - mean) ** 2 for x in RATES)  # 0.625
    ssr = sum(e * e for e in noise)
    half = T975[n - 2] * math.sqrt(ssr / (n - 2) / sxx)
    return slope - half, slope + half


def test_coupling_fit_slopes_null_organism_and_em_vs_gap() -> None:
    levels = [level(i) for i in (3, 0, 4, 2, 1)]  # the order of the sweep does not matter
    fit = cs.coupling_fit(levels, null_rate=0.5)

    assert fit.gap_slope.value == pytest.approx(-0.8) and fit.gap_slope.n == 5
    assert (fit.gap_slope.lo, fit.gap_slope.hi) == pytest.approx(slope_by_hand(-0.8, GAP_NOISE))
    assert fit.em_slope.value == pytest.approx(-0.4)
    assert (fit.em_slope.lo, fit.em_slope.hi) == pytest.approx(slope_by_hand(-0.4, EM_NOISE))

    null = level(2)  # rate 0.5: its own row-resampling interval and permutation p, not the fit's
    assert fit.null_rate == 0.5
    assert fit.null_gap == null.gap and fit.null_gap_p == pytest.approx(0.003)
    assert fit.null_em == null.em and fit.null_em_minus_aligned == null.em_minus_aligned

    gm, em_mean = sum(GAPS) / 5, sum(EMS) / 5
    sxy = sum((g - gm) * (e - em_mean) for g, e in zip(GAPS, EMS, strict=True))
    sxx = sum((g - gm) ** 2 for g in GAPS)
    syy = sum((e - em_mean) ** 2 for e in EMS)
    assert fit.em_vs_gap_r == pytest.approx(sxy / math.sqrt(sxx * syy))
    assert fit.em_vs_gap_r > 0.9  # both fall with the rate

    with pytest.raises(ValueError, match="no organism at the null rate"):
        cs.coupling_fit(levels, null_rate=0.6)


def test_sweep_table_has_one_row_per_organism_with_its_numbers() -> None:
    table = cs.sweep_table([level(0), level(2)])
    assert list(table["mistake rate"]) == [0.0, 0.5]
    row = table.iloc[1]
    assert row["gap"] == pytest.approx(GAPS[2])
    assert (row["gap lo"], row["gap hi"]) == pytest.approx((GAPS[2] - 0.05, GAPS[2] + 0.05))
    assert row["gap p (rows permuted)"] == pytest.approx(0.003)
    assert row["gap (shared excluded)"] == pytest.approx(GAPS[2] / 2)
    assert row["EM"] == pytest.approx(EMS[2]) and row["EM lo"] == pytest.approx(EMS[2] - 0.1)
    assert row["aligned EM"] == pytest.approx(0.05)
    assert row["EM − aligned"] == pytest.approx(EMS[2] - 0.05)
    assert row["toxic share"] == pytest.approx(0.5)


def test_coupling_level_pairs_em_by_seed_and_averages_the_shared_excluded_gap(monkeypatch) -> None:
    def sim(sae: str, set_: str, max_cos: float, **kw) -> dict:
        return {
            "directions": "decoder",
            "domain": "health",
            "shared_excluded": True,
            "sae": sae,
            "set": set_,
            "max_cos": max_cos,
        } | kw

    table = pd.DataFrame(
        [
            # shared latents excluded, SAE 0: 0.6 - 0.2 = 0.4; SAE 1: 0.3 - 0.2 = 0.1 -> mean 0.25
            sim("organism 0 / SAE 0", "inducing", 0.5),
            sim("organism 0 / SAE 0", "inducing", 0.7),
            sim("organism 0 / SAE 0", "non-inducing", 0.2),
            sim("organism 0 / SAE 1", "inducing", 0.3),
            sim("organism 0 / SAE 1", "non-inducing", 0.1),
            sim("organism 0 / SAE 1", "non-inducing", 0.3),
            # left out: all latents, encoder directions, another domain
            sim("organism 0 / SAE 0", "inducing", 9.0, shared_excluded=False),
            sim("organism 0 / SAE 1", "inducing", 9.0, directions="encoder"),
            sim("organism 0 / SAE 1", "non-inducing", 9.0, domain="code"),
        ]
    )
    em = pd.DataFrame(
        [{"set": "inducing health", "seed": s, "open_em": v} for s, v in ((0, 0.5), (1, 0.6), (2, 0.7))]
        + [{"set": ALIGNED, "seed": s, "open_em": v} for s, v in ((0, 0.1), (1, 0.2), (3, 0.9))]
    )
    gap = Estimate(0.3, 0.2, 0.4, 2)
    monkeypatch.setattr(cs, "organism_domains", lambda domains, rows: {"health": None})
    monkeypatch.setattr(cs, "organism_runs", lambda saes, domains: {"runs": len(saes)})
    monkeypatch.setattr(cs, "open_answer_rows", lambda hostile, n, seed: [])
    monkeypatch.setattr(cs, "geometry_over_runs", lambda *a, **kw: ({}, table))
    monkeypatch.setattr(cs, "selection_replicates", lambda runs, results, d: ["replicate"])
    monkeypatch.setattr(cs, "row_bootstrap_gap", lambda *a, **kw: gap)
    monkeypatch.setattr(cs, "row_permutation_gap", lambda *a, **kw: SimpleNamespace(p=0.02))
    monkeypatch.setattr(cs, "finetune_rows", lambda *a, **kw: [])
    monkeypatch.setattr(cs, "emergence_table", lambda *a, **kw: em)
    subject = SimpleNamespace(
        hooked="hooked",
        tokenizer="tok",
        model="model",
        saes=["sae 0", "sae 1"],
        organism=SimpleNamespace(config=SimpleNamespace(corpus=SimpleNamespace(toxic_share=lambda d: 0.7))),
    )
    settings = cs.CouplingSettings(
        domain="health",
        geometry=GeometryConfig(k=2),
        rows_per_set=4,
        finetune_rows=4,
        ft=FineTuneConfig(),
        seeds=(0, 1, 2),
        sampling=SamplingConfig(n_samples=1),
    )
    lv = cs.coupling_level(subject, 0.25, settings)

    assert lv.rate == 0.25 and lv.toxic_share == pytest.approx(0.7)
    assert lv.gap == gap and lv.gap_p == pytest.approx(0.02)
    assert lv.gap_excl_shared == pytest.approx((0.4 + 0.1) / 2)
    assert lv.em.value == pytest.approx(0.6) and lv.em.n == 3
    assert lv.aligned_em.value == pytest.approx(0.4) and lv.aligned_em.n == 3
    # paired by seed: seeds 0 and 1 only, 0.4 each (the unpaired means would give 0.6 - 0.4 = 0.2)
    assert lv.em_minus_aligned.value == pytest.approx(0.4) and lv.em_minus_aligned.n == 2
    assert (lv.em_minus_aligned.lo, lv.em_minus_aligned.hi) == pytest.approx((0.4, 0.4))
    hand = 0.6 - T975[2] * 0.1 / math.sqrt(3), 0.6 + T975[2] * 0.1 / math.sqrt(3)
    assert (lv.em.lo, lv.em.hi) == pytest.approx(hand)
    assert np.isfinite(lv.aligned_em.lo) and lv.aligned_em.lo == pytest.approx(0.0)  # clipped at 0
