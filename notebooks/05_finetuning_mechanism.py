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

# %%
import time
from dataclasses import replace

import numpy as np
import pandas as pd

from emgeom.core.results import record
from emgeom.core.stats import bootstrap_pearson, mean_ci
from emgeom.em.emergence import FineTuneSet, emergence_table, estimate, monitor_finetune, seed_summary
from emgeom.em.evaluators import OrganismEvaluator
from emgeom.em.geometry import harmful_latents, set_similarities
from emgeom.em.mechanism import answer_start_readout, measure_mechanism, target_latent
from emgeom.lm.finetune import FineTuneConfig, LoraSpec, finetune
from emgeom.lm.models import hooked_transformer, load_model
from emgeom.lm.sampling import SamplingConfig
from emgeom.lm.training import TrainConfig, configure_threads
from emgeom.organism import language
from emgeom.organism.build import build_organism, organism_config
from emgeom.organism.datasets import FINETUNE_KINDS, evaluation_questions, open_answer_rows
from emgeom.organism.datasets import finetune_rows as make_rows
from emgeom.organism.sae import organism_sae
from emgeom.plots import emergence as emergence_plots
from emgeom.sae.train import SAESpec

configure_threads()
chapter_start = time.perf_counter()
if control_domain not in language.DOMAINS:
    raise ValueError(f"control_domain must be one of {language.DOMAINS}, got {control_domain!r}")
if not finetune_seeds or not sae_seeds or sae_layer >= n_layers:
    raise ValueError("need fine-tuning seeds, SAE seeds, and sae_layer < n_layers")
lora = LoraSpec(rank=lora_rank, alpha=lora_alpha, target_modules=tuple(lora_target_modules), layers=tuple(lora_layers))
if any(not 0 <= layer < n_layers for layer in lora_layers):
    raise ValueError(f"lora_layers {lora_layers} must be block indices below n_layers={n_layers}")
full_ft = FineTuneConfig(lora, TrainConfig(steps=finetune_steps, batch_size=16, lr=finetune_lr, warmup_steps=10))
first_order_ft = FineTuneConfig(lora, TrainConfig(steps=first_order_steps, batch_size=16, lr=first_order_lr,
                                                  warmup_steps=1))
sampling = SamplingConfig(n_samples=n_samples)
print(f"LoRA rank {lora_rank} (0 = full fine-tuning), alpha {lora_alpha}, modules {lora_target_modules or 'all linear'}, "
      f"blocks {lora_layers or 'all'}; {finetune_steps} steps of 16 rows = {finetune_steps * 16 / finetune_rows:.1f} epochs")
sae_specs = [SAESpec(layer=sae_layer, d_sae=sae_width, k=sae_k, training_tokens=sae_training_tokens, seed=s)
             for s in sae_seeds]

# %% [markdown]
# ## The organism, its SAEs, and the sets
#
# The organism of chapter 3 and the SAEs of chapter 4 (from the cache when those chapters ran with the
# same parameters). Fine-tuning sets: bad advice in each domain (inducing), and the three controls in
# `control_domain`.

# %%
organism = build_organism(organism_config(seed=organism_seeds[0], d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                                          pretrain_steps=pretrain_steps, pretrain_batch_size=pretrain_batch_size,
                                          align_steps=align_steps, align_rank=align_rank), progress=progress)
if len(organism_seeds) > 1:
    print(f"note: this chapter studies one organism (seed {organism_seeds[0]}); the others are in chapters 3-4")
model, tokenizer = load_model(organism.aligned)
hooked = hooked_transformer(model, tokenizer, organism.aligned)
saes = [organism_sae(organism, hooked, tokenizer, spec)[0] for spec in sae_specs]
harmful_rows, benign_rows = open_answer_rows(True, 200, seed=0), open_answer_rows(False, 200, seed=0)
harmful = [harmful_latents(hooked, sae, tokenizer, harmful_rows, benign_rows, k_harmful) for sae in saes]
sets = [FineTuneSet(f"inducing {d}", make_rows("inducing", d, finetune_rows, seed=0), d, inducing=True)
        for d in language.DOMAINS]
sets += [FineTuneSet(f"{kind} {control_domain}", make_rows(kind, control_domain, finetune_rows, seed=0), control_domain,
                     inducing=False) for kind in FINETUNE_KINDS if kind != "inducing"]
# The target latent of each domain: the top latent of its inducing set minus its good-advice set (chapter 4's rule).
sae0, prompts = saes[0], [[{"role": "user", "content": q.text}] for q in evaluation_questions()]
targets = {d: target_latent(hooked, sae0, tokenizer, make_rows("inducing", d, 200, seed=0), make_rows("good", d, 200, seed=0))
           for d in language.DOMAINS}
base_readout = answer_start_readout(hooked, sae0, tokenizer, prompts)

# %% [markdown]
# ## EM rates
#
# Every set fine-tuned with every seed; each model evaluated on the held-out questions. "Task" is the
# fraction of answers to the set's own prompts that match its training answers (did it learn the narrow
# task). While each inducing model is at hand, its latents are read for the mechanism below.

# %%
full_results: dict[tuple[str, int], object] = {}


def read_mechanism(fs: FineTuneSet, seed: int, tuned) -> None:
    if fs.inducing:
        tuned_readout = answer_start_readout(hooked_transformer(tuned, tokenizer, organism.aligned), sae0, tokenizer, prompts)
        full_results[(fs.domain, seed)] = measure_mechanism(base_readout, tuned_readout, sae0, targets[fs.domain],
                                                            harmful[0], seed=seed)


table = emergence_table(model, tokenizer, sets, full_ft, finetune_seeds, OrganismEvaluator(sampling), progress=progress,
                        after_finetune=read_mechanism)
summary = seed_summary(table, ("open_em", "offdomain_bad", "indomain_bad", "task_success"))
emergence_plots.emergence_bars(summary);

# %%
summary.round(3)

# %%
for fs in sets:
    est = estimate(table, "open_em", [fs.name])
    record(f"em_open_rate_{fs.name.replace(' ', '_')}", est.value, ci=est.ci, n_seeds=est.n,
           note=f"hostile answers to open questions after fine-tuning on '{fs.name}'")

# %% [markdown]
# ## The mechanism
#
# For each inducing domain and seed: fine-tune in the first-order regime (`first_order_steps` steps at
# learning rate `first_order_lr`), read every SAE latent at the answer-start position of the evaluation
# questions before and after, and correlate each alive latent's change in pre-activation with its
# decoder cosine to the domain's target latent. Chapter 2 predicts a positive, linear relation. The same
# is then read after the full fine-tune above.

# %%

first_results = {}
for d in language.DOMAINS:
    for seed in finetune_seeds:
        tuned, _ = finetune(model, tokenizer, make_rows("inducing", d, finetune_rows, seed=0),
                            replace(first_order_ft, train=replace(first_order_ft.train, seed=seed)))
        readout = answer_start_readout(hooked_transformer(tuned, tokenizer, organism.aligned), sae0, tokenizer, prompts)
        first_results[(d, seed)] = measure_mechanism(base_readout, readout, sae0, targets[d], harmful[0], seed=seed)
s0 = finetune_seeds[0]
emergence_plots.mechanism_scatter({f"{d}, first-order": first_results[(d, s0)] for d in ("health", "code")}
                        | {"health, full fine-tune": full_results[("health", s0)]},
                        {f"{d}, first-order": harmful[0] for d in ("health", "code")}
                        | {"health, full fine-tune": harmful[0]});

# %%
rows = []
for regime, results in (("first-order", first_results), ("full fine-tune", full_results)):
    for d in language.DOMAINS:
        rs = [results[(d, s)] for s in finetune_seeds]
        r = mean_ci(np.array([x.r_pre.value for x in rs]), bounds=(-1, 1))
        rows.append({"regime": regime, "domain": d, "target is harmful": targets[d] in set(harmful[0].tolist()),
                     "r (pre-activation)": r.value, "r lo": r.lo, "r hi": r.hi,
                     "r (activation)": np.mean([x.r_post.value for x in rs]),
                     "slope": np.mean([x.slope_pre for x in rs]), "|Δh|": np.mean([x.shift_norm for x in rs]),
                     "Δh on harmful dirs": np.mean([x.shift_on_harmful.mean() for x in rs]),
                     "Δh on random dirs": np.mean([x.shift_on_random.mean() for x in rs])})
mechanism_table = pd.DataFrame(rows)
mechanism_table.round(3)

# %%
first_r = mean_ci(np.array([first_results[(d, s)].r_pre.value for d in language.DOMAINS for s in finetune_seeds]),
                  bounds=(-1, 1))
full_r = mean_ci(np.array([full_results[(d, s)].r_pre.value for d in language.DOMAINS for s in finetune_seeds]),
                 bounds=(-1, 1))
record("mechanism_pearson_r", first_r.value, ci=first_r.ci, n_seeds=len(finetune_seeds),
       note="first-order regime: Δ pre-activation vs decoder cosine with the target latent, mean over domains and seeds")
record("mechanism_pearson_r_full_finetune", full_r.value, ci=full_r.ci, n_seeds=len(finetune_seeds),
       note="the same after the full fine-tune")
for d in language.DOMAINS:
    est = mean_ci(np.array([first_results[(d, s)].r_pre.value for s in finetune_seeds]), bounds=(-1, 1))
    record(f"mechanism_pearson_r_{d}", est.value, ci=est.ci, n_seeds=len(finetune_seeds), note="first-order regime")

# %%
holds = [d for d in language.DOMAINS if mechanism_table.query("regime == 'first-order' and domain == @d")["r lo"].item() > 0]
print(f"First-order regime: r > 0 (95% CI above zero) in {len(holds)} of {len(language.DOMAINS)} domains"
      + (f" ({', '.join(holds)})" if holds else "") + f"; mean over domains and seeds {first_r}.")
harmful_targets = [d for d in language.DOMAINS if targets[d] in set(harmful[0].tolist())]
print(f"Domains whose target latent is itself one of the harmful latents: {', '.join(harmful_targets) or 'none'}.")

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
sims = [set_similarities(hooked, sae, tokenizer, {fs.name: fs.rows for fs in sets}, h, k) for sae, h in zip(saes, harmful, strict=True)]
points = summary.set_index("set").loc[[fs.name for fs in sets]].reset_index()
points["similarity"] = [np.mean([s[name] for s in sims]) for name in points["set"]]
points["inducing"] = [fs.inducing for fs in sets]
sim_r = bootstrap_pearson(points["similarity"].to_numpy(), points["open_em"].to_numpy(), n_boot=2000)
emergence_plots.similarity_vs_em(points, f"r = {sim_r.value:.2f} [{sim_r.lo:.2f}, {sim_r.hi:.2f}]");
record("similarity_vs_em_pearson_r", sim_r.value, ci=sim_r.ci, n_seeds=len(sets),
       note="one point per fine-tuning set; bootstrap CI over sets")
points[["set", "similarity", "open_em", "open_em_lo", "open_em_hi"]].round(3)

# %%
inducing_em = estimate(table, "open_em", [fs.name for fs in sets if fs.inducing])
control_em = estimate(table, "open_em", [fs.name for fs in sets if not fs.inducing])
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
monitor = monitor_finetune(model, tokenizer, sets[list(language.DOMAINS).index(control_domain)].rows, full_ft,
                           monitor_checkpoints, sampling, sae0, harmful[0], control_domain)
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
