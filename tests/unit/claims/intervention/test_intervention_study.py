"""The intervention study: controls of the same size as the harmful ablation, drawn per seed, and the
paired comparisons on a planted table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emgeom.claims.intervention.study import (
    HARMFUL,
    NONE,
    RANDOM_LATENTS,
    ConditionBuilder,
    condition_summary,
    distinct_matched_latents,
    energy_removed,
    paired_difference,
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


def test_comparisons_are_paired_by_seed_and_zero_baselines_are_named() -> None:
    table = planted()
    harmful = relative_reduction(table, HARMFUL, "inducing health")
    assert harmful.value == pytest.approx((0.75 + 0.5) / 2) and harmful.n == 2  # seed 2 has no EM to reduce
    diff = paired_difference(table, RANDOM_LATENTS, HARMFUL, "inducing health")
    assert diff.value == pytest.approx((0.26 + 0.15 + 0.1) / 3) and diff.n == 3
    assert zero_baseline_seeds(table, "inducing health") == [2]
    summary = condition_summary([table], ["open_em"])
    assert list(summary["condition"]) == [NONE, HARMFUL, RANDOM_LATENTS]


def test_matched_latents_are_distinct_and_from_the_same_decile() -> None:
    rng = np.random.default_rng(0)
    freq = np.concatenate([np.zeros(10), np.linspace(0.01, 1.0, 100)])
    like = np.arange(10, 20)  # ten latents from the lowest decile that fires
    for _ in range(20):
        picks = distinct_matched_latents(freq, like, like, rng)
        assert len(set(picks.tolist())) == 10 and not set(picks.tolist()) & set(like.tolist())
        assert (freq[picks] > 0).all()


def test_energy_removed_is_the_share_of_squared_norm_in_the_span() -> None:
    res = np.zeros((4, 3))
    res[:, 0], res[:, 1] = 3.0, 4.0
    assert energy_removed(res, np.array([[1.0, 0, 0]])) == pytest.approx(9 / 25)
    assert energy_removed(res, np.array([[1.0, 0, 0], [0, 2.0, 0], [1.0, 2.0, 0]])) == pytest.approx(1.0)


class FakeSAE:
    def __init__(self, d_sae: int = 60, d_in: int = 16) -> None:
        import torch

        self.W_dec = torch.randn(d_sae, d_in, generator=torch.Generator().manual_seed(0))

        class Cfg:
            class metadata:  # noqa: N801
                hook_name = "blocks.1.hook_resid_pre"

        self.cfg = Cfg()


def test_controls_match_the_harmful_ablation_in_rank_and_energy_and_differ_by_seed() -> None:
    sae = FakeSAE()
    rng = np.random.default_rng(3)
    harmful = np.arange(5)
    dirs = sae.W_dec.numpy() / np.linalg.norm(sae.W_dec.numpy(), axis=1, keepdims=True)
    residuals = rng.standard_normal((300, 16)) + 3.0 * dirs[0]  # the harmful span carries extra energy
    builder = ConditionBuilder(sae, harmful, rng.uniform(0.01, 1, 60), residuals, steer_strength=1.0)
    first, second = builder(0), builder(1)
    assert first[HARMFUL].rank == first[RANDOM_LATENTS].rank == 5
    target = energy_removed(residuals, first[HARMFUL].directions)
    matched = energy_removed(residuals, first[RANDOM_LATENTS].directions)
    typical = np.median(
        [
            energy_removed(residuals, dirs[distinct_matched_latents(builder.freq, harmful, harmful, rng)])
            for _ in range(20)
        ]
    )
    assert abs(matched - target) <= abs(typical - target)
    assert not np.array_equal(first[RANDOM_LATENTS].directions, second[RANDOM_LATENTS].directions)
    assert builder(0) is first  # built once per seed
