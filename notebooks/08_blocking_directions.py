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
# one with as many *random* directions projected out, removing as much of the residual, should not. (The
# projection acts at one point: adapters in other blocks can still write and read those directions
# elsewhere, and at evaluation the adapters see the unablated stream.) This is not in the paper. Related work intervenes on real models in the
# same spirit (steering along a persona vector while training, regularisers against EM during
# training); here it is tested against the SAE geometry of the organism, where each run takes seconds.
#
# The intervention acts **during training only**, at the SAE's layer; the model that is evaluated runs
# without it (`emgeom.lm.intervention`):
#
# - **ablate harmful**: the residual stream is projected off the span of the harmful latents' decoder
#   directions (the harmful set of chapter 4's rule, from hostile vs kind open answers);
# - **steer harmful** ("preventative steering"): a fixed multiple of the mean harmful direction is added
#   (`steer_scale` times the residual's typical norm), so the gradient need not move the model there;
# - controls of the same size, drawn afresh for every fine-tuning seed: **ablate random latents**
#   (distinct latents matched to the harmful ones in firing frequency, chosen among candidates as the set
#   whose span removes the same share of the residual's energy on the fine-tuning tokens), **ablate
#   random directions** (random unit vectors), **steer random** (a random unit vector at the harmful
#   steering's strength), and **none**.
#
# Every condition runs the same inducing fine-tune (bad advice in `domain`) with the same seeds, so the
# comparisons are paired by seed; the good-advice fine-tune of the same domain runs under none and
# ablate harmful, to show whether the intervention itself does harm. Measured: open-question EM and
# coherence (an intervention that breaks the model also "lowers EM", so coherence is checked), bad
# advice in the other domains, task success on the training prompts, and the loss on held-out prompts
# of the fine-tuning set's kind (the evaluation frame, which no fine-tuning set contains). Rank, energy
# removed and the base model's loss with each ablation on are shown per condition.

# %% tags=["parameters"]
organism_seed: int = 0
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
seeds: list[int] = [0, 1, 2]
steer_scale: float = 0.5
heldout_rows: int = 64
n_samples: int = 32
progress: bool = True

# %% tags=["hide-input"]
import time

from emgeom.claims.intervention.study import (
    CONDITIONS,
    HARMFUL,
    NONE,
    RANDOM_DIRECTIONS,
    RANDOM_LATENTS,
    STEER,
    STEER_RANDOM,
    condition_builder,
    condition_diagnostics,
    condition_summary,
    intervention_table,
    paired_difference,
    relative_reduction,
    zero_baseline_seeds,
)
from emgeom.core.results import record
from emgeom.core.stats import mean_ci
from emgeom.em.emergence import organism_sets
from emgeom.em.evaluators import OrganismEvaluator
from emgeom.lm.sampling import SamplingConfig
from emgeom.lm.training import configure_threads
from emgeom.organism import language
from emgeom.organism.datasets import finetune_rows as make_rows
from emgeom.organism.datasets import open_answer_rows
from emgeom.organism.family import OrganismFamily
from emgeom.organism.study import load_subject
from emgeom.plots import filtering as filtering_plots
from emgeom.sae.geometry import harmful_latents

# %%
configure_threads()
chapter_start = time.perf_counter()
if domain not in language.DOMAINS:
    raise ValueError(f"domain must be one of {language.DOMAINS}, got {domain!r}")
if not seeds:
    raise ValueError("need at least one seed")
family = OrganismFamily.from_parameters(globals())  # the organism, its SAE and the fine-tune recipe
ft = family.finetune()
subject = load_subject(family.organism_config(organism_seed), [family.sae_spec(sae_seed)], progress=progress)
model, tokenizer, hooked, sae = subject.model, subject.tokenizer, subject.hooked, subject.saes[0]
inducing, good = organism_sets([domain], domain, finetune_rows, control_kinds=("good",))
heldout = {inducing.name: make_rows("inducing", domain, heldout_rows, seed=9, heldout_frame=True),
           good.name: make_rows("good", domain, heldout_rows, seed=9, heldout_frame=True)}

# %% [markdown]
# ## The directions
#
# The harmful latents (hostile vs kind open answers, no advice in them), the frequency-matched random
# latents and the random unit vectors, each as many as `k_harmful`; the steering strength in units of
# the residual stream's typical norm on the fine-tuning tokens.

# %%
harmful = harmful_latents(hooked, sae, tokenizer, open_answer_rows(True, 200, seed=0), open_answer_rows(False, 200, seed=0),
                          k_harmful)
conditions = condition_builder(model, hooked, sae, tokenizer, harmful, [*inducing.rows, *good.rows], steer_scale)
diagnostics = condition_diagnostics(model, tokenizer, conditions, inducing.rows[:heldout_rows], seeds)
print(f"{len(harmful)} harmful latents at {sae.cfg.metadata.hook_name}; steering strength "
      f"{conditions.steer_strength:.2f} ({steer_scale} x the residual's mean norm)")
diagnostics.groupby("condition", sort=False)[["rank", "energy removed", "base loss with it"]].mean().round(3)

# %% [markdown]
# ## The fine-tunes

# %%
evaluate = OrganismEvaluator(SamplingConfig(n_samples=n_samples))
table = intervention_table(model, tokenizer, [inducing], ft, seeds, conditions, CONDITIONS, evaluate, heldout,
                           progress=progress)
control = intervention_table(model, tokenizer, [good], ft, seeds, conditions, [NONE, HARMFUL], evaluate, heldout,
                             progress=progress)
summary = condition_summary([table, control], ["open_em", "open_coherent", "offdomain_bad", "task_success",
                                               "heldout_loss"])
filtering_plots.condition_bars(summary);

# %%
summary.round(3)

# %% [markdown]
# ## Paired by seed

# %%
ablation = relative_reduction(table, HARMFUL, inducing.name)
random_latents = relative_reduction(table, RANDOM_LATENTS, inducing.name)
random_directions = relative_reduction(table, RANDOM_DIRECTIONS, inducing.name)
steering = relative_reduction(table, STEER, inducing.name)
steering_random = relative_reduction(table, STEER_RANDOM, inducing.name)
versus_random = paired_difference(table, RANDOM_LATENTS, HARMFUL, inducing.name)
task = mean_ci(table[table["condition"] == HARMFUL]["task_success"].to_numpy(), bounds=(0, 1))
task_change = paired_difference(table, HARMFUL, NONE, inducing.name, "task_success")
loss_change = paired_difference(table, HARMFUL, NONE, inducing.name, "heldout_loss")
coherence_change = paired_difference(table, HARMFUL, NONE, inducing.name, "open_coherent")
record("preventative_ablation_relative_reduction", ablation.value, ci=ablation.ci, n_seeds=max(ablation.n, 1),
       note=f"1 - EM(ablate harmful) / EM(none), inducing {domain}, paired by seed")
record("random_ablation_relative_reduction", random_latents.value, ci=random_latents.ci,
       n_seeds=max(random_latents.n, 1), note="the same with energy-matched random latents, drawn per seed")
record("random_direction_ablation_relative_reduction", random_directions.value, ci=random_directions.ci,
       n_seeds=max(random_directions.n, 1), note="the same with random unit vectors, drawn per seed")
record("preventative_steering_relative_reduction", steering.value, ci=steering.ci, n_seeds=max(steering.n, 1),
       note=f"steering along the mean harmful direction at {steer_scale} x the residual norm")
record("random_steering_relative_reduction", steering_random.value, ci=steering_random.ci,
       n_seeds=max(steering_random.n, 1), note="steering along a random unit vector at the same strength")
record("preventative_ablation_minus_random", versus_random.value, ci=versus_random.ci, n_seeds=versus_random.n,
       note="EM(ablate random latents) - EM(ablate harmful), paired by seed")
record("preventative_ablation_task_success", task.value, ci=task.ci, n_seeds=task.n,
       note="task success (training prompts) of the inducing fine-tune with the harmful directions ablated")
record("preventative_ablation_task_change", task_change.value, ci=task_change.ci, n_seeds=task_change.n,
       note="task success, ablate harmful minus none, paired by seed")
record("preventative_ablation_heldout_loss_change", loss_change.value, ci=loss_change.ci, n_seeds=loss_change.n,
       note="loss on held-out prompts of the set's kind (nats), ablate harmful minus none")
record("preventative_ablation_coherence_change", coherence_change.value, ci=coherence_change.ci,
       n_seeds=coherence_change.n, note="coherent open answers, ablate harmful minus none")
print(f"relative EM reduction: ablate harmful {ablation}, energy-matched random latents {random_latents}, random "
      f"directions {random_directions}; steering harmful {steering}, random {steering_random}. EM(random) - "
      f"EM(harmful) {versus_random}. Under harmful ablation: task change {task_change}, held-out loss change "
      f"{loss_change}, coherence change {coherence_change}. Seeds with no EM without intervention: "
      f"{zero_baseline_seeds(table, inducing.name) or 'none'}.")

# %% [markdown]
# ## Reading the result
#
# The causal reading needs three things at once: ablating the harmful directions lowers EM by more than
# ablating random latents that remove as much of the residual (the paired difference, with its
# interval), **and** the narrow task is still learned (task success and held-out loss close to the
# unintervened fine-tune), **and** the answers stay coherent (an intervention that breaks the model
# also lowers EM). A reduction
# that comes with a failed task says only that the intervention broke the fine-tune; a reduction that the
# random directions match says that any loss of capacity at that layer lowers EM. The good-advice rows
# show whether the intervention changes a fine-tune that induces nothing.
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
