"""The coupling sweep's per-organism figure on a planted sweep: one line per organism with its own values
in rate order, the mean over organisms, and the null rate marked."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from emgeom.plots import coupling


def test_organism_lines_plot_draws_each_organism_and_the_mean() -> None:
    sweep = pd.DataFrame(
        {
            "organism": [1, 1, 0, 0],
            "mistake rate": [0.95, 0.0, 0.0, 0.95],  # unsorted: each line is drawn in rate order
            "gap": [0.0, 0.4, 0.2, 0.1],
            "EM": [0.1, 0.7, 0.5, 0.0],
        }
    )
    fig = coupling.organism_lines_plot(sweep, "health", null_rate=0.95)
    gap_ax, em_ax = fig.axes
    assert gap_ax.get_xlabel() == "honest-mistake rate in health (the knob)"
    assert em_ax.get_ylabel() == "open-question EM after\ninducing fine-tune"

    def line(ax, label):
        (found,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
        return list(found.get_xdata()), list(found.get_ydata())

    assert line(em_ax, "organism 0") == ([0.0, 0.95], pytest.approx([0.5, 0.0]))
    assert line(em_ax, "organism 1") == ([0.0, 0.95], pytest.approx([0.7, 0.1]))
    assert line(em_ax, "mean") == ([0.0, 0.95], pytest.approx([0.6, 0.05]))
    assert line(gap_ax, "organism 1") == ([0.0, 0.95], pytest.approx([0.4, 0.0]))
    assert line(gap_ax, "mean") == ([0.0, 0.95], pytest.approx([0.3, 0.05]))
    assert line(gap_ax, "null rate")[0] == [0.95, 0.95]
    plt.close(fig)
