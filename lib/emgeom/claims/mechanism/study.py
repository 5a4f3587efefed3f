"""Chapter 5's mechanism study, for the organism and for real models alike.

The steps: the target latent of each inducing domain and the harmful latents of each SAE; a read-out of
the SAE at the answer start of the evaluation prompts, before and after each inducing fine-tune (in the
full fine-tune, through :class:`MechanismRecorder` as ``emergence_table``'s ``after_finetune`` hook, and
in the first-order regime, :func:`first_order_mechanism`); then the per-domain table, the estimates over
seeds, and whether a set's closeness to harmful latents predicts its EM (:func:`similarity_vs_em`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emgeom.claims.mechanism.measurement import (
    MechanismResult,
    measure_mechanism,
    target_latent,
)
from emgeom.core.stats import Estimate, bootstrap_pearson, mean_ci, pearson_r
from emgeom.em.emergence import FineTuneSet
from emgeom.lm.chat import ChatRow, Message
from emgeom.lm.finetune import FineTuneConfig, finetune
from emgeom.lm.models import hooked_transformer
from emgeom.organism.datasets import finetune_rows
from emgeom.sae.geometry import harmful_latents, set_similarities
from emgeom.sae.readouts import (
    PromptReadout,
    answer_start_readout,
    hf_answer_start_readout,
)

Reader = Callable[[Any], PromptReadout]
Bounds = tuple[float, float] | None
MechanismResults = dict[tuple[str, int], MechanismResult]  # (domain, fine-tuning seed) -> result


@dataclass(frozen=True)
class TLAnswerStartReader:
    """Reads ``sae`` at the answer start of ``prompts`` through a TransformerLens view of a (fine-tuned)
    Hugging Face model whose weights load like the model in ``folder`` (the organism)."""

    tokenizer: Any
    sae: Any
    prompts: Sequence[Sequence[Message]]
    folder: str | Path

    def __call__(self, model: Any) -> PromptReadout:
        hooked = hooked_transformer(model, self.tokenizer, self.folder)
        return answer_start_readout(hooked, self.sae, self.tokenizer, self.prompts)


@dataclass(frozen=True)
class HFAnswerStartReader:
    """Reads ``sae`` at the answer start of ``prompts`` from the Hugging Face model's hidden states (no
    second copy of the weights: what a real model needs)."""

    tokenizer: Any
    sae: Any
    prompts: Sequence[Sequence[Message]]

    def __call__(self, model: Any) -> PromptReadout:
        return hf_answer_start_readout(model, self.tokenizer, self.sae, self.prompts)


@dataclass
class MechanismRecorder:
    """Called as ``recorder(set, seed, tuned_model)`` after each fine-tune (``emergence_table``'s
    ``after_finetune``): for an inducing set, reads the tuned model and stores
    :func:`~emgeom.claims.mechanism.measurement.measure_mechanism` against the base read-out in
    ``results[(domain, seed)]``."""

    reader: Reader
    base: PromptReadout
    sae: Any
    targets: Mapping[str, int]
    harmful: np.ndarray
    results: MechanismResults = field(default_factory=dict)

    def __call__(self, fs: FineTuneSet, seed: int, tuned: Any) -> None:
        if fs.inducing:
            self.results[(fs.domain, seed)] = measure_mechanism(
                self.base, self.reader(tuned), self.sae, self.targets[fs.domain], self.harmful, seed=seed
            )


def first_order_mechanism(
    model: Any,
    tokenizer: Any,
    sets: Sequence[FineTuneSet],
    ft: FineTuneConfig,
    seeds: Sequence[int],
    recorder: MechanismRecorder,
) -> MechanismResults:
    """Fine-tune on every inducing set with every seed under ``ft`` (the first-order regime: few steps,
    a small learning rate) and record the mechanism of each; returns ``recorder.results``."""
    for fs in sets:
        if not fs.inducing:
            continue
        for seed in seeds:
            tuned, _ = finetune(model, tokenizer, fs.rows, replace(ft, train=replace(ft.train, seed=seed)))
            recorder(fs, seed, tuned)
            del tuned
    return recorder.results


def organism_targets(
    hooked: Any, sae: Any, tokenizer: Any, domains: Sequence[str], n_rows: int = 200
) -> dict[str, int]:
    """The target latent of each domain: the top latent of its inducing set minus its good-advice set
    (chapter 4's rule), on ``n_rows`` rows of each."""
    return {
        d: target_latent(
            hooked,
            sae,
            tokenizer,
            finetune_rows("inducing", d, n_rows, seed=0),
            finetune_rows("good", d, n_rows, seed=0),
        )
        for d in domains
    }


def organism_targets_per_sae(
    hooked: Any, saes: Sequence[Any], tokenizer: Any, domains: Sequence[str], n_rows: int = 200
) -> list[dict[str, int]]:
    """:func:`organism_targets` with each SAE."""
    return [organism_targets(hooked, sae, tokenizer, domains, n_rows) for sae in saes]


def paired_target(
    hooked: Any, sae: Any, tokenizer: Any, inducing: FineTuneSet, paired: FineTuneSet, n_rows: int = 200
) -> dict[str, int]:
    """``{inducing.domain: target}``: the target latent of an inducing set against a paired control, on
    their first ``n_rows`` rows (chapter 4's rule)."""
    rows = (list(inducing.rows)[:n_rows], list(paired.rows)[:n_rows])
    return {inducing.domain: target_latent(hooked, sae, tokenizer, *rows)}


def harmful_sets(
    hooked: Any,
    saes: Sequence[Any],
    tokenizer: Any,
    harmful_rows: Sequence[ChatRow],
    benign_rows: Sequence[ChatRow],
    k_harmful: int,
) -> list[np.ndarray]:
    """The harmful latents of each SAE (:func:`~emgeom.sae.geometry.harmful_latents`)."""
    return [harmful_latents(hooked, sae, tokenizer, harmful_rows, benign_rows, k_harmful) for sae in saes]


def _per_seed(results: MechanismResults, domain: str, seeds: Sequence[int]) -> list[MechanismResult]:
    return [results[(domain, s)] for s in seeds]


def mechanism_table(
    regimes: Mapping[str, MechanismResults],
    domains: Sequence[str],
    seeds: Sequence[int],
    targets: Mapping[str, int],
    harmful: np.ndarray,
) -> pd.DataFrame:
    """One row per (regime, domain): ``r (pre-activation)`` with its t-interval over seeds (``r lo``,
    ``r hi``), whether the target is a harmful latent, and the seed means of ``r (activation)``,
    ``slope``, ``|Δh|`` and the residual shift projected on harmful and on random directions."""
    harmful_set = set(np.asarray(harmful).tolist())
    rows = []
    for regime, results in regimes.items():
        for d in domains:
            rs = _per_seed(results, d, seeds)
            r = mean_ci(np.array([x.r_pre.value for x in rs]), bounds=(-1, 1))
            rows.append(
                {
                    "regime": regime,
                    "domain": d,
                    "target is harmful": targets[d] in harmful_set,
                    "r (pre-activation)": r.value,
                    "r lo": r.lo,
                    "r hi": r.hi,
                    "r (activation)": np.mean([x.r_post.value for x in rs]),
                    "slope": np.mean([x.slope_pre for x in rs]),
                    "|Δh|": np.mean([x.shift_norm for x in rs]),
                    "Δh on harmful dirs": np.mean([x.shift_on_harmful.mean() for x in rs]),
                    "Δh on random dirs": np.mean([x.shift_on_random.mean() for x in rs]),
                }
            )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class MechanismEstimates:
    """``overall``: mean r over every (domain, seed), t-interval; ``per_domain``: mean over seeds;
    ``holds``: the domains whose interval lies above 0."""

    overall: Estimate
    per_domain: dict[str, Estimate]
    holds: list[str]


def mechanism_estimates(
    results: MechanismResults, domains: Sequence[str], seeds: Sequence[int]
) -> MechanismEstimates:
    """Estimates of the pre-activation correlation ``r`` over fine-tuning seeds."""
    overall = mean_ci(np.array([results[(d, s)].r_pre.value for d in domains for s in seeds]), bounds=(-1, 1))
    per_domain = {
        d: mean_ci(np.array([x.r_pre.value for x in _per_seed(results, d, seeds)]), bounds=(-1, 1))
        for d in domains
    }
    holds = [d for d, e in per_domain.items() if e.lo > 0]
    return MechanismEstimates(overall, per_domain, holds)


def harmful_targets(targets: Mapping[str, int], harmful: np.ndarray) -> list[str]:
    """The domains whose target latent is itself one of the harmful latents."""
    harmful_set = set(np.asarray(harmful).tolist())
    return [d for d, t in targets.items() if t in harmful_set]


def spearman_loso(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman's rho of ``y`` with ``x`` (one value per fine-tuning set; ties get their mean rank), and
    the smallest rho left when any one set is left out (leave-one-set-out): a rank correlation that a
    single high-leverage set carries falls when that set goes. NaN where fewer than 3 points remain. Where
    either variable is constant (e.g. no set caused any EM), rho is 0: no monotone relation, and an
    organism without EM must count as one without the link, not drop out of the interval."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)

    def rho(a: np.ndarray, b: np.ndarray) -> float:
        if a.size < 3:
            return float("nan")
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            return 0.0
        return pearson_r(pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy())

    left_out = [rho(np.delete(x, i), np.delete(y, i)) for i in range(x.size)]
    return rho(x, y), float(np.nanmin(left_out)) if x.size > 3 else float("nan")


def similarity_vs_em(
    hooked: Any,
    tokenizer: Any,
    saes: Sequence[Any],
    harmful: Sequence[np.ndarray],
    sets: Sequence[FineTuneSet],
    summary: pd.DataFrame,
    k: int,
    max_rows: int | None = None,
    n_boot: int = 2000,
) -> tuple[pd.DataFrame, Estimate]:
    """One point per fine-tuning set: the mean max-cosine of its own latents to the harmful latents
    (:func:`~emgeom.sae.geometry.set_similarities`, averaged over the SAEs; at most ``max_rows`` rows
    of each set), beside its EM from ``summary`` (:func:`~emgeom.em.emergence.seed_summary`); and the
    Pearson r between the two with a bootstrap interval over sets."""
    rows = {fs.name: list(fs.rows)[:max_rows] for fs in sets}
    sims = [
        set_similarities(hooked, sae, tokenizer, rows, h, k) for sae, h in zip(saes, harmful, strict=True)
    ]
    points = summary.set_index("set").loc[[fs.name for fs in sets]].reset_index()
    points["similarity"] = [np.mean([s[name] for s in sims]) for name in points["set"]]
    points["inducing"] = [fs.inducing for fs in sets]
    r = bootstrap_pearson(points["similarity"].to_numpy(), points["open_em"].to_numpy(), n_boot=n_boot)
    return points, r
