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
noninducing_rule: str = "reverse"
n_permutations: int = 5000
quality_rows: int = 64
context_size: int = 256
progress: bool = True

# %%
import time

import pandas as pd

from emgeom.core.results import record
from emgeom.em.geometry_study import (
    DomainData,
    GeometryConfig,
    describe_gaps,
    geometry_for_sae,
    summarise_gaps,
    top_examples,
)
from emgeom.em.real_models import contrast_rows, domain_rows, load_real_model
from emgeom.lm.training import configure_threads
from emgeom.plots import geometry as geometry_plots
from emgeom.sae.quality import sae_quality, scoring_batch

configure_threads()
chapter_start = time.perf_counter()
geometry = GeometryConfig(k=k, k_harmful=k_harmful, rule=noninducing_rule, n_perm=n_permutations)  # type: ignore[arg-type]
if not data_seeds or not domains:
    raise ValueError("need at least one data seed and one domain")
harmful_rows, benign_rows = contrast_rows(harmful_data, benign_data)
samples = {s: domain_rows(domains, rows_per_set, seed=s) for s in data_seeds}  # reads every dataset first
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
held_out = [r for pair in samples[data_seeds[0]].values() for rows in pair for r in rows[:quality_rows // 2]]
tokens, mask = scoring_batch(subject.tokenizer, held_out[:quality_rows], context_size)
q = sae_quality(subject.hooked, sae, tokens.to(subject.hooked.cfg.device), mask.to(subject.hooked.cfg.device))
record("sae_fvu", q.fvu, note=f"fraction of variance unexplained on {len(held_out[:quality_rows])} dataset rows")
record("sae_l0", q.l0, note="active latents per token")
pd.DataFrame([{"L0": q.l0, "FVU": q.fvu, "dead latents": q.dead_fraction, "loss clean": q.ce_clean,
               "loss with SAE": q.ce_spliced, "loss zero-ablated": q.ce_zero, "loss recovered": q.ce_recovered}]).round(4)

# %% [markdown]
# ## Inducing, non-inducing and harmful latents

# %%
results = {s: geometry_for_sae(subject.hooked, sae, subject.tokenizer,
                               {d: DomainData(*pair) for d, pair in samples[s].items()}, harmful_rows, benign_rows,
                               geometry, sae_label=f"data seed {s}", progress=progress) for s in data_seeds}
table = pd.DataFrame([r for geo in results.values() for r in geo.records])
summary = summarise_gaps(table, geometry)
geometry_plots.similarity_distributions(table, list(domains));

# %%
geo = results[data_seeds[0]]
examples = []
for d in domains:
    sets = geo.sets[d]
    for name, latents in (("inducing", sets.inducing), ("non-inducing", sets.noninducing), ("harmful", sets.harmful)):
        examples += [{"domain": d, "set": name, "mean activation": round(score, 3), "example": text[:300]}
                     for score, text in top_examples(geo, [f"{d}/inducing", f"{d}/non-inducing", "harmful", "benign"],
                                                     latents, n=2)]
pd.DataFrame(examples)

# %% [markdown]
# ## The gap

# %%
geometry_plots.gap_by_domain(summary);

# %%
n_reps = int(summary["n_saes"].iloc[0])
for _, row in summary.iterrows():
    d = row["domain"]
    record(f"similarity_gap_{d}", row["gap"], ci=(row["gap_lo"], row["gap_hi"]), n_seeds=n_reps,
           note=f"mean max-cosine to harmful latents, inducing minus non-inducing ({d}); CI over data subsamples")
    record(f"similarity_gap_pvalue_{d}", row["p"], n_seeds=n_reps, note="one-sided stratified permutation test")
    record(f"similarity_gap_excl_shared_{d}", row["gap_excl_shared"],
           ci=(row["gap_excl_shared_lo"], row["gap_excl_shared_hi"]), n_seeds=n_reps,
           note=f"the same gap without latents shared with the harmful set (p={row['p_excl_shared']:.3g})")
print(describe_gaps(summary))
summary[["domain", "gap", "gap_lo", "gap_hi", "p", "gap_excl_shared", "p_excl_shared", "inducing", "noninducing",
         "random", "shared_inducing_per_sae"]].round(3)

# %% [markdown]
# The numbers above are this run's. Whether the paper's claim holds on this model is read from the
# interval and the permutation p-value, with and without the latents the sets share with the harmful
# set; a gap carried only by shared latents says the inducing data *activates harmful latents*, a
# stronger and different statement from "its features lie near them".

# %%
print(f"chapter wall time: {time.perf_counter() - chapter_start:.0f} s")
