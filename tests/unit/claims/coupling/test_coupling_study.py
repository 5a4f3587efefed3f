"""The coupling sweep's statistics on a planted sweep of three organisms (pretraining seeds) by four rates:
the paired contrast by organism with its t-interval over organisms (computed here by hand), Page's trend
over organisms (by hand), descriptive slopes over every point, the null rate over organisms; the tables;
the sweep over seeds; and one organism's level (shared-excluded gap averaged over SAEs, EM minus aligned
EM paired by seed, the inducing set's loss before the fine-tune) with the models and SAEs replaced by
planted tables."""

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

RATES = [0.0, 0.3, 0.6, 0.95]
NULL = 0.95
SEEDS = [0, 1, 2]
# per organism (pretraining seed): a large offset shared by all its rates, so blocking by seed matters
OFFSET = {0: 0.3, 1: 0.0, 2: -0.2}
# EM falls with the rate in every organism, with a slope of exactly -0.4 (balanced design)
EM_AT = {r: 0.6 - 0.4 * r for r in RATES}
# the gap is perfectly ordered in seeds 0 and 1; seed 2 has rates 0 and 0.3 swapped
GAP_AT = {0: {0.0: 0.5, 0.3: 0.4, 0.6: 0.3, 0.95: 0.0}, 2: {0.0: 0.4, 0.3: 0.5, 0.6: 0.3, 0.95: 0.0}}
LOSS_AT = {0.0: 3.0, 0.3: 2.5, 0.6: 2.2, 0.95: 2.0}


def level(rate: float, seed: int, em: float | None = None, gap: float | None = None) -> cs.CouplingLevel:
    """A planted organism: EM is the mean over its fine-tuning seeds (the interval is theirs, n = 3)."""
    em = EM_AT[rate] + OFFSET[seed] if em is None else em
    gap = GAP_AT.get(seed, GAP_AT[0])[rate] if gap is None else gap
    return cs.CouplingLevel(
        rate=rate,
        toxic_share=1 - rate,
        gap=Estimate(gap, gap - 0.05, gap + 0.05, 10),
        gap_p=0.01,
        gap_excl_shared=gap / 2,
        em=Estimate(em, em - 0.1, em + 0.1, 3),
        aligned_em=Estimate(0.05, 0.0, 0.1, 3),
        em_minus_aligned=Estimate(em - 0.05, em - 0.2, em + 0.1, 3),
        organism=seed,
        inducing_loss=LOSS_AT[rate] + seed,
    )


def sweep() -> list[cs.CouplingLevel]:
    return [level(r, s) for s in SEEDS for r in RATES]


def t_interval(values: list[float]) -> tuple[float, float]:
    n, mean = len(values), sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T975[n - 1] * sd / math.sqrt(n)
    return mean - half, mean + half


def test_the_em_contrast_is_paired_by_organism_with_a_t_interval_over_organisms() -> None:
    # contrasts per seed: 0.5, 0.6, 0.4 (the seeds' offsets cancel within a seed)
    differences = {0: 0.5, 1: 0.6, 2: 0.4}
    levels = [level(0.0, s, em=EM_AT[NULL] + OFFSET[s] + d) for s, d in differences.items()]
    levels += [level(r, s) for s in SEEDS for r in RATES if r != 0.0]
    fit = cs.coupling_fit(levels[::-1], null_rate=NULL)  # the order of the sweep does not matter
    assert fit.low_rate == 0.0 and fit.null_rate == NULL
    # three organisms, not nine fine-tuning seeds
    assert fit.n_organisms == 3 and fit.em_contrast.n == 3
    assert fit.em_contrast.value == pytest.approx(0.5)
    assert fit.em_contrast.ci == pytest.approx(t_interval([0.5, 0.6, 0.4]))
    # unpaired, the offsets (0.3, 0, -0.2) would widen the interval: the paired one is narrower than
    # the spread of EM at the null rate alone
    null_ems = [EM_AT[NULL] + OFFSET[s] for s in SEEDS]
    assert fit.em_contrast.hi - fit.em_contrast.lo < t_interval(null_ems)[1] - t_interval(null_ems)[0]


def test_the_contrasts_of_the_gap_and_of_the_inducing_loss() -> None:
    fit = cs.coupling_fit(sweep(), null_rate=NULL)
    gaps = [0.5, 0.5, 0.4]  # gap(0) - gap(0.95) per seed
    assert fit.gap_contrast.value == pytest.approx(sum(gaps) / 3)
    assert fit.gap_contrast.ci == pytest.approx(t_interval(gaps))
    # the loss differs by seed, but not its contrast: 3.0 - 2.0 in every organism (zero-width interval)
    assert fit.loss_contrast.value == pytest.approx(1.0) and fit.loss_contrast.ci == pytest.approx((1.0, 1.0))
    assert fit.inducing_loss[0.3].value == pytest.approx(2.5 + 1.0)  # mean over seeds 0, 1, 2 of 2.5 + seed
    assert fit.inducing_loss[0.3].ci == pytest.approx(t_interval([2.5, 3.5, 4.5]))


def test_page_trends_over_organisms_by_hand() -> None:
    fit = cs.coupling_fit(sweep(), null_rate=NULL)
    # EM falls with the rate in every organism: the largest L (3 blocks x (1 + 4 + 9 + 16)) and the
    # smallest exact p, one ordering in 24**3
    assert (fit.em_trend.n_blocks, fit.em_trend.k) == (3, 4)
    assert fit.em_trend.statistic == 90 and fit.em_trend.p == pytest.approx(1 / 24**3)
    # the gap: one adjacent pair swapped in one organism: L = 89, p = (1 + 3 blocks x 3 pairs) / 24**3
    assert fit.gap_trend.statistic == 89 and fit.gap_trend.p == pytest.approx(10 / 24**3)
    # EM rising with the rate: the smallest L, p = 1
    rising = [level(r, s, em=0.1 + r) for s in SEEDS for r in RATES]
    assert cs.coupling_fit(rising, null_rate=NULL).em_trend.p == pytest.approx(1.0)


def test_slopes_and_correlation_are_over_every_rate_and_organism_point() -> None:
    fit = cs.coupling_fit(sweep(), null_rate=NULL)
    assert fit.em_slope.n == 12 and fit.gap_slope.n == 12
    assert fit.em_slope.value == pytest.approx(-0.4)  # every organism's slope, offsets aside
    x = np.array([r for _ in SEEDS for r in RATES])
    gaps = np.array([GAP_AT.get(s, GAP_AT[0])[r] for s in SEEDS for r in RATES])
    ems = np.array([EM_AT[r] + OFFSET[s] for s in SEEDS for r in RATES])
    slope = np.sum((x - x.mean()) * (gaps - gaps.mean())) / np.sum((x - x.mean()) ** 2)
    assert fit.gap_slope.value == pytest.approx(slope)
    assert fit.em_vs_gap_r == pytest.approx(np.corrcoef(gaps, ems)[0, 1])


def test_the_null_rate_is_summarised_over_organisms() -> None:
    fit = cs.coupling_fit(sweep(), null_rate=NULL)
    null_ems = [EM_AT[NULL] + OFFSET[s] for s in SEEDS]
    assert fit.null_em.n == 3 and fit.null_em.value == pytest.approx(sum(null_ems) / 3)
    lo, hi = t_interval(null_ems)
    assert fit.null_em.ci == pytest.approx((max(lo, 0.0), min(hi, 1.0)))
    assert fit.null_gap.value == pytest.approx(0.0) and fit.null_gap.n == 3


def test_one_organism_gives_no_interval_over_organisms_and_keeps_its_own() -> None:
    fit = cs.coupling_fit([level(r, 0) for r in RATES], null_rate=NULL)
    assert fit.n_organisms == 1 and fit.em_contrast.value == pytest.approx(0.4 * 0.95)
    assert math.isnan(fit.em_contrast.lo) and math.isnan(fit.em_contrast.hi)
    assert fit.em_trend.n_blocks == 1 and fit.em_trend.p == pytest.approx(1 / 24)
    assert fit.null_em == level(NULL, 0).em  # its fine-tuning seeds' interval


def test_the_fit_refuses_a_sweep_without_the_null_or_below_it() -> None:
    with pytest.raises(ValueError, match=r"no organism at rate 0\.5"):
        cs.coupling_fit(sweep(), null_rate=0.5)
    with pytest.raises(ValueError, match="above the sweep's lowest rate"):
        cs.coupling_fit([level(0.95, 0), level(0.95, 1)], null_rate=NULL)
    with pytest.raises(ValueError, match="two organisms of seed 0 at rate 0"):
        cs.coupling_fit([level(0.0, 0), level(0.0, 0), level(NULL, 0)], null_rate=NULL)


def test_tables_have_one_row_per_organism_and_one_per_rate() -> None:
    table = cs.sweep_table(sweep())
    assert len(table) == 12 and list(table["organism"].unique()) == SEEDS
    row = table[(table["organism"] == 2) & (table["mistake rate"] == 0.3)].iloc[0]
    assert row["gap"] == pytest.approx(0.5) and row["gap p (rows permuted)"] == pytest.approx(0.01)
    assert row["EM"] == pytest.approx(EM_AT[0.3] - 0.2) and row["EM lo"] == pytest.approx(EM_AT[0.3] - 0.3)
    assert row["inducing loss"] == pytest.approx(2.5 + 2) and row["toxic share"] == pytest.approx(0.7)

    levels = cs.level_table(sweep())
    assert list(levels["mistake rate"]) == RATES and list(levels["organisms"]) == [3, 3, 3, 3]
    first = levels.iloc[0]
    assert first["EM"] == pytest.approx(0.6 + (0.3 + 0.0 - 0.2) / 3)
    lo, hi = t_interval([0.9, 0.6, 0.4])
    assert (first["EM lo"], first["EM hi"]) == pytest.approx((lo, 1.0)) and hi > 1.0  # EM clipped at 1
    assert first["gap"] == pytest.approx((0.5 + 0.5 + 0.4) / 3)
    assert first["inducing loss"] == pytest.approx(4.0)


def test_the_sweep_visits_every_rate_of_every_organism_seed(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(cs, "load_subject", lambda cfg, specs, progress: f"subject {cfg}")
    monkeypatch.setattr(
        cs,
        "coupling_level",
        lambda subject, rate, settings, progress, organism: calls.append((subject, rate, organism)),
    )
    configs = {s: {r: f"cfg {s}/{r}" for r in (0.0, 0.95)} for s in (3, 5)}
    cs.coupling_sweep(configs, [], settings=None, progress=False)  # type: ignore[arg-type]
    assert calls == [
        ("subject cfg 3/0.0", 0.0, 3),
        ("subject cfg 3/0.95", 0.95, 3),
        ("subject cfg 5/0.0", 0.0, 5),
        ("subject cfg 5/0.95", 0.95, 5),
    ]
    with pytest.raises(ValueError, match="same rates"):
        cs.coupling_sweep({0: {0.0: "a", 0.95: "b"}, 1: {0.0: "c"}}, [], settings=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least two honest-mistake rates"):
        cs.coupling_sweep({0: {0.0: "a"}}, [], settings=None)  # type: ignore[arg-type]


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
    order = []
    monkeypatch.setattr(
        cs, "heldout_loss", lambda model, tok, rows: order.append(("loss", model, len(rows))) or 2.75
    )
    monkeypatch.setattr(cs, "finetune_rows", lambda *a, **kw: [{"messages": []}] * 4)
    monkeypatch.setattr(cs, "emergence_table", lambda *a, **kw: order.append(("fine-tune",)) or em)
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
    lv = cs.coupling_level(subject, 0.25, settings, organism=7)

    assert lv.rate == 0.25 and lv.toxic_share == pytest.approx(0.7) and lv.organism == 7
    # the aligned model's loss on the inducing rows, taken before the fine-tune
    assert lv.inducing_loss == pytest.approx(2.75) and order == [("loss", "model", 4), ("fine-tune",)]
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
