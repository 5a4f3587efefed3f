"""The intervention study's paired comparisons on a planted table."""

from __future__ import annotations

import pandas as pd
import pytest

from emgeom.em.intervention_study import (
    HARMFUL,
    NONE,
    RANDOM_LATENTS,
    condition_summary,
    only,
    reduction_difference,
    relative_reduction,
    zero_baseline_seeds,
)


def planted() -> pd.DataFrame:
    em = {NONE: (0.4, 0.5, 0.0), HARMFUL: (0.1, 0.25, 0.0), RANDOM_LATENTS: (0.36, 0.4, 0.1)}
    return pd.DataFrame(
        [
            {"condition": c, "set": "inducing health", "seed": s, "open_em": v, "task_success": 0.9}
            for c, values in em.items()
            for s, v in enumerate(values)
        ]
    )


def test_reductions_are_paired_by_seed_and_skip_zero_baselines() -> None:
    table = planted()
    harmful = relative_reduction(table, HARMFUL, "inducing health")
    assert harmful.value == pytest.approx((0.75 + 0.5) / 2) and harmful.n == 2
    diff = reduction_difference(table, HARMFUL, RANDOM_LATENTS, "inducing health")
    assert diff.value == pytest.approx(((0.36 - 0.1) / 0.4 + (0.4 - 0.25) / 0.5) / 2)
    assert zero_baseline_seeds(table, "inducing health") == [2]


def test_summary_and_subsets() -> None:
    summary = condition_summary([planted()], ["open_em", "task_success"])
    assert list(summary["condition"]) == [NONE, HARMFUL, RANDOM_LATENTS]
    assert summary.loc[summary["condition"] == HARMFUL, "open_em"].item() == pytest.approx(0.35 / 3)
    assert list(only({NONE: None, HARMFUL: None, RANDOM_LATENTS: None}, [HARMFUL, NONE])) == [HARMFUL, NONE]
