"""The damage-matched control: among frequency-matched candidate latent sets, the one whose ablation
raises the base model's loss by as much as the harmful ablation does, on planted per-latent damage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emgeom.claims.intervention.study import (
    DAMAGE_MATCHED,
    HARMFUL,
    RANDOM_LATENTS,
    ConditionBuilder,
    nearest_damage,
)
from emgeom.lm.intervention import Intervention


def test_nearest_damage_picks_the_candidate_nearest_the_target_not_the_first_or_the_extremes() -> None:
    increases = {0: 0.40, 1: 0.02, 2: 0.13, 3: 0.09, 4: 0.25}  # candidate id -> planted loss increase
    candidates = [np.array([i, 100 + i]) for i in increases]
    match = nearest_damage(candidates, lambda c: increases[int(c[0])], target=0.12)
    assert match.latents.tolist() == [2, 102]  # 0.13 is nearest 0.12; 0.09 is the runner-up
    assert match.chosen == pytest.approx(0.13) and match.target == pytest.approx(0.12)
    assert match.candidates == tuple(increases.values())
    assert match.gap == pytest.approx(0.01)
    # the most destructive candidate wins only when the harmful ablation is as destructive
    assert nearest_damage(candidates, lambda c: increases[int(c[0])], target=0.5).latents[0] == 0
    with pytest.raises(ValueError, match="at least one candidate"):
        nearest_damage([], lambda c: 0.0, 0.1)


class FakeSAE:
    def __init__(self, d_sae: int = 80, d_in: int = 24) -> None:
        self.W_dec = torch.randn(d_sae, d_in, generator=torch.Generator().manual_seed(1))

        class Cfg:
            class metadata:  # noqa: N801
                hook_name = "blocks.1.hook_resid_pre"

        self.cfg = Cfg()


class PlantedLoss:
    """A base model whose loss is 1 plus the planted damage of every latent an ablation removes (latents
    are recognised by their decoder direction); it counts its calls (each is a forward pass)."""

    def __init__(self, dirs: np.ndarray, damage: np.ndarray) -> None:
        self.dirs, self.damage, self.calls = dirs, damage, 0

    def latents(self, iv: Intervention) -> list[int]:
        return [int(np.argmax(self.dirs @ d)) for d in iv.directions]

    def __call__(self, iv: Intervention | None) -> float:
        self.calls += 1
        return 1.0 if iv is None else 1.0 + float(self.damage[self.latents(iv)].sum())


def planted_builder(n_damage_candidates: int = 10) -> tuple[ConditionBuilder, PlantedLoss]:
    sae = FakeSAE()
    rng = np.random.default_rng(7)
    dirs = sae.W_dec.numpy() / np.linalg.norm(sae.W_dec.numpy(), axis=1, keepdims=True)
    damage = rng.uniform(0.0, 0.2, 80)  # each latent's own damage, spread widely
    damage[:4] = 0.01  # the harmful latents do little damage: a random set usually does more
    loss = PlantedLoss(dirs, damage)
    builder = ConditionBuilder(
        sae,
        np.arange(4),
        rng.uniform(0.01, 1, 80),
        rng.standard_normal((200, 24)),
        steer_strength=1.0,
        base_loss=loss,
        n_damage_candidates=n_damage_candidates,
    )
    return builder, loss


def test_the_builder_chooses_the_candidate_whose_damage_is_nearest_the_harmful_ablations() -> None:
    builder, loss = planted_builder()
    conditions = builder(0)
    match = builder.damage[0]
    assert match.target == pytest.approx(0.04)  # four harmful latents at 0.01 each
    assert len(set(match.candidates)) == len(match.candidates) == 10  # the choice is not a tie
    nearest = min(match.candidates, key=lambda x: abs(x - match.target))
    assert match.chosen == nearest and match.chosen != max(match.candidates)
    # the intervention built is the chosen set, and its planted damage is what was recorded
    chosen = conditions[DAMAGE_MATCHED]
    assert loss.latents(chosen) == match.latents.tolist()
    assert loss(chosen) - loss(None) == pytest.approx(match.chosen)
    assert chosen.rank == conditions[HARMFUL].rank == 4
    assert not set(match.latents.tolist()) & {0, 1, 2, 3}  # never the harmful latents themselves
    # frequency matching alone (the energy-matched set) does more damage than the damage-matched set
    energy = loss(conditions[RANDOM_LATENTS]) - loss(None)
    assert abs(match.chosen - match.target) <= abs(energy - match.target)


def test_damage_matching_costs_one_pass_per_candidate_and_is_drawn_per_seed() -> None:
    builder, loss = planted_builder(n_damage_candidates=6)
    builder(0)
    first_calls = loss.calls
    assert first_calls == 6 + 2  # the candidates, the harmful ablation and no ablation
    builder(1)
    assert loss.calls - first_calls == 6  # the harmful and unablated losses are measured once
    assert builder(0) is builder(0)
    assert builder.damage[0].candidates != builder.damage[1].candidates


def test_without_a_loss_function_no_damage_matched_control_is_built() -> None:
    builder, _ = planted_builder()
    builder.base_loss = None
    assert DAMAGE_MATCHED not in builder(0) and RANDOM_LATENTS in builder(0)
    with pytest.raises(ValueError, match="no base_loss"):
        builder.loss_increase(builder(0)[HARMFUL])
