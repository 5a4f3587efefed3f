"""One organism family: the organisms, their SAEs and the fine-tuning recipe a profile's organism chapters
share, built once from the profile's ``shared`` parameters.

Chapters 3-9, the runner's artifact steps (:mod:`emgeom.book.artifact_jobs`) and the tests all turn
parameter names into configs here, and nowhere else, so a chapter that runs after the artifact steps
finds every organism and SAE in the cache, and a setting lives in one place::

    family = OrganismFamily.from_parameters(globals())   # in a chapter, after its parameters cell
    organisms = build_organisms(family.organism_configs(organism_seeds))
    saes, quality = organism_saes(organisms, family.sae_specs(sae_seeds))
    ft = family.finetune()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from emgeom.lm.finetune import FineTuneConfig, LoraSpec
from emgeom.lm.training import TrainConfig
from emgeom.organism.build import OrganismConfig, organism_config
from emgeom.organism.study import coupling_configs, organism_configs
from emgeom.sae.train import SAESpec, sae_specs


@dataclass(frozen=True)
class OrganismSettings:
    """What makes an organism, besides its seed (the names chapters and profiles use)."""

    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    pretrain_steps: int = 600
    pretrain_batch_size: int = 48
    align_steps: int = 150
    align_rank: int = 1


@dataclass(frozen=True)
class SAESettings:
    """What makes an SAE on an organism, besides its seed. Parameter names are ``sae_<field>``, except
    ``sae_width`` for ``d_sae``."""

    layer: int = 2
    d_sae: int = 1024
    architecture: str = "topk"
    k: int = 16
    l1_coefficient: float = 5.0
    training_tokens: int = 400_000


@dataclass(frozen=True)
class FineTuneRecipe:
    """The narrow fine-tune every organism chapter runs: a LoRA adapter on every block, AdamW with a
    linear warm-up."""

    finetune_steps: int = 150
    finetune_lr: float = 0.002
    lora_rank: int = 4
    lora_alpha: float = 8.0
    finetune_batch_size: int = 16
    finetune_warmup_steps: int = 10


#: Chapter parameter name -> ``SAESettings`` field.
SAE_PARAMETERS = {f"sae_{f.name}": f.name for f in fields(SAESettings)} | {"sae_width": "d_sae"}
del SAE_PARAMETERS["sae_d_sae"]
#: Chapter parameter names that set an organism.
ORGANISM_PARAMETERS = tuple(f.name for f in fields(OrganismSettings))
#: Chapter parameter names of the fine-tuning recipe.
FINETUNE_PARAMETERS = tuple(f.name for f in fields(FineTuneRecipe))


@dataclass(frozen=True)
class OrganismFamily:
    """The organisms, SAEs and fine-tune recipe of one profile (each part defaults to the cpu profile's)."""

    organism: OrganismSettings = field(default_factory=OrganismSettings)
    sae: SAESettings = field(default_factory=SAESettings)
    recipe: FineTuneRecipe = field(default_factory=FineTuneRecipe)

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any]) -> OrganismFamily:
        """The family a chapter's parameters name (``globals()`` of a chapter, or the runner's full
        parameter values); names a chapter does not declare keep their defaults, others are ignored."""
        organism = {n: parameters[n] for n in ORGANISM_PARAMETERS if n in parameters}
        sae = {f: parameters[n] for n, f in SAE_PARAMETERS.items() if n in parameters}
        recipe = {n: parameters[n] for n in FINETUNE_PARAMETERS if n in parameters}
        return cls(OrganismSettings(**organism), SAESettings(**sae), FineTuneRecipe(**recipe))

    def organism_config(self, seed: int) -> OrganismConfig:
        """The organism of pretraining seed ``seed``."""
        return organism_config(seed=seed, **vars(self.organism))

    def organism_configs(self, seeds: Sequence[int]) -> dict[int, OrganismConfig]:
        """The replicate organisms, by pretraining seed (distinct, at least one)."""
        return organism_configs(seeds, **vars(self.organism))

    def coupling_configs(self, seed: int, domain: str, rates: Sequence[float]) -> dict[float, OrganismConfig]:
        """The coupling sweep's organisms (:func:`~emgeom.organism.study.coupling_configs`), by rate."""
        return coupling_configs(seed, domain, rates, **vars(self.organism))

    def coupling_sweep(
        self, seeds: Sequence[int], domain: str, rates: Sequence[float]
    ) -> dict[int, dict[float, OrganismConfig]]:
        """The sweep's organisms for every pretraining seed in ``seeds``: seed -> rate -> config."""
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"coupling organism seeds must be distinct and at least one, got {list(seeds)}")
        return {seed: self.coupling_configs(seed, domain, rates) for seed in seeds}

    def sae_spec(self, seed: int) -> SAESpec:
        return self.sae_specs([seed])[0]

    def sae_specs(self, seeds: Sequence[int]) -> list[SAESpec]:
        """One SAE spec per seed (checked on construction); the layer must exist in the organism."""
        if self.sae.layer >= self.organism.n_layers:
            raise ValueError(
                f"sae_layer ({self.sae.layer}) must be below n_layers ({self.organism.n_layers})"
            )
        return sae_specs(seeds, **vars(self.sae))

    def finetune(
        self,
        *,
        steps: int | None = None,
        lr: float | None = None,
        warmup_steps: int | None = None,
        lora: LoraSpec | None = None,
    ) -> FineTuneConfig:
        """The recipe's fine-tune; ``steps``, ``lr``, ``warmup_steps`` or the adapter replaced where a
        chapter studies another regime (chapter 5's first-order fine-tune)."""
        r = self.recipe
        return FineTuneConfig(
            lora or self.lora(),
            TrainConfig(
                steps=r.finetune_steps if steps is None else steps,
                batch_size=r.finetune_batch_size,
                lr=r.finetune_lr if lr is None else lr,
                warmup_steps=r.finetune_warmup_steps if warmup_steps is None else warmup_steps,
            ),
        )

    def lora(self, **overrides: Any) -> LoraSpec:
        """The recipe's adapter (rank ``lora_rank``, scale ``lora_alpha``), with ``overrides`` of
        :class:`~emgeom.lm.finetune.LoraSpec` fields (``target_modules``, ``layers``)."""
        return LoraSpec(rank=self.recipe.lora_rank, alpha=self.recipe.lora_alpha, **overrides)
