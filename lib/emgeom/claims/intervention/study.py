"""Blocking the harmful directions during fine-tuning: a causal test of the paper's account and a second
mitigation (beyond the paper).

If EM spreads through the harmful latents' directions, a fine-tune whose residual stream has them
projected out at the SAE's layer (during training only) should induce less EM while still learning the
narrow task; projecting out as many *random* directions should not. The controls are built to be the
same size as the harmful ablation, not only the same rank. For every fine-tuning seed a fresh set of
distinct frequency-matched random latents is chosen among candidates in two ways: the **damage-matched**
set, whose ablation raises the base model's loss on the fine-tuning rows by as much as the harmful
ablation does (the primary control: a more destructive ablation lowers EM more, whatever its
directions), and the **energy-matched** set, whose span removes the same share of the residual's energy
on the fine-tuning tokens (a secondary control). Beside them: a fresh set of random unit vectors, and
steering along a random unit vector at the harmful steering's strength. Rank, energy removed and the
base model's loss (and its increase) with each intervention on are reported per condition and seed.

The organism is the unit of evidence: :func:`blocking_over_organisms` runs the whole study on every
replicate organism, and the ``*_over_organisms`` functions average each organism's fine-tuning seeds
first and put a t-interval over organisms (seeds are never counted as replicates).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from emgeom.core.stats import Estimate, mean_ci, paired_relative_reduction
from emgeom.em.emergence import FineTuneSet, emergence_table, organism_sets
from emgeom.em.evaluators import Evaluator
from emgeom.lm.chat import ChatRow
from emgeom.lm.finetune import FineTuneConfig
from emgeom.lm.intervention import Intervention, heldout_loss
from emgeom.organism import language
from emgeom.organism.build import OrganismConfig
from emgeom.organism.datasets import finetune_rows, open_answer_rows
from emgeom.organism.study import OrganismSubject, study_organisms
from emgeom.sae.geometry import harmful_latents
from emgeom.sae.readouts import hf_answer_residuals, resid_pre_layer, response_activations, unit_directions
from emgeom.sae.train import SAESpec

NONE = "none"
HARMFUL = "ablate harmful"
DAMAGE_MATCHED = "ablate damage-matched latents"
RANDOM_LATENTS = "ablate energy-matched latents"
RANDOM_DIRECTIONS = "ablate random directions"
STEER = "steer harmful"
STEER_RANDOM = "steer random"
CONDITIONS = (NONE, HARMFUL, DAMAGE_MATCHED, RANDOM_LATENTS, RANDOM_DIRECTIONS, STEER, STEER_RANDOM)
"""Every condition of the organism chapter; :data:`DAMAGE_MATCHED` is built only when the builder has a
base-loss function (:func:`condition_builder` with ``damage_rows``)."""

Conditions = Mapping[str, Intervention | None]


def answer_residuals(model: Any, tokenizer: Any, sae: Any, rows: Sequence[ChatRow]) -> np.ndarray:
    """The residual stream at the SAE's input on every answer token of ``rows``: ``[tokens, d_model]``."""
    layer = resid_pre_layer(sae.cfg.metadata.hook_name)
    return torch.cat(list(hf_answer_residuals(model, tokenizer, rows, layer))).numpy()


def energy_removed(residuals: np.ndarray, directions: np.ndarray) -> float:
    """Share of the residuals' squared norm that projecting off the span of ``directions`` removes."""
    q, r = np.linalg.qr(np.asarray(directions, dtype=np.float64).T)
    q = q[:, np.abs(np.diag(r)) > 1e-8 * np.abs(np.diag(r)).max()]
    return float(((residuals @ q) ** 2).sum() / (residuals**2).sum())


def distinct_matched_latents(
    freq: np.ndarray, like: np.ndarray, exclude: np.ndarray, rng: np.random.Generator, n_bins: int = 10
) -> np.ndarray:
    """One distinct latent per latent of ``like``, from the same firing-frequency decile (over latents
    that fire), never from ``exclude`` and never twice (so the span keeps the rank of ``like``'s)."""
    alive = np.flatnonzero(freq > 0)
    edges = np.quantile(freq[alive], np.linspace(0, 1, n_bins + 1))
    bin_of = np.clip(np.searchsorted(edges, freq, side="right") - 1, 0, n_bins - 1)
    taken = set(np.asarray(exclude).tolist())
    picks = []
    for latent in like:
        pool = [a for a in alive if a not in taken and bin_of[a] == bin_of[latent]]
        pool = pool or [a for a in alive if a not in taken]
        pick = int(rng.choice(pool))
        picks.append(pick)
        taken.add(pick)
    return np.asarray(picks, dtype=int)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@dataclass(frozen=True)
class DamageMatch:
    """How one seed's damage-matched control was chosen: the harmful ablation's base-loss increase
    (``target``, nats), every candidate set's increase (``candidates``, in the order drawn) and the
    chosen one's (``chosen``, the candidate nearest the target), with its ``latents``."""

    target: float
    candidates: tuple[float, ...]
    chosen: float
    latents: np.ndarray

    @property
    def gap(self) -> float:
        """The chosen control's increase minus the harmful ablation's (0: matched exactly)."""
        return self.chosen - self.target


def nearest_damage(
    candidates: Sequence[np.ndarray], increase: Callable[[np.ndarray], float], target: float
) -> DamageMatch:
    """The candidate latent set whose ablation's base-loss increase (``increase(latents)``) is nearest
    ``target`` (the harmful ablation's increase); ties go to the first drawn."""
    if not candidates:
        raise ValueError("need at least one candidate latent set")
    increases = tuple(float(increase(c)) for c in candidates)
    best = int(np.argmin([abs(x - target) for x in increases]))
    return DamageMatch(float(target), increases, increases[best], np.asarray(candidates[best]))


@dataclass
class ConditionBuilder:
    """Builds each seed's conditions from the harmful latents (module docstring). ``residuals``: answer
    tokens of the fine-tuning set at the SAE's input (for energy matching); ``freq``: each latent's
    firing frequency; ``steer_strength`` in residual units; ``n_candidates`` random-latent sets tried
    per seed for energy matching.

    ``base_loss(intervention)``: the base model's loss on (a subset of) the fine-tuning rows with the
    intervention on (``None``: without one). With it, every seed also gets the :data:`DAMAGE_MATCHED`
    control: among ``n_damage_candidates`` fresh frequency-matched sets, the one whose ablation raises
    that loss by as much as the harmful ablation does (:func:`nearest_damage`; ``damage[seed]`` keeps
    how it was chosen). Without it (``None``) that condition is not built."""

    sae: Any
    harmful: np.ndarray
    freq: np.ndarray
    residuals: np.ndarray
    steer_strength: float
    n_candidates: int = 20
    base_loss: Callable[[Intervention | None], float] | None = None
    n_damage_candidates: int = 12
    built: dict[int, dict[str, Intervention | None]] = field(default_factory=dict)
    damage: dict[int, DamageMatch] = field(default_factory=dict)
    _losses: dict[str, float] = field(default_factory=dict, repr=False)

    def loss_increase(self, intervention: Intervention) -> float:
        """The base model's loss with ``intervention`` on minus without (needs ``base_loss``)."""
        if self.base_loss is None:
            raise ValueError("this builder has no base_loss to measure damage with")
        if "none" not in self._losses:
            self._losses["none"] = float(self.base_loss(None))
        return float(self.base_loss(intervention)) - self._losses["none"]

    def _harmful_increase(self, harmful: Intervention) -> float:
        if "harmful" not in self._losses:
            self._losses["harmful"] = self.loss_increase(harmful)
        return self._losses["harmful"]

    def __call__(self, seed: int) -> dict[str, Intervention | None]:
        if seed in self.built:
            return self.built[seed]
        layer = resid_pre_layer(self.sae.cfg.metadata.hook_name)
        dirs = unit_directions(self.sae, "decoder")
        harmful = np.asarray(self.harmful)
        rng = np.random.default_rng([seed, 1729])
        target = energy_removed(self.residuals, dirs[harmful])
        candidates = [
            distinct_matched_latents(self.freq, harmful, harmful, rng) for _ in range(self.n_candidates)
        ]
        matched = min(candidates, key=lambda c: abs(energy_removed(self.residuals, dirs[c]) - target))
        random_dirs = _unit(rng.standard_normal((len(harmful), dirs.shape[1])))
        ablate_harmful = Intervention("ablate", layer, dirs[harmful])
        conditions: dict[str, Intervention | None] = {NONE: None, HARMFUL: ablate_harmful}
        if self.base_loss is not None:
            damage_rng = np.random.default_rng([seed, 1729, 2])  # apart from the draws above
            damage_candidates = [
                distinct_matched_latents(self.freq, harmful, harmful, damage_rng)
                for _ in range(self.n_damage_candidates)
            ]
            match = nearest_damage(
                damage_candidates,
                lambda c: self.loss_increase(Intervention("ablate", layer, dirs[c])),
                self._harmful_increase(ablate_harmful),
            )
            self.damage[seed] = match
            conditions[DAMAGE_MATCHED] = Intervention("ablate", layer, dirs[match.latents])
        self.built[seed] = conditions | {
            RANDOM_LATENTS: Intervention("ablate", layer, dirs[matched]),
            RANDOM_DIRECTIONS: Intervention("ablate", layer, random_dirs),
            STEER: Intervention("steer", layer, dirs[harmful], strength=self.steer_strength),
            STEER_RANDOM: Intervention("steer", layer, random_dirs[:1], strength=self.steer_strength),
        }
        return self.built[seed]


def condition_builder(
    model: Any,
    hooked: Any,
    sae: Any,
    tokenizer: Any,
    harmful: np.ndarray,
    rows: Sequence[ChatRow],
    steer_scale: float,
    damage_rows: Sequence[ChatRow] | None = None,
    n_damage_candidates: int = 12,
) -> ConditionBuilder:
    """A :class:`ConditionBuilder` whose firing frequencies and residuals come from ``rows`` (the
    fine-tuning sets' rows) and whose steering strength is ``steer_scale`` times the residual's mean
    norm on their answer tokens. With ``damage_rows`` (a few dozen rows of the inducing set), it also
    builds the damage-matched control, measuring damage as the base model's :func:`heldout_loss` on those
    rows (one forward pass over them per candidate)."""
    residuals = answer_residuals(model, tokenizer, sae, rows)
    freq = (response_activations(hooked, sae, tokenizer, rows) > 0).float().mean(0).numpy()
    strength = steer_scale * float(np.linalg.norm(residuals, axis=1).mean())
    base_loss = None
    if damage_rows is not None:
        measured = list(damage_rows)

        def base_loss(intervention: Intervention | None) -> float:
            return heldout_loss(model, tokenizer, measured, intervention)

    return ConditionBuilder(
        sae,
        np.asarray(harmful),
        freq,
        residuals,
        strength,
        base_loss=base_loss,
        n_damage_candidates=n_damage_candidates,
    )


@torch.no_grad()
def condition_diagnostics(
    model: Any, tokenizer: Any, builder: ConditionBuilder, rows: Sequence[ChatRow], seeds: Sequence[int]
) -> pd.DataFrame:
    """Per condition and seed: the intervention's rank, the share of the residual's energy an ablation
    removes on the fine-tuning tokens, the base model's loss on ``rows`` with it on (how hard the
    intervention makes the task before any training) and that loss's increase over no intervention
    (the damage; on the builder's damage rows, this is what the damage-matched control is matched on)."""
    out = []
    base = heldout_loss(model, tokenizer, rows)
    for seed in seeds:
        for name, iv in builder(seed).items():
            loss = base if iv is None else heldout_loss(model, tokenizer, rows, iv)
            out.append(
                {
                    "condition": name,
                    "seed": seed,
                    "rank": 0 if iv is None else iv.rank,
                    "energy removed": energy_removed(builder.residuals, iv.directions)
                    if iv is not None and iv.kind == "ablate"
                    else 0.0,
                    "base loss with it": loss,
                    "base loss increase": loss - base,
                }
            )
    return pd.DataFrame(out)


@dataclass
class HeldoutLoss:
    """``after_finetune`` hook: the tuned model's :func:`heldout_loss` on held-out rows of the set's own
    kind (``heldout[set name]``), stored in ``losses[(set name, seed)]``."""

    tokenizer: Any
    heldout: Mapping[str, Sequence[ChatRow]]
    losses: dict[tuple[str, int], float] = field(default_factory=dict)

    def __call__(self, fs: FineTuneSet, seed: int, tuned: Any) -> None:
        if fs.name in self.heldout:
            self.losses[(fs.name, seed)] = heldout_loss(tuned, self.tokenizer, self.heldout[fs.name])


def intervention_table(
    model: Any,
    tokenizer: Any,
    sets: Sequence[FineTuneSet],
    ft: FineTuneConfig,
    seeds: Sequence[int],
    conditions: Callable[[int], Conditions],
    names: Sequence[str],
    evaluate: Evaluator,
    heldout: Mapping[str, Sequence[ChatRow]],
    progress: bool = False,
) -> pd.DataFrame:
    """:func:`~emgeom.em.emergence.emergence_table` of every set under every named condition of each
    seed (``conditions(seed)``; the intervention acts during training only, the evaluated model runs
    without it): one row per (condition, set, seed) with ``condition``, the evaluator's rates and
    ``heldout_loss`` (held-out rows of the set's kind, ``heldout[set name]``)."""
    tables = []
    for name in names:
        for seed in seeds:
            losses = HeldoutLoss(tokenizer, heldout)
            cfg = replace(ft, intervention=conditions(seed)[name])
            table = emergence_table(
                model,
                tokenizer,
                sets,
                cfg,
                [seed],
                evaluate,
                include_aligned=False,
                progress=progress,
                after_finetune=losses,
            )
            keys = zip(table["set"], table["seed"], strict=True)
            table["heldout_loss"] = [losses.losses.get(key, np.nan) for key in keys]
            tables.append(table.assign(condition=name))
    return pd.concat(tables, ignore_index=True)


def _by_seed(table: pd.DataFrame, condition: str, set_name: str, column: str) -> pd.Series:
    sub = table[(table["condition"] == condition) & (table["set"] == set_name)]
    return sub.set_index("seed")[column]


def relative_reduction(
    table: pd.DataFrame, condition: str, set_name: str, column: str = "open_em"
) -> Estimate:
    """Mean over seeds of ``1 - value(condition) / value(none)``, paired by seed; seeds whose
    unintervened value is 0 are left out (:func:`zero_baseline_seeds` names them; ``n`` counts the rest)."""
    base, cond = _by_seed(table, NONE, set_name, column), _by_seed(table, condition, set_name, column)
    return paired_relative_reduction(base, cond)


def paired_difference(
    table: pd.DataFrame, condition: str, other: str, set_name: str, column: str = "open_em"
) -> Estimate:
    """Mean over seeds of ``value(condition) - value(other)``, paired by seed, with a t-interval."""
    a, b = _by_seed(table, condition, set_name, column), _by_seed(table, other, set_name, column)
    return mean_ci(np.array([a[s] - b[s] for s in a.index if s in b.index]))


def condition_summary(tables: Sequence[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    """Mean and t-interval over seeds of each column, per (set, condition), over the tables given."""
    rows = []
    table = pd.concat(list(tables), ignore_index=True)
    for (set_name, condition), sub in table.groupby(["set", "condition"], sort=False):
        row: dict[str, object] = {"set": set_name, "condition": condition}
        for col in columns:
            e = mean_ci(sub[col].to_numpy())
            row.update({col: e.value, f"{col}_lo": e.lo, f"{col}_hi": e.hi})
        row["n_seeds"] = len(sub)
        rows.append(row)
    return pd.DataFrame(rows)


def zero_baseline_seeds(table: pd.DataFrame, set_name: str) -> list[int]:
    """Seeds whose unintervened EM is 0 (a relative reduction is undefined there; they are shown)."""
    base = _by_seed(table, NONE, set_name, "open_em")
    return [int(s) for s in base.index if base[s] <= 0]


# --- The study on every replicate organism, and its numbers over organisms ---------------------------


@dataclass(frozen=True)
class BlockingSettings:
    """What chapter 8 runs on each organism (its parameters, gathered): the inducing fine-tune of
    ``domain`` (``finetune_rows`` rows) and its good-advice control, ``heldout_rows`` held-out rows of
    each set's kind, the damage-matched control chosen among ``damage_candidates`` sets on the first
    ``damage_rows`` inducing rows (which the diagnostics also read), ``k_harmful`` harmful latents, the
    steering strength ``steer_scale`` (times the residual's mean norm), the fine-tune ``ft`` and its
    ``seeds`` (per organism), and the evaluator."""

    domain: str
    finetune_rows: int
    heldout_rows: int
    damage_rows: int
    damage_candidates: int
    k_harmful: int
    steer_scale: float
    ft: FineTuneConfig
    seeds: tuple[int, ...]
    evaluate: Evaluator

    def __post_init__(self) -> None:
        if self.domain not in language.DOMAINS:
            raise ValueError(f"domain must be one of {language.DOMAINS}, got {self.domain!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"need at least one fine-tuning seed, all distinct, got {list(self.seeds)}")
        if self.damage_candidates < 1 or self.damage_rows < 1:
            raise ValueError("damage_candidates and damage_rows must be at least 1")


@dataclass
class OrganismBlocking:
    """Chapter 8 on one organism: its ``harmful`` latents, the SAE's hook, the steering strength, the
    per-condition ``diagnostics`` (one row per condition and seed), how each seed's damage-matched control
    was chosen (``damage``), the inducing fine-tune under every condition (``table``) and the good-advice
    fine-tune under none and harmful ablation (``control``), with the two sets' names."""

    harmful: np.ndarray
    hook_name: str
    steer_strength: float
    diagnostics: pd.DataFrame
    damage: dict[int, DamageMatch]
    table: pd.DataFrame
    control: pd.DataFrame
    inducing: str
    good: str


def blocking_harmful_latents(subject: OrganismSubject, k_harmful: int) -> np.ndarray:
    """The harmful latents chapter 8 blocks: the top ``k_harmful`` of 200 hostile minus 200 kind open
    answers (no advice in them), on the organism's first SAE."""
    return harmful_latents(
        subject.hooked,
        subject.saes[0],
        subject.tokenizer,
        open_answer_rows(True, 200, seed=0),
        open_answer_rows(False, 200, seed=0),
        k_harmful,
    )


def organism_blocking(
    subject: OrganismSubject, settings: BlockingSettings, progress: bool = False
) -> OrganismBlocking:
    """The whole blocking study on one organism."""
    s = settings
    model, tokenizer, hooked, sae = subject.model, subject.tokenizer, subject.hooked, subject.saes[0]
    inducing, good = organism_sets([s.domain], s.domain, s.finetune_rows, control_kinds=("good",))
    heldout = {
        inducing.name: finetune_rows("inducing", s.domain, s.heldout_rows, seed=9, heldout_frame=True),
        good.name: finetune_rows("good", s.domain, s.heldout_rows, seed=9, heldout_frame=True),
    }
    harmful = blocking_harmful_latents(subject, s.k_harmful)
    damage_rows = inducing.rows[: s.damage_rows]
    conditions = condition_builder(
        model,
        hooked,
        sae,
        tokenizer,
        harmful,
        [*inducing.rows, *good.rows],
        s.steer_scale,
        damage_rows=damage_rows,
        n_damage_candidates=s.damage_candidates,
    )
    diagnostics = condition_diagnostics(model, tokenizer, conditions, damage_rows, s.seeds)
    table = intervention_table(
        model, tokenizer, [inducing], s.ft, s.seeds, conditions, CONDITIONS, s.evaluate, heldout, progress
    )
    control = intervention_table(
        model, tokenizer, [good], s.ft, s.seeds, conditions, [NONE, HARMFUL], s.evaluate, heldout, progress
    )
    return OrganismBlocking(
        np.asarray(harmful),
        sae.cfg.metadata.hook_name,
        conditions.steer_strength,
        diagnostics,
        dict(conditions.damage),
        table,
        control,
        inducing.name,
        good.name,
    )


def blocking_over_organisms(
    configs: Mapping[int, OrganismConfig],
    spec: SAESpec,
    settings: BlockingSettings,
    progress: bool = False,
) -> dict[int, OrganismBlocking]:
    """:func:`organism_blocking` on each organism (built or loaded with its SAE of ``spec``), keyed by
    pretraining seed, one organism in memory at a time."""
    return study_organisms(
        configs, [spec], lambda subject: organism_blocking(subject, settings, progress), progress
    )


def steer_strengths(studies: Mapping[int, OrganismBlocking]) -> str:
    """Each organism's steering strength, as the chapter prints them."""
    return ", ".join(f"{b.steer_strength:.2f}" for b in studies.values())


def stacked(studies: Mapping[int, OrganismBlocking], attribute: str) -> pd.DataFrame:
    """A table attribute (``"table"``, ``"control"``, ``"diagnostics"``) of every organism, with an
    ``organism_seed`` column."""
    return pd.concat(
        [getattr(b, attribute).assign(organism_seed=o) for o, b in studies.items()], ignore_index=True
    )


def _seed_means(
    table: pd.DataFrame, a: str, b: str, set_name: str | None, column: str
) -> dict[int, tuple[float, float]]:
    """Per organism (``organism_seed``): the mean over its fine-tuning seeds of ``column`` under
    conditions ``a`` and ``b``, over the seeds both have with finite values (organisms with none are
    left out)."""
    sub = table if set_name is None else table[table["set"] == set_name]
    out = {}
    for organism, rows in sub.groupby("organism_seed", sort=False):
        x = rows[rows["condition"] == a].set_index("seed")[column]
        y = rows[rows["condition"] == b].set_index("seed")[column]
        common = [s for s in x.index if s in y.index and np.isfinite(x[s]) and np.isfinite(y[s])]
        if common:
            out[int(organism)] = (float(x[common].mean()), float(y[common].mean()))
    return out


def difference_over_organisms(
    table: pd.DataFrame, condition: str, other: str, set_name: str, column: str = "open_em"
) -> Estimate:
    """``value(condition) - value(other)``, paired by fine-tuning seed within each organism and averaged
    over its seeds, then a t-interval over organisms (``n``: organisms; one organism gives no interval).
    ``table`` stacks every organism's table with an ``organism_seed`` column (:func:`stacked`)."""
    means = _seed_means(table, condition, other, set_name, column)
    return mean_ci(np.array([a - b for a, b in means.values()]))


def reduction_over_organisms(
    table: pd.DataFrame, condition: str, set_name: str, column: str = "open_em"
) -> Estimate:
    """``1 - value(condition) / value(none)`` per organism, each side averaged over the organism's
    fine-tuning seeds (paired) first, then a t-interval over organisms; an organism whose unintervened
    mean is 0 has nothing to reduce and is left out (:func:`zero_baseline_organisms` names them)."""
    means = _seed_means(table, condition, NONE, set_name, column)
    return mean_ci(np.array([1 - treated / base for treated, base in means.values() if base > 0]))


def mean_over_organisms(
    table: pd.DataFrame,
    condition: str,
    set_name: str | None,
    column: str,
    bounds: tuple[float, float] | None = None,
) -> Estimate:
    """Mean of ``column`` under ``condition`` (each organism's seeds averaged first), with a t-interval
    over organisms; ``set_name`` None for a table without sets (the diagnostics)."""
    means = _seed_means(table, condition, condition, set_name, column)
    return mean_ci(np.array([a for a, _ in means.values()]), bounds=bounds)


def zero_baseline_organisms(table: pd.DataFrame, set_name: str) -> list[int]:
    """Organisms whose unintervened EM, averaged over their seeds, is 0 (left out of the reductions)."""
    means = _seed_means(table, NONE, NONE, set_name, "open_em")
    return [o for o, (base, _) in means.items() if base <= 0]


def summary_over_organisms(tables: Sequence[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    """Per (set, condition): the mean of each column (each organism's seeds averaged first) with its
    t-interval over organisms, and the numbers of organisms and of fine-tunes (the shape of
    :func:`condition_summary`, which :func:`emgeom.plots.filtering.condition_bars` draws)."""
    table = pd.concat(list(tables), ignore_index=True)
    rows = []
    for (set_name, condition), sub in table.groupby(["set", "condition"], sort=False):
        row: dict[str, object] = {"set": set_name, "condition": condition}
        for col in columns:
            e = mean_over_organisms(sub, condition, set_name, col)
            row.update({col: e.value, f"{col}_lo": e.lo, f"{col}_hi": e.hi})
        row["n organisms"] = sub["organism_seed"].nunique()
        row["n fine-tunes"] = len(sub)
        rows.append(row)
    return pd.DataFrame(rows)


def damage_table(studies: Mapping[int, OrganismBlocking]) -> pd.DataFrame:
    """One row per (organism, seed): the harmful ablation's base-loss increase, the chosen damage-matched
    control's and the range of the candidates' (nats), and the chosen one's gap to the harmful one."""
    return pd.DataFrame(
        [
            {
                "organism": o,
                "seed": seed,
                "harmful increase": m.target,
                "damage-matched increase": m.chosen,
                "gap": m.gap,
                "candidates min": min(m.candidates),
                "candidates max": max(m.candidates),
                "n candidates": len(m.candidates),
            }
            for o, b in studies.items()
            for seed, m in b.damage.items()
        ]
    )
