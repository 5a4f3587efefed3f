"""Figures of the book: labelled matplotlib/seaborn plots built from library results."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from emgeom.derivation import FineTuneOutcome
from emgeom.stats import pearson_r

PLATEAUS = {"1": 1.0, "3/4": 0.75, "2/3": 2 / 3, "1/2": 0.5, "2/5": 0.4, "1/3": 1 / 3}


def feature_directions_2d(
    W: np.ndarray, probabilities: np.ndarray, importance: np.ndarray, per_row: int = 5
) -> Figure:
    """One panel per instance: each feature's direction ``W_i`` in the 2-D hidden space, coloured by
    importance. ``W`` is ``[inst, 2, n_features]``."""
    n_inst = W.shape[0]
    n_rows = -(-n_inst // per_row)
    n_cols = min(per_row, n_inst)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.4 * n_cols, 2.5 * n_rows), squeeze=False)
    cmap = plt.get_cmap("viridis")
    shade = (importance - importance.min()) / (np.ptp(importance) + 1e-9)
    for i, ax in enumerate(axes.flat):
        if i >= n_inst:
            ax.axis("off")
            continue
        for f in range(W.shape[2]):
            ax.plot([0, W[i, 0, f]], [0, W[i, 1, f]], color=cmap(shade[f]), lw=1.5)
            ax.scatter(W[i, 0, f], W[i, 1, f], color=cmap(shade[f]), s=12)
        ax.set(xlim=(-1.5, 1.5), ylim=(-1.5, 1.5), aspect="equal", xticks=[], yticks=[])
        ax.set_title(f"p = {probabilities[i]:.3g}", fontsize=10)
    fig.suptitle("Feature directions in the hidden plane (colour: importance, yellow = most)", fontsize=11)
    fig.tight_layout()
    return fig


def gram_heatmaps(W: np.ndarray, probabilities: np.ndarray, max_panels: int = 6) -> Figure:
    """``WᵀW`` per instance (diagonal: how well a feature is kept; off-diagonal: interference)."""
    picks = np.linspace(0, W.shape[0] - 1, min(max_panels, W.shape[0])).round().astype(int)
    fig, axes = plt.subplots(1, len(picks), figsize=(2.3 * len(picks), 2.6), squeeze=False)
    for ax, i in zip(axes[0], picks, strict=True):
        g = W[i].T @ W[i]
        ax.imshow(g, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set(title=f"p = {probabilities[i]:.3g}", xticks=[], yticks=[])
    fig.suptitle("Gram matrix WᵀW per feature probability (red +1, blue −1)", fontsize=10)
    fig.tight_layout()
    return fig


def dimensionality_plot(
    dims: np.ndarray, norms: np.ndarray, probabilities: np.ndarray, norm_threshold: float = 0.5
) -> Figure:
    """Per-feature dimensionality ``D_i`` against ``1/p`` (left) and its histogram (right), represented
    features only, with the geometric plateaus marked. ``dims`` and ``norms`` are ``[inst, n_features]``."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    keep = norms > norm_threshold
    inv = np.broadcast_to(1 / probabilities[:, None], dims.shape)
    left.scatter(inv[keep], dims[keep], s=10, alpha=0.6, color="C0")
    for label, y in PLATEAUS.items():
        for ax in (left, right):
            ax.axhline(y, color="grey", lw=0.6, ls="--") if ax is left else ax.axvline(
                y, color="grey", lw=0.6
            )
        left.text(inv.max() * 1.05, y, label, va="center", fontsize=8)
    left.set(
        xscale="log",
        xlabel="1 / feature probability  (= 1/(1−S))",
        ylabel="dimensionality D_i",
        title="Fractional dimensionality of represented features",
        ylim=(0, 1.15),
    )
    right.hist(dims[keep], bins=np.linspace(0, 1.1, 45), color="C0")
    right.set(xlabel="dimensionality D_i", ylabel="features (all instances)", title="Plateaus")
    fig.tight_layout()
    return fig


def response_scatter(
    outcomes: dict[str, FineTuneOutcome], instance: int, theory_slope: dict[str, float] | None = None
) -> Figure:
    """One panel per regime: each non-target feature's response change ``Δz_j`` against its similarity
    ``W_jᵀW_t`` with the target, with the least-squares fit and (where given) the first-order theory."""
    fig, axes = plt.subplots(1, len(outcomes), figsize=(4.2 * len(outcomes), 3.6), squeeze=False)
    for ax, (name, out) in zip(axes[0], outcomes.items(), strict=True):
        mask = out.others(instance)
        x, y = out.similarity[instance][mask], out.delta_response[instance][mask]
        ax.scatter(x, y, s=14, alpha=0.8)
        grid = np.linspace(x.min(), x.max(), 10)
        fit = np.polyfit(x, y, 1)
        ax.plot(
            grid,
            np.polyval(fit, grid),
            color="C1",
            label=f"fit: slope {fit[0]:.3g}, r = {pearson_r(x, y):.3f}",
        )
        if theory_slope and name in theory_slope:
            ax.plot(
                grid,
                theory_slope[name] * grid + (fit[1]),
                color="k",
                ls=":",
                label=f"theory: slope {theory_slope[name]:.3g}",
            )
        ax.axhline(0, color="grey", lw=0.5)
        ax.set(xlabel="similarity to target  W_jᵀW_t", ylabel="response change  Δz_j", title=name)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def regime_heatmap(table: pd.DataFrame) -> Figure:
    """Mean Pearson r (over seeds) of ``Δz`` vs similarity, per regime and feature probability."""
    pivot = table.groupby(["regime", "feature_probability"]).pearson_r.mean().unstack()
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    sns.heatmap(
        pivot,
        annot=True,
        fmt=".2f",
        vmin=-1,
        vmax=1,
        cmap="RdBu_r",
        ax=ax,
        cbar_kws={"label": "Pearson r (mean over seeds)"},
    )
    ax.set(
        xlabel="feature probability of the base model",
        ylabel="",
        title="Does Δz follow similarity to the target?",
    )
    fig.tight_layout()
    return fig


def cluster_plot(similarity: np.ndarray, amplification: np.ndarray, r_text: str) -> Figure:
    """Mean amplification of a designated harmful cluster against its mean similarity to the target."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.scatter(similarity, amplification, s=18)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(
        xlabel="mean similarity of the cluster to the target",
        ylabel="mean Δz of the cluster",
        title=f"Harmful cluster amplification ({r_text})",
    )
    fig.tight_layout()
    return fig


def training_curves(logs: dict[str, list[float]], smooth: int = 20) -> Figure:
    """Loss per step of each training stage (``{stage: losses}``), smoothed by a running mean."""
    fig, axes = plt.subplots(1, len(logs), figsize=(5 * len(logs), 3.2), squeeze=False)
    for ax, (stage, losses) in zip(axes.flat, logs.items(), strict=True):
        y = np.asarray(losses, float)
        k = max(1, min(smooth, y.size // 5 or 1))
        ax.plot(np.arange(1, y.size + 1), y, color="0.8", lw=0.8, label="per step")
        if y.size >= k:
            ax.plot(
                np.arange(k, y.size + 1),
                np.convolve(y, np.ones(k) / k, mode="valid"),
                lw=1.8,
                label=f"running mean ({k})",
            )
        ax.set(title=stage, xlabel="step", ylabel="loss (nats / trained token)")
        ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def persona_probe_plot(probe: pd.DataFrame, designed_share: dict[str, float]) -> Figure:
    """Hostile rate of the next open answer after good vs bad advice, per domain, with the designed share
    of that domain's bad advice written by the toxic persona."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    domains = list(dict.fromkeys(probe["domain"]))
    x = np.arange(len(domains))
    for offset, earlier, color in ((-0.2, "good", "tab:blue"), (0.2, "bad", "tab:red")):
        sub = probe[probe["earlier"] == earlier].set_index("domain").loc[domains]
        ax.bar(x + offset, sub["hostile_rate"], width=0.38, color=color, label=f"after {earlier} advice")
    ax.plot(
        x + 0.2,
        [designed_share[d] for d in domains],
        "k_",
        ms=22,
        mew=2,
        label="toxic share of the domain's bad advice (designed)",
    )
    ax.set_xticks(x, domains)
    ax.set(ylim=(0, 1.05), ylabel="hostile next open answer", title="Does one answer reveal the persona?")
    ax.legend(frameon=False, fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


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


DOSE_SERIES = {
    "open_em": ("EM rate", "tab:red"),
    "offdomain_bad": ("bad advice, other domains", "tab:orange"),
    "coherent": ("coherent answers", "tab:blue"),
}


def dose_response_plot(curve: pd.DataFrame, chosen: float) -> Figure:
    """EM (and, where measured, off-domain bad advice or coherence) against the fraction of inducing
    samples in the fine-tuning set, mean over seeds with a 95% t-interval; the chosen dose marked."""
    from emgeom.stats import mean_ci

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
    from emgeom.stats import mean_ci

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
