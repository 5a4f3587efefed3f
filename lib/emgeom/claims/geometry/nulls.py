"""Tests of chapter 4's similarity gap that could have failed: the null is built at the level of the
claim.

The claim is about DATA ("inducing data's features sit closer to harmful features than non-inducing
data's"), so the main null permutes the ROWS of the two sets and redoes the whole selection (the
top-k contrasts) and the gap inside every permutation; shuffling the labels of already selected latents
(:func:`~emgeom.sae.geometry.stratified_permutation_gap`) leaves the selection, where most of an effect
can arise, outside the null. Two more nulls say which side carries a gap: each set's mean closeness
against frequency-matched random latent sets of the same size. And an SAE-free check: the cosine of
the (inducing − non-inducing) and (harmful − benign) difference-of-means directions in the raw residual
stream, with the same row permutation.

Every test takes replicates (one per SAE, nested in organisms as the caller arranges); the same row
permutation is applied to every replicate, because the rows are the same data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emgeom.core.stats import Estimate
from emgeom.sae.geometry import NonInducingRule, frequency_bins, select_pair, similarity_to


@dataclass(frozen=True)
class SelectionReplicate:
    """One SAE's view of one domain: per-row mean activations of the inducing and the non-inducing rows
    (``[rows, d_sae]``; row ``i`` is the same chat in every replicate), each latent's max cosine to that
    SAE's harmful latents (``[d_sae]``, decoder directions), and the reference set's mean activation
    (``[d_sae]``) that the symmetric rule selects against (it is not permuted: it is neither set)."""

    inducing: np.ndarray
    noninducing: np.ndarray
    closeness: np.ndarray
    reference: np.ndarray | None = None


def selected_gap(
    inducing: np.ndarray,
    noninducing: np.ndarray,
    closeness: np.ndarray,
    k: int,
    rule: NonInducingRule,
    reference: np.ndarray | None = None,
) -> float:
    """Select the two latent sets from these rows (chapter 4's rule) and return the mean closeness of
    the inducing latents minus that of the non-inducing latents."""
    ind, non = select_pair(inducing.mean(0), noninducing.mean(0), k, rule, reference)
    return float(closeness[ind].mean() - closeness[non].mean())


@dataclass(frozen=True)
class PermutationResult:
    """``observed``: the statistic (mean over replicates); ``null``: its value under each permutation;
    ``p``: one-sided (observed at least as large), ``(exceed + 1) / (n + 1)``."""

    observed: float
    null: np.ndarray
    p: float


def _p_upper(observed: float, null: np.ndarray) -> float:
    return float((np.sum(null >= observed - 1e-12) + 1) / (null.size + 1))


def row_permutation_gap(
    replicates: Sequence[SelectionReplicate], k: int, rule: NonInducingRule, n_perm: int, seed: int = 0
) -> PermutationResult:
    """The gap with a null that permutes rows between the inducing and the non-inducing set and redoes
    the selection (see the module docstring)."""
    if not replicates:
        raise ValueError("need at least one replicate")
    n_ind, n_non = replicates[0].inducing.shape[0], replicates[0].noninducing.shape[0]
    if any(r.inducing.shape[0] != n_ind or r.noninducing.shape[0] != n_non for r in replicates):
        raise ValueError("every replicate must read the same rows")
    pooled = [np.concatenate([r.inducing, r.noninducing]) for r in replicates]
    observed = float(
        np.mean(
            [selected_gap(r.inducing, r.noninducing, r.closeness, k, rule, r.reference) for r in replicates]
        )
    )
    rng = np.random.default_rng(seed)
    null = np.empty(n_perm)
    for i in range(n_perm):
        order = rng.permutation(n_ind + n_non)
        a, b = order[:n_ind], order[n_ind:]
        null[i] = np.mean(
            [
                selected_gap(x[a], x[b], r.closeness, k, rule, r.reference)
                for x, r in zip(pooled, replicates, strict=True)
            ]
        )
    return PermutationResult(observed, null, _p_upper(observed, null))


def row_bootstrap_gap(
    replicates: Sequence[SelectionReplicate], k: int, rule: NonInducingRule, n_boot: int, seed: int = 0
) -> Estimate:
    """The gap (mean over replicates) with a percentile 95% interval from resampling the rows of each set
    with replacement and redoing the selection (the same resample in every replicate): how much the gap
    depends on which rows were drawn, for these models and SAEs."""
    observed = float(
        np.mean(
            [selected_gap(r.inducing, r.noninducing, r.closeness, k, rule, r.reference) for r in replicates]
        )
    )
    n_ind, n_non = replicates[0].inducing.shape[0], replicates[0].noninducing.shape[0]
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    for i in range(n_boot):
        a, b = rng.integers(0, n_ind, n_ind), rng.integers(0, n_non, n_non)
        boot[i] = np.mean(
            [
                selected_gap(r.inducing[a], r.noninducing[b], r.closeness, k, rule, r.reference)
                for r in replicates
            ]
        )
    lo, hi = np.quantile(boot, [0.025, 0.975]) if n_boot else (float("nan"), float("nan"))
    return Estimate(observed, float(lo), float(hi), len(replicates))


def latent_label_gap(
    replicates: Sequence[SelectionReplicate], k: int, rule: NonInducingRule, n_perm: int, seed: int = 0
) -> PermutationResult:
    """The old test, for comparison: select once, then permute the inducing/non-inducing labels of the
    selected latents within each replicate."""
    rng = np.random.default_rng(seed)
    sets = []
    for r in replicates:
        ind, non = select_pair(r.inducing.mean(0), r.noninducing.mean(0), k, rule, r.reference)
        sets.append((r.closeness[ind], r.closeness[non]))
    observed = float(np.mean([x.mean() - y.mean() for x, y in sets]))
    null = np.empty(n_perm)
    for i in range(n_perm):
        gaps = []
        for x, y in sets:
            z = rng.permutation(np.concatenate([x, y]))
            gaps.append(z[: x.size].mean() - z[x.size :].mean())
        null[i] = np.mean(gaps)
    return PermutationResult(observed, null, _p_upper(observed, null))


@dataclass(frozen=True)
class RandomNull:
    """A latent set's mean closeness against ``n_draws`` frequency-matched random sets of the same size
    (drawn from the latents that fire, harmful ones included, as the selected sets may include them):
    ``observed`` and ``random_mean`` are means over replicates; ``p`` is two-sided (the observed set is
    farther from the random mean than a draw, either way)."""

    observed: float
    random_mean: float
    p: float


def matched_draws(
    latents: np.ndarray, frequency: np.ndarray, n_draws: int, rng: np.random.Generator, n_bins: int = 10
) -> np.ndarray:
    """``n_draws`` random sets like ``latents``: for each latent, one latent drawn from its firing-frequency
    decile (over the latents that ever fire; ``frequency``: ``[d_sae]``). Returns ``[n_draws, k]``."""
    alive, bin_of = frequency_bins(frequency, n_bins)
    pools = [alive[bin_of[alive] == bin_of[x]] for x in latents]
    pools = [p if p.size else alive for p in pools]
    return np.stack([rng.choice(p, size=n_draws) for p in pools], axis=1)


def random_latent_null(
    latents: Sequence[np.ndarray],
    closeness: Sequence[np.ndarray],
    frequency: Sequence[np.ndarray],
    n_draws: int,
    seed: int = 0,
    n_bins: int = 10,
) -> RandomNull:
    """Per replicate ``i``: the mean closeness of ``latents[i]`` against random sets with one latent from
    the firing-frequency decile of each (``frequency[i]``: the share of rows each latent fires on)."""
    rng = np.random.default_rng(seed)
    observed = float(np.mean([c[lat].mean() for lat, c in zip(latents, closeness, strict=True)]))
    draws = np.zeros(n_draws)
    for lat, c, freq in zip(latents, closeness, frequency, strict=True):
        draws += c[matched_draws(lat, freq, n_draws, rng, n_bins)].mean(1)
    draws /= len(latents)
    centre = float(draws.mean())
    extreme = np.abs(draws - centre) >= abs(observed - centre) - 1e-12
    return RandomNull(observed, centre, float((extreme.sum() + 1) / (n_draws + 1)))


@dataclass(frozen=True)
class OverlapNull:
    """Latents a selected set shares with the harmful set (``observed``, mean over replicates) against
    the overlap of random sets matched to it in firing frequency (``expected``), and the one-sided p of
    an overlap at least as large."""

    observed: float
    expected: float
    p: float


def shared_overlap_null(
    latents: Sequence[np.ndarray],
    harmful: Sequence[np.ndarray],
    frequency: Sequence[np.ndarray],
    n_draws: int,
    seed: int = 0,
    n_bins: int = 10,
) -> OverlapNull:
    """Per replicate ``i``: how many of ``latents[i]`` are also in ``harmful[i]``, against random sets
    with one latent from the firing-frequency decile of each (``frequency[i]``, ``[d_sae]``).

    A set that shares latents with the harmful set has a closeness of 1 for them (identity, not
    neighbourhood). Frequent latents fire on everything and land in many top-k lists, so the overlap a
    set would have by chance depends on how often its latents fire: this is that expectation."""
    rng = np.random.default_rng(seed)
    observed = float(np.mean([np.isin(lat, h).sum() for lat, h in zip(latents, harmful, strict=True)]))
    draws = np.zeros(n_draws)
    for lat, h, freq in zip(latents, harmful, frequency, strict=True):
        draws += np.isin(matched_draws(lat, freq, n_draws, rng, n_bins), h).sum(1)
    draws /= len(latents)
    return OverlapNull(
        observed, float(draws.mean()), float(((draws >= observed - 1e-12).sum() + 1) / (n_draws + 1))
    )


@dataclass(frozen=True)
class TargetReplicate:
    """One SAE's selected sets of one domain, for the random-target null: the inducing and non-inducing
    latents, the harmful latents, unit decoder directions (``[d_sae, d_model]``) and each latent's
    firing frequency (``[d_sae]``)."""

    inducing: np.ndarray
    noninducing: np.ndarray
    harmful: np.ndarray
    directions: np.ndarray
    frequency: np.ndarray


def random_target_gap(
    replicates: Sequence[TargetReplicate],
    n_draws: int,
    seed: int = 0,
    n_bins: int = 10,
    exclude_shared: bool = False,
) -> PermutationResult:
    """The gap against the harmful latents, with a null that replaces the harmful set by random latent
    sets matched to it in firing frequency (the selected sets fixed): is the harmful set special, or
    would any set of latents that fire as often show the same gap? Two sets of data that differ (bad and
    good advice always differ in words) pick different latents, and their closeness to an arbitrary
    target differs too; the row permutation cannot see that, this null can. One-sided, mean over
    replicates. ``exclude_shared``: the gap without the selected latents that belong to the target (the
    harmful set, or each random draw), as the geometry claims' primary is computed."""

    def gap(r: TargetReplicate, target: np.ndarray) -> float:
        ind, non = r.inducing, r.noninducing
        if exclude_shared:
            ind, non = np.setdiff1d(ind, target), np.setdiff1d(non, target)
        if not ind.size or not non.size:
            return float("nan")
        return float(
            similarity_to(ind, target, r.directions).mean() - similarity_to(non, target, r.directions).mean()
        )

    observed = float(np.nanmean([gap(r, r.harmful) for r in replicates]))
    rng = np.random.default_rng(seed)
    draws = np.full((len(replicates), n_draws), np.nan)
    for j, r in enumerate(replicates):
        alive, bin_of = frequency_bins(r.frequency, n_bins)
        pools = [alive[bin_of[alive] == bin_of[h]] for h in r.harmful]
        pools = [p if p.size else alive for p in pools]
        for i in range(n_draws):
            draws[j, i] = gap(r, np.array([rng.choice(p) for p in pools]))
    null = np.nanmean(draws, axis=0)
    return PermutationResult(observed, null, _p_upper(observed, null))


def difference_cosine(a: np.ndarray, b: np.ndarray, harmful: np.ndarray, benign: np.ndarray) -> float:
    """Cosine between the (mean a − mean b) and (mean harmful − mean benign) directions (``[rows, d]``
    each): the SAE-free version of "inducing data sits closer to harmful data"."""
    u = a.mean(0) - b.mean(0)
    v = harmful.mean(0) - benign.mean(0)
    denom = np.linalg.norm(u) * np.linalg.norm(v)
    return float(u @ v / denom) if denom > 0 else float("nan")


def residual_cosine_test(
    inducing: Sequence[np.ndarray],
    noninducing: Sequence[np.ndarray],
    harmful: Sequence[np.ndarray],
    benign: Sequence[np.ndarray],
    n_perm: int,
    seed: int = 0,
) -> PermutationResult:
    """:func:`difference_cosine` averaged over replicates (organisms: each its own residual stream),
    with the row permutation of :func:`row_permutation_gap` as the null (one-sided: more aligned with
    the harmful direction than permuted rows)."""
    observed = float(
        np.mean([difference_cosine(*x) for x in zip(inducing, noninducing, harmful, benign, strict=True)])
    )
    n_ind, n_non = inducing[0].shape[0], noninducing[0].shape[0]
    pooled = [np.concatenate([a, b]) for a, b in zip(inducing, noninducing, strict=True)]
    rng = np.random.default_rng(seed)
    null = np.empty(n_perm)
    for i in range(n_perm):
        order = rng.permutation(n_ind + n_non)
        null[i] = np.mean(
            [
                difference_cosine(x[order[:n_ind]], x[order[n_ind:]], h, g)
                for x, h, g in zip(pooled, harmful, benign, strict=True)
            ]
        )
    return PermutationResult(observed, null, _p_upper(observed, null))
