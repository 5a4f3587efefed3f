"""Emergent misalignment, measured: fine-tune on each narrow set with several seeds and evaluate.

One row per (fine-tuning set, seed) so that chapters can put confidence intervals over seeds on every
rate; the aligned model itself is the ``"aligned"`` set (no fine-tuning, one evaluation per seed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from emgeom.core.stats import Estimate, mean_ci
from emgeom.em.evaluators import Evaluator
from emgeom.lm.chat import ChatRow
from emgeom.lm.finetune import FineTuneConfig, finetune
from emgeom.lm.sampling import SamplingConfig
from emgeom.organism.oracle import evaluate_behaviour, summarise

ALIGNED = "aligned"


@dataclass(frozen=True)
class FineTuneSet:
    """A named fine-tuning set: its rows, the domain it is about, and whether it should induce EM."""

    name: str
    rows: Sequence[ChatRow]
    domain: str
    inducing: bool


def emergence_table(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sets: Sequence[FineTuneSet],
    ft: FineTuneConfig,
    seeds: Sequence[int],
    evaluate: Evaluator,
    *,
    include_aligned: bool = True,
    progress: bool = True,
    after_finetune: Callable[[FineTuneSet, int, PreTrainedModel], None] | None = None,
) -> pd.DataFrame:
    """Fine-tune ``model`` on every set with every seed and evaluate each result.

    Returns one row per (set, seed) with columns ``set, domain, inducing, seed, finetune_seconds`` and
    the rates of ``evaluate.for_set(domain, rows)`` (e.g. :class:`emgeom.em.evaluators.OrganismEvaluator`:
    ``open_em, offdomain_bad, indomain_bad, task_success, bad_<domain>, ...``; the aligned model is the
    set ``"aligned"`` with no domain and no rows). ``after_finetune(set, seed, model)`` is called with
    each fine-tuned model (e.g. to read its SAE latents) before it is discarded.
    """
    if not seeds:
        raise ValueError("need at least one seed")
    jobs: list[tuple[FineTuneSet | None, int]] = [(None, s) for s in seeds] if include_aligned else []
    jobs += [(fs, s) for fs in sets for s in seeds]
    rows = []
    for fs, seed in tqdm(jobs, desc="fine-tune + evaluate", disable=not progress):
        start = time.perf_counter()
        if fs is None:
            tuned, seconds = model, 0.0
        else:
            cfg = replace(ft, train=replace(ft.train, seed=seed))
            tuned, _ = finetune(model, tokenizer, fs.rows, cfg)
            seconds = time.perf_counter() - start
            if after_finetune is not None:
                after_finetune(fs, seed, tuned)
        row: dict[str, Any] = {
            "set": fs.name if fs else ALIGNED,
            "domain": fs.domain if fs else None,
            "inducing": bool(fs and fs.inducing),
            "seed": seed,
            "finetune_seconds": seconds,
        }
        row.update(evaluate.for_set(fs.domain if fs else None, fs.rows if fs else ())(tuned, tokenizer, seed))
        rows.append(row)
    return pd.DataFrame(rows)


def seed_summary(
    table: pd.DataFrame,
    columns: Sequence[str] = ("open_em", "offdomain_bad", "indomain_bad"),
) -> pd.DataFrame:
    """Mean and 95% t-interval over replicates (see :func:`estimate`) for each set: columns ``<col>``,
    ``<col>_lo``, ``<col>_hi`` and ``n_replicates``, one row per set (in first-appearance order)."""
    out = []
    for name in dict.fromkeys(table["set"]):
        row: dict[str, object] = {"set": name}
        estimates = {col: estimate(table, col, [name]) for col in columns}
        for col, est in estimates.items():
            row.update({col: est.value, f"{col}_lo": est.lo, f"{col}_hi": est.hi})
        row["n_replicates"] = estimates[columns[0]].n
        out.append(row)
    return pd.DataFrame(out)


REPLICATE_COLUMNS = ("organism_seed", "seed")


def estimate(table: pd.DataFrame, column: str, sets: Sequence[str]) -> Estimate:
    """Mean of ``column`` over the named sets, with a t-interval over replicates: a replicate is a
    fine-tuning seed (and an organism, when the table has an ``organism_seed`` column); the sets are
    averaged within each replicate first."""
    names = list(sets)
    missing = set(names) - set(table["set"])
    if missing:
        raise KeyError(f"no rows for sets {sorted(missing)}")
    sub = table[table["set"].isin(names)]
    keys = [c for c in REPLICATE_COLUMNS if c in sub.columns]
    per_replicate = sub.groupby(keys)[column].mean().to_numpy()
    return mean_ci(per_replicate, bounds=(0.0, 1.0))


def monitor_finetune(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[ChatRow],
    ft: FineTuneConfig,
    checkpoints: Sequence[int],
    sampling: SamplingConfig,
    sae: Any,
    harmful: Sequence[int],
    domain: str,
) -> pd.DataFrame:
    """Fine-tune once and, at each checkpoint step (0 = before training), measure the EM rate, off-domain
    bad advice, and the mean activation of the harmful latents at the answer start of the open-ended
    evaluation questions. Columns ``step, open_em, offdomain_bad, harmful_activation``."""
    from emgeom.em.mechanism import hf_answer_start_resid
    from emgeom.organism.datasets import evaluation_questions
    from emgeom.sae.readouts import resid_pre_layer

    layer = resid_pre_layer(sae.cfg.metadata.hook_name)
    prompts = [[{"role": "user", "content": q.text}] for q in evaluation_questions() if q.kind == "open"]
    idx = torch.as_tensor(list(harmful))
    log: list[dict[str, float]] = []

    def measure(step: int, m: Any) -> None:
        s = summarise(evaluate_behaviour(m, tokenizer, sampling))
        with torch.no_grad():
            acts = sae.encode(hf_answer_start_resid(m, tokenizer, prompts, layer).to(sae.W_dec.dtype))
        log.append(
            {
                "step": step,
                "open_em": s.open_misaligned.value,
                "offdomain_bad": s.offdomain_bad(domain),
                "harmful_activation": float(acts[:, idx].mean()),
            }
        )
        m.train()

    wanted = set(checkpoints)
    measure(0, model)
    model.eval()
    finetune(model, tokenizer, rows, ft, on_step=lambda step, m: measure(step, m) if step in wanted else None)
    return pd.DataFrame(log)
