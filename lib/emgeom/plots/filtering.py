"""Figures of chapter 6: the dose-response curve and EM after each filter at each removal budget."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

DOSE_SERIES = {
    "open_em": ("EM rate", "tab:red"),
    "offdomain_bad": ("bad advice, other domains", "tab:orange"),
    "coherent": ("coherent answers", "tab:blue"),
}


def dose_response_plot(curve: pd.DataFrame, chosen: float) -> Figure:
    """EM (and, where measured, off-domain bad advice or coherence) against the fraction of inducing
    samples in the fine-tuning set, mean over seeds with a 95% t-interval; the chosen dose marked."""
    from emgeom.core.stats import mean_ci

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for col, (label, colour) in DOSE_SERIES.items():
        if col not in curve.columns:
            continue
        stats = [(f, mean_ci(g[col].to_numpy(), bounds=(0.0, 1.0))) for f, g in curve.groupby("fraction")]
        x = np.array([f for f, _ in stats])
        m = np.array([e.value for _, e in stats])
        lo = np.array([e.lo for _, e in stats])
        hi = np.array([e.hi for _, e in stats])
        ax.plot(x, m, "o-", color=colour, label=label)
        ax.fill_between(x, np.nan_to_num(lo, nan=m), np.nan_to_num(hi, nan=m), color=colour, alpha=0.15)
    ax.axvline(chosen, color="k", ls="--", lw=1, label=f"chosen dose ({chosen:.2f})")
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
    """Per dissociation set (columns): recall of the truly inducing rows against the number of labelled
    answers per class the text judge was trained on (the ladder), beside the detectors that need no
    labels (horizontal lines: the oracle judge, the likelihood judge, the SAE scores, the gradient)."""
    fig, axes = plt.subplots(
        1, len(detection), figsize=(5.2 * len(detection), 3.8), squeeze=False, sharey=True
    )
    others = {
        "oracle judge": ("k", "--"),
        "likelihood judge": ("tab:purple", ":"),
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
            title=f"dissociation set: {name}",
        )
    axes[0][0].legend(fontsize=7, frameon=False, loc="lower right")
    fig.tight_layout()
    return fig
