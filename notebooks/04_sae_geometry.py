# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
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
# | test | inducing vs non-inducing gap; labels permuted within each SAE; CI over organisms | `n_permutations`, `sae_seeds` |
#
# One distinction is **ours**, not the paper's: a latent can be *in* both the inducing and the harmful
# set, and then its similarity to the harmful set is 1 with itself. A gap made of such shared latents says
# "the same feature is used", not "nearby features are amplified". So every gap is reported twice: over all
# latents, and with shared latents excluded.

# %% tags=["parameters"]
organism_seeds: list[int] = [0, 1, 2]
d_model: int = 128
n_layers: int = 4
n_heads: int = 4
pretrain_steps: int = 600
pretrain_batch_size: int = 48
align_steps: int = 150
align_rank: int = 1
sae_layer: int = 2
sae_width: int = 1024
sae_architecture: str = "topk"
sae_k: int = 16
sae_l1_coefficient: float = 5.0
sae_training_tokens: int = 400_000
sae_seeds: list[int] = [0]
k: int = 10
k_harmful: int = 10
noninducing_rule: str = "reverse"
rows_per_set: int = 200
n_permutations: int = 5000
progress: bool = True

# %% tags=["hide-input"]
import time

from emgeom.core.results import record
from emgeom.core.stats import mean_ci
from emgeom.em.geometry_study import (
    GeometryConfig,
    coupling_correlations,
    describe_gaps,
    examples_table,
    geometry_over_runs,
    organism_domains,
    organism_runs,
    record_gaps,
    summarise_gaps,
)
from emgeom.lm.training import configure_threads
from emgeom.organism import language
from emgeom.organism.datasets import open_answer_rows
from emgeom.organism.study import build_organisms, designed_toxic_shares, organism_configs, organism_saes
from emgeom.plots import geometry as geometry_plots
from emgeom.sae.train import sae_specs

# %%
configure_threads()
chapter_start = time.perf_counter()
# Fail fast on bad choices, before any training.
specs = sae_specs(sae_seeds, layer=sae_layer, d_sae=sae_width, architecture=sae_architecture, k=sae_k,
                  l1_coefficient=sae_l1_coefficient, training_tokens=sae_training_tokens)
geometry = GeometryConfig(k=k, k_harmful=k_harmful, rule=noninducing_rule, n_perm=n_permutations)  # type: ignore[arg-type]
if sae_layer >= n_layers or not sae_seeds or not organism_seeds:
    raise ValueError(f"need sae_layer < n_layers ({n_layers}), and at least one SAE seed and organism seed")
if k > sae_width or k_harmful > sae_width:
    raise ValueError(f"k ({k}) and k_harmful ({k_harmful}) cannot exceed sae_width ({sae_width})")

# %% [markdown]
# ## The organism and its SAEs
#
# The organisms of chapter 3 (one per pretraining seed; loaded from the cache, or built if this chapter
# runs alone), and one SAE per SAE seed on each organism's residual stream, trained on fresh
# pretraining-style documents. The organisms are the replicates: each number below is computed on every
# organism, and its interval is over organisms.

# %%
organisms = build_organisms(organism_configs(organism_seeds, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                                             pretrain_steps=pretrain_steps, pretrain_batch_size=pretrain_batch_size,
                                             align_steps=align_steps, align_rank=align_rank), progress=progress)
saes, quality = organism_saes(organisms, specs)
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
harmful_rows, benign_rows = open_answer_rows(True, rows_per_set, seed=0), open_answer_rows(False, rows_per_set, seed=0)
runs = organism_runs(saes, organism_domains(language.DOMAINS, rows_per_set))
results, table = geometry_over_runs(runs, harmful_rows, benign_rows, geometry, progress=progress)
summary = summarise_gaps(table, geometry)
coupling = designed_toxic_shares(organisms[organism_seeds[0]].config.corpus)
geometry_plots.similarity_distributions(table, list(language.DOMAINS));

# %% [markdown]
# What each set responds to, for the first SAE (the rows whose answers activate the set most):

# %%
examples_table(next(iter(results.values())), ["health", "code"], n=2)

# %% [markdown]
# ## The gap, per domain
#
# The gap is the mean max-cosine of inducing latents minus that of non-inducing latents, averaged over
# each organism's SAEs and then over organisms (95% t-interval over organisms); the p-value is one-sided
# (inducing closer), from permuting the inducing/non-inducing labels within each SAE; Cohen's d is on the
# pooled latents. Domains are ordered by
# how strongly the corpus ties their bad advice to the toxic persona (chapter 3).

# %%
geometry_plots.gap_by_domain(summary, coupling);

# %%
columns = ["domain", "gap", "gap_lo", "gap_hi", "p", "d", "gap_excl_shared", "gap_excl_shared_lo", "gap_excl_shared_hi",
           "p_excl_shared", "inducing", "noninducing", "random", "shared_inducing_per_sae", "shared_noninducing_per_sae"]
summary[columns].round(3)

# %%
record_gaps(summary, interval="organisms (each organism's SAEs averaged first)")

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
r_all, r_excl = coupling_correlations(summary, coupling)
print(describe_gaps(summary))
print(f"Pearson r between the gap and the designed coupling over domains: {r_all:.2f} (all latents), "
      f"{r_excl:.2f} (shared excluded)")

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
#    which is why the paper's cross-domain claim is an empirical one. Domains also differ in their words,
#    so this comparison confounds the two; chapter 9 turns the knob alone, on organisms that differ in
#    nothing else.
#
# Chapter 5 asks whether the similarity measured here predicts how much EM each fine-tuning set causes.

# %%
print(f"chapter wall time: {time.perf_counter() - chapter_start:.0f} s")
