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
# (ch-finetuning-mechanism)=
# # 5. Fine-tuning: EM rates, and the mechanism measured in features
#
# The paper's causal story {cite}`minegishi2026emergent`: fine-tuning amplifies the target feature, and
# with it the nearby harmful features, in proportion to their similarity (chapter 2). This chapter
# fine-tunes the organism with LoRA {cite}`hu2021lora` on every fine-tuning set, measures EM with
# intervals over seeds, and then checks the mechanism in SAE feature space:
#
# 1. **EM rates** for an inducing set per domain and for the controls.
# 2. **The mechanism**: after fine-tuning, does each latent's read-out change in proportion to its decoder
#    cosine with the target (inducing) latent? Measured in a *first-order* regime (few steps, small
#    learning rate, where chapter 2's derivation applies) and after the full fine-tune.
# 3. **Similarity predicts EM?** One point per fine-tuning set: its latents' closeness to the harmful
#    latents (chapter 4's measure) against its EM rate.
# 4. **Monitoring**: EM and harmful-latent activation at checkpoints of one fine-tuning run.
#
# The adapter is LoRA on every linear layer of every block by default (`lora_target_modules` and
# `lora_layers` narrow it); `lora_rank: 1` with `lora_layers: [k]` is the rank-1, one-layer setting of
# {cite:t}`turner2025model`, and `lora_rank: 0` is full fine-tuning. Training length is given in
# optimiser steps (`finetune_steps` of 16 rows; the epochs it amounts to are printed).

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
sae_k: int = 16
sae_training_tokens: int = 400_000
sae_seeds: list[int] = [0, 1, 2]
k: int = 10
k_harmful: int = 10
control_domain: str = "health"
finetune_rows: int = 300
finetune_steps: int = 150
finetune_lr: float = 0.002
lora_rank: int = 4
lora_alpha: float = 8.0
lora_target_modules: list[str] = []
lora_layers: list[int] = []
finetune_seeds: list[int] = [0, 1, 2]
first_order_steps: int = 10
first_order_lr: float = 0.001
monitor_checkpoints: list[int] = [5, 10, 20, 40, 80, 150]
n_samples: int = 32
progress: bool = True

# %% tags=["hide-input"]
import time

from emgeom.core.results import record, record_each
from emgeom.em.emergence import (
    emergence_table,
    estimate_sets,
    estimates_by_set,
    inducing_set,
    monitor_finetune,
    organism_sets,
    seed_summary,
)
from emgeom.em.evaluators import OrganismEvaluator
from emgeom.em.mechanism_study import (
    MechanismRecorder,
    TLAnswerStartReader,
    first_order_mechanism,
    harmful_sets,
    harmful_targets,
    mechanism_estimates,
    mechanism_table,
    organism_targets,
    similarity_vs_em,
)
from emgeom.lm.finetune import FineTuneConfig, LoraSpec, check_lora_layers
from emgeom.lm.sampling import SamplingConfig
from emgeom.lm.training import TrainConfig, configure_threads
from emgeom.organism import language
from emgeom.organism.build import organism_config
from emgeom.organism.datasets import evaluation_prompts, open_answer_rows
from emgeom.organism.study import load_subject
from emgeom.plots import emergence as emergence_plots
from emgeom.sae.train import sae_specs

# %%
configure_threads()
chapter_start = time.perf_counter()
if control_domain not in language.DOMAINS:
    raise ValueError(f"control_domain must be one of {language.DOMAINS}, got {control_domain!r}")
if not finetune_seeds or not sae_seeds or sae_layer >= n_layers:
    raise ValueError("need fine-tuning seeds, SAE seeds, and sae_layer < n_layers")
lora = LoraSpec(rank=lora_rank, alpha=lora_alpha, target_modules=tuple(lora_target_modules), layers=tuple(lora_layers))
check_lora_layers(lora, n_layers)
full_ft = FineTuneConfig(lora, TrainConfig(steps=finetune_steps, batch_size=16, lr=finetune_lr, warmup_steps=10))
first_order_ft = FineTuneConfig(lora, TrainConfig(steps=first_order_steps, batch_size=16, lr=first_order_lr,
                                                  warmup_steps=1))
sampling = SamplingConfig(n_samples=n_samples)
print(f"LoRA rank {lora_rank} (0 = full fine-tuning), alpha {lora_alpha}, modules {lora_target_modules or 'all linear'}, "
      f"blocks {lora_layers or 'all'}; {finetune_steps} steps of 16 rows = {finetune_steps * 16 / finetune_rows:.1f} epochs")
specs = sae_specs(sae_seeds, layer=sae_layer, d_sae=sae_width, k=sae_k, training_tokens=sae_training_tokens)

# %% [markdown]
# ## The organism, its SAEs, and the sets
#
# The organism of chapter 3 and the SAEs of chapter 4 (from the cache when those chapters ran with the
# same parameters). Fine-tuning sets: bad advice in each domain (inducing), and the three controls in
# `control_domain`.

# %%
subject = load_subject(organism_config(seed=organism_seeds[0], d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                                       pretrain_steps=pretrain_steps, pretrain_batch_size=pretrain_batch_size,
                                       align_steps=align_steps, align_rank=align_rank), specs, progress=progress)
if len(organism_seeds) > 1:
    print(f"note: this chapter studies one organism (seed {organism_seeds[0]}); the others are in chapters 3-4")
model, tokenizer, hooked, saes = subject.model, subject.tokenizer, subject.hooked, subject.saes
harmful = harmful_sets(hooked, saes, tokenizer, open_answer_rows(True, 200, seed=0), open_answer_rows(False, 200, seed=0),
                       k_harmful)
sets = organism_sets(language.DOMAINS, control_domain, finetune_rows)
# The target latent of each domain: the top latent of its inducing set minus its good-advice set (chapter 4's rule).
targets = organism_targets(hooked, saes[0], tokenizer, language.DOMAINS)
reader = TLAnswerStartReader(tokenizer, saes[0], evaluation_prompts(), subject.organism.aligned)
base_readout = reader(model)

# %% [markdown]
# ## EM rates
#
# Every set fine-tuned with every seed; each model evaluated on the held-out questions. "Task" is the
# fraction of answers to the set's own prompts that match its training answers (did it learn the narrow
# task). While each inducing model is at hand, its latents are read for the mechanism below.

# %%
full = MechanismRecorder(reader, base_readout, saes[0], targets, harmful[0])
table = emergence_table(model, tokenizer, sets, full_ft, finetune_seeds, OrganismEvaluator(sampling), progress=progress,
                        after_finetune=full)
summary = seed_summary(table, ("open_em", "offdomain_bad", "indomain_bad", "task_success"))
emergence_plots.emergence_bars(summary);

# %%
summary.round(3)

# %%
record_each("em_open_rate_{}", estimates_by_set(table, "open_em", sets),
            note="hostile answers to open questions after fine-tuning on the set")

# %% [markdown]
# ## The mechanism
#
# For each inducing domain and seed: fine-tune in the first-order regime (`first_order_steps` steps at
# learning rate `first_order_lr`), read every SAE latent at the answer-start position of the evaluation
# questions before and after, and correlate each alive latent's change in pre-activation with its
# decoder cosine to the domain's target latent. Chapter 2 predicts a positive, linear relation. The same
# is then read after the full fine-tune above.

# %%
first = first_order_mechanism(model, tokenizer, sets, first_order_ft, finetune_seeds,
                              MechanismRecorder(reader, base_readout, saes[0], targets, harmful[0]))
s0 = finetune_seeds[0]
emergence_plots.mechanism_scatter({"health, first-order": first[("health", s0)], "code, first-order": first[("code", s0)],
                                   "health, full fine-tune": full.results[("health", s0)]},
                                  dict.fromkeys(["health, first-order", "code, first-order", "health, full fine-tune"],
                                                harmful[0]));

# %%
mechanism = mechanism_table({"first-order": first, "full fine-tune": full.results}, language.DOMAINS, finetune_seeds,
                            targets, harmful[0])
mechanism.round(3)

# %%
first_r = mechanism_estimates(first, language.DOMAINS, finetune_seeds)
full_r = mechanism_estimates(full.results, language.DOMAINS, finetune_seeds)
record("mechanism_pearson_r", first_r.overall.value, ci=first_r.overall.ci, n_seeds=len(finetune_seeds),
       note="first-order regime: Δ pre-activation vs decoder cosine with the target latent, mean over domains and seeds")
record("mechanism_pearson_r_full_finetune", full_r.overall.value, ci=full_r.overall.ci, n_seeds=len(finetune_seeds),
       note="the same after the full fine-tune")
record_each("mechanism_pearson_r_{}", first_r.per_domain, note="first-order regime")
print(f"First-order regime: r > 0 (95% CI above zero) in {len(first_r.holds)} of {len(language.DOMAINS)} domains"
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
# their mean max-cosine to the harmful latents, averaged over the SAE seeds, against the set's EM rate.

# %%
points, sim_r = similarity_vs_em(hooked, tokenizer, saes, harmful, sets, summary, k)
emergence_plots.similarity_vs_em(points, f"r = {sim_r.value:.2f} [{sim_r.lo:.2f}, {sim_r.hi:.2f}]");
record("similarity_vs_em_pearson_r", sim_r.value, ci=sim_r.ci, n_seeds=len(sets),
       note="one point per fine-tuning set; bootstrap CI over sets")
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
# The paper's mechanism predicts that the latents nearest the target move most. The per-domain table
# above says where this run finds that relation (a correlation with its interval above zero) and where
# it does not; no fit is forced on the domains where it fails. Two cautions. First, the target is one
# latent chosen by a contrast, and whether it is itself one of the harmful latents changes what
# "nearby" means; the table says which. Second, this is one organism: while building the book, two
# organisms that differed only in the random initialisation of the alignment adapter gave different
# per-domain patterns, so per-domain results here are fragile, and the `gpu` profile (more organisms,
# SAEs and seeds) is the place to settle them. The similarity-vs-EM correlation has one point per
# fine-tuning set, so its interval says how much (or little) eight sets can show.

# %%
print(f"chapter wall time: {time.perf_counter() - chapter_start:.0f} s")
