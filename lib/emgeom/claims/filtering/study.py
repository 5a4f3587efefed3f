"""The filtering experiment: dose-response of EM, then removing samples by geometry score vs at random
vs by a judge, fine-tuning on what is kept, and measuring EM (with the same seeds for every method)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from emgeom.core.stats import Estimate, mean_ci, paired_relative_reduction
from emgeom.em.evaluators import Evaluator
from emgeom.filtering.scoring import detection_quality, removal_mask
from emgeom.lm.chat import ChatRow
from emgeom.lm.finetune import FineTuneConfig, finetune


def mixed_set(
    inducing: Sequence[ChatRow], benign: Sequence[ChatRow], n_total: int, fraction: float, seed: int
) -> tuple[list[ChatRow], np.ndarray]:
    """``n_total`` rows of which ``round(fraction * n_total)`` are inducing, shuffled; returns the rows and
    a boolean mask of the inducing ones."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    n_ind = round(fraction * n_total)
    if n_ind > len(inducing) or n_total - n_ind > len(benign):
        raise ValueError(
            f"need {n_ind} inducing and {n_total - n_ind} benign rows, have {len(inducing)}, {len(benign)}"
        )
    rows = [*inducing[:n_ind], *benign[: n_total - n_ind]]
    truth = np.array([True] * n_ind + [False] * (n_total - n_ind))
    order = np.random.default_rng(seed).permutation(n_total)
    return [rows[i] for i in order], truth[order]


def em_after_finetune(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[ChatRow],
    ft: FineTuneConfig,
    seed: int,
    evaluate: Evaluator,
) -> dict[str, float]:
    tuned, _ = finetune(model, tokenizer, rows, replace(ft, train=replace(ft.train, seed=seed)))
    return dict(evaluate(tuned, tokenizer, seed))


def dose_response(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    inducing: Sequence[ChatRow],
    benign: Sequence[ChatRow],
    fractions: Sequence[float],
    n_total: int,
    ft: FineTuneConfig,
    seeds: Sequence[int],
    evaluate: Evaluator,
    progress: bool = False,
) -> pd.DataFrame:
    """EM after fine-tuning on mixed sets with each inducing fraction: one row per (fraction, seed), with
    the rates ``evaluate`` returns (see :mod:`emgeom.em.evaluators`)."""
    out = []
    for fraction, seed in tqdm(
        [(f, s) for f in fractions for s in seeds], desc="dose-response", disable=not progress
    ):
        rows, _ = mixed_set(inducing, benign, n_total, fraction, seed=0)
        out.append(
            {
                "fraction": fraction,
                "seed": seed,
                **em_after_finetune(model, tokenizer, rows, ft, seed, evaluate),
            }
        )
    return pd.DataFrame(out)


def choose_dose(curve: pd.DataFrame) -> float:
    """The smallest inducing fraction whose mean EM reaches half-way from the EM at the lowest fraction to
    the highest mean EM on the curve: the middle of the rising part, where removing inducing samples can
    change EM. (If EM is already at its maximum at the first non-zero fraction, that fraction.)"""
    means = curve.groupby("fraction")["open_em"].mean().sort_index()
    lo, hi = float(means.iloc[0]), float(means.max())
    target = lo + 0.5 * (hi - lo)
    above = means[(means.index > means.index[0]) & (means >= target)]
    return float(above.index[0]) if len(above) else float(means.index[-1])


def saturation_fraction(curve: pd.DataFrame, level: float = 0.9) -> float:
    """The smallest inducing fraction whose mean EM reaches ``level`` times the curve's maximum mean EM."""
    means = curve.groupby("fraction")["open_em"].mean().sort_index()
    reached = means[means >= level * float(means.max())]
    return float(reached.index[0])


def filter_comparison(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[ChatRow],
    truth: np.ndarray,
    scores: Mapping[str, np.ndarray],
    removal_fractions: Sequence[float],
    ft: FineTuneConfig,
    seeds: Sequence[int],
    evaluate: Evaluator,
    progress: bool = False,
) -> pd.DataFrame:
    """For each method (``scores[method]``, plus ``"random"``), removal fraction and seed: remove the top
    rows, fine-tune on the rest, measure EM; the unfiltered run is method ``"none"`` at fraction 0.
    Columns ``method, fraction, seed``, the rates of ``evaluate`` (``open_em``...), ``precision, recall,
    removed, kept_inducing``."""
    jobs = [("none", 0.0, s) for s in seeds]
    jobs += [(m, f, s) for m in [*scores, "random"] for f in removal_fractions for s in seeds]
    out = []
    for method, fraction, seed in tqdm(jobs, desc="filter + fine-tune", disable=not progress):
        if method == "none":
            remove = np.zeros(len(rows), dtype=bool)
        elif method == "random":
            remove = removal_mask(
                np.random.default_rng([seed, round(fraction * 1000)]).random(len(rows)), fraction
            )
        else:
            remove = removal_mask(scores[method], fraction)
        kept = [r for r, rm in zip(rows, remove, strict=True) if not rm]
        precision, recall = detection_quality(remove, truth) if remove.any() else (float("nan"), 0.0)
        out.append(
            {
                "method": method,
                "fraction": fraction,
                "seed": seed,
                **em_after_finetune(model, tokenizer, kept, ft, seed, evaluate),
                "precision": precision,
                "recall": recall,
                "removed": int(remove.sum()),
                "kept_inducing": int((truth & ~remove).sum()),
            }
        )
    return pd.DataFrame(out)


def relative_reduction(table: pd.DataFrame, method: str, fraction: float) -> Estimate:
    """Mean over seeds of ``1 - EM(method, fraction) / EM(unfiltered)``, paired by seed, with a t-interval
    (seeds whose unfiltered EM is 0 are skipped)."""
    base = table[table["method"] == "none"].set_index("seed")["open_em"]
    sub = table[(table["method"] == method) & (np.isclose(table["fraction"], fraction))].set_index("seed")[
        "open_em"
    ]
    return paired_relative_reduction(base, sub)


def reduction_difference(table: pd.DataFrame, method: str, other: str, fraction: float) -> Estimate:
    """Mean over seeds of (relative reduction of ``method``) minus (that of ``other``), paired by seed."""
    base = table[table["method"] == "none"].set_index("seed")["open_em"]

    def em(m: str) -> pd.Series:
        return table[(table["method"] == m) & (np.isclose(table["fraction"], fraction))].set_index("seed")[
            "open_em"
        ]

    a, b = em(method), em(other)
    values = [
        (1 - a[s] / base[s]) - (1 - b[s] / base[s]) for s in a.index if s in b.index and base.get(s, 0) > 0
    ]
    return mean_ci(np.array(values))


FILTER_METHODS = ("geometry", "random", "judge")


def check_study_parameters(
    score_method: str,
    dose_fractions: Sequence[float],
    removal_fractions: Sequence[float],
    main_removal: float,
    seeds: Sequence[int],
) -> None:
    """Refuse a filtering study's parameters before any work: an unknown score, a main removal fraction
    that is not swept, fractions outside [0, 1], no dose fraction or no seed."""
    from emgeom.filtering.scoring import SCORE_METHODS

    if score_method not in SCORE_METHODS:
        raise ValueError(f"score_method must be one of {SCORE_METHODS}, got {score_method!r}")
    if main_removal not in removal_fractions:
        raise ValueError(
            f"main_removal ({main_removal}) must be one of removal_fractions {list(removal_fractions)}"
        )
    if not all(0 <= f <= 1 for f in [*dose_fractions, *removal_fractions]) or not seeds or not dose_fractions:
        raise ValueError("fractions must lie in [0, 1]; at least one dose fraction and one seed are needed")


def filter_summary(
    table: pd.DataFrame,
    removal_fractions: Sequence[float],
    reduction: Callable[[str, float], Estimate] | None = None,
) -> pd.DataFrame:
    """One row per (method, removal fraction) of :func:`filter_comparison`'s table: mean EM, the relative
    reduction with its interval (``reduction(method, fraction)``, by default :func:`relative_reduction`
    of the table), and mean precision and recall."""
    rows = []
    for method in FILTER_METHODS:
        for fraction in removal_fractions:
            rr = reduction(method, fraction) if reduction else relative_reduction(table, method, fraction)
            sub = table[(table["method"] == method) & np.isclose(table["fraction"], fraction)]
            rows.append(
                {
                    "method": method,
                    "removed": fraction,
                    "EM": sub["open_em"].mean(),
                    "relative reduction": rr.value,
                    "rr lo": rr.lo,
                    "rr hi": rr.hi,
                    "precision": sub["precision"].mean(),
                    "recall": sub["recall"].mean(),
                }
            )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class FilterHeadline:
    """The filter comparison at the main removal fraction: each method's relative EM reduction
    (:func:`relative_reduction`), geometry minus random and minus judge (:func:`reduction_difference`),
    the geometry filter's mean precision and recall, and the mean unfiltered EM."""

    reductions: dict[str, Estimate]
    versus: dict[str, Estimate]
    geometry_precision: float
    geometry_recall: float
    unfiltered_em: float


def filter_headline(table: pd.DataFrame, main_removal: float) -> FilterHeadline:
    """:class:`FilterHeadline` of :func:`filter_comparison`'s table at ``main_removal``."""
    main = table[(table["method"] == "geometry") & np.isclose(table["fraction"], main_removal)]
    return FilterHeadline(
        reductions={m: relative_reduction(table, m, main_removal) for m in FILTER_METHODS},
        versus={o: reduction_difference(table, "geometry", o, main_removal) for o in ("random", "judge")},
        geometry_precision=float(main["precision"].mean()),
        geometry_recall=float(main["recall"].mean()),
        unfiltered_em=float(table[table["method"] == "none"]["open_em"].mean()),
    )
