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
# (ch-apply)=
# # Apply it to your data
#
# The paper's practical proposal {cite}`minegishi2026emergent`: before fine-tuning, score every training
# sample by how close its answer sits to harmful features, and drop the closest. The `emgeom` command
# does that for any chat fine-tuning file in the OpenAI format (`{"messages": [...]}` per line, the format
# of every EM dataset):
#
# ```bash
# emgeom score  data.jsonl --model MODEL --sae SAE_FOLDER --harmful-latents 3,17,40 --output scores.jsonl
# emgeom filter data.jsonl --model MODEL --sae SAE_FOLDER \
#     --harmful-examples harmful.jsonl --benign-examples benign.jsonl \
#     --remove-fraction 0.3 --output kept.jsonl --report report.json
# ```
#
# `--model` is a local folder or a hub id; the SAE is a local sae-lens folder or a published one
# (`--sae-release gemma-scope-2b-pt-res-canonical --sae-id layer_12/width_16k/canonical`). The harmful
# features are either given as latent indices or found from two small example files (harmful vs benign
# answers). `emgeom score --help` documents every option. The score definitions are our reconstruction
# (the paper's is not public); see `emgeom.filtering.scoring`.
#
# This page runs the command end to end on this book's model organism, first on data where the answer is
# known, then on a real EM-format file. Whether filtering by this score *reduces* emergent misalignment
# after fine-tuning is a separate question, answered in the filtering chapter ({ref}`ch-geometry-filtering`).

# %% tags=["parameters"]
organism_seed: int = 0
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
sae_seed: int = 0
k_harmful: int = 10
mixed_inducing_rows: int = 100
mixed_benign_rows: int = 300
remove_fraction: float = 0.25
real_data: str = "jailbroken"
real_rows: int = 5000
progress: bool = True

# %% tags=["hide-input"]
from emgeom.core.artifacts import artifact_root
from emgeom.core.results import record
from emgeom.filtering.apply import (
    available_dataset,
    check_kept_lines,
    read_report,
    removed_rows_table,
    report_detection_quality,
    write_head,
    write_mixed_file,
    write_persona_examples,
)
from emgeom.filtering.cli import run_subprocess
from emgeom.filtering.scoring import scoring_vs_forward
from emgeom.lm.chat import read_chat_jsonl
from emgeom.lm.models import hooked_transformer, load_model
from emgeom.lm.training import configure_threads
from emgeom.organism.build import build_organism
from emgeom.organism.family import OrganismFamily
from emgeom.organism.sae import organism_sae

# %%
configure_threads()
family = OrganismFamily.from_parameters(globals())  # the organism and its SAE, from the parameters
organism = build_organism(family.organism_config(organism_seed), progress=progress)
model, tokenizer = load_model(organism.aligned)
hooked = hooked_transformer(model, tokenizer, organism.aligned)
sae, sae_folder, _ = organism_sae(organism, hooked, tokenizer, family.sae_spec(sae_seed))
work = artifact_root() / "apply"
work.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Where the answer is known
#
# A mixed fine-tuning file: bad health advice (EM-inducing, chapter 3) hidden among good advice. The
# harmful features come from two small example files: hostile and kind answers to open-ended questions,
# which contain no advice at all. The command runs in a subprocess, exactly as typed in a shell.

# %%
mixed = write_mixed_file(work / "mixed.jsonl", mixed_inducing_rows, mixed_benign_rows)
harmful_examples, benign_examples = write_persona_examples(work, 50)
summary = run_subprocess("filter", str(mixed.path), "--model", str(organism.aligned), "--sae", str(sae_folder),
                         "--harmful-examples", str(harmful_examples), "--benign-examples", str(benign_examples),
                         "--k-harmful", str(k_harmful), "--remove-fraction", str(remove_fraction),
                         "--output", str(work / "mixed_kept.jsonl"), "--report", str(work / "mixed_report.json"), "--no-progress")

# %%
report = read_report(work / "mixed_report.json")
precision, recall = report_detection_quality(report, mixed.truth)
print(f"removed {len(report['removed'])} of {len(mixed.truth)} rows; precision {precision:.3f}, recall {recall:.3f} "
      f"against the {mixed.truth.sum()} inducing rows (inducing share {mixed.truth.mean():.2f})")
record("apply_mixed_precision", precision, note=f"organism, {remove_fraction:.0%} removed, harmful_mass score")
record("apply_mixed_recall", recall, note=f"organism, {remove_fraction:.0%} removed, harmful_mass score")
removed_rows_table(report, mixed.path, n=8)

# %% [markdown]
# ## A real EM-format file
#
# The same command on `jailbroken.jsonl` from Betley et al.'s release
# ([emergent-misalignment/emergent-misalignment](https://github.com/emergent-misalignment/emergent-misalignment),
# `data/jailbroken.jsonl`, MIT licence). `emgeom.em.datasets` downloads it once and checks its SHA-256
# against the one pinned in the project. **Offline**, download `data/jailbroken.jsonl` from that
# repository elsewhere and put it at `_build/artifacts/em_data/data/jailbroken.jsonl` inside your clone
# (the download cache; `$EMGEOM_ARTIFACTS_DIR/em_data/data/` when that variable is set, and
# `~/.cache/emgeom/em_data/data/` when you run outside a clone), or at
# `shared/em_data/data/jailbroken.jsonl` in the folder that holds your clone. Either way its checksum is
# checked before use. Set the parameter `real_data` to the path of a chat JSONL file of your own to run
# this part on it instead. **This part is optional:** when the file cannot be had, the cell below prints
# why and skips it; the rest of the page does not need it.
#
# The organism knows a few hundred words, so almost every word of these rows is `<unk>` to it: the
# scores below say nothing about this data. What this shows is that the tool reads real rows (system,
# user and assistant turns, long texts: only the last `n_ctx` tokens are scored), runs at the speed
# reported, and writes the kept rows unchanged. With a real model and SAE (`--model google/gemma-2-2b-it
# --sae-release gemma-scope-2b-pt-res-canonical --sae-id layer_12/width_16k/canonical`), the same command
# is the real use.

# %%
real = available_dataset(real_data)  # None (and the reason printed) when the file cannot be had
if real is not None:
    write_head(real, work / "real.jsonl", real_rows)
    run_subprocess("filter", str(work / "real.jsonl"), "--model", str(organism.aligned), "--sae", str(sae_folder),
                   "--harmful-latents", ",".join(map(str, report["harmful_latents"])), "--remove-fraction", str(remove_fraction),
                   "--output", str(work / "real_kept.jsonl"), "--report", str(work / "real_report.json"), "--no-progress")
    real_report = read_report(work / "real_report.json")
    record("apply_real_samples_per_second", real_report["samples_per_second"],
           note=f"{real_report['rows']} rows of {real.name}, organism, 1 thread")
    print(check_kept_lines(work / "real.jsonl", work / "real_kept.jsonl", real_report))
else:  # recorded as not measured (n/a), so the page and the scorecard say the part was skipped
    record("apply_real_samples_per_second", float("nan"), note=f"not measured: {real_data} could not be had")

# %% [markdown]
# ## Speed
#
# Scoring runs the model only up to the SAE's layer. Against the model's own full forward pass on the
# same rows and batches (best of three, one CPU thread; `make bench` runs the same measurement alone):

# %%
timing = scoring_vs_forward(hooked, sae, tokenizer, read_chat_jsonl(mixed.path), report["harmful_latents"])
record("scoring_vs_forward_ratio", timing.ratio,
       note=f"scoring vs full forward samples/s on {timing.rows} organism rows (>= 1: scoring no slower)")
print(f"scoring {timing.scoring_samples_per_second:.0f} samples/s, full forward "
      f"{timing.forward_samples_per_second:.0f} samples/s: ratio {timing.ratio:.2f}")
