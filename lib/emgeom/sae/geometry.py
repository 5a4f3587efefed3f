"""Feature geometry: which SAE latents a dataset uses, and how close they sit to harmful latents.

This is our reconstruction of the paper's analysis (its selection rules are not public). Each rule is a
parameter:

- a dataset's latents: mean SAE activation over the assistant-response tokens of its rows;
- *inducing* and *non-inducing* latents of a domain: by default (``"symmetric"``) each set's top-k by
  mean activation minus that of a common reference set (advice of every domain), so neither set is
  chosen by contrast with the other; or the inducing set minus its paired non-inducing set and the
  reverse contrast (``"reverse"``), or that and the top-k of the non-inducing set alone
  (``"control_top"``);
- *harmful* latents: top-k by activation on misaligned answers minus aligned answers;
- closeness: for every latent of a set, its maximum (and mean) cosine similarity to the harmful set,
  using decoder directions (encoder directions as a robustness check); a latent that belongs to both
  sets has similarity 1 with itself, so every comparison is also reported without shared latents;
- baselines: random latents matched in firing frequency; a permutation test of inducing vs
  non-inducing that permutes the set labels within each SAE."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from emgeom.core.stats import Estimate, mean_ci
from emgeom.lm.chat import ChatRow
from emgeom.sae.readouts import response_activations, unit_directions

NonInducingRule = Literal["symmetric", "reverse", "control_top"]


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


def select_pair(
    inducing_mean: np.ndarray | Tensor,
    noninducing_mean: np.ndarray | Tensor,
    k: int,
    rule: NonInducingRule,
    reference_mean: np.ndarray | Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The inducing and non-inducing latents from the two sets' mean activations (``[d_sae]`` each).

    ``"symmetric"``: each set's top-``k`` against a common reference (``reference_mean``, e.g. advice of
    every domain), so neither set is defined by the other; ``"reverse"``: inducing minus non-inducing and
    the reverse; ``"control_top"``: inducing minus non-inducing, and the non-inducing set's own top-``k``.
    """
    ind, non = np.asarray(inducing_mean, float), np.asarray(noninducing_mean, float)
    if rule == "symmetric":
        if reference_mean is None:
            raise ValueError("the symmetric rule needs a reference set's mean activations")
        ref = np.asarray(reference_mean, float)
        return top_latents(ind - ref, k), top_latents(non - ref, k)
    if rule == "reverse":
        return top_latents(ind - non, k), top_latents(non - ind, k)
    if rule == "control_top":
        return top_latents(ind - non, k), top_latents(non, k)
    raise ValueError(f"unknown non-inducing rule {rule!r}; use 'symmetric', 'reverse' or 'control_top'")


def select_sets(
    inducing_acts: Tensor,
    noninducing_acts: Tensor,
    harmful_acts: Tensor,
    benign_acts: Tensor,
    k: int,
    k_harmful: int,
    rule: NonInducingRule = "symmetric",
    reference_acts: Tensor | None = None,
) -> FeatureSets:
    """Pick the three sets from per-row activations (``[rows, d_sae]`` each, see module docs)."""
    harmful = top_latents(harmful_acts.mean(0) - benign_acts.mean(0), k_harmful)
    reference = reference_acts.mean(0) if reference_acts is not None else None
    inducing, noninducing = select_pair(inducing_acts.mean(0), noninducing_acts.mean(0), k, rule, reference)
    return FeatureSets(inducing, noninducing, harmful)


def similarity_to(
    latents: np.ndarray, targets: np.ndarray, directions: np.ndarray, reduce: Literal["max", "mean"] = "max"
) -> np.ndarray:
    """For each latent, its max (or mean) cosine similarity to the target latents; a latent that is
    itself a target counts its similarity 1 with itself (that is the "shared latent" case)."""
    if latents.size == 0 or targets.size == 0:
        return np.zeros(0)
    cos = directions[latents] @ directions[targets].T  # [n_latents, n_targets]
    return cos.max(1) if reduce == "max" else cos.mean(1)


def frequency_bins(freq: np.ndarray, n_bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The latents that ever fire, and every latent's firing-frequency bin (quantiles over those that
    fire): what the random baselines match on."""
    alive = np.flatnonzero(freq > 0)
    edges = np.quantile(freq[alive], np.linspace(0, 1, n_bins + 1)) if alive.size else np.zeros(n_bins + 1)
    return alive, np.clip(np.searchsorted(edges, freq, side="right") - 1, 0, n_bins - 1)


def frequency_matched_random(
    freq: np.ndarray, like: np.ndarray, exclude: np.ndarray, rng: np.random.Generator, n_bins: int = 10
) -> np.ndarray:
    """Random latents, one per latent of ``like``, drawn from the same firing-frequency decile (over
    latents that ever fire) and never from ``exclude``."""
    alive, bin_of = frequency_bins(freq, n_bins)
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
    inducing: Sequence[np.ndarray],
    noninducing: Sequence[np.ndarray],
    n_perm: int = 5000,
    seed: int = 0,
    groups: Sequence[Any] | None = None,
) -> GapResult:
    """Summarise per-SAE similarity values of two sets as a :class:`GapResult`.

    ``groups[i]`` names the replicate SAE ``i`` belongs to (its organism): the per-SAE gaps are averaged
    within a group and the interval is over groups, so SAEs of one organism are nested in it rather than
    pooled as independent. Without ``groups`` every SAE is its own replicate."""
    labels = list(groups) if groups is not None else list(range(len(inducing)))
    if len(labels) != len(inducing):
        raise ValueError(f"groups names {len(labels)} SAEs, the values {len(inducing)}")
    by_group: dict[Any, list[float]] = {}
    for label, x, y in zip(labels, inducing, noninducing, strict=True):
        if x.size and y.size:
            by_group.setdefault(label, []).append(float(x.mean() - y.mean()))
    # one organism: its SAEs are the only replicates there are (as core.stats.over_replicates does)
    per_group = (
        next(iter(by_group.values()))
        if len(by_group) == 1
        else [float(np.mean(v)) for v in by_group.values()]
    )
    _, p = stratified_permutation_gap(inducing, noninducing, n_perm, seed)
    d = cohens_d(
        np.concatenate([np.asarray(x) for x in inducing]),
        np.concatenate([np.asarray(y) for y in noninducing]),
    )
    return GapResult(mean_ci(np.asarray(per_group)), p, d)


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
