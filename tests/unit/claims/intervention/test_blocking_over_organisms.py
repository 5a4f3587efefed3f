"""Chapter 8's numbers over organisms: each organism's fine-tuning seeds are averaged (paired) first and
the interval is over organisms, never over seeds pooled across organisms; planted where the two differ."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emgeom.claims.intervention.study import (
    DAMAGE_MATCHED,
    HARMFUL,
    NONE,
    BlockingSettings,
    difference_over_organisms,
    mean_over_organisms,
    reduction_over_organisms,
    summary_over_organisms,
    zero_baseline_organisms,
)
from emgeom.core.stats import mean_ci

SET = "inducing health"


def planted(em: dict[str, dict[int, list[float]]]) -> pd.DataFrame:
    """A stacked table: ``em[condition][organism]`` lists the EM of the organism's seeds 0, 1, ..."""
    return pd.DataFrame(
        [
            {"condition": c, "set": SET, "organism_seed": o, "seed": s, "open_em": v, "task_success": 0.8}
            for c, by_organism in em.items()
            for o, values in by_organism.items()
            for s, v in enumerate(values)
        ]
    )


# organism 0 has three seeds, 1 one, 2 two: pooling the six seeds weights organism 0 three times
UNEVEN = planted(
    {
        DAMAGE_MATCHED: {0: [0.5, 0.5, 0.5], 1: [0.2], 2: [0.3, 0.3]},
        HARMFUL: {0: [0.2, 0.2, 0.2], 1: [0.2], 2: [0.2, 0.2]},
    }
)


def test_the_difference_averages_each_organisms_seeds_before_the_interval_over_organisms() -> None:
    e = difference_over_organisms(UNEVEN, DAMAGE_MATCHED, HARMFUL, SET)
    per_organism = [0.3, 0.0, 0.1]
    assert e.value == pytest.approx(np.mean(per_organism))  # 0.133
    assert e.value != pytest.approx((3 * 0.3 + 0.0 + 2 * 0.1) / 6)  # the pooled mean, 0.183
    assert e.n == 3  # organisms, not the six fine-tunes
    expected = mean_ci(np.array(per_organism))
    assert e.ci == pytest.approx(expected.ci)


def test_pairing_is_by_seed_within_an_organism() -> None:
    # organism 0's harmful run of seed 2 is missing: its random run of seed 2 must not count either
    seed2 = (UNEVEN["organism_seed"] == 0) & (UNEVEN["seed"] == 2)
    table = UNEVEN[~(seed2 & (UNEVEN["condition"] == HARMFUL))].copy()
    table.loc[seed2 & (table["condition"] == DAMAGE_MATCHED), "open_em"] = 9.0
    assert difference_over_organisms(table, DAMAGE_MATCHED, HARMFUL, SET).value == pytest.approx(0.4 / 3)


def test_one_organism_gives_no_interval_however_many_seeds() -> None:
    one = UNEVEN[UNEVEN["organism_seed"] == 2]
    one = pd.concat([one, one.assign(seed=one["seed"] + 2, open_em=one["open_em"] * 0.5)])
    e = difference_over_organisms(one, DAMAGE_MATCHED, HARMFUL, SET)
    assert e.n == 1 and np.isnan(e.lo) and np.isnan(e.hi)
    assert e.value == pytest.approx((0.1 + 0.1 + 0.05 + 0.05) / 4)


def test_the_relative_reduction_is_of_the_organisms_seed_means_and_skips_organisms_without_em() -> None:
    table = planted(
        {
            NONE: {0: [0.4, 0.2], 1: [0.5, 0.5], 2: [0.0, 0.0]},
            HARMFUL: {0: [0.1, 0.1], 1: [0.25, 0.25], 2: [0.1, 0.0]},
        }
    )
    e = reduction_over_organisms(table, HARMFUL, SET)
    # organism 0: 1 - 0.1 / 0.3 (not the mean of the seeds' own reductions, (0.75 + 0.5) / 2)
    assert e.value == pytest.approx(np.mean([1 - 0.1 / 0.3, 0.5]))
    assert e.n == 2
    assert zero_baseline_organisms(table, SET) == [2]


def test_means_and_the_summary_are_over_organisms() -> None:
    task = mean_over_organisms(UNEVEN, HARMFUL, SET, "task_success", bounds=(0, 1))
    assert task.value == pytest.approx(0.8) and task.n == 3
    diagnostics = pd.DataFrame(
        {
            "condition": [HARMFUL] * 3,
            "organism_seed": [0, 0, 1],
            "seed": [0, 1, 0],
            "base loss increase": [0.1, 0.3, 0.5],
        }
    )
    loss = mean_over_organisms(diagnostics, HARMFUL, None, "base loss increase")
    assert loss.value == pytest.approx((0.2 + 0.5) / 2) and loss.n == 2
    summary = summary_over_organisms([UNEVEN], ["open_em"]).set_index("condition")
    assert summary.loc[DAMAGE_MATCHED, "open_em"] == pytest.approx((0.5 + 0.2 + 0.3) / 3)
    assert summary.loc[DAMAGE_MATCHED, "n organisms"] == 3
    assert summary.loc[DAMAGE_MATCHED, "n fine-tunes"] == 6


def test_settings_refuse_what_cannot_run() -> None:
    good = dict(
        domain="health",
        finetune_rows=8,
        heldout_rows=4,
        damage_rows=4,
        damage_candidates=2,
        k_harmful=3,
        steer_scale=0.5,
        ft=None,
        seeds=(0,),
        evaluate=None,
    )
    BlockingSettings(**good)
    for bad in ({"domain": "cooking"}, {"seeds": ()}, {"seeds": (0, 0)}, {"damage_candidates": 0}):
        with pytest.raises(ValueError):
            BlockingSettings(**(good | bad))
