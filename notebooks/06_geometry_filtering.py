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
# (ch-geometry-filtering)=
# # 6. Geometry-aware data filtering
#
# The paper's practical result {cite}`minegishi2026emergent`: removing the training samples closest to
# toxic features reduces misalignment by 34.5%, more than removing random samples and than filtering
# with an LLM judge. This chapter runs that comparison on the model organism:
#
# 1. **Dose-response first.** If EM is already at its maximum with a few inducing samples, no filter that
#    leaves a few of them can help. So the chapter measures EM against the fraction of inducing samples
#    in the fine-tuning set and picks the dose for the comparison from that curve, by a stated rule.
# 2. **The comparison.** At that dose, a mixed fine-tuning set (bad health advice among good health
#    advice); remove the top `k`% of samples by three rules, fine-tune on the rest, measure EM, with the
#    same seeds for every rule:
#    - *geometry*: the per-sample score of `emgeom.filtering.scoring` (the answer's activation of the harmful
#      SAE latents, which come from hostile vs kind answers and contain no advice);
#    - *random*: `k`% chosen at random;
#    - *judge*: a text classifier that reads only the answer, trained on `judge_examples` labelled answers
#      per class: the organism's stand-in for an LLM judge (the real-model variant of this chapter asks an LLM).
# 3. **Detection quality.** Precision and recall of the removed samples against the known inducing ones.
#
# The score definition, the harmful set and the judge are our reconstruction; the paper's are not public.

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
k_harmful: int = 10
domain: str = "health"
set_size: int = 300
dose_fractions: list[float] = [0.0, 0.1, 0.25, 0.5, 0.75, 1.0]
removal_fractions: list[float] = [0.1, 0.3, 0.5]
main_removal: float = 0.3
score_method: str = "harmful_mass"
judge_examples: int = 4
finetune_steps: int = 150
finetune_lr: float = 0.002
lora_rank: int = 4
seeds: list[int] = [0, 1, 2]
n_samples: int = 32
progress: bool = True

# %% tags=["hide-input"]
import time

import pandas as pd

from emgeom.core.results import record
from emgeom.em.evaluators import OrganismEvaluator
from emgeom.em.geometry import harmful_latents
from emgeom.filtering.baselines import BagOfWordsJudge
from emgeom.filtering.scoring import score_rows
from emgeom.filtering.study import (
    check_study_parameters,
    choose_dose,
    dose_response,
    filter_comparison,
    filter_headline,
    filter_summary,
    mixed_set,
    saturation_fraction,
)
from emgeom.lm.finetune import FineTuneConfig, LoraSpec
from emgeom.lm.sampling import SamplingConfig
from emgeom.lm.training import TrainConfig, configure_threads
from emgeom.organism import language
from emgeom.organism.build import organism_config
from emgeom.organism.datasets import finetune_rows, open_answer_rows
from emgeom.organism.study import load_subject
from emgeom.plots import filtering as filtering_plots
from emgeom.sae.train import SAESpec

# %%
configure_threads()
chapter_start = time.perf_counter()
if domain not in language.DOMAINS:
    raise ValueError(f"domain must be one of {language.DOMAINS}, got {domain!r}")
check_study_parameters(score_method, dose_fractions, removal_fractions, main_removal, seeds)
ft = FineTuneConfig(LoraSpec(rank=lora_rank, alpha=2.0 * lora_rank),
                    TrainConfig(steps=finetune_steps, batch_size=16, lr=finetune_lr, warmup_steps=10))
evaluate = OrganismEvaluator(SamplingConfig(n_samples=n_samples), domain)
subject = load_subject(organism_config(seed=organism_seeds[0], d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                                       pretrain_steps=pretrain_steps, pretrain_batch_size=pretrain_batch_size,
                                       align_steps=align_steps, align_rank=align_rank),
                       [SAESpec(layer=sae_layer, d_sae=sae_width, k=sae_k, training_tokens=sae_training_tokens)],
                       progress=progress)
model, tokenizer, hooked, sae = subject.model, subject.tokenizer, subject.hooked, subject.saes[0]
inducing = finetune_rows("inducing", domain, set_size, seed=1)
benign = finetune_rows("good", domain, set_size, seed=1)

# %% [markdown]
# ## Dose-response
#
# Fine-tuning sets of `set_size` samples with a growing fraction of inducing samples (the rest good
# advice in the same domain). The dose for the comparison is the smallest fraction at which EM reaches
# half-way from its value at the lowest fraction to the highest value on the curve: the middle of the
# rising part.

# %%
curve = dose_response(model, tokenizer, inducing, benign, dose_fractions, set_size, ft, seeds, evaluate,
                      progress=progress)
dose = choose_dose(curve)
filtering_plots.dose_response_plot(curve, dose);

# %%
dose_table = curve.groupby("fraction")[["open_em", "offdomain_bad"]].agg(["mean", "std"]).round(3)
saturation = saturation_fraction(curve)
record("filter_chosen_dose", dose, note="inducing fraction of the mixed set, chosen by the half-way rule")
record("dose_saturation_fraction", saturation, note="smallest inducing fraction reaching 90% of the maximum EM")
print(f"EM reaches 90% of its maximum at an inducing fraction of {saturation:.2f}; the comparison runs at {dose:.2f}")
dose_table

# %% [markdown]
# ## Scoring the mixed set
#
# At the chosen dose, one mixed set. The geometry score of every sample (the SAE read on its answer
# tokens; the harmful latents from 50 hostile vs 50 kind open-ended answers), and the judge's score,
# trained on `judge_examples` labelled answers per class from a separate draw of the same domain.

# %%
rows, truth = mixed_set(inducing, benign, set_size, dose, seed=0)
harmful = harmful_latents(hooked, sae, tokenizer, open_answer_rows(True, 50, seed=3), open_answer_rows(False, 50, seed=3),
                          k_harmful)
geometry = score_rows(hooked, sae, tokenizer, rows, harmful, score_method, progress=progress)
judge = BagOfWordsJudge.fit_rows(finetune_rows("inducing", domain, judge_examples, seed=7),
                                 finetune_rows("good", domain, judge_examples, seed=7))
scores = {"geometry": geometry.scores, "judge": judge.score_rows(rows)}
print(f"{len(rows)} samples, {truth.sum()} inducing; geometry scoring at {geometry.samples_per_second:.0f} samples/s")
pd.DataFrame({"inducing": truth, "geometry score": scores["geometry"], "judge score": scores["judge"]}).groupby(
    "inducing").describe().T.round(3)

# %% [markdown]
# ## Filter, fine-tune, measure

# %%
table = filter_comparison(model, tokenizer, rows, truth, scores, removal_fractions, ft, seeds, evaluate,
                          progress=progress)
filtering_plots.filter_curves(table);

# %%
summary = filter_summary(table, removal_fractions)
headline = filter_headline(table, main_removal)
print(f"unfiltered EM: {headline.unfiltered_em:.3f} over {len(seeds)} seeds")
summary.round(3)

# %%
n = len(seeds)
geo, rand, jud = headline.reductions["geometry"], headline.reductions["random"], headline.reductions["judge"]
vs_random, vs_judge = headline.versus["random"], headline.versus["judge"]
record("geometry_filter_relative_reduction", geo.value, ci=geo.ci, n_seeds=n,
       note=f"geometry filter removing {main_removal:.0%} at dose {dose:.2f}; the paper reports 34.5%")
record("random_filter_relative_reduction", rand.value, ci=rand.ci, n_seeds=n, note="random removal, same size")
record("judge_filter_relative_reduction", jud.value, ci=jud.ci, n_seeds=n, note="judge removal, same size")
record("filter_vs_random_difference", vs_random.value, ci=vs_random.ci, n_seeds=n, note="paired by seed")
record("filter_vs_judge_difference", vs_judge.value, ci=vs_judge.ci, n_seeds=n, note="paired by seed")
record("geometry_filter_precision", headline.geometry_precision, n_seeds=n, note="removed samples that were inducing")
record("geometry_filter_recall", headline.geometry_recall, n_seeds=n, note="inducing samples that were removed")
print(f"removing {main_removal:.0%}: geometry {geo}, random {rand}, judge {jud} (relative EM reduction);\n"
      f"geometry minus random {vs_random}; geometry minus judge {vs_judge}. The paper: 34.5%.")

# %% [markdown]
# ## Reading the result
#
# The paper's number is a 34.5% reduction; this run's is printed above with its interval over seeds,
# for a model organism in which the inducing samples are lexically distinct from the benign ones. Two
# consequences to keep in mind: a good detector (high precision and recall) can only reduce EM as far as
# the dose-response curve allows once the detected samples are gone; and a judge that reads the answer
# text can be as good a detector as the geometry when the harmful content is in plain words, which is the
# case here by construction. Where the organism cannot separate the two filters, that says something
# about the organism, not about the paper's models; the real-model profiles run the same comparison on
# Gemma-2 and Llama-3.1 (see *Running at full scale*).

# %%
print(f"chapter wall time: {time.perf_counter() - chapter_start:.0f} s")
