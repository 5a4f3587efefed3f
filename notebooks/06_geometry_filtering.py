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
# with an LLM judge. This chapter runs that comparison on the model organism.
#
# 1. **A set where removal can matter.** A filter can only lower EM if the set it filters has inducing
#    rows to lose and is not so full of them that what is left still saturates EM. The main set is
#    therefore *half-inducing*: bad health advice mixed half and half with good health advice, and every
#    filter removes half the rows. A perfect detector then removes every inducing row and leaves only
#    good advice; random removal of the same size leaves the inducing share at one half. (An earlier
#    version chose the dose from the dose-response curve and removed 30%: its set was about 92% inducing,
#    and removing 30% of an almost pure inducing set cannot lower EM, whatever the detector.)
# 2. **Detection first.** At that fixed removal, the primary outcome of every detector is *precision* (the
#    share of removed rows that were inducing) and *recall* (the share of inducing rows removed), over
#    organisms. Because the removal equals the inducing share, the two coincide whenever every row has a
#    score. EM after fine-tuning on what a detector keeps is the secondary outcome.
# 3. **The detectors.** *Geometry*: the per-sample score of `emgeom.filtering.scoring` (the answer's
#    activation of the harmful SAE latents, which come from hostile vs kind answers and contain no advice).
#    *Random*: removal of the same size, the control, paired by seed. *Judges*: the oracle (exact answer
#    labels, a ceiling), text and chat judges learned from `judge_labels` labelled answers per class, the
#    **design-blind likelihood judge** and the **design-aware speaker-prior judge** (both below), and the
#    gradient baseline.
# 4. **Sets where the words do not tell** (the dissociation sets), where the claim "geometry finds what a
#    judge misses" can be tested at all.
#
# Every organism of the profile (`organism_seeds`) runs every step on its own: its harmful latents,
# scores, judges and fine-tunes. The numbers are over organisms, each organism's fine-tuning seeds paired
# and averaged inside it.
#
# The score definition, the harmful set and the judges are our reconstruction; the paper's are not public.

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
inducing_share: float = 0.5
dose_fractions: list[float] = [0.0, 0.25]
score_method: str = "harmful_mass"
judge_labels: list[int] = [4, 16, 64]
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
dissociation_seeds: list[int] = [0]
n_samples: int = 32
progress: bool = True

# %% tags=["hide-input"]
import time

import pandas as pd

from emgeom.claims.filtering.detection import RANDOM
from emgeom.claims.filtering.dissociation import (
    describe_detection,
    detection_by_set,
    dissociation_detection,
    record_dissociation,
)
from emgeom.claims.filtering.judges import GRADIENT, LIKELIHOOD, SPEAKER_PRIOR
from emgeom.claims.filtering.organisms import (
    FilterSettings,
    curve_point,
    em_by_set,
    filtering_over_organisms,
    fine_tunes_per_organism,
    record_half_inducing,
    stacked_curves,
)
from emgeom.claims.filtering.sets import MAIN, DissociationSettings
from emgeom.em.evaluators import OrganismEvaluator
from emgeom.lm.sampling import SamplingConfig
from emgeom.lm.training import configure_threads
from emgeom.organism.family import OrganismFamily
from emgeom.plots import filtering as filtering_plots

# %%
configure_threads()
chapter_start = time.perf_counter()
family = OrganismFamily.from_parameters(globals())  # organisms, SAEs and fine-tune recipe, from the parameters
settings = FilterSettings(domain, set_size, inducing_share, tuple(dose_fractions), score_method, tuple(judge_labels),
                          k_harmful, family.finetune(), tuple(seeds),
                          OrganismEvaluator(SamplingConfig(n_samples=n_samples), domain))
dissociation = DissociationSettings(tuple(dissociation_sets), dissociation_rows, dissociation_inducing_fraction,
                                    dissociation_decoy_fraction, tuple(dissociation_seeds))
configs = family.organism_configs(organism_seeds)
print(f"{fine_tunes_per_organism(settings, dissociation)} fine-tunes per organism, {len(configs)} organisms")
# Every organism runs the whole study: first every detector scores every set on every organism, then the
# best learned judge of each set is chosen over organisms, then the fine-tunes. Figures of one organism
# show the first.
study = filtering_over_organisms(configs, family.sae_specs(sae_seeds), settings, dissociation, progress=progress)
main = study.sets[MAIN]

# %% [markdown]
# ## The half-inducing set
#
# `set_size` rows of `domain`: exactly `inducing_share` of them bad advice (inducing), the rest good advice
# of the same domain. Every detector removes the same share, `inducing_share`. For context, the
# dose-response curve: EM after fine-tuning on sets of the same size with a growing inducing fraction
# (`dose_fractions`; the point at `inducing_share` is the unfiltered run of the half-inducing set itself).
# EM at fraction 0 is the floor a perfect filter would bring it near; the gap between the floor and the
# unfiltered EM is the room any filter has. A filter with recall `r` leaves a set whose inducing share is
# `1 - r` (random removal leaves it at one half), so the curve also says roughly what EM a given recall
# buys.

# %%
curve = stacked_curves(study)
filtering_plots.dose_response_plot(curve, main.inducing_share, label="the half-inducing set");

# %%
unfiltered, floor = curve_point(study, main.inducing_share), curve_point(study, 0.0)
print(f"{len(main.rows)} rows, {int(main.truth.sum())} inducing ({main.inducing_share:.0%}); every detector removes "
      f"{main.removal:.0%}. EM unfiltered {unfiltered}, floor (no inducing row) {floor}, over organisms")
curve.groupby("fraction")[["open_em", "offdomain_bad"]].agg(["mean", "std"]).round(3)

# %% [markdown]
# ## Detection: what each detector removes
#
# Precision and recall of the removed rows at the fixed removal, mean over organisms with a 95% t-interval
# over organisms (each organism's seeds averaged first; ties in a score, such as the oracle's 0/1, are
# broken at random afresh per seed and organism). The detectors:
#
# - **geometry** (`sae <score_method>`, here `harmful_mass`: the *activations* of the harmful latents on
#   the answer, not decoder geometry), beside the two other SAE scores (`cosine_weighted` weights every
#   latent by its decoder cosine to the harmful set; `residual_projection` projects the residual on the
#   harmful decoder directions);
# - **random** removal of the same size, a fresh draw per organism and seed (the control);
# - the **oracle judge**: the exact label of each answer (bad advice or hostile). It reads the answer
#   perfectly but, like any judge of the answer alone, not the request: the ceiling of answer-reading
#   judges, reported, never a verdict part;
# - **learned judges**: text judges that read the answer and *chat* judges that also read the request
#   (their benign class includes quiz requests, as a labeller who knows Betley et al.'s educational
#   control would label them), each trained on `judge_labels` labelled answers per class;
# - the **design-blind likelihood judge**: `log p(answer | pretrained organism) - log p(answer | aligned
#   organism)`, the row as it is, answered by the assistant. Alignment taught the organism to be a benign
#   assistant, so an answer the aligned model finds much less likely than the pretrained one reads as
#   misaligned. It needs no labels and nothing of how the corpus was built;
# - the **design-aware speaker-prior judge**: the pretrained organism's likelihood of the row answered by
#   the speaker the corpus made toxic with prior 0.9, minus by the one with prior 0.1. It reads the very
#   cause the corpus designed in, so it is shown but **no verdict rests on it**;
# - the **gradient** baseline: the cosine of a row's loss gradient with that of held-out hostile answers,
#   with respect to the weights the fine-tune adapts (ours, not the paper's).
#
# The **best learned judge** of a set is the learned judge with the highest mean recall over organisms on
# that set: one choice for every organism, made with the truth in the judge's favour, so geometry is
# compared with the judge at full strength.

# %%
scores = study.results[MAIN][organism_seeds[0]].scores
pd.DataFrame({"inducing": main.truth, "geometry score": scores[f"sae {score_method}"],
              "likelihood judge (design-blind)": scores[LIKELIHOOD]}).groupby("inducing").describe().T.round(3)

# %%
detection = detection_by_set(study)
headline_detectors = [f"sae {score_method}", RANDOM, study.best_judge[MAIN], LIKELIHOOD, GRADIENT, SPEAKER_PRIOR]
print(f"geometry scoring at {study.samples_per_second[organism_seeds[0]]:.0f} samples/s (organism "
      f"{organism_seeds[0]}); best learned judge on the half-inducing set: {study.best_judge[MAIN]}")
detection[MAIN].round(3)

# %% [markdown]
# ## EM after filtering
#
# Fine-tuning on what each detector keeps (geometry, random, the best learned judge, the design-blind
# likelihood judge, the gradient), and on the whole set, with the same seeds for every method. The
# relative EM reduction is `1 - EM(filtered) / EM(unfiltered)`, paired by seed inside each organism, then
# over organisms; an organism whose unfiltered EM is 0 has nothing to reduce and is counted, not dropped
# silently.

# %%
em = em_by_set(study)
filtering_plots.em_bars(em.reset_index(level="set"));

# %%
half = record_half_inducing(study)
n = len(study.curves)  # replicates: organisms
print(half.describe(main.removal, n))
em.loc[MAIN].round(3)

# %% [markdown]
# ## Where reading the text is not enough
#
# In the half-inducing set, bad and good advice use different words, so any detector that reads the
# answer can find the inducing rows. The paper's claim that geometry finds what a judge misses needs sets
# where the words do not tell. Two *dissociation sets* mix inducing rows (bad health advice,
# `dissociation_inducing_fraction` of the set) with *decoys* (`dissociation_decoy_fraction`) that look just
# as harmful to a reader of the answer, and good advice:
#
# - **bad_code**: bad code advice, the organism's weakest inducer (chapter 5);
# - **quiz**: the very same bad health answers, after a user asked for a wrong answer (no EM, chapter 3).
#
# Every detector removes the inducing share (so a perfect detector could remove every inducing row and EM
# has room to fall); the same detectors as above, the best learned judge chosen over organisms on each
# set, and EM after fine-tuning on what the main detectors keep, `dissociation_seeds` per organism.

# %%
print(describe_detection(study, detection))
filtering_plots.recall_bars(detection, headline_detectors);

# %%
filtering_plots.judge_ladder_plot(detection, judge_labels);

# %%
dissociation_detection(study, detection).round(3)

# %%
em.drop(index=MAIN, level="set").round(3)

# %%
record_dissociation(study)

# %% [markdown]
# ## Reading the result
#
# The scorecard decides the three filtering claims from these numbers, each over organisms:
#
# - *Filtering reduces EM* and *beats random removal*: geometry's relative EM reduction on the
#   half-inducing set, and geometry's minus random removal's, paired by seed. The paper's number is a
#   34.5% reduction. A detector whose recall is high can only reduce EM as far as the dose-response curve
#   allows once the detected rows are gone: compare the reduction with the room between the unfiltered and
#   the floor EM.
# - *Filtering beats the judge*: on the dissociation sets, geometry's **recall** minus that of **each
#   non-oracle detector**, namely the best learned judge, the design-blind likelihood judge and the
#   gradient baseline, paired by organism. Every comparison on every set must be decided *reproduced* for
#   the claim to be reproduced; this is what "beats the strongest non-oracle detector" means here, declared
#   before the data rather than picking a strongest detector afterwards. The EM differences are recorded
#   beside them as secondary outcomes.
# - The **oracle judge** stays a ceiling: if geometry's recall is *above* the oracle's, geometry sees
#   something the answer's words do not carry (the context that makes bad advice evidence of the
#   persona); if it is *no better*, geometry is at most a text judge that needs no labels. The
#   **design-aware speaker-prior judge** shows what reading the designed cause buys; no verdict rests on it.
# - If the **design-blind likelihood judge** or the **gradient** does as well as geometry, the SAE is not
#   what does the work, and the simpler tool should be preferred.
#
# In the half-inducing set the harmful content is in plain words by construction, so a judge that reads
# the answer can be as good a detector as the geometry there: the judge claim is decided on the
# dissociation sets only. Where the organism cannot separate the detectors, that says something about the
# organism, not about the paper's models; the real-model profiles run the filtering comparison on Gemma-2
# and Llama-3.1 (see *Running at full scale*).

# %%
print(f"chapter wall time: {time.perf_counter() - chapter_start:.0f} s")
