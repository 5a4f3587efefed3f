"""The scorecard at a glance: each claim's headline with its interval, and the paper's number."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt

from emgeom.book.pages.scorecard import headline_points, render_scorecard
from emgeom.plots.scorecard import scorecard_forest

RESULTS = {
    "first_order_pearson_r": {"value": 0.99, "ci": [0.98, 1.0]},
    "similarity_gap_excl_shared_health": {"value": 0.137, "ci": [-0.135, 0.409]},
    "similarity_gap_excl_shared_code": {"value": -0.03, "ci": [-0.1, 0.05]},  # not a paper domain: not shown
    "similarity_gap_legal": {"value": 0.3, "ci": [0.1, 0.5]},  # with shared latents: not the headline
    "geometry_filter_relative_reduction": {"value": 0.115, "ci": [-0.156, 0.387]},
    "dissociation_quiz_geometry_recall_minus_judge": {"value": 0.316, "ci": None},
    "mechanism_decoder_projection_r": {"value": None, "ci": None},  # not computed: no row
}


def test_headlines_follow_the_scorecard_order_with_their_intervals_and_the_papers_number() -> None:
    points = headline_points(RESULTS)
    assert [p.label for p in points] == [
        "derivation",
        "geometry_paper_domains: health",
        "filter_reduces_em",
        "filter_beats_judge: quiz",
    ]
    reduction = points[2]
    assert (reduction.value, reduction.lo, reduction.hi, reduction.paper) == (0.115, -0.156, 0.387, 0.345)
    assert math.isnan(points[3].lo) and points[1].paper is None


def test_the_figure_labels_each_row_with_its_unit_and_marks_the_paper() -> None:
    fig = scorecard_forest(headline_points(RESULTS), "cpu")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "filter_beats_judge: quiz (geometry minus best learned judge, recall)"  # bottom row
    assert labels[-1] == "derivation (r)"
    assert "claim's own unit" in ax.get_xlabel() and "cpu" in ax.get_title()
    diamonds = [line for line in ax.get_lines() if line.get_marker() == "D" and len(line.get_xdata()) == 1]
    assert [line.get_xdata()[0] for line in diamonds] == [0.345]
    plt.close(fig)


def test_the_page_shows_the_figure_when_one_was_drawn() -> None:
    docs = {"02": {"profile": "cpu", "results": RESULTS}}
    assert "```{figure} scorecard.png" in render_scorecard(docs, "cpu", figure="scorecard.png")
    assert "{figure}" not in render_scorecard(docs, "cpu")
