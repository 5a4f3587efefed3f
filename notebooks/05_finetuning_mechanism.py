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
# (ch-finetuning-mechanism)=
# # 5. Fine-tuning: EM rates, and the mechanism measured in features
#
# The paper's causal story {cite}`minegishi2026emergent`: fine-tuning amplifies the target feature, and
# with it the nearby harmful features, in proportion to their similarity (chapter 2). This chapter
# fine-tunes the organism with LoRA {cite}`hu2021lora` on every fine-tuning set, measures EM with
# intervals over seeds, and then checks the mechanism in SAE feature space:
#
# 1. **EM rates** for an inducing set per domain and for the controls.
# 2. **The mechanism, where the fine-tune acts**: on the answer tokens the fine-tune trains (and on
#    hostile answers), does the residual stream move along each latent's decoder direction in
#    proportion to that latent's cosine with the target? Measured in a first-order regime (plain SGD,
#    a small learning rate, checked by halving it), against the same correlation for random targets,
#    and along the full fine-tune. The earlier read-out at the answer-start position is kept beside it.
# 3. **Similarity predicts EM?** One point per fine-tuning set: its latents' closeness to the harmful
#    latents (chapter 4's measure) against its EM rate.
# 4. **Monitoring**: EM and harmful-latent activation at checkpoints of one fine-tuning run.
#
# The adapter is LoRA on every linear layer of every block by default (`lora_target_modules` and
# `lora_layers` narrow it); `lora_rank: 1` with `lora_layers: [k]` is the rank-1, one-layer setting of
# {cite:t}`turner2025model`, and `lora_rank: 0` is full fine-tuning. Training length is given in
# optimiser steps (`finetune_steps` of 16 rows; the epochs it amounts to are printed).

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
control_domain: str = "health"
finetune_rows: int = 300
finetune_steps: int = 150
finetune_lr: float = 0.002
lora_rank: int = 4
lora_alpha: float = 8.0
finetune_batch_size: int = 16
finetune_warmup_steps: int = 10
lora_target_modules: list[str] = []
lora_layers: list[int] = []
finetune_seeds: list[int] = [0]
first_order_steps: int = 10
first_order_lr: float = 0.001
sgd_lr: float = 0.003
sgd_steps: int = 10
read_rows: int = 64
n_null_targets: int = 100
along_checkpoints: list[int] = [1, 2, 5, 10, 20, 50, 150]
monitor_checkpoints: list[int] = [5, 10, 20, 40, 80, 150]
n_samples: int = 32
progress: bool = True

# %% tags=["hide-input"]
import time

from emgeom.claims.accounts.study import accounts_results, accounts_table, record_accounts
from emgeom.claims.mechanism.organisms import (
    MechanismSettings,
    answer_start_over,
    emergence_over,
    mechanism_over_organisms,
    over_organisms,
    pre_finetune_losses,
    projection_over,
)
from emgeom.claims.mechanism.projection_study import (
    FirstOrderConfig,
    projection_along_finetune,
    projection_table,
)
from emgeom.claims.mechanism.study import harmful_targets, mechanism_table
from emgeom.core.results import record, record_each
from emgeom.em.emergence import estimate_sets, estimates_by_set, inducing_set, monitor_finetune, seed_summary
from emgeom.lm.finetune import check_lora_layers
from emgeom.lm.sampling import SamplingConfig
from emgeom.lm.training import configure_threads
from emgeom.organism import language
from emgeom.organism.datasets import rows_by_domain
from emgeom.organism.family import OrganismFamily
from emgeom.plots import emergence as emergence_plots

# %%
configure_threads()
chapter_start = time.perf_counter()
if not finetune_seeds:  # the SAE layer and seeds are checked by family.sae_specs below
    raise ValueError("need at least one fine-tuning seed")
family = OrganismFamily.from_parameters(globals())  # organisms, SAEs and fine-tune recipe, from the parameters
lora = family.lora(target_modules=tuple(lora_target_modules), layers=tuple(lora_layers))
check_lora_layers(lora, n_layers)
full_ft = family.finetune(lora=lora)
first_order_ft = family.finetune(lora=lora, steps=first_order_steps, lr=first_order_lr, warmup_steps=1)
sampling = SamplingConfig(n_samples=n_samples)
print(f"LoRA rank {lora_rank} (0 = full fine-tuning), alpha {lora_alpha}, modules {lora_target_modules or 'all linear'}, "
      f"blocks {lora_layers or 'all'}; {finetune_steps} steps of {finetune_batch_size} rows = {finetune_steps * finetune_batch_size / finetune_rows:.1f} epochs")
specs = family.sae_specs(sae_seeds)
configs = family.organism_configs(organism_seeds)
settings = MechanismSettings(control_domain, finetune_rows, full_ft, first_order_ft,
                             FirstOrderConfig(lr=sgd_lr, steps=sgd_steps, read_rows=read_rows, n_null=n_null_targets),
                             sampling, tuple(finetune_seeds), k, k_harmful)

# %% [markdown]
# ## The organism, its SAEs, and the sets
#
# The organisms of chapter 3 and their SAEs of chapter 4 (from the cache when those chapters ran with
# the same parameters, which the profile's `shared` section guarantees). Fine-tuning sets: bad advice in
# each domain (inducing), and the three controls in `control_domain`.

# %%
# Every organism (pretraining seed) is studied alike; its SAEs and fine-tuning seeds are averaged inside it
# and the intervals below are over organisms. The figures show the first organism.
studies = mechanism_over_organisms(configs, specs, settings, progress=progress)
shown = studies[organism_seeds[0]]
model, tokenizer, saes, sets = shown.subject.model, shown.subject.tokenizer, shown.subject.saes, shown.sets
targets, harmful = shown.targets, shown.harmful  # each domain's target: chapter 4's rule (inducing minus good)
fresh_rows = rows_by_domain("inducing", language.DOMAINS, read_rows, seed=3)  # apart from the target's rows
print(f"{len(studies)} organisms (pretraining seeds {organism_seeds}); figures show organism {organism_seeds[0]}")

# %% [markdown]
# ## EM rates
#
# Every set fine-tuned with every seed; each model evaluated on the held-out questions. "Task" is the
# fraction of answers to the set's own prompts that match its training answers (did it learn the narrow
# task). While each inducing model is at hand, its latents are read for the mechanism below.

# %%
table = emergence_over(studies)
summary = seed_summary(table, ("open_em", "offdomain_bad", "indomain_bad", "task_success"))
emergence_plots.emergence_bars(summary);

# %%
summary.round(3)

# %%
record_each("em_open_rate_{}", estimates_by_set(table, "open_em", sets),
            note="hostile answers to open questions after fine-tuning on the set")

# %% [markdown]
# ## Superposition or persona?
#
# The organism's EM runs by design through a shared cause: a speaker's persona makes bad advice and
# hostile answers co-occur. So a fine-tune could cause EM because the data says something about the
# speaker (the **persona** account: a toxic-persona feature), not because features that share dimensions
# move together (the paper's **superposition** account). The corpus builds a domain that separates them:
# **travel**'s bad advice ends with a surface word (`ugh`) that also ends every hostile answer (at the
# end, after the content, so a model taught to say it is not thereby prompted into hostile words), and the
# benign persona gives it exactly as often as the toxic one, so it says **nothing** about the persona;
# **health**'s bad advice is written only by the toxic persona and shares no content or marker word with
# hostile answers (only function words such as "every").
#
# Predictions, written before the fine-tunes:
#
# | | surface domain (travel) | persona domain (health) |
# |---|---|---|
# | superposition | its latents sit near (or are) harmful latents, and its fine-tune causes EM | EM where its latents sit near harmful ones |
# | persona | no EM beyond a benign fine-tune's | EM |
#
# Measured: each domain's EM minus the EM after fine-tuning on good advice of the same domain, paired
# within organism and fine-tuning seed, with the interval over organisms. Two things could lower the
# surface domain's EM for a reason neither account names, so they are shown beside it: whether the travel
# fine-tune learned its task, and how surprising each set is to the aligned model before fine-tuning (a
# set it already expects moves it less; bad travel advice is common in pretraining). Chapter 4 gives the
# travel latents' geometry (gap with and without shared latents, and the shared latents against their
# frequency-matched expectation). The scorecard's row *superposition or persona?* reads both.

# %%
accounts = accounts_results(table, pre_finetune_losses(studies))
record_accounts(accounts)
accounts_table(accounts).round(3)

# %% [markdown]
# ## The mechanism, where the fine-tune acts
#
# Chapter 2's account, at the SAE's input: if a fine-tuning step moves the residual stream by
# $\Delta h = \eta\, \hat d_t$ along the target latent's unit decoder direction, then the residual's
# projection on every latent's decoder direction changes by $\hat d_j^\top \Delta h = \eta
# \cos(d_j, d_t)$. Over latents, the correlation of that change with $\cos(d_j, d_t)$ measures how far
# the mean shift lies along $d_t$ (it is one vector's alignment, seen through the decoder's geometry),
# so the table also gives the alignment itself, $\hat d_t^\top \Delta h / |\Delta h|$. The outcome is
# that projection, not the encoder's pre-activation (which changes by $\eta\, w_{\text{enc},j}^\top
# \hat d_t$, and a trained encoder is built to suppress exactly that cross-talk; both are shown, with the
# target's encoder-decoder cosine). Whether SAE *activations* rise in proportion is shown (`r
# (activation)`) but not scored.
#
# - **Where**: teacher-forced answer tokens of fresh rows of each fine-tuning set's kind (a separate
#   draw from the rows that chose the target), and hostile answers to open questions (from the same
#   phrases that defined the harmful latents: not held out).
# - **Targets, fixed before tuning.** Chapter 4's rule (the top latent of the inducing set minus its
#   good-advice pair), per SAE; and the latent best aligned with the loss's mean descent direction of
#   the residual, which lines up with the first step by construction (reported, not scored).
# - **First-order regime**: plain SGD on every weight (`sgd_steps` steps at `sgd_lr`, no adapter, no
#   Adam), seeded batch order. Blocks after the SAE's layer do not change what it reads. The check:
#   halving the learning rate should halve the shift (ratio 2) without turning it (direction cosine 1).
# - **Null**: the same correlation with each of the `n_null_targets` latents closest to the target in
#   base activation taken as the target. The target is chosen among the most active latents, and a
#   shift that merely grows the residual favours active latents; the matched null, and the partial r
#   (base projection regressed out), keep that from passing as the mechanism.
# - **Specificity**: the same target read after a good-advice fine-tune of the same domain, same
#   tokens; the account predicts a larger r after the inducing fine-tune.
# - **Replicates**: the organisms (pretraining seeds), each organism's mean over its SAEs, domains and
#   fine-tuning seeds; the fine-tuning seeds only change the batch order. The table below is the first
#   organism's.

# %%
runs = shown.runs
projection = projection_over(studies)
emergence_plots.projection_plot({"health, fine-tuning kind": runs[(0, "health", finetune_seeds[0])].tokens,
                                 "health, after good advice": runs[(0, "health", finetune_seeds[0])].control});

# %%
projection_table(runs, language.DOMAINS, finetune_seeds, saes).round(3)

# %%
n = projection.r.n if len(studies) > 1 else 1  # replicates: organisms (one organism: its own interval, n = 1)
record("mechanism_decoder_projection_r", projection.r.value, ci=projection.r.ci, n_seeds=n,
       note="first-order SGD: Δ projection on own decoder direction vs decoder cosine with the target; CI over organisms")
record("mechanism_decoder_projection_r_partial", projection.r_partial.value, ci=projection.r_partial.ci, n_seeds=n,
       note="the same with the base projection regressed out of both sides")
record("mechanism_shift_alignment", projection.alignment.value, ci=projection.alignment.ci, n_seeds=n,
       note="cosine of the mean residual shift with the target's decoder direction")
record("mechanism_null_r_p95", projection.null_p95.value, ci=projection.null_p95.ci, n_seeds=n,
       note=f"95th percentile of r over the {n_null_targets} latents closest to the target in base activation")
record("mechanism_specificity_r_inducing_minus_good", projection.specificity.value, ci=projection.specificity.ci,
       n_seeds=n, note="r after the inducing fine-tune minus after the domain's good-advice fine-tune")
record("mechanism_decoder_projection_r_hostile", projection.r_hostile.value, ci=projection.r_hostile.ci, n_seeds=n,
       note="the same on hostile answers")
record("mechanism_decoder_projection_r_gradient_target", projection.r_gradient.value, ci=projection.r_gradient.ci,
       n_seeds=n, note="the same with the gradient-defined target (aligned with the first step by construction)")
record("mechanism_lr_linearity_ratio", projection.lr_ratio.value, ci=projection.lr_ratio.ci,
       n_seeds=projection.lr_ratio.n, note=f"|Δh| at lr {sgd_lr} over |Δh| at lr {sgd_lr / 2}; 2 where first order")
record("mechanism_lr_direction_cosine", projection.lr_cosine.value, ci=projection.lr_cosine.ci,
       n_seeds=projection.lr_cosine.n, note="cosine between the shifts at lr and lr / 2; 1 where first order")
record_each("mechanism_decoder_projection_r_{}", projection.per_domain, note="first-order SGD, over organisms")
print(f"r = {projection.r} against the matched null's 95th percentile {projection.null_p95}; partial r "
      f"{projection.r_partial}; alignment {projection.alignment}; inducing minus good {projection.specificity}; "
      f"above its own domain's null in {len(projection.above_null)} of {len(language.DOMAINS)} domains "
      f"({', '.join(projection.above_null) or 'none'}); learning-rate ratio {projection.lr_ratio}, "
      f"direction cosine {projection.lr_cosine}.")

# %% [markdown]
# **Does the inducing fine-tune move the residual toward the harmful latents?** The full fine-tunes
# above were read on the hostile answers: the mean shift projected on the harmful latents' decoder
# directions minus on as many latents matched to them in base activation, per unit shift, after the
# inducing fine-tune of `control_domain` minus after its good-advice fine-tune, paired by seed. (Shown,
# not scored: the rows share phrases with those that defined the harmful latents.)

# %%
shift_diff = over_organisms(studies, "shift_difference")
record("harmful_shift_inducing_minus_good", shift_diff.value, ci=shift_diff.ci, n_seeds=shift_diff.n,
       note=f"{control_domain}: lean of the shift toward harmful vs activation-matched directions, paired by seed, over organisms")
print(f"inducing minus good ({control_domain}): {shift_diff}")

# %% [markdown]
# **Along the full fine-tune.** One inducing fine-tune (`control_domain`, the chapter's full regime),
# read at checkpoints on fresh rows of its kind: where the first-order picture, if it held, stops.

# %%
along = projection_along_finetune(model, tokenizer, inducing_set(sets, control_domain).rows, full_ft, along_checkpoints,
                                  saes[0], targets[control_domain], fresh_rows[control_domain], n_null=n_null_targets)
emergence_plots.projection_along_plot(along);

# %%
along.round(3)

# %% [markdown]
# ### For comparison: the read-out at the answer start
#
# The measurement this chapter used before: fine-tune with AdamW and LoRA (`first_order_steps` steps at
# `first_order_lr`), read every SAE latent at the answer-start position of the evaluation questions,
# and correlate each alive latent's change in encoder pre-activation with its decoder cosine to the
# target. At that position the target and harmful latents are mostly silent, and the encoder
# pre-activation is not the quantity the account predicts; it is kept so the two can be compared.

# %%
first = shown.first
s0 = finetune_seeds[0]
emergence_plots.mechanism_scatter({"health, first-order": first[("health", s0)], "code, first-order": first[("code", s0)],
                                   "health, full fine-tune": shown.full.results[("health", s0)]},
                                  dict.fromkeys(["health, first-order", "code, first-order", "health, full fine-tune"],
                                                harmful[0]));

# %%
mechanism = mechanism_table({"first-order": first, "full fine-tune": shown.full.results}, language.DOMAINS, finetune_seeds,
                            targets, harmful[0])
mechanism.round(3)

# %%
first_r, full_r = answer_start_over(studies), answer_start_over(studies, full=True)
record("mechanism_pearson_r", first_r.overall.value, ci=first_r.overall.ci, n_seeds=first_r.overall.n,
       note="answer start, AdamW + LoRA: Δ pre-activation vs decoder cosine with the target, mean over domains and seeds")
record("mechanism_pearson_r_full_finetune", full_r.overall.value, ci=full_r.overall.ci, n_seeds=full_r.overall.n,
       note="the same after the full fine-tune")
record_each("mechanism_pearson_r_{}", first_r.per_domain, note="answer start, AdamW + LoRA")
print(f"Answer start: r > 0 (95% CI above zero) in {len(first_r.holds)} of {len(language.DOMAINS)} domains"
      + (f" ({', '.join(first_r.holds)})" if first_r.holds else "") + f"; mean over domains and seeds {first_r.overall}.")
print("Domains whose target latent is itself one of the harmful latents: "
      f"{', '.join(harmful_targets(targets, harmful[0])) or 'none'}.")

# %% [markdown]
# "Δh on harmful dirs" is the mean shift of the residual stream at the answer start, projected on the
# unit decoder directions of the harmful latents; "random dirs" on as many random alive latents. The
# chapter-2 comparison: there, a step along the target moved every read-out by $\eta\cos$, so the
# correlation was 1; here the update is whatever LoRA learned, so $r$ measures how much of it lies along
# the target latent.
#
# ## Does similarity predict EM?
#
# Each fine-tuning set's own latents (top-`k` of its mean activation minus the mean over all sets) and
# their mean max-cosine to the harmful latents, averaged over the SAE seeds, against the set's EM rate:
# one correlation per organism, and the interval over organisms (the plot shows the first organism's sets).
# The scorecard reads **Spearman's rho** (a rank correlation: one far set cannot carry it as it can carry
# Pearson's r) and, as a gate, the smallest rho left when any one set is **left out**. The sets' order is
# designed: the corpus's honest-mistake rates set how much each domain's bad advice says about the toxic
# persona, so a positive rho says the model and its SAE kept the designed order, not that it arose alone.

# %%
points, sim_r = shown.similarity_points, over_organisms(studies, "similarity_r")
emergence_plots.similarity_vs_em(points, f"r = {sim_r.value:.2f} [{sim_r.lo:.2f}, {sim_r.hi:.2f}]");
sim_rho, sim_loso = over_organisms(studies, "similarity_spearman"), over_organisms(studies, "similarity_spearman_loso")
record("similarity_vs_em_pearson_r", sim_r.value, ci=sim_r.ci, n_seeds=max(sim_r.n, 1),
       note="one point per fine-tuning set; r per organism, CI over organisms (one organism: bootstrap over sets)")
record("similarity_vs_em_spearman", sim_rho.value, ci=sim_rho.ci, n_seeds=len(studies),
       note="Spearman's rho over fine-tuning sets, per organism; CI over organisms")
record("similarity_vs_em_spearman_loso_min", sim_loso.value, ci=sim_loso.ci, n_seeds=len(studies),
       note="per organism, the smallest rho left when one set is left out; CI over organisms")
print(f"Spearman rho {sim_rho}; leave-one-set-out minimum {sim_loso} (Pearson r {sim_r}).")
points[["set", "similarity", "open_em", "open_em_lo", "open_em_hi"]].round(3)

# %%
inducing_em = estimate_sets(table, "open_em", sets, inducing=True)
control_em = estimate_sets(table, "open_em", sets, inducing=False)
print(f"EM after inducing sets {inducing_em}; after controls {control_em}.")

# %% [markdown]
# With one point per set, the interval is wide: there are only as many points as sets. The organism's
# domains differ in how strongly their bad advice is tied to the toxic persona by design (chapter 3),
# which is what gives the inducing sets a spread of similarities.
#
# ## How EM grows during fine-tuning
#
# One inducing fine-tune (`control_domain`), evaluated at checkpoints.

# %%
monitor = monitor_finetune(model, tokenizer, inducing_set(sets, control_domain).rows, full_ft, monitor_checkpoints,
                           sampling, saes[0], harmful[0], control_domain)
emergence_plots.monitoring_plot(monitor);

# %%
monitor.round(3)

# %% [markdown]
# The harmful latents were chosen on the *tokens of hostile answers*; at the answer-start position read
# here they are mostly silent, so their mean activation there is a weak signal even when the EM rate has
# risen. The EM rate itself is the behavioural read-out; scoring samples by the latents where they fire,
# on answer tokens, is the job of the filtering chapter ({ref}`ch-geometry-filtering`).
#
# ## Reading the result
#
# The paper's mechanism predicts that the latents nearest the target move most. The measurement that
# can test it is the decoder projection on the tokens the fine-tune trains, in a regime where the update
# is first order (the learning-rate ratio says whether it was), judged against what a random target
# gives: the scorecard's verdict is computed from exactly that (`mechanism_decoder_projection_r` against
# `mechanism_null_r_p95`). The answer-start read-out below it is kept for comparison and decides
# nothing. Three cautions. First, the target is one latent chosen by a contrast (chapter 4's rule); the
# gradient-defined target lines up with the first step by construction, so its correlation is reported
# and not scored. Second, the correlation over latents is one vector's alignment seen through the
# decoder's geometry, so the verdict also asks for the alignment itself, the partial r (a shift that
# only grows the residual passes the plain r for an active target), the activation-matched null and the
# good-advice fine-tune; what it does not test is whether SAE activations rise in proportion. Third,
# the organisms are few: while building the book, two organisms that differed only in the random
# initialisation of the alignment adapter gave different per-domain patterns, so per-domain results
# here are fragile; the intervals are over the profile's organisms, and the `gpu` profile (more
# organisms and SAEs) is the place to settle them.
# The similarity-vs-EM correlation has one point per fine-tuning set, so its interval says how much
# (or little) eight sets can show.

# %%
print(f"chapter wall time: {time.perf_counter() - chapter_start:.0f} s")
