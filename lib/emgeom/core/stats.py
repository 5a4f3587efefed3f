"""Statistics used across chapters: correlations, fitted slopes, bootstrap and t intervals, Page's test."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a 95% interval (``lo``/``hi`` are NaN when it cannot be computed)."""

    value: float
    lo: float
    hi: float
    n: int

    @property
    def ci(self) -> tuple[float, float]:
        return (self.lo, self.hi)

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.lo:.3f}, {self.hi:.3f}] (n={self.n})"


def pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN when either side has no variance."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size < 2 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def fitted_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``y`` on ``x`` (with intercept)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size < 2 or np.std(x) == 0:
        return float("nan")
    return float(np.polyfit(x, y, 1)[0])


def slope_ci(x: np.ndarray, y: np.ndarray, confidence: float = 0.95) -> Estimate:
    """Least-squares slope of ``y`` on ``x`` with a Student-t interval from the residuals (``n - 2``
    degrees of freedom, so few points give a wide interval); NaN interval with fewer than 3 points."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 2 or np.ptp(x) == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), int(x.size))
    slope, intercept = np.polyfit(x, y, 1)
    if x.size < 3:
        return Estimate(float(slope), float("nan"), float("nan"), int(x.size))
    residuals = y - (slope * x + intercept)
    se = float(np.sqrt(residuals @ residuals / (x.size - 2) / ((x - x.mean()) @ (x - x.mean()))))
    half = float(sps.t.ppf(0.5 + confidence / 2, x.size - 2) * se)
    return Estimate(float(slope), float(slope) - half, float(slope) + half, int(x.size))


def pearson_ci(x: np.ndarray, y: np.ndarray, confidence: float = 0.95) -> Estimate:
    """Pearson r with a Fisher-z interval (NaN interval with fewer than 4 points)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    r = pearson_r(x, y)
    if x.size < 4 or not np.isfinite(r):
        return Estimate(r, float("nan"), float("nan"), int(x.size))
    z, half = (
        math.atanh(min(max(r, -0.999999), 0.999999)),
        sps.norm.ppf(0.5 + confidence / 2) / math.sqrt(x.size - 3),
    )
    return Estimate(r, math.tanh(z - half), math.tanh(z + half), int(x.size))


def welch_difference(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> Estimate:
    """``mean(a) - mean(b)`` with a Welch t-interval (NaN interval if either side has fewer than 2)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    diff = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return Estimate(diff, float("nan"), float("nan"), int(a.size + b.size))
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return Estimate(diff, diff, diff, int(a.size + b.size))
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = float(sps.t.ppf(0.5 + confidence / 2, dof) * se)
    return Estimate(diff, diff - half, diff + half, int(a.size + b.size))


def bootstrap_pearson(x: np.ndarray, y: np.ndarray, n_boot: int = 1000, seed: int = 0) -> Estimate:
    """Pearson r with a 95% percentile bootstrap interval over resampled (x, y) pairs."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    xs, ys = x[idx], y[idx]
    xc, yc = xs - xs.mean(1, keepdims=True), ys - ys.mean(1, keepdims=True)
    denom = np.sqrt((xc**2).sum(1) * (yc**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        boots = (xc * yc).sum(1) / denom
    boots = boots[np.isfinite(boots)]
    lo, hi = np.percentile(boots, [2.5, 97.5]) if boots.size else (np.nan, np.nan)
    return Estimate(pearson_r(x, y), float(lo), float(hi), int(x.size))


def mean_ci(
    values: np.ndarray, confidence: float = 0.95, bounds: tuple[float, float] | None = None
) -> Estimate:
    """Mean with a Student-t interval (e.g. over seeds). One value gives a NaN interval.

    ``bounds`` clips the interval to the quantity's natural range (``(-1, 1)`` for correlations).
    """
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    mean = float(v.mean())
    if v.size < 2:
        return Estimate(mean, float("nan"), float("nan"), 1)
    half = float(sps.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return Estimate(mean, lo, hi, int(v.size))


def over_replicates(estimates: Sequence[Estimate], bounds: tuple[float, float] | None = None) -> Estimate:
    """One estimate over replicates (e.g. organisms), from each replicate's own estimate: the mean of
    their point values with a t-interval over replicates, so whatever is nested in a replicate (its SAEs,
    its fine-tuning seeds) is averaged inside it, not pooled as independent. A single replicate keeps its
    own interval (over what is nested in it)."""
    if not estimates:
        raise ValueError("need at least one replicate")
    if len(estimates) == 1:
        return estimates[0]
    return mean_ci(np.array([e.value for e in estimates]), bounds=bounds)


def wilson(successes: int, n: int, z: float = 1.959964) -> Estimate:
    """A proportion with its Wilson score 95% interval (one run, samples as trials)."""
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), n)


def paired_relative_reduction(base: Mapping[Any, float], treated: Mapping[Any, float]) -> Estimate:
    """Mean over the replicates (e.g. seeds) in both of ``1 - treated / base``, paired, with a t-interval;
    replicates whose ``base`` is 0 or less have nothing to reduce and are left out (``n`` counts the
    rest). Accepts dicts or pandas Series indexed by replicate."""
    keys = treated.keys()  # not `for k in treated`: iterating a pandas Series yields its values
    values = [1 - treated[k] / base[k] for k in keys if k in base and base[k] > 0]
    return mean_ci(np.array(values))


def holm(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values (step-down, monotone, capped at 1), keyed as given; NaN stays NaN and does
    not count as a test."""
    items = sorted(((p, k) for k, p in pvalues.items() if np.isfinite(p)), key=lambda t: t[0])
    m, running, out = len(items), 0.0, {k: float("nan") for k in pvalues}
    for i, (p, k) in enumerate(items):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out


@dataclass(frozen=True)
class PageTrend:
    """Page's test of an ordered trend over ``k`` treatments in ``n_blocks`` blocks: ``statistic``, Page's
    L (the sum over treatments of their predicted rank times their rank sum over blocks), its one-sided
    ``p`` (the chance, ranks permuted within each block, of an L at least as large), whether ``p`` is
    exact (every permutation enumerated) or from Monte-Carlo permutations, and ``maximum``, the largest
    L possible (every block in the predicted order, no ties)."""

    statistic: float
    p: float
    n_blocks: int
    k: int
    exact: bool
    maximum: float

    def __str__(self) -> str:
        how = "exact" if self.exact else "Monte Carlo"
        return (
            f"L = {self.statistic:g} (max {self.maximum:g}), p = {self.p:.3g} "
            f"({how}; {self.n_blocks} blocks, k = {self.k})"
        )


def page_trend(
    values: np.ndarray, n_permutations: int = 10_000, seed: int = 0, exact_limit: int = 40_320
) -> PageTrend:
    """Page's L test that the treatments (columns of ``values``, ``[blocks, k]``) increase in the order
    given, ranks taken within each block (ties share their average rank). A block with a missing value
    is left out.

    The null permutes each block's observed ranks over the columns, every ordering equally likely, so
    ties are handled by conditioning on them (a block whose values are all tied adds a constant). The
    p-value is exact when ``k!`` is at most ``exact_limit``: each block's distribution of its share of
    ``L`` over its ``k!`` orderings, convolved over blocks; otherwise from ``n_permutations`` random
    permutations (``(1 + hits) / (1 + n_permutations)``)."""
    v = np.asarray(values, float)
    if v.ndim != 2:
        raise ValueError(f"values must be [blocks, treatments], got shape {v.shape}")
    v = v[np.isfinite(v).all(axis=1)]
    n, k = v.shape
    if n == 0 or k < 2:
        return PageTrend(float("nan"), float("nan"), int(n), int(k), True, float("nan"))
    ranks = sps.rankdata(v, axis=1)  # average ranks within each block
    weights = np.arange(1, k + 1, dtype=float)
    observed = float(ranks.sum(axis=0) @ weights)
    l_max = float(n * (weights @ weights))
    if math.factorial(k) <= exact_limit:
        # ranks are multiples of 1/2, so twice a block's share of L is an integer: count those exactly
        weights_int = np.arange(1, k + 1)
        dist = np.ones(1)
        cache: dict[tuple[int, ...], np.ndarray] = {}
        for row in np.rint(2 * ranks).astype(int):
            key = tuple(sorted(row.tolist()))
            if key not in cache:
                perms = np.array(list(itertools.permutations(key)))
                cache[key] = np.bincount(perms @ weights_int) / len(perms)
            dist = np.convolve(dist, cache[key])
        threshold = round(2 * observed)
        p = float(dist[threshold:].sum()) if threshold < dist.size else 0.0
        return PageTrend(observed, min(1.0, p), int(n), int(k), True, l_max)
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n_permutations):
        hits += float(rng.permuted(ranks, axis=1).sum(axis=0) @ weights) >= observed - 1e-9
    return PageTrend(observed, (1 + hits) / (1 + n_permutations), int(n), int(k), False, l_max)
