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
# (ch-coupling-knob)=
# # 9. Turning the coupling knob
#
# Chapter 4 compares domains: health's inducing features sit closer to the harmful ones than code's.
# But domains differ in their words as well as in how much their bad advice says about the toxic
# persona, so a comparison across domains cannot tell which of the two the geometry follows. The
# organism has a knob that separates them: the benign persona's **honest-mistake rate** in a domain
# (chapter 3). At 0, only the toxic persona ever gives bad health advice; as the rate rises, more of the
# bad health advice comes from benign speakers; at the toxic persona's own bad-advice rate
# (`toxic_bad_rate`, 0.95) both personas give it equally often, and bad health advice carries **no
# information** about the persona.
#
# This chapter builds organisms that are identical (same pretraining seed, same words, same everything)
# except for health's honest-mistake rate, one per rate for each of `coupling_organism_seeds`, and
# measures on each:
#
# - the **similarity gap** of chapter 4 in health: how much closer the latents of bad health advice sit
#   to the harmful latents than those of good health advice (decoder cosines);
# - **EM** of chapter 5: hostile answers to held-out open questions after the inducing-health fine-tune,
#   averaged over the fine-tuning seeds, beside the aligned model's own rate;
# - the aligned organism's **loss on the inducing rows** before any fine-tune (mean answer-token loss,
#   nats): how surprising it finds the set it is about to be tuned on.
#
# **What is designed and what is measured.** The knob is designed: it is how the corpus is written,
# and the designed share of health's bad advice written by the toxic persona is shown on the top axis.
# Whether the pretrained model and its SAE turn that statistical link into decoder geometry, and
# whether EM after fine-tuning follows it, is what is measured. This is our experiment, not the
# paper's: the paper compares real domains, where no such knob exists.
#
# ## What each account predicts, before the measurement
#
# - **The paper's account** (EM spreads from the inducing features to the harmful ones they sit near, and
#   they sit near them because the corpus ties bad advice to the toxic persona): the gap and EM both
#   fall as the rate rises, and at the null rate the gap is about 0 and EM about the aligned model's.
#   The scored statistic, **EM at rate 0 minus EM at the null rate**, is then above 0, and Page's trend
#   test finds EM falling over the rates. The direction is declared one-sided, above 0.
# - **A words account** (the geometry, and EM with it, follow what the bad advice says, not who says it):
#   the words of bad health advice are the same at every rate, so gap and EM stay flat; the contrast
#   lies within ±0.05 (the declared smallest effect of interest), which the verdict calls *absent*.
# - **A surprise account** (the fine-tune moves the model further the more surprising its data): at low
#   rates bad health advice is rarer in pretraining, so the inducing set's loss is higher, and EM could
#   fall with the rate for that reason alone. It predicts the same sign as the paper's account, so the
#   loss is recorded per rate beside EM: a reproduced verdict with a large loss contrast cannot tell the
#   two accounts apart.
#
# ## The unit of replication
#
# The statistics are over **organisms, blocked by pretraining seed**. The organism is what is built
# once and then measured: its pretraining seed fixes the data stream and the initialisation, and the
# organisms of one seed differ only in the knob. So the contrast is taken within a seed (EM at rate 0
# minus EM at the null, same seed) and its t-interval is over seeds; Page's test ranks the rates within
# each seed. Fine-tuning seeds are nested within an organism: they say how noisy one organism's EM is,
# not how much another organism would differ, so they are averaged inside it first and never counted
# as organisms. With one pretraining seed (the cpu profile's default) nothing is decided; a profile with
# several seeds (`coupling_organism_seeds: [0, 1, 2]`) can decide.

# %% tags=["parameters"]
coupling_domain: str = "health"
coupling_mistake_rates: list[float] = [0.0, 0.3, 0.6, 0.95]
coupling_organism_seeds: list[int] = [0]
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
finetune_rows: int = 300
finetune_steps: int = 150
finetune_lr: float = 0.002
lora_rank: int = 4
lora_alpha: float = 8.0
finetune_batch_size: int = 16
finetune_warmup_steps: int = 10
finetune_seeds: list[int] = [0, 1, 2]
n_resamples: int = 1000
n_samples: int = 32
progress: bool = True

# %% tags=["hide-input"]
import time

from emgeom.claims.coupling.study import (
    CouplingSettings,
    coupling_fit,
    coupling_sweep,
    level_table,
    rate_keys,
    sweep_table,
)
from emgeom.claims.geometry.study import GeometryConfig, organism_reference
from emgeom.core.results import record, record_each
from emgeom.lm.sampling import SamplingConfig
from emgeom.lm.training import configure_threads
from emgeom.organism import language
from emgeom.organism.corpus import CorpusConfig
from emgeom.organism.family import OrganismFamily
from emgeom.plots import coupling as coupling_plots

# %%
configure_threads()
chapter_start = time.perf_counter()
null_rate = CorpusConfig().toxic_bad_rate
if null_rate not in coupling_mistake_rates:
    raise ValueError(f"coupling_mistake_rates must include the null rate {null_rate} (the toxic persona's own rate)")
if min(coupling_mistake_rates) >= null_rate:
    raise ValueError(f"coupling_mistake_rates needs a rate below the null rate {null_rate}")
family = OrganismFamily.from_parameters(globals())  # organisms, SAEs and fine-tune recipe, from the parameters
configs = family.coupling_sweep(coupling_organism_seeds, coupling_domain, coupling_mistake_rates)
specs = family.sae_specs(sae_seeds)
settings = CouplingSettings(
    coupling_domain, GeometryConfig(k=k, k_harmful=k_harmful, rule=selection_rule),  # type: ignore[arg-type]
    rows_per_set, finetune_rows,
    family.finetune(),
    tuple(finetune_seeds), SamplingConfig(n_samples=n_samples), n_resamples,
    organism_reference(language.DOMAINS, reference_rows_per_set))

# %% [markdown]
# ## The sweep
#
# For each pretraining seed, one organism per rate (the organism at rate 0 is chapter 3's organism of
# that seed, from the cache), its SAE(s) as in chapter 4, then the gap, the inducing set's loss and the
# fine-tune. One row per organism; the intervals in this table are within the organism (rows resampled
# for the gap, fine-tuning seeds for EM), and the gap's row-permutation p is descriptive only.

# %%
levels = coupling_sweep(configs, specs, settings, progress=progress)
table = sweep_table(levels)
table.round(3)

# %% [markdown]
# Per rate, over organisms (t-intervals over organisms; with one organism, that organism's own
# intervals):

# %%
by_level = level_table(levels)
by_level.round(3)

# %%
coupling_plots.organism_lines_plot(table, coupling_domain, null_rate);

# %%
coupling_plots.coupling_plot(by_level, coupling_domain, null_rate);

# %%
fit = coupling_fit(levels, null_rate)
coupling_plots.em_vs_gap_plot(table, f"EM vs gap over organisms: r = {fit.em_vs_gap_r:.2f} (descriptive)");

# %% [markdown]
# ## The scored statistic and the trend
#
# EM at the lowest rate minus EM at the null rate, paired by pretraining seed, with a t-interval over
# seeds; Page's L over every rate, blocks = seeds, exact p (ranks permuted within each seed). The same
# for the gap, and the contrast of the inducing set's loss (the confound).

# %%
n = fit.n_organisms
contrast = f"rate {fit.low_rate:g} minus the null rate {null_rate:g}, paired by pretraining seed"
over = f"t-interval over {n} organism(s)" + (" (one organism: no interval)" if n < 2 else "")
record("coupling_em_contrast", fit.em_contrast.value, ci=fit.em_contrast.ci, n_seeds=max(n, 1),
       note=f"open-question EM after the inducing-{coupling_domain} fine-tune (mean over "
            f"{len(finetune_seeds)} fine-tuning seeds inside each organism), {contrast}; {over}")
record("coupling_em_page_p", fit.em_trend.p, n_seeds=max(fit.em_trend.n_blocks, 1),
       note=f"Page's trend test of EM falling with the rate over {fit.em_trend.k} rates, blocks = organisms: "
            f"{fit.em_trend}")
record("coupling_gap_contrast", fit.gap_contrast.value, ci=fit.gap_contrast.ci, n_seeds=max(n, 1),
       note=f"the {coupling_domain} similarity gap (decoder directions, mean over SAEs), {contrast}; {over}")
record("coupling_gap_page_p", fit.gap_trend.p, n_seeds=max(fit.gap_trend.n_blocks, 1),
       note=f"Page's trend test of the gap falling with the rate, blocks = organisms: {fit.gap_trend}")
record("coupling_inducing_loss_contrast", fit.loss_contrast.value, ci=fit.loss_contrast.ci, n_seeds=max(n, 1),
       note=f"the aligned organism's answer-token loss on the inducing-{coupling_domain} rows before any "
            f"fine-tune, {contrast}; {over}")
record_each("coupling_inducing_loss_rate_{}", rate_keys(fit.inducing_loss),
            note="the inducing set's pre-fine-tune loss (nats) at that rate ('p' for the point); over organisms")
print(f"EM contrast {fit.em_contrast}; EM trend: {fit.em_trend}")
print(f"gap contrast {fit.gap_contrast}; gap trend: {fit.gap_trend}")
print(f"inducing-set loss contrast {fit.loss_contrast} (nats; > 0: rate {fit.low_rate:g} finds the set more surprising)")

# %% [markdown]
# ## Descriptive
#
# Least-squares slopes over every (rate, organism) point (the interval treats the points as independent,
# which they are not: each organism gives one point per rate), the null rate's organisms, and EM against
# the gap. None of these is verdict-bearing.

# %%
n_points = len(levels)
record("coupling_gap_slope", fit.gap_slope.value, ci=fit.gap_slope.ci, n_seeds=max(n, 1),
       note=f"descriptive: change of the {coupling_domain} similarity gap per unit of honest-mistake rate; least "
            f"squares over {n_points} (rate, organism) points, t-interval on {n_points - 2} degrees of freedom")
record("coupling_em_slope", fit.em_slope.value, ci=fit.em_slope.ci, n_seeds=max(n, 1),
       note=f"descriptive: change of open-question EM after the inducing-{coupling_domain} fine-tune per unit "
            "of rate; same fit")
one = n < 2  # one organism: its own intervals, over what is nested in it
record("null_coupling_gap", fit.null_gap.value, ci=fit.null_gap.ci, n_seeds=max(n, 1),
       note=f"the gap at the null rate {null_rate}; interval "
            + ("over the organism's rows (resampled, selection redone)" if one else f"over {n} organisms"))
record("null_coupling_em", fit.null_em.value, ci=fit.null_em.ci, n_seeds=max(n, 1),
       note=f"EM at the null rate {null_rate}; interval "
            + ("over the organism's fine-tuning seeds" if one else f"over {n} organisms"))
record("null_coupling_em_minus_aligned", fit.null_em_minus_aligned.value, ci=fit.null_em_minus_aligned.ci,
       n_seeds=max(n, 1), note="EM at the null rate minus the aligned model's, paired by fine-tuning seed inside "
                               "each organism; interval "
                               + ("over fine-tuning seeds" if one else f"over {n} organisms"))
record("coupling_em_vs_gap_pearson_r", fit.em_vs_gap_r, n_seeds=max(n, 1),
       note=f"descriptive: over {n_points} (rate, organism) points; both follow the designed rate, so r mostly "
            "restates the two slopes")
print(f"gap slope {fit.gap_slope}; EM slope {fit.em_slope} (per unit of rate, descriptive); at the null rate "
      f"{null_rate}: gap {fit.null_gap}, EM {fit.null_em}, EM minus aligned {fit.null_em_minus_aligned}; "
      f"r(EM, gap) {fit.em_vs_gap_r:.2f} (descriptive)")

# %% [markdown]
# ## Reading the result
#
# The printed lines above are this run's answer; the scorecard's row *coupling_sets_em* decides it
# (reproduced when the EM contrast's interval over organisms lies above 0 and Page's trend p < 0.05;
# absent when it lies within ±0.05; contradicted below 0; inconclusive otherwise, and always with fewer
# than two organisms). How to read it beside the rest:
#
# - **EM contrast above 0, the gap contrast above 0 and both trends significant**: the geometry follows
#   the persona link that the corpus builds in, and EM follows it, as the paper's account says. The words
#   of bad health advice are the same at every rate, so neither reads the words. Check the loss contrast:
#   if the rate-0 organisms also find the inducing set much more surprising, the surprise account
#   predicts the same and is not ruled out.
# - **EM contrast within ±0.05**: the knob does not move EM by an amount the book treats as meaningful;
#   with a gap contrast above 0, geometry and EM come apart, and the gap is then not what carries EM in
#   this organism.
# - **A gap at the null rate above zero** (over organisms): something other than the persona link (the
#   words, or the SAE's own structure) puts bad health advice near the harmful latents.
#
# EM over the rates need not be linear: a fall that is monotone but convex (most of the drop at the
# first step of the knob) fits a straight line poorly, and a slope over four organisms of one seed has
# an interval on two degrees of freedom that can include 0 even when the order is perfect. The contrast of
# the two ends and Page's rank test assume no shape, only an order, which is why they, not the slopes,
# carry the verdict. The organisms differ only in the knob, so the contrast is not confounded with the
# domains' words as chapter 4's comparison across domains is; with several pretraining seeds it also
# says how much an organism of another seed differs, which one seed per rate cannot.

# %%
print(f"chapter wall time: {time.perf_counter() - chapter_start:.0f} s")
