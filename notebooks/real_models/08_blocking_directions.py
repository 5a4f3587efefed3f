# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-blocking-directions)=
# # 8. Beyond filtering: blocking the harmful directions during fine-tuning (real model)
#
# The organism chapter's test on a chat model with a published SAE: the inducing fine-tune (Betley et
# al.'s insecure code by default) under no intervention, with the span of the harmful latents' decoder
# directions projected out of the residual stream at the SAE's layer during training, with as many
# frequency-matched random latents' directions projected out, and with preventative steering along the
# mean harmful direction; the control fine-tune (secure code) under none and harmful ablation. The
# harmful latents come from the harmful/benign contrast set of the geometry chapter. EM is Betley et
# al.'s evaluation through the LLM judge; the held-out loss is on rows of each set's kind. Beyond the
# paper; see the organism chapter for the reasoning and what each outcome would mean.

# %% tags=["parameters"]
model: str = "google/gemma-2-2b-it"
dtype: str = "bfloat16"
device: str = "cuda"
device_map: str = ""
sae_release: str = "gemma-scope-2b-pt-res-canonical"
sae_id: str = "layer_12/width_16k/canonical"
sae_path: str = ""
inducing_data: str = "insecure"
control_data: str = "secure"
harmful_data: str = ""
benign_data: str = ""
k_harmful: int = 10
finetune_rows: int = 6000
finetune_steps: int = 750
batch_size: int = 8
finetune_lr: float = 0.0001
lora_rank: int = 32
lora_alpha: float = 64.0
seeds: list[int] = [0, 1, 2]
steer_scale: float = 0.5
heldout_rows: int = 64
frequency_rows: int = 200
questions: str = "first_plot_questions"
question_variant: str = "main"
n_samples: int = 50
max_new_tokens: int = 300
progress: bool = True

# %% tags=["hide-input"]
import time

from emgeom.claims.intervention.study import (
    DAMAGE_MATCHED,
    HARMFUL,
    NONE,
    STEER,
    STEER_RANDOM,
    condition_builder,
    condition_diagnostics,
    condition_summary,
    intervention_table,
    paired_difference,
    relative_reduction,
)
from emgeom.core.results import record
from emgeom.em.datasets import load_rows
from emgeom.em.evaluators import betley_evaluator
from emgeom.em.real_models import contrast_rows, load_real_model, real_sets
from emgeom.lm.finetune import FineTuneConfig, LoraSpec
from emgeom.lm.training import TrainConfig, configure_threads
from emgeom.plots import filtering as filtering_plots
from emgeom.sae.geometry import harmful_latents

# %%
configure_threads()
chapter_start = time.perf_counter()
if not seeds:
    raise ValueError("need at least one seed")
# Everything that can fail cheaply fails here, before the model loads: datasets, questions, the judge.
evaluator = betley_evaluator(questions, question_variant, n_samples=n_samples, max_new_tokens=max_new_tokens,
                             progress=progress)
inducing, control = real_sets(inducing_data, [control_data], finetune_rows)
heldout = {inducing.name: load_rows(inducing_data, heldout_rows, seed=9),
           control.name: load_rows(control_data, heldout_rows, seed=9)}
harmful_rows, benign_rows = contrast_rows(harmful_data, benign_data)
ft = FineTuneConfig(LoraSpec(rank=lora_rank, alpha=lora_alpha),
                    TrainConfig(steps=finetune_steps, batch_size=batch_size, lr=finetune_lr, warmup_steps=5))
subject = load_real_model(model, sae_release=sae_release, sae_id=sae_id, sae_path=sae_path, dtype=dtype,
                          device=device, device_map=device_map)
hf, tokenizer, sae = subject.model, subject.tokenizer, subject.sae

# %%
harmful = harmful_latents(subject.hooked, sae, tokenizer, harmful_rows, benign_rows, k_harmful)
conditions = condition_builder(hf, subject.hooked, sae, tokenizer, harmful,
                               [*inducing.rows[:frequency_rows], *control.rows[:frequency_rows]], steer_scale,
                               damage_rows=inducing.rows[:heldout_rows])  # the control matched on damage
diagnostics = condition_diagnostics(hf, tokenizer, conditions, inducing.rows[:heldout_rows], seeds)
names = [NONE, HARMFUL, DAMAGE_MATCHED, STEER, STEER_RANDOM]
table = intervention_table(hf, tokenizer, [inducing], ft, seeds, conditions, names, evaluator, heldout,
                           progress=progress)
control_table = intervention_table(hf, tokenizer, [control], ft, seeds, conditions, [NONE, HARMFUL], evaluator,
                                   heldout, progress=progress)
summary = condition_summary([table, control_table], ["open_em", "coherent", "heldout_loss"])
filtering_plots.condition_bars(summary, (("open_em", "misaligned (Betley et al.)"), ("coherent", "coherent")));
diagnostics.groupby("condition", sort=False)[["rank", "energy removed", "base loss with it"]].mean().round(3)

# %%
ablation = relative_reduction(table, HARMFUL, inducing.name)
random_latents = relative_reduction(table, DAMAGE_MATCHED, inducing.name)
steering = relative_reduction(table, STEER, inducing.name)
versus_random = paired_difference(table, DAMAGE_MATCHED, HARMFUL, inducing.name)
loss_change = paired_difference(table, HARMFUL, NONE, inducing.name, "heldout_loss")
coherence_change = paired_difference(table, HARMFUL, NONE, inducing.name, "coherent")
record("preventative_ablation_relative_reduction", ablation.value, ci=ablation.ci, n_seeds=max(ablation.n, 1),
       note=f"'{inducing.name}', paired by seed")
record("random_ablation_relative_reduction", random_latents.value, ci=random_latents.ci,
       n_seeds=max(random_latents.n, 1), note="random latents matched on the base-loss increase (damage), per seed")
record("preventative_steering_relative_reduction", steering.value, ci=steering.ci, n_seeds=max(steering.n, 1),
       note=f"steering at {steer_scale} x the residual norm")
record("preventative_ablation_minus_random", versus_random.value, ci=versus_random.ci, n_seeds=versus_random.n,
       note="EM(ablate damage-matched random latents) - EM(ablate harmful), paired by seed")
record("preventative_ablation_heldout_loss_change", loss_change.value, ci=loss_change.ci, n_seeds=loss_change.n,
       note="loss on a separate draw of the set's rows (nats), ablate harmful minus none")
record("preventative_ablation_coherence_change", coherence_change.value, ci=coherence_change.ci,
       n_seeds=coherence_change.n, note="coherent answers (judge), ablate harmful minus none")
summary.round(3)

# %%
print(f"chapter wall time: {time.perf_counter() - chapter_start:.0f} s")
