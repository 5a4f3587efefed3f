"""Figures of chapter 6: the dose-response curve, what each detector removes (recall) and EM after each
filter, and the judge ladder."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from emgeom.claims.filtering.judges import LIKELIHOOD, ORACLE, SPEAKER_PRIOR

DOSE_SERIES = {
    "open_em": ("EM rate", "tab:red"),
    "offdomain_bad": ("bad advice, other domains", "tab:orange"),
    "coherent": ("coherent answers", "tab:blue"),
}


def dose_response_plot(curve: pd.DataFrame, chosen: float, label: str = "chosen dose") -> Figure:
    """EM (and, where measured, off-domain bad advice or coherence) against the fraction of inducing
    samples in the fine-tuning set, mean over seeds with a 95% t-interval; the dose ``chosen`` marked
    (as ``label``)."""
    from emgeom.core.stats import mean_ci

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for col, (series, colour) in DOSE_SERIES.items():
        if col not in curve.columns:
            continue
        stats = [(f, mean_ci(g[col].to_numpy(), bounds=(0.0, 1.0))) for f, g in curve.groupby("fraction")]
        x = np.array([f for f, _ in stats])
        m = np.array([e.value for _, e in stats])
        lo = np.array([e.lo for _, e in stats])
        hi = np.array([e.hi for _, e in stats])
        ax.plot(x, m, "o-", color=colour, label=series)
        ax.fill_between(x, np.nan_to_num(lo, nan=m), np.nan_to_num(hi, nan=m), color=colour, alpha=0.15)
    ax.axvline(chosen, color="k", ls="--", lw=1, label=f"{label} ({chosen:.2f})")
    ax.set(
        xlabel="fraction of inducing samples in the fine-tuning set",
        ylabel="rate",
        ylim=(0, None),
        title="Dose-response: does EM depend on how much inducing data there is?",
    )
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def filter_curves(table: pd.DataFrame) -> Figure:
    """EM after removing the top fraction of samples by each method (left), and the share of inducing
    samples each method removed (recall, right); mean over seeds with 95% t-intervals."""
    from emgeom.core.stats import mean_ci

    colours = {"geometry": "tab:green", "judge": "tab:purple", "random": "0.5"}
    base = mean_ci(table[table["method"] == "none"]["open_em"].to_numpy(), bounds=(0.0, 1.0))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for method, colour in colours.items():
        sub = table[table["method"] == method]
        if sub.empty:
            continue
        for ax, col in zip(axes, ("open_em", "recall"), strict=True):
            stats = [(f, mean_ci(g[col].to_numpy(), bounds=(0.0, 1.0))) for f, g in sub.groupby("fraction")]
            x = (
                np.array([0.0, *[f for f, _ in stats]])
                if col == "open_em"
                else np.array([f for f, _ in stats])
            )
            m = [e.value for _, e in stats]
            lo = [e.lo for _, e in stats]
            hi = [e.hi for _, e in stats]
            if col == "open_em":
                m, lo, hi = [base.value, *m], [base.lo, *lo], [base.hi, *hi]
            ax.errorbar(
                x,
                m,
                yerr=[np.nan_to_num(np.subtract(m, lo)), np.nan_to_num(np.subtract(hi, m))],
                fmt="o-",
                color=colour,
                capsize=3,
                label=method,
            )
    axes[0].set(
        xlabel="fraction of samples removed",
        ylabel="EM rate after fine-tuning",
        ylim=(0, None),
        title="EM after filtering",
    )
    axes[1].set(
        xlabel="fraction of samples removed",
        ylabel="recall of inducing samples",
        ylim=(0, 1.05),
        title="What each filter removed",
    )
    axes[0].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def condition_bars(
    summary: pd.DataFrame,
    columns: tuple[tuple[str, str], ...] = (
        ("open_em", "open-question EM"),
        ("task_success", "task success"),
    ),
) -> Figure:
    """Two rates (default: open-question EM and task success; 95% CI over seeds) per intervention
    condition, one panel per fine-tuning set (from
    :func:`emgeom.claims.intervention.study.condition_summary`)."""
    sets = list(dict.fromkeys(summary["set"]))
    fig, axes = plt.subplots(1, len(sets), figsize=(5.2 * len(sets), 3.6), squeeze=False)
    for ax, set_name in zip(axes[0], sets, strict=True):
        sub = summary[summary["set"] == set_name].reset_index(drop=True)
        x = np.arange(len(sub))
        for offset, (col, label) in zip((-0.2, 0.2), columns, strict=True):
            err = np.vstack([sub[col] - sub[f"{col}_lo"], sub[f"{col}_hi"] - sub[col]])
            err = np.nan_to_num(err).clip(min=0)
            ax.bar(x + offset, sub[col], width=0.4, yerr=err, capsize=3, label=label)
        ax.set_xticks(x, sub["condition"], rotation=25, ha="right")
        ax.set(ylim=(0, 1.05), ylabel="rate", title=f"fine-tuned on {set_name}")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncols=len(labels), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return fig


def judge_ladder_plot(detection: dict[str, pd.DataFrame], labels: list[int]) -> Figure:
    """Per set (columns): recall of the truly inducing rows against the number of labelled answers per
    class the text judge was trained on (the ladder), beside the detectors that need no labels
    (horizontal lines: the oracle judge, the two likelihood judges, the SAE scores, the gradient)."""
    fig, axes = plt.subplots(
        1, len(detection), figsize=(5.2 * len(detection), 3.8), squeeze=False, sharey=True
    )
    others = {
        ORACLE: ("k", "--"),
        LIKELIHOOD: ("tab:purple", ":"),
        SPEAKER_PRIOR: ("tab:pink", ":"),
        "gradient": ("tab:orange", "-."),
        "random": ("0.6", "-"),
    }
    for ax, (name, table) in zip(axes[0], detection.items(), strict=True):
        by = table.set_index("method")
        ladder = [by.loc[f"text judge ({n} labels)", "recall"] for n in labels]
        ax.plot(labels, ladder, marker="o", color="tab:blue", label="text judge")
        for method, (colour, style) in others.items():
            if method in by.index:
                ax.axhline(by.loc[method, "recall"], color=colour, ls=style, lw=1.2, label=method)
        for method in [m for m in by.index if m.startswith("sae ")]:
            ax.axhline(
                by.loc[method, "recall"],
                color="tab:green",
                lw=1.0,
                alpha=0.5 + 0.5 * (method == "sae harmful_mass"),
            )
            ax.annotate(
                method,
                (labels[-1], by.loc[method, "recall"]),
                fontsize=7,
                color="tab:green",
                textcoords="offset points",
                xytext=(2, 2),
            )
        ax.set(
            xscale="log",
            xticks=labels,
            xticklabels=[str(n) for n in labels],
            ylim=(0, 1.05),
            xlabel="labelled answers per class (text judge)",
            ylabel="recall of inducing rows",
            title=f"set: {name}" if name == "half_inducing" else f"dissociation set: {name}",
        )
    axes[0][0].legend(fontsize=7, frameon=False, loc="lower right")
    fig.tight_layout()
    return fig


def recall_bars(detection: dict[str, pd.DataFrame], methods: list[str], ceiling: str = ORACLE) -> Figure:
    """Per set (columns): each of ``methods``' recall of the inducing rows at the set's fixed removal,
    mean over organisms with its 95% interval (``detection``: per set, a table with ``method, recall,
    recall lo, recall hi``); the ``ceiling`` detector's recall as a dashed line."""
    fig, axes = plt.subplots(
        1, len(detection), figsize=(4.4 * len(detection), 3.8), squeeze=False, sharey=True
    )
    for ax, (name, table) in zip(axes[0], detection.items(), strict=True):
        by = table.set_index("method")
        shown = [m for m in methods if m in by.index]
        values = by.loc[shown, "recall"].to_numpy(float)
        err = np.vstack([values - by.loc[shown, "recall lo"], by.loc[shown, "recall hi"] - values])
        ax.bar(
            np.arange(len(shown)), values, yerr=np.nan_to_num(err).clip(min=0), capsize=3, color="tab:green"
        )
        if ceiling in by.index:
            ax.axhline(by.loc[ceiling, "recall"], color="k", ls="--", lw=1, label=f"{ceiling} (ceiling)")
            ax.legend(frameon=False, fontsize=7, loc="lower right")
        ax.set_xticks(np.arange(len(shown)), shown, rotation=30, ha="right", fontsize=8)
        ax.set(ylim=(0, 1.05), ylabel="recall of inducing rows", title=name)
    fig.tight_layout()
    return fig


def em_bars(em: pd.DataFrame) -> Figure:
    """Per set (columns): EM after fine-tuning on what each method keeps, mean over organisms with its
    95% interval (``em``: rows ``set, method, EM, lo, hi``)."""
    sets = list(dict.fromkeys(em["set"]))
    fig, axes = plt.subplots(1, len(sets), figsize=(4.4 * len(sets), 3.8), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], sets, strict=True):
        sub = em[em["set"] == name].reset_index(drop=True)
        values = sub["EM"].to_numpy(float)
        err = np.vstack([values - sub["lo"], sub["hi"] - values])
        ax.bar(np.arange(len(sub)), values, yerr=np.nan_to_num(err).clip(min=0), capsize=3, color="tab:red")
        ax.set_xticks(np.arange(len(sub)), sub["method"], rotation=30, ha="right", fontsize=8)
        ax.set(ylim=(0, None), ylabel="EM rate after fine-tuning", title=name)
    fig.tight_layout()
    return fig
