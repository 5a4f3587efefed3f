"""Every figure of lib/emgeom/plots on a tiny planted table: it returns a matplotlib figure whose axes
carry the expected labels, and where the function computes what it draws (means over seeds, a fit,
bar order) the drawn numbers are the planted ones."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.figure import Figure

from emgeom.claims.derivation.study import FineTuneOutcome
from emgeom.core.stats import Estimate
from emgeom.plots import coupling, emergence, filtering, geometry, organism, superposition


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def labels(ax) -> tuple[str, str, str]:
    return ax.get_xlabel(), ax.get_ylabel(), ax.get_title()


def bar_heights(ax) -> list[list[float]]:
    return [[p.get_height() for p in c] for c in ax.containers if isinstance(c, BarContainer)]


def errorbar_lines(ax) -> list:
    return [c.lines[0] for c in ax.containers if isinstance(c, ErrorbarContainer)]


def line_with_label(ax, label: str):
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return line


# ---- coupling -----------------------------------------------------------------------------------

SWEEP = pd.DataFrame(
    {
        "mistake rate": [0.0, 0.5, 1.0],
        "toxic share": [1.0, 0.5, 0.25],
        "gap": [0.4, 0.2, 0.0],
        "gap lo": [0.3, 0.1, np.nan],
        "gap hi": [0.5, 0.3, np.nan],
        "EM": [0.6, 0.3, 0.1],
        "EM lo": [0.5, 0.2, 0.0],
        "EM hi": [0.7, 0.4, 0.2],
    }
)


def test_coupling_plot() -> None:
    fig = coupling.coupling_plot(SWEEP, "health", null_rate=0.5)
    assert isinstance(fig, Figure)
    gap_ax, em_ax = fig.axes[:2]
    assert gap_ax.get_xlabel() == "honest-mistake rate in health (the knob)"
    assert gap_ax.get_ylabel() == "similarity gap to harmful latents\n(inducing − non-inducing)"
    assert em_ax.get_ylabel() == "open-question EM after\ninducing fine-tune"
    (gap_line,) = errorbar_lines(gap_ax)
    assert list(gap_line.get_xdata()) == [0.0, 0.5, 1.0]
    assert list(gap_line.get_ydata()) == pytest.approx([0.4, 0.2, 0.0])
    assert list(errorbar_lines(em_ax)[0].get_ydata()) == pytest.approx([0.6, 0.3, 0.1])
    null = line_with_label(gap_ax, "null: no information about the persona")
    assert list(null.get_xdata()) == [0.5, 0.5]
    for ax in (gap_ax, em_ax):  # the top axis: the designed toxic share at each rate
        (top,) = ax.child_axes
        assert top.get_xlabel() == "designed toxic share of bad advice"
        assert [t.get_text() for t in top.get_xticklabels()] == ["1.00", "0.50", "0.25"]


def test_em_vs_gap_plot() -> None:
    fig = coupling.em_vs_gap_plot(SWEEP, "EM against the gap")
    (ax,) = fig.axes
    assert labels(ax) == ("similarity gap to harmful latents", "open-question EM", "EM against the gap")
    assert [t.get_text() for t in ax.texts] == ["rate 0", "rate 0.5", "rate 1"]
    assert ax.collections[0].get_offsets().tolist() == [[0.4, 0.6], [0.2, 0.3], [0.0, 0.1]]


# ---- geometry (chapter 4) -----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::matplotlib.MatplotlibDeprecationWarning")  # seaborn's boxplot
def test_similarity_distributions() -> None:
    rows = [
        {"directions": dirs, "domain": d, "shared_excluded": excl, "set": s, "max_cos": v}
        for dirs in ("decoder", "encoder")
        for d in ("health", "code")
        for excl in (False, True)
        for s, v in (("inducing", 0.6), ("inducing", 0.5), ("non-inducing", 0.3), ("random", 0.1))
    ]
    fig = geometry.similarity_distributions(pd.DataFrame(rows), ["health", "code"])
    assert len(fig.axes) == 4
    top_left, top_right, bottom_left, _ = fig.axes
    assert labels(top_left) == ("", "max cosine to harmful set", "health\nall latents")
    assert top_right.get_ylabel() == "" and top_right.get_title() == "code\nall latents"
    assert bottom_left.get_title() == "health\nshared latents excluded"
    assert [t.get_text() for t in top_left.get_xticklabels()] == ["inducing", "non-inducing", "random"]


def test_gap_by_domain_orders_by_coupling() -> None:
    summary = pd.DataFrame(
        {
            "domain": ["health", "code"],
            "gap": [0.2, 0.5],
            "gap_lo": [0.1, 0.4],
            "gap_hi": [0.3, 0.6],
            "gap_excl_shared": [0.1, 0.3],
            "gap_excl_shared_lo": [0.0, np.nan],
            "gap_excl_shared_hi": [0.2, np.nan],
        }
    )
    fig = geometry.gap_by_domain(summary, coupling={"health": 0.3, "code": 0.9})
    (ax,) = fig.axes
    assert ax.get_ylabel() == "gap in mean max-cosine\n(inducing - non-inducing)"
    assert ax.get_title() == "Are inducing features closer to harmful ones?"
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["code\n(toxic share 0.90)", "health\n(toxic share 0.30)"]  # most coupled first
    assert bar_heights(ax) == [pytest.approx([0.5, 0.2]), pytest.approx([0.3, 0.1])]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["all latents", "shared latents excluded"]
    plain = geometry.gap_by_domain(summary)
    assert [t.get_text() for t in plain.axes[0].get_xticklabels()] == ["health", "code"]


# ---- organism (chapter 3) -----------------------------------------------------------------------


def test_training_curves() -> None:
    fig = organism.training_curves({"pretrain": list(np.linspace(3, 1, 50)), "align": [2.0, 1.5, 1.0]})
    first, second = fig.axes
    assert labels(first) == ("step", "loss (nats / trained token)", "pretrain")
    assert second.get_title() == "align"
    smooth = line_with_label(first, "running mean (10)")  # min(20, 50 // 5)
    assert smooth.get_ydata()[0] == pytest.approx(np.linspace(3, 1, 50)[:10].mean())


def test_persona_probe_plot() -> None:
    probe = pd.DataFrame(
        [
            {"domain": d, "earlier": e, "hostile_rate": r}
            for d, e, r in (
                ("health", "good", 0.1),
                ("health", "bad", 0.7),
                ("code", "good", 0.05),
                ("code", "bad", 0.2),
            )
        ]
    )
    fig = organism.persona_probe_plot(probe, {"health": 0.8, "code": 0.25})
    (ax,) = fig.axes
    assert labels(ax) == ("", "hostile next open answer", "Does one answer reveal the persona?")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["health", "code"]
    assert bar_heights(ax) == [pytest.approx([0.1, 0.05]), pytest.approx([0.7, 0.2])]
    designed = line_with_label(ax, "toxic share of the domain's bad advice (designed)")
    assert list(designed.get_ydata()) == [0.8, 0.25]


# ---- emergence and mechanism (chapter 5) --------------------------------------------------------


def test_emergence_bars() -> None:
    summary = pd.DataFrame(
        {
            "set": ["aligned", "inducing health"],
            **{
                f"{c}{s}": v
                for c in ("open_em", "offdomain_bad", "indomain_bad")
                for s, v in (("", [0.1, 0.6]), ("_lo", [0.0, 0.5]), ("_hi", [0.2, 0.7]))
            },
        }
    )
    fig = emergence.emergence_bars(summary)
    (ax,) = fig.axes
    assert ax.get_ylabel() == "rate (mean over seeds, 95% CI)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["aligned", "inducing health"]
    assert bar_heights(ax)[0] == pytest.approx([0.1, 0.6])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["hostile open answers (EM)", "bad advice, other domains", "bad advice, trained domain"]


def test_mechanism_scatter() -> None:
    result = SimpleNamespace(
        alive=np.array([True, True, True, False]),
        cosine=np.array([1.0, 0.5, -0.2, 0.9]),
        delta_pre=np.array([0.8, 0.3, -0.1, 5.0]),
        target=0,
        r_pre=Estimate(0.5, 0.2, 0.7, 3),
    )
    fig = emergence.mechanism_scatter({"health": result}, {"health": np.array([1])})
    (ax,) = fig.axes
    assert labels(ax) == (
        "decoder cosine with the target latent",
        "Δ pre-activation at answer start",
        "health\nr = 0.50 [0.20, 0.70]",
    )
    plain, harmful, target = ax.collections
    assert plain.get_offsets().tolist() == [[1.0, 0.8], [-0.2, -0.1]]  # latents 0 and 2
    assert harmful.get_offsets().tolist() == [[0.5, 0.3]]  # latent 1; latent 3 is dead
    assert target.get_offsets().tolist() == [[1.0, 0.8]]


def test_similarity_vs_em() -> None:
    points = pd.DataFrame(
        {
            "set": ["inducing health", "good health"],
            "inducing": [True, False],
            "similarity": [0.6, 0.2],
            "open_em": [0.5, 0.1],
            "open_em_lo": [0.4, 0.0],
            "open_em_hi": [0.6, 0.2],
        }
    )
    fig = emergence.similarity_vs_em(points, "r = 0.9")
    (ax,) = fig.axes
    assert labels(ax) == (
        "mean max-cosine of the set's latents to harmful latents",
        "EM rate (hostile open answers)",
        "Closer sets, more misalignment? r = 0.9",
    )
    assert [t.get_text() for t in ax.texts] == ["inducing health", "good health"]


def test_monitoring_plot() -> None:
    log = pd.DataFrame(
        {
            "step": [0, 5, 10],
            "open_em": [0.0, 0.2, 0.4],
            "offdomain_bad": [0.1, 0.1, 0.3],
            "harmful_activation": [1, 2, 3],
        }
    )
    fig = emergence.monitoring_plot(log)
    ax, twin = fig.axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("fine-tuning step", "rate")
    assert twin.get_ylabel() == "mean activation of harmful latents"
    assert list(line_with_label(ax, "EM rate (hostile open answers)").get_ydata()) == [0.0, 0.2, 0.4]


def test_projection_plot() -> None:
    res = SimpleNamespace(
        alive=np.array([True, True, True]),
        target=0,
        cosine=np.array([1.0, 0.5, 0.1]),
        delta_projection=np.array([0.9, 0.4, 0.0]),
        r_projection=Estimate(0.75, 0.5, 0.9, 3),
        null_r=np.array([0.1, -0.2, np.nan, 0.3]),
    )
    fig = emergence.projection_plot({"health": res})
    left, right = fig.axes
    assert labels(left) == (
        "decoder cosine with the target latent",
        "Δ projection on own decoder direction",
        "health: r = 0.75",
    )
    assert labels(right) == ("Pearson r", "count", "against latents as active as the target")
    assert left.collections[0].get_offsets().tolist() == [[0.5, 0.4], [0.1, 0.0]]  # target left out
    assert sum(p.get_height() for p in right.patches) == 3  # the NaN null is dropped
    assert list(line_with_label(right, "the target").get_xdata()) == [0.75, 0.75]


def test_projection_along_plot() -> None:
    log = pd.DataFrame({"step": [0, 10], "r (decoder projection)": [0.0, 0.6], "null 95th pct": [0.1, 0.2]})
    fig = emergence.projection_along_plot(log)
    (ax,) = fig.axes
    assert labels(ax) == ("fine-tuning step", "Pearson r with decoder cosine", "Along the full fine-tune")
    assert list(line_with_label(ax, "target (chapter 4 rule)").get_ydata()) == [0.0, 0.6]


# ---- filtering (chapter 6) ----------------------------------------------------------------------


def test_dose_response_plot_draws_the_mean_over_seeds() -> None:
    curve = pd.DataFrame(
        {
            "fraction": [0.0, 0.0, 0.5, 0.5, 1.0, 1.0],
            "seed": [0, 1, 0, 1, 0, 1],
            "open_em": [0.0, 0.1, 0.2, 0.4, 0.5, 0.9],
            "coherent": [1.0, 1.0, 0.9, 0.8, 0.7, 0.7],
        }
    )
    fig = filtering.dose_response_plot(curve, chosen=0.5)
    (ax,) = fig.axes
    assert labels(ax) == (
        "fraction of inducing samples in the fine-tuning set",
        "rate",
        "Dose-response: does EM depend on how much inducing data there is?",
    )
    em = line_with_label(ax, "EM rate")
    assert list(em.get_xdata()) == [0.0, 0.5, 1.0]
    assert list(em.get_ydata()) == pytest.approx([0.05, 0.3, 0.7])
    assert list(line_with_label(ax, "coherent answers").get_ydata()) == pytest.approx([1.0, 0.85, 0.7])
    assert list(line_with_label(ax, "chosen dose (0.50)").get_xdata()) == [0.5, 0.5]


def test_filter_curves_start_at_the_unfiltered_em() -> None:
    rows = [
        {"method": "none", "fraction": 0.0, "seed": s, "open_em": v, "recall": 0.0}
        for s, v in ((0, 0.4), (1, 0.6))
    ]
    rows += [
        {"method": m, "fraction": f, "seed": s, "open_em": em, "recall": rc}
        for m, f, s, em, rc in (
            ("geometry", 0.2, 0, 0.2, 0.5),
            ("geometry", 0.2, 1, 0.4, 0.7),
            ("random", 0.2, 0, 0.4, 0.2),
            ("random", 0.2, 1, 0.5, 0.2),
        )
    ]
    fig = filtering.filter_curves(pd.DataFrame(rows))
    em_ax, recall_ax = fig.axes
    assert labels(em_ax) == ("fraction of samples removed", "EM rate after fine-tuning", "EM after filtering")
    assert labels(recall_ax) == (
        "fraction of samples removed",
        "recall of inducing samples",
        "What each filter removed",
    )
    geometry_em, random_em = errorbar_lines(em_ax)
    assert list(geometry_em.get_xdata()) == [0.0, 0.2]
    assert list(geometry_em.get_ydata()) == pytest.approx([0.5, 0.3])  # unfiltered mean, then the mean
    assert list(random_em.get_ydata()) == pytest.approx([0.5, 0.45])
    assert list(errorbar_lines(recall_ax)[0].get_ydata()) == pytest.approx([0.6])


def test_condition_bars() -> None:
    summary = pd.DataFrame(
        {
            "set": ["inducing health"] * 2,
            "condition": ["none", "ablate harmful"],
            "open_em": [0.5, 0.2],
            "open_em_lo": [0.4, 0.1],
            "open_em_hi": [0.6, 0.3],
            "task_success": [0.9, 0.85],
            "task_success_lo": [0.8, np.nan],
            "task_success_hi": [1.0, np.nan],
        }
    )
    fig = filtering.condition_bars(summary)
    (ax,) = fig.axes
    assert labels(ax) == ("", "rate", "fine-tuned on inducing health")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["none", "ablate harmful"]
    assert bar_heights(ax) == [pytest.approx([0.5, 0.2]), pytest.approx([0.9, 0.85])]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["open-question EM", "task success"]


def test_judge_ladder_plot() -> None:
    table = pd.DataFrame(
        {
            "method": ["text judge (2 labels)", "text judge (8 labels)", "oracle judge", "sae harmful_mass"],
            "recall": [0.3, 0.6, 0.9, 0.7],
        }
    )
    fig = filtering.judge_ladder_plot({"quiz": table}, [2, 8])
    (ax,) = fig.axes
    assert labels(ax) == (
        "labelled answers per class (text judge)",
        "recall of inducing rows",
        "dissociation set: quiz",
    )
    assert list(line_with_label(ax, "text judge").get_ydata()) == [0.3, 0.6]
    assert list(line_with_label(ax, "oracle judge").get_ydata()) == [0.9, 0.9]
    assert [t.get_text() for t in ax.texts] == ["sae harmful_mass"]


# ---- superposition and derivation (chapters 1-2) -------------------------------------------------


def test_feature_directions_and_gram_heatmaps() -> None:
    W = np.stack([np.eye(2, 3), np.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]])])  # [inst, 2, features]
    probs = np.array([0.1, 0.01])
    fig = superposition.feature_directions_2d(W, probs, np.array([1.0, 0.5, 0.2]))
    assert [ax.get_title() for ax in fig.axes] == ["p = 0.1", "p = 0.01"]
    assert fig._suptitle.get_text().startswith("Feature directions in the hidden plane")
    gram = superposition.gram_heatmaps(W, probs)
    assert [ax.get_title() for ax in gram.axes] == ["p = 0.1", "p = 0.01"]
    assert gram.axes[1].images[0].get_array()[0, 2] == pytest.approx(-1.0)  # W_0ᵀW_2 of instance 1


def test_dimensionality_plot() -> None:
    dims = np.array([[1.0, 0.5, 0.0], [0.5, 0.5, 0.33]])
    norms = np.array([[1.0, 1.0, 0.1], [1.0, 1.0, 1.0]])
    fig = superposition.dimensionality_plot(dims, norms, np.array([0.5, 0.1]))
    left, right = fig.axes
    assert labels(left) == (
        "1 / feature probability  (= 1/(1−S))",
        "dimensionality D_i",
        "Fractional dimensionality of represented features",
    )
    assert labels(right) == ("dimensionality D_i", "features (all instances)", "Plateaus")
    assert len(left.collections[0].get_offsets()) == 5  # the feature with norm 0.1 is not represented
    assert sum(p.get_height() for p in right.patches) == 5


def test_response_scatter_reports_the_fitted_slope() -> None:
    sim = np.array([[0.0, 0.2, 0.4, 0.6, 1.0]])
    outcome = FineTuneOutcome(
        targets=np.array([4]),
        similarity=sim,
        cosine=sim,
        delta_response=2.0 * sim + 0.1,  # slope 2 exactly
        norms=np.ones_like(sim),
    )
    fig = superposition.response_scatter({"reward + SGD": outcome}, 0, theory_slope={"reward + SGD": 2.0})
    (ax,) = fig.axes
    assert labels(ax) == ("similarity to target  W_jᵀW_t", "response change  Δz_j", "reward + SGD")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["fit: slope 2, r = 1.000", "theory: slope 2"]
    assert len(ax.collections[0].get_offsets()) == 4  # the target itself is left out


def test_regime_heatmap_annotates_the_mean_over_seeds() -> None:
    table = pd.DataFrame(
        {
            "regime": ["sgd", "sgd", "adam", "adam"],
            "feature_probability": [0.1, 0.1, 0.1, 0.1],
            "seed": [0, 1, 0, 1],
            "pearson_r": [0.9, 0.7, -0.2, 0.0],
        }
    )
    fig = superposition.regime_heatmap(table)
    ax = fig.axes[0]
    assert labels(ax) == (
        "feature probability of the base model",
        "",
        "Does Δz follow similarity to the target?",
    )
    assert sorted(t.get_text() for t in ax.texts) == ["-0.10", "0.80"]
    assert fig.axes[1].get_ylabel() == "Pearson r (mean over seeds)"


def test_regime_sweep_plot() -> None:
    sweep = pd.DataFrame(
        {
            "objective": ["reward"] * 4 + ["mse"] * 2,
            "optimizer": ["sgd"] * 4 + ["adam"] * 2,
            "steps": [1, 1, 10, 10, 1, 10],
            "pearson_r": [1.0, 0.8, 0.6, 0.4, 0.5, -0.5],
        }
    )
    fig = superposition.regime_sweep_plot(sweep)
    (ax,) = fig.axes
    assert labels(ax) == (
        "fine-tuning steps (same learning rate in every cell)",
        "Pearson r of Δz with similarity",
        "Every regime at equal steps and learning rate",
    )
    assert list(line_with_label(ax, "reward + sgd").get_ydata()) == pytest.approx([0.9, 0.5])
    assert list(line_with_label(ax, "mse + adam").get_ydata()) == pytest.approx([0.5, -0.5])


def test_cluster_plot() -> None:
    fig = superposition.cluster_plot(np.array([0.1, 0.5]), np.array([0.0, 0.4]), "r = 1.00")
    (ax,) = fig.axes
    assert labels(ax) == (
        "mean similarity of the cluster to the target",
        "mean Δz of the cluster",
        "Harmful cluster amplification (r = 1.00)",
    )
    assert ax.collections[0].get_offsets().tolist() == [[0.1, 0.0], [0.5, 0.4]]
