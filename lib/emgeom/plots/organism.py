"""Figures of chapter 3: training curves and the organism's persona probe against the designed shares."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure


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
