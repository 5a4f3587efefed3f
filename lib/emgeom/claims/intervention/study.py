"""Blocking the harmful directions during fine-tuning: a causal test of the paper's account and a second
mitigation (beyond the paper).

If EM spreads through the harmful latents' directions, a fine-tune whose residual stream has them
projected out at the SAE's layer (during training only) should induce less EM while still learning the
narrow task; projecting out as many *random* directions should not. The controls are built to be the
same size as the harmful ablation, not only the same rank: for every fine-tuning seed, a fresh set of
distinct frequency-matched random latents, chosen among candidates as the one whose span removes the
same share of the residual's energy on the fine-tuning tokens; a fresh set of random unit vectors; and
steering along a random unit vector at the harmful steering's strength. Rank, energy removed and the
base model's loss with each ablation on are reported per condition and seed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from emgeom.core.stats import Estimate, mean_ci, paired_relative_reduction
from emgeom.em.emergence import FineTuneSet, emergence_table
from emgeom.em.evaluators import Evaluator
from emgeom.lm.chat import ChatRow, encode_chat
from emgeom.lm.finetune import FineTuneConfig
from emgeom.lm.intervention import Intervention, intervening
from emgeom.lm.training import IGNORE_INDEX, collate
from emgeom.sae.readouts import hf_answer_residuals, resid_pre_layer, response_activations, unit_directions

NONE = "none"
HARMFUL = "ablate harmful"
RANDOM_LATENTS = "ablate random latents"
RANDOM_DIRECTIONS = "ablate random directions"
STEER = "steer harmful"
STEER_RANDOM = "steer random"
CONDITIONS = (NONE, HARMFUL, RANDOM_LATENTS, RANDOM_DIRECTIONS, STEER, STEER_RANDOM)

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


@dataclass
class ConditionBuilder:
    """Builds each seed's conditions from the harmful latents (module docstring). ``residuals``: answer
    tokens of the fine-tuning set at the SAE's input (for energy matching); ``freq``: each latent's
    firing frequency; ``steer_strength`` in residual units; ``n_candidates`` random-latent sets tried
    per seed."""

    sae: Any
    harmful: np.ndarray
    freq: np.ndarray
    residuals: np.ndarray
    steer_strength: float
    n_candidates: int = 20
    built: dict[int, dict[str, Intervention | None]] = field(default_factory=dict)

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
        self.built[seed] = {
            NONE: None,
            HARMFUL: Intervention("ablate", layer, dirs[harmful]),
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
) -> ConditionBuilder:
    """A :class:`ConditionBuilder` whose firing frequencies and residuals come from ``rows`` (the
    fine-tuning sets' rows) and whose steering strength is ``steer_scale`` times the residual's mean
    norm on their answer tokens."""
    residuals = answer_residuals(model, tokenizer, sae, rows)
    freq = (response_activations(hooked, sae, tokenizer, rows) > 0).float().mean(0).numpy()
    strength = steer_scale * float(np.linalg.norm(residuals, axis=1).mean())
    return ConditionBuilder(sae, np.asarray(harmful), freq, residuals, strength)


@torch.no_grad()
def heldout_loss(
    model: Any, tokenizer: Any, rows: Sequence[ChatRow], intervention: Intervention | None = None
) -> float:
    """Mean next-token loss (nats) on the assistant tokens of ``rows``, optionally with ``intervention``
    on (for the base model's loss with an ablation in place)."""
    encoded = [encode_chat(tokenizer, r["messages"]) for r in rows]
    total, n = 0.0, 0
    with intervening(model, intervention):
        for lo in range(0, len(encoded), 32):
            batch = collate(encoded[lo : lo + 32], tokenizer.pad_token_id or 0)
            out = model(**{k: v.to(model.device) for k, v in batch.items()})
            tokens = int(
                (batch["labels"][:, 1:] != IGNORE_INDEX).sum()
            )  # the tokens HF's shifted loss counts
            total += float(out.loss) * tokens
            n += tokens
    return total / max(n, 1)


def condition_diagnostics(
    model: Any, tokenizer: Any, builder: ConditionBuilder, rows: Sequence[ChatRow], seeds: Sequence[int]
) -> pd.DataFrame:
    """Per condition and seed: the intervention's rank, the share of the residual's energy an ablation
    removes on the fine-tuning tokens, and the base model's loss on ``rows`` with it on (how hard the
    intervention makes the task before any training)."""
    out = []
    for seed in seeds:
        for name, iv in builder(seed).items():
            out.append(
                {
                    "condition": name,
                    "seed": seed,
                    "rank": 0 if iv is None else iv.rank,
                    "energy removed": energy_removed(builder.residuals, iv.directions)
                    if iv is not None and iv.kind == "ablate"
                    else 0.0,
                    "base loss with it": heldout_loss(model, tokenizer, rows, iv),
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
