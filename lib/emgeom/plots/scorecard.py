"""The scorecard at a glance: each claim's headline effect with its 95% interval, and the paper's number
where the paper gave one."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Patch


@dataclass(frozen=True)
class HeadlinePoint:
    """One row of the figure: ``label`` (the claim and, where it has several, the domain or set), the
    measured ``value`` with its interval (``lo``/``hi`` NaN when the build gave none), the result's
    ``unit``, the paper's own number (``paper``, None where the paper gave none) and the declared
    smallest effect of interest (``sesoi``, drawn as a band ``±sesoi`` on the row)."""

    label: str
    value: float
    lo: float
    hi: float
    unit: str
    paper: float | None = None
    sesoi: float | None = None


def scorecard_forest(points: Sequence[HeadlinePoint], profile: str) -> Figure:
    """A forest plot, one row per point, top to bottom in scorecard order: the value (dot) and its 95%
    interval (line) on a shared axis with 0 marked; the paper's number as a red diamond. Each row's
    label names its unit, since claims measure different things (a correlation, a cosine gap, a share
    of EM removed)."""
    n = max(len(points), 1)
    fig, ax = plt.subplots(figsize=(9, 0.42 * n + 1.4))
    for i, p in enumerate(points):
        y = n - 1 - i
        if p.sesoi is not None:
            ax.fill_between([-p.sesoi, p.sesoi], y - 0.3, y + 0.3, color="0.85", lw=0)
        if math.isfinite(p.lo) and math.isfinite(p.hi):
            ax.plot([p.lo, p.hi], [y, y], color="tab:blue", lw=2)
        ax.plot([p.value], [y], "o", color="tab:blue")
        if p.paper is not None:
            ax.plot([p.paper], [y], "D", color="tab:red", ms=7)
    ax.axvline(0.0, color="grey", lw=1, ls="--")
    ax.set_yticks(range(n))
    ax.set_yticklabels([f"{p.label} ({p.unit})" for p in reversed(points)] or ["no claim recorded"])
    ax.set_xlabel("effect in the claim's own unit\n(dot: this build; line: 95% interval over replicates)")
    ax.set_title(f"Scorecard at a glance, profile {profile}")
    handles = [
        plt.Line2D([], [], marker="o", color="tab:blue", lw=2, label="this build, 95% interval"),
        plt.Line2D([], [], marker="D", color="tab:red", ls="", label="the paper's number"),
        Patch(color="0.85", label="±SESOI (effect absent inside)"),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()  # callers save with bbox_inches='tight' for the outside legend
    return fig
