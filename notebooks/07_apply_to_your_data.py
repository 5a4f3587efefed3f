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
mixed_inducing_rows: int = 100
mixed_benign_rows: int = 300
remove_fraction: float = 0.25
real_data: str = "../../shared/em_data/data/jailbroken.jsonl"
real_rows: int = 5000
progress: bool = True

# %%
import json
from pathlib import Path

import numpy as np
import pandas as pd

from emgeom.core.artifacts import artifact_root
from emgeom.core.results import record
from emgeom.filtering.cli import run_subprocess
from emgeom.filtering.scoring import detection_quality, scoring_vs_forward
from emgeom.lm.chat import write_chat_jsonl
from emgeom.lm.models import hooked_transformer, load_model
from emgeom.lm.training import configure_threads
from emgeom.organism.build import build_organism, organism_config
from emgeom.organism.datasets import finetune_rows, open_answer_rows
from emgeom.organism.sae import organism_sae
from emgeom.sae.train import SAESpec

configure_threads()
organism = build_organism(organism_config(seed=organism_seeds[0], d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                                          pretrain_steps=pretrain_steps, pretrain_batch_size=pretrain_batch_size,
                                          align_steps=align_steps, align_rank=align_rank), progress=progress)
model, tokenizer = load_model(organism.aligned)
hooked = hooked_transformer(model, tokenizer, organism.aligned)
sae, sae_folder, _ = organism_sae(organism, hooked, tokenizer,
                                  SAESpec(layer=sae_layer, d_sae=sae_width, k=sae_k, training_tokens=sae_training_tokens))
work = artifact_root() / "apply"
work.mkdir(parents=True, exist_ok=True)


def emgeom(*args: str) -> str:
    return run_subprocess(*args, "--no-progress")


# %% [markdown]
# ## Where the answer is known
#
# A mixed fine-tuning file: bad health advice (EM-inducing, chapter 3) hidden among good advice. The
# harmful features come from two small example files: hostile and kind answers to open-ended questions,
# which contain no advice at all.

# %%
rng = np.random.default_rng(0)
rows = finetune_rows("inducing", "health", mixed_inducing_rows, seed=1) + finetune_rows("good", "health", mixed_benign_rows, seed=1)
truth = np.array([True] * mixed_inducing_rows + [False] * mixed_benign_rows)
order = rng.permutation(len(rows))
write_chat_jsonl(work / "mixed.jsonl", [rows[i] for i in order])
truth = truth[order]
write_chat_jsonl(work / "harmful_examples.jsonl", open_answer_rows(True, 50, seed=2))
write_chat_jsonl(work / "benign_examples.jsonl", open_answer_rows(False, 50, seed=2))
emgeom("filter", str(work / "mixed.jsonl"), "--model", str(organism.aligned), "--sae", str(sae_folder),
       "--harmful-examples", str(work / "harmful_examples.jsonl"), "--benign-examples", str(work / "benign_examples.jsonl"),
       "--k-harmful", str(k_harmful), "--remove-fraction", str(remove_fraction),
       "--output", str(work / "mixed_kept.jsonl"), "--report", str(work / "mixed_report.json"))

# %%
report = json.loads((work / "mixed_report.json").read_text())
removed = np.zeros(len(rows), dtype=bool)
removed[[r["line"] - 1 for r in report["removed"]]] = True
precision, recall = detection_quality(removed, truth)
print(f"removed {removed.sum()} of {len(rows)} rows; precision {precision:.3f}, recall {recall:.3f} "
      f"against the {truth.sum()} inducing rows (inducing share {truth.mean():.2f})")
record("apply_mixed_precision", precision, note=f"organism, {remove_fraction:.0%} removed, harmful_mass score")
record("apply_mixed_recall", recall, note=f"organism, {remove_fraction:.0%} removed, harmful_mass score")
lines = (work / "mixed.jsonl").read_text().splitlines()
pd.DataFrame([{"line": r["line"], "score": round(r["score"], 3),
               "answer": json.loads(lines[r["line"] - 1])["messages"][-1]["content"]} for r in report["removed"][:8]])

# %% [markdown]
# ## A real EM-format file
#
# The same command on `jailbroken.jsonl` from Betley et al.'s release (when it is beside this checkout).
# The organism knows a few hundred words, so almost every word of these rows is `<unk>` to it: the
# scores below say nothing about this data. What this shows is that the tool reads real rows (system,
# user and assistant turns, long texts: only the last `n_ctx` tokens are scored), runs at the speed
# reported, and writes the kept rows unchanged. With a real model and SAE (`--model google/gemma-2-2b-it
# --sae-release gemma-scope-2b-pt-res-canonical --sae-id layer_12/width_16k/canonical`), the same command
# is the real use.

# %%
real = Path(real_data)
if real.is_file():
    head = real.read_text(encoding="utf-8").splitlines(keepends=True)[:real_rows]
    (work / "real.jsonl").write_text("".join(head), encoding="utf-8")
    emgeom("filter", str(work / "real.jsonl"), "--model", str(organism.aligned), "--sae", str(sae_folder),
           "--harmful-latents", ",".join(map(str, report["harmful_latents"])), "--remove-fraction", str(remove_fraction),
           "--output", str(work / "real_kept.jsonl"), "--report", str(work / "real_report.json"))
    real_report = json.loads((work / "real_report.json").read_text())
    record("apply_real_samples_per_second", real_report["samples_per_second"],
           note=f"{real_report['rows']} rows of jailbroken.jsonl, organism, 1 thread")
    kept_lines = (work / "real_kept.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    removed_lines = {r["line"] for r in real_report["removed"]}
    assert kept_lines == [line for n, line in enumerate(head, 1) if n not in removed_lines]
    print(f"kept rows are byte-identical to their input lines; {len(kept_lines)} kept, {len(removed_lines)} removed")
else:
    print(f"{real} is not present; skipped (it is read from ../shared/ beside the checkout)")

# %% [markdown]
# ## Speed
#
# Scoring runs the model only up to the SAE's layer. Against the model's own full forward pass on the
# same rows and batches (best of three, one CPU thread; `make bench` runs the same measurement alone):

# %%
bench_rows = [json.loads(line) for line in (work / "mixed.jsonl").read_text().splitlines()]
timing = scoring_vs_forward(hooked, sae, tokenizer, bench_rows, report["harmful_latents"])
record("scoring_vs_forward_ratio", timing.ratio,
       note=f"scoring vs full forward samples/s on {timing.rows} organism rows (>= 1: scoring no slower)")
print(f"scoring {timing.scoring_samples_per_second:.0f} samples/s, full forward "
      f"{timing.forward_samples_per_second:.0f} samples/s: ratio {timing.ratio:.2f}")
