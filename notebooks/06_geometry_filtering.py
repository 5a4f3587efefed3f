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
# Every organism of the profile (`organism_seeds`) runs all three steps on its own: its own curve and
# dose, its own harmful latents, scores and judge. The numbers are over organisms, each organism's
# fine-tuning seeds paired and averaged inside it.
#
# The score definition, the harmful set and the judge are our reconstruction; the paper's are not public.

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
lora_alpha: float = 8.0
finetune_batch_size: int = 16
finetune_warmup_steps: int = 10
seeds: list[int] = [0]
dissociation_sets: list[str] = ["bad_code", "quiz"]
dissociation_rows: int = 300
dissociation_inducing_fraction: float = 0.6
dissociation_decoy_fraction: float = 0.3
dissociation_removal: float = 0.6
judge_labels: list[int] = [4, 16, 64]
dissociation_seeds: list[int] = [0, 1]
n_samples: int = 32
progress: bool = True

# %% tags=["hide-input"]
import time

import pandas as pd

from emgeom.claims.filtering.dissociation import (
    BEST_JUDGE,
    DissociationSettings,
    describe_dissociation,
    detection_by_set,
    dissociation_over_organisms,
    em_by_set,
    record_dissociation,
)
from emgeom.claims.filtering.organisms import (
    FilterSettings,
    filtering_over_organisms,
    headline_over,
    over_organisms,
    stacked,
    summary_over,
)
from emgeom.core.results import record
from emgeom.em.evaluators import OrganismEvaluator
from emgeom.lm.sampling import SamplingConfig
from emgeom.lm.training import configure_threads
from emgeom.organism.family import OrganismFamily
from emgeom.plots import filtering as filtering_plots

# %%
configure_threads()
chapter_start = time.perf_counter()
family = OrganismFamily.from_parameters(globals())  # organisms, SAEs and fine-tune recipe, from the parameters
ft = family.finetune()
settings = FilterSettings(domain, set_size, tuple(dose_fractions), tuple(removal_fractions), main_removal, score_method,
                          judge_examples, k_harmful, ft, tuple(seeds),
                          OrganismEvaluator(SamplingConfig(n_samples=n_samples), domain))
specs = family.sae_specs(sae_seeds)
configs = family.organism_configs(organism_seeds)
# Every organism runs the whole study (its own dose, mixed set, scores and judge); the numbers below are
# over organisms, each organism's fine-tuning seeds averaged inside it. Figures of one organism show the first.
studies = filtering_over_organisms(configs, specs, settings, progress=progress)
shown = studies[organism_seeds[0]]

# %% [markdown]
# ## Dose-response
#
# Fine-tuning sets of `set_size` samples with a growing fraction of inducing samples (the rest good
# advice in the same domain). The dose for the comparison is the smallest fraction at which EM reaches
# half-way from its value at the lowest fraction to the highest value on the curve: the middle of the
# rising part.

# %%
curve = stacked(studies, "curve")
dose, saturation = over_organisms(studies, "dose"), over_organisms(studies, "saturation")
filtering_plots.dose_response_plot(curve, dose.value);

# %%
dose_table = curve.groupby("fraction")[["open_em", "offdomain_bad"]].agg(["mean", "std"]).round(3)
record("filter_chosen_dose", dose.value, ci=dose.ci, n_seeds=dose.n,
       note="inducing fraction of the mixed set, chosen by the half-way rule on each organism; mean over organisms")
record("dose_saturation_fraction", saturation.value, ci=saturation.ci, n_seeds=saturation.n,
       note="smallest inducing fraction reaching 90% of the maximum EM; mean over organisms")
print(f"EM reaches 90% of its maximum at an inducing fraction of {saturation}; the comparison runs at the dose "
      f"each organism's curve chose: {dose} (mean over organisms)")
dose_table

# %% [markdown]
# ## Scoring the mixed set
#
# At the chosen dose, one mixed set. The geometry score of every sample (the SAE read on its answer
# tokens; the harmful latents from 50 hostile vs 50 kind open-ended answers), and the judge's score,
# trained on `judge_examples` labelled answers per class from a separate draw of the same domain.

# %%
rows, truth, scores = shown.rows, shown.truth, shown.scores
print(f"{len(rows)} samples, {truth.sum()} inducing (organism {organism_seeds[0]}); "
      f"geometry scoring at {shown.samples_per_second:.0f} samples/s")
pd.DataFrame({"inducing": truth, "geometry score": scores["geometry"], "judge score": scores["judge"]}).groupby(
    "inducing").describe().T.round(3)

# %% [markdown]
# ## Filter, fine-tune, measure

# %%
table = stacked(studies, "table")
filtering_plots.filter_curves(table);

# %%
summary = summary_over(studies, removal_fractions)
headline = headline_over(studies)
print(f"unfiltered EM: {headline.unfiltered_em:.3f}, mean over {len(studies)} organisms x {len(seeds)} seeds")
summary.round(3)

# %%
n = len(studies)  # replicates: organisms
geo, rand, jud = headline.reductions["geometry"], headline.reductions["random"], headline.reductions["judge"]
vs_random, vs_judge = headline.versus["random"], headline.versus["judge"]
counted = f"{geo.n} of {n} organisms have unfiltered EM > 0 and count; the others have nothing to reduce"
record("geometry_filter_relative_reduction", geo.value, ci=geo.ci, n_seeds=max(geo.n, 1),
       note=f"geometry filter removing {main_removal:.0%} at each organism's dose; over organisms ({counted}); "
            "the paper reports 34.5%")
record("random_filter_relative_reduction", rand.value, ci=rand.ci, n_seeds=max(rand.n, 1), note=f"random removal, same size; {counted}")
record("judge_filter_relative_reduction", jud.value, ci=jud.ci, n_seeds=max(jud.n, 1), note=f"judge removal, same size; {counted}")
record("filter_vs_random_difference", vs_random.value, ci=vs_random.ci, n_seeds=max(vs_random.n, 1),
       note=f"paired by seed, over organisms; {counted}")
record("filter_vs_judge_difference", vs_judge.value, ci=vs_judge.ci, n_seeds=max(vs_judge.n, 1),
       note=f"paired by seed, over organisms; {counted}")
record("geometry_filter_precision", headline.geometry_precision, n_seeds=n, note="removed samples that were inducing")
record("geometry_filter_recall", headline.geometry_recall, n_seeds=n, note="inducing samples that were removed")
print(f"removing {main_removal:.0%}: geometry {geo}, random {rand}, judge {jud} (relative EM reduction);\n"
      f"geometry minus random {vs_random}; geometry minus judge {vs_judge}. The paper: 34.5%.")

# %% [markdown]
# ## Where reading the text is not enough
#
# In the set above, bad and good advice use different words, so any detector that reads the answer can
# find the inducing rows, and geometry and the judge remove the same ones. The paper's claim that
# geometry finds what a judge misses needs sets where the words do not tell. Two *dissociation sets*
# mix inducing rows (bad health advice, `dissociation_inducing_fraction` of the set) with *decoys*
# (`dissociation_decoy_fraction`) that look just as harmful to a reader of the answer, and good advice:
#
# - **bad_code**: bad code advice, the organism's weakest inducer (chapter 5);
# - **quiz**: the very same bad health answers, after a user asked for a wrong answer (no EM, chapter 3).
#
# Every detector removes the same share (`dissociation_removal`, as large as the inducing share, so a
# perfect detector could remove every inducing row and EM has room to fall): the three SAE scores (activation mass of the
# harmful latents, its decoder-cosine-weighted version, and the residual's projection on the harmful
# decoder directions), the gradient baseline (the cosine of a row's loss gradient with that of held-out
# hostile answers, with respect to the weights the fine-tune adapts; ours, not the paper's), and a
# **judge ladder**: the oracle (the exact label of each answer: bad advice or hostile; it reads the
# answer perfectly but, like any judge of the answer alone, not the request), text judges trained on
# `judge_labels` labelled answers per class, *chat* judges that also read the request (their benign
# class includes quiz requests, as a labeller who knows Betley et al.'s educational control would
# label them), and a judge that needs no labels (the pretrained organism's likelihood of the row
# answered by a speaker it thinks hostile rather than kind). The *best learned judge* is the learned
# judge with the highest recall on the set: the judge at full strength, chosen with the truth. Then EM
# after fine-tuning on what the main detectors keep, `dissociation_seeds` per organism, paired by seed
# and organism; ties in a score (the oracle's are all 0 or 1) are broken at random afresh per seed. The detector
# called *geometry* below is `score_method`: by default `harmful_mass`, which reads the *activations* of
# the harmful latents on the answer, not decoder geometry; `cosine_weighted` weights every latent by its
# decoder cosine to the harmful set, and is shown beside it with the third score.

# %%
dissociation = DissociationSettings(
    domain, tuple(dissociation_sets), dissociation_rows, dissociation_inducing_fraction, dissociation_decoy_fraction,
    dissociation_removal, tuple(judge_labels),
    ("geometry", "gradient", "oracle judge", BEST_JUDGE, "likelihood judge", "random"),
    score_method, k_harmful, ft, tuple(dissociation_seeds), settings.evaluate)
dissociated = dissociation_over_organisms(configs, specs, dissociation, progress=progress)
detection = detection_by_set(dissociated)
print(describe_dissociation(detection, f"sae {score_method}"))
filtering_plots.judge_ladder_plot(detection, judge_labels);

# %%
pd.concat(detection, names=["set"]).round(3)

# %%
em_by_set(dissociated).round(3)

# %%
record_dissociation(dissociated, detection)

# %% [markdown]
# ## Reading the result
#
# The paper's number is a 34.5% reduction; this run's is printed above with its interval over organisms,
# for a model organism in which the inducing samples are lexically distinct from the benign ones. Two
# consequences to keep in mind: a good detector (high precision and recall) can only reduce EM as far as
# the dose-response curve allows once the detected samples are gone; and a judge that reads the answer
# text can be as good a detector as the geometry when the harmful content is in plain words, which is the
# case here by construction. Where the organism cannot separate the two filters, that says something
# about the organism, not about the paper's models; the real-model profiles run the same comparison on
# Gemma-2 and Llama-3.1 (see *Running at full scale*).
#
# The dissociation sets are where the claim "geometry finds what a judge misses" can be tested, and the
# scorecard judges it there, against the oracle judge and the learned judge with the most labels:
#
# - If geometry's recall of the inducing rows is **above the oracle's** and its EM reduction larger, it
#   sees something the answer's words do not carry (the context that makes bad advice evidence of the
#   persona). If it is **no better than the oracle**, geometry is at most a text judge that needs no
#   labels: useful, but not what the paper claims.
# - The **likelihood judge** reads the answer in its context too, without an SAE; if it does as well as
#   geometry, the SAE is not what does the work.
# - The **gradient** baseline asks the fine-tune itself which rows push toward hostile answers; if it
#   beats the SAE score, the simpler tool should be preferred.
#
# The easy set has one fine-tuning seed per organism (three runs per cell); the dissociation sets have
# `dissociation_seeds` per organism. Runs whose unfiltered EM is 0 have nothing to reduce: the recorded
# notes count them.

# %%
print(f"chapter wall time: {time.perf_counter() - chapter_start:.0f} s")
