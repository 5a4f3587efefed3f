"""Feature geometry: which SAE latents a dataset uses, and how close they sit to harmful latents.

This is our reconstruction of the paper's analysis (its selection rules are not public). Each rule is a
parameter:

- a dataset's latents: mean SAE activation over the assistant-response tokens of its rows;
- *inducing* latents of a domain: the top-k by mean activation on its inducing set minus its paired
  non-inducing set; *non-inducing* latents: the reverse contrast (``"reverse"``) or the top-k of the
  non-inducing set alone (``"control_top"``);
- *harmful* latents: top-k by activation on misaligned answers minus aligned answers;
- closeness: for every latent of a set, its maximum (and mean) cosine similarity to the harmful set,
  using decoder directions (encoder directions as a robustness check); a latent that belongs to both
  sets has similarity 1 with itself, so every comparison is also reported without shared latents;
- baselines: random latents matched in firing frequency; a permutation test of inducing vs
  non-inducing that permutes the set labels within each SAE.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm import tqdm

from emgeom.batching import answer_windows, length_batches, pad_id
from emgeom.chat import ChatRow
from emgeom.saes import check_sae_fits
from emgeom.stats import Estimate, mean_ci

NonInducingRule = Literal["reverse", "control_top"]
Directions = Literal["decoder", "encoder"]


@torch.no_grad()
def response_activations(
    hooked: Any,
    sae: Any,
    tokenizer: Any,
    rows: Sequence[ChatRow],
    *,
    hook_name: str | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> Float[Tensor, "n_rows d_sae"]:
    """Mean SAE latent activation over each row's assistant-response tokens.

    Runs the model only up to the SAE's layer (``stop_at_layer``), in batches of rows of similar length
    (right padding; causal attention keeps padding from touching real tokens).
    """
    check_sae_fits(sae, hooked, hook_name)
    name = hook_name or sae.cfg.metadata.hook_name
    layer = resid_pre_layer(name)
    windows = answer_windows(tokenizer, rows, int(hooked.cfg.n_ctx), keep="start")
    out = torch.zeros(len(rows), int(sae.cfg.d_sae))
    batches = length_batches(windows, batch_size, pad_id(tokenizer))
    total = -(-len(windows) // batch_size)
    for idx, tokens, mask in tqdm(batches, total=total, desc="SAE activations", disable=not progress):
        resid = hooked(tokens.to(hooked.cfg.device), stop_at_layer=layer)  # [batch, pos, d_model]
        feats = sae.encode(resid.to(sae.W_dec.dtype)).float().cpu()  # [batch, pos, d_sae]
        counts = mask.sum(1, keepdim=True).clamp(min=1)
        out[idx] = (feats * mask[..., None]).sum(1) / counts
    return out


def resid_pre_layer(hook_name: str) -> int:
    """The index of the residual stream an SAE reads, as the block it enters: ``blocks.<L>.hook_resid_pre``
    is ``L`` and ``blocks.<L>.hook_resid_post`` (Gemma Scope, most published SAEs) is ``L + 1``, the
    same vector. It is what ``stop_at_layer`` runs up to and the index into Hugging Face
    ``hidden_states`` (except after the last block, where Hugging Face applies the final norm). Other hook
    points are refused."""
    parts = hook_name.split(".")
    if len(parts) != 3 or parts[0] != "blocks" or parts[2] not in ("hook_resid_pre", "hook_resid_post"):
        raise ValueError(
            "only residual-stream SAEs (blocks.<L>.hook_resid_pre or blocks.<L>.hook_resid_post) are "
            f"supported, got {hook_name!r}"
        )
    return int(parts[1]) + (parts[2] == "hook_resid_post")


def top_latents(score: Float[Tensor, " d_sae"] | np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores (ties broken by index), highest first."""
    s = np.asarray(score, float)
    if not 1 <= k <= s.size:
        raise ValueError(f"k must be in [1, {s.size}], got {k}")
    return np.lexsort((np.arange(s.size), -s))[:k]


@dataclass(frozen=True)
class FeatureSets:
    """Latent indices of one domain's sets (and the harmful set they are compared with)."""

    inducing: np.ndarray
    noninducing: np.ndarray
    harmful: np.ndarray

    def shared(self, which: Literal["inducing", "noninducing"]) -> np.ndarray:
        return np.intersect1d(getattr(self, which), self.harmful)


def select_sets(
    inducing_acts: Tensor,
    noninducing_acts: Tensor,
    harmful_acts: Tensor,
    benign_acts: Tensor,
    k: int,
    k_harmful: int,
    rule: NonInducingRule = "reverse",
) -> FeatureSets:
    """Pick the three sets from per-row activations (``[rows, d_sae]`` each, see module docs)."""
    ind_mean, non_mean = inducing_acts.mean(0), noninducing_acts.mean(0)
    harmful = top_latents(harmful_acts.mean(0) - benign_acts.mean(0), k_harmful)
    inducing = top_latents(ind_mean - non_mean, k)
    if rule == "reverse":
        noninducing = top_latents(non_mean - ind_mean, k)
    elif rule == "control_top":
        noninducing = top_latents(non_mean, k)
    else:
        raise ValueError(f"unknown non-inducing rule {rule!r}; use 'reverse' or 'control_top'")
    return FeatureSets(inducing, noninducing, harmful)


def unit_directions(sae: Any, which: Directions = "decoder") -> np.ndarray:
    """Unit-norm latent directions ``[d_sae, d_in]`` (decoder rows, or encoder columns)."""
    if which == "decoder":
        w = sae.W_dec.detach().float().cpu().numpy()
    elif which == "encoder":
        w = sae.W_enc.detach().float().cpu().numpy().T
    else:
        raise ValueError(f"directions must be 'decoder' or 'encoder', got {which!r}")
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    return w / np.where(norms == 0, 1.0, norms)


def similarity_to(
    latents: np.ndarray, targets: np.ndarray, directions: np.ndarray, reduce: Literal["max", "mean"] = "max"
) -> np.ndarray:
    """For each latent, its max (or mean) cosine similarity to the target latents; a latent that is
    itself a target counts its similarity 1 with itself (that is the "shared latent" case)."""
    if latents.size == 0 or targets.size == 0:
        return np.zeros(0)
    cos = directions[latents] @ directions[targets].T  # [n_latents, n_targets]
    return cos.max(1) if reduce == "max" else cos.mean(1)


def frequency_matched_random(
    freq: np.ndarray, like: np.ndarray, exclude: np.ndarray, rng: np.random.Generator, n_bins: int = 10
) -> np.ndarray:
    """Random latents, one per latent of ``like``, drawn from the same firing-frequency decile (over
    latents that ever fire) and never from ``exclude``."""
    alive = np.flatnonzero(freq > 0)
    edges = np.quantile(freq[alive], np.linspace(0, 1, n_bins + 1)) if alive.size else np.zeros(n_bins + 1)
    bin_of = np.clip(np.searchsorted(edges, freq, side="right") - 1, 0, n_bins - 1)
    allowed = np.setdiff1d(alive, exclude)
    picks = []
    for latent in like:
        pool = allowed[bin_of[allowed] == bin_of[latent]]
        pool = pool if pool.size else allowed
        picks.append(rng.choice(pool))
    return np.asarray(picks, dtype=int)


def stratified_permutation_gap(
    a: Sequence[np.ndarray], b: Sequence[np.ndarray], n_perm: int = 5000, seed: int = 0
) -> tuple[float, float]:
    """Gap ``mean(a) - mean(b)`` averaged over strata (SAEs), and its one-sided p-value (is ``a``
    higher?) from permuting the a/b labels within each stratum. Returns ``(gap, p)``."""
    rng = np.random.default_rng(seed)
    strata = [
        (np.asarray(x, float), np.asarray(y, float)) for x, y in zip(a, b, strict=True) if x.size and y.size
    ]
    if not strata:
        return float("nan"), float("nan")
    observed = float(np.mean([x.mean() - y.mean() for x, y in strata]))
    exceed = 0
    for _ in range(n_perm):
        gaps = []
        for x, y in strata:
            pooled = rng.permutation(np.concatenate([x, y]))
            gaps.append(pooled[: x.size].mean() - pooled[x.size :].mean())
        exceed += float(np.mean(gaps)) >= observed - 1e-12
    return observed, (exceed + 1) / (n_perm + 1)


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """Standardised mean difference with the pooled standard deviation."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 2 or b.size < 2:
        return float("nan")
    pooled = np.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2))
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else float("nan")


@dataclass(frozen=True)
class GapResult:
    """Inducing vs non-inducing closeness to the harmful set, over SAEs (one value per SAE in lists).

    ``gap``: mean over SAEs of (mean max-cosine of inducing latents - that of non-inducing latents), with a
    t-interval over SAEs; ``p``: one-sided stratified permutation p-value; ``d``: Cohen's d on the pooled
    values.
    """

    gap: Estimate
    p: float
    d: float


def gap_over_saes(
    inducing: Sequence[np.ndarray], noninducing: Sequence[np.ndarray], n_perm: int = 5000, seed: int = 0
) -> GapResult:
    """Summarise per-SAE similarity values of two sets as a :class:`GapResult`."""
    per_sae = [x.mean() - y.mean() for x, y in zip(inducing, noninducing, strict=True) if x.size and y.size]
    _, p = stratified_permutation_gap(inducing, noninducing, n_perm, seed)
    d = cohens_d(
        np.concatenate([np.asarray(x) for x in inducing]),
        np.concatenate([np.asarray(y) for y in noninducing]),
    )
    return GapResult(mean_ci(np.asarray(per_sae)), p, d)


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


def harmful_latents(
    hooked: Any,
    sae: Any,
    tokenizer: Any,
    harmful_rows: Sequence[ChatRow],
    benign_rows: Sequence[ChatRow],
    k_harmful: int,
) -> np.ndarray:
    """The harmful set alone: top-``k_harmful`` latents of harmful minus benign answers."""
    acts = response_activations(hooked, sae, tokenizer, [*harmful_rows, *benign_rows])
    n = len(harmful_rows)
    return top_latents(acts[:n].mean(0) - acts[n:].mean(0), k_harmful)


def set_similarities(
    hooked: Any, sae: Any, tokenizer: Any, sets: dict[str, Sequence[ChatRow]], harmful: np.ndarray, k: int
) -> dict[str, float]:
    """For each named fine-tuning set: its own latents (top-``k`` of its mean activation minus the mean
    over all the sets, so every set, inducing or control, is treated alike), and their mean max-cosine
    (decoder directions) to the harmful set."""
    names = list(sets)
    means = torch.stack([response_activations(hooked, sae, tokenizer, sets[n]).mean(0) for n in names])
    dirs = unit_directions(sae, "decoder")
    out = {}
    for i, name in enumerate(names):
        latents = top_latents(means[i] - means.mean(0), k)
        out[name] = float(similarity_to(latents, harmful, dirs, "max").mean())
    return out


def target_latent(
    hooked: Any, sae: Any, tokenizer: Any, inducing_rows: Sequence[ChatRow], paired_rows: Sequence[ChatRow]
) -> int:
    """The target feature of an inducing set: the single latent with the largest mean activation on its
    answers minus its paired non-inducing set's (chapter 4's inducing rule with ``k = 1``)."""
    ind = response_activations(hooked, sae, tokenizer, inducing_rows).mean(0)
    paired = response_activations(hooked, sae, tokenizer, paired_rows).mean(0)
    return int(top_latents(ind - paired, 1)[0])
