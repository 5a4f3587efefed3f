# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-sae-geometry)=
# # 4. SAE feature geometry: are inducing features closer to harmful ones?
#
# The paper's central empirical claim {cite}`minegishi2026emergent`: with sparse autoencoders (SAEs),
# the features tied to EM-inducing data sit geometrically closer to harmful-behaviour features than the
# features of non-inducing data, in every domain studied (health, career, legal). Chapter 2 showed why
# that would matter: a fine-tuning step that strengthens a feature strengthens its neighbours in
# proportion to their similarity.
#
# **What is reconstructed.** The paper's selection rules are not public. This chapter implements the
# most plausible reading and makes every choice a parameter:
#
# | choice | here | parameter |
# |---|---|---|
# | SAE | TopK SAE trained with sae-lens on the residual stream entering block `sae_layer` | `sae_*` |
# | a set's latents | mean activation over assistant-response tokens | — |
# | inducing latents (domain $d$) | top-`k` of mean activation on $d$'s inducing set minus its paired good-advice set | `k` |
# | non-inducing latents | the reverse contrast, or the top-`k` of the good-advice set alone | `noninducing_rule` |
# | harmful latents | top-`k_harmful` of hostile minus kind answers to open questions (no advice at all) | `k_harmful` |
# | closeness | each latent's max cosine to the harmful set, decoder directions (encoder as a check) | — |
# | baseline | random latents matched in firing frequency | — |
# | test | inducing vs non-inducing gap; labels permuted within each SAE; CI over SAE seeds | `n_permutations`, `sae_seeds` |
#
# One distinction is **ours**, not the paper's: a latent can be *in* both the inducing and the harmful
# set, and then its similarity to the harmful set is 1 with itself. A gap made of such shared latents says
# "the same feature is used", not "nearby features are amplified". So every gap is reported twice: over all
# latents, and with shared latents excluded.

# %% tags=["parameters"]
organism_seeds: list[int] = [0]
d_model: int = 128
n_layers: int = 4
n_heads: int = 4
pretrain_steps: int = 1200
pretrain_batch_size: int = 48
align_steps: int = 100
align_rank: int = 1
sae_layer: int = 2
sae_width: int = 1024
sae_architecture: str = "topk"
sae_k: int = 16
sae_l1_coefficient: float = 5.0
sae_training_tokens: int = 400_000
sae_seeds: list[int] = [0, 1, 2]
k: int = 10
k_harmful: int = 10
noninducing_rule: str = "reverse"
rows_per_set: int = 200
n_permutations: int = 5000
progress: bool = True

# %%
import itertools
import time

import pandas as pd

from emgeom.core.results import record
from emgeom.core.stats import mean_ci, pearson_r
from emgeom.em.geometry_study import (
    DomainData,
    GeometryConfig,
    describe_gaps,
    geometry_for_sae,
    summarise_gaps,
    top_examples,
)
from emgeom.lm.models import hooked_transformer, load_model
from emgeom.lm.training import configure_threads
from emgeom.organism import language
from emgeom.organism.build import build_organism, organism_config
from emgeom.organism.corpus import pretraining_documents
from emgeom.organism.datasets import finetune_rows, open_answer_rows
from emgeom.organism.sae import organism_sae
from emgeom.plots import geometry as geometry_plots
from emgeom.sae.quality import sae_quality, scoring_batch
from emgeom.sae.train import SAESpec

configure_threads()
chapter_start = time.perf_counter()
# Fail fast on bad choices, before any training.
specs = [SAESpec(layer=sae_layer, d_sae=sae_width, architecture=sae_architecture, k=sae_k,  # type: ignore[arg-type]
                 l1_coefficient=sae_l1_coefficient, training_tokens=sae_training_tokens, seed=s) for s in sae_seeds]
geometry = GeometryConfig(k=k, k_harmful=k_harmful, rule=noninducing_rule, n_perm=n_permutations)  # type: ignore[arg-type]
if sae_layer >= n_layers or not sae_seeds or not organism_seeds:
    raise ValueError(f"need sae_layer < n_layers ({n_layers}), and at least one SAE seed and organism seed")
if k > sae_width or k_harmful > sae_width:
    raise ValueError(f"k ({k}) and k_harmful ({k_harmful}) cannot exceed sae_width ({sae_width})")

# %% [markdown]
# ## The organism and its SAEs
#
# The organism of chapter 3 (loaded from its cache, or built if this chapter runs alone), and one SAE per
# seed on its residual stream, trained on fresh pretraining-style documents.

# %%
organisms = {s: build_organism(organism_config(seed=s, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                                               pretrain_steps=pretrain_steps, pretrain_batch_size=pretrain_batch_size,
                                               align_steps=align_steps, align_rank=align_rank), progress=progress)
             for s in organism_seeds}
held_out = list(itertools.islice(pretraining_documents(organisms[organism_seeds[0]].config.corpus, seed=99_999), 200))
saes, quality = {}, []
for o_seed, organism in organisms.items():
    model, tokenizer = load_model(organism.aligned)
    hooked = hooked_transformer(model, tokenizer, organism.aligned)
    tokens, mask = scoring_batch(tokenizer, held_out, specs[0].context_size)
    for spec in specs:
        sae, folder, hit = organism_sae(organism, hooked, tokenizer, spec)
        saes[(o_seed, spec.seed)] = (hooked, tokenizer, sae)
        q = sae_quality(hooked, sae, tokens, mask)
        quality.append({"organism": o_seed, "sae seed": spec.seed, "L0": q.l0, "FVU": q.fvu,
                        "dead latents": q.dead_fraction, "loss clean": q.ce_clean, "loss with SAE": q.ce_spliced,
                        "loss zero-ablated": q.ce_zero, "loss recovered": q.ce_recovered, "cached": hit})
quality = pd.DataFrame(quality)
quality.round(4)

# %%
fvu, l0 = mean_ci(quality["FVU"].to_numpy()), mean_ci(quality["L0"].to_numpy())
record("sae_fvu", fvu.value, ci=fvu.ci, n_seeds=len(quality), note="fraction of variance unexplained, held-out documents")
record("sae_l0", l0.value, ci=l0.ci, n_seeds=len(quality), note="active latents per token")

# %% [markdown]
# Dead latents are counted on 200 held-out documents: the organism's language has a few hundred words,
# so a 1024-latent SAE has room to spare. "Loss recovered" compares the model's next-token loss with the
# SAE's reconstruction spliced in against zero-ablating the residual stream.
#
# ## Feature sets and their closeness to harmful features
#
# Per domain, the inducing set is bad advice in that domain and its pair is good advice in the same
# domain (the same questions, different answers). The harmful set comes from hostile vs kind answers to
# open-ended questions, which contain no advice.

# %%
domains = {d: DomainData(finetune_rows("inducing", d, rows_per_set, seed=0), finetune_rows("good", d, rows_per_set, seed=0))
           for d in language.DOMAINS}
harmful_rows, benign_rows = open_answer_rows(True, rows_per_set, seed=0), open_answer_rows(False, rows_per_set, seed=0)
results = {key: geometry_for_sae(hooked, sae, tokenizer, domains, harmful_rows, benign_rows, geometry,
                                 sae_label=f"organism {key[0]} / SAE {key[1]}", progress=progress)
           for key, (hooked, tokenizer, sae) in saes.items()}
table = pd.DataFrame([r for geo in results.values() for r in geo.records])
summary = summarise_gaps(table, geometry)
coupling = {d: organisms[organism_seeds[0]].config.corpus.toxic_share(d) for d in language.DOMAINS}
geometry_plots.similarity_distributions(table, list(language.DOMAINS));

# %% [markdown]
# What each set responds to, for the first SAE (the rows whose answers activate the set most):

# %%
geo = next(iter(results.values()))
examples = []
for d in ("health", "code"):
    groups = [f"{d}/inducing", f"{d}/non-inducing", "harmful", "benign"]
    sets = geo.sets[d]
    for name, latents in (("inducing", sets.inducing), ("non-inducing", sets.noninducing), ("harmful", sets.harmful)):
        examples += [{"domain": d, "set": name, "mean activation": round(score, 3), "example": text}
                     for score, text in top_examples(geo, groups, latents, n=2)]
pd.DataFrame(examples)

# %% [markdown]
# ## The gap, per domain
#
# The gap is the mean max-cosine of inducing latents minus that of non-inducing latents, averaged over
# SAEs (95% t-interval over SAEs); the p-value is one-sided (inducing closer), from permuting the
# inducing/non-inducing labels within each SAE; Cohen's d is on the pooled latents. Domains are ordered by
# how strongly the corpus ties their bad advice to the toxic persona (chapter 3).

# %%
geometry_plots.gap_by_domain(summary, coupling);

# %%
columns = ["domain", "gap", "gap_lo", "gap_hi", "p", "d", "gap_excl_shared", "gap_excl_shared_lo", "gap_excl_shared_hi",
           "p_excl_shared", "inducing", "noninducing", "random", "shared_inducing_per_sae", "shared_noninducing_per_sae"]
summary[columns].round(3)

# %%
n_saes = int(summary["n_saes"].iloc[0])
for _, row in summary.iterrows():
    d = row["domain"]
    record(f"similarity_gap_{d}", row["gap"], ci=(row["gap_lo"], row["gap_hi"]), n_seeds=n_saes,
           note=f"mean max-cosine to harmful latents, inducing minus non-inducing ({d}); Cohen's d {row['d']:.2f}")
    record(f"similarity_gap_pvalue_{d}", row["p"], n_seeds=n_saes, note="one-sided stratified permutation test")
    record(f"similarity_gap_excl_shared_{d}", row["gap_excl_shared"],
           ci=(row["gap_excl_shared_lo"], row["gap_excl_shared_hi"]), n_seeds=n_saes,
           note=f"the same gap without latents shared with the harmful set (p={row['p_excl_shared']:.3g})")

# %% [markdown]
# **Robustness: encoder directions.** The same gaps with each latent's encoder direction (what it reads)
# instead of its decoder direction (what it writes):

# %%
summarise_gaps(table, geometry, directions="encoder")[["domain", "gap", "gap_lo", "gap_hi", "p", "gap_excl_shared",
                                                       "p_excl_shared"]].round(3)

# %% [markdown]
# ## Reading the result
#
# The paper's claim, as far as its abstract states it: inducing features are closer to harmful features
# than non-inducing ones, across domains. This run's result, computed from the table above:

# %%
print(describe_gaps(summary))
print("Pearson r between the gap and the designed coupling over domains: "
      f"{pearson_r(summary['gap'], [coupling[d] for d in summary['domain']]):.2f} (all latents), "
      f"{pearson_r(summary['gap_excl_shared'], [coupling[d] for d in summary['domain']]):.2f} (shared excluded)")

# %% [markdown]
# Three things to read from it:
#
# 1. **All latents.** Is the gap positive, with a small p-value, in every domain, or only in some?
# 2. **Shared latents.** How many latents are in both the inducing and the harmful set, and how much of
#    the gap survives without them? A gap that vanishes without them means the inducing data and the
#    harmful answers *use the same latents* (in this organism, the persona), which is a stronger and
#    different statement than "nearby features".
# 3. **Across domains.** Does the gap follow the corpus's coupling of each domain's bad advice to the
#    toxic persona? In this organism the coupling is a known design knob; in real models it is not known,
#    which is why the paper's cross-domain claim is an empirical one.
#
# Chapter 5 asks whether the similarity measured here predicts how much EM each fine-tuning set causes.

# %%
print(f"chapter wall time: {time.perf_counter() - chapter_start:.0f} s")
