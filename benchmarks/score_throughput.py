"""Benchmark: per-sample scoring throughput against the model's own full forward pass on the same rows.

    .venv/bin/python benchmarks/score_throughput.py [--rows 2000] [--batch-size 32] [--repeats 3]

Scoring stops at the SAE's layer and encodes only that activation, so it should be no slower than one
full forward pass (ratio >= 1). Both are timed on the same rows, batches and thread count, best of
``--repeats``; the result is printed and written to ``_build/benchmarks/score_throughput.json``.
Uses the default organism and its first SAE (built and cached if missing); the rows are Betley et al.'s
jailbroken.jsonl (real EM-format data; downloaded and checksum-verified by ``emgeom.em.datasets``, or its
local copy) when it can be had, else the organism's own fine-tuning rows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from emgeom.core.io import atomic_write_json
from emgeom.filtering.apply import available_dataset
from emgeom.filtering.scoring import scoring_vs_forward
from emgeom.lm.chat import read_chat_jsonl
from emgeom.lm.models import hooked_transformer, load_model
from emgeom.organism.build import build_organism, organism_config
from emgeom.organism.datasets import finetune_rows
from emgeom.organism.sae import organism_sae
from emgeom.sae.train import SAESpec

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000, help="rows to score (default 2000)")
    parser.add_argument("--batch-size", type=int, default=32, help="rows per forward pass (default 32)")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats; the best is kept (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    organism = build_organism(organism_config())
    model, tokenizer = load_model(organism.aligned)
    hooked = hooked_transformer(model, tokenizer, organism.aligned)
    sae, _, _ = organism_sae(organism, hooked, tokenizer, SAESpec(layer=2, training_tokens=400_000, seed=0))
    real = available_dataset("jailbroken")  # None (the reason printed) offline without a local copy
    source = real.name if real is not None else "organism fine-tuning rows"
    rows = read_chat_jsonl(real) if real is not None else finetune_rows("inducing", "health", args.rows, 0)
    rows = rows[: args.rows]
    timing = scoring_vs_forward(hooked, sae, tokenizer, rows, list(range(10)), args.batch_size, args.repeats)
    result = {
        "rows": timing.rows,
        "source": source,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "model_layers": int(hooked.cfg.n_layers),
        "sae_layer": 2,
        "scoring_samples_per_second": timing.scoring_samples_per_second,
        "full_forward_samples_per_second": timing.forward_samples_per_second,
        "ratio_scoring_over_full_forward": timing.ratio,
    }
    atomic_write_json(ROOT / "_build" / "benchmarks" / "score_throughput.json", result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
