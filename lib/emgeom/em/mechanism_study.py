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
from tqdm import tqdm

from emgeom.core.stats import Estimate, bootstrap_pearson, mean_ci
from emgeom.em.emergence import FineTuneSet
from emgeom.em.geometry import harmful_latents, set_similarities
from emgeom.em.mechanism import (
    MechanismResult,
    ProjectionResult,
    PromptReadout,
    TokenReadout,
    answer_start_readout,
    encoder_decoder_cosine,
    gradient_target,
    hf_answer_start_readout,
    hf_answer_token_readout,
    measure_mechanism,
    projection_mechanism,
    target_latent,
)
from emgeom.lm.chat import ChatRow, Message
from emgeom.lm.finetune import FineTuneConfig, finetune, sgd_finetune
from emgeom.lm.models import hooked_transformer
from emgeom.organism.datasets import finetune_rows
from emgeom.sae.readouts import unit_directions

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
    :func:`~emgeom.em.mechanism.measure_mechanism` against the base read-out in
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
    """The harmful latents of each SAE (:func:`~emgeom.em.geometry.harmful_latents`)."""
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
    (:func:`~emgeom.em.geometry.set_similarities`, averaged over the SAEs; at most ``max_rows`` rows
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


# --- where the fine-tune acts: answer tokens, decoder projections, a first-order SGD regime -----------


@dataclass(frozen=True)
class TokenReader:
    """Reads ``sae`` on the answer tokens of ``rows`` of a (fine-tuned) Hugging Face model."""

    tokenizer: Any
    sae: Any
    rows: Sequence[ChatRow]

    def __call__(self, model: Any) -> TokenReadout:
        return hf_answer_token_readout(model, self.tokenizer, self.sae, self.rows)


@dataclass(frozen=True)
class FirstOrderConfig:
    """The first-order regime: plain SGD on every weight (:func:`~emgeom.lm.finetune.sgd_finetune`),
    ``steps`` steps at learning rate ``lr`` (and a second run at ``lr / 2`` for the linearity check);
    ``read_rows`` rows of each token set are read; ``n_null`` random targets make the null."""

    lr: float = 0.01
    steps: int = 10
    batch_size: int = 16
    read_rows: int = 64
    n_null: int = 100

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.steps < 1 or self.read_rows < 1 or self.n_null < 1:
            raise ValueError("need lr > 0, steps >= 1, read_rows >= 1 and n_null >= 1")


@dataclass(frozen=True)
class FirstOrderRun:
    """One (domain, seed) of the first-order regime: the projection mechanism on the fine-tuning set's
    own answer tokens (``tokens``), on held-out hostile answers (``hostile``), on the fine-tuning tokens
    with the gradient-defined target (``gradient``), and the residual shift at half the learning rate
    (``half_shift_norm``, on the fine-tuning tokens)."""

    tokens: ProjectionResult
    hostile: ProjectionResult
    gradient: ProjectionResult
    half_shift_norm: float

    @property
    def lr_ratio(self) -> float:
        """Shift at ``lr`` over shift at ``lr / 2``: 2 where the update is first order."""
        return self.tokens.shift_norm / self.half_shift_norm if self.half_shift_norm else float("nan")


def gradient_targets(
    model: Any, tokenizer: Any, sae: Any, sets: Sequence[FineTuneSet], n_rows: int
) -> dict[str, int]:
    """:func:`~emgeom.em.mechanism.gradient_target` of every inducing set (first ``n_rows`` rows)."""
    return {
        fs.domain: gradient_target(model, tokenizer, sae, list(fs.rows)[:n_rows])
        for fs in sets
        if fs.inducing
    }


def first_order_projection_study(
    model: Any,
    tokenizer: Any,
    sae: Any,
    sets: Sequence[FineTuneSet],
    hostile_rows: Sequence[ChatRow],
    targets: Mapping[str, int],
    grad_targets: Mapping[str, int],
    seeds: Sequence[int],
    cfg: FirstOrderConfig,
    progress: bool = False,
) -> dict[tuple[str, int], FirstOrderRun]:
    """For every inducing set and seed: plain-SGD fine-tunes at ``cfg.lr`` and ``cfg.lr / 2`` (seeded
    batch order), each read on the set's own answer tokens and on held-out hostile answers, against the
    base model's read-outs of the same tokens."""
    hostile = TokenReader(tokenizer, sae, list(hostile_rows)[: cfg.read_rows])
    base_hostile = hostile(model)
    out = {}
    inducing = [fs for fs in sets if fs.inducing]
    jobs = [(fs, s) for fs in inducing for s in seeds]
    readers = {fs.domain: TokenReader(tokenizer, sae, list(fs.rows)[: cfg.read_rows]) for fs in inducing}
    bases = {d: reader(model) for d, reader in readers.items()}
    for fs, seed in tqdm(jobs, desc="first-order fine-tunes", disable=not progress):
        tuned, half = (
            sgd_finetune(
                model, tokenizer, fs.rows, lr=lr, steps=cfg.steps, batch_size=cfg.batch_size, seed=seed
            )
            for lr in (cfg.lr, cfg.lr / 2)
        )
        base, read = bases[fs.domain], readers[fs.domain](tuned)
        out[(fs.domain, seed)] = FirstOrderRun(
            tokens=projection_mechanism(base, read, sae, targets[fs.domain], n_null=cfg.n_null, seed=seed),
            hostile=projection_mechanism(
                base_hostile, hostile(tuned), sae, targets[fs.domain], n_null=cfg.n_null, seed=seed
            ),
            gradient=projection_mechanism(
                base, read, sae, grad_targets[fs.domain], n_null=cfg.n_null, seed=seed
            ),
            half_shift_norm=float((readers[fs.domain](half).resid - base.resid).norm()),
        )
    return out


@dataclass(frozen=True)
class ProjectionEstimates:
    """Estimates over seeds (each seed's mean over domains first): ``r`` (decoder projection on the
    fine-tuning tokens), ``r_hostile`` (on held-out hostile answers), ``r_gradient`` (gradient-defined
    target), ``null_p95`` (95th percentile of the random-target null, pooled over domains),
    ``lr_ratio``; ``per_domain`` r over seeds, and the domains whose r exceeds the null's 95th
    percentile (``above_null``)."""

    r: Estimate
    r_hostile: Estimate
    r_gradient: Estimate
    null_p95: Estimate
    lr_ratio: Estimate
    per_domain: dict[str, Estimate]
    above_null: list[str]


def projection_estimates(
    runs: Mapping[tuple[str, int], FirstOrderRun], domains: Sequence[str], seeds: Sequence[int]
) -> ProjectionEstimates:
    """:class:`ProjectionEstimates` of a :func:`first_order_projection_study`."""

    def domain_mean(value: Callable[[FirstOrderRun], float], seed: int) -> float:
        return float(np.mean([value(runs[(d, seed)]) for d in domains]))

    def over_seeds(
        value: Callable[[FirstOrderRun], float], bounds: tuple[float, float] | None = None
    ) -> Estimate:
        return mean_ci(np.array([domain_mean(value, s) for s in seeds]), bounds=bounds)

    def pooled_p95(seed: int) -> float:
        return float(np.percentile(np.concatenate([runs[(d, seed)].tokens.null_r for d in domains]), 95))

    null_p95 = mean_ci(np.array([pooled_p95(s) for s in seeds]), bounds=(-1, 1))
    r_by_domain = {d: np.array([runs[(d, s)].tokens.r_projection.value for s in seeds]) for d in domains}
    per_domain = {d: mean_ci(values, bounds=(-1, 1)) for d, values in r_by_domain.items()}
    return ProjectionEstimates(
        r=over_seeds(lambda run: run.tokens.r_projection.value, (-1, 1)),
        r_hostile=over_seeds(lambda run: run.hostile.r_projection.value, (-1, 1)),
        r_gradient=over_seeds(lambda run: run.gradient.r_projection.value, (-1, 1)),
        null_p95=null_p95,
        lr_ratio=over_seeds(lambda run: run.lr_ratio),
        per_domain=per_domain,
        above_null=[d for d, e in per_domain.items() if e.value > null_p95.value],
    )


def projection_table(
    runs: Mapping[tuple[str, int], FirstOrderRun], domains: Sequence[str], seeds: Sequence[int], sae: Any
) -> pd.DataFrame:
    """One row per domain, means over seeds: the target (chapter 4's rule) and the gradient-defined one,
    r of the decoder projection on the fine-tuning tokens (with its interval over seeds), on held-out
    hostile answers and with the gradient target; r of the activation and of the encoder pre-activation
    (the same tokens); the null's 95th percentile; the target's encoder-decoder cosine; the
    learning-rate ratio."""
    enc_dec = encoder_decoder_cosine(sae)
    rows = []
    for d in domains:
        rs = [runs[(d, s)] for s in seeds]
        r = mean_ci(np.array([x.tokens.r_projection.value for x in rs]), bounds=(-1, 1))
        rows.append(
            {
                "domain": d,
                "target": rs[0].tokens.target,
                "gradient target": rs[0].gradient.target,
                "r (decoder projection)": r.value,
                "r lo": r.lo,
                "r hi": r.hi,
                "r (hostile answers)": np.mean([x.hostile.r_projection.value for x in rs]),
                "r (gradient target)": np.mean([x.gradient.r_projection.value for x in rs]),
                "r (activation)": np.mean([x.tokens.r_post.value for x in rs]),
                "r (encoder pre-activation)": np.mean([x.tokens.r_pre.value for x in rs]),
                "null 95th pct": np.mean([np.percentile(x.tokens.null_r, 95) for x in rs]),
                "target enc·dec cosine": float(enc_dec[rs[0].tokens.target]),
                "lr ratio (2 = linear)": np.mean([x.lr_ratio for x in rs]),
            }
        )
    return pd.DataFrame(rows)


@dataclass
class HarmfulShiftRecorder:
    """``after_finetune`` hook: for every set of ``domain``, the mean shift of the residual on
    ``reader``'s tokens (held-out hostile answers) projected on the harmful latents' unit decoder
    directions, stored in ``shifts[(set name, seed)]``."""

    reader: TokenReader
    base: TokenReadout
    sae: Any
    harmful: np.ndarray
    domain: str
    shifts: dict[tuple[str, int], float] = field(default_factory=dict)

    def __call__(self, fs: FineTuneSet, seed: int, tuned: Any) -> None:
        if fs.domain == self.domain:
            shift = (self.reader(tuned).resid - self.base.resid).numpy()
            dirs = unit_directions(self.sae, "decoder")[np.asarray(self.harmful)]
            self.shifts[(fs.name, seed)] = float((dirs @ shift).mean())

    def difference(self, name: str, other: str, seeds: Sequence[int]) -> Estimate:
        """Mean over seeds of ``shift(name) - shift(other)``, paired by seed, with a t-interval."""
        return mean_ci(np.array([self.shifts[(name, s)] - self.shifts[(other, s)] for s in seeds]))


@dataclass(frozen=True)
class AfterFinetune:
    """Several ``after_finetune`` hooks called in order."""

    hooks: Sequence[Callable[[FineTuneSet, int, Any], None]]

    def __call__(self, fs: FineTuneSet, seed: int, tuned: Any) -> None:
        for hook in self.hooks:
            hook(fs, seed, tuned)


def projection_along_finetune(
    model: Any,
    tokenizer: Any,
    rows: Sequence[ChatRow],
    ft: FineTuneConfig,
    checkpoints: Sequence[int],
    sae: Any,
    target: int,
    read_rows: int,
    n_null: int = 100,
) -> pd.DataFrame:
    """One fine-tune (the chapter's full regime), read at each checkpoint on the set's own answer tokens:
    columns ``step, r (decoder projection), null 95th pct, |Δh|, Δh on target`` (step 0 = the base), to
    show where the first-order picture stops holding."""
    reader = TokenReader(tokenizer, sae, list(rows)[:read_rows])
    base = reader(model)
    wanted = set(checkpoints)
    log: list[dict[str, float]] = []

    def measure(step: int, m: Any) -> None:
        if step not in wanted:
            return
        m.eval()
        res = projection_mechanism(base, reader(m), sae, target, n_null=n_null)
        m.train()
        log.append(
            {
                "step": step,
                "r (decoder projection)": res.r_projection.value,
                "null 95th pct": float(np.percentile(res.null_r, 95)),
                "|Δh|": res.shift_norm,
                "Δh on target": res.shift_on_target,
            }
        )

    finetune(model, tokenizer, rows, ft, on_step=measure)
    return pd.DataFrame(log)
