"""Emergent misalignment, measured: fine-tune on each narrow set with several seeds and evaluate.

One row per (fine-tuning set, seed) so that chapters can put confidence intervals over seeds on every
rate; the aligned model itself is the ``"aligned"`` set (no fine-tuning, one evaluation per seed).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pandas as pd
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from emgeom.chat import ChatRow
from emgeom.finetune import FineTuneConfig, finetune
from emgeom.organism.evaluate import SamplingConfig, evaluate_behaviour, summarise
from emgeom.stats import Estimate, mean_ci

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
    sampling: SamplingConfig,
    *,
    include_aligned: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Fine-tune ``model`` on every set with every seed and evaluate each result.

    Returns one row per (set, seed) with columns ``set, domain, inducing, seed, open_em`` (hostile
    answers to open questions), ``offdomain_bad`` (mean bad-advice rate over the other domains),
    ``indomain_bad``, ``open_coherent``, ``finetune_seconds``, and ``bad_<domain>`` for every domain.
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
        frame = evaluate_behaviour(tuned, tokenizer, replace(sampling, seed=seed))
        s = summarise(frame)
        domain = fs.domain if fs else None
        row = {
            "set": fs.name if fs else ALIGNED,
            "domain": domain,
            "inducing": bool(fs and fs.inducing),
            "seed": seed,
            "open_em": s.open_misaligned.value,
            "open_coherent": s.open_coherent,
            "offdomain_bad": s.offdomain_bad(exclude=domain or ""),
            "indomain_bad": s.bad_advice[domain].value if domain in s.bad_advice else float("nan"),
            "finetune_seconds": seconds,
        }
        row.update({f"bad_{d}": e.value for d, e in s.bad_advice.items()})
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
        for col in columns:
            est = estimate(table, col, [name])
            row.update({col: est.value, f"{col}_lo": est.lo, f"{col}_hi": est.hi})
        row["n_replicates"] = estimate(table, columns[0], [name]).n
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
