"""Chapter 5's headline numbers over organisms on planted per-organism estimates: each organism's own
estimate (over its SAEs and fine-tuning seeds) is one replicate, the interval is a t-interval over
organisms (df = organisms - 1, computed here by hand), correlations are clipped to [-1, 1] and ratios
and differences are not, and the derived lists (``above_null``, ``holds``) are recomputed over
organisms."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from emgeom.claims.mechanism import organisms as mo
from emgeom.claims.mechanism.projection_study import ProjectionEstimates
from emgeom.claims.mechanism.study import MechanismEstimates
from emgeom.core.stats import Estimate
from emgeom.em.emergence import estimate

T975 = {1: 12.706204736174694, 2: 4.302652729749462, 3: 3.1824463052837078}  # t(0.975, df)


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval by hand: mean -/+ t(0.975, n-1) * s / sqrt(n), s with n - 1."""
    n = len(values)
    mean = sum(values) / n
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T975[n - 1] * s / math.sqrt(n)
    return mean, mean - half, mean + half


def est(value: float) -> Estimate:
    """One organism's own estimate: over its 6 (SAE, seed) replicates, with a narrow interval of its
    own that must not leak into the interval over organisms."""
    return Estimate(value, value - 0.01, value + 0.01, 6)


def projection(i: int) -> ProjectionEstimates:
    """Organism ``i`` of three (see the planted values in the test)."""
    return ProjectionEstimates(
        r=est([0.1, 0.2, 0.6][i]),
        r_partial=est([0.9, 0.95, 1.0][i]),  # a correlation near 1: its interval is clipped at 1
        alignment=est(0.5),
        null_p95=est(0.2),
        specificity=est([0.9, 0.95, 1.0][i]),  # a difference of two r: not clipped
        r_hostile=est(0.5),
        r_gradient=est(0.5),
        lr_ratio=est([1.9, 2.0, 2.1][i]),  # a ratio near 2: not clipped
        lr_cosine=est(0.99),
        per_domain={"health": est([0.3, 0.4, 0.5][i]), "code": est([0.0, 0.1, 0.2][i])},
        per_domain_null={"health": [0.2, 0.3, 0.4][i], "code": [0.1, 0.2, 0.3][i]},
        above_null=["code"],  # each organism's own list: recomputed over organisms
    )


def check(e: Estimate, values: list[float], clip: tuple[float, float] | None = None) -> None:
    mean, lo, hi = t_interval(values)
    if clip:
        lo, hi = max(lo, clip[0]), min(hi, clip[1])
    assert e.n == len(values)  # organisms, not the 6 replicates inside each
    assert e.value == pytest.approx(mean)
    assert (e.lo, e.hi) == pytest.approx((lo, hi))


def test_projection_over_organisms_nests_and_bounds_each_estimate() -> None:
    studies = {seed: SimpleNamespace(projection=projection(i)) for i, seed in enumerate((11, 12, 13))}
    out = mo.projection_over(studies)
    check(out.r, [0.1, 0.2, 0.6])
    assert out.r.value == pytest.approx(0.3)
    check(out.r_partial, [0.9, 0.95, 1.0], clip=(-1.0, 1.0))
    assert out.r_partial.hi == pytest.approx(1.0)
    check(out.specificity, [0.9, 0.95, 1.0])
    assert out.specificity.hi > 1  # unclipped
    check(out.lr_ratio, [1.9, 2.0, 2.1])
    assert out.lr_ratio.hi > 2.2  # a ratio's interval is not clipped to a correlation's range
    assert out.alignment == Estimate(0.5, 0.5, 0.5, 3)  # no spread over organisms
    check(out.per_domain["health"], [0.3, 0.4, 0.5], clip=(-1.0, 1.0))
    check(out.per_domain["code"], [0.0, 0.1, 0.2], clip=(-1.0, 1.0))
    assert out.per_domain_null == pytest.approx({"health": 0.3, "code": 0.2})
    assert out.above_null == ["health"]  # 0.4 > 0.3; code 0.1 < 0.2


def answer_start(i: int) -> MechanismEstimates:
    return MechanismEstimates(
        overall=est([0.2, 0.3, 0.7][i]),
        per_domain={"health": est([0.5, 0.6, 0.7][i]), "code": est([-0.2, 0.3, 0.5][i])},
        holds=["code"],  # recomputed over organisms
    )


def test_answer_start_over_organisms_recomputes_which_domains_hold() -> None:
    studies = {
        seed: SimpleNamespace(first_r=answer_start(i), full_r=answer_start(2 - i))
        for i, seed in enumerate((0, 1, 2))
    }
    out = mo.answer_start_over(studies)
    check(out.overall, [0.2, 0.3, 0.7], clip=(-1.0, 1.0))
    check(out.per_domain["health"], [0.5, 0.6, 0.7], clip=(-1.0, 1.0))
    check(out.per_domain["code"], [-0.2, 0.3, 0.5], clip=(-1.0, 1.0))
    assert out.per_domain["health"].lo > 0 > out.per_domain["code"].lo
    assert out.holds == ["health"]
    full = mo.answer_start_over(studies, full=True)  # the same organisms in another order
    assert full.overall.value == pytest.approx(out.overall.value) and full.holds == ["health"]


def test_over_organisms_bounds_only_correlations() -> None:
    shift, sim = [1.0, 1.5, 2.0], [0.8, 0.9, 1.0]
    studies = {i: SimpleNamespace(shift_difference=est(shift[i]), similarity_r=est(sim[i])) for i in range(3)}
    check(mo.over_organisms(studies, "shift_difference"), shift)
    check(mo.over_organisms(studies, "similarity_r"), sim, clip=(-1.0, 1.0))
    assert mo.over_organisms(studies, "similarity_r").hi == pytest.approx(1.0)
    # one organism keeps its own interval (over its SAEs and seeds)
    one = {0: SimpleNamespace(similarity_r=Estimate(0.4, 0.1, 0.7, 6))}
    assert mo.over_organisms(one, "similarity_r") == Estimate(0.4, 0.1, 0.7, 6)


def test_emergence_over_nests_fine_tuning_seeds_in_organisms() -> None:
    def table(em: list[float]) -> pd.DataFrame:
        rows = [{"set": "inducing health", "seed": s, "open_em": v} for s, v in enumerate(em)]
        rows += [{"set": "aligned", "seed": s, "open_em": 0.9} for s in range(len(em))]
        return pd.DataFrame(rows)

    # organism 0: three seeds, mean 0.4; organism 1: one seed, 0.6; organism 2: two seeds, mean 0.5
    studies = {
        0: SimpleNamespace(table=table([0.3, 0.4, 0.5])),
        1: SimpleNamespace(table=table([0.6])),
        2: SimpleNamespace(table=table([0.45, 0.55])),
    }
    stacked = mo.emergence_over(studies)
    assert len(stacked) == 12 and stacked.groupby("organism_seed").size().to_dict() == {0: 6, 1: 2, 2: 4}
    e = estimate(stacked, "open_em", ["inducing health"])
    mean, lo, hi = t_interval([0.4, 0.6, 0.5])  # nested: 0.5; the six runs pooled would be 0.4667
    assert e.n == 3
    assert e.value == pytest.approx(mean) and e.value == pytest.approx(0.5)
    assert (e.lo, e.hi) == pytest.approx((lo, hi))


def test_spearman_leave_one_set_out_exposes_a_single_high_leverage_set() -> None:
    import numpy as np

    from emgeom.claims.mechanism.study import spearman_loso

    # five sets: EM rises monotonically with similarity, so rho = 1 and leaving any set out keeps 1
    x = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    rho, loso = spearman_loso(x, x**2)
    assert rho == pytest.approx(1.0) and loso == pytest.approx(1.0)
    # one far set carries a Pearson r, not the ranks: the other four are in reverse order
    y = np.array([0.4, 0.3, 0.2, 0.1, 5.0])
    rho, loso = spearman_loso(x, y)
    assert np.corrcoef(x, y)[0, 1] > 0.6  # Pearson sees a strong positive link
    assert rho == pytest.approx(0.0)  # ranks: 4,3,2,1,5 against 1..5
    assert loso == pytest.approx(-1.0)  # without the far set the rest are perfectly reversed
    # ties get their mean rank
    assert spearman_loso(np.array([1.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0]))[0] == pytest.approx(
        np.sqrt(3) / 2
    )
