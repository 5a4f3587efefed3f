"""Emergent misalignment, measured: fine-tune on each narrow set with several seeds and evaluate.

One row per (fine-tuning set, seed) so that chapters can put confidence intervals over seeds on every
rate; the aligned model itself is the ``"aligned"`` set (no fine-tuning, one evaluation per seed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
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
from emgeom.lm.models import load_model
from emgeom.lm.sampling import SamplingConfig
from emgeom.organism.build import Organism
from emgeom.organism.datasets import finetune_rows
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


def organism_sets(
    inducing_domains: Sequence[str],
    control_domain: str,
    n_rows: int,
    control_kinds: Sequence[str] = ("good", "terse", "quiz"),
    seed: int = 0,
) -> list[FineTuneSet]:
    """The organism's fine-tuning sets: ``inducing <d>`` (bad advice) for every domain in
    ``inducing_domains``, then the controls ``<kind> <control_domain>``, ``n_rows`` rows each."""
    sets = [
        FineTuneSet(f"inducing {d}", finetune_rows("inducing", d, n_rows, seed=seed), d, inducing=True)
        for d in inducing_domains
    ]
    sets += [
        FineTuneSet(
            f"{kind} {control_domain}",
            finetune_rows(kind, control_domain, n_rows, seed=seed),  # type: ignore[arg-type]
            control_domain,
            inducing=False,
        )
        for kind in control_kinds
    ]
    return sets


def inducing_set(sets: Sequence[FineTuneSet], domain: str) -> FineTuneSet:
    """The inducing set of ``domain``."""
    for fs in sets:
        if fs.inducing and fs.domain == domain:
            return fs
    raise KeyError(f"no inducing set for domain {domain!r} among {[fs.name for fs in sets]}")


def emergence_over_organisms(
    organisms: Mapping[int, Organism],
    sets: Sequence[FineTuneSet],
    ft: FineTuneConfig,
    seeds: Sequence[int],
    evaluate: Evaluator,
    progress: bool = True,
) -> pd.DataFrame:
    """:func:`emergence_table` of every organism's aligned model, with an ``organism_seed`` column (so
    :func:`estimate` treats (organism, fine-tuning seed) as the replicate)."""
    tables = [
        emergence_table(*load_model(o.aligned), sets, ft, seeds, evaluate, progress=progress).assign(
            organism_seed=s
        )
        for s, o in organisms.items()
    ]
    return pd.concat(tables, ignore_index=True)


@dataclass(frozen=True)
class EmergenceHeadline:
    """Chapter 3's headline: open-question EM of the aligned model and after the inducing sets, their
    off-domain bad advice, and each control's open EM (``worst_control`` has the highest)."""

    aligned: Estimate
    inducing_open: Estimate
    inducing_offdomain: Estimate
    controls: dict[str, Estimate]
    worst_control: str

    def table(self) -> pd.DataFrame:
        """The estimates as rows ``quantity, value, lo, hi, n``."""
        items = {
            "aligned, open EM": self.aligned,
            "inducing, open EM": self.inducing_open,
            "inducing, bad advice in other domains": self.inducing_offdomain,
        } | {f"{name}, open EM": e for name, e in self.controls.items()}
        return pd.DataFrame(
            [{"quantity": q, "value": e.value, "lo": e.lo, "hi": e.hi, "n": e.n} for q, e in items.items()]
        )


def emergence_headline(table: pd.DataFrame, sets: Sequence[FineTuneSet]) -> EmergenceHeadline:
    """The headline estimates of an emergence table (intervals over replicates, see :func:`estimate`)."""
    inducing = [fs.name for fs in sets if fs.inducing]
    controls = {fs.name: estimate(table, "open_em", [fs.name]) for fs in sets if not fs.inducing}
    if not inducing or not controls:
        raise ValueError("the headline needs at least one inducing set and one control")
    return EmergenceHeadline(
        aligned=estimate(table, "open_em", [ALIGNED]),
        inducing_open=estimate(table, "open_em", inducing),
        inducing_offdomain=estimate(table, "offdomain_bad", inducing),
        controls=controls,
        worst_control=max(controls, key=lambda c: controls[c].value),
    )


def set_names(sets: Sequence[FineTuneSet]) -> str:
    """The sets' names, comma-separated (for a line of text)."""
    return ", ".join(fs.name for fs in sets)


def set_slug(name: str) -> str:
    """A set's name as it appears in result names (``inducing health`` -> ``inducing_health``)."""
    return name.replace(" ", "_")


def estimates_by_set(
    table: pd.DataFrame, column: str, sets: Sequence[FineTuneSet] | None = None
) -> dict[str, Estimate]:
    """:func:`estimate` of ``column`` for each set alone (default: every set in the table, the aligned
    model included, in table order), keyed by :func:`set_slug` of its name."""
    names = list(dict.fromkeys(table["set"])) if sets is None else [fs.name for fs in sets]
    return {set_slug(n): estimate(table, column, [n]) for n in names}


def estimate_sets(table: pd.DataFrame, column: str, sets: Sequence[FineTuneSet], inducing: bool) -> Estimate:
    """:func:`estimate` of ``column`` over the inducing sets (``inducing=True``) or over the controls."""
    return estimate(table, column, [fs.name for fs in sets if fs.inducing == inducing])


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
    """Mean of ``column`` over the named sets, with a t-interval over replicates. The sets are averaged
    within each run (organism, fine-tuning seed) first; when the table holds several organisms
    (``organism_seed``), the runs of an organism are averaged and the interval is over organisms (seeds
    nested in their organism, not pooled as independent); otherwise it is over fine-tuning seeds."""
    names = list(sets)
    missing = set(names) - set(table["set"])
    if missing:
        raise KeyError(f"no rows for sets {sorted(missing)}")
    sub = table[table["set"].isin(names)]
    keys = [c for c in REPLICATE_COLUMNS if c in sub.columns]
    per_run = sub.groupby(keys)[column].mean()
    if "organism_seed" in keys and sub["organism_seed"].nunique() > 1:
        per_run = per_run.groupby(level="organism_seed").mean()
    return mean_ci(per_run.to_numpy(), bounds=(0.0, 1.0))


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
    from emgeom.organism.datasets import evaluation_questions
    from emgeom.sae.readouts import hf_answer_start_resid, resid_pre_layer

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
