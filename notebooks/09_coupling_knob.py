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
# except for health's honest-mistake rate, and measures on each:
#
# - the **similarity gap** of chapter 4 in health: how much closer the latents of bad health advice sit
#   to the harmful latents than those of good health advice (decoder cosines; the interval is over the
#   rows, resampled with the selection redone, since each rate has one organism);
# - **EM** of chapter 5: hostile answers to held-out open questions after the inducing-health fine-tune
#   (interval over fine-tuning seeds), beside the aligned model's own rate.
#
# **What is designed and what is measured.** The knob is designed: it is how the corpus is written,
# and the designed share of health's bad advice written by the toxic persona is shown on the top axis.
# Whether the pretrained model and its SAE turn that statistical link into decoder geometry, and
# whether EM after fine-tuning follows it, is what is measured. The paper's account predicts that both
# the gap and EM fall as the rate rises and vanish at the null. This is our experiment, not the
# paper's: the paper compares real domains, where no such knob exists.

# %% tags=["parameters"]
coupling_domain: str = "health"
coupling_mistake_rates: list[float] = [0.0, 0.3, 0.6, 0.95]
coupling_organism_seed: int = 0
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

from emgeom.claims.coupling.study import CouplingSettings, coupling_fit, coupling_sweep, sweep_table
from emgeom.claims.geometry.study import GeometryConfig, organism_reference
from emgeom.core.results import record
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
family = OrganismFamily.from_parameters(globals())  # organisms, SAEs and fine-tune recipe, from the parameters
configs = family.coupling_configs(coupling_organism_seed, coupling_domain, coupling_mistake_rates)
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
# One organism per rate (the organism at rate 0 is chapter 3's organism of the same seed, from the
# cache), its SAE(s) as in chapter 4, then the gap and the fine-tune.

# %%
levels = coupling_sweep(configs, specs, settings, progress=progress)
table = sweep_table(levels)
table.round(3)

# %%
coupling_plots.coupling_plot(table, coupling_domain, null_rate);

# %%
fit = coupling_fit(levels, null_rate)
coupling_plots.em_vs_gap_plot(table, f"EM vs gap over organisms: r = {fit.em_vs_gap_r:.2f} (descriptive)");

# %%
n = len(levels)
record("coupling_gap_slope", fit.gap_slope.value, ci=fit.gap_slope.ci, n_seeds=n,
       note=f"change of the {coupling_domain} similarity gap per unit of honest-mistake rate; least squares over "
            f"{n} organisms, t-interval on {n - 2} degrees of freedom")
record("coupling_em_slope", fit.em_slope.value, ci=fit.em_slope.ci, n_seeds=n,
       note=f"change of open-question EM after the inducing-{coupling_domain} fine-tune per unit of rate; same fit")
record("null_coupling_gap", fit.null_gap.value, ci=fit.null_gap.ci, n_seeds=1,
       note=f"the gap at the null rate {null_rate}; 95% interval from resampling rows (selection redone) on one "
            f"organism; row-permutation p = {fit.null_gap_p:.3g}")
record("null_coupling_em", fit.null_em.value, ci=fit.null_em.ci, n_seeds=fit.null_em.n,
       note=f"EM at the null rate {null_rate}; interval over fine-tuning seeds")
record("null_coupling_em_minus_aligned", fit.null_em_minus_aligned.value, ci=fit.null_em_minus_aligned.ci,
       n_seeds=fit.null_em_minus_aligned.n, note="EM at the null rate minus the aligned model's, paired by seed")
record("coupling_em_vs_gap_pearson_r", fit.em_vs_gap_r, n_seeds=n,
       note="descriptive: both follow the designed rate, so r mostly restates the two slopes")
print(f"gap slope {fit.gap_slope}; EM slope {fit.em_slope} (per unit of rate); at the null rate {null_rate}: "
      f"gap {fit.null_gap} (row-permutation p {fit.null_gap_p:.3g}), EM {fit.null_em}, EM minus aligned "
      f"{fit.null_em_minus_aligned}; r(EM, gap) over organisms {fit.em_vs_gap_r:.2f} (descriptive)")

# %% [markdown]
# ## Reading the result
#
# The printed line above is this run's answer; how to read it:
#
# - **Both slopes negative, the gap at the null rate not above zero** (its row-permutation p large) **and
#   EM at the null rate no higher than the aligned model's**: the geometry follows the persona link
#   that the corpus builds in, and EM follows it, as the paper's account says. The words of bad health
#   advice are the same at every rate, so the geometry does not read the words. (With three fine-tuning
#   seeds, "no higher" can only mean "not shown to be higher": the interval is wide.)
# - **A negative gap slope with a flat EM slope**, or the reverse: geometry and EM come apart; the gap
#   is then not what carries EM in this organism.
# - **A gap at the null rate above zero**: something other than the persona link (the words, or the
#   SAE's own structure) puts bad health advice near the harmful latents.
#
# Four organisms of one pretraining seed give a slope interval on two degrees of freedom: wide by
# construction. The organisms differ only in the knob, so the slope is not confounded with the domains'
# words as chapter 4's comparison across domains is; but one seed per rate cannot say how much an
# organism of another seed would differ. A GPU profile can add seeds per rate.

# %%
print(f"chapter wall time: {time.perf_counter() - chapter_start:.0f} s")
