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
# (ch-sae-geometry)=
# # 4. SAE geometry (real model)
#
# *This is the real-model variant of the chapter, executed by the `gemma-2-2b` and `llama-3.1-8b`
# profiles (see {doc}`../book/full_scale`); the default build shows the same chapter on the model
# organism.* The question is the paper's: are the SAE latents that EM-inducing data activate closer,
# in decoder direction, to harmful latents than the latents of matched non-inducing data?
#
# What is reconstructed, since the paper's method is not public (see the organism variant for the
# reasoning): the latents of a set are the `k` latents whose mean activation over the set's assistant
# answers most exceeds that of the paired set; harmful latents are the `k_harmful` latents that most
# separate harmful-persona answers from benign ones; closeness is the mean over a set's latents of the
# highest cosine to any harmful latent. Two things differ from the organism:
#
# - **Data.** Each domain is a pair of chat datasets `[inducing, non-inducing]`, by default Betley et
#   al.'s `insecure` and `secure` code sets. The harmful/benign contrast is the book's own small persona
#   set (`emgeom/data/persona_contrast.yaml`) unless `harmful_data` / `benign_data` name others.
# - **Replicates.** There is one published SAE, so the interval is over *data subsamples*
#   (`data_seeds`): each draws `rows_per_set` rows of every set afresh. It says how much the gap
#   depends on which rows were drawn, not how it varies across SAE trainings.

# %% tags=["parameters"]
model: str = "google/gemma-2-2b-it"
dtype: str = "bfloat16"
device: str = "cuda"
device_map: str = ""
sae_release: str = "gemma-scope-2b-pt-res-canonical"
sae_id: str = "layer_12/width_16k/canonical"
sae_path: str = ""
domains: dict[str, list[str]] = {"code": ["insecure", "secure"]}
harmful_data: str = ""
benign_data: str = ""
rows_per_set: int = 500
data_seeds: list[int] = [0, 1, 2]
k: int = 10
k_harmful: int = 10
selection_rule: str = "symmetric"
n_permutations: int = 5000
n_row_permutations: int = 1000
n_random_draws: int = 1000
quality_rows: int = 64
context_size: int = 256
progress: bool = True

# %% tags=["hide-input"]
import time

import pandas as pd

from emgeom.claims.geometry.evidence import data_level_tests, record_data_level_tests
from emgeom.claims.geometry.real_models import real_runs
from emgeom.claims.geometry.study import (
    GeometryConfig,
    describe_gaps,
    examples_table,
    geometry_over_runs,
    record_gaps,
    summarise_gaps,
)
from emgeom.core.results import record
from emgeom.em.real_models import contrast_rows, load_real_model, sae_quality_rows, sample_domains
from emgeom.lm.training import configure_threads
from emgeom.plots import geometry as geometry_plots
from emgeom.sae.quality import sae_quality, scoring_batch

# %%
configure_threads()
chapter_start = time.perf_counter()
geometry = GeometryConfig(k=k, k_harmful=k_harmful, rule=selection_rule, n_perm=n_permutations)  # type: ignore[arg-type]
if not data_seeds or not domains:
    raise ValueError("need at least one data seed and one domain")
harmful_rows, benign_rows = contrast_rows(harmful_data, benign_data)
samples = sample_domains(domains, rows_per_set, data_seeds)  # reads every dataset first
subject = load_real_model(model, sae_release=sae_release, sae_id=sae_id, sae_path=sae_path, dtype=dtype,
                          device=device, device_map=device_map)
sae = subject.sae
print(f"{model}: {subject.hooked.cfg.n_layers} blocks, d_model {subject.hooked.cfg.d_model}; SAE "
      f"{sae_path or f'{sae_release}/{sae_id}'} ({type(sae).__name__}, {sae.cfg.d_sae} latents at "
      f"{sae.cfg.metadata.hook_name}); {len(harmful_rows)} harmful / {len(benign_rows)} benign contrast rows")

# %% [markdown]
# ## The SAE on this data
#
# Reconstruction quality on rows of the datasets themselves (the chat template included), as in the
# organism chapter: fraction of variance unexplained, active latents per token, and the language-model
# loss with the SAE spliced in.

# %%
held_out = sae_quality_rows(samples[data_seeds[0]], quality_rows)
tokens, mask = scoring_batch(subject.tokenizer, held_out, context_size)
q = sae_quality(subject.hooked, sae, tokens.to(subject.hooked.cfg.device), mask.to(subject.hooked.cfg.device))
record("sae_fvu", q.fvu, note=f"fraction of variance unexplained on {len(held_out)} dataset rows")
record("sae_l0", q.l0, note="active latents per token")
pd.DataFrame([q.table_row()]).round(4)

# %% [markdown]
# ## Inducing, non-inducing and harmful latents

# %%
runs = real_runs(subject, samples)
results, table = geometry_over_runs(runs, harmful_rows, benign_rows, geometry, progress=progress)
summary = summarise_gaps(table, geometry)
geometry_plots.similarity_distributions(table, list(domains));

# %%
examples_table(next(iter(results.values())), list(domains), n=2, max_chars=300)

# %% [markdown]
# ## The gap

# %%
geometry_plots.gap_by_domain(summary);

# %%
record_gaps(summary, interval="data subsamples")
# Rows permuted between the two sets with the selection redone (chapter 4's test at the level of the claim)
evidence = data_level_tests(runs, results, geometry, n_row_permutations, n_random_draws)
record_data_level_tests(evidence, n_row_permutations, n_random_draws, len(runs))
print(describe_gaps(summary, evidence))
summary[["domain", "gap", "gap_lo", "gap_hi", "p", "gap_excl_shared", "p_excl_shared", "inducing", "noninducing",
         "random", "shared_inducing_per_sae"]].round(3)

# %% [markdown]
# The numbers above are this run's. Whether the paper's claim holds on this model is read from the
# interval and the permutation p-value, with and without the latents the sets share with the harmful
# set; a gap carried only by shared latents says the inducing data *activates harmful latents*, a
# stronger and different statement from "its features lie near them".

# %%
print(f"chapter wall time: {time.perf_counter() - chapter_start:.0f} s")
