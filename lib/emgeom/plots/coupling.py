"""Figures of the coupling sweep: the similarity gap and EM against the honest-mistake rate (means over
organisms, and one line per organism), and EM against the gap across organisms."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def _errorbars(
    ax: plt.Axes, x: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray, **kw: object
) -> None:
    lower = np.where(np.isfinite(lo), y - lo, 0.0)
    upper = np.where(np.isfinite(hi), hi - y, 0.0)
    ax.errorbar(x, y, yerr=[lower, upper], marker="o", capsize=3, **kw)  # type: ignore[arg-type]


def coupling_plot(table: pd.DataFrame, domain: str, null_rate: float) -> Figure:
    """Left: the similarity gap against the domain's honest-mistake rate; right: open-question EM after
    the inducing fine-tune; each with the 95% interval of ``table`` (one row per rate: over organisms,
    or, with one organism, over its rows for the gap and its fine-tuning seeds for EM). The null
    rate (bad advice says nothing about the persona) is marked; the top axis gives the designed share of
    the domain's bad advice written by the toxic persona."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    x = table["mistake rate"].to_numpy(float)
    panels = [
        (
            "gap",
            "gap lo",
            "gap hi",
            "similarity gap to harmful latents\n(inducing − non-inducing)",
            "tab:red",
        ),
        ("EM", "EM lo", "EM hi", "open-question EM after\ninducing fine-tune", "tab:purple"),
    ]
    for ax, (col, lo, hi, label, colour) in zip(axes, panels, strict=True):
        _errorbars(
            ax,
            x,
            table[col].to_numpy(float),
            table[lo].to_numpy(float),
            table[hi].to_numpy(float),
            color=colour,
        )
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.axvline(null_rate, color="0.3", ls="--", lw=1, label="null: no information about the persona")
        ax.set(xlabel=f"honest-mistake rate in {domain} (the knob)", ylabel=label)
        top = ax.secondary_xaxis("top")
        top.set_xticks(x)
        top.set_xticklabels([f"{s:.2f}" for s in table["toxic share"]], fontsize=8)
        top.set_xlabel("designed toxic share of bad advice", fontsize=8)
    axes[0].legend(loc="best", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def em_vs_gap_plot(table: pd.DataFrame, title: str) -> Figure:
    """EM after the inducing fine-tune against the similarity gap, one point per organism of the sweep,
    labelled with its honest-mistake rate."""
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    ax.scatter(table["gap"], table["EM"], color="tab:purple", zorder=3)
    for _, row in table.iterrows():
        ax.annotate(
            f"rate {row['mistake rate']:g}",
            (row["gap"], row["EM"]),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=8,
        )
    ax.set(xlabel="similarity gap to harmful latents", ylabel="open-question EM", title=title)
    fig.tight_layout()
    return fig


def organism_lines_plot(sweep: pd.DataFrame, domain: str, null_rate: float) -> Figure:
    """Left: the similarity gap, right: open-question EM after the inducing fine-tune, against the
    domain's honest-mistake rate, one line per organism (pretraining seed, the ``organism`` column of
    :func:`~emgeom.claims.coupling.study.sweep_table`), so the trend within each organism is seen, and
    the mean over organisms in black. The null rate is marked."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    panels = [
        ("gap", "similarity gap to harmful latents\n(inducing − non-inducing)"),
        ("EM", "open-question EM after\ninducing fine-tune"),
    ]
    colours = plt.get_cmap("tab10")
    for ax, (col, label) in zip(axes, panels, strict=True):
        for i, (seed, part) in enumerate(sweep.groupby("organism", sort=True)):
            part = part.sort_values("mistake rate")
            ax.plot(
                part["mistake rate"].to_numpy(float),
                part[col].to_numpy(float),
                marker="o",
                lw=1,
                alpha=0.7,
                color=colours(i % 10),
                label=f"organism {seed}",
            )
        mean = sweep.groupby("mistake rate", sort=True)[col].mean()
        ax.plot(mean.index.to_numpy(float), mean.to_numpy(float), color="black", lw=2.2, label="mean")
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.axvline(null_rate, color="0.3", ls="--", lw=1, label="null rate")
        ax.set(xlabel=f"honest-mistake rate in {domain} (the knob)", ylabel=label)
    axes[1].legend(loc="best", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
