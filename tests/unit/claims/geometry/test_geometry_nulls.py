"""The data-level nulls of chapter 4's gap, on planted activations."""

from __future__ import annotations

import numpy as np
import pytest

from emgeom.claims.geometry.nulls import (
    SelectionReplicate,
    difference_cosine,
    latent_label_gap,
    random_latent_null,
    residual_cosine_test,
    row_permutation_gap,
)
from emgeom.core.stats import holm

D, ROWS, K = 200, 60, 5


def selection_artefact(seed: int) -> SelectionReplicate:
    """Inducing and non-inducing rows from ONE distribution. Latents 0-19 are noisy and close to the
    harmful set; latents 20-39 fire strongly and steadily and are far from it. A contrast picks noisy
    latents by chance, the non-inducing set's own top picks the strong ones: a gap made by the selection
    rule, with nothing in the data."""
    rng = np.random.default_rng(seed)
    scale = np.full(D, 0.05)
    scale[:20] = 1.0
    base = np.zeros(D)
    base[20:40] = 5.0
    closeness = np.full(D, 0.2)
    closeness[:20] = 0.8

    def rows() -> np.ndarray:
        return base + scale * rng.normal(size=(ROWS, D))

    return SelectionReplicate(rows(), rows(), closeness)


def real_difference(seed: int) -> SelectionReplicate:
    """Inducing rows fire latents 0-9 (close to the harmful set) more; non-inducing rows fire latents
    10-19 (far from it) more; everything else is noise."""
    rng = np.random.default_rng(seed)
    closeness = np.full(D, 0.2)
    closeness[:10] = 0.8
    ind = rng.normal(size=(ROWS, D))
    non = rng.normal(size=(ROWS, D))
    ind[:, :10] += 1.5
    non[:, 10:20] += 1.5
    return SelectionReplicate(ind, non, closeness)


def test_latent_shuffling_calls_a_selection_artefact_significant_and_row_shuffling_does_not():
    reps = [selection_artefact(s) for s in range(3)]
    latent = latent_label_gap(reps, K, "control_top", n_perm=500)
    rows = row_permutation_gap(reps, K, "control_top", n_perm=200)
    assert latent.observed == pytest.approx(rows.observed)  # the same statistic
    assert latent.observed > 0.4 and latent.p < 0.01  # latent labels: "significant"
    assert rows.p > 0.2  # the selection is inside the row null: nothing left


def test_row_shuffling_finds_a_real_difference_in_the_data():
    reps = [real_difference(s) for s in range(2)]
    res = row_permutation_gap(reps, K, "reverse", n_perm=200)
    assert res.observed == pytest.approx(0.6) and res.p < 0.01
    assert res.null.shape == (200,) and res.null.mean() < 0.2


def test_row_permutation_refuses_replicates_of_different_rows():
    a = real_difference(0)
    b = SelectionReplicate(a.inducing[:10], a.noninducing, a.closeness)
    with pytest.raises(ValueError, match="same rows"):
        row_permutation_gap([a, b], K, "reverse", n_perm=5)


def test_random_null_says_which_side_is_away_from_chance():
    rng = np.random.default_rng(0)
    closeness = rng.uniform(0.1, 0.3, size=D)
    closeness[:5] = 0.9
    freq = rng.uniform(0.01, 0.5, size=D)
    high = random_latent_null([np.arange(5)], [closeness], [freq], n_draws=500)
    typical = random_latent_null([np.arange(50, 55)], [closeness], [freq], n_draws=500)
    assert high.observed == pytest.approx(0.9) and high.p < 0.01
    assert typical.p > 0.05 and abs(typical.random_mean - closeness.mean()) < 0.05


def test_residual_cosine_is_one_when_the_difference_is_the_harmful_direction():
    rng = np.random.default_rng(1)
    direction = rng.normal(size=16)
    harmful, benign = rng.normal(size=(40, 16)) + direction, rng.normal(size=(40, 16))
    ind, non = rng.normal(size=(40, 16)) + direction, rng.normal(size=(40, 16))
    assert difference_cosine(ind, non, harmful, benign) > 0.8
    res = residual_cosine_test([ind], [non], [harmful], [benign], n_perm=200)
    assert res.p < 0.01
    same = residual_cosine_test(
        [rng.normal(size=(40, 16))], [rng.normal(size=(40, 16))], [harmful], [benign], 200
    )
    assert same.p > 0.01


def test_holm_is_step_down_and_monotone():
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": float("nan")})
    assert adjusted["a"] == pytest.approx(0.03)
    assert adjusted["c"] == pytest.approx(0.06) and adjusted["b"] == pytest.approx(0.06)
    assert np.isnan(adjusted["d"])


def test_the_symmetric_rule_selects_each_set_against_the_reference_not_the_other_set():
    from emgeom.sae.geometry import select_pair

    reference = np.zeros(6)
    inducing = np.array([3.0, 2.0, 0.0, 0.0, 1.0, 0.0])
    noninducing = np.array([3.0, 0.0, 2.0, 0.0, 0.0, 1.0])
    ind, non = select_pair(inducing, noninducing, 2, "symmetric", reference)
    # latent 0 fires in both sets: against a reference both sets keep it; a contrast drops it from both
    assert set(ind) == {0, 1} and set(non) == {0, 2}
    ind_r, non_r = select_pair(inducing, noninducing, 2, "reverse")
    assert 0 not in ind_r and 0 not in non_r
    with pytest.raises(ValueError, match="needs a reference"):
        select_pair(inducing, noninducing, 2, "symmetric")
    with pytest.raises(ValueError, match="unknown"):
        select_pair(inducing, noninducing, 2, "sideways")  # type: ignore[arg-type]


def test_row_permutation_with_the_symmetric_rule_keeps_the_reference_fixed():
    reps = [real_difference(s) for s in range(2)]
    with_ref = [SelectionReplicate(r.inducing, r.noninducing, r.closeness, np.zeros(D)) for r in reps]
    res = row_permutation_gap(with_ref, K, "symmetric", n_perm=100)
    assert res.observed == pytest.approx(0.6) and res.p < 0.02


def test_a_random_target_tells_a_harmful_set_apart_from_any_set_of_latents():
    from emgeom.claims.geometry.nulls import TargetReplicate, random_target_gap

    rng = np.random.default_rng(3)
    dirs = rng.normal(size=(D, 16))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    freq = rng.uniform(0.01, 0.5, size=D)
    harmful = np.arange(190, 200)
    near = np.arange(0, 10)
    dirs[near] = dirs[harmful] + 0.1 * rng.normal(size=(10, 16))  # inducing latents sit on the harmful ones
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    close = random_target_gap([TargetReplicate(near, np.arange(50, 60), harmful, dirs, freq)], 300)
    assert close.observed > 0.5 and close.p < 0.01
    # two arbitrary latent sets: whatever gap they have to the harmful set, random targets show it too
    arbitrary = random_target_gap(
        [TargetReplicate(np.arange(60, 70), np.arange(70, 80), harmful, dirs, freq)], 300
    )
    assert arbitrary.p > 0.05


def test_shared_latent_overlap_is_judged_against_its_frequency_matched_expectation() -> None:
    from emgeom.claims.geometry.nulls import shared_overlap_null

    # 100 latents in 10 frequency deciles of 10 latents each; the harmful set is 3 latents of decile 9
    freq = np.repeat(np.linspace(0.05, 0.95, 10), 10)
    harmful = np.array([90, 91, 92])
    # a set holding all 3 harmful latents plus 2 of decile 0: by chance, each decile-9 pick hits the
    # harmful set with probability 3/10, so 3 picks share 0.9 latents on average
    planted = np.array([90, 91, 92, 0, 1])
    null = shared_overlap_null([planted, planted], [harmful, harmful], [freq, freq], n_draws=4000, seed=1)
    assert null.observed == 3.0
    assert null.expected == pytest.approx(0.9, abs=0.05)
    assert null.p < 0.05
    # a set that shares nothing is never above chance
    none = shared_overlap_null([np.arange(5)], [harmful], [freq], n_draws=500, seed=1)
    assert none.observed == 0.0 and none.expected == 0.0 and none.p == 1.0


def test_the_random_target_null_without_shared_latents_sees_no_gap_made_of_identity() -> None:
    from emgeom.claims.geometry.nulls import TargetReplicate, random_target_gap

    # orthonormal decoder directions: a latent's closeness to a set is 1 if it belongs to it, else 0
    dirs, freq = np.eye(50), np.full(50, 0.1)
    harmful = np.array([0, 1, 2])
    rep = TargetReplicate(np.array([0, 1, 2, 10, 11]), np.arange(20, 25), harmful, dirs, freq)
    full = random_target_gap([rep], n_draws=500, seed=0)
    assert full.observed == pytest.approx(0.6) and full.p < 0.01  # identity makes the whole gap
    excl = random_target_gap([rep], n_draws=500, seed=0, exclude_shared=True)
    assert excl.observed == pytest.approx(0.0) and excl.p == 1.0  # without it nothing is left
