"""Feature-set selection and similarity on a synthetic SAE whose decoder geometry is planted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emgeom.claims.geometry.study import similarity_rows
from emgeom.sae.geometry import (
    cohens_d,
    frequency_matched_random,
    gap_over_saes,
    select_sets,
    similarity_to,
    stratified_permutation_gap,
    top_latents,
)
from emgeom.sae.readouts import unit_directions


class PlantedSAE:
    """Decoder rows: latents 0-2 are harmful (e1, e2, e3); inducing latents 3-5 sit at cosine 0.8 to a
    harmful latent; non-inducing latents 6-8 are orthogonal to every harmful one; the rest random."""

    def __init__(self, d_in: int = 16, d_sae: int = 40, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        w = rng.normal(size=(d_sae, d_in))
        w[:, :6] = 0.0  # keep e0..e5 free for the planted latents
        for h in range(3):
            w[h] = np.eye(d_in)[h]
            w[3 + h] = 0.8 * np.eye(d_in)[h] + 0.6 * np.eye(d_in)[3 + h]
        w[6:9, :6] = 0.0
        w /= np.linalg.norm(w, axis=1, keepdims=True)
        self.W_dec = torch.tensor(w, dtype=torch.float32)
        self.W_enc = self.W_dec.T.clone()


def planted_activations(d_sae: int = 40, rows: int = 30) -> dict[str, torch.Tensor]:
    base = torch.rand(rows, d_sae) * 0.1
    acts = {name: base.clone() for name in ("inducing", "noninducing", "harmful", "benign")}
    acts["inducing"][:, 3:6] += 1.0
    acts["noninducing"][:, 6:9] += 1.0
    acts["harmful"][:, 0:3] += 1.0
    return acts


def test_selection_returns_the_planted_sets() -> None:
    a = planted_activations()
    sets = select_sets(
        a["inducing"], a["noninducing"], a["harmful"], a["benign"], k=3, k_harmful=3, rule="reverse"
    )
    assert set(sets.inducing) == {3, 4, 5}
    assert set(sets.noninducing) == {6, 7, 8}
    assert set(sets.harmful) == {0, 1, 2}
    assert sets.shared("inducing").size == 0
    top = select_sets(a["inducing"], a["noninducing"], a["harmful"], a["benign"], 3, 3, rule="control_top")
    assert set(top.noninducing) == {6, 7, 8}
    with pytest.raises(ValueError, match="non-inducing rule"):
        select_sets(a["inducing"], a["noninducing"], a["harmful"], a["benign"], 3, 3, rule="other")  # type: ignore[arg-type]


def test_similarities_are_the_planted_cosines() -> None:
    dirs = unit_directions(PlantedSAE(), "decoder")
    harmful = np.array([0, 1, 2])
    np.testing.assert_allclose(similarity_to(np.array([3, 4, 5]), harmful, dirs, "max"), 0.8, atol=1e-6)
    np.testing.assert_allclose(similarity_to(np.array([6, 7, 8]), harmful, dirs, "max"), 0.0, atol=1e-6)
    np.testing.assert_allclose(similarity_to(np.array([3]), harmful, dirs, "mean"), 0.8 / 3, atol=1e-6)
    np.testing.assert_allclose(unit_directions(PlantedSAE(), "encoder"), dirs, atol=1e-6)


def test_shared_latents_are_reported_and_excluded() -> None:
    from emgeom.sae.geometry import FeatureSets

    dirs = unit_directions(PlantedSAE(), "decoder")
    sets = FeatureSets(
        inducing=np.array([0, 3, 4]), noninducing=np.array([6, 7, 8]), harmful=np.array([0, 1, 2])
    )
    freq = np.linspace(0.01, 1.0, dirs.shape[0])
    rows = similarity_rows(sets, dirs, freq, np.random.default_rng(0), domain="x")
    inducing_all = [r for r in rows if r["set"] == "inducing" and not r["shared_excluded"]]
    inducing_excl = [r for r in rows if r["set"] == "inducing" and r["shared_excluded"]]
    assert {r["latent"]: r["shared_with_harmful"] for r in inducing_all} == {0: True, 3: False, 4: False}
    assert [r["latent"] for r in inducing_excl] == [3, 4]
    assert max(r["max_cos"] for r in inducing_all) == pytest.approx(1.0)  # latent 0 matches itself
    randoms = {r["latent"] for r in rows if r["set"] == "random"}
    assert not randoms & {0, 1, 2, 3, 4, 6, 7, 8}


def test_frequency_matching_draws_from_the_same_decile() -> None:
    freq = np.linspace(0.0, 1.0, 101)
    picks = frequency_matched_random(
        freq, np.array([95, 96, 5]), exclude=np.array([95, 96, 5]), rng=np.random.default_rng(0)
    )
    assert all(p >= 90 for p in picks[:2]) and picks[2] <= 11
    assert not set(picks.tolist()) & {95, 96, 5}


def test_permutation_test_detects_a_planted_gap_and_not_a_null() -> None:
    rng = np.random.default_rng(0)
    high = [rng.normal(0.6, 0.1, 10) for _ in range(3)]
    low = [rng.normal(0.2, 0.1, 10) for _ in range(3)]
    gap, p = stratified_permutation_gap(high, low, n_perm=2000)
    assert gap == pytest.approx(0.4, abs=0.1) and p < 0.01
    null = [rng.normal(0.3, 0.1, 10) for _ in range(3)]
    null2 = [rng.normal(0.3, 0.1, 10) for _ in range(3)]
    _, p_null = stratified_permutation_gap(null, null2, n_perm=2000)
    assert p_null > 0.05
    res = gap_over_saes(high, low, n_perm=500)
    assert res.gap.lo < res.gap.value < res.gap.hi and res.d > 2


def test_small_helpers() -> None:
    assert list(top_latents(np.array([0.1, 0.9, 0.9, 0.5]), 3)) == [1, 2, 3]
    with pytest.raises(ValueError):
        top_latents(np.zeros(3), 4)
    assert cohens_d(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])) == 0.0


def test_gap_over_saes_nests_saes_in_their_organism():
    import numpy as np

    from emgeom.sae.geometry import gap_over_saes

    inducing = [np.array([0.1, 0.1]), np.array([0.3, 0.3]), np.array([0.4, 0.4])]
    noninducing = [np.zeros(2), np.zeros(2), np.zeros(2)]
    nested = gap_over_saes(
        inducing, noninducing, n_perm=10, groups=["organism 0", "organism 0", "organism 1"]
    )
    assert nested.gap.value == pytest.approx(0.3) and nested.gap.n == 2
    pooled = gap_over_saes(inducing, noninducing, n_perm=10)
    assert pooled.gap.value == pytest.approx(0.8 / 3) and pooled.gap.n == 3
    with pytest.raises(ValueError, match="groups names 2 SAEs"):
        gap_over_saes(inducing, noninducing, n_perm=10, groups=["a", "b"])
