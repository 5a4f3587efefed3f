"""One organism family: parameter names become organism, SAE and fine-tune configs in one place."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from emgeom.organism.build import organism_config
from emgeom.organism.family import FineTuneRecipe, OrganismFamily
from emgeom.sae.train import SAESpec

ROOT = Path(__file__).resolve().parents[3]


def test_the_family_reads_the_names_chapters_declare_and_ignores_the_rest() -> None:
    family = OrganismFamily.from_parameters(
        {"d_model": 32, "n_layers": 2, "sae_width": 64, "sae_layer": 1, "lora_rank": 2, "domain": "health"}
    )
    cfg = family.organism_config(3)
    assert cfg == organism_config(seed=3, d_model=32, n_layers=2)
    assert family.organism_configs([3, 4])[3] == cfg
    assert family.sae_spec(5) == SAESpec(seed=5, layer=1, d_sae=64, training_tokens=400_000)
    ft = family.finetune()
    assert (ft.lora.rank, ft.lora.alpha) == (2, 8.0)
    assert (ft.train.steps, ft.train.batch_size, ft.train.lr, ft.train.warmup_steps) == (150, 16, 0.002, 10)


def test_a_chapter_can_change_the_regime_but_keeps_the_recipes_adapter() -> None:
    family = OrganismFamily()
    first_order = family.finetune(steps=10, lr=1e-3, warmup_steps=1)
    assert (first_order.train.steps, first_order.train.lr, first_order.train.warmup_steps) == (10, 1e-3, 1)
    assert first_order.lora == family.lora() and first_order.train.batch_size == 16
    narrowed = family.lora(layers=(1,))
    assert narrowed.layers == (1,) and narrowed.rank == 4


def test_an_sae_layer_the_organism_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match=r"sae_layer \(4\) must be below n_layers \(4\)"):
        OrganismFamily.from_parameters({"sae_layer": 4}).sae_specs([0])


@pytest.mark.parametrize("profile", ["cpu", "smoke", "gpu"])
def test_each_profile_sets_the_whole_recipe_in_its_shared_section(profile: str) -> None:
    shared = yaml.safe_load((ROOT / "ci" / "profiles" / f"{profile}.yaml").read_text())["shared"]
    assert set(vars(FineTuneRecipe())) <= set(shared)


def test_the_defaults_are_the_cpu_profile() -> None:
    shared = yaml.safe_load((ROOT / "ci" / "profiles" / "cpu.yaml").read_text())["shared"]
    assert OrganismFamily.from_parameters(shared) == OrganismFamily()
