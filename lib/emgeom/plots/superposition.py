"""Figures of part 1 (chapters 1-2): toy-model feature directions, Gram matrices, dimensionality
plateaus, first-order response scatter, the optimiser-regime heatmap and the harmful-cluster plot."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from emgeom.claims.derivation.study import FineTuneOutcome
from emgeom.core.stats import pearson_r

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


def regime_sweep_plot(sweep: pd.DataFrame) -> Figure:
    """Mean Pearson r (over seeds and sparsities) of ``Δz`` vs similarity against the number of steps,
    one line per (objective, optimiser), all at the same learning rate."""
    mean_r = sweep.groupby(["objective", "optimizer", "steps"])["pearson_r"].mean().reset_index()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    markers = {"reward": "o", "mse": "s", "ce": "^"}
    for (objective, optimizer), cell in mean_r.groupby(["objective", "optimizer"]):
        ax.plot(
            cell["steps"],
            cell["pearson_r"],
            marker=markers.get(objective, "o"),
            markersize=7 if optimizer == "sgd" else 5,  # SGD cells often coincide at r = 1
            linestyle="-" if optimizer == "sgd" else "--",
            label=f"{objective} + {optimizer}",
        )
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set(
        xscale="log",
        ylim=(-1.05, 1.05),
        xlabel="fine-tuning steps (same learning rate in every cell)",
        ylabel="Pearson r of Δz with similarity",
        title="Every regime at equal steps and learning rate",
    )
    ax.legend(fontsize=8, ncols=3, loc="lower left")
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
