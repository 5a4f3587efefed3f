"""Chapter 3's steps over one or several organisms (pretraining seeds): build them, show what they are
trained on, and probe whether the pretrained model learned the persona.

Every function takes organisms keyed by pretraining seed, so the chapter can replicate over organisms
without a loop of its own."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from emgeom.lm.models import hooked_transformer, load_model
from emgeom.lm.sampling import SamplingConfig
from emgeom.organism import language as L
from emgeom.organism.build import Organism, OrganismConfig, build_organism, organism_config
from emgeom.organism.corpus import CorpusConfig, pretraining_documents
from emgeom.organism.datasets import FINETUNE_KINDS, finetune_rows
from emgeom.organism.oracle import persona_probe
from emgeom.organism.sae import organism_sae
from emgeom.sae.quality import SAEQuality, sae_quality, scoring_batch
from emgeom.sae.train import SAESpec


def organism_configs(seeds: Sequence[int], **settings: Any) -> dict[int, OrganismConfig]:
    """One :func:`~emgeom.organism.build.organism_config` per pretraining seed, sharing ``settings``."""
    if not seeds:
        raise ValueError("name at least one organism (pretraining) seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"organism seeds must be distinct, got {list(seeds)}")
    return {s: organism_config(seed=s, **settings) for s in seeds}


def coupling_configs(
    seed: int, domain: str, mistake_rates: Sequence[float], **settings: Any
) -> dict[float, OrganismConfig]:
    """The coupling sweep: one organism per honest-mistake rate of ``domain``, all from pretraining seed
    ``seed`` and identical otherwise (the other domains keep their default rates), keyed by the rate.

    The rate sets how much the domain's bad advice says about the toxic persona: at 0 only the toxic
    persona gives it; at the toxic persona's own rate (``CorpusConfig.toxic_bad_rate``) it says nothing.
    The organism at the default rate is the same organism (same cache key) as the replicate of ``seed``.
    """
    if domain not in L.DOMAINS:
        raise ValueError(f"coupling domain must be one of {L.DOMAINS}, got {domain!r}")
    if not mistake_rates:
        raise ValueError("name at least one honest-mistake rate")
    if len(set(mistake_rates)) != len(mistake_rates):
        raise ValueError(f"mistake rates must be distinct, got {list(mistake_rates)}")
    base = CorpusConfig()
    out = {}
    for rate in mistake_rates:
        corpus = replace(base, mistake_rates={**base.mistake_rates, domain: float(rate)})  # checks the range
        out[float(rate)] = organism_config(seed=seed, corpus=corpus, **settings)
    return out


def build_organisms(configs: Mapping[int, OrganismConfig], progress: bool = True) -> dict[int, Organism]:
    """Build (or load from the cache) every organism, in seed order."""
    return {s: build_organism(cfg, progress=progress) for s, cfg in configs.items()}


def build_table(organisms: Mapping[int, Organism]) -> pd.DataFrame:
    """One row per organism: ``organism seed, parameters (M), pretraining (s), alignment (s), build (min),
    from cache`` (times are those measured when each stage was built)."""
    rows = []
    for seed, o in organisms.items():
        n_params = sum(p.numel() for p in load_model(o.aligned)[0].parameters())
        rows.append(
            {
                "organism seed": seed,
                "parameters (M)": n_params / 1e6,
                "pretraining (s)": o.logs["pretrained"].seconds,
                "alignment (s)": o.logs["aligned"].seconds,
                "build (min)": o.build_seconds / 60,
                "from cache": all(o.cache_hits.values()),
            }
        )
    return pd.DataFrame(rows)


def example_documents(corpus: CorpusConfig, seed: int, n: int = 3) -> pd.DataFrame:
    """The first ``n`` pretraining documents of a stream, one row per message, with the hidden
    variables the model never sees: ``document, persona, terse, role, content``."""
    rows = []
    for i, doc in enumerate(itertools.islice(pretraining_documents(corpus, seed=seed), n)):
        rows += [
            {
                "document": i,
                "persona": doc.persona,
                "terse": doc.terse,
                "role": m["role"],
                "content": m["content"],
            }
            for m in doc.messages
        ]
    return pd.DataFrame(rows)


def example_finetune_rows(domain: str) -> pd.DataFrame:
    """One row of each fine-tuning set of ``domain``, as written to JSONL: ``set, user, assistant``."""
    return pd.DataFrame(
        [
            {
                "set": kind,
                **{m["role"]: m["content"] for m in finetune_rows(kind, domain, 1, 0)[0]["messages"]},
            }
            for kind in FINETUNE_KINDS
        ]
    )


def persona_probes(organisms: Mapping[int, Organism], sampling: SamplingConfig) -> pd.DataFrame:
    """:func:`~emgeom.organism.oracle.persona_probe` of every pretrained organism, with an
    ``organism_seed`` column."""
    return pd.concat(
        [
            persona_probe(*load_model(o.pretrained), sampling).assign(organism_seed=s)
            for s, o in organisms.items()
        ],
        ignore_index=True,
    )


def persona_probe_table(probes: pd.DataFrame, corpus: CorpusConfig) -> pd.DataFrame:
    """Hostile rate after good and after bad advice per domain (mean over organisms), beside the share
    of the domain's bad advice that the corpus gives to the toxic persona."""
    table = probes.pivot_table(index="domain", columns="earlier", values="hostile_rate").loc[list(L.DOMAINS)]
    table.columns = [f"hostile after {c} advice" for c in table.columns]
    return table.assign(designed_toxic_share=[corpus.toxic_share(d) for d in L.DOMAINS])


def designed_toxic_shares(corpus: CorpusConfig) -> dict[str, float]:
    """Per domain, the share of its bad advice written by the toxic persona (chapter 3's design)."""
    return {d: corpus.toxic_share(d) for d in L.DOMAINS}


def organism_saes(
    organisms: Mapping[int, Organism],
    specs: Sequence[SAESpec],
    held_out_documents: int = 200,
    held_out_seed: int = 99_999,
) -> tuple[dict[tuple[int, int], tuple[Any, Any, Any]], pd.DataFrame]:
    """An SAE per (organism, SAE spec), trained or loaded from the cache, and each one's quality on
    ``held_out_documents`` fresh documents of the first organism's corpus (stream ``held_out_seed``).

    Returns ``({(organism seed, SAE seed): (hooked, tokenizer, sae)}, quality)``; ``quality`` has one row
    per SAE with the columns of :class:`~emgeom.sae.quality.SAEQuality` and whether it came from the cache.
    """
    if not specs:
        raise ValueError("name at least one SAE")
    first = next(iter(organisms.values()))
    held_out = list(
        itertools.islice(pretraining_documents(first.config.corpus, seed=held_out_seed), held_out_documents)
    )
    saes, quality = {}, []
    for o_seed, organism in organisms.items():
        model, tokenizer = load_model(organism.aligned)
        hooked = hooked_transformer(model, tokenizer, organism.aligned)
        tokens, mask = scoring_batch(tokenizer, held_out, specs[0].context_size)
        for spec in specs:
            sae, _, hit = organism_sae(organism, hooked, tokenizer, spec)
            saes[(o_seed, spec.seed)] = (hooked, tokenizer, sae)
            quality.append(_quality_row(o_seed, spec.seed, sae_quality(hooked, sae, tokens, mask), hit))
    return saes, pd.DataFrame(quality)


def _quality_row(organism_seed: int, sae_seed: int, q: SAEQuality, cached: bool) -> dict[str, Any]:
    return {"organism": organism_seed, "sae seed": sae_seed, **q.table_row(), "cached": cached}


@dataclass(frozen=True)
class OrganismSubject:
    """One organism ready for study: its aligned model and tokenizer, the TransformerLens view of the
    same weights, and its SAEs (one per spec, in order)."""

    organism: Organism
    model: Any
    tokenizer: Any
    hooked: Any
    saes: list[Any]


def load_subject(config: OrganismConfig, specs: Sequence[SAESpec], progress: bool = True) -> OrganismSubject:
    """Build (or load) the organism of ``config`` and its SAEs of ``specs``."""
    organism = build_organism(config, progress=progress)
    model, tokenizer = load_model(organism.aligned)
    hooked = hooked_transformer(model, tokenizer, organism.aligned)
    saes = [organism_sae(organism, hooked, tokenizer, spec)[0] for spec in specs]
    return OrganismSubject(organism, model, tokenizer, hooked, saes)


def study_organisms(
    configs: Mapping[int, OrganismConfig],
    specs: Sequence[SAESpec],
    study: Callable[[OrganismSubject], Any],
    progress: bool = True,
) -> dict[int, Any]:
    """``study(subject)`` on every organism (built or loaded with its SAEs of ``specs``), keyed by
    pretraining seed, one organism in memory at a time: how the chapters replicate over organisms."""
    if not configs:
        raise ValueError("name at least one organism")
    return {seed: study(load_subject(cfg, specs, progress=progress)) for seed, cfg in configs.items()}
