"""Chapter 6's headline over organisms on planted filter tables: each organism's relative reduction is
paired by seed inside it (seeds with nothing to reduce skipped), then the interval is a t-interval over
organisms (df = organisms - 1, computed here by hand), not over the pooled seeds."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from emgeom.claims.filtering import organisms as fo
from emgeom.claims.filtering.study import filter_headline

T975 = {1: 12.706204736174694, 2: 4.302652729749462, 3: 3.1824463052837078}  # t(0.975, df)
MAIN = 0.2


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval by hand: mean -/+ t(0.975, n-1) * s / sqrt(n), s with n - 1."""
    n = len(values)
    mean = sum(values) / n
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T975[n - 1] * s / math.sqrt(n)
    return mean, mean - half, mean + half


def filter_table(
    none: list[float], geometry: list[float], random: list[float], judge: list[float], precision: float
) -> pd.DataFrame:
    """One organism's comparison table: EM per seed unfiltered and after each filter at ``MAIN``."""
    rows = []
    for method, em in (("none", none), ("geometry", geometry), ("random", random), ("judge", judge)):
        for seed, v in enumerate(em):
            rows.append(
                {
                    "method": method,
                    "fraction": 0.0 if method == "none" else MAIN,
                    "seed": seed,
                    "open_em": v,
                    "precision": precision if method == "geometry" else 0.5,
                    "recall": precision / 2 if method == "geometry" else 0.2,
                }
            )
    return pd.DataFrame(rows)


# Per organism, geometry's relative reduction 1 - EM(geometry) / EM(none), paired by seed:
#   organism 0: 0.2 in each of 3 seeds                       -> 0.2
#   organism 1: 0.8 in seed 0; seeds 1, 2 have no EM to reduce -> 0.8
#   organism 2: 0.5 in each of 3 seeds                       -> 0.5
# nested: (0.2 + 0.8 + 0.5) / 3 = 0.5; the 7 counted seeds pooled would give 2.9 / 7 = 0.414.
# random: 0.1, 0.2, 0.1 -> geometry minus random 0.1, 0.6, 0.4; the judge reduces nothing.
TABLES = {
    0: filter_table([0.5] * 3, [0.4] * 3, [0.45] * 3, [0.5] * 3, precision=0.6),
    1: filter_table([0.5, 0.0, 0.0], [0.1, 0.0, 0.0], [0.4, 0.0, 0.0], [0.5, 0.0, 0.0], precision=0.9),
    2: filter_table([0.4] * 3, [0.2] * 3, [0.36] * 3, [0.4] * 3, precision=0.3),
}


def studies() -> dict[int, SimpleNamespace]:
    return {
        o: SimpleNamespace(
            table=t,
            headline=filter_headline(t, MAIN),
            dose=[0.9, 0.95, 1.0][o],
            samples_per_second=[100.0, 150.0, 200.0][o],
        )
        for o, t in TABLES.items()
    }


def test_headline_over_organisms_nests_seeds_in_organisms() -> None:
    head = fo.headline_over(studies())
    geo = head.reductions["geometry"]
    mean, lo, hi = t_interval([0.2, 0.8, 0.5])
    assert geo.n == 3
    assert geo.value == pytest.approx(mean) and geo.value == pytest.approx(0.5)
    assert (geo.lo, geo.hi) == pytest.approx((lo, hi))
    assert head.reductions["judge"].value == pytest.approx(0.0)
    vs_random = head.versus["random"]
    mean, lo, hi = t_interval([0.1, 0.6, 0.4])
    assert vs_random.value == pytest.approx(mean) and (vs_random.lo, vs_random.hi) == pytest.approx((lo, hi))
    assert head.versus["judge"].value == pytest.approx(0.5)
    assert head.geometry_precision == pytest.approx((0.6 + 0.9 + 0.3) / 3)
    assert head.geometry_recall == pytest.approx((0.3 + 0.45 + 0.15) / 3)
    assert head.unfiltered_em == pytest.approx((0.5 + 0.5 / 3 + 0.4) / 3)


def test_summary_over_organisms_has_the_nested_reduction_and_counts_organisms() -> None:
    summary = fo.summary_over(studies(), [MAIN])
    row = summary[summary["method"] == "geometry"].iloc[0]
    mean, lo, hi = t_interval([0.2, 0.8, 0.5])
    assert row["relative reduction"] == pytest.approx(mean)
    assert (row["rr lo"], row["rr hi"]) == pytest.approx((lo, hi))
    assert row["EM"] == pytest.approx((1.2 + 0.1 + 0.6) / 9)  # every organism has three seeds
    assert row["precision"] == pytest.approx(0.6)
    assert set(summary["n organisms"]) == {3}


def test_over_organisms_clips_fractions_but_not_throughput() -> None:
    dose = fo.over_organisms(studies(), "dose")
    mean, lo, hi = t_interval([0.9, 0.95, 1.0])
    assert dose.n == 3 and dose.value == pytest.approx(mean)
    assert dose.lo == pytest.approx(lo) and hi > 1 and dose.hi == pytest.approx(1.0)
    speed = fo.over_organisms(studies(), "samples_per_second")
    mean, lo, hi = t_interval([100.0, 150.0, 200.0])
    assert (speed.value, speed.lo, speed.hi) == pytest.approx((mean, lo, hi))


def test_stacked_tables_carry_their_organism() -> None:
    stacked = fo.stacked(studies(), "table")
    assert len(stacked) == sum(len(t) for t in TABLES.values())
    one = stacked[(stacked["organism_seed"] == 1) & (stacked["method"] == "geometry")]
    assert one["open_em"].tolist() == [0.1, 0.0, 0.0]
