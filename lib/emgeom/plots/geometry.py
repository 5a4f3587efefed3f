"""Figures of chapter 4: similarity distributions per feature set and the similarity gap per domain."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

SET_COLOURS = {"inducing": "tab:red", "non-inducing": "tab:blue", "random": "0.6"}


def similarity_distributions(table: pd.DataFrame, domains: list[str], directions: str = "decoder") -> Figure:
    """Max-cosine to the harmful set of each latent in the inducing, non-inducing and random sets, per
    domain (columns), for all latents (top row) and without latents shared with the harmful set (bottom)."""
    sub = table[table["directions"] == directions]
    fig, axes = plt.subplots(2, len(domains), figsize=(2.6 * len(domains), 5.6), sharey=True, squeeze=False)
    order = list(SET_COLOURS)
    for col, d in enumerate(domains):
        for row, excl in enumerate((False, True)):
            ax = axes[row, col]
            part = sub[(sub["domain"] == d) & (sub["shared_excluded"] == excl)]
            sns.boxplot(
                data=part,
                x="set",
                y="max_cos",
                hue="set",
                order=order,
                palette=SET_COLOURS,
                ax=ax,
                showfliers=False,
                legend=False,
                width=0.6,
            )
            sns.stripplot(data=part, x="set", y="max_cos", order=order, color="k", size=2.5, alpha=0.5, ax=ax)
            ax.set(
                xlabel="",
                ylabel="max cosine to harmful set" if col == 0 else "",
                title=f"{d}" + ("\nshared latents excluded" if excl else "\nall latents"),
            )
            ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def gap_by_domain(summary: pd.DataFrame, coupling: dict[str, float] | None = None) -> Figure:
    """Inducing minus non-inducing similarity gap per domain (95% CI over replicates: SAEs, or data
    subsamples), with and without shared latents; with ``coupling`` (the organism's designed coupling of
    a domain's bad advice to the toxic persona) domains are ordered and labelled by it."""
    order = sorted(summary["domain"], key=lambda d: -coupling[d]) if coupling else list(summary["domain"])
    s = summary.set_index("domain").loc[order]
    x = np.arange(len(s))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for offset, suffix, label, color in (
        (-0.2, "", "all latents", "tab:red"),
        (0.2, "_excl_shared", "shared latents excluded", "tab:orange"),
    ):
        mean = s[f"gap{suffix}"].to_numpy(float)
        err = [
            np.nan_to_num(mean - s[f"gap{suffix}_lo"].to_numpy(float)),
            np.nan_to_num(s[f"gap{suffix}_hi"].to_numpy(float) - mean),
        ]
        ax.bar(x + offset, mean, 0.38, yerr=err, capsize=3, color=color, label=label)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, [f"{d}\n(toxic share {coupling[d]:.2f})" if coupling else d for d in s.index])
    ax.set(
        ylabel="gap in mean max-cosine\n(inducing - non-inducing)",
        title="Are inducing features closer to harmful ones?",
    )
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
