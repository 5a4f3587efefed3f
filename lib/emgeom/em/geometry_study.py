"""Chapter 4's study over SAEs and domains: the similarity table of every feature set of every domain
(one :class:`SAEGeometry` per SAE), its per-domain summary with tests, and a plain-words reading of it."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from emgeom.em.geometry import (
    FeatureSets,
    NonInducingRule,
    frequency_matched_random,
    gap_over_saes,
    select_sets,
    similarity_to,
)
from emgeom.lm.chat import ChatRow
from emgeom.sae.readouts import Directions, response_activations, unit_directions


@dataclass(frozen=True)
class GeometryConfig:
    """The reconstruction's choices (see the module docstring).

    Attributes:
        k: latents per inducing / non-inducing set.
        k_harmful: latents in the harmful set.
        rule: how the non-inducing set is chosen (``"reverse"`` contrast or ``"control_top"``).
        n_perm: permutations of the test.
        seed: seeds the random baseline and the permutations.
    """

    k: int = 10
    k_harmful: int = 10
    rule: NonInducingRule = "reverse"
    n_perm: int = 5000
    seed: int = 0


@dataclass(frozen=True)
class DomainData:
    """Chat rows of one domain's pair of fine-tuning sets."""

    inducing: Sequence[ChatRow]
    noninducing: Sequence[ChatRow]


def similarity_rows(
    sets: FeatureSets, unit_dirs: np.ndarray, freq: np.ndarray, rng: np.random.Generator, **labels: Any
) -> list[dict[str, Any]]:
    """One record per latent of the inducing, non-inducing and frequency-matched random sets, with its
    max and mean cosine to the harmful set, for all latents and with shared latents excluded."""
    exclude = np.concatenate([sets.inducing, sets.noninducing, sets.harmful])
    random_latents = frequency_matched_random(
        freq, np.concatenate([sets.inducing, sets.noninducing]), exclude, rng
    )
    out = []
    for name, latents in (
        ("inducing", sets.inducing),
        ("non-inducing", sets.noninducing),
        ("random", random_latents),
    ):
        shared = np.intersect1d(latents, sets.harmful)
        for excl in (False, True):
            kept = np.setdiff1d(latents, shared) if excl else latents
            max_cos = similarity_to(kept, sets.harmful, unit_dirs, "max")
            mean_cos = similarity_to(kept, sets.harmful, unit_dirs, "mean")
            out += [
                {
                    **labels,
                    "set": name,
                    "shared_excluded": excl,
                    "latent": int(lat),
                    "max_cos": float(mx),
                    "mean_cos": float(mn),
                    "shared_with_harmful": int(lat) in set(shared.tolist()),
                }
                for lat, mx, mn in zip(kept, max_cos, mean_cos, strict=True)
            ]
    return out


@dataclass(frozen=True)
class SAEGeometry:
    """One SAE's result: similarity ``records`` (see :func:`similarity_rows`), the feature ``sets`` per
    domain, and per group of rows (``"harmful"``, ``"benign"``, ``"<domain>/inducing"``,
    ``"<domain>/non-inducing"``) the ``rows`` and their ``activations`` (``[rows, d_sae]``)."""

    records: list[dict[str, Any]]
    sets: dict[str, FeatureSets]
    rows: dict[str, Sequence[ChatRow]]
    activations: dict[str, Tensor]


def geometry_for_sae(
    hooked: Any,
    sae: Any,
    tokenizer: Any,
    domains: dict[str, DomainData],
    harmful_rows: Sequence[ChatRow],
    benign_rows: Sequence[ChatRow],
    cfg: GeometryConfig,
    sae_label: Any = 0,
    progress: bool = False,
) -> SAEGeometry:
    """Select every domain's sets with one SAE and measure their closeness to the harmful set (records
    labelled with ``sae``, ``domain`` and ``directions``, decoder and encoder)."""
    groups: dict[str, Sequence[ChatRow]] = {"harmful": harmful_rows, "benign": benign_rows}
    for d, data in domains.items():
        groups[f"{d}/inducing"], groups[f"{d}/non-inducing"] = data.inducing, data.noninducing
    names = list(groups)
    all_rows = [r for n in names for r in groups[n]]
    acts = response_activations(hooked, sae, tokenizer, all_rows, progress=progress)
    split, start = {}, 0
    for n in names:
        split[n] = acts[start : start + len(groups[n])]
        start += len(groups[n])
    freq = (acts > 0).float().mean(0).numpy()  # fraction of rows whose answer fires the latent
    rng = np.random.default_rng([cfg.seed, zlib.crc32(str(sae_label).encode())])  # deterministic per SAE
    records: list[dict[str, Any]] = []
    sets_by_domain = {}
    dirs = {"decoder": unit_directions(sae, "decoder"), "encoder": unit_directions(sae, "encoder")}
    for d in domains:
        sets = select_sets(
            split[f"{d}/inducing"],
            split[f"{d}/non-inducing"],
            split["harmful"],
            split["benign"],
            cfg.k,
            cfg.k_harmful,
            cfg.rule,
        )
        sets_by_domain[d] = sets
        for which, unit_dirs in dirs.items():
            records += similarity_rows(sets, unit_dirs, freq, rng, sae=sae_label, domain=d, directions=which)
    return SAEGeometry(records, sets_by_domain, groups, split)


def summarise_gaps(table: Any, cfg: GeometryConfig, directions: Directions = "decoder") -> Any:
    """Per domain: inducing minus non-inducing mean max-cosine to the harmful set, over SAEs, with and
    without shared latents; the random baseline; the number of shared latents per SAE."""
    import pandas as pd

    out = []
    sub = table[table["directions"] == directions]
    for d in dict.fromkeys(sub["domain"]):
        row: dict[str, Any] = {"domain": d}
        for excl in (False, True):
            part = sub[(sub["domain"] == d) & (sub["shared_excluded"] == excl)]
            saes = list(dict.fromkeys(part["sae"]))

            def values(name: str, part: Any = part, saes: list[Any] = saes) -> list[np.ndarray]:
                return [part[(part["sae"] == s) & (part["set"] == name)]["max_cos"].to_numpy() for s in saes]

            res = gap_over_saes(values("inducing"), values("non-inducing"), cfg.n_perm, cfg.seed)
            suffix = "_excl_shared" if excl else ""
            row.update(
                {
                    f"gap{suffix}": res.gap.value,
                    f"gap{suffix}_lo": res.gap.lo,
                    f"gap{suffix}_hi": res.gap.hi,
                    f"p{suffix}": res.p,
                    f"d{suffix}": res.d,
                    f"inducing{suffix}": float(
                        np.mean([v.mean() for v in values("inducing") if v.size] or [np.nan])
                    ),
                    f"noninducing{suffix}": float(
                        np.mean([v.mean() for v in values("non-inducing") if v.size] or [np.nan])
                    ),
                    f"random{suffix}": float(
                        np.mean([v.mean() for v in values("random") if v.size] or [np.nan])
                    ),
                }
            )
        full = sub[(sub["domain"] == d) & (~sub["shared_excluded"])]
        row["shared_inducing_per_sae"] = (
            full[(full["set"] == "inducing")].groupby("sae")["shared_with_harmful"].sum().mean()
        )
        row["shared_noninducing_per_sae"] = (
            full[(full["set"] == "non-inducing")].groupby("sae")["shared_with_harmful"].sum().mean()
        )
        row["n_saes"] = full["sae"].nunique()
        out.append(row)
    return pd.DataFrame(out)


def top_examples(
    geo: SAEGeometry, groups: Sequence[str], latents: np.ndarray, n: int = 3
) -> list[tuple[float, str]]:
    """The ``n`` rows (from the named groups) whose answers most activate a latent set (mean over its
    latents), as ``(activation, "user → assistant")``."""
    rows = [r for g in groups for r in geo.rows[g]]
    acts = torch.cat([geo.activations[g] for g in groups])
    score = acts[:, torch.as_tensor(latents)].mean(1)
    out = []
    for i in torch.argsort(score, descending=True)[:n].tolist():
        msgs = rows[i]["messages"]
        user = next((m["content"] for m in msgs if m["role"] == "user"), "")
        answer = next((m["content"] for m in reversed(msgs) if m["role"] == "assistant"), "")
        out.append((float(score[i]), f"{user} → {answer}"))
    return out


def describe_gaps(summary: Any, alpha: float = 0.05) -> str:
    """A plain-language summary of :func:`summarise_gaps` output (computed, so the text follows the run)."""
    n = len(summary)
    pos = summary[(summary["gap"] > 0) & (summary["p"] < alpha)]["domain"].tolist()
    pos_excl = summary[(summary["gap_excl_shared"] > 0) & (summary["p_excl_shared"] < alpha)][
        "domain"
    ].tolist()
    shared = summary.set_index("domain")["shared_inducing_per_sae"]
    lines = [
        "Over all latents, inducing features are closer to the harmful set than non-inducing ones "
        f"(p < {alpha}) in {len(pos)} of {n} domains" + (f": {', '.join(pos)}." if pos else "."),
        f"With latents shared with the harmful set excluded, in {len(pos_excl)} of {n}"
        + (f": {', '.join(pos_excl)}." if pos_excl else "."),
        "Inducing latents that are also harmful latents, per SAE: "
        + ", ".join(f"{d} {v:.1f}" for d, v in shared.items())
        + ".",
    ]
    return "\n".join(lines)
