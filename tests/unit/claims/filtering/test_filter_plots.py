"""Chapter 6's new figures draw the planted numbers: recall per detector with its interval and the
oracle's ceiling, EM per method, and the half-inducing set's share on the dose-response curve."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from emgeom.plots import filtering


def test_recall_bars_show_each_detector_with_its_interval_and_the_oracle_ceiling() -> None:
    table = pd.DataFrame(
        {
            "method": ["sae harmful_mass", "random", "oracle judge", "gradient"],
            "recall": [0.8, 0.5, 0.9, 0.6],
            "recall lo": [0.7, 0.45, 0.9, 0.5],
            "recall hi": [0.9, 0.55, 0.9, 0.7],
        }
    )
    fig = filtering.recall_bars({"quiz": table}, ["sae harmful_mass", "random", "not run"])
    (ax,) = fig.axes
    assert [p.get_height() for p in ax.patches] == pytest.approx([0.8, 0.5])  # unknown detectors skipped
    assert [t.get_text() for t in ax.get_xticklabels()] == ["sae harmful_mass", "random"]
    ceiling = [line for line in ax.get_lines() if line.get_label() == "oracle judge (ceiling)"]
    assert list(ceiling[0].get_ydata()) == [0.9, 0.9]
    assert ax.get_title() == "quiz"
    plt.close(fig)


def test_em_bars_show_each_method_per_set() -> None:
    em = pd.DataFrame(
        {
            "set": ["half_inducing", "half_inducing", "quiz"],
            "method": ["none", "geometry", "none"],
            "EM": [0.4, 0.1, 0.3],
            "lo": [0.3, 0.0, float("nan")],
            "hi": [0.5, 0.2, float("nan")],
        }
    )
    fig = filtering.em_bars(em)
    first, second = fig.axes
    assert [p.get_height() for p in first.patches] == pytest.approx([0.4, 0.1])
    assert [p.get_height() for p in second.patches] == pytest.approx([0.3])
    assert (first.get_title(), second.get_title()) == ("half_inducing", "quiz")
    plt.close(fig)


def test_the_dose_response_marks_the_set_it_is_asked_to() -> None:
    curve = pd.DataFrame({"fraction": [0.0, 0.5], "seed": [0, 0], "open_em": [0.0, 0.4]})
    fig = filtering.dose_response_plot(curve, 0.5, label="the half-inducing set")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "the half-inducing set (0.50)" in labels
    plt.close(fig)
