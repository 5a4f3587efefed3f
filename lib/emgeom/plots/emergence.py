"""Figures of chapter 5: EM per fine-tuning set, the mechanism read-out, similarity against EM and the
monitoring curves along a fine-tune."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def emergence_bars(summary: pd.DataFrame, columns: dict[str, str] | None = None) -> Figure:
    """Grouped bars with 95% CIs over seeds, one group per fine-tuning set (from ``seed_summary``)."""
    columns = columns or {
        "open_em": "hostile open answers (EM)",
        "offdomain_bad": "bad advice, other domains",
        "indomain_bad": "bad advice, trained domain",
    }
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(summary)), 3.6))
    x = np.arange(len(summary))
    width = 0.8 / len(columns)
    for i, (col, label) in enumerate(columns.items()):
        mean = summary[col].to_numpy(float)
        lo = np.nan_to_num(mean - summary[f"{col}_lo"].to_numpy(float))
        hi = np.nan_to_num(summary[f"{col}_hi"].to_numpy(float) - mean)
        ax.bar(
            x + (i - (len(columns) - 1) / 2) * width,
            np.nan_to_num(mean),
            width,
            yerr=[lo, hi],
            capsize=3,
            label=label,
        )
    ax.set_xticks(x, summary["set"], rotation=15)
    ax.set(ylim=(0, 1.05), ylabel="rate (mean over seeds, 95% CI)")
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def mechanism_scatter(results: dict[str, Any], harmful: dict[str, np.ndarray]) -> Figure:
    """Change in each alive latent's pre-activation against its decoder cosine with the target latent,
    one panel per ``{title: MechanismResult}``; harmful latents in red, the target starred."""
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6), squeeze=False)
    for ax, (title, r) in zip(axes.flat, results.items(), strict=True):
        alive = np.flatnonzero(r.alive)
        is_harm = np.isin(alive, harmful[title])
        ax.scatter(
            r.cosine[alive[~is_harm]], r.delta_pre[alive[~is_harm]], s=14, color="0.45", label="latent"
        )
        ax.scatter(
            r.cosine[alive[is_harm]],
            r.delta_pre[alive[is_harm]],
            s=22,
            color="tab:red",
            label="harmful latent",
        )
        ax.scatter(
            [r.cosine[r.target]],
            [r.delta_pre[r.target]],
            marker="*",
            s=160,
            color="gold",
            edgecolor="k",
            label="target latent",
            zorder=3,
        )
        ax.axhline(0, color="k", lw=0.6)
        ax.set(
            xlabel="decoder cosine with the target latent",
            ylabel="Δ pre-activation at answer start",
            title=f"{title}\nr = {r.r_pre.value:.2f} [{r.r_pre.lo:.2f}, {r.r_pre.hi:.2f}]",
        )
    axes.flat[0].legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return fig


def similarity_vs_em(points: pd.DataFrame, r_text: str) -> Figure:
    """EM rate of each fine-tuning set (with its CI over seeds) against its similarity to the harmful set."""
    fig, ax = plt.subplots(figsize=(6.2, 4))
    for _, p in points.iterrows():
        colour = "tab:red" if p["inducing"] else "tab:blue"
        ax.errorbar(
            p["similarity"],
            p["open_em"],
            yerr=[[p["open_em"] - p["open_em_lo"]], [p["open_em_hi"] - p["open_em"]]],
            fmt="o",
            color=colour,
            capsize=3,
        )
        ax.annotate(
            p["set"], (p["similarity"], p["open_em"]), fontsize=7, xytext=(4, 3), textcoords="offset points"
        )
    ax.set(
        xlabel="mean max-cosine of the set's latents to harmful latents",
        ylabel="EM rate (hostile open answers)",
        title=f"Closer sets, more misalignment? {r_text}",
    )
    fig.tight_layout()
    return fig


def monitoring_plot(log: pd.DataFrame) -> Figure:
    """EM rate and mean harmful-latent activation at checkpoints of one fine-tuning run."""
    fig, ax = plt.subplots(figsize=(6.2, 3.4))
    ax.plot(log["step"], log["open_em"], "o-", color="tab:red", label="EM rate (hostile open answers)")
    ax.plot(log["step"], log["offdomain_bad"], "s--", color="tab:orange", label="bad advice, other domains")
    ax.set(xlabel="fine-tuning step", ylabel="rate", ylim=(0, 1.02))
    twin = ax.twinx()
    twin.plot(
        log["step"], log["harmful_activation"], "^:", color="k", label="harmful latents (mean activation)"
    )
    twin.set_ylabel("mean activation of harmful latents")
    lines = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + twin.get_legend_handles_labels()[1]
    ax.legend(lines, labels, frameon=False, fontsize=7, loc="center right")
    fig.tight_layout()
    return fig


def projection_plot(results: dict[str, Any]) -> Figure:
    """Per panel (one :class:`~emgeom.claims.mechanism.measurement.ProjectionResult` each): every alive
    latent's change of the mean residual projected on its unit decoder direction against its decoder
    cosine with the target (left), and the target's r against the activation-matched null (right)."""
    fig, axes = plt.subplots(len(results), 2, figsize=(9, 3.2 * len(results)), squeeze=False)
    for (label, res), (left, right) in zip(results.items(), axes, strict=True):
        use = res.alive.copy()
        use[res.target] = False
        left.scatter(res.cosine[use], res.delta_projection[use], s=8, alpha=0.6)
        left.axhline(0, color="0.7", lw=0.8)
        left.set(
            xlabel="decoder cosine with the target latent",
            ylabel="Δ projection on own decoder direction",
            title=f"{label}: r = {res.r_projection.value:.2f}",
        )
        null = res.null_r[np.isfinite(res.null_r)]
        right.hist(null, bins=20, color="0.7", label="activation-matched latents")
        right.axvline(res.r_projection.value, color="tab:red", lw=2, label="the target")
        right.set(xlabel="Pearson r", ylabel="count", title="against latents as active as the target")
        right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def projection_along_plot(log: pd.DataFrame) -> Figure:
    """r of the decoder projection with the target, and the random-target null's 95th percentile, at
    checkpoints of one fine-tune."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.plot(log["step"], log["r (decoder projection)"], marker="o", label="target (chapter 4 rule)")
    ax.plot(log["step"], log["null 95th pct"], linestyle="--", color="0.5", label="matched null, 95th pct")
    ax.axhline(0, color="0.7", lw=0.8)
    ax.set(
        xlabel="fine-tuning step", ylabel="Pearson r with decoder cosine", title="Along the full fine-tune"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
