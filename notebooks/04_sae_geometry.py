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
# | inducing and non-inducing latents (domain $d$) | by default each set's top-`k` of mean activation minus that of a common reference (bad and good advice of every domain, a separate draw); or the inducing set minus its good-advice pair and the reverse | `k`, `selection_rule`, `reference_rows_per_set` |
# | harmful latents | top-`k_harmful` of hostile minus kind answers to open questions (no advice at all) | `k_harmful` |
# | closeness | each latent's max cosine to the harmful set, decoder directions (encoder as a check) | — |
# | baseline | random latents matched in firing frequency | — |
# | test | rows permuted between the two sets with the selection redone (Holm over domains); CI over organisms; the earlier latent-label permutation beside it | `n_row_permutations`, `n_permutations` |
#
# **What is designed and what is measured.** The organism's corpus makes every domain's bad advice
# evidence of the toxic persona, with a designed strength per domain (chapter 3), so the *direction* of
# the gap and the order of the domains are what the design predicts. What is measured here is whether
# the model and its SAE turn that statistical link into decoder geometry at all, and whether the gap
# survives tests that could fail: rows permuted with the selection redone, each side against random
# latents, the quiz set (same words, no persona), and the residual stream without an SAE.
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
selection_rule: str = "symmetric"
reference_rows_per_set: int = 40
rows_per_set: int = 200
n_permutations: int = 5000
n_row_permutations: int = 1000
n_random_draws: int = 1000
sae_check_widths: list[int] = [256, 4096]
progress: bool = True

# %% tags=["hide-input"]
import time

from emgeom.claims.geometry.evidence import (
    data_level_tests,
    estimates_by_domain,
    paired_gap_difference,
    per_organism_gaps,
    quiz_domains,
    record_data_level_tests,
    residual_tests,
    two_by_two,
    width_check,
)
from emgeom.claims.geometry.study import (
    GeometryConfig,
    coupling_correlations,
    describe_gaps,
    examples_table,
    geometry_over_runs,
    organism_domains,
    organism_reference,
    organism_runs,
    record_gaps,
    summarise_gaps,
)
from emgeom.core.results import record, record_each
from emgeom.core.stats import mean_ci
from emgeom.lm.training import configure_threads
from emgeom.organism import language
from emgeom.organism.datasets import open_answer_rows
from emgeom.organism.family import OrganismFamily
from emgeom.organism.study import build_organisms, designed_toxic_shares, organism_saes
from emgeom.plots import geometry as geometry_plots

# %%
configure_threads()
chapter_start = time.perf_counter()
# Fail fast on bad choices, before any training.
family = OrganismFamily.from_parameters(globals())  # organisms and SAEs, from the parameters
specs = family.sae_specs(sae_seeds)
geometry = GeometryConfig(k=k, k_harmful=k_harmful, rule=selection_rule, n_perm=n_permutations)  # type: ignore[arg-type]
if not organism_seeds:  # the SAE layer and seeds are checked by family.sae_specs above
    raise ValueError("need at least one organism seed")
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
organisms = build_organisms(family.organism_configs(organism_seeds), progress=progress)
saes, quality = organism_saes(organisms, specs)
quality.round(4)

# %%
by_organism = quality.groupby("organism")[["FVU", "L0"]].mean()  # each organism's SAEs averaged first
fvu, l0 = mean_ci(by_organism["FVU"].to_numpy()), mean_ci(by_organism["L0"].to_numpy())
record("sae_fvu", fvu.value, ci=fvu.ci, n_seeds=fvu.n, note="fraction of variance unexplained, held-out documents")
record("sae_l0", l0.value, ci=l0.ci, n_seeds=l0.n, note="active latents per token")

# %% [markdown]
# Dead latents are counted on 200 held-out documents: the organism's language has a few hundred words,
# so a 1024-latent SAE has room to spare. "Loss recovered" compares the model's next-token loss with the
# SAE's reconstruction spliced in against zero-ablating the residual stream.
#
# ## Feature sets and their closeness to harmful features
#
# Per domain, the inducing set is bad advice in that domain and its pair is good advice in the same
# domain (the same questions, different answers). Travel is the corpus's control for chapter 5's
# *superposition or persona?* (its bad advice shares the word `ugh` with hostile answers and says nothing
# about the persona): it is shown here, and read there, but it is not one of the domains the claim
# "across domains" counts. The harmful set comes from hostile vs kind answers to
# open-ended questions, which contain no advice: half of the open questions and half of the answer
# phrases; EM (chapters 3, 5, 6, 9) is measured on the other half of the questions, so the harmful
# latents are not found from the very answers that later count as EM.

# %%
harmful_rows, benign_rows = open_answer_rows(True, rows_per_set, seed=0), open_answer_rows(False, rows_per_set, seed=0)
reference = organism_reference(language.DOMAINS, reference_rows_per_set)  # what the symmetric rule selects against
runs = organism_runs(saes, organism_domains(language.DOMAINS, rows_per_set))
results, table = geometry_over_runs(runs, harmful_rows, benign_rows, geometry, progress=progress, reference_rows=reference)
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
# ## A test at the level of the claim
#
# The p-value above permutes the labels of latents *after* they were selected: it asks whether these
# ten latents are closer than those ten, not whether inducing *data* is closer than non-inducing data.
# The selection (top-`k` contrasts) is where most of an effect can arise, so the row test below permutes the
# **rows** between the inducing and the non-inducing set, redoes the selection and the gap in every
# permutation (`n_row_permutations`, the same permutation for every SAE, since the rows are the same
# data), and adjusts the p-values over the domains (Holm). A unit test plants a gap made by the
# selection rule alone: the latent-label test calls it significant, the row test does not.
#
# Rows permuted between the two sets make the two shuffled sets alike: two 50/50 mixtures of the same
# rows select the same latents, so the permuted gaps sit near 0 and the test gives a small p for any
# positive gap and a large one for any negative gap. In effect it is a sign test, so **it decides
# nothing** here (it is shown, and recorded as descriptive). A second null keeps the selected latents and
# replaces the harmful set with random latent sets matched to it in firing frequency
# (`n_random_draws`): is the harmful set special? It is shown beside the verdict.
#
# **What decides.** A latent that belongs to both sets has a closeness of 1 to the harmful set by
# identity; the paper's account is about *neighbours* in superposition. So the scorecard's primary, declared
# before the data, is the gap **without the latents shared with the harmful set**, with its interval over
# organisms, one-sided in the paper's direction (inducing closer). How many latents each set shares with
# the harmful set is shown against the overlap that random sets matched in firing frequency would have.
#
# Two more nulls say which side carries a gap: each set's mean closeness against `n_random_draws`
# random sets of latents matched in firing frequency (two-sided). A gap can come from non-inducing
# latents sitting *below* chance while inducing latents sit at chance.

# %%
evidence = data_level_tests(runs, results, geometry, n_row_permutations, n_random_draws)
record_data_level_tests(evidence, n_row_permutations, n_random_draws, len(organisms))
evidence.round(4)

# %% [markdown]
# **Nearer the harmful latents, or nearer latents of any kind?** A 2x2: the inducing and the non-inducing
# latents, each against the harmful latents and against as many *benign* latents (the top of kind minus
# hostile answers). The account predicts inducing latents nearer the harmful set and non-inducing ones
# nearer the benign set: a positive interaction (interval over organisms).

# %%
square = two_by_two(runs, results, k_harmful)
record_each("geometry_2x2_interaction_{}", estimates_by_domain(square, "interaction"),
            note="(inducing→harmful − inducing→benign) − (non-inducing→harmful − non-inducing→benign); over organisms")
square.round(3)

# %% [markdown]
# **The selection rule.** The default selects each set against a common reference (advice of every
# domain), so neither set is defined by the other. The earlier rule picked the inducing latents as
# inducing minus good advice and the non-inducing latents as the reverse, which makes the non-inducing
# latents *benign-persona* latents by construction. The same gaps under the other rule:

# %%
other = GeometryConfig(k=k, k_harmful=k_harmful, rule="reverse" if selection_rule == "symmetric" else "symmetric",
                       n_perm=n_permutations)
_, other_table = geometry_over_runs(runs, harmful_rows, benign_rows, other, reference_rows=reference)
summarise_gaps(other_table, other)[["domain", "gap", "gap_lo", "gap_hi", "p", "gap_excl_shared"]].assign(
    rule=other.rule).round(3)

# %% [markdown]
# **SAE width.** The gap on the first organism with SAEs of other widths (`sae_check_widths`): a narrow
# SAE can make one latent stand for both a persona and its advice (a "shared latent"); a wide one can
# split a feature or absorb it into others' decoder directions. A gap that only one width shows is an
# artefact of that width.

# %%
first = organism_seeds[0]
hooked0, tokenizer0, _ = saes[(first, sae_seeds[0])]
width_check(organisms[first], hooked0, tokenizer0, specs[0], [sae_width, *sae_check_widths],
            organism_domains(language.DOMAINS, rows_per_set), harmful_rows, benign_rows, geometry,
            reference).round(3)

# %% [markdown]
# ## Does the geometry read the persona or the words?
#
# The quiz set's answers are drawn from the same bad-advice phrases as inducing health's, after a user
# asked for a wrong answer; it induces no EM (chapter 3). Its similarity gap against the same good-advice rows, read on its
# answer tokens in their own context, next to inducing health's: if the geometry reads the persona (the
# context that makes bad advice evidence of the toxic speaker), the quiz gap is smaller; if it reads the
# words, the two are alike. The difference is paired by organism.

# %%
quiz_runs = organism_runs(saes, quiz_domains("health", rows_per_set))
_, quiz_table = geometry_over_runs(quiz_runs, harmful_rows, benign_rows, geometry, progress=progress,
                                  reference_rows=reference)
quiz_gaps, inducing_gaps = per_organism_gaps(quiz_table, "health"), per_organism_gaps(table, "health")
quiz_gap = mean_ci(list(quiz_gaps.values()))
quiz_minus = paired_gap_difference(quiz_gaps, inducing_gaps)
record("quiz_similarity_gap_health", quiz_gap.value, ci=quiz_gap.ci, n_seeds=quiz_gap.n,
       note="quiz health vs good health, chapter 4's gap; interval over organisms")
record("quiz_minus_inducing_gap_health", quiz_minus.value, ci=quiz_minus.ci, n_seeds=quiz_minus.n,
       note="quiz gap minus inducing-health gap, paired by organism")
print(f"health: inducing gap {mean_ci(list(inducing_gaps.values()))}, quiz gap {quiz_gap}; quiz minus inducing "
      f"{quiz_minus}")

# %% [markdown]
# ## Without an SAE
#
# The same question in the raw residual stream at the SAE's layer: the cosine between the
# (inducing − good advice) and the (hostile − kind) difference-of-means directions, over the answer
# tokens; the interval is over organisms, the p-value from permuting rows between the inducing and the
# good set. If the SAE's gap is real, the residual stream should show it too; if only the SAE shows it,
# it may be an artefact of which latents absorbed what.

# %%
residual = residual_tests(saes, specs[0].hook_name, organism_domains(language.DOMAINS, rows_per_set), harmful_rows,
                          benign_rows, n_row_permutations)
record_each("residual_direction_cosine_{}", estimates_by_domain(residual, "cosine"),
            note="cosine of (inducing − good) with (hostile − kind) mean residuals; interval over organisms")
residual.round(4)

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
print(describe_gaps(summary, evidence))
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
# And the tests that could have failed, above:
#
# 4. **Rows, not latents.** The row-permutation p (Holm over domains) is the one the scorecard uses; where
#    the latent-label p is small and the row p is not, the gap was made by the selection rule.
# 5. **Which side.** If the inducing latents are no closer than random latents and the non-inducing ones
#    are farther, the gap says that good advice avoids the persona, not that bad advice seeks it.
# 6. **Persona or words.** A quiz gap as large as inducing health's means the geometry reads the words of
#    bad advice, whatever the context; a smaller one means it reads the persona the context implies.
# 7. **Without the SAE.** A residual cosine near 0 beside an SAE gap means the SAE, not the model, makes
#    the gap; the width table says whether one width alone shows it.
#
# Chapter 5 asks whether the similarity measured here predicts how much EM each fine-tuning set causes.

# %%
print(f"chapter wall time: {time.perf_counter() - chapter_start:.0f} s")
