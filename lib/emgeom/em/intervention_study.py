"""Blocking the harmful directions during fine-tuning: a causal test of the paper's account and a second
mitigation (beyond the paper).

If EM spreads through the harmful latents' directions, a fine-tune that cannot use them (their span
projected out of the residual stream at the SAE's layer, during training only) should induce less EM
while still learning the narrow task; projecting out as many *random* directions should not. Controls:
no intervention; the decoder directions of random latents matched in firing frequency; random unit
vectors; and "preventative steering" (adding the mean harmful direction while training). Every
condition runs the same fine-tunes with the same seeds, so differences are paired by seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from emgeom.core.stats import Estimate, mean_ci
from emgeom.em.emergence import FineTuneSet, emergence_table
from emgeom.em.evaluators import Evaluator
from emgeom.em.geometry import frequency_matched_random
from emgeom.lm.chat import ChatRow, encode_chat
from emgeom.lm.finetune import FineTuneConfig
from emgeom.lm.intervention import Intervention
from emgeom.lm.training import IGNORE_INDEX, collate
from emgeom.sae.readouts import resid_pre_layer, response_activations, unit_directions

NONE = "none"
HARMFUL = "ablate harmful"
RANDOM_LATENTS = "ablate random latents"
RANDOM_DIRECTIONS = "ablate random directions"
STEER = "steer harmful"
CONDITIONS = (NONE, HARMFUL, RANDOM_LATENTS, RANDOM_DIRECTIONS, STEER)


def intervention_conditions(
    hooked: Any,
    sae: Any,
    tokenizer: Any,
    harmful: np.ndarray,
    frequency_rows: Sequence[ChatRow],
    steer_strength: float,
    seed: int = 0,
) -> dict[str, Intervention | None]:
    """The conditions, each applied at the SAE's layer: no intervention; ablating the span of the harmful
    latents' decoder directions; of as many frequency-matched random latents' (firing frequency over
    ``frequency_rows``); of as many random unit vectors; steering by ``steer_strength`` along the mean
    harmful direction."""
    layer = resid_pre_layer(sae.cfg.metadata.hook_name)
    dirs = unit_directions(sae, "decoder")
    harmful = np.asarray(harmful)
    freq = (response_activations(hooked, sae, tokenizer, frequency_rows) > 0).float().mean(0).numpy()
    rng = np.random.default_rng(seed)
    matched = frequency_matched_random(freq, harmful, harmful, rng)
    random_dirs = rng.standard_normal((len(harmful), dirs.shape[1]))
    return {
        NONE: None,
        HARMFUL: Intervention("ablate", layer, dirs[harmful]),
        RANDOM_LATENTS: Intervention("ablate", layer, dirs[matched]),
        RANDOM_DIRECTIONS: Intervention("ablate", layer, random_dirs),
        STEER: Intervention("steer", layer, dirs[harmful], strength=steer_strength),
    }


@torch.no_grad()
def residual_norm(model: Any, tokenizer: Any, sae: Any, rows: Sequence[ChatRow]) -> float:
    """Mean L2 norm of the residual stream at the SAE's input over the answer tokens of ``rows`` (the
    scale a steering strength is given in)."""
    layer = resid_pre_layer(sae.cfg.metadata.hook_name)
    norms = []
    for r in rows:
        enc = encode_chat(tokenizer, r["messages"])
        out = model(input_ids=torch.tensor([enc.input_ids], device=model.device), output_hidden_states=True)
        h = out.hidden_states[layer][0].float().cpu()  # [pos, d_model]
        norms.append(h[torch.tensor(enc.loss_mask, dtype=torch.bool)].norm(dim=-1))
    return float(torch.cat(norms).mean())


@torch.no_grad()
def heldout_loss(model: Any, tokenizer: Any, rows: Sequence[ChatRow], batch_size: int = 32) -> float:
    """Mean next-token loss (nats) on the assistant tokens of ``rows`` (held out from the fine-tune)."""
    encoded = [encode_chat(tokenizer, r["messages"]) for r in rows]
    total, n = 0.0, 0
    for lo in range(0, len(encoded), batch_size):
        batch = collate(encoded[lo : lo + batch_size], tokenizer.pad_token_id or 0)
        out = model(**{k: v.to(model.device) for k, v in batch.items()})
        tokens = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())  # the tokens HF's shifted loss counts
        total += float(out.loss) * tokens
        n += tokens
    return total / max(n, 1)


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
    conditions: Mapping[str, Intervention | None],
    evaluate: Evaluator,
    heldout: Mapping[str, Sequence[ChatRow]],
    progress: bool = False,
) -> pd.DataFrame:
    """:func:`~emgeom.em.emergence.emergence_table` of every set under every condition (the intervention
    acts during training only; the evaluated model runs without it): one row per (condition, set,
    seed) with ``condition``, the evaluator's rates and ``heldout_loss`` (held-out rows of the set's
    kind, ``heldout[set name]``)."""
    tables = []
    for name, intervention in conditions.items():
        losses = HeldoutLoss(tokenizer, heldout)
        table = emergence_table(
            model,
            tokenizer,
            sets,
            replace(ft, intervention=intervention),
            seeds,
            evaluate,
            include_aligned=False,
            progress=progress,
            after_finetune=losses,
        )
        table["heldout_loss"] = [
            losses.losses.get((s, k), np.nan) for s, k in zip(table["set"], table["seed"], strict=True)
        ]
        tables.append(table.assign(condition=name))
    return pd.concat(tables, ignore_index=True)


def _by_seed(table: pd.DataFrame, condition: str, set_name: str, column: str) -> pd.Series:
    sub = table[(table["condition"] == condition) & (table["set"] == set_name)]
    return sub.set_index("seed")[column]


def relative_reduction(
    table: pd.DataFrame, condition: str, set_name: str, column: str = "open_em"
) -> Estimate:
    """Mean over seeds of ``1 - value(condition) / value(none)``, paired by seed (seeds whose
    unintervened value is 0 are left out and counted in ``n``)."""
    base, cond = _by_seed(table, NONE, set_name, column), _by_seed(table, condition, set_name, column)
    values = [1 - cond[s] / base[s] for s in cond.index if s in base.index and base[s] > 0]
    return mean_ci(np.array(values))


def reduction_difference(table: pd.DataFrame, condition: str, other: str, set_name: str) -> Estimate:
    """Mean over seeds of the relative reduction under ``condition`` minus that under ``other``."""
    base = _by_seed(table, NONE, set_name, "open_em")
    a, b = _by_seed(table, condition, set_name, "open_em"), _by_seed(table, other, set_name, "open_em")
    values = [(b[s] - a[s]) / base[s] for s in a.index if s in b.index and base.get(s, 0) > 0]
    return mean_ci(np.array(values))


def only(
    conditions: Mapping[str, Intervention | None], names: Sequence[str]
) -> dict[str, Intervention | None]:
    """The named conditions, in that order."""
    return {name: conditions[name] for name in names}


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
