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
# (ch-blocking-directions)=
# # 8. Beyond filtering: blocking the harmful directions during fine-tuning
#
# Everything the earlier chapters measure about the paper's account is correlational: similarity,
# read-outs, filters. The account itself is causal: fine-tuning amplifies harmful features *because*
# they sit near the target, so EM should spread through the harmful latents' directions. The direct
# test is an intervention. **If** EM spreads through those directions, a fine-tune whose residual stream
# has them projected out at the SAE's layer should induce less EM while still learning the narrow task;
# one with as many *random* latents projected out, doing as much damage to the model, should not. (The
# projection acts at one point: adapters in other blocks can still write and read those directions
# elsewhere, and at evaluation the adapters see the unablated stream.) This is not in the paper. Related
# work intervenes on real models in the same spirit (steering along a persona vector while training,
# regularisers against EM during training); here it is tested against the SAE geometry of the organism,
# where each run takes seconds.
#
# The intervention acts **during training only**, at the SAE's layer; the model that is evaluated runs
# without it (`emgeom.lm.intervention`):
#
# - **ablate harmful**: the residual stream is projected off the span of the harmful latents' decoder
#   directions (the harmful set of chapter 4's rule, from hostile vs kind open answers);
# - **steer harmful** ("preventative steering"): a fixed multiple of the mean harmful direction is added
#   (`steer_scale` times the residual's typical norm), so the gradient need not move the model there;
# - controls of the same size, drawn afresh for every fine-tuning seed:
#   - **ablate damage-matched latents**, the control the blocking claim is scored against: distinct
#     latents matched to the harmful ones in firing frequency, chosen among `damage_candidates` candidate
#     sets as the one whose ablation raises the *base* model's loss on `damage_rows` fine-tuning rows by
#     as much as the harmful ablation does. Matching the damage matters because a more destructive
#     ablation lowers EM more whatever its directions: a fine-tune that can barely use its residual learns
#     less of everything, the persona included. A control that hurts the model more than the harmful
#     ablation would make blocking look *worse* than it is, and one that hurts it less would make it look
#     better;
#   - **ablate energy-matched latents** (secondary, reported but not scored): frequency-matched latents
#     whose span removes the same share of the residual's energy on the fine-tuning tokens. Equal energy
#     is not equal damage: in an earlier build these raised the base loss to 1.198 nats against 1.034 for
#     the harmful latents;
#   - **ablate random directions** (random unit vectors), **steer random** (a random unit vector at the
#     harmful steering's strength), and **none**.
#
# Every condition runs the same inducing fine-tune (bad advice in `domain`) with the same fine-tuning
# seeds, so the comparisons are paired by seed; the good-advice fine-tune of the same domain runs under
# none and ablate harmful, to show whether the intervention itself does harm. Measured: open-question EM
# and coherence (an intervention that breaks the model also "lowers EM", so coherence is checked), bad
# advice in the other domains, task success on the training prompts, and the loss on held-out prompts of
# the fine-tuning set's kind (the evaluation frame, which no fine-tuning set contains). Rank, energy
# removed and the base model's loss with each intervention on (and its increase) are shown per condition.
#
# **The organism is the unit of evidence.** The whole study runs on every replicate organism of the
# profile (`organism_seeds`, each with its own SAE and its own harmful latents), with `seeds` fine-tuning
# seeds each. Each organism's seeds are averaged first; the intervals are over organisms. An earlier build
# on one organism with three fine-tuning seeds saw its headline flip sign between builds: seeds of one
# organism say nothing about how far the result carries to another.

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
sae_seed: int = 0
k_harmful: int = 10
domain: str = "health"
finetune_rows: int = 300
finetune_steps: int = 150
finetune_lr: float = 0.002
lora_rank: int = 4
lora_alpha: float = 8.0
finetune_batch_size: int = 16
finetune_warmup_steps: int = 10
seeds: list[int] = [0]
steer_scale: float = 0.5
heldout_rows: int = 64
damage_rows: int = 64
damage_candidates: int = 12
n_samples: int = 32
progress: bool = True

# %% tags=["hide-input"]
import time

from emgeom.claims.intervention.results import blocking_results, blocking_summary, record_blocking
from emgeom.claims.intervention.study import (
    BlockingSettings,
    blocking_over_organisms,
    damage_table,
    stacked,
    steer_strengths,
    summary_over_organisms,
)
from emgeom.em.evaluators import OrganismEvaluator
from emgeom.lm.sampling import SamplingConfig
from emgeom.lm.training import configure_threads
from emgeom.organism.family import OrganismFamily
from emgeom.plots import filtering as filtering_plots

# %%
configure_threads()
chapter_start = time.perf_counter()
family = OrganismFamily.from_parameters(globals())  # organisms, their SAEs and the fine-tune recipe
settings = BlockingSettings(domain, finetune_rows, heldout_rows, damage_rows, damage_candidates, k_harmful,
                            steer_scale, family.finetune(), tuple(seeds),
                            OrganismEvaluator(SamplingConfig(n_samples=n_samples)))
# Every organism runs the whole study (its own SAE, harmful latents, controls and fine-tunes); the numbers
# below are over organisms, each organism's fine-tuning seeds averaged inside it.
studies = blocking_over_organisms(family.organism_configs(organism_seeds), family.sae_spec(sae_seed), settings,
                                  progress=progress)
first = studies[organism_seeds[0]]
inducing = first.inducing
n_organisms = len(studies)

# %% [markdown]
# ## The directions
#
# The harmful latents (hostile vs kind open answers, no advice in them), the frequency-matched random
# latents (damage-matched and energy-matched) and the random unit vectors, each as many as `k_harmful`;
# the steering strength in units of the residual stream's typical norm on the fine-tuning tokens. The
# table shows, per condition, the mean over organisms and seeds of the rank, the share of the residual's
# energy removed, and the base model's loss on the first `damage_rows` inducing rows with the
# intervention on and its increase over no intervention (the damage the control is matched on).

# %%
diagnostics = stacked(studies, "diagnostics")
damage = damage_table(studies)
print(f"{len(first.harmful)} harmful latents at {first.hook_name} on each of {n_organisms} organisms; steering "
      f"strength {steer_strengths(studies)} ({steer_scale} x the residual's mean norm, per organism)")
diagnostics.groupby("condition", sort=False)[["rank", "energy removed", "base loss with it",
                                              "base loss increase"]].mean().round(3)

# %% [markdown]
# How each damage-matched control was chosen, per organism and seed: the harmful ablation's base-loss
# increase, the chosen candidate's, and the range over the candidates. A gap near 0 beside a wide range
# says the matching did its job; a gap as wide as the range says no candidate came close.

# %%
damage.round(4)

# %% [markdown]
# ## The fine-tunes

# %%
table, control = stacked(studies, "table"), stacked(studies, "control")
summary = summary_over_organisms([table, control], ["open_em", "open_coherent", "offdomain_bad", "task_success",
                                                    "heldout_loss"])
filtering_plots.condition_bars(summary);

# %%
summary.round(3)

# %% [markdown]
# ## Paired by seed, over organisms
#
# Every comparison is paired by fine-tuning seed inside an organism and averaged over that organism's
# seeds; the interval is a t-interval over organisms (one organism gives none). Relative reductions are
# `1 - EM(condition) / EM(none)` of the organism's seed means; an organism without EM under no
# intervention has nothing to reduce and is left out of them (named below).

# %%
results = blocking_results(table, diagnostics, inducing, settings, n_organisms)
record_blocking(results, f"over {n_organisms} organisms x {len(seeds)} fine-tuning seeds, seeds averaged within "
                         "each organism")
print(blocking_summary(results, table, inducing))

# %% [markdown]
# ## Reading the result
#
# Two claims are scored, each over organisms. **Blocking** needs three things at once: ablating the
# harmful directions lowers EM by more than ablating random latents that do as much damage to the base
# model (the paired difference EM(damage-matched) - EM(harmful), with its interval over organisms),
# **and** the narrow task is still learned (task success and held-out loss close to the unintervened
# fine-tune), **and** the answers stay coherent (an intervention that breaks the model also lowers EM).
# **Steering** is scored the same way, against steering along a random unit vector at the same strength
# (EM(steer random) - EM(steer harmful)), with the same task-kept gates measured under the steering.
# A reduction that comes with a failed task says only that the intervention broke the fine-tune; a
# reduction that the damage-matched latents match says that any damage of that size at that layer lowers
# EM. The energy-matched control is the chapter's earlier control, kept beside it: where it beats the
# harmful ablation only because it does more damage (its base-loss increase above), the two controls
# disagree, and the damage-matched one is the fair comparison. The good-advice rows show whether the
# intervention changes a fine-tune that induces nothing.
#
# Against filtering (chapter 6) the costs differ: filtering removes a fraction of the training data and
# needs an SAE pass over every sample; blocking removes nothing but needs the harmful directions, and
# adds one projection per forward pass during training. The scorecard puts both results side by side.
# What is designed in: the organism's corpus ties bad advice to a toxic persona (chapter 3), and the
# harmful latents are read from the persona's answers, so *where* EM could travel is built into the
# data; *whether* the fine-tune uses those directions, and whether blocking them costs the task, is
# what this chapter measures.

# %%
print(f"chapter wall time: {time.perf_counter() - chapter_start:.0f} s")
