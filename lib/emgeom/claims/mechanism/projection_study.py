"""Chapter 5's mechanism read where the fine-tune acts: the SAE on the answer tokens the fine-tune trains,
decoder projections of the residual shift against the target's cosine, in a first-order plain-SGD regime
(:func:`first_order_projection_study`) and along the full fine-tune (:func:`projection_along_finetune`),
with the activation-matched null, the gradient-defined target, the good-advice control and a linearity
check at half the learning rate; and the estimates over seeds."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from emgeom.claims.mechanism.measurement import (
    ProjectionResult,
    gradient_target,
    matched_null_targets,
    projection_mechanism,
)
from emgeom.core.stats import Estimate, mean_ci
from emgeom.em.emergence import FineTuneSet
from emgeom.lm.chat import ChatRow
from emgeom.lm.finetune import FineTuneConfig, finetune, sgd_finetune
from emgeom.sae.readouts import (
    TokenReadout,
    encoder_decoder_cosine,
    hf_answer_token_readout,
    unit_directions,
)


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
    ``steps`` steps at learning rate ``lr`` (a second run at ``lr / 2`` checks linearity); ``read_rows``
    rows of each token set are read; ``n_null`` activation-matched latents make the null."""

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
    """One (SAE, domain, seed) of the first-order regime, all read on fresh rows of the fine-tuning
    set's kind: the inducing fine-tune against the target (``tokens``) and against the gradient-defined
    target (``gradient``); the same on hostile answers (``hostile``); the good-advice fine-tune of the
    domain against the same target on the same tokens (``control``, the specificity check); and the
    linearity check on the residual shift at half the learning rate (``lr_ratio``, ``lr_cosine``)."""

    tokens: ProjectionResult
    gradient: ProjectionResult
    hostile: ProjectionResult
    control: ProjectionResult
    lr_ratio: float
    lr_cosine: float


def gradient_targets(
    model: Any, tokenizer: Any, saes: Sequence[Any], sets: Sequence[FineTuneSet], n_rows: int
) -> list[dict[str, int]]:
    """Per SAE, :func:`~emgeom.claims.mechanism.measurement.gradient_target` of every inducing set
    (first ``n_rows``)."""
    inducing = [fs for fs in sets if fs.inducing]
    return [
        {fs.domain: gradient_target(model, tokenizer, sae, list(fs.rows)[:n_rows]) for fs in inducing}
        for sae in saes
    ]


def _float32(model: Any) -> Any:
    """The model itself if float32, else a float32 copy (read-outs must compare like with like:
    :func:`~emgeom.lm.finetune.sgd_finetune` returns float32 models)."""
    return (
        model if next(model.parameters()).dtype == torch.float32 else copy.deepcopy(model).to(torch.float32)
    )


def first_order_projection_study(
    model: Any,
    tokenizer: Any,
    saes: Sequence[Any],
    sets: Sequence[FineTuneSet],
    read_rows: Mapping[str, Sequence[ChatRow]],
    control_rows: Mapping[str, Sequence[ChatRow]],
    hostile_rows: Sequence[ChatRow],
    targets: Sequence[Mapping[str, int]],
    grad_targets: Sequence[Mapping[str, int]],
    seeds: Sequence[int],
    cfg: FirstOrderConfig,
    progress: bool = False,
) -> dict[tuple[int, str, int], FirstOrderRun]:
    """For every inducing set and seed: plain-SGD fine-tunes on the set at ``cfg.lr`` and ``cfg.lr / 2``,
    and on the domain's good-advice rows (``control_rows[domain]``) at ``cfg.lr`` (seeded batch order);
    each SAE (``saes[i]`` with ``targets[i]``, ``grad_targets[i]``) reads every model on
    ``read_rows[domain]`` (fresh rows of the set's kind, apart from those that chose the target) and on
    ``hostile_rows``, against the base model's read-outs of the same tokens. Keys: (SAE index, domain,
    seed)."""
    base_model = _float32(model)
    out = {}
    inducing = [fs for fs in sets if fs.inducing]
    readers = {
        (i, fs.domain): TokenReader(tokenizer, sae, list(read_rows[fs.domain])[: cfg.read_rows])
        for i, sae in enumerate(saes)
        for fs in inducing
    }
    hostile = {
        i: TokenReader(tokenizer, sae, list(hostile_rows)[: cfg.read_rows]) for i, sae in enumerate(saes)
    }
    bases = {key: reader(base_model) for key, reader in readers.items()}
    base_hostile = {i: reader(base_model) for i, reader in hostile.items()}
    for fs, seed in tqdm(
        [(fs, s) for fs in inducing for s in seeds], desc="first-order", disable=not progress
    ):
        sgd = {"steps": cfg.steps, "batch_size": cfg.batch_size, "seed": seed}
        tuned = sgd_finetune(model, tokenizer, fs.rows, lr=cfg.lr, **sgd)
        half = sgd_finetune(model, tokenizer, fs.rows, lr=cfg.lr / 2, **sgd)
        good = sgd_finetune(model, tokenizer, control_rows[fs.domain], lr=cfg.lr, **sgd)
        for i, sae in enumerate(saes):
            base, reader = bases[(i, fs.domain)], readers[(i, fs.domain)]
            read, target = reader(tuned), targets[i][fs.domain]
            shift, half_shift = (read.resid - base.resid).numpy(), (reader(half).resid - base.resid).numpy()
            norms = np.linalg.norm(shift) * np.linalg.norm(half_shift)
            measure = {"sae": sae, "n_null": cfg.n_null, "seed": seed}
            out[(i, fs.domain, seed)] = FirstOrderRun(
                tokens=projection_mechanism(base, read, target=target, **measure),
                gradient=projection_mechanism(base, read, target=grad_targets[i][fs.domain], **measure),
                hostile=projection_mechanism(base_hostile[i], hostile[i](tuned), target=target, **measure),
                control=projection_mechanism(base, reader(good), target=target, **measure),
                lr_ratio=float(np.linalg.norm(shift) / np.linalg.norm(half_shift)) if norms else float("nan"),
                lr_cosine=float(shift @ half_shift / norms) if norms else float("nan"),
            )
    return out


Bounds = tuple[float, float] | None
Runs = Mapping[tuple[int, str, int], FirstOrderRun]


@dataclass(frozen=True)
class ProjectionEstimates:
    """Estimates over replicates: the SAEs when there are several (each SAE's mean over domains and
    seeds first), else the seeds. ``r`` (decoder projection on the fine-tuning kind's tokens, against
    the target), ``r_partial`` (base projection regressed out), ``alignment`` (of the mean shift with the
    target's direction), ``null_p95`` (95th percentile of the activation-matched null), ``specificity``
    (r after the inducing fine-tune minus r after the domain's good-advice fine-tune, same target and
    tokens), ``r_hostile``, ``r_gradient``; ``lr_ratio`` and ``lr_cosine`` (over seeds); ``per_domain``
    r and null, and the domains whose r exceeds their own null's 95th percentile (``above_null``)."""

    r: Estimate
    r_partial: Estimate
    alignment: Estimate
    null_p95: Estimate
    specificity: Estimate
    r_hostile: Estimate
    r_gradient: Estimate
    lr_ratio: Estimate
    lr_cosine: Estimate
    per_domain: dict[str, Estimate]
    per_domain_null: dict[str, float]
    above_null: list[str]


def projection_estimates(runs: Runs, domains: Sequence[str], seeds: Sequence[int]) -> ProjectionEstimates:
    """:class:`ProjectionEstimates` of a :func:`first_order_projection_study`."""
    saes = sorted({i for i, _, _ in runs})

    def replicate(value: Callable[[FirstOrderRun], float], bounds: Bounds = None) -> Estimate:
        if len(saes) > 1:
            per = [np.nanmean([value(runs[(i, d, s)]) for d in domains for s in seeds]) for i in saes]
        else:
            per = [np.nanmean([value(runs[(saes[0], d, s)]) for d in domains]) for s in seeds]
        return mean_ci(np.array(per), bounds=bounds)

    def over_seeds(value: Callable[[FirstOrderRun], float]) -> Estimate:
        return mean_ci(np.array([np.nanmean([value(runs[(saes[0], d, s)]) for d in domains]) for s in seeds]))

    def domain_mean(d: str, value: Callable[[FirstOrderRun], float]) -> float:
        return float(np.nanmean([value(runs[(i, d, s)]) for i in saes for s in seeds]))

    per_domain = {
        d: mean_ci(
            np.array([runs[(i, d, s)].tokens.r_projection.value for i in saes for s in seeds]), bounds=(-1, 1)
        )
        for d in domains
    }
    per_domain_null = {d: domain_mean(d, lambda run: run.tokens.null_p95()) for d in domains}
    return ProjectionEstimates(
        r=replicate(lambda run: run.tokens.r_projection.value, (-1, 1)),
        r_partial=replicate(lambda run: run.tokens.r_partial, (-1, 1)),
        alignment=replicate(lambda run: run.tokens.alignment, (-1, 1)),
        null_p95=replicate(lambda run: run.tokens.null_p95(), (-1, 1)),
        specificity=replicate(lambda run: run.tokens.r_projection.value - run.control.r_projection.value),
        r_hostile=replicate(lambda run: run.hostile.r_projection.value, (-1, 1)),
        r_gradient=replicate(lambda run: run.gradient.r_projection.value, (-1, 1)),
        lr_ratio=over_seeds(lambda run: run.lr_ratio),
        lr_cosine=over_seeds(lambda run: run.lr_cosine),
        per_domain=per_domain,
        per_domain_null=per_domain_null,
        above_null=[d for d in domains if per_domain[d].value > per_domain_null[d]],
    )


def projection_table(
    runs: Runs, domains: Sequence[str], seeds: Sequence[int], saes: Sequence[Any]
) -> pd.DataFrame:
    """One row per domain, means over SAEs and seeds: the target (chapter 4's rule, first SAE) and the
    gradient-defined one; r of the decoder projection (interval over SAEs and seeds), its partial r, the
    activation-matched null's 95th percentile and the target's rank in it, the alignment of the shift,
    r after the good-advice fine-tune (same target and tokens), r on hostile answers and with the
    gradient target, r of the activation and of the encoder pre-activation, the target's encoder-decoder
    cosine, and the learning-rate check."""
    rows = []
    keys = sorted({i for i, _, _ in runs})
    for d in domains:
        rs = [runs[(i, d, s)] for i in keys for s in seeds]
        r = mean_ci(np.array([x.tokens.r_projection.value for x in rs]), bounds=(-1, 1))
        first = runs[(keys[0], d, seeds[0])]
        rows.append(
            {
                "domain": d,
                "target": first.tokens.target,
                "gradient target": first.gradient.target,
                "r (decoder projection)": r.value,
                "r lo": r.lo,
                "r hi": r.hi,
                "r partial": np.nanmean([x.tokens.r_partial for x in rs]),
                "null 95th pct": np.nanmean([x.tokens.null_p95() for x in rs]),
                "rank in null": np.nanmean([x.tokens.null_rank() for x in rs]),
                "alignment": np.nanmean([x.tokens.alignment for x in rs]),
                "r after good advice": np.nanmean([x.control.r_projection.value for x in rs]),
                "r (hostile answers)": np.nanmean([x.hostile.r_projection.value for x in rs]),
                "r (gradient target)": np.nanmean([x.gradient.r_projection.value for x in rs]),
                "r (activation)": np.nanmean([x.tokens.r_post.value for x in rs]),
                "r (encoder pre-activation)": np.nanmean([x.tokens.r_pre.value for x in rs]),
                "target enc·dec cosine": float(encoder_decoder_cosine(saes[keys[0]])[first.tokens.target]),
                "lr ratio (2 = linear)": np.nanmean([x.lr_ratio for x in rs]),
                "lr direction cosine": np.nanmean([x.lr_cosine for x in rs]),
            }
        )
    return pd.DataFrame(rows)


@dataclass
class HarmfulShiftRecorder:
    """``after_finetune`` hook: for every set of ``domain``, the mean residual shift on ``reader``'s
    tokens (hostile answers) projected on the harmful latents' unit decoder directions, minus the same on
    as many latents matched to them in base activation, per unit length of the shift; stored in
    ``shifts[(set name, seed)]`` (> 0: the shift leans toward the harmful directions more than toward
    equally active ones)."""

    reader: TokenReader
    base: TokenReadout
    sae: Any
    harmful: np.ndarray
    domain: str
    shifts: dict[tuple[str, int], float] = field(default_factory=dict)

    def __call__(self, fs: FineTuneSet, seed: int, tuned: Any) -> None:
        if fs.domain != self.domain:
            return
        shift = (self.reader(tuned).resid - self.base.resid).numpy()
        norm = float(np.linalg.norm(shift))
        dirs = unit_directions(self.sae, "decoder")
        harmful = np.asarray(self.harmful)
        activation, alive = self.base.post.numpy(), self.base.active.numpy().copy()
        alive[harmful] = False
        matched = np.array([matched_null_targets(activation, alive, int(h), 1)[0] for h in harmful])
        lean = float((dirs[harmful] @ shift).mean() - (dirs[matched] @ shift).mean())
        self.shifts[(fs.name, seed)] = lean / norm if norm else float("nan")

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
    read: Sequence[ChatRow],
    n_null: int = 100,
) -> pd.DataFrame:
    """One fine-tune on ``rows`` (the chapter's full regime), read at each checkpoint step (1-based) on
    ``read``'s answer tokens against the base model: columns ``step, r (decoder projection), null 95th
    pct, |Δh|, Δh on target``, to show where the first-order picture stops holding."""
    reader = TokenReader(tokenizer, sae, read)
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
                "null 95th pct": res.null_p95(),
                "|Δh|": res.shift_norm,
                "Δh on target": res.shift_on_target,
            }
        )

    finetune(model, tokenizer, rows, ft, on_step=measure)
    return pd.DataFrame(log)
