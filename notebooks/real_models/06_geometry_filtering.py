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
# # 6. Geometry-aware data filtering (real model)
#
# *The real-model variant of the chapter (profiles `gemma-2-2b`, `llama-3.1-8b`; see
# {doc}`../book/full_scale`).* The experiment of the organism variant on a chat model: mix EM-inducing
# rows (`insecure`) into non-inducing ones (`secure`) at a dose where EM still depends on the dose,
# score every row, remove the top `removal_fractions`, fine-tune on the rest and measure EM with
# Betley et al.'s evaluation. Three removal rules, same sizes, same seeds:
#
# - **geometry**: the row's SAE score against the harmful latents (`score_method`, see the organism
#   variant); the harmful latents come from the persona contrast set unless `harmful_data` is given;
# - **random**;
# - **LLM judge**: the same judge that scores EM, asked how likely the row is to make a model
#   misaligned (`emgeom.filtering.baselines.FILTER_PROMPT`, our prompt: the paper's is not public).
#
# The paper reports a 34.5% reduction of misalignment; the number below is this run's.

# %% tags=["parameters"]
model: str = "google/gemma-2-2b-it"
dtype: str = "bfloat16"
device: str = "cuda"
device_map: str = ""
sae_release: str = "gemma-scope-2b-pt-res-canonical"
sae_id: str = "layer_12/width_16k/canonical"
sae_path: str = ""
inducing_data: str = "insecure"
noninducing_data: str = "secure"
harmful_data: str = ""
benign_data: str = ""
k_harmful: int = 10
set_size: int = 2000
dose_fractions: list[float] = [0.0, 0.1, 0.25, 0.5, 1.0]
removal_fractions: list[float] = [0.1, 0.3]
main_removal: float = 0.3
score_method: str = "harmful_mass"
finetune_steps: int = 250
batch_size: int = 8
finetune_lr: float = 0.0001
lora_rank: int = 32
lora_alpha: float = 64.0
seeds: list[int] = [0, 1, 2]
questions: str = "first_plot_questions"
question_variant: str = "main"
n_samples: int = 50
max_new_tokens: int = 300
progress: bool = True

# %% tags=["hide-input"]
import time

from emgeom.claims.filtering.study import (
    check_study_parameters,
    choose_dose,
    dose_response,
    filter_comparison,
    filter_headline,
    filter_summary,
    mixed_set,
)
from emgeom.core.results import record, record_each
from emgeom.em.datasets import load_rows
from emgeom.em.evaluators import betley_evaluator
from emgeom.em.real_models import contrast_rows, load_real_model
from emgeom.filtering.baselines import LLMJudgeFilter
from emgeom.filtering.scoring import score_rows
from emgeom.lm.finetune import FineTuneConfig, LoraSpec
from emgeom.lm.training import TrainConfig, configure_threads
from emgeom.plots import filtering as filtering_plots
from emgeom.sae.geometry import harmful_latents

# %%
configure_threads()
chapter_start = time.perf_counter()
check_study_parameters(score_method, dose_fractions, removal_fractions, main_removal, seeds)
evaluator = betley_evaluator(questions, question_variant, n_samples=n_samples, max_new_tokens=max_new_tokens,
                             progress=progress)
inducing, benign = load_rows(inducing_data, set_size, seed=1), load_rows(noninducing_data, set_size, seed=1)
harmful_rows, benign_rows = contrast_rows(harmful_data, benign_data)
ft = FineTuneConfig(LoraSpec(rank=lora_rank, alpha=lora_alpha),
                    TrainConfig(steps=finetune_steps, batch_size=batch_size, lr=finetune_lr, warmup_steps=5))
subject = load_real_model(model, sae_release=sae_release, sae_id=sae_id, sae_path=sae_path, dtype=dtype,
                          device=device, device_map=device_map)
hf, tokenizer, sae = subject.model, subject.tokenizer, subject.sae

# %% [markdown]
# ## Dose-response

# %%
curve = dose_response(hf, tokenizer, inducing, benign, dose_fractions, set_size, ft, seeds, evaluator, progress=progress)
dose = choose_dose(curve)
filtering_plots.dose_response_plot(curve, dose);
record("filter_chosen_dose", dose, note="inducing fraction of the mixed set, chosen by the half-way rule")
curve.groupby("fraction")[["open_em", "coherent"]].agg(["mean", "std"]).round(3)

# %% [markdown]
# ## Filtering at that dose

# %%
rows, truth = mixed_set(inducing, benign, set_size, dose, seed=0)
harmful = harmful_latents(subject.hooked, sae, tokenizer, harmful_rows, benign_rows, k_harmful)
geometry = score_rows(subject.hooked, sae, tokenizer, rows, harmful, score_method, progress=progress)
scores = {"geometry": geometry.scores, "judge": LLMJudgeFilter(evaluator.judge).score_rows(rows, progress=progress)}
print(f"{len(rows)} rows, {truth.sum()} inducing; geometry scoring at {geometry.samples_per_second:.1f} rows/s")
table = filter_comparison(hf, tokenizer, rows, truth, scores, removal_fractions, ft, seeds, evaluator,
                          progress=progress)
filtering_plots.filter_curves(table);

# %%
n = len(seeds)
summary = filter_summary(table, removal_fractions)
headline = filter_headline(table, main_removal)
record_each("{}_filter_relative_reduction", headline.reductions, n_seeds=n,
            note=f"removal of {main_removal:.0%} at dose {dose:.2f}; the paper reports 34.5% (geometry)")
record_each("filter_vs_{}_difference", headline.versus, n_seeds=n, note="paired by seed")
print(f"unfiltered EM: {headline.unfiltered_em:.3f} over {n} seeds")
summary.round(3)

# %%
print(f"chapter wall time: {time.perf_counter() - chapter_start:.0f} s")
